"""Training recipes of the normalizing flows (``tinygen.models.flows``)."""
