"""Training a normalizing flow (NICE, RealNVP, Glow, MAF) by maximum likelihood on
dequantised 8-bit MNIST or Fashion-MNIST, or on a 2-D toy set; the models are
``tinygen.models.flows``.

A training step is one Adam step on the exact negative log-likelihood of a batch,

    -log p(x) = -log N(f(x); 0, I) - log |det df/dx|        (nats per example),

with the images dequantised afresh every batch (Theis et al. 2016; Dinh et al. 2017):
x = (k + u) / 256, k the 8-bit pixel value, u ~ U[0, 1)^D. A density p on [0, 1]^D is a
density 256^-D p(y / 256) of y = k + u, and by Jensen's inequality

    log P(k) = log E_u[256^-D p((k + u) / 256)] >= E_u[log p(x)] - D log 256,

so -log p(x) + D ln 256 is an upper bound on the discrete data's NLL; in bits per
dimension, bpd = (-log p(x)) / (D ln 2) + 8 (``tinygen.metrics.bits_per_dim``).

Defaults and where they come from (tinygen's choices for a 2-core CPU unless stated):
    batch 64, Adam(1e-3) with a cosine decay, epochs 10
    logit_alpha 0.05         RealNVP's logit pre-processing (section 4.1; its alpha)
    nice: 4 couplings, MLPs of 4 x 1000    Dinh et al. 2015 (5 x 1000 for MNIST)
    realnvp: 2 scales, conv nets of width 64
    glow: 2 levels of 8 steps, conv nets of width 64 (the paper: 3 levels of 32 steps,
          width 512, for CIFAR-10)
    maf: 5 MADE layers of 2 x 1024 (Papamakarios et al.'s MNIST model), MADE masks in
         alternating orders
    toy sets: batch 256, Adam(1e-3) cosine, 10,000 steps; MLPs of width 256

Evaluation (``tinygen eval``): images: the test NLL in nats and bits/dim on eval_n
dequantised test images (one u per image, fixed seed), fid_lenet of eval_n samples at
temperature 1, and with ``--ood DATASET`` the AUROC of -log p(x) as a score that tells
the other dataset's test images from this one's; toy sets: the test NLL in nats beside
the data's differential entropy (the floor no model can beat in expectation).
"""
from __future__ import annotations

import math
import os

import numpy as np
from tqdm import tqdm

from ... import data, no_grad, tensor
from ...data import TOY_DATASETS
from ...metrics import bits_per_dim
from ...random import generator
from ..base import ConfigError, Experiment, non_negative

EVAL_BATCH = 500


def dequantize(x, g):
    """Uniform dequantisation of 8-bit images given in [0, 1] (k / 255): (k + u) / 256,
    u ~ U[0, 1), a NumPy array of the same shape in [0, 1)."""
    k = np.rint(np.asarray(x, dtype=np.float64) * 255)
    x = ((k + g.random(k.shape)) / 256).astype(np.float32)
    # u near 1 can round (k + u) / 256 up to (k + 1) / 256 in float32, the next level's
    # bin (and 1.0 for k = 255): keep every value strictly inside its own bin
    top = np.nextafter(((k + 1) / 256).astype(np.float32), np.float32(0))
    return np.minimum(x, top)


