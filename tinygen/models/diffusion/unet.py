"""The noise-prediction networks eps_theta(x_t, t): a small U-Net for 28x28 images (after
Ho et al. 2020, appendix B, itself after PixelCNN++ and Ronneberger et al. 2015) and an
MLP for 2-D points.

The U-Net, at width c (32 by default, about 0.54M parameters):

    x_t (1x28x28) -> conv 3x3 -> ResBlock(c)            h1: c x 28 x 28
                  -> conv 3x3 stride 2 -> ResBlock(2c)  h2: 2c x 14 x 14
                  -> conv 3x3 stride 2 -> ResBlock(2c)  (+ self-attention): 2c x 7 x 7
                  -> convT 4x4 stride 2, concat h2 -> ResBlock(2c)
                  -> convT 4x4 stride 2, concat h1 -> ResBlock(c)
                  -> SiLU -> conv 3x3 -> eps (1x28x28)

ResBlock(x, emb) = x' + conv(SiLU(GN(conv(SiLU(GN(x))) + Linear(emb)))), x' = x or a 1x1
convolution of it when the width changes: the time embedding enters every block as a
per-channel shift. The time t enters as Ho et al.'s sinusoidal embedding (the
Transformer's positional encoding, Vaswani et al. 2017) through Linear-SiLU-Linear. A
class label y, when the network is conditional, adds a learned embedding to it; the
extra label ``num_classes`` means "no label", for classifier-free guidance (Ho &
Salimans 2022), which trains one network for both.

Self-attention at 7x7 (optional; Ho et al. used it at 16x16): the 49 positions attend to
each other, softmax(Q K^T / sqrt(C)) V, with a residual connection.

Symbols and code:

    symbol              code                            shape
    t                   t                               (N,) integers 1..T (or reals)
    sinusoidal emb.     timestep_embedding(t, dim)      (N, dim)
    eps_theta(x_t, t)   UNet()(x_t, t) or (x_t, t, y)   (N, 1, 28, 28)
                        MLPDenoiser()(x_t, t)           (N, 2)
"""
from __future__ import annotations

import math

import numpy as np

from ... import cat, nn, tensor
from ...nn import functional as F


