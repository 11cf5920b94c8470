"""Latent diffusion (Rombach, Blattmann, Lorenz, Esser & Ommer 2022, "High-Resolution Image
Synthesis with Latent Diffusion Models"): a DDPM in the latent space of a trained
autoencoder of the VAE family, decoded to images.

The first stage is a run of ``tinygen train vae`` (``--autoencoder-run``): its encoder
maps each training image (binarised once, for the default VAE of binary pixels) to the
mean mu(x) of q(z | x), a vector of d numbers instead of 784 pixels. The second stage is
the DDPM of ``tinygen.models.diffusion`` on those vectors, with the MLP eps_theta of the
2-D toy sets. Before diffusion the latents are scaled to unit variance per coordinate
(Rombach et al. rescale by one factor, section 4.3.2; per coordinate suits a small d), so
that the schedule's noise levels mean the same as for data in [-1, 1]. Samples: z_0 by
the reverse process, unscaled, decoded to the decoder's mean image.

Cheaper on the CPU than pixel diffusion: eps_theta sees d numbers, not a 28x28 image, so
a step costs a small MLP instead of a U-Net. The price is the first stage's blur: samples
are never sharper than the autoencoder's reconstructions.

Defaults and where they come from:
    hidden 512, depth 3, batch 256, Adam(1e-3) with cosine decay, 85 epochs of the
    60,000 latents (about 20,000 steps), EMA 0.999, T 1000 linear, ancestral sampling
                                    tinygen's choice (an MLP on vectors, as for the toy sets)
Evaluation: fid_lenet of eval_n decoded samples and the sampling time per 1,000.
"""
from __future__ import annotations

import os
import time

import numpy as np
from tqdm import tqdm

from ... import no_grad, tensor
from ...models.diffusion import GaussianDiffusion, MLPDenoiser, NoiseSchedule
from ...models.diffusion.ddim import ddim_sample
from ..base import ConfigError, Experiment, fraction, one_of, run_folder

SAMPLERS = ("ancestral", "ddim")


AUTOENCODER_RUN = run_folder("a trained VAE (tinygen train vae)")


