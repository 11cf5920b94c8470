"""Training the conditional VAE (Sohn, Lee & Yan 2015) on dynamically binarised MNIST
with its labels; the model is ``tinygen.models.vae.cvae.ConditionalVAE``.

Defaults: latent_dim 20, two hidden layers of 400 ReLU units, batch 100, Adam 1e-3 with
a cosine decay (tinygen's choices for MNIST). Evaluation: the test ELBO, and
class_accuracy, how often the cached LeNet classifier sees the requested digit in 1000
class-conditional samples (chance: 0.1).
"""
from __future__ import annotations

import os

import numpy as np

from ... import no_grad
from ...models.vae.cvae import ConditionalVAE
from .vae import VAEExperiment


class ConditionalVAEExperiment(VAEExperiment):
    """Train a conditional VAE on dynamically binarised MNIST with its labels."""

    name = "cvae"
    defaults = {"latent_dim": 20, "hidden": 400, "activation": "relu", "beta": 1.0,
                "batch_size": 100, "lr": 1e-3, "lr_schedule": "cosine", "epochs": 10,
                "eval_n": 10000, "eval_fid": True}
    with_labels = True

    def build_model(self):
        c = self.config
        return ConditionalVAE(c["latent_dim"], c["hidden"], activation=c["activation"])

    def training_step(self, batch):
        """One Adam step on -(log p(x|z,y) - beta KL)."""
        x, y = batch
        self.model.train()
        beta = self.config["beta"]
        recon, kl = self.model.elbo(x, y)
        loss = -(recon - beta * kl).mean()
        self.update(loss)
        return {"loss": loss.item(), "recon": -recon.mean().item(), "kl": kl.mean().item()}

    num_classes = 10

    def sample(self, n, y=None):
        """n samples of the classes y (n,), by default 0, 1, ..., 9, 0, ... in turn."""
        self.model.eval()
        y = np.arange(n) % self.model.num_classes if y is None else np.asarray(y)
        return self.model.sample(y).numpy()

    @no_grad()
    def evaluate(self):
        """elbo_nats on the test set, and class_accuracy of 1000 class-conditional
        samples (eval_fid False skips the classifier, as for the VAE)."""
        self.model.eval()
        elbos = []
        for x, y in self.test_batches(batch_size=500):
            recon, kl = self.model.elbo(x, y)
            elbos.append((recon - kl).numpy())
        metrics = {"elbo_nats": float(np.concatenate(elbos).mean()),
                   "data_variant": "dynamic_binarized",
                   "eval_images": int(sum(len(e) for e in elbos))}
        if self.config.get("eval_fid", True):
            from ..classifier import class_accuracy
            y = np.arange(1000) % 10
            metrics["class_accuracy"] = class_accuracy(
                self.model.sample(y).numpy(), y, self.config["dataset"], device=self.device,
                data_root=self.config.get("data_root"))
        return metrics

    @no_grad()
    def save_pictures(self, run_dir):
        """class_rows.png: row c holds class c, column j the same z_j."""
        from ...plot import save_image_grid
        self.model.eval()
        z = self.model.prior().sample((10,))
        rows = [self.model.decode(z, np.full(10, c)).sigmoid().numpy() for c in range(10)]
        save_image_grid(np.concatenate(rows).reshape(-1, 1, 28, 28),
                        os.path.join(run_dir, "class_rows.png"), nrow=10,
                        labels=[str(c) for c in range(10)])
