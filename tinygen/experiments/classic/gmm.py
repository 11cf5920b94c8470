"""Fitting a Gaussian mixture by EM: on the 2-D toy sets directly, on MNIST or
Fashion-MNIST in a PCA space; the model is ``tinygen.models.classic.gmm``.

A training step is one EM iteration on the whole training set: the E-step's
responsibilities (eq. (4) of gmm.py) and the M-step's closed forms (eqs. (6)-(7)). EM
needs no learning rate, no batches and no optimizer, so the recipe has none: its "loader"
hands out one token per step, an epoch is one step, and ``--steps`` (or ``--epochs``)
counts EM iterations. The logged ``log_likelihood`` is the mean log-likelihood, nats per
point, of the parameters each step started from (its E-step computes it on the way); EM
never lowers it. The parameters are buffers of the GaussianMixture module (and, for
images, of the PCA module), so checkpoints, resuming and ``tinygen eval`` work as for
every recipe.

Images: each image is flattened to 784 pixels in [0, 1] and projected onto the top
``pca_dim`` principal directions of the training images (PCA by the SVD of the centred
training set, fitted once when training starts and kept in the checkpoint); the mixture
lives in that space. Samples are decoded back, x = x_bar + z V^T, clipped to [0, 1].

Defaults and where they come from:
    epochs 100: one EM iteration per epoch (and per step); EM has no batch size and no
                                       learning rate (the command has no such options)
    full covariances, reg_covar 1e-6, greedy k-means++ seeding
                                       as scikit-learn's GaussianMixture (whose reg_covar
                                       is added to the diagonal, where here it is a floor
                                       on the eigenvalues, and whose default start runs
                                       k-means after the seeding; here each point goes
                                       to its nearest seed and one M-step follows)
    toy sets: K = 8 components         tinygen's choice: 8 is 8gaussians' number of
                                       modes; there EM is within 1e-6 nats per point of
                                       its maximum after 5 iterations, on two_moons
                                       within 1e-3 after 12 (measured, docs/classic.md)
    images: K = 20 components in a 50-d PCA space
                                       tinygen's choice, measured (docs/classic.md): 50
                                       directions keep 82% of MNIST's pixel variance;
                                       an iteration takes about 1.2 s of CPU

Evaluation (``tinygen eval``): toy sets: nll_nats, the exact test NLL (nats per point),
beside the data's entropy (the floor no model's expected NLL goes below), and on
8gaussians/25gaussians the modes covered by samples (``metrics.mode_coverage``); images:
pca_nll_nats, the test NLL of the PCA codes in nats per image in the pca_dim-dimensional
PCA space -- a density of z, not of the 784 pixels, so NOT comparable with the nll_nats
of the other models (which is why it has its own name) -- with the PCA's reconstruction
error and kept variance, and fid_lenet of decoded samples (with eval_fid), beside
fid_lenet_pca_reconstructions, that of the test images projected and decoded: about the
best FID that decoded samples of this PCA space can reach.
"""
from __future__ import annotations

import math
import os

import numpy as np

from ... import data
from ...data import TOY_DATASETS
from ...models.classic.gmm import COVARIANCE_TYPES, INIT_METHODS, PCA, GaussianMixture
from ...random import generator
from ..base import ConfigError, Experiment, non_negative, one_of

TOY_LIM = 4.5           # the toy sets' pictures show [-4.5, 4.5]^2
PIXELS = 784


