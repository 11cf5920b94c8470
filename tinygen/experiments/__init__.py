"""The training recipes, one per model, and the registry the ``tinygen`` command reads.

The registry is lazy: each entry names the module and class of a recipe, with the line
``tinygen list`` prints, so listing the models imports none of them. ``get_experiment``
imports the one asked for. (tests/test_registry.py checks that every entry agrees with
its class.)
"""
from __future__ import annotations

import importlib
from typing import NamedTuple

from ..data import DATASETS


class Entry(NamedTuple):
    """Where a recipe lives and what ``tinygen list`` says of it."""
    module: str
    cls: str
    datasets: tuple
    description: str


REGISTRY = {
    "classifier": Entry("tinygen.experiments.classifier", "ClassifierExperiment", DATASETS,
                        "LeNet-style classifier; measures samples (accuracy, FID on its "
                        "features)"),
    "vae": Entry("tinygen.experiments.vae.vae", "VAEExperiment", DATASETS,
                 "variational autoencoder; k > 1 trains the IWAE bound"),
    "hvae": Entry("tinygen.experiments.vae.hvae", "HierarchicalVAEExperiment", DATASETS,
                  "VAE with two stochastic layers (Burda et al.); k > 1 trains the IWAE "
                  "bound"),
    "cvae": Entry("tinygen.experiments.vae.cvae", "ConditionalVAEExperiment", DATASETS,
                  "conditional VAE: draws a chosen class"),
    "ae": Entry("tinygen.experiments.vae.autoencoder", "AutoEncoderExperiment", DATASETS,
                "autoencoder z = f(x), x_hat = g(z); --penalty l1 makes it sparse (not "
                "generative: no sampling)"),
    "dae": Entry("tinygen.experiments.vae.autoencoder", "DenoisingAutoEncoderExperiment",
                 DATASETS, "denoising autoencoder: reconstructs x from a corrupted x_tilde "
                           "(--noise masking|gaussian, --noise-level p|sigma)"),
    "vqvae": Entry("tinygen.experiments.vae.vqvae", "VQVAEExperiment", DATASETS,
                   "VQ-VAE: discrete 7x7 codes from a learned codebook (van den Oord et al. "
                   "2017)"),
}


def get_experiment(name: str):
    """The Experiment class registered as ``name``, imported now.

    Raises KeyError naming the known models for an unknown name."""
    if name not in REGISTRY:
        raise KeyError(f"unknown model '{name}'; known models: {', '.join(sorted(REGISTRY))}")
    entry = REGISTRY[name]
    return getattr(importlib.import_module(entry.module), entry.cls)
