"""The variational autoencoder (Kingma & Welling 2014) and the importance-weighted bound
(Burda, Grosse & Salakhutdinov 2016).

Generative model, a latent z and an image x:

    p(z) = N(0, I),     p_theta(x | z) = Bernoulli(x; sigmoid(g_theta(z)))   (binary x)
                                      or N(x; g_theta(z), sigma_x^2 I)         (grey levels)

Inference model (the encoder), a diagonal Gaussian:

    q_phi(z | x) = N(z; mu_phi(x), diag sigma_phi^2(x)),   encoder outputs mu and log sigma^2.

The evidence lower bound (ELBO) on log p_theta(x):

    log p(x) >= ELBO(x) = E_{q(z|x)}[log p_theta(x | z)] - KL(q_phi(z | x) || p(z)),

the expected reconstruction log-likelihood minus a KL term that has a closed form for
two Gaussians,

    KL = 1/2 sum_j (mu_j^2 + sigma_j^2 - 1 - log sigma_j^2).

Reparameterisation: z = mu + sigma * eps with eps ~ N(0, I) makes z a differentiable
function of (mu, sigma), so the Monte Carlo estimate of the ELBO has gradients with
respect to the encoder's parameters. A weight beta on the KL gives the beta-VAE.

The importance-weighted bound with k samples z_1..z_k ~ q(z | x),

    L_k(x) = E[ log (1/k) sum_i w_i ],   w_i = p_theta(x, z_i) / q_phi(z_i | x),

equals the ELBO for k = 1, never decreases with k, and tends to log p(x) as k grows. With
k = 5000 it estimates the test log-likelihood; training on L_k with k > 1 is the IWAE.
log (1/k) sum exp(log w_i) is computed as a log-mean-exp, so nothing overflows.
"""
from __future__ import annotations

import math

import numpy as np

from .. import backend, data, nn, no_grad, optim, randn, tensor
from ..metrics import bits_per_dim, log_mean_exp
from ..nn import functional as F
from ..ops import cat, logsumexp
from ..random import generator
from ..train import Experiment
from . import register
from .networks import ConvDecoder, ConvEncoder, glorot_init_, mlp

LOG_2PI = math.log(2 * math.pi)
ACTIVATIONS = {"tanh": nn.Tanh, "relu": nn.ReLU, "softplus": nn.Softplus}


def gaussian_kl_standard(mu, logvar):
    """KL(N(mu, diag sigma^2) || N(0, I)) per sample, in closed form:
    1/2 sum_j (mu_j^2 + sigma_j^2 - 1 - log sigma_j^2).  mu, logvar (N, d) -> (N,)."""
    return 0.5 * (mu * mu + logvar.exp() - 1 - logvar).sum(axis=-1)


def gaussian_log_density(z, mu, logvar):
    """log N(z; mu, diag exp(logvar)) summed over the last axis."""
    return -0.5 * (((z - mu) ** 2) * (-logvar).exp() + logvar + LOG_2PI).sum(axis=-1)


def pixel_marginal_logits(x_mean, eps: float = 1e-3):
    """logit(m) = log(m / (1 - m)) of the mean training image m, clipped to [eps, 1 - eps]:
    (784,). As the output bias of a Bernoulli decoder it starts training at the model of
    independent pixels, each with its frequency in the data, instead of at 1/2 for every
    pixel (about 206 nats per MNIST digit instead of 543), as Burda et al. did."""
    m = np.clip(np.asarray(x_mean, dtype=np.float64).reshape(-1), eps, 1 - eps)
    return np.log(m / (1 - m)).astype(np.float32)


def set_bias(layer, values):
    """Overwrite a layer's bias with ``values`` (on the layer's device)."""
    xp = backend.get_array_module(layer.bias.data)
    layer.bias.data[...] = xp.asarray(values, dtype=layer.bias.data.dtype)


def reparameterize(mu, logvar, k: int | None = None):
    """z = mu + sigma * eps, eps ~ N(0, I): a sample of N(mu, sigma^2) that is a
    differentiable function of mu and logvar = log sigma^2.  (N, d) -> (N, d), or
    (k, N, d) with k samples each."""
    shape = mu.shape if k is None else (k,) + mu.shape
    eps = randn(*shape, dtype=mu.dtype, device=mu.device)
    return mu + (0.5 * logvar).exp() * eps


