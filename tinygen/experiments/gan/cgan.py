"""Training a conditional GAN (Mirza & Osindero 2014) on MNIST or Fashion-MNIST with its
labels; the networks are ``tinygen.models.gan.cgan`` (DCGAN's, reading the label).

Defaults: DCGAN's (``dcgan.py``), with conditioning "concat" (the one-hot label appended
to z in G and given to D as extra input planes: Mirza & Osindero fed y into both
players' MLPs; planes are the usual convolutional form of that) or "projection" (Miyato
& Koyama 2018).
G's samples are drawn for labels uniform over the 10 classes.

Evaluation: class_accuracy, how often the cached LeNet sees the requested digit in 10,000
class-conditional samples (chance 0.1), and fid_lenet of the same samples.
"""
from __future__ import annotations

import os

import numpy as np

from ... import no_grad
from ...models.gan.cgan import CONDITIONINGS, ConditionalDiscriminator, ConditionalGenerator
from ..base import one_of
from .dcgan import DCGANExperiment


class ConditionalGANExperiment(DCGANExperiment):
    """Train a conditional DCGAN: G(z | y) draws the digit y."""

    name = "cgan"
    defaults = {**DCGANExperiment.defaults, "conditioning": "concat"}
    rules = {**DCGANExperiment.rules, "conditioning": one_of(*CONDITIONINGS)}
    conditional = True
    with_labels = True
    num_classes = 10

    def build_players(self):
        c = self.config
        return (ConditionalGenerator(c["latent_dim"], 10, c["channels"]),
                ConditionalDiscriminator(10, c["channels"], c["conditioning"]))

    @no_grad()
    def evaluate(self):
        """fid_lenet and class_accuracy of eval_n samples, the classes in turn (nothing
        without the classifier: eval_fid off)."""
        n = self.config.get("eval_n", 10000)
        metrics = {}
        if self.config.get("eval_fid", True):
            metrics["eval_images"] = n
            from ..classifier import class_accuracy, fid, trained_classifier
            root = self.config.get("data_root")
            clf = trained_classifier(self.config["dataset"], self.device, root)
            y = np.arange(n) % 10
            samples = np.concatenate([self.sample(len(y[i:i + 1000]), y[i:i + 1000])
                                      for i in range(0, n, 1000)])
            metrics["class_accuracy"] = class_accuracy(samples, y, classifier=clf)
            metrics["fid_lenet"] = fid(samples, self.config["dataset"], classifier=clf,
                                       device=self.device, data_root=root)
        return metrics

    @no_grad()
    def save_pictures(self, run_dir):
        """As the DCGAN's, and class_rows.png: row c holds class c, column j the same z_j."""
        super().save_pictures(run_dir)
        from ...plot import save_image_grid
        z, _ = self.fixed_noise(10)
        rows = [(self._sample_raw(z, np.full(10, c)) + 1) / 2 for c in range(10)]
        save_image_grid(np.concatenate(rows), os.path.join(run_dir, "class_rows.png"),
                        nrow=10, labels=[str(c) for c in range(10)])
