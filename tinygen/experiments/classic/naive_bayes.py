"""Naive Bayes against logistic regression on binarised MNIST or Fashion-MNIST, the
comparison of Ng & Jordan (2002), "On Discriminative vs. Generative Classifiers", with
missing pixels added, the case the notes give to generative models; the models are
``tinygen.models.classic.naive_bayes``.

For every training fraction (``fractions``, default 1%, 10% and 100% of the 60,000
training images: nested subsets, the first n of one permutation drawn with ``seed``) the
recipe fits

    naive Bayes           in closed form, by counting (eq. (2)), with alpha = 1
                          (Laplace); done before the first step, in ``train_loader``;
    logistic regression   by Adam on the cross-entropy (eq. (7)), with an L2 penalty
                          lambda = prior_precision / n on W (a Gaussian prior N(0, 1 /
                          prior_precision) on every weight, whatever the data's size n,
                          as naive Bayes's Beta prior is the same alpha for every n).

Every training step takes one batch of each fraction's subset and one Adam step for each
of the logistic regressions, so all of them get the same number of updates; an epoch is
one pass over the largest subset (the small subsets are cycled: 5 epochs are 500 passes
over a 1% subset, which with its stronger penalty leaves it at its regularised optimum).

Images are binarised by a fixed threshold, x_d = 1 where the grey level is above
``threshold`` (0.5): deterministic, so the counts of naive Bayes are those of fixed data,
and the test images are the same for every run.

Evaluation (``tinygen eval``) on the first ``eval_n`` test images with a fraction q of
their pixels missing (``missing``: 0%, 25%, 50%; each image loses round(q 784) pixels
chosen at random, the masks drawn with the fixed seed 1234, nested: the 50% mask hides
the 25% one's pixels and as many more), where naive Bayes sums the missing pixels out
(eq. (5)) and logistic regression reads them as 0 (eq. (9), ``imputation`` "zero";
"mean" fills the training mean of the pixel instead):

    accuracy          {"naive_bayes": {"1%": {"0%": ..., "25%": ..., "50%": ...}, ...},
                       "logistic_regression": {...}}: the table
    test_accuracy     {"naive_bayes": ..., "logistic_regression": ...} with the largest
                      training fraction on complete test images: the headline
    train_images      the size of each fraction's subset
    nll_nats          -log p(x) of the complete test images under the naive Bayes of the
                      largest fraction, exact (eq. (4), labels summed out); with
                      bits_per_dim, data_variant "threshold_binarized"
    fid_lenet, class_accuracy   of eval_fid_n naive Bayes samples (classes in turn),
                      with the LeNet classifier (``--no-classifier`` skips them)

Defaults and where they come from:
    alpha 1                          Laplace's rule of succession, the textbook default
                                     (Murphy 2012, section 3.3.4.1)
    prior_precision 6                tinygen's, chosen on 10,000 held-out training images
                                     (complete ones) among 0.6, 6, 60, 600: 0.6 and 6 tie
                                     (91.5% with 50,000 images), 60 loses 0.4 points, 600
                                     loses 2 (10 at 600 images)
    Adam 1e-3, batch 100, 5 epochs   tinygen's: 15 epochs or a rate of 3e-3 changed the
                                     held-out accuracy by under 1 point
    imputation "zero"                the fairer fill for a linear model (naive_bayes.py,
                                     eq. (9): in expectation over the mask it scales the
                                     evidence W x, where the mean adds the average
                                     image's logits); on held-out training images with
                                     half the pixels missing it beat the mean by 2 to 11
                                     points
"""
from __future__ import annotations

import os

import numpy as np

from ... import data, optim
from ...models.classic.naive_bayes import (BernoulliNaiveBayes, LogisticRegression,
                                           missing_at_random)
from ...metrics import bits_per_dim
from ...random import generator
from ..base import ConfigError, Experiment, non_negative, one_of

MASK_SEED = 1234        # the test images' missing pixels: the same for every run
D, K = 784, 10


def parse_fractions(text: str, option: str, low_open: bool) -> list:
    """"0.01,0.1,1" -> [0.01, 0.1, 1.0], sorted, each in (0, 1] (low_open) or [0, 1).
    Raises ConfigError naming the option."""
    try:
        values = sorted({float(v) for v in str(text).split(",") if v.strip()})
    except ValueError:
        raise ConfigError(f"{option} {text!r}: give numbers separated by commas, e.g. "
                          "0.01,0.1,1") from None
    if not values:
        raise ConfigError(f"{option} {text!r}: give at least one number")
    for v in values:
        if not ((0 < v <= 1) if low_open else (0 <= v < 1)):
            interval = "(0, 1]" if low_open else "[0, 1)"
            raise ConfigError(f"{option} {text!r}: {v:g} is outside {interval}")
    return values


