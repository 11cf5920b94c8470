"""Training MADE (Germain et al. 2015) as a density model of binarised MNIST or
Fashion-MNIST; the model is ``tinygen.models.flows.made.MADE``.

MADE is an autoregressive model, p(x) = prod_d p(x_d | x_{<d}), each conditional a
Bernoulli whose logit one masked MLP computes for every d at once, so the exact
log-likelihood costs one pass. Training minimises its negative on dynamically binarised
images (a fresh x ~ Bernoulli(grey level) every batch). With num_masks > 1 the network is
trained connectivity-agnostically: each step uses the next of num_masks mask sets
(orderings and hidden degrees), and at test time the model is the ensemble
p(x) = 1/K sum_k p_k(x), its probabilities averaged (section 4.3 of the paper).

Defaults and where they come from:
    hidden 500, one hidden layer, one mask set, natural order
                                       Germain et al.'s smallest MNIST model (their
                                       Table 6: 88.40 nats with 1 mask; 86.64 with 32)
    batch 100, Adam(1e-3) with a cosine decay, epochs 20
                                       tinygen's choice (the paper: Adagrad, early
                                       stopping)
    eval_n 10000                       the whole test set, binarised once (seed 1234)

Evaluation (``tinygen eval``): nll_nats (exact; the mask ensemble with num_masks > 1),
bits_per_dim, fid_lenet of eval_fid_n samples (784 passes for each batch of samples).
"""
from __future__ import annotations

import math
import os

import numpy as np
from tqdm import tqdm

from ... import backend, data, no_grad, tensor
from ...metrics import bits_per_dim
from ...models.flows.made import MADE, ORDERINGS
from ...random import generator
from ..base import Experiment, one_of
from ..vae.vae import binarize_batch


class MADEExperiment(Experiment):
    """Train MADE on dynamically binarised images; evaluate its exact test NLL."""

    name = "made"
    defaults = {"hidden": 500, "num_layers": 1, "num_masks": 1, "ordering": "natural",
                "batch_size": 100, "lr": 1e-3, "lr_schedule": "cosine", "epochs": 20,
                "eval_n": 10000, "eval_fid": True, "eval_fid_n": 1000}
    rules = {"ordering": one_of(*ORDERINGS)}
    help = {"hidden": "units per hidden layer", "num_layers": "hidden layers",
            "num_masks": "mask sets cycled through in training and averaged at test time",
            "ordering": "natural or random (per mask set)",
            "eval_n": "test images in the NLL", "eval_fid": "measure FID with LeNet",
            "eval_fid_n": "samples FID uses"}
    transform = staticmethod(binarize_batch)
    blas_threads = 1   # small products (Experiment.blas_threads)
    supports_ood = False

    def build_model(self):
        c = self.config
        return MADE(784, (c["hidden"],) * c["num_layers"], ordering=c["ordering"],
                    num_masks=c["num_masks"], seed=c["seed"])

    def train_loader(self):
        # the output biases start at the pixels' log-odds: the first steps then fit
        # structure, not the marginals (a resumed run loads its own)
        p = self.images("train")[0].reshape(-1, 784).mean(axis=0).clip(1e-3, 1 - 1e-3)
        self.model.layers[-1].bias.data[...] = backend.to_device(
            np.log(p / (1 - p)).astype(np.float32), self.device)
        return super().train_loader()

    def training_step(self, x):
        """One Adam step on -log p(x) (nats per image) under the current mask set; then
        the next mask set."""
        self.model.train()
        nll = -self.model.log_prob(x.reshape(x.shape[0], 784)).mean()
        self.update(nll)
        if self.model.num_masks > 1:
            self.model.update_masks()
        return {"nll": nll.item()}

    def test_images(self):
        x = self.images("test")[0][:self.config["eval_n"]].reshape(-1, 784)
        return data.binarize(x, generator(1234))

    @no_grad()
    def sample(self, n):
        """n samples (n, 1, 28, 28) of 0.0 and 1.0 (mask set 0), 500 at a time."""
        self.model.eval()
        self.model.set_mask_index(0)
        parts = [self.model.sample(min(500, n - i)).numpy() for i in range(0, n, 500)]
        return np.concatenate(parts).reshape(n, 1, 28, 28)

    @no_grad()
    def evaluate(self):
        """The exact test NLL in nats (and bits/dim) of the eval_n binarised test images,
        through the ensemble of all mask sets; fid_lenet of eval_fid_n samples."""
        self.model.eval()
        x = self.test_images()
        log_p = []
        for i in tqdm(range(0, len(x), 500), desc="test log p(x)", leave=False):
            log_p.append(self.model.log_prob_ensemble(tensor(x[i:i + 500], device=self.device)).numpy())
        log_p = np.concatenate(log_p).astype(np.float64)
        nll = -log_p.mean()
        metrics = {"nll_nats": float(nll), "nll_estimator": "exact" if self.model.num_masks == 1
                   else f"exact_ensemble_{self.model.num_masks}_masks",
                   "nll_standard_error": float(log_p.std(ddof=1) / math.sqrt(len(log_p))),
                   "bits_per_dim": float(bits_per_dim(nll, 784)),
                   "data_variant": "dynamic_binarized", "eval_images": len(log_p)}
        if self.config.get("eval_fid", True):
            from ..classifier import fid
            samples = self.sample(self.config["eval_fid_n"])
            metrics["fid_lenet"] = fid(samples, self.config["dataset"], device=self.device,
                                       data_root=self.config.get("data_root"))
            metrics["fid_samples"] = int(len(samples))
        return metrics

    @no_grad()
    def save_pictures(self, run_dir):
        """samples.png: 64 samples; conditionals.png: for 8 test digits, the digit and
        p(x_d = 1 | x_{<d}) of every pixel (what the model predicts each pixel to be from
        the pixels before it)."""
        from ...plot import save_image_grid
        save_image_grid(self.sample(64), os.path.join(run_dir, "samples.png"), nrow=8)
        x = self.test_images()[:8]
        self.model.set_mask_index(0)
        p = self.model(tensor(x, device=self.device)).sigmoid().numpy()
        pairs = np.stack([x, p], axis=1).reshape(-1, 1, 28, 28)
        save_image_grid(pairs, os.path.join(run_dir, "conditionals.png"), nrow=8)
