"""Training recipes of the diffusion family (the models are in ``tinygen.models.diffusion``)."""
