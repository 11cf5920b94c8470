"""The ``Experiment`` base: what every training recipe shares, so that a recipe is mostly
its training step and its evaluation.

A recipe (one per model, ``tinygen/experiments/<family>/<model>.py``) subclasses
``Experiment`` and states:

    name                            how ``tinygen train NAME`` knows it (its datasets and
                                    one-line description are in the registry,
                                    ``tinygen/experiments/__init__.py``)
    defaults                        its options and their values, with where they come from
    build_model()                   the model (an nn.Module) from ``self.config``
    training_step(batch)            one update; returns the scalars to log
    evaluate()                      metrics on held-out data (the names of METRICS)
    sample(n), save_pictures(dir)   if it can

The base owns the rest: the merged configuration, the model on its device, the Adam
optimizer, the learning-rate schedule (``tinygen.optim``), an EMA of the weights when
``ema_decay`` is set, the images of a split, the training loader, the gradient step with
its guard against non-finite gradients, and what a checkpoint holds. ``tinygen.train.fit``
runs the steps.
"""
from __future__ import annotations

import math

import numpy as np

from .. import data, optim
from ..random import manual_seed
from ..train import NonFiniteError

TOY_TRAIN, TOY_TEST = 100_000, 10_000   # points in a 2-D toy set's splits

# The names every evaluation speaks, so that families can be compared in one table.
METRICS = {
    "nll_nats": "test negative log-likelihood per image, nats",
    "nll_estimator": 'how nll_nats was obtained: "iwae_k5000", "exact", "elbo", '
                     '"variational_bound"',
    "nll_standard_error": "the standard error of nll_nats over the test images used",
    "nll_images": "how many test images nll_nats averages (when fewer than eval_images)",
    "bits_per_dim": "nll_nats / (D log 2), bits per pixel",
    "data_variant": '"dynamic_binarized", "static_binarized", "threshold_binarized", '
                    '"dequantized_8bit", '
                    '"discrete_8bit" (the 256 levels themselves), "continuous"',
    "elbo_nats": "the test ELBO per image, nats (a lower bound on log p(x))",
    "fid_lenet": "Frechet distance of LeNet features, 10,000 samples against the test set",
    "class_accuracy": "fraction of class-conditional samples classified as their class",
    "guidance": "the guidance weight (omega) the samples were drawn with",
    "guidance_sweep": "omega -> {class_accuracy, fid_lenet}: guidance's trade-off",
    "ddim_sweep": "sampler -> {fid_lenet, sampling_seconds_per_1000}: DDIM's steps",
    "noisy_accuracy": "t -> accuracy of a noisy-image classifier on test images at t",
    "probability_flow_ode": "a second NLL of a diffusion model: {nll_nats, "
                            "nll_estimator, bits_per_dim, ...} by its ODE",
    "modes_covered": "how many of a toy mixture's modes the samples cover",
    "high_quality_fraction": "fraction of samples near a mode of a toy mixture",
    "recon_mse": "test reconstruction error, mean squared error per pixel",
    "inpainting_mse": "mean squared error per missing pixel of inpainted test images",
    "inpainting_class_accuracy": "fraction of inpainted test images classified as their "
                                 "class",
    "nll_median_nats": "the median of the test images' NLLs, nats (beside a mean that a "
                       "few outliers can rule)",
    "data_entropy_nats": "a toy set's differential entropy: no model's expected NLL is "
                         "lower (with data_entropy_standard_error, 0 when exact)",
    "ood": "out-of-distribution detection against another dataset: {dataset, auroc, "
           "auroc_typicality, auroc_complexity, bits_per_dim_in, bits_per_dim_out, ...}",
    "temperature": "the temperature T of a flow's samples, z ~ N(0, T^2 I)",
    "fid_samples": "how many samples fid_lenet used (when not eval_images)",
    "fid_lenet_buffer": "fid_lenet of an EBM's replay buffer: its persistent training "
                        "chains, beside fresh chains from noise",
    "nonfinite_samples": "samples that overflowed to inf or NaN (counted in fid_lenet as "
                         "black or saturated images)",
    "test_accuracy": "fraction of test images a classifier labels correctly",
    "accuracy": "a classifier's test accuracy by training-set size and fraction of "
                "pixels missing (naive-bayes)",
    "eval_images": "how many test images (or samples) the metrics used",
    "sampler": 'how the samples were drawn, e.g. "DDIM-50", "ancestral-1000"',
    "sampling_seconds_per_1000": "wall-clock seconds to draw 1,000 samples",
    "train_seconds": "wall-clock seconds of training, over every resumed part",
    "device": '"cpu" or "cuda"',
}


