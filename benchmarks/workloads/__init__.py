"""The standard workloads of BENCHMARKS.md: one training step each, written once with
tinygen and once with PyTorch, side by side, on the same shapes.

Each module has ``tinygen_step(device)`` and ``torch_step(device)``; each returns a
function that runs one full training step (forward, backward, optimizer update).
"""
from . import dcgan, ddpm_unet, ebm, mlp_vae, realnvp

WORKLOADS = {"mlp_vae": mlp_vae, "dcgan": dcgan, "ddpm_unet": ddpm_unet, "realnvp": realnvp,
             "ebm": ebm}
