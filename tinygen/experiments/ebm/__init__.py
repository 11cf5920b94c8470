"""Training recipes of the energy-based models (``tinygen.models.ebm``)."""
