"""Training a VAE, or with k > 1 an IWAE, on dynamically binarised MNIST, as Burda,
Grosse & Salakhutdinov (2016) did; the model is ``tinygen.models.vae.vae.VAE``.

Defaults and where they come from:
    latent_dim 50, hidden 200, activation tanh   Burda et al.'s one-layer architecture
                                                 (784-200-200-50), Glorot-initialised
    batch_size 100, lr 1e-3 (Adam), cosine decay to lr/100, epochs 10
                                                 tinygen's choice: Burda et al. used batch
                                                 20 and 3280 epochs (3^i epochs at the
                                                 i-th rate, i = 0..7)
    beta 1, k 1                                  the VAE's ELBO; k > 1 trains L_k (beta
                                                 then plays no part: the IWAE bound has
                                                 no separate KL term)
    eval_k 5000                                  the k of Burda et al.'s test NLL estimate
    data_variant dynamic_binarized               a fresh x ~ Bernoulli(grey level) for
                                                 every training batch; the test set
                                                 binarised once with a fixed seed

Evaluation (``tinygen eval``): nll_nats, the test NLL estimated by the IWAE bound with
k = eval_k, elbo_nats, bits_per_dim, and fid_lenet of 10,000 samples.
"""
from __future__ import annotations

import os

import numpy as np
from tqdm import tqdm

from ... import data, no_grad, tensor
from ...metrics import bits_per_dim
from ...models.vae.common import ACTIVATIONS
from ...models.vae.vae import VAE
from ...random import generator
from ..base import Experiment, non_negative, one_of


def binarize_batch(batch, g):
    """Dynamic binarisation, a DataLoader transform: a fresh x ~ Bernoulli(grey level)
    for the images of every batch (labels, if any, pass through)."""
    x, *rest = batch if isinstance(batch, tuple) else (batch,)
    x = data.binarize(x, g)
    return (x, *rest) if rest else x


