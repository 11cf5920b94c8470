"""Training a DDPM (Ho, Jain & Abbeel 2020) on MNIST, Fashion-MNIST or a 2-D toy set, and
sampling it by ancestral sampling or DDIM; the math is ``tinygen.models.diffusion``.

A training step is Algorithm 1 of Ho et al.: a batch x_0, t ~ U{1..T}, eps ~ N(0, I), one
Adam step on L_simple = ||eps - eps_theta(sqrt(alpha_bar_t) x_0 + sqrt(1 - alpha_bar_t)
eps, t)||^2. Samples come from the EMA of the weights.

Defaults and where they come from:
    timesteps 1000, schedule linear (1e-4 to 0.02), variance beta
                                    Ho et al., section 4 (sigma_t^2 = beta_t)
    U-Net width 32, no attention    tinygen's choice for 28x28 on a CPU (0.54M
                                    parameters; the benchmark's ddpm_unet); Ho et al.
                                    used 35.7M for CIFAR-10
    Adam(2e-4), batch 64            Ho et al. (2e-4 for CIFAR-10; batch 128)
    ema_decay 0.999                 Ho et al. used 0.9999 over 800k steps; 0.999 suits
                                    the ~10^4 steps a CPU affords (warmed up: see
                                    Experiment's EMA)
    epochs 5                        about 4,700 steps, about an hour on 2 cores
    sampler ddim, sample_steps 50, eta 0
                                    Song et al. 2021: DDIM-50 is close to 1000 ancestral
                                    steps at 1/20 of the cost
    eval_nll_n 100                  test images in the variational bound (T network
                                    evaluations each: 1000 images would take hours on
                                    a CPU); the mean's standard error is reported
    toy sets: an MLP eps_theta (width 256, 3 hidden layers), batch 256, Adam(1e-3)
                                    with a cosine decay, 10,000 steps: about two
                                    minutes; ancestral sampling, cheap for an MLP and
                                    sharper than DDIM-50 here (tinygen's choice; on
                                    25gaussians 25 modes and 86% of samples near one,
                                    79% with DDIM-50)

Evaluation (``tinygen eval``): images: fid_lenet of eval_n samples from the sampler,
the variational bound on the NLL of eval_nll_n 8-bit test images in nats and bits/dim,
the probability-flow ODE's NLL of eval_ode_nll_n dequantised test images,
and the lower halves of eval_inpaint_n test digits inpainted (MSE on the missing pixels,
class accuracy of the completed digits); 2-D sets: the ODE's NLL of eval_ode_nll_n test
points, and on 8gaussians/25gaussians the modes covered and the high-quality fraction.
"""
from __future__ import annotations

import math
import os
import time

import numpy as np
from tqdm import tqdm

from ... import data, no_grad, tensor
from ...data import TOY_DATASETS
from ...models.diffusion import GaussianDiffusion, MLPDenoiser, NoiseSchedule, UNet
from ...models.diffusion.applications import inpaint
from ...models.diffusion.ddim import ddim_sample
from ...models.diffusion.ddpm import VARIANCES
from ...models.diffusion.schedule import SCHEDULES
from ...random import generator
from ..base import Experiment, fraction, non_negative, one_of

SAMPLERS = ("ddim", "ancestral")
# Images are sampled 100 at a time: the U-Net's largest unfolded input then takes about
# 180 MB, and on 2 cores 100 images per batch ran at 6.7 ms each against 8.2 for 500
# (one forward pass, one BLAS thread).
IMAGE_CHUNK = 100


def in_chunks(draw, n, *per_sample):
    """draw(m, *slices) over chunks of IMAGE_CHUNK samples, concatenated: the arrays of
    per_sample (e.g. labels) are sliced alongside."""
    return np.concatenate([draw(min(IMAGE_CHUNK, n - i), *(a[i:i + IMAGE_CHUNK]
                                                            for a in per_sample))
                           for i in range(0, n, IMAGE_CHUNK)])


def _bar(desc, total, disable=False):
    """A progress bar over an iterator of known length (tqdm), or none."""
    return lambda it: tqdm(it, desc=desc, total=total, leave=False, unit="step",
                           disable=disable)