def percent(fraction: float) -> str:
    """0.01 -> "1%", 0.25 -> "25%", 0.001 -> "0.1%": the table's keys."""
    return f"{100 * fraction:.10g}%"


def binarize_threshold(images, threshold: float = 0.5) -> np.ndarray:
    """Grey images in [0, 1] (N, ...) -> uint8 (N, 784), 1 where the grey level is above
    ``threshold``."""
    return (np.asarray(images).reshape(len(images), -1) > threshold).astype(np.uint8)


def _to_float(batch, g):
    x, y = batch
    return x.astype(np.float32), y


class CycledLoaders:
    """One training batch of each of several DataLoaders at a time, as a tuple: the
    loaders are cycled independently (each restarts, with a fresh shuffle, when it runs
    out), and an epoch is an epoch of the last (the largest). ``state_dict`` holds every
    loader's position, so a resumed run sees the batches an uninterrupted one would."""

    def __init__(self, loaders):
        self.loaders = list(loaders)
        self._iterators = [None] * len(self.loaders)

    def __len__(self):
        return len(self.loaders[-1])

    def _next(self, i):
        if self._iterators[i] is not None:
            batch = next(self._iterators[i], None)
            if batch is not None:
                return batch
        for _ in range(2):  # after a resume at an epoch's end, the first pass is empty
            self._iterators[i] = iter(self.loaders[i])
            batch = next(self._iterators[i], None)
            if batch is not None:
                return batch
        raise ValueError("CycledLoaders: a loader gives no batch")

    def __iter__(self):
        for _ in range(len(self)):
            yield tuple(self._next(i) for i in range(len(self.loaders)))

    def state_dict(self) -> dict:
        return {"loaders": [loader.state_dict() for loader in self.loaders]}

    def load_state_dict(self, state: dict) -> None:
        if len(state["loaders"]) != len(self.loaders):
            raise ValueError(f"CycledLoaders: the state has {len(state['loaders'])} loaders, "
                             f"this one {len(self.loaders)}")
        for loader, s in zip(self.loaders, state["loaders"]):
            loader.load_state_dict(s)
        self._iterators = [None] * len(self.loaders)


