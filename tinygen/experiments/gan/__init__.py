"""Training recipes of the GAN family (the models are in ``tinygen.models.gan``)."""
