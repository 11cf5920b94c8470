"""Classifier guidance (Dhariwal & Nichol 2021) for a trained unconditional DDPM: train a
classifier p_phi(c | x_t, t) on noisy images, then sample the DDPM with each step tilted
by its gradient; the math is ``tinygen.models.diffusion.guidance``.

The DDPM comes from a run of ``tinygen train ddpm`` (``--ddpm-run``): this recipe trains
only the classifier, on x_t = sqrt(alpha_bar_t) x_0 + sqrt(1 - alpha_bar_t) eps with t
uniform over the DDPM's own schedule, by cross-entropy. Samples are DDIM's with the
guided noise eps' = eps_theta - s sqrt(1 - alpha_bar_t) grad log p_phi(c | x_t) (their
Algorithm 2).

Defaults and where they come from:
    classifier width 16, time embedding 64       tinygen's choice (70k parameters: the
                                                 U-Net's downsampling half, thinner)
    Adam(1e-3), cosine decay, batch 128, epochs 3
                                                 tinygen's choice
    scale 3.0                                    tinygen's choice (Dhariwal & Nichol used
                                                 1 to 10 on ImageNet; s = 1 is p(x | c)
                                                 in the small-step limit)
    sample_steps 50                              as the DDPM's DDIM sampling

Evaluation: class_accuracy and fid_lenet of eval_n guided samples (the classes in turn),
and the classifier's own accuracy on 2,000 noisy test images at t = 1, T/4, T/2 and 3T/4.
"""
from __future__ import annotations

import os

import numpy as np

from ... import no_grad, randn, tensor
from ...models.diffusion.ddim import ddim_sample
from ...models.diffusion.guidance import classifier_guided_eps
from ...models.diffusion.unet import NoisyClassifier
from ...nn import functional as F
from ...random import randint
from ..base import ConfigError, Experiment, run_folder
from .ddpm import in_chunks

NUM_CLASSES = 10


