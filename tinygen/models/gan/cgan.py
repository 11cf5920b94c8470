"""The conditional GAN (Mirza & Osindero 2014, "Conditional Generative Adversarial Nets"),
with an optional projection discriminator (Miyato & Koyama 2018, "cGANs with Projection
Discriminator").

Both players see the label y (one of K classes), and the game of ``gan.py`` becomes

    min_G max_D V(D, G) = E_{x, y ~ p_data}[log D(x | y)]
                        + E_{z ~ p_z, y ~ p(y)}[log(1 - D(G(z | y) | y))].

G must then produce a sample that D accepts *as a y*: asking G(z | y) for y = 3 draws
a three.

How y enters (Mirza & Osindero, section 4.1: "y is fed into both the discriminator and
generator as additional input layer"):

- G reads [z, onehot(y)], the noise with the one-hot label appended;
- D, "concat": reads the image with K extra input channels, channel y filled with ones
  and the others with zeros, so every filter of the first layer sees the label;
- D, "projection" (Miyato & Koyama, section 3): the logit is
  psi(phi(x)) + embed(y) . phi(x), the unconditional logit plus the inner product of the
  image's features phi(x) with a learned embedding of its label. The optimal logit is
  log p_data(x, y) / p_g(x, y) = log p_data(y|x) / p_g(y|x) + log p_data(x) / p_g(x);
  when both conditionals are log-linear (softmax) in phi(x), the first term is linear in
  phi(x) for each y: the projection. (Miyato & Koyama also used spectral normalisation;
  here D keeps DCGAN's batch normalisation.)

The networks are DCGAN's (``dcgan.py``).

Symbols and code:

    symbol          code                               shape
    y               y                                  (m,) integers in [0, K)
    G(z | y)        G(z, y)                            (m, 1, 28, 28) in [-1, 1]
    logit D(x | y)  D(x, y)                            (m,)
"""
from __future__ import annotations

import numpy as np

from ... import backend, nn, tensor
from ...autograd import Tensor
from ...nn import functional as F
from ...ops import cat
from .dcgan import DCGANDiscriminator, DCGANGenerator
from .gan import sample_noise

CONDITIONINGS = ("concat", "projection")


def one_hot(y, num_classes: int, device: str):
    """Labels y (m,) (a Tensor or array of integers) -> float32 one-hot rows
    (m, num_classes) on the device. Raises ValueError for labels outside [0, K)."""
    labels = backend.to_numpy(y.data if isinstance(y, Tensor) else np.asarray(y))
    return F.one_hot(tensor(labels), num_classes).to(device)


def _device(module) -> str:
    return next(iter(module.parameters())).device


class ConditionalGenerator(nn.Module):
    """G(z | y): z (m, latent_dim) and labels y (m,) -> images (m, 1, 28, 28) in [-1, 1]:
    a DCGAN generator reading [z, onehot(y)].

    Raises ValueError for labels outside [0, num_classes).
    """

    def __init__(self, latent_dim: int = 100, num_classes: int = 10, channels: int = 64):
        super().__init__()
        self.latent_dim, self.num_classes = latent_dim, num_classes
        self.net = DCGANGenerator(latent_dim, channels, extra_features=num_classes)

    def forward(self, z, y):
        return self.net(cat([z, one_hot(y, self.num_classes, z.device)], axis=1))

    def sample(self, y):
        """One sample G(z | y_i), z ~ N(0, I), for each label of y (m,)."""
        return self(sample_noise(y.shape[0] if hasattr(y, "shape") else len(y),
                                 self.latent_dim, _device(self)), y)


class ConditionalDiscriminator(nn.Module):
    """D(x | y): images (m, 1, 28, 28) and labels (m,) -> (m,) logits, through DCGAN's
    discriminator with the label as input planes ("concat") or as a projection.

    Raises ValueError for an unknown conditioning or norm, or labels outside [0, K).
    """

    def __init__(self, num_classes: int = 10, channels: int = 64,
                 conditioning: str = "concat", norm: str = "batch"):
        super().__init__()
        if conditioning not in CONDITIONINGS:
            raise ValueError(f"conditioning {conditioning!r}: choose one of "
                             f"{', '.join(CONDITIONINGS)}")
        self.num_classes, self.conditioning = num_classes, conditioning
        extra = num_classes if conditioning == "concat" else 0
        self.net = DCGANDiscriminator(channels, norm, in_channels=1 + extra)
        if conditioning == "projection":
            self.embed = nn.Embedding(num_classes, self.net.feature_dim)
            nn.init.normal_(self.embed.weight, 0.0, 0.02)

    def forward(self, x, y):
        onehot = one_hot(y, self.num_classes, x.device)                # (m, K)
        if self.conditioning == "concat":
            m, _, h, w = x.shape
            # plane k of sample i is 1 where k = y_i: broadcast (m, K, 1, 1) over h x w
            planes = onehot.reshape(m, self.num_classes, 1, 1).expand(m, self.num_classes,
                                                                       h, w)
            return self.net(cat([x, planes], axis=1))
        phi = self.net.features(x)                                     # (m, F)
        embedded = onehot @ self.embed.weight                          # embed(y), (m, F)
        return self.net.head(phi).reshape(-1) + (embedded * phi).sum(axis=1)
