"""Training recipes of the autoregressive models: nade, pixelcnn, gated-pixelcnn."""