class ConfigError(ValueError):
    """A setting of an experiment is invalid; the message names the option, the value
    given and what is allowed (``tinygen train`` prints it and exits with status 2)."""


# Rules for options: each takes the value and returns what is wrong with it, or None.
def positive(value):
    return None if value > 0 else "must be positive"


def non_negative(value):
    return None if value >= 0 else "must be 0 or more"


def fraction(value):
    return None if 0 <= value < 1 else "must lie in [0, 1)"


def run_folder(what: str):
    """A rule for an option naming another run's folder: it must hold a checkpoint.
    ``what`` says which run, e.g. "a trained VAE (tinygen train vae)"."""
    import os

    def rule(value):
        if not value:
            return f"give the run folder of {what}"
        if not os.path.isfile(os.path.join(value, "checkpoint.npz")):
            return "holds no trained run (no checkpoint.npz)"
        return None
    return rule


def one_of(*choices):
    def rule(value):
        return None if value in choices else f"choose one of {', '.join(map(str, choices))}"
    rule.choices = choices   # for the command's help
    return rule


# The options the base itself reads; a recipe's ``rules`` add to and may override them.
# A numeric option without a rule must be positive.
COMMON_RULES = {"lr_schedule": one_of("constant", "cosine"), "ema_decay": fraction,
                "seed": non_negative}


def option_name(key: str) -> str:
    """The command-line spelling of a config key: batch_size -> --batch-size."""
    return "--" + key.replace("_", "-")