class GMMExperiment(Experiment):
    """A Gaussian mixture fitted by EM, one iteration per step, on all the training data
    (2-D points, or images in a PCA space)."""

    name = "gmm"
    defaults = {"components": 20, "covariance": "full", "reg_covar": 1e-6,
                "init": "kmeans++", "pca_dim": 50, "epochs": 100, "batch_size": None, "lr": None,
                "train_n": 0, "eval_n": 10000, "eval_fid": True, "eval_fid_n": 10000}
    toy_defaults = {"components": 8}
    rules = {"covariance": one_of(*COVARIANCE_TYPES), "init": one_of(*INIT_METHODS),
             "train_n": non_negative}
    help = {"components": "K, the mixture's components",
            "covariance": "full or diagonal covariances",
            "reg_covar": "epsilon, the floor on every covariance's eigenvalues",
            "init": "the seeds of the starting clusters: greedy k-means++ or random "
                    "training points",
            "pca_dim": "images: the dimension of the PCA space the mixture lives in",
            "train_n": "use the first n training points (0: all)",
            "eval_n": "test points (images) the evaluation uses",
            "eval_fid": "images: measure FID with LeNet",
            "eval_fid_n": "samples FID uses"}

    def check_config(self):
        super().check_config()
        c = self.config
        if c.get("batch_size") is not None:
            raise ConfigError(f"--batch-size {c['batch_size']!r}: EM uses all the training "
                              "data in every step")
        if c.get("lr") is not None:
            raise ConfigError(f"--lr {c['lr']!r}: EM has no learning rate")
        if c.get("device", "cpu") != "cpu":
            raise ConfigError(f"--device {c['device']!r}: gmm runs on the CPU (its EM is "
                              "NumPy: a few matrix products per iteration)")
        n = c.get("train_n") or None
        if n is not None and n < c["components"]:
            raise ConfigError(f"--train-n {n}: needs at least --components "
                              f"({c['components']}) training points")
        if not self.toy and c["pca_dim"] > PIXELS:
            raise ConfigError(f"--pca-dim {c['pca_dim']}: at most {PIXELS} (the pixels)")

    @property
    def toy(self) -> bool:
        return self.config["dataset"] in TOY_DATASETS

    @property
    def blas_threads(self):
        """1 on the toy sets (products of 2-column matrices), else NumPy's choice
        (Experiment.blas_threads)."""
        return 1 if self.toy else None

    @property
    def dim(self) -> int:
        """The dimension the mixture lives in: 2, or pca_dim."""
        return 2 if self.toy else self.config["pca_dim"]

    # ---- the model: buffers only, no optimizer
    def build_model(self):
        c = self.config
        self.pca = None if self.toy else PCA(PIXELS, c["pca_dim"])
        self._codes = {}
        return GaussianMixture(c["components"], self.dim, c["covariance"], c["reg_covar"])

    def build_optimizer(self):
        return None

    def modules(self):
        return {"model": self.model} if self.toy else {"model": self.model, "pca": self.pca}

    def optimizers(self):
        return {}

    def load_state_dict(self, state):
        super().load_state_dict(state)
        self._codes = {}   # the codes follow the PCA just loaded

    # ---- data
    def images(self, split):
        """The split's images (N, 1, 28, 28) in [0, 1] and labels, or the toy set's points
        (N, 2) and zeros (what ``tinygen sample`` draws samples over)."""
        if self.toy:
            return self.toy_points(split)
        return super().images(split)

    def points(self, split):
        """The split's points as float64 (N, D): a toy set's points, or images flattened
        to (N, 784) in [0, 1]; training: the first train_n (0: all)."""
        x = self.images(split)[0].reshape(-1, self.dim if self.toy else PIXELS)
        n = self.config["train_n"] if split == "train" else 0
        return np.asarray(x[:n] if n else x, np.float64)

    def codes(self, split):
        """What the mixture models: the toy points, or the images' PCA codes (N, pca_dim)."""
        if split not in self._codes:
            x = self.points(split)
            self._codes[split] = x if self.toy else self.pca.transform(x)
        return self._codes[split]

    def train_loader(self):
        """Fit the PCA (images) and initialise the mixture from the training data (a
        resumed run then loads its own from the checkpoint); one token per step: each
        step is one EM iteration on all the training data."""
        c = self.config
        if not self.toy:
            self.pca.fit(self.points("train"))
            self._codes = {}
        self.model.initialize(self.codes("train"), c["init"], seed=c.get("seed", 0))
        return data.DataLoader(np.zeros((1, 1), np.float32), batch_size=1)

    # ---- training
    def training_step(self, token):
        """One EM iteration (E-step, M-step) on all the training data; logs the mean
        log-likelihood of the parameters it started from, nats per point."""
        return {"log_likelihood": self.model.em_step(self.codes("train"))}

    # ---- samples
    def sample(self, n):
        """n samples: points (n, 2) float32, or images (n, 1, 28, 28) in [0, 1], decoded
        from the PCA space and clipped."""
        z, _ = self.model.sample(int(n), generator())
        if self.toy:
            return z.astype(np.float32)
        x = np.clip(self.pca.inverse_transform(z), 0, 1)
        return x.reshape(-1, 1, 28, 28).astype(np.float32)

    # ---- evaluation
    def evaluate(self):
        """Toy sets: nll_nats (exact) beside data_entropy_nats, modes covered; images:
        pca_nll_nats (PCA space), the PCA's reconstruction error, fid_lenet."""
        c = self.config
        z = self.codes("test")[:c["eval_n"]]
        log_p = self.model.log_prob(z)
        nll = float(-log_p.mean())
        stderr = float(log_p.std(ddof=1) / math.sqrt(len(log_p))) if len(log_p) > 1 else 0.0
        if self.toy:
            metrics = {"nll_nats": nll, "nll_estimator": "exact",
                       "nll_standard_error": stderr, "data_variant": "continuous",
                       "eval_images": len(log_p)}
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
            from ...metrics import mode_coverage
            cover = mode_coverage(self.sample(c["eval_n"]), centers, std)
            metrics.update(modes_covered=int(cover["modes_covered"]),
                           high_quality_fraction=float(cover["high_quality_fraction"]),
                           sampler="ancestral")
            return metrics
        x = self.points("test")[:c["eval_n"]]
        recon = self.pca.inverse_transform(z)
        kept = float(self.pca.explained_variance.numpy().sum()
                     / self.pca.total_variance.numpy()[0])
        metrics = {"pca_nll_nats": nll, "pca_nll_standard_error": stderr,
                   "pca_dim": int(c["pca_dim"]), "pca_variance_kept": kept,
                   "pca_recon_mse": float(((recon - x) ** 2).mean()),
                   "data_variant": f"continuous, PCA to {c['pca_dim']} dimensions",
                   "eval_images": len(log_p)}
        if c.get("eval_fid", True):
            from ..classifier import fid
            samples = self.sample(c["eval_fid_n"])
            metrics["fid_lenet"] = fid(samples, c["dataset"], device=self.device,
                                       data_root=c.get("data_root"))
            metrics.update(fid_samples=int(len(samples)), sampler="ancestral, PCA-decoded")
            # what the PCA space itself costs: test images projected and decoded (clipped
            # as the samples are), the FID a perfect density of the codes would about reach
            decoded = np.clip(recon, 0, 1).reshape(-1, 1, 28, 28).astype(np.float32)
            metrics["fid_lenet_pca_reconstructions"] = fid(
                decoded, c["dataset"], device=self.device, data_root=c.get("data_root"))
        return metrics

    # ---- pictures
    def save_pictures(self, run_dir):
        """Toy sets: density.png (p(x) with test points), responsibilities.png (test
        points coloured by their responsibilities, the components' ellipses),
        samples.png; images: samples.png (64 decoded samples), means.png (the components'
        means decoded, by decreasing weight)."""
        from ...plot import plot_2d_density, plot_2d_samples, save_image_grid
        if self.toy:
            x = self.codes("test")[:2000]
            plot_2d_density(self.model.log_prob, os.path.join(run_dir, "density.png"),
                            lim=(-TOY_LIM, TOY_LIM), data=x, as_tensor=False,
                            title=f"GMM, K = {self.model.num_components}: p(x) "
                                  "(red: test points)")
            plot_responsibilities(self.model, x, os.path.join(run_dir, "responsibilities.png"),
                                  lim=(-TOY_LIM, TOY_LIM))
            plot_2d_samples(self.sample(2000), data=x, lim=(-TOY_LIM, TOY_LIM),
                            path=os.path.join(run_dir, "samples.png"),
                            title="GMM samples over the test points")
            return
        save_image_grid(self.sample(64), os.path.join(run_dir, "samples.png"), nrow=8)
        pi, mu, _ = self.model.params
        order = np.argsort(-pi, kind="stable")
        means = np.clip(self.pca.inverse_transform(mu[order]), 0, 1).reshape(-1, 1, 28, 28)
        save_image_grid(means, os.path.join(run_dir, "means.png"),
                        nrow=min(10, len(means)))


