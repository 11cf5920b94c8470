"""What every GAN recipe shares: two players and their alternating updates.

A GAN recipe states its two networks (``build_players``), the discriminator's loss on a
batch (``discriminator_objective``) and the generator's (``generator_objective``); this
base runs Goodfellow et al.'s Algorithm 1 over ``tinygen.train.fit``'s steps:

    every step:         one update of D (the critic) on a batch of data and a batch of
                        G's samples, G frozen (its samples computed without a graph);
    every k-th step:    then one update of G on fresh z, D frozen (``gan.frozen``).

So a step of the log and of ``--steps`` is one D update, and G makes one update per k of
them (k = ``k``, or ``n_critic`` for the Wasserstein GANs).

Data: images scaled to [-1, 1] (G ends in tanh), or a 2-D toy set (``--dataset
8gaussians`` etc.): 100,000 training points and 10,000 test points drawn with fixed
seeds. ``sample`` returns images in [0, 1] (or points), whatever G's range.

Pictures (at the end of training): samples.png, progress.png (the same z decoded at ten
moments of training: a strip of learning), interpolations.png (G along straight lines
in z); for 2-D data, samples.png shows the samples over the data on D's contours, and
progress.png the samples at those moments.
"""
from __future__ import annotations

import os

import numpy as np

from ... import data, no_grad, optim, tensor
from ...data import TOY_DATASETS
from ...models.gan.gan import frozen, sample_noise
from ...random import generator
from ..base import Experiment

SNAPSHOTS = 10          # moments of training in progress.png
FIXED_Z = 10            # samples per moment