class DDPMExperiment(Experiment):
    """Train a DDPM: eps_theta a U-Net on images in [-1, 1], an MLP on 2-D points."""

    name = "ddpm"
    defaults = {"timesteps": 1000, "schedule": "linear", "variance": "beta",
                "channels": 32, "attention": False, "hidden": 128, "batch_size": 64,
                "lr": 2e-4, "lr_schedule": "constant", "ema_decay": 0.999, "epochs": 5,
                "sampler": "ddim", "sample_steps": 50, "eta": 0.0, "eval_n": 10000,
                "eval_fid": True, "eval_nll_n": 100, "eval_ode_nll_n": 100,
                "eval_inpaint_n": 100, "eval_ddim_sweep_n": 0}
    rules = {"schedule": one_of(*SCHEDULES), "variance": one_of(*VARIANCES),
             "sampler": one_of(*SAMPLERS), "eta": non_negative, "ema_decay": fraction,
             "eval_nll_n": non_negative, "eval_ode_nll_n": non_negative,
             "eval_inpaint_n": non_negative,
             "eval_ddim_sweep_n": non_negative}
    toy_defaults = {"hidden": 256, "batch_size": 256, "lr": 1e-3, "lr_schedule": "cosine",
                    "steps": 10000, "sampler": "ancestral"}
    help = {"timesteps": "T, the number of diffusion steps",
            "schedule": "beta_t: linear 1e-4..0.02 (Ho et al.) or cosine (Nichol & Dhariwal)",
            "variance": "sigma_t^2 of the reverse steps: beta_t or beta~_t",
            "channels": "U-Net width c (2c at 14x14 and 7x7)",
            "attention": "self-attention at 7x7",
            "hidden": "MLP width (2-D toy sets)",
            "ema_decay": "EMA of the weights for sampling (0: none)",
            "sampler": "ancestral (T steps) or ddim (sample_steps steps)",
            "sample_steps": "DDIM's S", "eta": "DDIM's eta: 0 deterministic, 1 DDPM-like",
            "eval_n": "samples tinygen eval measures",
            "eval_fid": "measure FID with the LeNet classifier",
            "eval_nll_n": "test images in the variational bound (0: skip it)",
            "eval_ode_nll_n": "test images (points) in the probability-flow ODE's NLL "
                              "(0: skip it)",
            "eval_inpaint_n": "test images whose lower half is inpainted (0: skip it)",
            "eval_ddim_sweep_n": "samples per S of fid_lenet against DDIM's steps S = 10, "
                                 "20, 50, 100 and ancestral sampling (0: skip it)"}

    def __init__(self, config):
        super().__init__(config)
        if self.config["sample_steps"] > self.config["timesteps"]:
            from ..base import ConfigError
            raise ConfigError(f"--sample-steps {self.config['sample_steps']}: must be at most "
                              f"--timesteps ({self.config['timesteps']})")
        self.diffusion = GaussianDiffusion(
            NoiseSchedule.named(self.config["schedule"], self.config["timesteps"]),
            self.config["variance"])

    @property
    def toy(self) -> bool:
        return self.config["dataset"] in TOY_DATASETS

    @property
    def blas_threads(self):
        return 1 if self.toy else None   # the MLP's small products (Experiment.blas_threads)

    def build_model(self):
        c = self.config
        if self.toy:
            return MLPDenoiser(2, c["hidden"])
        return UNet(c["channels"], attention=c["attention"])

    # ---- data: images in [-1, 1] (the model's range), or toy points
    def images(self, split):
        if split in self._splits:
            return self._splits[split]
        if self.toy:
            self._splits[split] = self.toy_points(split)
        else:
            x, y = super().images(split)
            self._splits[split] = (2 * x - 1, y)
        return self._splits[split]

    # ---- training: Algorithm 1
    def training_step(self, x_0):
        self.model.train()
        loss = self.diffusion.loss_simple(self.model, x_0)
        self.update(loss)
        return {"loss": loss.item()}

    # ---- sampling
    def eps_model(self):
        """eps_theta as the sampler calls it: (x_t, t) -> eps, in eval mode."""
        self.model.eval()
        return self.model

    @no_grad()
    def sample_raw(self, n, sampler=None, steps=None, x_T=None, progress=None):
        """n samples in the model's range ([-1, 1] images or points), NumPy, from the EMA
        weights, by ``sampler`` ("ddim" with ``steps``, or "ancestral")."""
        c = self.config
        sampler, steps = sampler or c["sampler"], steps or c["sample_steps"]
        shape = (n, 2) if self.toy else (n, 1, 28, 28)
        clip = None if self.toy else (-1.0, 1.0)   # images: x_0^ kept in the data's range
        with self._ema_weights():
            if sampler == "ancestral":
                x = self.diffusion.sample(self.eps_model(), shape, self.device, x_T=x_T,
                                          clip_x0=clip, progress=progress)
            else:
                x = ddim_sample(self.diffusion, self.eps_model(), shape, steps, c["eta"],
                                self.device, x_T=x_T, clip_x0=clip, progress=progress)
        return x.numpy()

    def _ema_weights(self):
        import contextlib
        return self.ema.average_parameters() if self.ema is not None else contextlib.nullcontext()

    def sample(self, n):
        """n samples: images (n, 1, 28, 28) in [0, 1] (drawn IMAGE_CHUNK at a time), or
        points (n, 2)."""
        if self.toy:
            return self.sample_raw(n)
        return np.clip((in_chunks(self.sample_raw, n) + 1) / 2, 0, 1)

    def _many_samples(self, n, desc):
        """n samples in batches of 500, with a progress bar; and seconds per 1,000."""
        start, parts = time.perf_counter(), []
        with tqdm(total=n, desc=desc, unit="sample", leave=False) as bar:
            for i in range(0, n, 500):
                parts.append(self.sample(min(500, n - i)))
                bar.update(len(parts[-1]))
        return np.concatenate(parts), (time.perf_counter() - start) * 1000 / max(n, 1)

    # ---- evaluation
    def test_images_8bit(self, n):
        """The first n test images, 8-bit values scaled to [-1, 1] exactly."""
        x = self.images("test")[0][:n]
        return (np.round((x + 1) / 2 * 255) / 255 * 2 - 1).astype(np.float32)

    @no_grad()
    def evaluate(self):
        """fid_lenet of eval_n samples, the variational bound of eval_nll_n test images
        (nats and bits/dim, with its standard error), the sampling time; for 8gaussians
        and 25gaussians the modes covered."""
        c, n = self.config, self.config.get("eval_n", 10000)
        metrics = {}
        if self.toy:
            if c.get("eval_ode_nll_n", 100):
                metrics["probability_flow_ode"] = self.ode_nll(c["eval_ode_nll_n"])
            if c["dataset"] in ("8gaussians", "25gaussians"):
                from ...metrics import mode_coverage
                samples, per_1000 = self._many_samples(n, "sampling")
                centers, std = data.toy_modes(c["dataset"])
                cover = mode_coverage(samples, centers, std)
                metrics.update(modes_covered=int(cover["modes_covered"]),
                               high_quality_fraction=float(cover["high_quality_fraction"]),
                               eval_images=n, sampling_seconds_per_1000=per_1000)
            return metrics
        if c.get("eval_nll_n", 100):
            metrics.update(self.variational_bound_nll(c["eval_nll_n"]))
        if c.get("eval_ode_nll_n", 100):
            metrics["probability_flow_ode"] = self.ode_nll(c["eval_ode_nll_n"])
        if c.get("eval_inpaint_n", 100):
            metrics.update(self.inpainting(c["eval_inpaint_n"]))
        if c.get("eval_fid", True):
            from ..classifier import fid
            sampler = (f"DDIM-{c['sample_steps']}" if c["sampler"] == "ddim"
                       else f"ancestral-{c['timesteps']}")
            samples, per_1000 = self._many_samples(n, f"sampling ({sampler})")
            metrics.update(fid_lenet=fid(samples, c["dataset"], device=self.device,
                                         data_root=c.get("data_root")),
                           eval_images=n, sampler=sampler,
                           sampling_seconds_per_1000=per_1000)
            if c.get("eval_ddim_sweep_n", 0):
                metrics["ddim_sweep"] = self.ddim_sweep(c["eval_ddim_sweep_n"])
        return metrics

    def ddim_sweep(self, n):
        """fid_lenet and the sampling time of n samples for DDIM with S = 10, 20, 50 and
        100 steps (eta as configured) and for T ancestral steps: quality against cost."""
        from ..classifier import fid
        out = {}
        for name, sampler, steps in [*[(f"DDIM-{s}", "ddim", s) for s in (10, 20, 50, 100)
                                       if s <= self.diffusion.T],
                                     (f"ancestral-{self.diffusion.T}", "ancestral", None)]:
            start, parts = time.perf_counter(), []
            for i in tqdm(range(0, n, 500), desc=f"sampling ({name})", leave=False):
                x = self.sample_raw(min(500, n - i), sampler, steps)
                parts.append(np.clip((x + 1) / 2, 0, 1))
            seconds = (time.perf_counter() - start) * 1000 / n
            out[name] = {"fid_lenet": fid(np.concatenate(parts), self.config["dataset"],
                                          device=self.device,
                                          data_root=self.config.get("data_root")),
                         "sampling_seconds_per_1000": seconds}
        return out

    def lower_half_mask(self):
        """1 on the upper 14 rows of a 28x28 image (known), 0 on the lower 14 (missing)."""
        mask = np.zeros((1, 1, 28, 28), np.float32)
        mask[..., :14, :] = 1
        return mask

    def inpainting(self, n):
        """The lower half of n test digits filled in by the replacement method
        (``applications.inpaint``): inpainting_mse, the mean squared error per missing
        pixel in [0, 1] units, and, with the classifier (eval_fid), the class accuracy of
        the completed digits."""
        x, labels = self.images("test")
        x, labels = x[:n], labels[:n]
        mask = self.lower_half_mask()
        parts = []
        with self._ema_weights():
            for i in range(0, len(x), 100):
                xb = tensor(x[i:i + 100], device=self.device)
                parts.append(inpaint(self.diffusion, self.eps_model(), xb, mask,
                                     clip_x0=(-1.0, 1.0),
                                     progress=_bar(f"inpainting, images {i + 1}-{i + len(xb)}"
                                                   f" of {len(x)}", self.diffusion.T)).numpy())
        filled = np.clip((np.concatenate(parts) + 1) / 2, 0, 1)
        return self.inpainting_metrics(filled, (x + 1) / 2, mask == 0, labels)

    def ode_nll(self, n):
        """The NLL of n test examples under the probability-flow ODE of the same network
        (Song et al. 2021; ``models.diffusion.sde``), solved by Dormand-Prince: for
        images, 8-bit pixels dequantised (x = 2 (pixel + u) / 256 - 1, u ~ U[0, 1)) with
        Hutchinson's divergence (one Rademacher probe per image), in nats of the
        continuous density and bits/dim of the discrete image (+7: log2 of 256 / 2); for
        2-D points, the exact divergence and nats."""
        from ...metrics import bits_per_dim
        from ...models.diffusion.sde import VPSDE, ode_log_likelihood, score_from_eps
        x = self.images("test")[0][:n]
        try:
            sde = VPSDE.from_schedule(self.diffusion.schedule)
        except ValueError as e:   # the cosine schedule, or a clipped short one
            return {"skipped": str(e)}
        if not self.toy:   # dequantise the 8-bit values into [-1, 1]
            pixels = np.round((x + 1) / 2 * 255)
            u = generator(5).random(pixels.shape)
            x = (2 * (pixels + u) / 256 - 1).astype(np.float32)
        # start the ODE at the noise level of the DDPM's first step, the smallest the
        # network was trained on: solve beta_min t + (beta_max - beta_min) t^2 / 2 =
        # -log alpha_bar_1 for t (below it the network would extrapolate)
        a, b = (sde.beta_max - sde.beta_min) / 2, sde.beta_min
        c = -math.log(float(self.diffusion.schedule.alpha_bars[1]))
        eps_t = (-b + math.sqrt(b * b + 4 * a * c)) / (2 * a) if a > 0 else c / b
        log_p, batch = [], 100 if not self.toy else 1000
        with self._ema_weights():
            score = score_from_eps(self.eps_model(), sde, self.diffusion.T,
                                   schedule=self.diffusion.schedule)
            for i in tqdm(range(0, len(x), batch), desc="probability-flow ODE NLL",
                          leave=False):
                log_p.append(ode_log_likelihood(
                    score, sde, tensor(x[i:i + batch], device=self.device), eps_t=eps_t,
                    divergence_method="exact" if self.toy else "hutchinson"))
        nll = -np.concatenate(log_p)
        out = {"nll_nats": float(nll.mean()), "nll_estimator": "probability_flow_ode",
               "nll_standard_error": float(nll.std(ddof=1) / math.sqrt(len(nll)))
               if len(nll) > 1 else float("nan"), "nll_images": int(len(nll))}
        if not self.toy:
            out.update(bits_per_dim=float(bits_per_dim(nll.mean(), 784, scale_bits=7)),
                       data_variant="dequantized_8bit")
        return out

    def variational_bound_nll(self, n):
        """The bound L of Ho et al. (eq. 5) on n test images: nll_nats (mean), its
        standard error, bits_per_dim, and the bound's parts."""
        x = self.test_images_8bit(n)
        totals, priors, decoders = [], [], []
        batch = 100
        with self._ema_weights():
            model = self.eps_model()
            for i in range(0, len(x), batch):
                xb = tensor(x[i:i + batch], device=self.device)
                # the mean with x_0^ clipped to [-1, 1]: the model that is sampled
                out = self.diffusion.variational_bound(
                    model, xb, clip_x0=(-1.0, 1.0),
                    progress=_bar(f"variational bound, images {i + 1}-{i + len(xb)} of "
                                  f"{len(x)}", self.diffusion.T))
                totals.append(out["total"])
                priors.append(out["prior"])
                decoders.append(out["decoder"])
        total = np.concatenate(totals)
        nll = float(total.mean())
        return {"nll_nats": nll, "nll_estimator": "variational_bound",
                "nll_standard_error": float(total.std(ddof=1) / math.sqrt(len(total)))
                if len(total) > 1 else float("nan"),
                "bits_per_dim": nll / (784 * math.log(2)),
                "data_variant": "discrete_8bit", "nll_images": int(len(total)),
                "bound_prior_nats": float(np.concatenate(priors).mean()),
                "bound_decoder_nats": float(np.concatenate(decoders).mean())}

    # ---- pictures
    @no_grad()
    def save_pictures(self, run_dir):
        """samples.png; forward.png (eight test digits noised by q(x_t | x_0), one row per
        t from 0 to T); reverse.png (ancestral sampling's x_t, one row per t from T to 0,
        one column per sample); inpainting.png (the lower halves of eight test digits
        filled in: masked, filled, truth); for 2-D data
        samples.png over the data and reverse.png as point clouds."""
        from ...plot import plot_2d_samples, save_image_grid
        T = self.diffusion.T
        moments = sorted({int(round(T * f)) for f in
                          (1, .8, .6, .5, .4, .3, .2, .1, .05, 0)})[::-1]
        rng = generator(7)
        if self.toy:
            x = self.images("test")[0][:2000]
            plot_2d_samples(self.sample(2000), x, os.path.join(run_dir, "samples.png"),
                            title="DDPM samples over the data")
            self._toy_reverse(run_dir, moments, x)
            return
        save_image_grid(self.sample(64), os.path.join(run_dir, "samples.png"), nrow=8)
        # forward process: one row per t (x_0 at the top), one column per test digit
        x0 = self.images("test")[0][:8]
        cols = []
        for t in moments[::-1]:
            if t == 0:
                cols.append(x0)
                continue
            eps = rng.standard_normal(x0.shape).astype(np.float32)
            cols.append(self.diffusion.q_sample(tensor(x0), np.full(8, t), tensor(eps)).numpy())
        grid = np.concatenate(cols)
        save_image_grid(np.clip((grid + 1) / 2, 0, 1), os.path.join(run_dir, "forward.png"),
                        nrow=8, labels=[f"t={t}" for t in moments[::-1]])
        # reverse process: ancestral sampling's x_t at the same moments
        with self._ema_weights():
            _, traj = self.diffusion.sample(
                self.eps_model(), (8, 1, 28, 28), self.device, clip_x0=(-1.0, 1.0),
                trajectory_at=set(moments), progress=_bar("reverse process", T))
        grid = np.concatenate([traj[t] for t in moments])
        save_image_grid(np.clip((grid + 1) / 2, 0, 1), os.path.join(run_dir, "reverse.png"),
                        nrow=8, labels=[f"t={t}" for t in moments])
        # inpainting: the lower halves of eight test digits filled in
        mask = self.lower_half_mask()
        with self._ema_weights():
            filled = inpaint(self.diffusion, self.eps_model(), tensor(x0), mask,
                             clip_x0=(-1.0, 1.0), progress=_bar("inpainting", T)).numpy()
        masked = x0 * mask + (1 - mask) * 0.0      # the missing half shown grey (0 in [-1, 1])
        grid = np.concatenate([masked, filled, x0])
        save_image_grid(np.clip((grid + 1) / 2, 0, 1), os.path.join(run_dir, "inpainting.png"),
                        nrow=8, labels=["masked", "filled in", "truth"])

    def _toy_reverse(self, run_dir, moments, x):
        from ...plot import plot_2d_panels
        with self._ema_weights():
            _, traj = self.diffusion.sample(self.eps_model(), (2000, 2), self.device,
                                            trajectory_at=set(moments))
        lim = (float(min(x.min(), -4.5)), float(max(x.max(), 4.5)))
        plot_2d_panels([(f"x_{t}", traj[t]) for t in moments], x,
                       os.path.join(run_dir, "reverse.png"), lim)
