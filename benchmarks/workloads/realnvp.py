"""realnvp: 8 affine coupling layers on 784-d vectors, batch 128.

Coupling with a binary mask b: y = b x + (1 - b) (x exp(s(b x)) + t(b x)), log|det| =
sum (1 - b) s; s, t from Linear(784,1024)-ReLU-Linear(1024,1024)-ReLU-Linear(1024,1568),
s = scale * tanh(s) with a learned scale per feature. Loss: the exact negative
log-likelihood under N(0, I); Adam(1e-4). The tinygen side is the library's own
coupling layers (``tinygen.models.flows``: MaskedCoupling with CouplingMLP, in a
NormalizingFlow); the PyTorch side writes the same arithmetic out.
"""
import math

import numpy as np

BATCH, D, HID, LAYERS = 128, 784, 1024, 8


def _data(seed=0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((BATCH, D)).astype(np.float32)


def _masks():
    even = (np.arange(D) % 2 == 0).astype(np.float32)
    return [even if i % 2 == 0 else 1 - even for i in range(LAYERS)]


def tinygen_step(device="cpu"):
    import tinygen as tg
    from tinygen.models.flows import (CouplingMLP, MaskedCoupling, NormalizingFlow,
                                      SequentialFlow)
    from tinygen.optim import Adam

    flow = NormalizingFlow(SequentialFlow(*[
        MaskedCoupling(m, CouplingMLP(D, D, HID, num_layers=2), scale="tanh")
        for m in _masks()]), (D,)).to(device)
    opt = Adam(flow.parameters(), lr=1e-4)
    x0 = tg.tensor(_data(), device=device)

    def step():
        loss = -flow.log_prob(x0).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    return step


def torch_step(device="cpu"):
    import torch
    from torch import nn

    nets = nn.ModuleList([nn.Sequential(nn.Linear(D, HID), nn.ReLU(), nn.Linear(HID, HID),
                                        nn.ReLU(), nn.Linear(HID, 2 * D))
                          for _ in range(LAYERS)]).to(device)
    scales = nn.ParameterList([nn.Parameter(torch.ones(D, device=device))
                               for _ in range(LAYERS)])
    masks = [torch.tensor(m, device=device) for m in _masks()]
    opt = torch.optim.Adam(list(nets.parameters()) + list(scales.parameters()), lr=1e-4)
    x0 = torch.tensor(_data(), device=device)

    def step():
        x, log_det = x0, 0.0
        for net, scale, b in zip(nets, scales, masks):
            x_a = x * b
            s, t = net(x_a).chunk(2, dim=1)
            s = (1 - b) * (scale * s.tanh())
            x = x_a + (1 - b) * (x * s.exp() + t)
            log_det = log_det + s.sum(dim=1)
        log_pz = -0.5 * (x * x).sum(dim=1) - 0.5 * D * math.log(2 * math.pi)
        loss = -(log_pz + log_det).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    return step