class FlowExperiment(Experiment):
    """The shared recipe; a subclass names the model (``build_flow``)."""

    defaults = {"batch_size": 64, "lr": 1e-3, "lr_schedule": "cosine", "epochs": 10,
                "logit_alpha": 0.05, "temperature": 1.0, "eval_n": 10000, "eval_fid": True,
                "eval_fid_n": 10000, "max_grad_norm": 100.0}
    toy_defaults = {"batch_size": 256, "lr": 1e-3, "steps": 10000, "hidden": 256}
    rules = {"logit_alpha": non_negative, "temperature": non_negative}
    help = {"logit_alpha": "the logit transform's alpha on images (0: none)",
            "temperature": "T of the samples: z ~ N(0, T^2 I)",
            "eval_n": "test images (points) and samples tinygen eval uses",
            "eval_fid": "measure FID with the LeNet classifier",
            "eval_fid_n": "samples FID uses",
            "max_grad_norm": "gradients are scaled down to this global norm"}
    supports_ood = True

    def check_config(self):
        super().check_config()
        if not self.config["logit_alpha"] < 0.5:
            raise ConfigError(f"--logit-alpha {self.config['logit_alpha']}: must be below 0.5")

    @property
    def toy(self) -> bool:
        return self.config["dataset"] in TOY_DATASETS

    @property
    def event_shape(self):
        return (2,) if self.toy else (1, 28, 28)

    @property
    def blas_threads(self):
        return 1 if self.toy else None   # the MLPs' small products (Experiment.blas_threads)

    def build_flow(self):
        raise NotImplementedError

    def build_model(self):
        return self.build_flow()

    # ---- data
    def images(self, split):
        if split in self._splits:
            return self._splits[split]
        if self.toy:
            self._splits[split] = self.toy_points(split)
            return self._splits[split]
        return super().images(split)

    @property
    def transform(self):
        """Images: ``dequantize`` every batch afresh (with the loader's generator, which a
        checkpoint keeps)."""
        return None if self.toy else dequantize

    # ---- training
    def training_step(self, x):
        """One Adam step on the mean NLL of the batch, in nats (and bits/dim on images)."""
        self.model.train()
        nll = -self.model.log_prob(x).mean()
        self.update(nll)
        scalars = {"nll": nll.item()}
        if not self.toy:
            scalars["bpd"] = float(bits_per_dim(scalars["nll"], self.event_shape, 8))
        return scalars

    # ---- sampling
    @no_grad()
    def sample(self, n, temperature=None):
        """n samples at ``temperature`` (default the config's): images (n, 1, 28, 28) in
        [0, 1], or points (m, 2) with m <= n (the samples that overflowed dropped; their
        count is ``self.nonfinite_samples``)."""
        self.model.eval()
        t = self.config["temperature"] if temperature is None else temperature
        parts = []
        with np.errstate(over="ignore", invalid="ignore"):
            for i in range(0, n, EVAL_BATCH):
                parts.append(self.model.sample(min(EVAL_BATCH, n - i), t,
                                               device=self.device).numpy())
        x = np.concatenate(parts)
        # A latent far out in the tails can leave the region the networks were trained
        # on; the inverse of a coupling then divides by an exp(s) that underflows and
        # the sample overflows to inf or NaN. Such samples are counted (``tinygen eval``
        # reports them) and, as images, drawn black where NaN and saturated where inf.
        bad = ~np.isfinite(x).reshape(n, -1).all(axis=1)
        self.nonfinite_samples = int(bad.sum())
        if self.toy:
            return x[~bad] if bad.any() else x
        return np.clip(np.nan_to_num(x, nan=0.0, posinf=1.0, neginf=0.0), 0, 1)

    # ---- evaluation
    def test_data(self, dataset=None, n=None):
        """The first n test images of ``dataset`` (default the run's), dequantised with a
        fixed seed, or the run's toy test points: float32 NumPy."""
        n = n or self.config["eval_n"]
        if dataset is None or dataset == self.config["dataset"]:
            x = self.images("test")[0][:n]
        else:
            images, _ = data.load_dataset(dataset, "test", self.config.get("data_root"))
            x = data.scale(images, to=(0, 1))[:n, None]
        return x if self.toy else dequantize(x, generator(2024))

    @no_grad()
    def log_prob(self, x, desc="test log p(x)"):
        """log p(x) in nats of each row of the NumPy array x, in batches: (n,)."""
        self.model.eval()
        out = []
        for i in tqdm(range(0, len(x), EVAL_BATCH), desc=desc, leave=False, unit="batch"):
            out.append(self.model.log_prob(tensor(x[i:i + EVAL_BATCH], device=self.device)).numpy())
        return np.concatenate(out).astype(np.float64)

    def evaluate(self):
        """Images: test NLL (nats, bits/dim), fid_lenet, the OOD AUROC with --ood; toy
        sets: test NLL (nats) beside the data's entropy."""
        log_p = self.log_prob(self.test_data())
        nll = -log_p.mean()
        metrics = {"nll_nats": float(nll), "nll_estimator": "exact",
                   "nll_standard_error": float(log_p.std(ddof=1) / math.sqrt(len(log_p))),
                   # the mean can be ruled by a few test images unlike any in training
                   # (a pixel never lit there): the median shows the typical image
                   "nll_median_nats": float(np.median(-log_p))}
        if self.toy:
            metrics.update(data_variant="continuous", eval_images=len(log_p))
            try:
                h = data.toy_entropy(self.config["dataset"])
                metrics["data_entropy_nats"] = float(h.entropy)
                metrics["data_entropy_standard_error"] = float(h.standard_error)
            except ValueError:
                pass   # no known density (swiss_roll, pinwheel, two_spirals)
            return metrics
        metrics.update(bits_per_dim=float(bits_per_dim(nll, self.event_shape, 8)),
                       data_variant="dequantized_8bit", eval_images=len(log_p))
        ood = self.config.get("eval_ood")
        if ood:
            metrics["ood"] = self.ood_metrics(ood, log_p)
        if self.config.get("eval_fid", True):
            from ..classifier import fid
            samples = self.sample(self.config["eval_fid_n"])
            metrics["fid_lenet"] = fid(samples, self.config["dataset"], device=self.device,
                                       data_root=self.config.get("data_root"))
            metrics["temperature"] = float(self.config["temperature"])
            metrics["fid_samples"] = int(len(samples))
            metrics["nonfinite_samples"] = self.nonfinite_samples
        return metrics

    def ood_metrics(self, dataset, log_p_in):
        """How well -log p(x) tells ``dataset``'s test images (out of distribution) from
        this dataset's: the AUROCs of the score, of its typicality and of its complexity
        correction (``tinygen.experiments.ood``), and the mean bits/dim of each test set
        and of training images (their histograms: ``ood_histogram.png``)."""
        from ..ood import ood_metrics
        n = len(log_p_in)
        x_out = self.test_data(dataset, n)
        log_p_out = self.log_prob(x_out, desc=f"log p, {dataset}")
        x_train = dequantize(self.images("train")[0][:n], generator(2025))
        log_p_train = self.log_prob(x_train, desc="log p, training images")
        d = self.event_shape
        self._ood_bits_per_dim = (bits_per_dim(-log_p_in, d, 8), bits_per_dim(-log_p_out, d, 8),
                                  self.config["dataset"], dataset)
        metrics = ood_metrics(-log_p_in, -log_p_out, -log_p_train, self.test_data(n=n), x_out,
                              dataset)
        metrics.update(bits_per_dim_in=float(bits_per_dim(-log_p_in.mean(), d, 8)),
                       bits_per_dim_out=float(bits_per_dim(-log_p_out.mean(), d, 8)),
                       bits_per_dim_train=float(bits_per_dim(-log_p_train.mean(), d, 8)))
        return metrics

    def save_evaluation_pictures(self, run_dir):
        """After ``tinygen eval --ood``: ood_histogram.png, the bits/dim of both test sets."""
        if getattr(self, "_ood_bits_per_dim", None) is None:
            return
        from ..ood import save_ood_histogram
        bpd_in, bpd_out, name_in, name_out = self._ood_bits_per_dim
        save_ood_histogram(bpd_in, bpd_out, name_in, name_out,
                           os.path.join(run_dir, "ood_histogram.png"),
                           xlabel="bits/dim under the model trained on " + name_in)

    # ---- pictures
    @no_grad()
    def save_pictures(self, run_dir):
        """Images: samples at temperatures 0.5, 0.7 and 1.0, interpolations in z;
        toy sets: the learned density beside the data, and the data carried through the
        layers into the Gaussian."""
        from ...plot import save_image_grid
        self.model.eval()
        if self.toy:
            return self._toy_pictures(run_dir)
        rows = [self.sample(10, t) for t in (0.5, 0.7, 1.0) for _ in range(2)]
        save_image_grid(np.concatenate(rows), os.path.join(run_dir, "samples.png"), nrow=10)
        x = tensor(self.test_data(n=8), device=self.device)
        z, _ = self.model(x)
        t = tensor(np.linspace(0, 1, 10, dtype=np.float32).reshape(10, 1, 1), device=self.device)
        path = (1 - t) * z[0:8:2].unsqueeze(0) + t * z[1:8:2].unsqueeze(0)   # (10, 4, D)
        with np.errstate(over="ignore", invalid="ignore"):
            frames = self.model.flow.inverse(path.reshape(40, -1)).numpy()
        frames = np.nan_to_num(frames, nan=0.0, posinf=1.0, neginf=0.0).reshape(10, 4, 1, 28, 28)
        save_image_grid(np.clip(frames.transpose(1, 0, 2, 3, 4).reshape(-1, 1, 28, 28), 0, 1),
                        os.path.join(run_dir, "interpolations.png"), nrow=10)

    def _toy_pictures(self, run_dir):
        from ...plot import plot_2d_density, plot_2d_panels
        lim = (-4.5, 4.5)
        x = self.images("test")[0][:2000]
        plot_2d_density(lambda p: self.model.log_prob(p), os.path.join(run_dir, "density.png"),
                        lim=lim, kind="density", data=x, device=self.device)
        z = tensor(np.random.default_rng(0).standard_normal((2000, 2)).astype(np.float32),
                   device=self.device)
        hs = self.model.flow.inverse_trajectory(z)   # z, ..., x: the Gaussian into the data
        picks = np.unique(np.linspace(0, len(hs) - 1, min(6, len(hs))).round().astype(int))
        panels = [("z" if i == 0 else ("x" if i == len(hs) - 1 else f"{i} layers undone"),
                   hs[i].numpy()) for i in picks]
        plot_2d_panels(panels, x, os.path.join(run_dir, "layers.png"), lim=lim)
        from ...plot import plot_2d_samples
        plot_2d_samples(self.sample(2000), data=x, path=os.path.join(run_dir, "samples.png"),
                        lim=lim)