class LatentDiffusionExperiment(Experiment):
    """Train a DDPM on the latent means of a trained VAE; sample and decode."""

    name = "ldm"
    defaults = {"autoencoder_run": "", "timesteps": 1000, "hidden": 512, "depth": 3,
                "batch_size": 256, "lr": 1e-3, "lr_schedule": "cosine", "ema_decay": 0.999,
                "epochs": 85, "sampler": "ancestral", "sample_steps": 50,
                "eval_n": 10000, "eval_fid": True}
    rules = {"autoencoder_run": AUTOENCODER_RUN, "sampler": one_of(*SAMPLERS),
             "ema_decay": fraction}
    help = {"autoencoder_run": "run folder of the trained VAE whose latent space to use",
            "timesteps": "T", "hidden": "MLP width", "depth": "MLP hidden layers",
            "ema_decay": "EMA of the weights for sampling (0: none)",
            "sampler": "ancestral (T steps) or ddim (sample_steps steps)",
            "sample_steps": "DDIM's S", "eval_n": "samples tinygen eval measures",
            "eval_fid": "measure FID with the LeNet classifier"}
    blas_threads = 1   # an MLP's small products (see Experiment.blas_threads)

    def __init__(self, config):
        from .. import get_experiment
        from ...train import load_experiment
        run = config.get("autoencoder_run", "")
        problem = AUTOENCODER_RUN(run)
        if problem:
            raise ConfigError(f"--autoencoder-run {run!r}: {problem}")
        self.autoencoder = load_experiment(run, get_experiment, config.get("device", "cpu"))
        vae = self.autoencoder.model
        if self.autoencoder.name != "vae":
            raise ConfigError(f"--autoencoder-run {run}: give a run of tinygen train vae (it "
                              f"holds {self.autoencoder.name})")
        if self.autoencoder.config["dataset"] != config.get("dataset"):
            raise ConfigError(f"--autoencoder-run {run} was trained on "
                              f"{self.autoencoder.config['dataset']}, not {config.get('dataset')}")
        self.latent_dim = int(vae.latent_dim)
        super().__init__(config)
        self.diffusion = GaussianDiffusion(NoiseSchedule.linear(self.config["timesteps"]))

    def build_model(self):
        return MLPDenoiser(self.latent_dim, self.config["hidden"], self.config["depth"])

    # ---- the first stage
    @no_grad()
    def encode(self, images):
        """mu(x) of the VAE's q(z | x) for images (N, 1, 28, 28) in [0, 1]: (N, d). A VAE
        of binarised digits (Bernoulli pixels) is given binarised digits, one fixed
        binarisation each (seeded), not the grey levels it never saw in training."""
        vae = self.autoencoder.model
        vae.eval()
        if getattr(self.autoencoder, "binary", False):
            from ... import data
            from ...random import generator
            images = data.binarize(images, generator(1234))
        return np.concatenate([vae.encode(tensor(images[i:i + 1000], device=self.device))[0]
                               .numpy() for i in range(0, len(images), 1000)])

    @no_grad()
    def decode(self, z):
        """The decoder's mean image for latents z (N, d): (N, 1, 28, 28) in [0, 1]."""
        vae = self.autoencoder.model
        vae.eval()
        x = vae.mean(vae.decode(tensor(z.astype(np.float32), device=self.device))).numpy()
        return np.clip(x.reshape(-1, 1, 28, 28), 0, 1)

    def latents(self):
        """The training images' latent means, scaled to zero mean and unit variance per
        coordinate (the scale kept in ``self.shift``, ``self.scale``)."""
        if "latents" not in self._splits:
            z = self.encode(self.images("train")[0])
            self.shift, self.scale = z.mean(axis=0), z.std(axis=0) + 1e-8
            self._splits["latents"] = ((z - self.shift) / self.scale).astype(np.float32)
        return self._splits["latents"]

    def train_loader(self):
        from ... import data
        return data.DataLoader(self.latents(), batch_size=self.config["batch_size"],
                               shuffle=True, seed=self.config.get("seed", 0),
                               device=self.device)

    # ---- the second stage: a DDPM on the scaled latents
    def training_step(self, z_0):
        self.model.train()
        loss = self.diffusion.loss_simple(self.model, z_0)
        self.update(loss)
        return {"loss": loss.item()}

    @no_grad()
    def sample_latents(self, n):
        """n latents z_0 (n, d) by the reverse process, unscaled to the VAE's space."""
        import contextlib
        self.latents()                       # the scale, computed once
        self.model.eval()
        c = self.config
        with self.ema.average_parameters() if self.ema is not None else contextlib.nullcontext():
            if c["sampler"] == "ancestral":
                z = self.diffusion.sample(self.model, (n, self.latent_dim), self.device)
            else:
                z = ddim_sample(self.diffusion, self.model, (n, self.latent_dim),
                                c["sample_steps"], 0.0, self.device)
        return z.numpy() * self.scale + self.shift

    def sample(self, n):
        """n decoded samples (n, 1, 28, 28) in [0, 1]."""
        return self.decode(self.sample_latents(n))

    def evaluate(self):
        """fid_lenet of eval_n decoded samples (eval_fid), with the sampling time per
        1,000, and the first stage's own fid_lenet: the decoded latents of eval_n test
        images (the floor this model can reach)."""
        c = self.config
        n = c["eval_n"]
        start = time.perf_counter()
        samples = np.concatenate([self.sample(min(1000, n - i))
                                  for i in tqdm(range(0, n, 1000), desc="sampling",
                                                leave=False)])
        metrics = {"eval_images": n,
                   "sampling_seconds_per_1000": (time.perf_counter() - start) * 1000 / n,
                   "sampler": "ancestral-%d" % c["timesteps"] if c["sampler"] == "ancestral"
                   else f"DDIM-{c['sample_steps']}"}
        if c.get("eval_fid", True):
            from ..classifier import fid
            root = c.get("data_root")
            metrics["fid_lenet"] = fid(samples, c["dataset"], device=self.device,
                                       data_root=root)
            test = self.images("test")[0][:n]
            metrics["autoencoder_fid_lenet"] = fid(self.decode(self.encode(test)),
                                                   c["dataset"], device=self.device,
                                                   data_root=root)
        return metrics

    @no_grad()
    def save_pictures(self, run_dir):
        """samples.png (64 decoded samples) and reconstructions.png (test digits beside
        their decoded latent means: the first stage's limit)."""
        from ...plot import save_image_grid
        save_image_grid(self.sample(64), os.path.join(run_dir, "samples.png"), nrow=8)
        x = self.images("test")[0][:32]
        pairs = np.stack([x, self.decode(self.encode(x))], axis=1).reshape(-1, 1, 28, 28)
        save_image_grid(pairs, os.path.join(run_dir, "reconstructions.png"), nrow=16)
