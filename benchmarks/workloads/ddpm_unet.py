"""ddpm_unet: one DDPM training step of a small U-Net on 1x28x28 images, batch 64.

T = 1000 linear betas from 1e-4 to 0.02, alpha_bar_t = prod_{s<=t} (1 - beta_s); draw t
and eps, form x_t = sqrt(alpha_bar_t) x_0 + sqrt(1 - alpha_bar_t) eps, and regress the
noise: MSE(eps_theta(x_t, t), eps); Adam(2e-4).

The U-Net (about 0.54M parameters): a 128-d sinusoidal time embedding through
Linear-SiLU-Linear; ResBlock = GroupNorm(8)-SiLU-Conv3x3, + Linear(time) per channel,
GroupNorm(8)-SiLU-Conv3x3, + skip (1x1 conv when the channels change). Levels
28 -> 14 -> 7 and back, with skip connections concatenated on the way up.

The tinygen side uses the library's own network (tinygen.models.diffusion.UNet, width 32,
which embeds t itself); the PyTorch side builds the same layers (``make_unet``), parameter
for parameter, and is given the same embedding.
"""
import math

import numpy as np

BATCH, T, TDIM = 64, 1000, 128


def _data(seed=0):
    rng = np.random.default_rng(seed)
    return rng.uniform(-1, 1, (BATCH, 1, 28, 28)).astype(np.float32)


def _schedule():
    betas = np.linspace(1e-4, 0.02, T)
    return np.cumprod(1 - betas)


def sinusoidal_embedding(t):
    """t (N,) integers -> (N, 128): [sin(t f_k), cos(t f_k)], f_k = 10000^(-k/64)."""
    freqs = np.exp(-math.log(10000) * np.arange(TDIM // 2) / (TDIM // 2))
    angles = np.asarray(t, dtype=np.float64)[:, None] * freqs[None]
    return np.concatenate([np.sin(angles), np.cos(angles)], axis=1).astype(np.float32)


def make_unet(nn, F, cat):
    """The U-Net of tinygen.models.diffusion.UNet (width 32), built from a framework's nn,
    functional and cat, for the PyTorch side."""

    class ResBlock(nn.Module):
        def __init__(self, c_in, c_out):
            super().__init__()
            self.norm1, self.conv1 = nn.GroupNorm(8, c_in), nn.Conv2d(c_in, c_out, 3, padding=1)
            self.time = nn.Linear(TDIM, c_out)
            self.norm2, self.conv2 = nn.GroupNorm(8, c_out), nn.Conv2d(c_out, c_out, 3, padding=1)
            self.skip = nn.Conv2d(c_in, c_out, 1) if c_in != c_out else nn.Identity()

        def forward(self, x, temb):
            h = self.conv1(F.silu(self.norm1(x)))
            h = h + self.time(temb)[:, :, None, None]
            h = self.conv2(F.silu(self.norm2(h)))
            return h + self.skip(x)

    class UNet(nn.Module):
        def __init__(self):
            super().__init__()
            self.time_mlp = nn.Sequential(nn.Linear(TDIM, TDIM), nn.SiLU(), nn.Linear(TDIM, TDIM))
            self.conv_in = nn.Conv2d(1, 32, 3, padding=1)
            self.block1 = ResBlock(32, 32)
            self.down1 = nn.Conv2d(32, 64, 3, stride=2, padding=1)
            self.block2 = ResBlock(64, 64)
            self.down2 = nn.Conv2d(64, 64, 3, stride=2, padding=1)
            self.mid = ResBlock(64, 64)
            self.up1 = nn.ConvTranspose2d(64, 64, 4, 2, 1)
            self.block3 = ResBlock(128, 64)
            self.up2 = nn.ConvTranspose2d(64, 32, 4, 2, 1)
            self.block4 = ResBlock(64, 32)
            self.conv_out = nn.Conv2d(32, 1, 3, padding=1)

        def forward(self, x, temb):
            t = self.time_mlp(temb)
            h1 = self.block1(self.conv_in(x), t)                   # 32 x 28 x 28
            h2 = self.block2(self.down1(h1), t)                    # 64 x 14 x 14
            h = self.mid(self.down2(h2), t)                        # 64 x 7 x 7
            h = self.block3(cat([self.up1(h), h2], 1), t)          # 64 x 14 x 14
            h = self.block4(cat([self.up2(h), h1], 1), t)          # 32 x 28 x 28
            return self.conv_out(F.silu(h))

    return UNet()


def tinygen_step(device="cpu"):
    import tinygen as tg
    from tinygen.models.diffusion import UNet
    from tinygen.nn import functional as F
    from tinygen.optim import Adam

    model = UNet(channels=32, time_dim=TDIM).to(device)
    opt = Adam(model.parameters(), lr=2e-4)
    x0 = tg.tensor(_data(), device=device)
    alpha_bar = _schedule()

    def step():
        t = tg.randint(0, T, (BATCH,)).numpy()
        eps = tg.randn(*x0.shape, device=device)
        a = tg.tensor(alpha_bar[t].astype(np.float32).reshape(-1, 1, 1, 1), device=device)
        x_t = a.sqrt() * x0 + (1 - a).sqrt() * eps
        loss = F.mse_loss(model(x_t, t), eps)   # the model embeds t (as sinusoidal_embedding)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return step


def torch_step(device="cpu"):
    import torch
    from torch import nn
    import torch.nn.functional as F

    model = make_unet(nn, F, torch.cat).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=2e-4)
    x0 = torch.tensor(_data(), device=device)
    alpha_bar = _schedule()

    def step():
        t = torch.randint(0, T, (BATCH,)).numpy()
        eps = torch.randn_like(x0)
        a = torch.tensor(alpha_bar[t].astype(np.float32).reshape(-1, 1, 1, 1), device=device)
        x_t = a.sqrt() * x0 + (1 - a).sqrt() * eps
        temb = torch.tensor(sinusoidal_embedding(t), device=device)
        loss = F.mse_loss(model(x_t, temb), eps)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return step