class NICEExperiment(FlowExperiment):
    """NICE (Dinh et al. 2015): additive couplings and a diagonal scaling."""
    name = "nice"
    defaults = {**FlowExperiment.defaults, "num_couplings": 4, "hidden": 1000, "num_layers": 4}
    help = {**FlowExperiment.help, "num_couplings": "additive coupling layers",
            "hidden": "width of each coupling's MLP", "num_layers": "hidden layers per MLP"}

    def build_flow(self):
        from ...models.flows import NICE
        c = self.config
        return NICE(self.event_shape, c["num_couplings"], c["hidden"], c["num_layers"],
                    logit_alpha=None if self.toy else (c["logit_alpha"] or None))


class RealNVPExperiment(FlowExperiment):
    """RealNVP (Dinh et al. 2017): affine couplings, checkerboard and channel masks,
    squeeze, multi-scale."""
    name = "realnvp"
    defaults = {**FlowExperiment.defaults, "num_scales": 2, "hidden": 64, "num_layers": 2,
                "num_couplings": 8}
    help = {**FlowExperiment.help, "num_scales": "scales before the last (images)",
            "hidden": "width of the s, t networks", "num_layers": "their depth",
            "num_couplings": "coupling layers (2-D toy sets)"}

    def build_flow(self):
        from ...models.flows import RealNVP
        c = self.config
        return RealNVP(self.event_shape, c["num_scales"], c["hidden"], c["num_layers"],
                       c["num_couplings"], logit_alpha=c["logit_alpha"] or None)