class NaiveBayesExperiment(Experiment):
    """Bernoulli naive Bayes (closed form) and logistic regression (Adam) on nested
    training subsets; evaluated with missing test pixels."""

    name = "naive-bayes"
    num_classes = K
    defaults = {"fractions": "0.01,0.1,1", "missing": "0,0.25,0.5", "alpha": 1.0,
                "prior_precision": 6.0, "imputation": "zero", "threshold": 0.5,
                "train_images": 60000, "batch_size": 100, "lr": 1e-3, "epochs": 5,
                "eval_n": 10000, "eval_fid": True, "eval_fid_n": 10000}
    rules = {"prior_precision": non_negative, "imputation": one_of("zero", "mean"),
             "threshold": lambda v: None if 0 < v < 1 else "must lie in (0, 1)"}
    help = {"fractions": "training fractions, comma-separated (nested subsets)",
            "missing": "fractions of test pixels missing, comma-separated",
            "alpha": "naive Bayes's prior pseudo-count (1: Laplace)",
            "prior_precision": "logistic regression's L2 penalty times the subset's size",
            "imputation": "what logistic regression reads for a missing pixel: 0, or "
                          "the training mean",
            "threshold": "binarisation: a pixel is 1 above this grey level",
            "train_images": "training images in the largest subset (fewer: a quick run)",
            "eval_n": "test images", "eval_fid": "measure FID and class accuracy of naive "
                                                  "Bayes's samples with LeNet",
            "eval_fid_n": "samples FID uses"}
    blas_threads = 1   # (100, 784) x (784, 10) products (Experiment.blas_threads)

    def check_config(self):
        super().check_config()
        self.fractions = parse_fractions(self.config["fractions"], "--fractions", True)
        self.missing = parse_fractions(self.config["missing"], "--missing", False)

    # ---- the models: one pair per training fraction
    def build_model(self):
        self.naive_bayes, self.logistic, self.adams = {}, {}, {}
        for f in self.fractions:
            self.naive_bayes[f] = BernoulliNaiveBayes(D, K, alpha=self.config["alpha"])
            self.logistic[f] = LogisticRegression(D, K).to(self.device)
        return None   # several networks: modules() and optimizers() name them

    def modules(self):
        out = {}
        for f in self.fractions:
            out[f"naive_bayes_{percent(f)}"] = self.naive_bayes[f]
            out[f"logistic_regression_{percent(f)}"] = self.logistic[f]
        return out

    def optimizers(self):
        if not self.adams:   # the penalty depends on the subset's size, known with the data
            sizes = self.subset_sizes()
            for f in self.fractions:
                W, b = self.logistic[f].linear.weight, self.logistic[f].linear.bias
                decay = self.config["prior_precision"] / sizes[f]
                self.adams[f] = optim.Adam([{"params": [W], "weight_decay": decay},
                                            {"params": [b], "weight_decay": 0.0}],
                                           lr=self.config["lr"])
        return {f"adam_{percent(f)}": self.adams[f] for f in self.fractions}

    # ---- data
    def binary(self, split: str):
        """The split binarised by ``threshold``: uint8 (N, 784) and labels (N,), once."""
        key = ("binary", split)
        if key not in self._splits:
            x, y = self.images(split)
            self._splits[key] = (binarize_threshold(x, self.config["threshold"]), y)
        return self._splits[key]

    def permutation(self):
        """The order of the training images whose first n are a subset of n: fixed by
        ``seed``, cut to ``train_images``."""
        n = min(self.config["train_images"], len(self.binary("train")[0]))
        return generator(self.config.get("seed", 0)).permutation(
            len(self.binary("train")[0]))[:n]

    def subset_sizes(self) -> dict:
        """fraction -> n = max(1, round(fraction train_images))."""
        n = len(self.permutation())
        return {f: max(1, int(round(f * n))) for f in self.fractions}

    def subset(self, f):
        """The training subset of fraction f: uint8 (n, 784), labels (n,)."""
        x, y = self.binary("train")
        index = self.permutation()[:self.subset_sizes()[f]]
        return x[index], y[index]

    def train_loader(self):
        """Fit every naive Bayes (closed form: nothing to iterate) and, with imputation
        "mean", set every logistic regression's fill to its subset's pixel means; return
        the cycled loaders of the subsets. (``fit`` calls it before the first step; a
        resumed run then loads the same values from its checkpoint.)"""
        loaders = []
        for i, f in enumerate(self.fractions):
            x, y = self.subset(f)
            self.naive_bayes[f].fit(x, y)
            if self.config["imputation"] == "mean":
                self.logistic[f].set_fill(x.astype(np.float32))
            loaders.append(data.DataLoader(x, y, batch_size=self.config["batch_size"],
                                           shuffle=True, seed=self.config.get("seed", 0) + i,
                                           device=self.device, transform=_to_float))
        return CycledLoaders(loaders)

    # ---- training: one Adam step of each logistic regression
    def training_step(self, batches):
        """One step on the mean cross-entropy (eq. (7); the penalty is Adam's weight
        decay) of each fraction's logistic regression; logs loss_<fraction>, nats."""
        scalars, adams = {}, self.optimizers()
        for f, (x, y) in zip(self.fractions, batches):
            loss = self.logistic[f].loss(x, y)
            self.update(loss, adams[f"adam_{percent(f)}"])
            scalars[f"loss_{percent(f)}"] = loss.item()
        return scalars

    # ---- evaluation
    def test_set(self):
        """The first eval_n test images, binarised: float32 (n, 784), labels (n,)."""
        x, y = self.binary("test")
        n = self.config["eval_n"]
        return x[:n].astype(np.float32), y[:n]

    def masks(self, n):
        """missing fraction -> the observed mask (n, 784), nested (one seed for all)."""
        return {q: missing_at_random(n, D, q, generator(MASK_SEED)) for q in self.missing}

    def accuracy_table(self) -> dict:
        """{"naive_bayes": {"1%": {"0%": accuracy, ...}, ...}, "logistic_regression": ...}
        on the test set with each fraction of pixels missing."""
        x, y = self.test_set()
        masks = self.masks(len(x))
        table = {"naive_bayes": {}, "logistic_regression": {}}
        for f in self.fractions:
            for name, model in (("naive_bayes", self.naive_bayes[f]),
                                ("logistic_regression", self.logistic[f])):
                table[name][percent(f)] = {
                    percent(q): float((model.predict(x, m) == y).mean())
                    for q, m in masks.items()}
        return table

    def evaluate(self):
        """The accuracy table, the headline test accuracies, the naive Bayes test NLL and,
        with the classifier, fid_lenet and class_accuracy of naive Bayes's samples."""
        x, y = self.test_set()
        top = self.fractions[-1]
        nb, lr = self.naive_bayes[top], self.logistic[top]
        nll = -nb.log_evidence(x)
        metrics = {
            "accuracy": self.accuracy_table(),
            "test_accuracy": {"naive_bayes": float((nb.predict(x) == y).mean()),
                              "logistic_regression": float((lr.predict(x) == y).mean())},
            "train_images": {percent(f): n for f, n in self.subset_sizes().items()},
            "nll_nats": float(nll.mean()), "nll_estimator": "exact",
            "nll_standard_error": float(nll.std(ddof=1) / np.sqrt(len(nll)))
            if len(nll) > 1 else 0.0,
            "bits_per_dim": float(bits_per_dim(nll.mean(), D)),
            "data_variant": "threshold_binarized", "eval_images": int(len(x))}
        if self.config.get("eval_fid", True):
            from ..classifier import class_accuracy, fid
            n = self.config["eval_fid_n"]
            labels = np.arange(n) % K
            samples = self.sample(n, labels)
            root = self.config.get("data_root")
            metrics["fid_lenet"] = fid(samples, self.config["dataset"], device=self.device,
                                       data_root=root)
            metrics["class_accuracy"] = class_accuracy(samples, labels, self.config["dataset"],
                                                       device=self.device, data_root=root)
            metrics["fid_samples"] = int(n)
            metrics["sampler"] = "ancestral"
        return metrics

    # ---- samples and pictures
    def sample(self, n, y=None):
        """n samples of the naive Bayes of the largest fraction (n, 1, 28, 28) of 0.0 and
        1.0: x ~ p(x | y) for the labels y (n,), default the classes in turn."""
        y = np.arange(n) % K if y is None else np.asarray(y)
        x, _ = self.naive_bayes[self.fractions[-1]].sample(y=y)
        return x.reshape(-1, 1, 28, 28)

    def save_pictures(self, run_dir):
        """accuracy_curves.png: test accuracy against training images (log x), a line per
        model and missing fraction; class_means.png: theta_k, a row per training fraction;
        samples.png: 10 samples per class; missing_pixels.png: test digits with each
        fraction of pixels missing (grey)."""
        from ...plot import save_image_grid
        table = self.accuracy_table()
        save_accuracy_curves(table, self.subset_sizes(),
                             os.path.join(run_dir, "accuracy_curves.png"),
                             title=f"{self.config['dataset']}: naive Bayes vs logistic "
                                   "regression")
        means = np.concatenate([self.naive_bayes[f].theta.numpy() for f in self.fractions])
        save_image_grid(means.reshape(-1, 1, 28, 28), os.path.join(run_dir, "class_means.png"),
                        nrow=K, labels=[percent(f) for f in self.fractions])
        save_image_grid(self.sample(100, np.repeat(np.arange(K), 10)),
                        os.path.join(run_dir, "samples.png"), nrow=10,
                        labels=[str(k) for k in range(K)])
        x, _ = self.test_set()
        x = x[:10]
        rows = [np.where(m, x, 0.5) for m in self.masks(len(x)).values()]
        save_image_grid(np.concatenate(rows).reshape(-1, 1, 28, 28),
                        os.path.join(run_dir, "missing_pixels.png"), nrow=len(x),
                        labels=[f"{percent(q)} missing" for q in self.missing])


def save_accuracy_curves(table: dict, sizes: dict, path: str, title: str = None) -> str:
    """The table of ``accuracy_table`` as curves: test accuracy against the training
    subset's size (``sizes``, fraction -> n; log x), naive Bayes solid, logistic
    regression dashed, a colour per missing fraction. Returns path."""
    from ...plot import new_figure, save_figure
    fig = new_figure((6.4, 4.4))
    ax = fig.add_subplot()
    n = [sizes[f] for f in sorted(sizes)]
    names = {"naive_bayes": ("naive Bayes", "-", "o"),
             "logistic_regression": ("logistic regression", "--", "s")}
    for model, (label, style, marker) in names.items():
        rows = table[model]
        for i, q in enumerate(next(iter(rows.values()))):
            acc = [rows[percent(f)][q] for f in sorted(sizes)]
            ax.plot(n, acc, style, marker=marker, color=f"C{i}",
                    label=f"{label}, {q} missing")
    ax.set_xscale("log")
    ax.set_xlabel("training images")
    ax.set_ylabel("test accuracy")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    if title:
        ax.set_title(title)
    fig.tight_layout()
    return save_figure(fig, path)