# --------------------------------------------------------------------------- pictures

def component_colours(K):
    """K distinct RGB colours (K, 3): tab10 up to 10, tab20 up to 20, else hsv."""
    from matplotlib import colormaps
    if K <= 10:
        return np.array(colormaps["tab10"].colors[:K])
    if K <= 20:
        return np.array(colormaps["tab20"].colors[:K])
    return colormaps["hsv"](np.linspace(0, 1, K, endpoint=False))[:, :3]


def _ellipses(ax, gmm):
    """1- and 2-standard-deviation ellipses (solid, dashed) of each 2-D component, its
    mean a cross, its weight pi_k beside it."""
    from matplotlib.patches import Ellipse
    pi, mu, Sigma = gmm.params
    for k in range(gmm.num_components):
        S = Sigma[k] if gmm.covariance_type == "full" else np.diag(Sigma[k])
        lam, V = np.linalg.eigh(S)
        angle = math.degrees(math.atan2(V[1, 1], V[0, 1]))   # the major axis
        for r in (1, 2):   # drawn in black: over points of their own colour they would vanish
            ax.add_patch(Ellipse(mu[k], 2 * r * math.sqrt(lam[1]), 2 * r * math.sqrt(lam[0]),
                                 angle=angle, fill=False, color="k", lw=0.9,
                                 ls="-" if r == 1 else "--", alpha=0.8 if pi[k] > 0 else 0.3))
        ax.plot(*mu[k], "x", color="k", ms=6, mew=1.5)
        ax.annotate(f"{pi[k]:.2f}", mu[k], textcoords="offset points", xytext=(5, 5),
                    fontsize=7)