class GlowExperiment(FlowExperiment):
    """Glow (Kingma & Dhariwal 2018): ActNorm, invertible 1x1 convolutions, affine
    couplings, multi-scale; samples at a temperature."""
    name = "glow"
    defaults = {**FlowExperiment.defaults, "num_levels": 2, "steps_per_level": 8,
                "hidden": 64, "num_layers": 2, "lu": True}
    help = {**FlowExperiment.help, "num_levels": "L, levels (images)",
            "steps_per_level": "K, steps of flow per level (the number of steps on 2-D sets)",
            "hidden": "width of the coupling networks", "num_layers": "their depth",
            "lu": "LU-parameterised 1x1 convolutions (else free matrices and slogdet)"}

    def build_flow(self):
        from ...models.flows import Glow
        c = self.config
        return Glow(self.event_shape, c["num_levels"], c["steps_per_level"], c["hidden"],
                    c["num_layers"], c["lu"], logit_alpha=c["logit_alpha"] or None,
                    seed=c["seed"])


class MAFExperiment(FlowExperiment):
    """MAF (Papamakarios et al. 2017): stacked MADE-based autoregressive transforms with
    batch normalisation between them; density in one pass, sampling in D passes."""
    name = "maf"
    defaults = {**FlowExperiment.defaults, "num_mades": 5, "hidden": 1024, "num_layers": 2,
                "batch_norm": True, "eval_fid_n": 1000}
    toy_defaults = {**FlowExperiment.toy_defaults, "hidden": 128}
    help = {**FlowExperiment.help, "num_mades": "MADE layers (the ordering reversed between "
            "them)", "hidden": "width of each MADE's hidden layers",
            "num_layers": "hidden layers per MADE", "batch_norm": "a batch-norm flow "
            "layer after each MADE (as in the paper)"}

    def build_flow(self):
        from ...models.flows import Flatten, LogitTransform, NormalizingFlow, SequentialFlow
        from ...models.flows.maf import MAF
        c = self.config
        d = math.prod(self.event_shape)
        maf = MAF(d, (c["hidden"],) * c["num_layers"], c["num_mades"],
                  batch_norm=c["batch_norm"], seed=c["seed"])
        if self.toy:
            return NormalizingFlow(maf, self.event_shape)
        layers = [LogitTransform(c["logit_alpha"])] if c["logit_alpha"] else []
        return NormalizingFlow(SequentialFlow(*layers, Flatten(self.event_shape), maf),
                               self.event_shape, latent_shape=(d,))
