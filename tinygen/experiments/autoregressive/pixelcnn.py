"""Training autoregressive models of binarised images, p(x) = prod_i p(x_i | x_{<i})
(``tinygen.models.autoregressive``): the shared recipe, the PixelCNN (van den Oord et al.
2016) and the gated PixelCNN (van den Oord et al. 2016b).

A training step minimises the exact negative log-likelihood -log p(x) (nats per image)
of a batch of dynamically binarised images (a fresh x ~ Bernoulli(grey level) every
batch), one pass of the network each.

Defaults and where they come from:
    pixelcnn: 2h = 64 channels, 8 residual blocks, a 7 x 7 type-A first layer, 3 x 3
                  masked convolutions, 1 x 1 output layers of 64
                                       the architecture of van den Oord et al. 2016
                                       (section 3.5, figure 5); width and depth are
                                       tinygen's choice for a 2-core CPU (1.2 s per
                                       batch of 64 on one core)
    gated-pixelcnn: p = 32 channels, 12 gated layers, k = 3
                                       van den Oord et al. 2016b (section 2); size as
                                       above
    batch 64, Adam(1e-3) with a cosine decay, epochs 5
                                       tinygen's choice
    eval_n 10000                       the whole test set, binarised once (seed 1234),
                                       as for every binarised-MNIST NLL of tinygen

The published figure: 81.30 nats for the PixelCNN on the statically binarised MNIST (van
den Oord et al. 2016, its MNIST table), a deeper network trained far longer.

Evaluation (``tinygen eval``): nll_nats (exact, eq. (1) of the models' base.py) with its
standard error and bits_per_dim; inpainting_mse and inpainting_class_accuracy of
eval_inpaint_n test digits whose lower half is drawn given the upper half (an exact draw
from p(lower | upper): the upper half comes first in raster order); fid_lenet of
eval_fid_n samples (each sample is H W passes of the network, so eval_fid_n is modest).
"""
from __future__ import annotations

import math
import os

import numpy as np
from tqdm import tqdm

from ... import data, no_grad, tensor
from ...metrics import bits_per_dim
from ...models.autoregressive import GatedPixelCNN, PixelCNN
from ...random import generator
from ..base import Experiment, non_negative
from ..vae.vae import binarize_batch


class AutoregressiveExperiment(Experiment):
    """What the autoregressive recipes share: training on -log p(x), the exact test NLL,
    samples and completions. A subclass defines ``build_model``."""

    transform = staticmethod(binarize_batch)
    supports_ood = False
    sample_batch = 100   # images drawn at once when sampling
    eval_batch = 500     # test images per pass of the NLL

    # ---- training
    def training_step(self, x):
        """One Adam step on -log p(x), nats per image."""
        self.model.train()
        nll = -self.model.log_prob(x, check=False).mean()
        self.update(nll)
        return {"nll": nll.item()}

    # ---- data and samples
    def test_images(self):
        """The eval_n first test images, binarised once with the seed 1234: (n, 1, 28, 28)
        of 0.0 and 1.0, and their labels (n,)."""
        x, y = self.images("test")
        n = self.config["eval_n"]
        return data.binarize(x[:n], generator(1234)), y[:n]

    def _draw(self, n, x=None, observed=None):
        self.model.eval()
        parts = []
        for i in tqdm(range(0, n, self.sample_batch), desc="sampling", leave=False):
            m = min(self.sample_batch, n - i)
            xi = None if x is None else tensor(x[i:i + m], device=self.device)
            parts.append(self.model.sample(m, x=xi, observed=observed).numpy())
        return np.concatenate(parts)

    @no_grad()
    def sample(self, n):
        """n samples (n, 1, 28, 28) of 0.0 and 1.0, one pixel per pass in raster order."""
        return self._draw(n)

    @no_grad()
    def complete(self, x, rows: int = 14):
        """x (n, 1, 28, 28) with rows >= ``rows`` drawn given the rows above: a draw from
        p(lower part | upper part), exact since the upper rows come first."""
        observed = np.zeros((1, 1, 28, 28), dtype=bool)
        observed[..., :rows, :] = True
        return self._draw(len(x), x=x, observed=observed)

    # ---- evaluation
    @no_grad()
    def evaluate(self):
        """nll_nats (exact) of the eval_n binarised test images with its standard error
        and bits/dim; inpainting of eval_inpaint_n lower halves; fid_lenet of eval_fid_n
        samples."""
        self.model.eval()
        x, labels = self.test_images()
        log_p = []
        b = self.eval_batch
        for i in tqdm(range(0, len(x), b), desc="test log p(x)", leave=False):
            log_p.append(self.model.log_prob(tensor(x[i:i + b], device=self.device)).numpy())
        log_p = np.concatenate(log_p).astype(np.float64)
        nll = -log_p.mean()
        metrics = {"nll_nats": float(nll), "nll_estimator": "exact",
                   "bits_per_dim": float(bits_per_dim(nll, 784)),
                   "data_variant": "dynamic_binarized", "eval_images": len(log_p)}
        if len(log_p) > 1:
            metrics["nll_standard_error"] = float(log_p.std(ddof=1) / math.sqrt(len(log_p)))
        k = min(self.config["eval_inpaint_n"], len(x))
        if k:
            filled = self.complete(x[:k])
            missing = np.zeros((1, 1, 28, 28), dtype=bool)
            missing[..., 14:, :] = True
            # against the binarised digit the model saw: the error counts flipped pixels
            metrics.update(self.inpainting_metrics(filled, x[:k], missing, labels[:k]))
        if self.config.get("eval_fid", True):
            from ..classifier import fid
            samples = self.sample(self.config["eval_fid_n"])
            metrics["fid_lenet"] = fid(samples, self.config["dataset"], device=self.device,
                                       data_root=self.config.get("data_root"))
            metrics["fid_samples"] = int(len(samples))
        return metrics

    @no_grad()
    def save_pictures(self, run_dir):
        """samples.png: 64 samples. completions.png: one row per test digit (8 of
        them): the digit with its lower half hidden (grey), then 4 completions."""
        from ...plot import save_image_grid
        save_image_grid(self.sample(64), os.path.join(run_dir, "samples.png"), nrow=8)
        x = self.test_images()[0][:8]
        hidden = x.copy()
        hidden[..., 14:, :] = 0.5
        filled = [self.complete(x) for _ in range(4)]
        grid = np.stack([hidden] + filled, axis=1).reshape(-1, 1, 28, 28)   # digit-major
        save_image_grid(grid, os.path.join(run_dir, "completions.png"), nrow=5)


