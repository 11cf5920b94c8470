"""Training an energy-based model by maximum likelihood with Langevin dynamics: a
convolutional energy on MNIST or Fashion-MNIST (pixels in [-1, 1]), an MLP energy on the
2-D toy sets; the models are ``tinygen.models.ebm``.

A training step draws negative samples x^- by Langevin dynamics on the current energy
(``langevin``, its parameters frozen) and takes one Adam step on the contrastive loss

    L = mean E(x^+) - mean E(x^-) + alpha (mean E(x^+)^2 + mean E(x^-)^2)

(``contrastive_loss``; -grad L estimates the gradient of the log-likelihood, eq. (1) of
langevin.py). Where the chains start (``--chains``):

    replay      a replay buffer of buffer_size past samples, each chain restarted from
                uniform noise with probability reinit_prob (Du & Mordatch 2019)
    short_run   fresh uniform noise every step: short-run MCMC (Nijkamp et al. 2019),
                the benchmark's ebm workload
    pcd         as many persistent chains as the batch, never restarted (Tieleman 2008)
    cd          the data batch itself (Hinton 2002)

Defaults and where they come from:
    images: the energy ConvEnergy(width 32) (the benchmark's network); batch 64,
        Adam(1e-4); 20 Langevin steps x <- clip(x - 10 grad E + 0.005 xi, -1, 1)
        (step_size 20 and noise 0.005 in ``langevin``'s terms), alpha 0.1: the
        benchmark's workload (BENCHMARKS.md), after Nijkamp et al.'s short-run
        settings; replay buffer of 10,000 with reinit_prob 0.05 (Du & Mordatch); 3
        epochs (2,811 steps: 2,000 took 64 min on one core here), samples by 60 steps
        from noise, the gradient's norm capped at 10 (tinygen's choices)
    toy sets: MLPEnergy(128, 3 layers); batch 128, Adam(5e-3) with a cosine decay, 3,000
        steps; 5 steps of the true Langevin sampler (step_size 0.02, noise
        sqrt(step_size)) from a replay buffer of 10,000 over [-4.5, 4.5]^2, alpha 0.01;
        samples by 500 steps from noise. tinygen's choices: with 20 steps and Adam(2e-3)
        the energy learned the ring of 8gaussians but not its eight wells

Evaluation (``tinygen eval``): images: fid_lenet of eval_fid_n samples (chains of
sample_steps from uniform noise, the sampler named in the metrics) and, with the replay
buffer, fid_lenet_buffer of its samples (the persistent training chains), the inpainting
figures (the lower half of test digits filled in by Langevin dynamics with the upper
half clamped), and with ``--ood DATASET`` the AUROCs of the energy; toy sets: the test
NLL in nats of the model restricted to [-6, 6]^2, its log Z by quadrature on a 400 x 400
grid, beside the data's entropy, and the modes covered by samples.
"""
from __future__ import annotations

import math
import os

import numpy as np
from tqdm import tqdm

from ... import data, no_grad, tensor
from ...data import TOY_DATASETS
from ...models.ebm import ConvEnergy, MLPEnergy, ReplayBuffer, contrastive_loss, langevin
from ...random import generator
from ..base import ConfigError, Experiment, non_negative, one_of

CHAINS = ("replay", "short_run", "pcd", "cd")
TOY_LIM = 4.5        # the toy sets' chains and pictures live in [-4.5, 4.5]^2
QUADRATURE_LIM, QUADRATURE_N = 6.0, 400


def to_signed(x01):
    """Images in [0, 1] -> [-1, 1], the range of the energy's inputs and chains."""
    return 2 * x01 - 1


