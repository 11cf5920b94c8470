"""Training a class-conditional DDPM with classifier-free guidance (Ho & Salimans 2022) on
MNIST or Fashion-MNIST; the math is ``tinygen.models.diffusion.guidance``.

One U-Net eps_theta(x_t, t, c) learns the conditional and the unconditional noise: each
training label is replaced by the "no label" token with probability p_uncond. Samples
mix the two predictions, eps^ = (1 + omega) eps_theta(x_t, t, c) - omega eps_theta(x_t, t),
at every DDIM step (two network evaluations per step).

Defaults: those of ``ddpm`` (``ddpm.py``), and
    p_uncond 0.1                    Ho & Salimans found 0.1 and 0.2 best (section 4.2)
    guidance (omega) 2.0            for samples; tinygen's choice (the issue's target
                                    of 99% class accuracy is stated at omega = 2)
    eval_guidance_n 1000            samples per omega of the sweep below
    eval_nll_n 0                    no bound: the model is conditional

Evaluation (``tinygen eval``): class_accuracy and fid_lenet of eval_n samples at the
configured omega, the classes in turn, and ``guidance_sweep``: the same two measures
of eval_guidance_n samples at omega = 0, 0.5, 2 and 4 (the trade-off between the two).
"""
from __future__ import annotations

import os

import numpy as np
from tqdm import tqdm

from ... import no_grad
from ...models.diffusion import UNet
from ...models.diffusion.ddim import ddim_sample
from ...models.diffusion.guidance import classifier_free_eps, drop_labels
from ...random import generator
from ..base import fraction, non_negative
from .ddpm import DDPMExperiment, in_chunks

NUM_CLASSES = 10
SWEEP = (0.0, 0.5, 2.0, 4.0)


class ClassifierFreeGuidanceExperiment(DDPMExperiment):
    """Train a conditional DDPM with label dropout; sample with classifier-free guidance."""

    name = "ddpm-cfg"
    defaults = {**DDPMExperiment.defaults, "p_uncond": 0.1, "guidance": 2.0,
                "eval_guidance_n": 1000, "eval_nll_n": 0, "eval_ode_nll_n": 0,
                "eval_inpaint_n": 0,
                "eval_ddim_sweep_n": 0}
    toy_defaults = {}
    rules = {**DDPMExperiment.rules, "p_uncond": fraction, "guidance": non_negative,
             "eval_guidance_n": non_negative}
    help = {**DDPMExperiment.help,
            "p_uncond": "probability of training on the 'no label' token",
            "guidance": "omega of classifier-free guidance for samples (0: the "
                        "conditional model)",
            "eval_guidance_n": "samples per omega in the evaluation's sweep"}
    with_labels = True
    num_classes = NUM_CLASSES

    def build_model(self):
        c = self.config
        return UNet(c["channels"], attention=c["attention"], num_classes=NUM_CLASSES)

    def training_step(self, batch):
        """Algorithm 1 of Ho & Salimans: L_simple with each label dropped to "no label"
        with probability p_uncond."""
        x_0, y = batch
        self.model.train()
        y = drop_labels(y, self.config["p_uncond"], NUM_CLASSES, generator(None))
        loss = self.diffusion.loss_simple(self.model, x_0, y=y)
        self.update(loss)
        return {"loss": loss.item()}

    @no_grad()
    def sample_raw(self, n, sampler=None, steps=None, x_T=None, progress=None, y=None,
                   omega=None):
        """n samples in [-1, 1] of the classes y (default 0..9 in turn), guided by omega
        (default: the configured ``guidance``)."""
        c = self.config
        y = np.arange(n) % NUM_CLASSES if y is None else np.asarray(y)
        omega = c["guidance"] if omega is None else omega
        with self._ema_weights():
            eps = classifier_free_eps(self.eps_model(), omega)
            if (sampler or c["sampler"]) == "ancestral":
                x = self.diffusion.sample(eps, (n, 1, 28, 28), self.device, x_T=x_T,
                                          clip_x0=(-1.0, 1.0), progress=progress, y=y)
            else:
                x = ddim_sample(self.diffusion, eps, (n, 1, 28, 28), steps or c["sample_steps"],
                                c["eta"], self.device, x_T=x_T, clip_x0=(-1.0, 1.0),
                                progress=progress, y=y)
        return x.numpy()

    def sample(self, n, y=None, omega=None):
        """n images (n, 1, 28, 28) in [0, 1] of the classes y (default 0..9 in turn)."""
        y = np.arange(n) % NUM_CLASSES if y is None else np.asarray(y)
        x = in_chunks(lambda m, labels: self.sample_raw(m, y=labels, omega=omega), n, y)
        return np.clip((x + 1) / 2, 0, 1)

    def _measure(self, n, omega, clf):
        from ..classifier import class_accuracy, fid
        y = np.arange(n) % NUM_CLASSES
        parts = []
        for i in tqdm(range(0, n, 500), desc=f"sampling at omega {omega}", leave=False):
            parts.append(self.sample(len(y[i:i + 500]), y[i:i + 500], omega))
        samples = np.concatenate(parts)
        root = self.config.get("data_root")
        return {"class_accuracy": class_accuracy(samples, y, classifier=clf),
                "fid_lenet": fid(samples, self.config["dataset"], classifier=clf,
                                 device=self.device, data_root=root)}

    @no_grad()
    def evaluate(self):
        """class_accuracy and fid_lenet at the configured omega (eval_n samples) and the
        sweep over omega (eval_guidance_n samples each); nothing with eval_fid off."""
        c = self.config
        if not c.get("eval_fid", True):
            return {}
        from ..classifier import trained_classifier
        clf = trained_classifier(c["dataset"], self.device, c.get("data_root"))
        metrics = {**self._measure(c["eval_n"], c["guidance"], clf),
                   "eval_images": c["eval_n"], "guidance": c["guidance"],
                   "sampler": f"DDIM-{c['sample_steps']}" if c["sampler"] == "ddim"
                   else f"ancestral-{c['timesteps']}"}
        if c["eval_guidance_n"]:
            metrics["guidance_sweep"] = {str(w): self._measure(c["eval_guidance_n"], w, clf)
                                         for w in SWEEP}
        return metrics

    @no_grad()
    def save_pictures(self, run_dir):
        """As the DDPM's, and guidance.png: row c draws class c, column j uses omega_j,
        the same x_T along each row (DDIM is deterministic: only omega changes)."""
        super().save_pictures(run_dir)
        from ...plot import save_image_grid
        omegas = (0.0, 0.5, 1.0, 2.0, 4.0, 8.0)
        x_T = generator(11).standard_normal((NUM_CLASSES, 1, 28, 28)).astype(np.float32)
        from ... import tensor
        columns = [self.sample_raw(NUM_CLASSES, x_T=tensor(x_T, device=self.device),
                                   y=np.arange(NUM_CLASSES), omega=w) for w in omegas]
        grid = np.stack(columns, axis=1).reshape(-1, 1, 28, 28)     # row = class
        save_image_grid(np.clip((grid + 1) / 2, 0, 1), os.path.join(run_dir, "guidance.png"),
                        nrow=len(omegas), labels=[str(k) for k in range(NUM_CLASSES)])
