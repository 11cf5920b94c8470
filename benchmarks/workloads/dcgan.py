"""dcgan: a DCGAN on 1x28x28 images, batch 64.

One D update (real + detached fake, BCE with logits), then one G update
(non-saturating: -log D(G(z))); Adam(2e-4, betas (0.5, 0.999)) for both.

The tinygen side uses the library's own networks (tinygen.models.gan.dcgan, channels 64);
the PyTorch side builds the same layers (``_torch_models``), parameter for parameter.
"""
import numpy as np

BATCH, ZDIM = 64, 100


def _data(seed=0):
    rng = np.random.default_rng(seed)
    return rng.uniform(-1, 1, (BATCH, 1, 28, 28)).astype(np.float32)


def _torch_models(nn):
    """The layers of tinygen's DCGANGenerator and DCGANDiscriminator (channels 64)."""
    G = nn.Sequential(
        nn.Linear(ZDIM, 128 * 7 * 7), nn.Unflatten(1, (128, 7, 7)), nn.BatchNorm2d(128),
        nn.ReLU(), nn.ConvTranspose2d(128, 64, 4, 2, 1), nn.BatchNorm2d(64), nn.ReLU(),
        nn.ConvTranspose2d(64, 1, 4, 2, 1), nn.Tanh())
    D = nn.Sequential(
        nn.Conv2d(1, 64, 4, 2, 1), nn.LeakyReLU(0.2), nn.Conv2d(64, 128, 4, 2, 1),
        nn.BatchNorm2d(128), nn.LeakyReLU(0.2), nn.Flatten(), nn.Linear(128 * 7 * 7, 1))
    return G, D


def tinygen_step(device="cpu"):
    import tinygen as tg
    from tinygen.models.gan.dcgan import DCGANDiscriminator, DCGANGenerator
    from tinygen.nn import functional as F
    from tinygen.optim import Adam

    G, D = DCGANGenerator(ZDIM, 64).to(device), DCGANDiscriminator(64).to(device)
    opt_g = Adam(G.parameters(), lr=2e-4, betas=(0.5, 0.999))
    opt_d = Adam(D.parameters(), lr=2e-4, betas=(0.5, 0.999))
    real = tg.tensor(_data(), device=device)
    ones, zeros = tg.ones(BATCH, device=device), tg.zeros(BATCH, device=device)

    def step():
        fake = G(tg.randn(BATCH, ZDIM, device=device))
        loss_d = (F.binary_cross_entropy_with_logits(D(real), ones)
                  + F.binary_cross_entropy_with_logits(D(fake.detach()), zeros))
        opt_d.zero_grad()
        loss_d.backward()
        opt_d.step()
        loss_g = F.binary_cross_entropy_with_logits(D(fake), ones)
        opt_g.zero_grad()
        loss_g.backward()
        opt_g.step()
    return step


def torch_step(device="cpu"):
    import torch
    from torch import nn
    import torch.nn.functional as F

    G, D = (m.to(device) for m in _torch_models(nn))
    opt_g = torch.optim.Adam(G.parameters(), lr=2e-4, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(D.parameters(), lr=2e-4, betas=(0.5, 0.999))
    real = torch.tensor(_data(), device=device)
    ones, zeros = torch.ones(BATCH, 1, device=device), torch.zeros(BATCH, 1, device=device)

    def step():
        fake = G(torch.randn(BATCH, ZDIM, device=device))
        loss_d = (F.binary_cross_entropy_with_logits(D(real), ones)
                  + F.binary_cross_entropy_with_logits(D(fake.detach()), zeros))
        opt_d.zero_grad()
        loss_d.backward()
        opt_d.step()
        loss_g = F.binary_cross_entropy_with_logits(D(fake), ones)
        opt_g.zero_grad()
        loss_g.backward()
        opt_g.step()
    return step