COMMON_DEFAULTS = {"batch_size": 64, "lr": 1e-3, "lr_schedule": "cosine", "epochs": 5,
                   "eval_n": 10000, "eval_inpaint_n": 100, "eval_fid": True,
                   "eval_fid_n": 500}
COMMON_HELP = {"eval_n": "test images in the NLL",
               "eval_inpaint_n": "test digits whose lower half is completed (0: none)",
               "eval_fid": "measure FID and inpainting class accuracy with LeNet",
               "eval_fid_n": "samples FID uses (a PixelCNN's sample is 784 passes of "
                             "the network)"}


class PixelCNNExperiment(AutoregressiveExperiment):
    """The PixelCNN of masked convolutions on binarised images."""

    name = "pixelcnn"
    defaults = {"channels": 64, "num_blocks": 8, "first_kernel_size": 7, "kernel_size": 3,
                "hidden_output": 64, **COMMON_DEFAULTS}
    rules = {"num_blocks": non_negative, "eval_inpaint_n": non_negative}
    help = {"channels": "2h, the residual stack's feature maps",
            "num_blocks": "residual blocks of masked convolutions",
            "first_kernel_size": "the type-A first layer's kernel (odd)",
            "kernel_size": "the blocks' masked kernels (odd)",
            "hidden_output": "channels of the 1 x 1 output layers", **COMMON_HELP}

    def build_model(self):
        c = self.config
        return PixelCNN(28, channels=c["channels"], num_blocks=c["num_blocks"],
                        first_kernel_size=c["first_kernel_size"],
                        kernel_size=c["kernel_size"], hidden_output=c["hidden_output"])


class GatedPixelCNNExperiment(AutoregressiveExperiment):
    """The gated PixelCNN (vertical and horizontal stacks) on binarised images."""

    name = "gated-pixelcnn"
    defaults = {"channels": 32, "num_layers": 12, "kernel_size": 3, "hidden_output": 64,
                **COMMON_DEFAULTS}
    rules = {"eval_inpaint_n": non_negative}
    help = {"channels": "p, the features of each stack", "num_layers": "gated layers",
            "kernel_size": "k (odd): vertical kernels (k//2 + 1) x k, horizontal "
                           "1 x (k//2 + 1)",
            "hidden_output": "channels of the 1 x 1 output layers", **COMMON_HELP}

    def build_model(self):
        c = self.config
        return GatedPixelCNN(28, channels=c["channels"], num_layers=c["num_layers"],
                             kernel_size=c["kernel_size"], hidden_output=c["hidden_output"])