def importance_weighted_bound(log_weights, x, k: int, chunk: int = 500):
    """L_k(x) = log (1/k) sum_i w_i per sample (N,), from ``log_weights(x, k)`` -> (k, N)
    with log w_i = log p(x, z_i) - log q(z_i | x). Differentiable (the IWAE objective).
    The k samples are drawn ``chunk`` at a time and the chunks' log-sums combined with
    logsumexp, so k = 5000 fits in memory."""
    if k <= chunk:
        return log_mean_exp(log_weights(x, k), axis=0)
    parts = [logsumexp(log_weights(x, min(chunk, k - i)), axis=0, keepdims=True)
             for i in range(0, k, chunk)]
    return logsumexp(cat(parts, axis=0), axis=0) - math.log(k)


class VAE(nn.Module):
    """A VAE on 28x28 images.

    Args:
        latent_dim: d, the size of z.
        hidden: width of the hidden layers ("mlp": two layers of it, as in Burda et al.).
        likelihood: "bernoulli" (binary x, decoder gives logits) or "gaussian" (x in
            [0, 1], decoder gives the mean; a learned scalar log sigma_x).
        network: "mlp" or "conv".
        activation: of the MLP's hidden layers ("tanh", "relu" or "softplus").
        encoder, decoder: modules to use instead (e.g. a linear model whose exact
            posterior is known): encoder x (N, D) -> (N, 2d) = [mu, log sigma^2],
            decoder z (M, d) -> (M, D); then data_dim D need not be 784.
    """

    def __init__(self, latent_dim: int = 50, hidden: int = 200, likelihood: str = "bernoulli",
                 network: str = "mlp", activation: str = "tanh", data_dim: int = 784,
                 encoder: nn.Module | None = None, decoder: nn.Module | None = None):
        super().__init__()
        if likelihood not in ("bernoulli", "gaussian"):
            raise ValueError(f"likelihood must be 'bernoulli' or 'gaussian', got {likelihood!r}")
        self.latent_dim, self.likelihood, self.data_dim = latent_dim, likelihood, data_dim
        act = ACTIVATIONS[activation]
        if encoder is not None and decoder is not None:
            self.encoder, self.decoder, network = encoder, decoder, "given"
        elif network == "mlp":  # initialised as in Burda et al. (see init_output_bias too)
            self.encoder = glorot_init_(mlp([data_dim, hidden, hidden, 2 * latent_dim], act))
            self.decoder = glorot_init_(mlp([latent_dim, hidden, hidden, data_dim], act))
        elif network == "conv":
            self.encoder = ConvEncoder(2 * latent_dim)
            self.decoder = nn.Sequential(ConvDecoder(latent_dim), nn.Flatten())
        else:
            raise ValueError(f"network must be 'mlp' or 'conv', got {network!r}")
        self.network = network
        if likelihood == "gaussian":
            self.log_sigma_x = nn.Parameter(np.zeros(1, np.float32))

    # ---- q_phi(z | x)
    def encode(self, x):
        """x (N, 1, 28, 28) or (N, D) -> mu, log sigma^2, each (N, d)."""
        h = self.encoder(x if self.network == "conv" else x.flatten(1))
        return h[:, :self.latent_dim], h[:, self.latent_dim:]

    # ---- p_theta(x | z)
    def decode(self, z):
        """z (..., d) -> decoder output (..., D): logits (bernoulli) or means (gaussian)."""
        lead = z.shape[:-1]
        out = self.decoder(z.reshape(-1, self.latent_dim))
        return out.reshape(*lead, self.data_dim)

    def log_likelihood(self, x, out):
        """log p_theta(x | z) summed over pixels; x (N, D), out (..., N, D) -> (..., N)."""
        if self.likelihood == "bernoulli":
            # log Bernoulli(x; sigmoid(l)) = x l - softplus(l), exact for any logit l
            return (x * out - F.softplus(out)).sum(axis=-1)
        log_var = 2 * self.log_sigma_x
        return -0.5 * (((x - out) ** 2) * (-log_var).exp() + log_var + LOG_2PI).sum(axis=-1)

    def init_output_bias(self, x_mean):
        """Make the untrained Bernoulli decoder give every pixel its frequency in the
        training data (see pixel_marginal_logits). x_mean: the mean training image."""
        if self.likelihood == "bernoulli" and self.network == "mlp":
            set_bias(self.decoder[-1], pixel_marginal_logits(x_mean))

    def mean(self, out):
        """The mean of p_theta(x | z) as an image in [0, 1]: (..., 784) -> (..., 1, 28, 28)."""
        m = out.sigmoid() if self.likelihood == "bernoulli" else out.clip(0.0, 1.0)
        return m.reshape(*out.shape[:-1], 1, 28, 28)

    # ---- the bounds
    def elbo(self, x, beta: float = 1.0):
        """The two terms of the ELBO for a batch x (N, 1, 28, 28), each (N,):
        the reconstruction term log p_theta(x | z), z ~ q(z|x) one sample, and the
        KL(q(z|x) || p(z)) in closed form. ELBO = recon - KL (beta-VAE: recon - beta KL)."""
        mu, logvar = self.encode(x)
        z = reparameterize(mu, logvar)
        recon = self.log_likelihood(x.flatten(1), self.decode(z))
        return recon, gaussian_kl_standard(mu, logvar)

    def log_weights(self, x, k: int):
        """log w_i = log p(x | z_i) + log p(z_i) - log q(z_i | x) for k samples
        z_i ~ q(z|x): (k, N)."""
        mu, logvar = self.encode(x)
        z = reparameterize(mu, logvar, k)                           # (k, N, d)
        log_px_z = self.log_likelihood(x.flatten(1), self.decode(z))
        log_pz = -0.5 * (z * z + LOG_2PI).sum(axis=-1)
        log_qz = gaussian_log_density(z, mu, logvar)
        return log_px_z + log_pz - log_qz

    def iwae_bound(self, x, k: int, chunk: int = 500):
        """L_k(x) = log (1/k) sum_i w_i per sample (N,); see importance_weighted_bound."""
        return importance_weighted_bound(self.log_weights, x, k, chunk)

    @no_grad()
    def sample(self, n: int, device: str = "cpu"):
        """n images from p(z) p_theta(x|z), shown as the means of p(x|z): (n, 1, 28, 28)."""
        z = randn(n, self.latent_dim, device=device)
        return self.mean(self.decode(z))


