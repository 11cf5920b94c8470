"""A small convolutional classifier for 28x28 images, LeNet-like (LeCun et al. 1998) in
shape but with ReLU, max-pooling and dropout, as in the usual MNIST examples of PyTorch
and Keras: the measuring instrument for every generative model here.

    x (N, 1, 28, 28) -> [conv 5x5, 32] -> ReLU -> maxpool 2 -> [conv 5x5, 64] -> ReLU
      -> maxpool 2 -> flatten (3136) -> Linear 128 -> ReLU = features h (N, 128)
      -> dropout -> Linear 10 = logits

trained with the cross-entropy -log softmax(logits)[y]. Once trained, its predictions
give the class accuracy of class-conditional samples, and its 128-d features h give a
Frechet distance between samples and data ("FID, LeNet features": the idea of the
Frechet Inception Distance of Heusel et al. 2017, with a network that knows digits).
Its training and caching live in ``tinygen.experiments.classifier``.
"""
from __future__ import annotations

from .. import nn
from ..nn import functional as F


class LeNet(nn.Module):
    """(N, 1, 28, 28) images in [0, 1] -> (N, 10) logits; ``features`` gives (N, 128)."""

    def __init__(self, num_classes: int = 10, dropout: float = 0.25):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 32, 5, padding=2)
        self.conv2 = nn.Conv2d(32, 64, 5, padding=2)
        self.fc1 = nn.Linear(64 * 7 * 7, 128)
        self.dropout = nn.Dropout(dropout)
        self.fc2 = nn.Linear(128, num_classes)

    def features(self, x):
        """x (N, 1, 28, 28) -> h (N, 128), the features FID compares."""
        h = F.max_pool2d(F.relu(self.conv1(x)), 2)       # (N, 32, 14, 14)
        h = F.max_pool2d(F.relu(self.conv2(h)), 2)       # (N, 64, 7, 7)
        return F.relu(self.fc1(h.flatten(1)))            # (N, 128)

    def forward(self, x):
        return self.fc2(self.dropout(self.features(x)))