class VAEExperiment(Experiment):
    """Train a VAE (or, with k > 1, an IWAE) on dynamically binarised MNIST."""

    name = "vae"
    defaults = {"latent_dim": 50, "hidden": 200, "network": "mlp", "activation": "tanh",
                "likelihood": "bernoulli", "beta": 1.0, "k": 1, "batch_size": 100,
                "lr": 1e-3, "lr_schedule": "cosine", "epochs": 10, "eval_k": 5000,
                "eval_n": 10000, "eval_fid": True}
    rules = {"network": one_of("mlp", "conv"), "activation": one_of(*ACTIVATIONS),
             "likelihood": one_of("bernoulli", "gaussian"), "beta": non_negative}

    @property
    def blas_threads(self):
        """One BLAS thread for the MLP's small products (see Experiment.blas_threads)."""
        return 1 if self.config.get("network", "mlp") == "mlp" else None

    def build_model(self):
        c = self.config
        return VAE(c["latent_dim"], c["hidden"], c["likelihood"], c["network"], c["activation"])

    @property
    def binary(self) -> bool:
        """Whether the pixels are binarised: a Bernoulli likelihood (the only one of the
        two-layer and the conditional VAE)."""
        return self.config.get("likelihood", "bernoulli") == "bernoulli"

    @property
    def transform(self):
        return binarize_batch if self.binary else None

    def train_loader(self):
        if self.binary and hasattr(self.model, "init_output_bias"):
            # p(x|z) starts at the pixels' marginals (a resumed run then loads its own)
            self.model.init_output_bias(self.images("train")[0].mean(axis=0))
        return super().train_loader()

    def training_step(self, x):
        """One Adam step on -ELBO (k = 1, beta weighting the KL) or on -L_k (k > 1)."""
        self.model.train()
        k, beta = self.config["k"], self.config["beta"]
        lr = self.optimizer.param_groups[0]["lr"]
        if k == 1:
            recon, kl = self.model.elbo(x)
            loss = -(recon - beta * kl).mean()
            scalars = {"loss": loss.item(), "recon": -recon.mean().item(),
                       "kl": kl.mean().item(), "lr": lr}
        else:
            loss = -self.model.iwae_bound(x, k, chunk=k).mean()
            scalars = {"loss": loss.item(), "lr": lr}
        self.update(loss)
        return scalars

    def sample(self, n):
        self.model.eval()
        return self.model.sample(n).numpy()

    def test_batches(self, batch_size=100):
        """The first eval_n test images, binarised once with a fixed seed (a likelihood
        that does not change from one evaluation to the next), as (x, labels) batches."""
        x, labels = self.images("test")
        n = self.config.get("eval_n", len(x))
        x, labels = x[:n], labels[:n]
        if self.binary:
            x = data.binarize(x, generator(1234))
        for i in range(0, len(x), batch_size):
            yield tensor(x[i:i + batch_size], device=self.device), labels[i:i + batch_size]

    @no_grad()
    def evaluate(self):
        """The test NLL estimated with the IWAE bound at k = eval_k (5000 as in Burda et
        al.), the test ELBO, bits/dim, and fid_lenet of 10,000 samples (eval_fid)."""
        self.model.eval()
        k, n = self.config.get("eval_k", 5000), self.config.get("eval_n", 10000)
        batch_size = max(1, 20000 // max(k, 1))
        batches = tqdm(self.test_batches(batch_size=batch_size), total=-(-n // batch_size),
                       desc=f"test NLL, IWAE k={k}", unit="batch", leave=False,
                       disable=n * k < 10 ** 6)
        elbos, bounds = [], []
        for x, _ in batches:
            recon, kl = self.model.elbo(x)
            elbos.append((recon - kl).numpy())
            bounds.append(self.model.iwae_bound(x, k).numpy())
        nll = -float(np.concatenate(bounds).mean())
        metrics = {"nll_nats": nll, "nll_estimator": f"iwae_k{k}",
                   "bits_per_dim": float(bits_per_dim(nll, 784)),
                   "elbo_nats": float(np.concatenate(elbos).mean()),
                   "data_variant": "dynamic_binarized" if self.binary else "continuous",
                   "eval_images": int(sum(len(b) for b in bounds))}
        if self.config.get("eval_fid", True):
            from ..classifier import fid
            samples = np.concatenate([self.sample(1000) for _ in range(10)])
            metrics["fid_lenet"] = fid(samples, self.config["dataset"], device=self.device,
                                       data_root=self.config.get("data_root"))
        return metrics

    @no_grad()
    def save_pictures(self, run_dir):
        """reconstructions.png (inputs beside their reconstructions), samples.png,
        interpolations.png, and manifold.png when the latent space is 2-D."""
        from ...plot import save_image_grid
        self.model.eval()
        x, _ = next(self.test_batches(batch_size=32))
        mu, _ = self.model.encode(x)
        recon = self.model.mean(self.model.decode(mu)).numpy()
        pairs = np.stack([x.numpy(), recon], axis=1).reshape(-1, 1, 28, 28)
        save_image_grid(pairs, os.path.join(run_dir, "reconstructions.png"), nrow=16)
        save_image_grid(self.sample(64), os.path.join(run_dir, "samples.png"), nrow=8)
        # interpolations: decode (1 - t) mu_a + t mu_b between pairs of test digits
        t = tensor(np.linspace(0, 1, 10, dtype=np.float32).reshape(10, 1, 1), device=self.device)
        path = (1 - t) * mu[0:8:2].unsqueeze(0) + t * mu[1:8:2].unsqueeze(0)   # (10, 4, d)
        frames = self.model.mean(self.model.decode(path)).numpy()              # (10, 4, 1, 28, 28)
        save_image_grid(frames.transpose(1, 0, 2, 3, 4).reshape(-1, 1, 28, 28),
                        os.path.join(run_dir, "interpolations.png"), nrow=10)
        if self.model.latent_dim == 2:  # the learned manifold: decode a grid of z
            from statistics import NormalDist
            q = [NormalDist().inv_cdf(p) for p in np.linspace(0.05, 0.95, 15)]
            z = np.array([[a, b] for b in q[::-1] for a in q], np.float32)
            grid = self.model.mean(self.model.decode(tensor(z, device=self.device)))
            save_image_grid(grid.numpy(), os.path.join(run_dir, "manifold.png"), nrow=15)