def plot_responsibilities(gmm, x, path, lim=(-TOY_LIM, TOY_LIM), title=None):
    """responsibilities.png of a 2-D mixture: two panels of the points x (M, 2), coloured
    by argmax_k gamma_nk (left: the hard assignment) and by the colours of the components
    mixed in the proportions gamma_nk (right: the soft one, grey-brown where components
    share a point), over each component's 1- and 2-standard-deviation ellipses, its mean
    (a cross) and its weight pi_k."""
    from ...plot import new_figure, save_figure
    x = np.asarray(x, np.float64)
    gamma = gmm.responsibilities(x)
    colours = component_colours(gmm.num_components)
    fig = new_figure((10, 4.8), layout="constrained")
    for i, (label, c) in enumerate((("hard: argmax_k gamma_nk", colours[gamma.argmax(1)]),
                                    ("soft: colours mixed by gamma_nk",
                                     np.clip(gamma @ colours, 0, 1)))):
        ax = fig.add_subplot(1, 2, i + 1)
        ax.scatter(x[:, 0], x[:, 1], s=4, c=c, linewidths=0, rasterized=True)
        _ellipses(ax, gmm)
        ax.set_xlim(*lim)
        ax.set_ylim(*lim)
        ax.set_aspect("equal")
        ax.set_title(label, fontsize=10)
    fig.suptitle(title or f"responsibilities of {gmm.num_components} components "
                          "(ellipses: 1 and 2 standard deviations; numbers: pi_k)",
                 fontsize=10)
    return save_figure(fig, path)


def plot_em_vs_gradient(em, gradient, path, title=None, time_label="seconds"):
    """em_vs_gradient.png: the mean log-likelihood (nats per point) of EM and of gradient
    ascent against iterations (left) and against time (right), both axes logarithmic
    (the first point, at time 0, is left out on the right). ``em`` and ``gradient`` are
    pairs (log_likelihood (T + 1,), seconds (T + 1,)), index t the value after t
    iterations; ``time_label`` names the right panel's axis."""
    from ...plot import new_figure, save_figure
    fig = new_figure((10, 4), layout="constrained")
    top = max(np.max(em[0]), np.max(gradient[0]))
    low = min(np.min(em[0]), np.min(gradient[0]))
    for i in range(2):
        ax = fig.add_subplot(1, 2, i + 1)
        for (ll, sec), name, colour in ((em, "EM", "C0"),
                                        (gradient, "gradient ascent (Adam)", "C1")):
            ll, sec = np.asarray(ll), np.asarray(sec)
            if i == 0:
                ax.plot(np.arange(len(ll)) + 1, ll, color=colour, label=name)
            else:
                ax.plot(sec[1:], ll[1:], color=colour, label=name)
        ax.set_xscale("log")
        ax.set_xlabel("iterations + 1 (EM) / updates + 1 (Adam)" if i == 0 else time_label)
        ax.set_ylabel("mean log-likelihood, nats per point")
        ax.set_ylim(low - 0.02 * (top - low), top + 0.05 * (top - low) + 1e-9)
        ax.grid(alpha=0.3)
        ax.legend()
    if title:
        fig.suptitle(title, fontsize=10)
    return save_figure(fig, path)