# --------------------------------------------------------------------------- the experiment

def binarize_batch(batch, g):
    """Dynamic binarisation: a fresh x ~ Bernoulli(grey level) for every batch."""
    x, *rest = batch if isinstance(batch, tuple) else (batch,)
    x = data.binarize(x, g)
    return (x, *rest) if rest else x


@register
class VAEExperiment(Experiment):
    """Train a VAE (or, with k > 1, an IWAE) on dynamically binarised MNIST."""

    name = "vae"
    datasets = data.DATASETS
    description = "variational autoencoder; k > 1 trains the IWAE bound"
    defaults = {"latent_dim": 50, "hidden": 200, "network": "mlp", "activation": "tanh",
                "likelihood": "bernoulli", "beta": 1.0, "k": 1, "batch_size": 100,
                "lr": 1e-3, "lr_schedule": "cosine", "epochs": 10, "eval_k": 5000,
                "eval_n": 10000, "eval_fid": True}

    def __init__(self, config):
        super().__init__(config)
        self.model = VAE(config["latent_dim"], config["hidden"], config["likelihood"],
                         config["network"], config["activation"]).to(config["device"])
        self.opt = optim.Adam(self.model.parameters(), lr=config["lr"])

    def modules(self):
        return {"model": self.model}

    def optimizers(self):
        return {"opt": self.opt}

    def _images(self, split):
        images, labels = data.load_dataset(self.config["dataset"], split,
                                           self.config.get("data_root"))
        return data.scale(images, to=(0, 1)).reshape(-1, 1, 28, 28), labels

    def train_loader(self):
        x, _ = self._images("train")
        binary = self.config["likelihood"] == "bernoulli"
        if binary:  # p(x|z) starts at the pixels' marginals (a resumed run then loads its own)
            self.model.init_output_bias(x.mean(axis=0))
        return data.DataLoader(x, batch_size=self.config["batch_size"], shuffle=True,
                               seed=self.config.get("seed", 0), device=self.config["device"],
                               transform=binarize_batch if binary else None)

    def learning_rate(self) -> float:
        """lr, or with lr_schedule "cosine" lr (1 + cos(pi t / T)) / 2 at step t of T,
        down to lr / 100: big steps first, small ones to settle into a good optimum."""
        lr = self.config["lr"]
        if self.config.get("lr_schedule", "constant") == "cosine":
            progress = min(1.0, self.step / max(1, self.total_steps))
            lr = lr / 100 + (lr - lr / 100) * 0.5 * (1 + math.cos(math.pi * progress))
        return lr

    def training_step(self, x):
        self.model.train()
        for group in self.opt.param_groups:
            group["lr"] = self.learning_rate()
        k, beta = self.config["k"], self.config["beta"]
        if k == 1:
            recon, kl = self.model.elbo(x, beta)
            loss = -(recon - beta * kl).mean()
            scalars = {"loss": loss.item(), "recon": -recon.mean().item(), "kl": kl.mean().item(),
                       "lr": self.opt.param_groups[0]["lr"]}
        else:
            loss = -self.model.iwae_bound(x, k, chunk=k).mean()
            scalars = {"loss": loss.item()}
        self.opt.zero_grad()
        loss.backward()
        self.opt.step()
        return scalars

    def sample(self, n):
        return self.model.sample(n, self.config["device"]).numpy()

    def test_batches(self, batch_size=100):
        """The test images, binarised once with a fixed seed (for a likelihood that
        does not change from one evaluation to the next)."""
        x, labels = self._images("test")
        n = self.config.get("eval_n", len(x))
        x, labels = x[:n], labels[:n]
        if self.config["likelihood"] == "bernoulli":
            x = data.binarize(x, generator(1234))
        for i in range(0, len(x), batch_size):
            yield tensor(x[i:i + batch_size], device=self.config["device"]), labels[i:i + batch_size]

    @no_grad()
    def evaluate(self):
        """Test ELBO and the test log-likelihood estimated with the IWAE bound at
        k = eval_k (5000 as in Burda et al.), in nats and bits/dim."""
        from tqdm import tqdm
        self.model.eval()
        k = self.config.get("eval_k", 5000)
        elbos, bounds = [], []
        batch_size = max(1, 20000 // max(k, 1))
        n = self.config.get("eval_n", 10000)
        batches = tqdm(self.test_batches(batch_size=batch_size), total=-(-n // batch_size),
                       desc=f"test NLL, IWAE k={k}", unit="batch", leave=False,
                       disable=n * k < 10 ** 6)
        for x, _ in batches:
            recon, kl = self.model.elbo(x)
            elbos.append((recon - kl).numpy())
            bounds.append(self.model.iwae_bound(x, k).numpy())
        nll = -float(np.concatenate(bounds).mean())
        metrics = {"test_elbo": float(np.concatenate(elbos).mean()),
                   f"test_nll_iwae_k{k}": nll, "bits_per_dim": float(bits_per_dim(nll, 784)),
                   "eval_images": int(sum(len(b) for b in bounds))}
        if self.config.get("eval_fid", True) and self.config["dataset"] in data.DATASETS:
            # FID (LeNet features) of 10,000 samples; trains the classifier once if needed
            from .classifier import fid
            samples = np.concatenate([self.sample(1000) for _ in range(10)])
            metrics["fid_samples_vs_test"] = fid(samples, self.config["dataset"],
                                                 device=self.config["device"],
                                                 data_root=self.config.get("data_root"))
        return metrics

    @no_grad()
    def save_pictures(self, run_dir):
        """Reconstructions beside inputs, samples, interpolations, and the latent
        manifold when the latent space is 2-D."""
        import os
        from ..plot import save_image_grid
        self.model.eval()
        x, _ = next(self.test_batches(batch_size=32))
        mu, _ = self.model.encode(x)
        recon = self.model.mean(self.model.decode(mu)).numpy()
        pairs = np.stack([x.numpy(), recon], axis=1).reshape(-1, 1, 28, 28)
        save_image_grid(pairs, os.path.join(run_dir, "reconstructions.png"), nrow=16)
        save_image_grid(self.sample(64), os.path.join(run_dir, "samples.png"), nrow=8)
        # interpolations: decode (1 - t) mu_a + t mu_b between pairs of test digits
        t = tensor(np.linspace(0, 1, 10, dtype=np.float32).reshape(10, 1, 1),
                   device=self.config["device"])
        path = (1 - t) * mu[0:8:2].unsqueeze(0) + t * mu[1:8:2].unsqueeze(0)   # (10, 4, d)
        frames = self.model.mean(self.model.decode(path)).numpy()              # (10, 4, 1, 28, 28)
        save_image_grid(frames.transpose(1, 0, 2, 3, 4).reshape(-1, 1, 28, 28),
                        os.path.join(run_dir, "interpolations.png"), nrow=10)
        if self.model.latent_dim == 2:  # the learned manifold: decode a grid of z
            from statistics import NormalDist
            q = [NormalDist().inv_cdf(p) for p in np.linspace(0.05, 0.95, 15)]
            z = np.array([[a, b] for b in q[::-1] for a in q], np.float32)
            grid = self.model.mean(self.model.decode(tensor(z, device=self.config["device"])))
            save_image_grid(grid.numpy(), os.path.join(run_dir, "manifold.png"), nrow=15)