class ClassifierGuidanceExperiment(Experiment):
    """Train a noisy-image classifier for a DDPM run; sample that DDPM guided by it."""

    name = "ddpm-cg"
    defaults = {"ddpm_run": "", "channels": 16, "time_dim": 64, "batch_size": 128,
                "lr": 1e-3, "lr_schedule": "cosine", "epochs": 3, "scale": 3.0,
                "sample_steps": 50, "eval_n": 10000, "eval_fid": True}
    rules = {"ddpm_run": run_folder("a trained unconditional DDPM (tinygen train ddpm)"),
             "scale": lambda v: None if v >= 0 else
             "must be 0 or more"}
    help = {"ddpm_run": "run folder of the trained unconditional DDPM to guide",
            "channels": "classifier width c (2c at 14x14 and 7x7)",
            "time_dim": "size of the time embedding", "scale": "guidance scale s",
            "sample_steps": "DDIM's S", "eval_n": "samples tinygen eval measures",
            "eval_fid": "measure FID and class accuracy with the LeNet classifier"}
    with_labels = True
    num_classes = NUM_CLASSES

    def __init__(self, config):
        super().__init__(config)
        from .. import get_experiment
        from ...train import load_experiment
        self.ddpm = load_experiment(self.config["ddpm_run"], get_experiment, self.device)
        if getattr(self.ddpm, "num_classes", None) or self.ddpm.toy:
            raise ConfigError(f"--ddpm-run {self.config['ddpm_run']}: give an unconditional "
                              f"ddpm run on images (it holds {self.ddpm.name} on "
                              f"{self.ddpm.config['dataset']})")
        if self.ddpm.config["dataset"] != self.config["dataset"]:
            raise ConfigError(f"--ddpm-run {self.config['ddpm_run']} was trained on "
                              f"{self.ddpm.config['dataset']}, not {self.config['dataset']}")
        if self.config["sample_steps"] > self.ddpm.diffusion.T:
            raise ConfigError(f"--sample-steps {self.config['sample_steps']}: must be at most "
                              f"the DDPM's T = {self.ddpm.diffusion.T}")
        self.diffusion = self.ddpm.diffusion

    def build_model(self):
        return NoisyClassifier(NUM_CLASSES, self.config["channels"], self.config["time_dim"])

    def images(self, split):
        """Images in [-1, 1], the DDPM's range, with their labels."""
        if split not in self._splits:
            x, y = super().images(split)
            self._splits[split] = (2 * x - 1, y)
        return self._splits[split]

    def noisy(self, x_0, t):
        """x_t ~ q(x_t | x_0) under the DDPM's schedule."""
        return self.diffusion.q_sample(x_0, t, randn(*x_0.shape, device=x_0.device))

    def training_step(self, batch):
        """Cross-entropy of p_phi(y | x_t, t) on noisy images, t ~ U{1..T}."""
        x_0, y = batch
        self.model.train()
        t = randint(1, self.diffusion.T + 1, size=(x_0.shape[0],)).numpy()
        logits = self.model(self.noisy(x_0, t), t)
        loss = F.cross_entropy(logits, y)
        self.update(loss)
        accuracy = float((logits.numpy().argmax(axis=1) == y.numpy()).mean())
        return {"loss": loss.item(), "accuracy": accuracy}

    @no_grad()
    def sample(self, n, y=None, scale=None):
        """n images (n, 1, 28, 28) in [0, 1] of the classes y (default 0..9 in turn): DDIM
        on the DDPM's EMA weights with eps' of the classifier (scale s, default the
        configured one)."""
        y = np.arange(n) % NUM_CLASSES if y is None else np.asarray(y)
        scale = self.config["scale"] if scale is None else scale
        self.model.eval()

        def draw(m, labels):
            eps = classifier_guided_eps(self.diffusion, self.ddpm.eps_model(),
                                        self.model.log_prob, labels, scale)
            return ddim_sample(self.diffusion, eps, (m, 1, 28, 28),
                               self.config["sample_steps"], 0.0, self.device,
                               clip_x0=(-1.0, 1.0)).numpy()
        with self.ddpm._ema_weights():
            x = in_chunks(draw, n, y)
        return np.clip((x + 1) / 2, 0, 1)

    @no_grad()
    def noisy_accuracy(self, t, n=2000):
        """The classifier's accuracy on n noisy test images at step t."""
        x, y = self.images("test")
        self.model.eval()
        correct = 0
        for i in range(0, n, 500):
            xb = tensor(x[i:min(n, i + 500)], device=self.device)
            logits = self.model(self.noisy(xb, np.full(xb.shape[0], t)),
                                np.full(xb.shape[0], t))
            correct += int((logits.numpy().argmax(axis=1) == y[i:i + xb.shape[0]]).sum())
        return correct / min(n, len(x))

    def evaluate(self):
        """The classifier's accuracy on min(2000, eval_n) noisy test images at four t
        (``noisy_accuracy``), and class_accuracy
        and fid_lenet of eval_n guided samples (with eval_fid)."""
        T, n_noisy = self.diffusion.T, min(2000, self.config["eval_n"])
        metrics = {"noisy_accuracy": {str(t): self.noisy_accuracy(t, n_noisy)
                                      for t in (1, T // 4, T // 2, 3 * T // 4)}}
        if self.config.get("eval_fid", True):
            from ..classifier import class_accuracy, fid, trained_classifier
            n, root = self.config["eval_n"], self.config.get("data_root")
            clf = trained_classifier(self.config["dataset"], self.device, root)
            y = np.arange(n) % NUM_CLASSES
            samples = np.concatenate([self.sample(len(y[i:i + 500]), y[i:i + 500])
                                      for i in range(0, n, 500)])
            metrics.update(class_accuracy=class_accuracy(samples, y, classifier=clf),
                           fid_lenet=fid(samples, self.config["dataset"], classifier=clf,
                                         device=self.device, data_root=root),
                           eval_images=n, guidance=self.config["scale"],
                           sampler=f"DDIM-{self.config['sample_steps']}")
        return metrics

    @no_grad()
    def save_pictures(self, run_dir):
        """guidance.png: one row per digit, one column per scale s = 0, 1, 3, 10, the same
        x_T along each row."""
        from ...plot import save_image_grid
        from ...random import generator
        scales = (0.0, 1.0, 3.0, 10.0)
        x_T = generator(11).standard_normal((NUM_CLASSES, 1, 28, 28)).astype(np.float32)
        y = np.arange(NUM_CLASSES)
        self.model.eval()
        columns = []
        with self.ddpm._ema_weights():
            for s in scales:
                eps = classifier_guided_eps(self.diffusion, self.ddpm.eps_model(),
                                            self.model.log_prob, y, s)
                x = ddim_sample(self.diffusion, eps, (NUM_CLASSES, 1, 28, 28),
                                self.config["sample_steps"], 0.0, self.device,
                                x_T=tensor(x_T, device=self.device), clip_x0=(-1.0, 1.0))
                columns.append(np.clip((x.numpy() + 1) / 2, 0, 1))
        grid = np.stack(columns, axis=1).reshape(-1, 1, 28, 28)
        save_image_grid(grid, os.path.join(run_dir, "guidance.png"), nrow=len(scales),
                        labels=[str(k) for k in range(NUM_CLASSES)])
