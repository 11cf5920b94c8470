"""ebm: an energy-based model trained with short-run Langevin dynamics, batch 64.

20 Langevin steps from uniform noise with the parameters frozen,
x <- clip(x - 10 dE/dx + 0.005 noise, -1, 1); then the contrastive loss
E(x+) - E(x-) + 0.1 (E(x+)^2 + E(x-)^2), averaged over the batch; Adam(1e-4).
The energy network is ``_energy`` (tinygen.models.ebm.ConvEnergy on the tinygen side).
"""
import numpy as np

BATCH, STEPS = 64, 20


def _data(seed=0):
    rng = np.random.default_rng(seed)
    return rng.uniform(-1, 1, (BATCH, 1, 28, 28)).astype(np.float32)


def _energy(nn):
    return nn.Sequential(nn.Conv2d(1, 32, 3, 1, 1), nn.SiLU(), nn.Conv2d(32, 64, 4, 2, 1),
                         nn.SiLU(), nn.Conv2d(64, 64, 4, 2, 1), nn.SiLU(), nn.Flatten(),
                         nn.Linear(64 * 7 * 7, 1))


def tinygen_step(device="cpu"):
    import tinygen as tg
    from tinygen.models.ebm import ConvEnergy
    from tinygen.optim import Adam

    E = ConvEnergy().to(device)  # the network of _energy, with energies of shape (n,)
    opt = Adam(E.parameters(), lr=1e-4)
    x_pos = tg.tensor(_data(), device=device)

    def step():
        E.requires_grad_(False)
        x = tg.rand(BATCH, 1, 28, 28, device=device) * 2 - 1
        for _ in range(STEPS):
            x.requires_grad_()
            (dE_dx,) = tg.grad(E(x).sum(), x)
            x = (x.detach() - 10 * dE_dx + 0.005 * tg.randn(*x.shape, device=device)).clip(-1, 1)
        E.requires_grad_(True)
        e_pos, e_neg = E(x_pos), E(x.detach())
        loss = (e_pos - e_neg + 0.1 * (e_pos * e_pos + e_neg * e_neg)).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    return step


def torch_step(device="cpu"):
    import torch
    from torch import nn

    E = _energy(nn).to(device)
    opt = torch.optim.Adam(E.parameters(), lr=1e-4)
    x_pos = torch.tensor(_data(), device=device)

    def step():
        E.requires_grad_(False)
        x = torch.rand(BATCH, 1, 28, 28, device=device) * 2 - 1
        for _ in range(STEPS):
            x.requires_grad_()
            (dE_dx,) = torch.autograd.grad(E(x).sum(), x)
            x = (x.detach() - 10 * dE_dx + 0.005 * torch.randn_like(x)).clamp(-1, 1)
        E.requires_grad_(True)
        e_pos, e_neg = E(x_pos), E(x.detach())
        loss = (e_pos - e_neg + 0.1 * (e_pos * e_pos + e_neg * e_neg)).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    return step
