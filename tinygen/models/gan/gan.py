"""The generative adversarial network (Goodfellow et al. 2014, "Generative Adversarial
Nets"): a generator G and a discriminator D in a two-player minimax game.

The game. G maps noise z ~ p_z = N(0, I) to a sample G(z), whose distribution is p_g;
D(x) in (0, 1) is the probability D gives that x came from the data, not from G:

    min_G max_D V(D, G) = E_{x ~ p_data}[log D(x)] + E_{z ~ p_z}[log(1 - D(G(z)))].   (1)

The optimal discriminator. For a fixed G, V is maximised point by point at

    D*(x) = p_data(x) / (p_data(x) + p_g(x)),                                          (2)

and there V(D*, G) = -log 4 + 2 JSD(p_data || p_g), with the Jensen-Shannon divergence
JSD(p || q) = 1/2 KL(p || m) + 1/2 KL(q || m), m = (p + q) / 2. The JSD is 0 only at
p_g = p_data, so the game's equilibrium is p_g = p_data, D* = 1/2 everywhere and
V = -log 4 (Goodfellow et al., Proposition 1 and Theorem 1).

The algorithm (Goodfellow et al., Algorithm 1): for each generator step,

    k times:  sample x_1..x_m ~ p_data, z_1..z_m ~ p_z; with G frozen, ascend
              (1/m) sum_i [log D(x_i) + log(1 - D(G(z_i)))]                 in D's weights;
    once:     sample z_1..z_m ~ p_z; with D frozen, descend
              (1/m) sum_i log(1 - D(G(z_i)))                                in G's weights.

The generator's two losses. Early on D rejects G's samples confidently, D(G(z)) -> 0,
where log(1 - D) is flat: the minimax ("saturating") loss gives G almost no gradient.
Goodfellow et al. suggest G maximise log D(G(z)) instead, the "non-saturating" loss
-log D(G(z)): the same fixed point, strong gradients where G is bad. With D = sigmoid(l)
for a logit l, d/dl log(1 - sigmoid(l)) = -sigmoid(l) -> 0 as l -> -inf, while
d/dl [-log sigmoid(l)] = sigmoid(l) - 1 -> -1.

From logits. D's network outputs the logit l = logit D(x); every log above is then a
softplus, exact for any l (never the log of a sigmoid rounded to 0 or 1):

    log D = log sigmoid(l) = -softplus(-l),      log(1 - D) = -softplus(l).

Symbols and code:

    symbol              code                            shape
    z ~ p_z             sample_noise(m) / G.sample(m)   (m, latent_dim)
    G(z)                G(z)                            (m, *data_shape)
    logit D(x)          D(x)                            (m,) logits
    V(D, G)             value(D(x), D(G(z)))            scalar, nats
    D's loss, -V        discriminator_loss(...)         scalar
    G's loss            generator_loss(D(G(z)), kind)   scalar; kind "minimax" or
                                                        "non_saturating"
    D*(x)               optimal_discriminator(p, q)     arrays of densities
    JSD(p || q)         jensen_shannon(p, q, dx)        float, nats
    freezing            frozen(D)                       a context
"""
from __future__ import annotations

import contextlib

import numpy as np

from ... import nn, randn
from ...nn import functional as F
from ..networks import mlp

GENERATOR_LOSSES = ("non_saturating", "minimax")


# --------------------------------------------------------------------------- the game, eq. (1)

def value(real_logits, fake_logits):
    """V(D, G) estimated on a batch, eq. (1): mean log D(x) + mean log(1 - D(G(z))), in
    nats (<= 0; -log 4 at the equilibrium).

    Args:
        real_logits: (m,) logits of D on data x.
        fake_logits: (m',) logits of D on generated G(z).
    """
    return F.logsigmoid(real_logits).mean() + F.logsigmoid(-fake_logits).mean()


def discriminator_loss(real_logits, fake_logits):
    """-V(D, G): D ascends V by descending this, the cross-entropy of telling data
    (label 1) from samples (label 0): mean softplus(-l_real) + mean softplus(l_fake)."""
    return F.softplus(-real_logits).mean() + F.softplus(fake_logits).mean()