def timestep_embedding(t, dim: int, device="cpu", max_period: float = 10000.0):
    """[sin(t f_k), cos(t f_k)] for k = 0..dim/2-1, f_k = max_period^(-k / (dim/2)), the
    sinusoidal embedding of Vaswani et al. 2017 for t, as in Nichol & Dhariwal's code (Ho
    et al.'s divides by dim/2 - 1 instead): (N,) -> (N, dim) float32 Tensor. dim must be
    even."""
    if dim % 2:
        raise ValueError(f"timestep_embedding: dim must be even, got {dim}")
    freqs = np.exp(-math.log(max_period) * np.arange(dim // 2) / (dim // 2))
    angles = np.asarray(t, dtype=np.float64).reshape(-1, 1) * freqs[None]
    emb = np.concatenate([np.sin(angles), np.cos(angles)], axis=1).astype(np.float32)
    return tensor(emb, device=device)


class ResBlock(nn.Module):
    """GroupNorm-SiLU-conv, plus the embedding's per-channel shift, GroupNorm-SiLU-conv,
    plus the skip: (N, c_in, H, W), (N, emb_dim) -> (N, c_out, H, W)."""

    def __init__(self, c_in: int, c_out: int, emb_dim: int, groups: int = 8):
        super().__init__()
        self.norm1, self.conv1 = nn.GroupNorm(groups, c_in), nn.Conv2d(c_in, c_out, 3, padding=1)
        self.emb = nn.Linear(emb_dim, c_out)
        self.norm2 = nn.GroupNorm(groups, c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1)
        self.skip = nn.Conv2d(c_in, c_out, 1) if c_in != c_out else nn.Identity()

    def forward(self, x, emb):
        h = self.conv1(F.silu(self.norm1(x)))
        h = h + self.emb(emb).reshape(emb.shape[0], -1, 1, 1)
        h = self.conv2(F.silu(self.norm2(h)))
        return h + self.skip(x)


class SelfAttention(nn.Module):
    """Single-head self-attention over the H W positions of (N, C, H, W), with a residual:
    x + proj(softmax(Q K^T / sqrt(C)) V), Q, K, V 1x1 convolutions of GroupNorm(x)."""

    def __init__(self, channels: int, groups: int = 8):
        super().__init__()
        self.norm = nn.GroupNorm(groups, channels)
        self.qkv = nn.Conv2d(channels, 3 * channels, 1)
        self.proj = nn.Conv2d(channels, channels, 1)

    def forward(self, x):
        n, c, h, w = x.shape
        q, k, v = self.qkv(self.norm(x)).reshape(n, 3, c, h * w).split(1, axis=1)
        q, k, v = (a.reshape(n, c, h * w) for a in (q, k, v))
        weights = F.softmax(q.transpose(0, 2, 1) @ k * (1.0 / math.sqrt(c)), axis=-1)
        out = (v @ weights.transpose(0, 2, 1)).reshape(n, c, h, w)   # (N, C, HW)
        return x + self.proj(out)


class UNet(nn.Module):
    """eps_theta(x_t, t) or eps_theta(x_t, t, y) for 1x28x28 images (module docstring).

    Args:
        channels: c, the width at 28x28 (2c at 14x14 and 7x7).
        time_dim: size of the sinusoidal embedding and of the embedding MLP.
        attention: self-attention in the 7x7 block.
        num_classes: None for an unconditional network; else labels y in
            0..num_classes-1 and num_classes for "no label".
        in_channels: image channels.

    forward(x (N, C, 28, 28), t (N,) steps, y (N,) labels or None) -> (N, C, 28, 28).
    A conditional network given y = None uses the "no label" embedding.
    """

    def __init__(self, channels: int = 32, time_dim: int = 128, attention: bool = False,
                 num_classes: int | None = None, in_channels: int = 1):
        super().__init__()
        c, d = channels, time_dim
        self.time_dim, self.num_classes = d, num_classes
        self.time_mlp = nn.Sequential(nn.Linear(d, d), nn.SiLU(), nn.Linear(d, d))
        self.label_emb = nn.Embedding(num_classes + 1, d) if num_classes else None
        self.conv_in = nn.Conv2d(in_channels, c, 3, padding=1)
        self.block1 = ResBlock(c, c, d)
        self.down1 = nn.Conv2d(c, 2 * c, 3, stride=2, padding=1)
        self.block2 = ResBlock(2 * c, 2 * c, d)
        self.down2 = nn.Conv2d(2 * c, 2 * c, 3, stride=2, padding=1)
        self.mid = ResBlock(2 * c, 2 * c, d)
        self.attn = SelfAttention(2 * c) if attention else nn.Identity()
        self.up1 = nn.ConvTranspose2d(2 * c, 2 * c, 4, 2, 1)
        self.block3 = ResBlock(4 * c, 2 * c, d)
        self.up2 = nn.ConvTranspose2d(2 * c, c, 4, 2, 1)
        self.block4 = ResBlock(2 * c, c, d)
        self.conv_out = nn.Conv2d(c, in_channels, 3, padding=1)

    def embed(self, t, y, n, device):
        """The embedding every ResBlock receives: MLP(sinusoid(t)) (+ label embedding)."""
        emb = self.time_mlp(timestep_embedding(np.broadcast_to(np.asarray(t), (n,)),
                                               self.time_dim, device))
        if self.label_emb is not None:
            labels = np.full(n, self.num_classes) if y is None else np.asarray(
                y.numpy() if hasattr(y, "numpy") else y)
            emb = emb + self.label_emb(labels.astype(np.int64))
        elif y is not None:
            raise ValueError("this UNet is unconditional (num_classes None) but got labels y")
        return emb

    def forward(self, x, t, y=None):
        emb = self.embed(t, y, x.shape[0], x.device)
        h1 = self.block1(self.conv_in(x), emb)                   # c x 28 x 28
        h2 = self.block2(self.down1(h1), emb)                    # 2c x 14 x 14
        h = self.attn(self.mid(self.down2(h2), emb))             # 2c x 7 x 7
        h = self.block3(cat([self.up1(h), h2], 1), emb)          # 2c x 14 x 14
        h = self.block4(cat([self.up2(h), h1], 1), emb)          # c x 28 x 28
        return self.conv_out(F.silu(h))


class MLPDenoiser(nn.Module):
    """eps_theta(x_t, t) for points (N, D): an MLP on [x_t, MLP(sinusoid(t))], SiLU hidden
    layers; optionally conditional on labels like ``UNet``.

    Args:
        data_dim: D. hidden: width of each of ``depth`` hidden layers. time_dim: size of
        the embedding. num_classes: None, or the number of labels (plus "no label").
    """

    def __init__(self, data_dim: int = 2, hidden: int = 128, depth: int = 3,
                 time_dim: int = 64, num_classes: int | None = None):
        super().__init__()
        self.time_dim, self.num_classes = time_dim, num_classes
        self.time_mlp = nn.Sequential(nn.Linear(time_dim, time_dim), nn.SiLU())
        self.label_emb = nn.Embedding(num_classes + 1, time_dim) if num_classes else None
        layers, width = [], data_dim + time_dim
        for _ in range(depth):
            layers += [nn.Linear(width, hidden), nn.SiLU()]
            width = hidden
        self.net = nn.Sequential(*layers, nn.Linear(width, data_dim))

    embed = UNet.embed

    def forward(self, x, t, y=None):
        return self.net(cat([x, self.embed(t, y, x.shape[0], x.device)], 1))


class NoisyClassifier(nn.Module):
    """p_phi(c | x_t, t) for classifier guidance (Dhariwal & Nichol 2021): the U-Net's
    downsampling half (ResBlocks reading the time embedding, at 28, 14 and 7 pixels),
    GroupNorm-SiLU, the average over positions, and a linear layer to the class logits:
    (N, 1, 28, 28), (N,) steps -> (N, num_classes) logits.

    Args:
        num_classes: K. channels: width c at 28x28 (2c below). time_dim: embedding size.
    """

    def __init__(self, num_classes: int = 10, channels: int = 16, time_dim: int = 64,
                 in_channels: int = 1):
        super().__init__()
        c, d = channels, time_dim
        self.time_dim, self.num_classes = d, None   # ``embed`` reads no label
        self.time_mlp = nn.Sequential(nn.Linear(d, d), nn.SiLU(), nn.Linear(d, d))
        self.label_emb = None
        self.conv_in = nn.Conv2d(in_channels, c, 3, padding=1)
        self.block1 = ResBlock(c, c, d)
        self.down1 = nn.Conv2d(c, 2 * c, 3, stride=2, padding=1)
        self.block2 = ResBlock(2 * c, 2 * c, d)
        self.down2 = nn.Conv2d(2 * c, 2 * c, 3, stride=2, padding=1)
        self.block3 = ResBlock(2 * c, 2 * c, d)
        self.norm = nn.GroupNorm(8, 2 * c)
        self.head = nn.Linear(2 * c, num_classes)

    embed = UNet.embed

    def forward(self, x, t):
        emb = self.embed(t, None, x.shape[0], x.device)
        h = self.block1(self.conv_in(x), emb)
        h = self.block2(self.down1(h), emb)
        h = self.block3(self.down2(h), emb)
        h = F.silu(self.norm(h)).mean(axis=(2, 3))             # (N, 2c)
        return self.head(h)

    def log_prob(self, x, t, y):
        """log p_phi(y | x_t, t) (N,), as ``guidance`` needs it."""
        logp = F.log_softmax(self(x, t), axis=1)
        return logp[np.arange(x.shape[0]), np.asarray(y)]
