"""The networks the model families share: MLPs, and a small convolutional encoder and
decoder for 28x28 images. Models pick them by name ("mlp" or "conv"), so the same
model can be tried with either.

Shapes: an encoder maps images x (N, 1, 28, 28) to features (N, out_features); a decoder
maps codes z (N, in_features) to (N, 1, 28, 28) outputs (logits or means: the model
decides what they mean).
"""
from __future__ import annotations

from .. import nn


def mlp(sizes, activation=nn.ReLU, final_activation=None) -> nn.Sequential:
    """Linear layers of the given sizes with ``activation`` between them, e.g.
    mlp([784, 400, 20]) = Linear(784, 400), ReLU, Linear(400, 20)."""
    if len(sizes) < 2:
        raise ValueError(f"mlp needs at least an input and an output size, got {sizes}")
    layers = []
    for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(nn.Linear(n_in, n_out))
        if i < len(sizes) - 2:
            layers.append(activation())
    if final_activation is not None:
        layers.append(final_activation())
    return nn.Sequential(*layers)


def glorot_init_(module: nn.Module) -> nn.Module:
    """Glorot & Bengio's uniform initialisation, W ~ U(-a, a) with a = sqrt(6 / (fan_in +
    fan_out)), and zero biases, for every Linear layer in ``module``: the initialisation
    made for tanh networks, which Burda et al. used for their VAEs (PyTorch's default is
    about half as wide, and slows these models down early on)."""
    for layer in module.modules():
        if isinstance(layer, nn.Linear):
            nn.init.xavier_uniform_(layer.weight)
            if layer.bias is not None:
                nn.init.zeros_(layer.bias)
    return module


class ConvEncoder(nn.Module):
    """(N, 1, 28, 28) -> (N, out_features): two stride-2 convolutions (28 -> 14 -> 7),
    then a hidden linear layer."""

    def __init__(self, out_features: int, hidden: int = 256, channels: int = 32):
        super().__init__()
        c = channels
        self.net = nn.Sequential(
            nn.Conv2d(1, c, 4, 2, 1), nn.ReLU(),                # (N, c, 14, 14)
            nn.Conv2d(c, 2 * c, 4, 2, 1), nn.ReLU(),            # (N, 2c, 7, 7)
            nn.Flatten(), nn.Linear(2 * c * 7 * 7, hidden), nn.ReLU(),
            nn.Linear(hidden, out_features))

    def forward(self, x):
        return self.net(x)


class ConvDecoder(nn.Module):
    """(N, in_features) -> (N, 1, 28, 28): the mirror of ConvEncoder, with transposed
    convolutions (7 -> 14 -> 28)."""

    def __init__(self, in_features: int, hidden: int = 256, channels: int = 32):
        super().__init__()
        c = channels
        self.net = nn.Sequential(
            nn.Linear(in_features, hidden), nn.ReLU(),
            nn.Linear(hidden, 2 * c * 7 * 7), nn.ReLU(), nn.Unflatten(1, (2 * c, 7, 7)),
            nn.ConvTranspose2d(2 * c, c, 4, 2, 1), nn.ReLU(),   # (N, c, 14, 14)
            nn.ConvTranspose2d(c, 1, 4, 2, 1))                  # (N, 1, 28, 28)

    def forward(self, z):
        return self.net(z)


class _Flat(nn.Module):
    """Wrap an MLP so it reads and writes images: (N, 1, 28, 28) <-> (N, 784)."""

    def __init__(self, net, image_out: bool):
        super().__init__()
        self.net, self.image_out = net, image_out

    def forward(self, x):
        if self.image_out:
            return self.net(x).reshape(-1, 1, 28, 28)
        return self.net(x.flatten(1))


def encoder(kind: str, out_features: int, hidden: int = 400) -> nn.Module:
    """An image encoder (N, 1, 28, 28) -> (N, out_features): "mlp" (784-hidden-out,
    ReLU) or "conv" (ConvEncoder)."""
    if kind == "mlp":
        return _Flat(mlp([784, hidden, out_features]), image_out=False)
    if kind == "conv":
        return ConvEncoder(out_features, hidden)
    raise ValueError(f"unknown network kind '{kind}'; choose 'mlp' or 'conv'")


def decoder(kind: str, in_features: int, hidden: int = 400) -> nn.Module:
    """An image decoder (N, in_features) -> (N, 1, 28, 28): "mlp" or "conv"."""
    if kind == "mlp":
        return _Flat(mlp([in_features, hidden, 784]), image_out=True)
    if kind == "conv":
        return ConvDecoder(in_features, hidden)
    raise ValueError(f"unknown network kind '{kind}'; choose 'mlp' or 'conv'")
