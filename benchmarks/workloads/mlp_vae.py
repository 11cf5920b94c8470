"""mlp_vae: a VAE with MLP encoder and decoder on 784-d inputs, batch 128.

Loss: Bernoulli-logit reconstruction (summed) + analytic KL(q(z|x) || N(0, I)), divided
by the batch size; Adam(1e-3).
"""
import numpy as np

BATCH, D, H, Z = 128, 784, 400, 20


def _data(seed=0):
    rng = np.random.default_rng(seed)
    return (rng.random((BATCH, D), dtype=np.float32) > 0.5).astype(np.float32)


def tinygen_step(device="cpu"):
    import tinygen as tg
    from tinygen import nn
    from tinygen.nn import functional as F
    from tinygen.optim import Adam

    enc, mu_head, logvar_head = nn.Linear(D, H), nn.Linear(H, Z), nn.Linear(H, Z)
    dec = nn.Sequential(nn.Linear(Z, H), nn.ReLU(), nn.Linear(H, D))
    modules = [m.to(device) for m in (enc, mu_head, logvar_head, dec)]
    opt = Adam([p for m in modules for p in m.parameters()], lr=1e-3)
    x = tg.tensor(_data(), device=device)

    def step():
        h = F.relu(enc(x))
        mu, logvar = mu_head(h), logvar_head(h)
        z = mu + (0.5 * logvar).exp() * tg.randn(BATCH, Z, device=device)
        recon = F.binary_cross_entropy_with_logits(dec(z), x, reduction="sum")
        kl = -0.5 * (1 + logvar - mu * mu - logvar.exp()).sum()
        loss = (recon + kl) / BATCH
        opt.zero_grad()
        loss.backward()
        opt.step()
    return step


def torch_step(device="cpu"):
    import torch
    from torch import nn
    import torch.nn.functional as F

    enc, mu_head, logvar_head = nn.Linear(D, H), nn.Linear(H, Z), nn.Linear(H, Z)
    dec = nn.Sequential(nn.Linear(Z, H), nn.ReLU(), nn.Linear(H, D))
    modules = [m.to(device) for m in (enc, mu_head, logvar_head, dec)]
    opt = torch.optim.Adam([p for m in modules for p in m.parameters()], lr=1e-3)
    x = torch.tensor(_data(), device=device)

    def step():
        h = F.relu(enc(x))
        mu, logvar = mu_head(h), logvar_head(h)
        z = mu + (0.5 * logvar).exp() * torch.randn(BATCH, Z, device=device)
        recon = F.binary_cross_entropy_with_logits(dec(z), x, reduction="sum")
        kl = -0.5 * (1 + logvar - mu * mu - logvar.exp()).sum()
        loss = (recon + kl) / BATCH
        opt.zero_grad()
        loss.backward()
        opt.step()
    return step
