"""The deep convolutional GAN (Radford, Metz & Chintala 2016, "Unsupervised Representation
Learning with Deep Convolutional Generative Adversarial Networks"), at MNIST's 28x28.

The game and its losses are those of ``gan.py``; DCGAN is an architecture, with the
guidelines of Radford et al., section 3:

- no pooling: strided convolutions in D (28 -> 14 -> 7) and fractionally-strided
  (transposed) convolutions in G (7 -> 14 -> 28), so each network learns its own
  down- and up-sampling;
- no fully-connected hidden layers: G's only linear layer projects z to the first
  feature maps (2c x 7 x 7), D's only linear layer reads its last feature maps out into
  one logit;
- batch normalisation in both, except at G's output and D's input;
- ReLU in G with tanh at the output (pixels in [-1, 1]); LeakyReLU(0.2) in D;
- weights initialised N(0, 0.02) (section 4), trained with Adam(2e-4, beta_1 = 0.5).

Shapes (c = ``channels``, 64 by default):

    G:  z (m, latent_dim) -> Linear -> (m, 2c, 7, 7) -> BN, ReLU
          -> ConvTranspose 4x4/2 -> (m, c, 14, 14) -> BN, ReLU
          -> ConvTranspose 4x4/2 -> (m, 1, 28, 28) -> tanh
    D:  x (m, 1, 28, 28) -> Conv 4x4/2 -> (m, c, 14, 14) -> LeakyReLU
          -> Conv 4x4/2 -> (m, 2c, 7, 7) -> norm, LeakyReLU -> Linear -> (m,) logits

The critic of WGAN-GP must not use batch normalisation (the penalty is per sample, and
batch statistics couple the samples; Gulrajani et al., section 4): ``norm="layer"``
normalises each sample over its channels and positions instead, and ``norm="none"``
drops it.
"""
from __future__ import annotations

from ... import nn
from .gan import sample_noise

NORMS = ("batch", "layer", "none")


def dcgan_init_(module: nn.Module) -> nn.Module:
    """Radford et al.'s initialisation: every convolution and linear weight ~ N(0, 0.02),
    biases 0; normalisation scales ~ N(1, 0.02), shifts 0."""
    for layer in module.modules():
        if isinstance(layer, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            nn.init.normal_(layer.weight, 0.0, 0.02)
            if layer.bias is not None:
                nn.init.zeros_(layer.bias)
        elif isinstance(layer, (nn.BatchNorm2d, nn.GroupNorm)) and layer.weight is not None:
            nn.init.normal_(layer.weight, 1.0, 0.02)
            nn.init.zeros_(layer.bias)
    return module


def _norm(kind: str, channels: int) -> nn.Module:
    if kind == "batch":
        return nn.BatchNorm2d(channels)
    if kind == "layer":  # one group: each sample standardised over all its features
        return nn.GroupNorm(1, channels)
    if kind == "none":
        return nn.Identity()
    raise ValueError(f"norm {kind!r}: choose one of {', '.join(NORMS)}")


class DCGANGenerator(nn.Module):
    """G: z (m, latent_dim + extra_features) -> images (m, 1, 28, 28) in [-1, 1].

    Args:
        latent_dim: the size of z.
        channels: c, the feature maps at 14x14 (2c at 7x7).
        extra_features: inputs appended to z (a conditional GAN's one-hot label), so
            the first layer reads latent_dim + extra_features numbers.
    """

    def __init__(self, latent_dim: int = 100, channels: int = 64, extra_features: int = 0):
        super().__init__()
        c = channels
        self.latent_dim = latent_dim
        self.net = nn.Sequential(
            nn.Linear(latent_dim + extra_features, 2 * c * 7 * 7),    # the projection of z
            nn.Unflatten(1, (2 * c, 7, 7)), nn.BatchNorm2d(2 * c), nn.ReLU(),
            nn.ConvTranspose2d(2 * c, c, 4, 2, 1), nn.BatchNorm2d(c), nn.ReLU(),  # 14x14
            nn.ConvTranspose2d(c, 1, 4, 2, 1), nn.Tanh())                         # 28x28
        dcgan_init_(self)

    def forward(self, z):
        return self.net(z)

    def sample(self, m: int):
        """m samples G(z), z ~ N(0, I) (an unconditional generator only)."""
        return self(sample_noise(m, self.latent_dim, next(iter(self.parameters())).device))


class DCGANDiscriminator(nn.Module):
    """D: images (m, in_channels, 28, 28) -> (m,) logits (no sigmoid).

    ``features(x)`` is the (m, 2c*7*7) output of the convolutions, the layer whose
    activations a VAE-GAN compares and a projection discriminator projects. With
    ``norm="batch"`` in training mode it depends on the whole batch, not on x alone.

    Args:
        channels: c, the feature maps at 14x14 (2c at 7x7).
        norm: "batch" (DCGAN), "layer" (a WGAN-GP critic) or "none".
        in_channels: 1 for grey images; a conditional GAN adds its label planes.
    """

    def __init__(self, channels: int = 64, norm: str = "batch", in_channels: int = 1):
        super().__init__()
        c = channels
        self.feature_dim = 2 * c * 7 * 7
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, c, 4, 2, 1), nn.LeakyReLU(0.2),               # 14x14
            nn.Conv2d(c, 2 * c, 4, 2, 1), _norm(norm, 2 * c), nn.LeakyReLU(0.2),  # 7x7
            nn.Flatten())
        self.head = nn.Linear(self.feature_dim, 1)
        dcgan_init_(self)

    def forward(self, x):
        return self.head(self.features(x)).reshape(-1)
