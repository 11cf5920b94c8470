"""The model families, each an ``Experiment`` registered under the name the ``tinygen``
command knows it by. A module defines its experiment and decorates it with @register;
importing this package imports them all, so the registry is complete."""
from __future__ import annotations

MODELS: dict = {}


def register(cls):
    """Class decorator: make an Experiment known as ``cls.name``."""
    if not cls.name:
        raise ValueError(f"{cls.__name__} needs a name to be registered")
    if cls.name in MODELS and MODELS[cls.name] is not cls:
        raise ValueError(f"two models are registered as '{cls.name}'")
    MODELS[cls.name] = cls
    return cls


def get_model(name: str):
    """The Experiment class registered as ``name`` (a clear error listing the known ones)."""
    if name not in MODELS:
        raise KeyError(f"unknown model '{name}'; known models: {', '.join(sorted(MODELS))}")
    return MODELS[name]


from . import autoencoder, classifier, cvae, hvae, vae, vqvae  # noqa: E402,F401  (each registers itself)