def generator_loss(fake_logits, kind: str = "non_saturating"):
    """The generator's loss from D's logits on its samples, to be minimised.

    kind "minimax": mean log(1 - D(G(z))) = -mean softplus(l), the term of V itself;
    its gradient vanishes when D rejects the samples (l -> -inf).
    kind "non_saturating": -mean log D(G(z)) = mean softplus(-l) (Goodfellow et al.,
    section 3), the same fixed point with strong gradients early on.

    Raises ValueError for another kind.
    """
    if kind == "minimax":
        return -F.softplus(fake_logits).mean()
    if kind == "non_saturating":
        return F.softplus(-fake_logits).mean()
    raise ValueError(f"generator loss {kind!r}: choose one of {', '.join(GENERATOR_LOSSES)}")


# --------------------------------------------------------------------------- eq. (2), the JSD

def optimal_discriminator(p_data, p_g):
    """D*(x) = p_data(x) / (p_data(x) + p_g(x)), eq. (2), from the two densities at the
    same points (arrays of equal shape); 1/2 where both vanish."""
    p, q = np.asarray(p_data, np.float64), np.asarray(p_g, np.float64)
    total = p + q
    return np.where(total > 0, p / np.where(total > 0, total, 1), 0.5)


def jensen_shannon(p, q, dx: float) -> float:
    """JSD(p || q) = 1/2 KL(p || m) + 1/2 KL(q || m), m = (p + q) / 2, in nats, by
    numerical integration: p and q are densities on a regular grid whose cells have
    volume dx (0 <= JSD <= log 2)."""
    p, q = np.asarray(p, np.float64), np.asarray(q, np.float64)
    m = (p + q) / 2

    def kl_to_m(a):  # 0 log 0 = 0
        safe = a > 0
        return np.sum(a[safe] * np.log(a[safe] / m[safe])) * dx
    return float(0.5 * kl_to_m(p) + 0.5 * kl_to_m(q))


# --------------------------------------------------------------------------- freezing

@contextlib.contextmanager
def frozen(*modules):
    """Within the block the modules' parameters do not require gradients: a backward pass
    through them reaches what lies before them (G, through D) but leaves no gradient in
    them. Restores each parameter's own setting afterwards."""
    params = [p for m in modules for p in m.parameters()]
    before = [p.requires_grad for p in params]
    for p in params:
        p.requires_grad = False
    try:
        yield
    finally:
        for p, flag in zip(params, before):
            p.requires_grad = flag


# --------------------------------------------------------------------------- the networks

class Generator(nn.Module):
    """G: z (m, latent_dim) -> x (m, *data_shape), an MLP with LeakyReLU(0.2) hidden
    layers; a tanh output for pixels in [-1, 1] (``output="tanh"``) or a linear one for
    points in R^D (``output="linear"``, the 2-D toy sets).

    Raises ValueError for an unknown output.
    """

    def __init__(self, latent_dim: int, data_shape, hidden=(256, 512), output: str = "tanh"):
        super().__init__()
        if output not in ("tanh", "linear"):
            raise ValueError(f"Generator output {output!r}: choose 'tanh' or 'linear'")
        self.latent_dim, self.data_shape = latent_dim, tuple(data_shape)
        final = nn.Tanh if output == "tanh" else None
        self.net = mlp([latent_dim, *hidden, int(np.prod(self.data_shape))],
                       activation=lambda: nn.LeakyReLU(0.2), final_activation=final)

    def forward(self, z):
        return self.net(z).reshape(-1, *self.data_shape)

    def sample(self, m: int):
        """m samples G(z), z ~ N(0, I)."""
        return self(sample_noise(m, self.latent_dim, _device(self)))


class Discriminator(nn.Module):
    """D: x (m, *data_shape) -> (m,) logits of D(x), an MLP with LeakyReLU(0.2) hidden
    layers (no sigmoid: the losses take logits)."""

    def __init__(self, data_shape, hidden=(512, 256)):
        super().__init__()
        self.data_shape = tuple(data_shape)
        self.net = mlp([int(np.prod(self.data_shape)), *hidden, 1],
                       activation=lambda: nn.LeakyReLU(0.2))

    def forward(self, x):
        return self.net(x.reshape(x.shape[0], -1)).reshape(-1)


def sample_noise(m: int, latent_dim: int, device: str = "cpu"):
    """z_1..z_m ~ p_z = N(0, I): a (m, latent_dim) Tensor."""
    return randn(m, latent_dim, device=device)


def _device(module) -> str:
    return next(iter(module.parameters())).device