class EBMExperiment(Experiment):
    """Train an energy E(x) with Langevin negative samples; images or 2-D points."""

    name = "ebm"
    defaults = {"width": 32, "batch_size": 64, "lr": 1e-4, "lr_schedule": "constant",
                "epochs": 3, "chains": "replay", "langevin_steps": 20, "step_size": 20.0,
                "noise": 0.005, "alpha": 0.1, "buffer_size": 10000, "reinit_prob": 0.05,
                "sample_steps": 60, "eval_n": 10000, "eval_fid": True, "eval_fid_n": 10000,
                "eval_inpainting_n": 1000, "max_grad_norm": 10.0, "hidden": 128,
                "num_layers": 3}
    toy_defaults = {"batch_size": 128, "lr": 5e-3, "lr_schedule": "cosine", "steps": 3000,
                    "langevin_steps": 5, "step_size": 0.02, "noise": -1.0, "alpha": 0.01,
                    "sample_steps": 500}
    rules = {"chains": one_of(*CHAINS), "alpha": non_negative, "reinit_prob": non_negative,
             "eval_inpainting_n": non_negative,
             "noise": lambda v: None if v >= 0 or v == -1 else
             "must be 0 or more, or -1 for sqrt(step_size)"}
    help = {"width": "channels of the convolutional energy's first layer",
            "chains": "where the Langevin chains start: replay (buffer), short_run (noise), "
                      "pcd (persistent), cd (the data)",
            "langevin_steps": "Langevin steps per training step",
            "step_size": "epsilon: x <- x - (epsilon / 2) grad E(x) + noise xi",
            "noise": "the noise's standard deviation; -1: sqrt(step_size) (the sampler "
                     "of p itself)",
            "alpha": "weight of the energy-magnitude regulariser",
            "buffer_size": "replay buffer slots", "reinit_prob": "chains restarted from "
                                                                  "noise",
            "sample_steps": "Langevin steps of the chains that draw samples",
            "eval_n": "test images (points) the evaluation uses",
            "eval_fid": "measure FID and class accuracy with LeNet",
            "eval_fid_n": "samples FID uses",
            "eval_inpainting_n": "test digits completed by Langevin dynamics (0: skip)",
            "max_grad_norm": "gradients are scaled down to this global norm",
            "hidden": "toy sets: units per hidden layer", "num_layers": "toy sets: layers"}
    supports_ood = True

    def check_config(self):
        super().check_config()
        c = self.config
        if c["chains"] == "replay" and c["buffer_size"] < c["batch_size"]:
            raise ConfigError(f"--buffer-size {c['buffer_size']}: the replay buffer must hold "
                              f"at least a batch ({c['batch_size']})")

    @property
    def toy(self) -> bool:
        return self.config["dataset"] in TOY_DATASETS

    @property
    def blas_threads(self):
        return 1 if self.toy else None

    @property
    def shape(self):
        return (2,) if self.toy else (1, 28, 28)

    @property
    def clip(self):
        """The chains' range: the pixels' [-1, 1]; none for points."""
        return None if self.toy else (-1.0, 1.0)

    @property
    def noise_range(self):
        """Where fresh chains start: uniform noise on [low, high]."""
        return (-TOY_LIM, TOY_LIM) if self.toy else (-1.0, 1.0)

    def build_model(self):
        c = self.config
        if self.toy:
            return MLPEnergy(2, c.get("hidden", 128), c.get("num_layers", 3))
        return ConvEnergy(1, c["width"])

    # ---- data
    def images(self, split):
        """Images in [-1, 1] (N, 1, 28, 28), or the toy set's points."""
        if split not in self._splits:
            if self.toy:
                self._splits[split] = self.toy_points(split)
            else:
                x, y = super().images(split)
                self._splits[split] = (to_signed(x), y)
        return self._splits[split]

    # ---- the chains
    @property
    def buffer(self) -> ReplayBuffer:
        """The replay buffer (``replay``: buffer_size slots; ``pcd``: one slot per chain,
        never restarted), made on first use."""
        if getattr(self, "_buffer", None) is None:
            c = self.config
            capacity, rho = ((c["buffer_size"], c["reinit_prob"]) if c["chains"] == "replay"
                             else (c["batch_size"], 0.0))
            low, high = self.noise_range
            self._buffer = ReplayBuffer(capacity, self.shape, rho, low, high,
                                        seed=c.get("seed", 0))
        return self._buffer

    def noise(self, n):
        """n fresh starting points, uniform on the noise range: (n, *shape) Tensor."""
        low, high = self.noise_range
        u = generator().random((n,) + self.shape).astype(np.float32)
        return tensor(low + (high - low) * u, device=self.device)

    def run_chains(self, x0, steps):
        """``steps`` Langevin steps of the configured kind from x0; returns x_K."""
        c = self.config
        return langevin(self.model, x0, steps, c["step_size"],
                        noise=None if c["noise"] == -1 else c["noise"], clip=self.clip)

    def negative_samples(self, x_pos):
        """x^- for this step, from the chains' starting points (``chains``)."""
        c, n = self.config, x_pos.shape[0]
        if c["chains"] == "cd":
            return self.run_chains(x_pos, c["langevin_steps"])
        if c["chains"] == "short_run":
            return self.run_chains(self.noise(n), c["langevin_steps"])
        x_neg = self.run_chains(self.buffer.sample(n, device=self.device), c["langevin_steps"])
        self.buffer.push(x_neg)
        return x_neg

    def training_step(self, x_pos):
        """Langevin negative samples, then one step on the contrastive loss."""
        self.model.train()
        x_neg = self.negative_samples(x_pos)
        loss, energies = contrastive_loss(self.model, x_pos, x_neg, self.config["alpha"],
                                          return_energies=True)
        self.update(loss)
        return {"loss": loss.item(), "energy_pos": energies["energy_pos"].item(),
                "energy_neg": energies["energy_neg"].item()}

    def state_dict(self):
        state = super().state_dict()
        if self.config["chains"] in ("replay", "pcd"):
            state["buffer"] = self.buffer.state_dict()
        return state

    def load_state_dict(self, state):
        super().load_state_dict(state)
        if "buffer" in state:
            self.buffer.load_state_dict(state["buffer"])

    # ---- samples
    def sample(self, n, steps=None, return_chain=False):
        """n samples: chains of ``steps`` (default sample_steps) Langevin steps from
        uniform noise, 500 at a time. Images (n, 1, 28, 28) in [0, 1]; points (n, 2).
        With return_chain=True also the first batch's chain [x_0, ..., x_K]."""
        steps = self.config["sample_steps"] if steps is None else steps
        self.model.eval()
        out, first = [], None
        for i in tqdm(range(0, n, 500), desc="Langevin sampling", leave=False):
            x0 = self.noise(min(500, n - i))
            if return_chain and first is None:
                x, first = langevin(self.model, x0, steps, self.config["step_size"],
                                    noise=None if self.config["noise"] == -1
                                    else self.config["noise"], clip=self.clip,
                                    return_chain=True)
            else:
                x = self.run_chains(x0, steps)
            out.append(x.numpy())
        samples = np.concatenate(out)
        if not self.toy:
            samples = (samples + 1) / 2
        return (samples, first) if return_chain else samples

    @property
    def sampler(self):
        c = self.config
        noise = "sqrt(step_size)" if c["noise"] == -1 else c["noise"]
        return f"langevin-{c['sample_steps']} from noise (step_size {c['step_size']}, " \
               f"noise {noise})"

    # ---- evaluation
    @no_grad()
    def energy(self, x, desc="energy"):
        """E(x) in nats of each row of the NumPy array x, in batches: (n,)."""
        self.model.eval()
        out = []
        for i in tqdm(range(0, len(x), 500), desc=desc, leave=False, unit="batch"):
            out.append(self.model(tensor(x[i:i + 500], device=self.device)).numpy())
        return np.concatenate(out).astype(np.float64)

    def log_partition_2d(self):
        """log Z = log of the integral of exp(-E) over [-6, 6]^2 by the midpoint rule on a
        400 x 400 grid (cells of 0.03; exp(-E) is smooth at that scale). The density is
        that of the model restricted to the box: nothing bounds exp(-E) outside it (an
        MLP is near linear far out), and every toy test point lies inside (|x| < 4.3)."""
        h = 2 * QUADRATURE_LIM / QUADRATURE_N
        centres = -QUADRATURE_LIM + h * (np.arange(QUADRATURE_N) + 0.5)
        grid = np.stack(np.meshgrid(centres, centres), axis=-1).reshape(-1, 2)
        e = self.energy(grid.astype(np.float32), desc="log Z on a grid")
        top = (-e).max()
        return float(top + np.log(np.exp(-e - top).sum()) + 2 * np.log(h))

    def evaluate(self):
        """Toy sets: nll_nats (log Z by quadrature) beside the data's entropy, modes
        covered; images: fid_lenet, inpainting, and the OOD AUROCs with --ood."""
        c = self.config
        if self.toy:
            return self._evaluate_toy()
        metrics = {"data_variant": "continuous"}
        if c.get("eval_ood"):
            metrics["eval_images"] = int(min(c["eval_n"], 10000))
        if c["eval_inpainting_n"]:
            metrics.update(self.inpainting(c["eval_inpainting_n"]))
        ood = c.get("eval_ood")
        if ood:
            from ..ood import ood_metrics
            n = c["eval_n"]
            x_in = self.images("test")[0][:n]
            images, _ = data.load_dataset(ood, "test", c.get("data_root"))
            x_out = to_signed(data.scale(images, to=(0, 1))[:n, None])
            e_in, e_out = self.energy(x_in), self.energy(x_out, f"energy, {ood}")
            e_train = self.energy(self.images("train")[0][:n], "energy, training images")
            # with decoupled noise E is in nats of no density (a temperature T ~ 1e-6
            # stands between them), so the complexity correction would be zlib alone
            metrics["ood"] = ood_metrics(e_in, e_out, e_train, (x_in + 1) / 2,
                                         (x_out + 1) / 2, dataset=ood, score_name="energy E(x)",
                                         complexity=c["noise"] == -1)
            self._ood = (e_in, e_out, c["dataset"], ood)
        if c.get("eval_fid", True):
            import time

            from ..classifier import fid
            start = time.perf_counter()
            samples = self.sample(c["eval_fid_n"])
            seconds = time.perf_counter() - start
            metrics["fid_lenet"] = fid(samples, c["dataset"], device=self.device,
                                       data_root=c.get("data_root"))
            metrics.update(fid_samples=int(len(samples)), sampler=self.sampler,
                           sampling_seconds_per_1000=1000 * seconds / len(samples))
            if c["chains"] == "replay":
                # the chains training ran on, each over many updates: what the buffer
                # holds, beside what fresh chains of sample_steps reach from noise
                buffer = (self.buffer.buffer[:c["eval_fid_n"]] + 1) / 2
                metrics["fid_lenet_buffer"] = fid(buffer, c["dataset"], device=self.device,
                                                  data_root=c.get("data_root"))
        return metrics

    def _evaluate_toy(self):
        from ...metrics import mode_coverage
        c = self.config
        x = self.images("test")[0][:c["eval_n"]]
        log_Z = self.log_partition_2d()
        nll = self.energy(x) + log_Z
        metrics = {"nll_nats": float(nll.mean()), "nll_estimator": "quadrature_400x400",
                   "nll_standard_error": float(nll.std(ddof=1) / math.sqrt(len(nll))),
                   "log_Z": log_Z, "data_variant": "continuous", "eval_images": len(nll)}
        try:
            h = data.toy_entropy(c["dataset"])
            metrics["data_entropy_nats"] = float(h.entropy)
            metrics["data_entropy_standard_error"] = float(h.standard_error)
        except ValueError:
            pass   # no known density (swiss_roll, pinwheel, two_spirals)
        try:
            centers, std = data.toy_modes(c["dataset"])
        except ValueError:
            return metrics
        cover = mode_coverage(self.sample(c["eval_n"]), centers, std)
        metrics.update(modes_covered=int(cover["modes_covered"]),
                       high_quality_fraction=float(cover["high_quality_fraction"]),
                       sampler=self.sampler)
        return metrics

    def inpaint(self, x, known, steps=None):
        """Fill in the pixels of x (n, 1, 28, 28) in [-1, 1] where ``known`` (1, 28, 28) is
        0: Langevin dynamics (the training sampler, sample_steps steps) from uniform
        noise on the missing pixels, the known ones put back after every step (clamped).
        Returns (n, 1, 28, 28) in [-1, 1]."""
        steps = self.config["sample_steps"] if steps is None else steps
        k = tensor(known.astype(np.float32), device=self.device)
        x = tensor(x, device=self.device)
        x_t = x * k + self.noise(x.shape[0]) * (1 - k)
        for _ in range(steps):
            x_t = x * k + self.run_chains(x_t, 1) * (1 - k)
        return x_t.numpy()

    def inpainting(self, n):
        """The lower half of n test digits filled in (``inpaint``): inpainting_mse, the
        mean squared error per missing pixel in [0, 1] units, and with the classifier
        (eval_fid) the class accuracy of the completions."""
        x, labels = self.images("test")
        x, labels = x[:n], labels[:n]
        known = np.ones((1, 28, 28), np.float32)
        known[:, 14:] = 0
        filled = np.concatenate([self.inpaint(x[i:i + 500], known)
                                 for i in tqdm(range(0, n, 500), desc="inpainting",
                                               leave=False)])
        filled, truth = (filled + 1) / 2, (x + 1) / 2
        self._inpainted = (np.where(known == 1, truth, 0.5)[:8], filled[:8], truth[:8])
        return self.inpainting_metrics(filled, truth, known == 0, labels)

    # ---- pictures
    def save_pictures(self, run_dir):
        """Images: samples.png (64 chains from noise), langevin_chain.png (8 chains from
        noise to digit), buffer.png (64 replay-buffer samples); toy sets: energy.png (the
        energy landscape with 20 Langevin chains on it: their first 50 steps from noise,
        and their ends), density.png (exp(-E) beside the data), samples.png."""
        from ...plot import save_image_grid
        if self.toy:
            return self._toy_pictures(run_dir)
        steps = self.config["sample_steps"]
        samples, chain = self.sample(64, return_chain=True)
        save_image_grid(samples, os.path.join(run_dir, "samples.png"), nrow=8)
        at = np.unique(np.linspace(0, steps, 10).round().astype(int))
        frames = np.stack([(chain[t].numpy()[:8] + 1) / 2 for t in at], axis=1)
        save_image_grid(frames.reshape(-1, 1, 28, 28),
                        os.path.join(run_dir, "langevin_chain.png"), nrow=len(at))
        if self.config["chains"] in ("replay", "pcd"):
            b = self.buffer.buffer
            save_image_grid((b[:64] + 1) / 2, os.path.join(run_dir, "buffer.png"), nrow=8)

    def _toy_pictures(self, run_dir):
        from ...plot import new_figure, plot_2d_density, plot_2d_samples, save_figure
        x = self.images("test")[0][:2000]
        lim = (-TOY_LIM, TOY_LIM)
        log_Z = self.log_partition_2d()   # so that the picture is p(x), not exp(-E)
        plot_2d_density(lambda p: -self.model(p) - log_Z, os.path.join(run_dir, "density.png"),
                        lim=lim, kind="density", data=x, device=self.device)
        samples, chain = self.sample(2000, return_chain=True)
        plot_2d_samples(samples, data=x, path=os.path.join(run_dir, "samples.png"), lim=lim)
        # the landscape with 20 chains drawn on it, from their noise to where they end
        from ...plot import evaluate_on_grid
        xs, ys, e = evaluate_on_grid(lambda p: self.model(p), lim, 150, device=self.device)
        fig = new_figure((5.6, 4.6), layout="constrained")
        ax = fig.add_subplot()
        finite = e[np.isfinite(e)]
        levels = np.linspace(finite.min(), np.quantile(finite, 0.95), 25)
        cs = ax.contourf(xs, ys, np.minimum(e, levels[-1]), levels=levels, cmap="viridis_r")
        fig.colorbar(cs, ax=ax, label="E(x)")
        path = np.stack([c.numpy()[:20] for c in chain], axis=1)       # (20, K + 1, 2)
        # the first 50 steps: the descent from noise into a well (after that a chain
        # jitters in its well and would hide the landscape)
        for p in path:
            ax.plot(p[:51, 0], p[:51, 1], color="C3", lw=0.7, alpha=0.9)
            ax.plot(p[0, 0], p[0, 1], "o", color="white", ms=3, mec="C3", mew=0.6)
            ax.plot(p[-1, 0], p[-1, 1], "o", color="C3", ms=3)
        ax.set_xlim(*lim)
        ax.set_ylim(*lim)
        ax.set_aspect("equal")
        ax.set_title(f"E(x); Langevin chains: 50 steps from noise (open), "
                     f"ends after {len(chain) - 1} (filled)", fontsize=8)
        save_figure(fig, os.path.join(run_dir, "energy.png"))

    def save_evaluation_pictures(self, run_dir):
        """After ``tinygen eval``: inpainting.png (masked, completed, truth for 8 digits);
        with --ood, ood_histogram.png of the energies."""
        from ...plot import save_image_grid
        if getattr(self, "_inpainted", None) is not None:
            rows = np.concatenate(self._inpainted)
            save_image_grid(rows, os.path.join(run_dir, "inpainting.png"), nrow=8)
        if getattr(self, "_ood", None) is not None:
            from ..ood import save_ood_histogram
            e_in, e_out, name_in, name_out = self._ood
            save_ood_histogram(e_in, e_out, name_in, name_out,
                               os.path.join(run_dir, "ood_histogram.png"),
                               xlabel=f"energy E(x) under the EBM trained on {name_in}")