class Experiment:
    """One model with its data, optimizer and training step; subclass per model.

    Class attributes:
        name: the name it is registered and called by (``tinygen train NAME``).
        defaults: its options and their default values; each becomes a command-line
            option (``batch_size`` -> ``--batch-size``) and an entry of ``config``.
        rules: option -> a rule (``positive``, ``non_negative``, ``fraction``,
            ``one_of(...)``) checked before any work; numbers without one must be
            positive.
        toy_defaults: the defaults that differ on the 2-D toy sets.

    The base reads the settings ``batch_size``, ``lr``, ``lr_schedule`` ("constant" or
    "cosine"), ``ema_decay`` (0: no EMA), ``seed``, ``device``, ``dataset`` and
    ``data_root``.

    Args:
        config: the run's settings; missing entries take ``defaults``.

    Raises ConfigError (a ValueError) for an invalid setting, naming it.

    During ``fit``, ``self.step`` (steps done before this one) and ``self.total_steps``
    (the run's length) are set before every training step.
    """

    name: str = ""
    defaults: dict = {}
    rules: dict = {}
    help: dict = {}     # option -> what it means, for ``tinygen train NAME --help``
    toy_defaults: dict = {}   # defaults that differ on the 2-D toy sets (``defaults_for``)
    num_classes: int | None = None   # class-conditional recipes: sample(n, y) draws labels y

    step: int = 0
    total_steps: int = 1

    # BLAS threads while training: None leaves NumPy's BLAS on every core. A model of
    # small matrix products sets 1: with 2 threads, OpenBLAS's threads wait for each
    # other by spinning, and when another program holds a core (a browser, a second
    # run) they lose. Measured on 2 cores, `tinygen train vae --steps 1500` with one
    # busy process: 60 steps/s on 2 threads, 122 on 1; with two busy processes 11-13
    # against 93-127; alone, about 120-135 either way.
    blas_threads: int | None = None

    @classmethod
    def defaults_for(cls, dataset) -> dict:
        """The defaults for ``dataset``: ``defaults``, with ``toy_defaults`` over them on
        a 2-D toy set (points want other batch sizes, rates and budgets than images)."""
        if dataset in data.TOY_DATASETS:
            return {**cls.defaults, **cls.toy_defaults}
        return dict(cls.defaults)

    def __init__(self, config: dict):
        self.config = {**self.defaults_for(config.get("dataset")), **config}
        self.check_config()
        self.device = self.config.get("device", "cpu")
        self.schedulers: dict = {}
        self.train_seconds = 0.0
        self._splits: dict = {}
        # the initial weights follow --seed (fit seeds again before the first batch)
        manual_seed(self.config.get("seed", 0))
        try:
            model = self.build_model()
        except ValueError as e:  # a model's constructor refusing a combination of settings
            raise ConfigError(str(e)) from None
        if model is not None:
            self.model = model.to(self.device)
            self.optimizer = self.build_optimizer()
            decay = self.config.get("ema_decay", 0)
            # warmed up (min(decay, (1 + n) / (10 + n))): without it, an average at decay
            # 0.999 still holds 0.999^n of the random initial weights, 10% after 2,300
            # updates, and samples from it are visibly worse than from the live weights
            self.ema = optim.EMA(self.model.parameters(), decay=decay,
                                 use_num_updates=True) if decay else None

    # ---- the settings
    def check_config(self) -> None:
        """Check every setting before any work starts: its type is that of its default
        (an int where an int is expected; a float may be given as an int), and it passes
        its rule (``rules``, ``COMMON_RULES``; numbers without one must be positive).

        Raises ConfigError naming the option, the value and what is allowed."""
        rules = {**COMMON_RULES, **self.rules}
        for key, default in self.defaults.items():
            value = self.config.get(key)
            if (value is None and default is None) or key in ("epochs", "steps"):
                continue  # the budget: fit checks it, in either unit
            if isinstance(default, bool):
                ok, kind = isinstance(value, bool), "true or false"
            elif isinstance(default, int):
                ok, kind = isinstance(value, int) and not isinstance(value, bool), "an integer"
            elif isinstance(default, float):
                ok = isinstance(value, (int, float)) and not isinstance(value, bool) \
                    and math.isfinite(value)
                kind = "a number"
            elif isinstance(default, str):
                ok, kind = isinstance(value, str), "a string"
            else:
                continue
            if not ok:
                raise ConfigError(f"{option_name(key)} {value!r}: must be {kind}")
            rule = rules.get(key, positive if kind in ("an integer", "a number") else None)
            problem = rule(value) if rule is not None else None
            if problem:
                raise ConfigError(f"{option_name(key)} {value!r}: {problem}")

    # ---- what a recipe defines
    def build_model(self):
        """The model, an nn.Module built from ``self.config`` (moved to the device by the
        base). A recipe that manages its own networks returns None and overrides
        ``modules`` and ``optimizers``."""
        return None

    def build_optimizer(self):
        """Adam over the model's parameters at the configured ``lr``."""
        return optim.Adam(self.model.parameters(), lr=self.config["lr"])

    def training_step(self, batch) -> dict:
        """One update from one batch; returns the scalars to log, e.g. {"loss": 0.3}."""
        raise NotImplementedError

    def sample(self, n: int):
        """n samples as images, a NumPy array (n, C, H, W) with pixels in [0, 1] or
        [-1, 1], for ``tinygen sample``."""
        raise NotImplementedError(f"'{self.name}' does not generate samples")

    def evaluate(self) -> dict:
        """Metrics on held-out data, for ``tinygen eval``, named as in METRICS."""
        raise NotImplementedError(f"'{self.name}' has no evaluation")

    def save_pictures(self, run_dir: str) -> None:
        """Draw what the model has learned into the run folder (when training ends)."""

    def save_evaluation_pictures(self, run_dir: str) -> None:
        """Draw what the last ``evaluate`` measured into the run folder (``tinygen eval``
        calls it after writing metrics.json), e.g. the histograms behind an AUROC."""

    # ---- what a checkpoint holds
    def modules(self) -> dict:
        """Name -> nn.Module for every network whose weights a checkpoint keeps."""
        return {"model": self.model}

    def optimizers(self) -> dict:
        """Name -> optimizer."""
        return {"opt": self.optimizer}

    def emas(self) -> dict:
        """Name -> optim.EMA of weights kept for sampling."""
        ema = getattr(self, "ema", None)
        return {"ema": ema} if ema is not None else {}

    def state_dict(self) -> dict:
        return {"modules": {k: m.state_dict() for k, m in self.modules().items()},
                "optimizers": {k: o.state_dict() for k, o in self.optimizers().items()},
                "emas": {k: e.state_dict() for k, e in self.emas().items()}}

    def load_state_dict(self, state: dict) -> None:
        for kind, objects in (("modules", self.modules()), ("optimizers", self.optimizers()),
                              ("emas", self.emas())):
            saved = state.get(kind, {})
            missing = set(objects) - set(saved)
            if missing:
                raise ValueError(f"the checkpoint has no {kind} named {sorted(missing)}")
            for k, obj in objects.items():
                obj.load_state_dict(saved[k])

    # ---- data
    def images(self, split: str):
        """The dataset's ``split`` ("train" or "test") as float32 images (N, 1, 28, 28) in
        [0, 1] and integer labels (N,), NumPy, loaded once."""
        if split not in self._splits:
            images, labels = data.load_dataset(self.config["dataset"], split,
                                               self.config.get("data_root"))
            self._splits[split] = (data.scale(images, to=(0, 1))[:, None], labels)
        return self._splits[split]

    def toy_points(self, split: str):
        """A 2-D toy set's ``split``: 100,000 training or 10,000 test points (N, 2)
        float32, drawn with seeds fixed by the split and ``seed`` (the same points for
        every run of that seed), and labels 0 (N,)."""
        n, offset = (TOY_TRAIN, 0) if split == "train" else (TOY_TEST, 1)
        points = data.toy(self.config["dataset"], n,
                          seed=offset + 1000 * self.config.get("seed", 0))
        return points.astype(np.float32), np.zeros(n, np.int64)

    with_labels: bool = False   # whether training batches are (x, y) or x alone
    transform = None            # a DataLoader transform of each batch, e.g. binarisation

    def train_loader(self):
        """Shuffled batches of the training images (and labels, with ``with_labels``),
        on the device, through ``transform``."""
        x, y = self.images("train")
        arrays = (x, y) if self.with_labels else (x,)
        return data.DataLoader(*arrays, batch_size=self.config["batch_size"], shuffle=True,
                               seed=self.config.get("seed", 0), device=self.device,
                               transform=self.transform)

    # ---- a measure several families share
    def inpainting_metrics(self, filled, truth, missing, labels) -> dict:
        """How well completions of partly hidden test images fill in the hidden pixels:
        inpainting_mse, the mean squared error per missing pixel of ``filled`` against
        ``truth`` (both NumPy (n, 1, 28, 28) or (n, 784), pixels in [0, 1]; ``missing``
        a boolean array that broadcasts to them), inpainting_images, and, with the
        classifier (eval_fid), inpainting_class_accuracy: the fraction of completions
        LeNet classifies as their ``labels`` (n,)."""
        missing = np.broadcast_to(missing, truth.shape)
        metrics = {"inpainting_mse": float(((filled - truth)[missing] ** 2).mean()),
                   "inpainting_images": int(len(truth))}
        if self.config.get("eval_fid", True):
            from .classifier import class_accuracy
            metrics["inpainting_class_accuracy"] = class_accuracy(
                np.asarray(filled).reshape(-1, 1, 28, 28), labels, self.config["dataset"],
                device=self.device, data_root=self.config.get("data_root"))
        return metrics

    # ---- the learning-rate schedule
    def configure_schedules(self, total_steps: int, step: int = 0) -> None:
        """Called by ``fit`` before training (again on resume): with ``lr_schedule``
        "cosine", each optimizer's rate follows lr_t = lr/100 + (lr - lr/100)(1 + cos(pi
        t / T)) / 2 over the run's T = total_steps (``optim.CosineAnnealingLR``),
        positioned at ``step``. A run extended to a new total follows the cosine laid
        over the new total from its start: the rate rises to where that schedule is.
        "constant" keeps lr."""
        self.schedulers = {}
        kind = self.config.get("lr_schedule", "constant")
        if kind == "constant":
            return
        if kind != "cosine":
            raise ValueError(f"lr_schedule must be 'constant' or 'cosine', got {kind!r}")
        for name, opt in self.optimizers().items():
            for group in opt.param_groups:
                # a checkpoint keeps initial_lr; a fresh optimizer is at its base rate
                group.setdefault("initial_lr", group["lr"] if step == 0 else self.config["lr"])
            eta_min = opt.param_groups[0]["initial_lr"] / 100
            self.schedulers[name] = optim.CosineAnnealingLR(opt, T_max=max(1, total_steps),
                                                            eta_min=eta_min,
                                                            last_epoch=step - 1)

    def end_step(self) -> None:
        """Called by ``fit`` after each training step: advance the schedules."""
        for scheduler in self.schedulers.values():
            scheduler.step()

    # ---- one gradient step
    def update(self, loss, optimizer=None) -> None:
        """One gradient step on the scalar ``loss``: zero the gradients, backpropagate,
        refuse non-finite gradients, step ``optimizer`` (default: the model's), and update
        the EMA of the weights if there is one.

        With the setting ``max_grad_norm``, the gradients are first scaled down to that
        global norm (``optim.clip_grad_norm_``).

        Raises NonFiniteError, naming the parameter, when a gradient holds NaN or inf;
        the weights are then left as they were before this step.
        """
        optimizer = optimizer or self.optimizer
        optimizer.zero_grad()
        loss.backward()
        bad = first_non_finite_gradient(optimizer)
        if bad is not None:
            p, value = bad
            names = {id(q): f"{m}.{n}" for m, module in self.modules().items()
                     for n, q in module.named_parameters()}
            raise NonFiniteError(f"the gradient of {names.get(id(p), 'a parameter')} "
                                 f"(shape {p.shape}) holds {value}")
        if self.config.get("max_grad_norm"):
            # a recipe may cap the gradient's global norm (a flow's log-determinant can
            # send one early batch's gradient far off)
            optim.clip_grad_norm_([p for group in optimizer.param_groups
                                   for p in group["params"]], self.config["max_grad_norm"])
        optimizer.step()
        if getattr(self, "ema", None) is not None:
            self.ema.update()


def first_non_finite_gradient(optimizer):
    """The first parameter of the optimizer whose gradient holds NaN or inf, with its
    gradient's sum (nan or inf), or None.

    NaN and inf survive a sum, so a finite sum means finite gradients (short of the sum
    itself overflowing, which is a divergence too). The sums are added on the device and
    read once, so a GPU waits once per step, not once per parameter."""
    params = [p for group in optimizer.param_groups for p in group["params"]
              if p.grad is not None]
    sums = [p.grad.data.sum() for p in params]
    if not sums or math.isfinite(float(sum(sums))):
        return None
    for p, total in zip(params, sums):
        if not math.isfinite(float(total)):
            return p, float(total)
    return None