class GANExperiment(Experiment):
    """The base of the GAN recipes (see the module docstring); not registered itself.

    Subclasses set ``name``, ``defaults`` and ``rules``, and define ``build_players``,
    ``discriminator_objective`` and ``generator_objective``; ``after_discriminator_step``
    is a hook (WGAN clips there).
    """

    conditional = False     # whether G and D read labels (the cGAN)
    help = {"latent_dim": "size of z", "channels": "conv width c (2c at 7x7)",
            "hidden": "MLP width h (G: h, 2h; D: 2h, h)",
            "k": "D updates per G update; a step is one D update",
            "n_critic": "critic updates per G update; a step is one critic update",
            "generator_loss": "G's loss: -log D(G(z)) or log(1 - D(G(z)))",
            "beta1": "Adam's beta_1", "beta2": "Adam's beta_2",
            "ema_decay": "EMA of G's weights per G update for sampling (0: none)",
            "clip": "WGAN: critic weights clipped to [-clip, clip]",
            "gp_weight": "WGAN-GP: lambda of the gradient penalty",
            "network": "conv or mlp (unset: conv for images, mlp for 2-D points)",
            "conditioning": "how D reads the label",
            "gamma": "VAE-GAN: weight of the feature reconstruction in the decoder's loss",
            "norm": "D's normalisation", "eval_n": "samples tinygen eval measures",
            "eval_fid": "measure FID and class accuracy with the LeNet classifier"}

    # ---- the two players
    def build_model(self):
        return None   # two networks, not one: built below

    def __init__(self, config):
        super().__init__(config)
        try:
            G, D = self.build_players()
        except ValueError as e:
            from ..base import ConfigError
            raise ConfigError(str(e)) from None
        self.G, self.D = G.to(self.device), D.to(self.device)
        self.opt_g, self.opt_d = self.build_optimizers()
        decay = self.config.get("ema_decay", 0)
        self.ema_g = optim.EMA(self.G.parameters(), decay=decay,   # warmed up, as the
                               use_num_updates=True) if decay else None   # base's EMA
        self.snapshots = {}   # step -> G's output at the fixed z, for progress.png

    def build_players(self):
        """(G, D), two nn.Modules built from ``self.config``."""
        raise NotImplementedError

    def build_optimizers(self):
        """(opt_g, opt_d): Adam at ``lr`` with ``betas`` (beta1, beta2) for both."""
        c = self.config
        betas = (c.get("beta1", 0.5), c.get("beta2", 0.999))
        return (optim.Adam(self.G.parameters(), lr=c["lr"], betas=betas),
                optim.Adam(self.D.parameters(), lr=c["lr"], betas=betas))

    def modules(self):
        return {"G": self.G, "D": self.D}

    def optimizers(self):
        return {"G": self.opt_g, "D": self.opt_d}

    def emas(self):
        return {"G": self.ema_g} if self.ema_g is not None else {}

    def state_dict(self):
        state = super().state_dict()
        state["snapshots"] = {str(k): v for k, v in self.snapshots.items()}
        return state

    def load_state_dict(self, state):
        super().load_state_dict(state)
        self.snapshots = {int(k): np.asarray(v) for k, v in state.get("snapshots", {}).items()}

    @property
    def k(self) -> int:
        """D's updates per G update."""
        return int(self.config.get("n_critic", self.config.get("k", 1)))

    # ---- data
    @property
    def toy(self) -> bool:
        return self.config["dataset"] in TOY_DATASETS

    @property
    def data_shape(self) -> tuple:
        return (2,) if self.toy else (1, 28, 28)

    def images(self, split):
        """Training or test data: images in [-1, 1] (N, 1, 28, 28) with labels, or toy
        points (N, 2) with labels 0."""
        if split in self._splits:
            return self._splits[split]
        if self.toy:
            self._splits[split] = self.toy_points(split)
        else:
            x, y = super().images(split)
            self._splits[split] = (2 * x - 1, y)
        return self._splits[split]

    def noise(self, m):
        """z_1..z_m ~ N(0, I) on the device."""
        return sample_noise(m, self.config["latent_dim"], self.device)

    def generate(self, z, y=None):
        """G(z) (or G(z | y))."""
        return self.G(z, y) if self.conditional else self.G(z)

    def discriminate(self, x, y=None):
        """D's output on x (and its labels y in a conditional GAN): (m,) logits or scores."""
        return self.D(x, y) if self.conditional else self.D(x)

    def random_labels(self, m):
        """Labels for G's samples in a conditional GAN: uniform over the 10 classes."""
        return generator(None).integers(0, 10, size=m) if self.conditional else None

    # ---- what a recipe defines
    def discriminator_objective(self, x, fake, y, y_fake):
        """D's loss on data x and samples fake (detached), with their labels in a
        conditional GAN; returns (loss, scalars to log)."""
        raise NotImplementedError

    def generator_objective(self, fake, y_fake):
        """G's loss on its samples fake (with a graph to G, D frozen); returns (loss,
        scalars)."""
        raise NotImplementedError

    def after_discriminator_step(self):
        """Called after every update of D (WGAN clips its weights here)."""

    # ---- one step of Algorithm 1
    def training_step(self, batch):
        x, y = batch if self.conditional else (batch, None)
        m = x.shape[0]
        self.G.train()
        self.D.train()
        # D's update, G frozen: its samples carry no graph back to its weights
        y_fake = self.random_labels(m)
        with no_grad():
            fake = self.generate(self.noise(m), y_fake)
        d_loss, scalars = self.discriminator_objective(x, fake, y, y_fake)
        self.update(d_loss, self.opt_d)
        self.after_discriminator_step()
        # G's update after every k-th update of D, D frozen: no gradient lands in D
        if (self.step + 1) % self.k == 0:
            y_fake = self.random_labels(m)
            with frozen(self.D):
                g_loss, g_scalars = self.generator_objective(
                    self.generate(self.noise(m), y_fake), y_fake)
                self.update(g_loss, self.opt_g)
            if self.ema_g is not None:
                self.ema_g.update()
            scalars.update(g_scalars)
        self.take_snapshot()
        return scalars

    # ---- sampling
    def _sample_raw(self, z, y=None):
        """G's output at z in eval mode, with the EMA weights when kept (the EMA averages
        the parameters; batch normalisation keeps the live G's running statistics)."""
        self.G.eval()
        with no_grad():
            if self.ema_g is not None:
                with self.ema_g.average_parameters():
                    return self.generate(z, y).numpy()
            return self.generate(z, y).numpy()

    def sample(self, n, y=None):
        """n samples: images (n, 1, 28, 28) in [0, 1], or points (n, 2). A conditional
        GAN cycles through the classes 0..9 unless given labels y (n,)."""
        if self.conditional and y is None:
            y = np.arange(n) % 10
        out = self._sample_raw(self.noise(n), y)
        return out if self.toy else (out + 1) / 2

    def fixed_noise(self, n=FIXED_Z):
        """The same z (and labels) at every snapshot and in every picture."""
        z = generator(1234).standard_normal((n, self.config["latent_dim"])).astype(np.float32)
        return tensor(z, device=self.device), (np.arange(n) % 10 if self.conditional else None)

    def take_snapshot(self):
        """At ten moments of training (and the last step) keep G's output at the fixed
        z: 10 images, or 1000 points of a toy set."""
        every = max(1, self.total_steps // SNAPSHOTS)
        step = self.step + 1
        if step % every and step != self.total_steps:
            return
        if self.toy:
            z = tensor(generator(1234).standard_normal(
                (1000, self.config["latent_dim"])).astype(np.float32), device=self.device)
            self.snapshots[step] = self._sample_raw(z)
        else:
            self.snapshots[step] = (self._sample_raw(*self.fixed_noise()) + 1) / 2
        self.G.train()

    def snapshot_steps(self):
        """The steps of at most SNAPSHOTS snapshots, evenly spread, the last included (a
        run extended to a new total has taken them at two spacings)."""
        steps = sorted(self.snapshots)
        if len(steps) <= SNAPSHOTS:
            return steps
        picks = np.linspace(0, len(steps) - 1, SNAPSHOTS).round().astype(int)
        return [steps[i] for i in picks]

    # ---- evaluation
    @no_grad()
    def evaluate(self):
        """Toy mixtures: modes_covered and high_quality_fraction of 10,000 samples
        (``metrics.mode_coverage``: within 3 standard deviations of a mode). Images:
        fid_lenet of eval_n (10,000) samples, unless eval_fid is off."""
        n = self.config.get("eval_n", 10000)
        metrics = {}   # empty where no measure applies (another toy set; no classifier)
        if self.toy:
            if self.config["dataset"] in ("8gaussians", "25gaussians"):
                from ...metrics import mode_coverage
                samples = np.concatenate([self.sample(min(1000, n - i))
                                          for i in range(0, n, 1000)])
                centers, std = data.toy_modes(self.config["dataset"])
                cover = mode_coverage(samples, centers, std)
                metrics.update(modes_covered=int(cover["modes_covered"]),
                               high_quality_fraction=float(cover["high_quality_fraction"]),
                               eval_images=n)
            return metrics
        if self.config.get("eval_fid", True):
            metrics["eval_images"] = n
            from ..classifier import fid
            samples = np.concatenate([self.sample(min(1000, n - i)) for i in range(0, n, 1000)])
            metrics["fid_lenet"] = fid(samples, self.config["dataset"], device=self.device,
                                       data_root=self.config.get("data_root"))
        return metrics

    # ---- pictures
    @no_grad()
    def save_pictures(self, run_dir):
        """samples.png, progress.png, interpolations.png (see the module docstring)."""
        if self.toy:
            return self.save_toy_pictures(run_dir)
        from ...plot import save_image_grid
        save_image_grid(self.sample(64), os.path.join(run_dir, "samples.png"), nrow=8)
        if self.snapshots:
            steps = self.snapshot_steps()
            save_image_grid(np.concatenate([self.snapshots[s] for s in steps]),
                            os.path.join(run_dir, "progress.png"), nrow=FIXED_Z,
                            labels=[str(s) for s in steps])
        # G along straight lines between pairs of the fixed z: 6 rows of 10 frames
        z, y = self.fixed_noise(12)
        t = np.linspace(0, 1, 10, dtype=np.float32).reshape(1, 10, 1)
        za, zb = z.numpy()[0::2, None], z.numpy()[1::2, None]                 # (6, 1, d)
        path = ((1 - t) * za + t * zb).reshape(-1, z.shape[1])
        labels = None if y is None else np.repeat(y[0::2], 10)
        frames = (self._sample_raw(tensor(path, device=self.device), labels) + 1) / 2
        save_image_grid(frames, os.path.join(run_dir, "interpolations.png"), nrow=10)

    def discriminator_field(self, points):
        """What D says at 2-D points (G, 2) -> (G,): D(x) = sigmoid(logit) for a GAN (a
        critic overrides this with its raw score)."""
        return self.discriminate(points).sigmoid()

    def save_toy_pictures(self, run_dir):
        """samples.png: 2000 samples over the data, on D's contours; progress.png."""
        from ...plot import evaluate_on_grid, new_figure, plot_2d_panels, save_figure
        x = self.images("test")[0][:2000]
        s = self.sample(2000)
        lo, hi = float(min(x.min(), -4.5)), float(max(x.max(), 4.5))
        self.D.eval()
        xs, ys, field = evaluate_on_grid(lambda p: self.discriminator_field(p).numpy(),
                                         lim=(lo, hi), resolution=120, device=self.device)
        fig = new_figure((5.4, 5), layout="constrained")
        ax = fig.add_subplot()
        cs = ax.contourf(xs, ys, field, levels=20, cmap="coolwarm", alpha=0.6)
        fig.colorbar(cs, ax=ax, label=self.field_label)
        ax.scatter(x[:, 0], x[:, 1], s=3, c="k", alpha=0.4, linewidths=0, label="data")
        ax.scatter(s[:, 0], s[:, 1], s=3, c="C2", alpha=0.7, linewidths=0, label="G(z)")
        ax.set_xlim(lo, hi)
        ax.set_ylim(lo, hi)
        ax.set_aspect("equal")
        ax.legend(loc="upper right", markerscale=3, fontsize=8)
        save_figure(fig, os.path.join(run_dir, "samples.png"))
        if self.snapshots:
            plot_2d_panels([(f"step {st}", self.snapshots[st]) for st in self.snapshot_steps()],
                           x, os.path.join(run_dir, "progress.png"), (lo, hi), color="C2")

    field_label = "D(x)"

