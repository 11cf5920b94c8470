"""A LeNet-style convolutional classifier for 28x28 images: the measuring instrument
for every generative model here.

    x (N, 1, 28, 28) -> [conv 5x5, 32] -> ReLU -> maxpool 2 -> [conv 5x5, 64] -> ReLU
      -> maxpool 2 -> flatten (3136) -> Linear 128 -> ReLU = features h (N, 128)
      -> dropout -> Linear 10 = logits

trained with the cross-entropy -log softmax(logits)[y]. Once trained, its predictions
give the class accuracy of class-conditional samples, and its 128-d features h give a
Frechet distance between samples and data ("FID, LeNet features": the idea of the
Frechet Inception Distance with a network that knows digits).
"""
from __future__ import annotations

import os

import numpy as np

from .. import data, nn, no_grad, optim, tensor
from ..metrics import frechet_distance, gaussian_statistics
from ..nn import functional as F
from ..random import generator
from ..serialization import load, save
from ..train import Experiment
from . import register


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
        h = F.max_pool2d(F.relu(self.conv1(x)), 2)       # (N, 32, 14, 14)
        h = F.max_pool2d(F.relu(self.conv2(h)), 2)       # (N, 64, 7, 7)
        return F.relu(self.fc1(h.flatten(1)))            # (N, 128)

    def forward(self, x):
        return self.fc2(self.dropout(self.features(x)))


def images_to_input(images) -> np.ndarray:
    """uint8 (N, 28, 28), or floats in [0, 1] or [-1, 1] of shape (N, 28, 28) or
    (N, 1, 28, 28), -> float32 (N, 1, 28, 28) in [0, 1]: what LeNet reads."""
    x = images.numpy() if hasattr(images, "numpy") else np.asarray(images)
    if x.dtype == np.uint8:
        x = x.astype(np.float32) / 255.0
    x = x.astype(np.float32, copy=False)
    if x.min() < 0:  # samples of models trained on [-1, 1]
        x = (x + 1) / 2
    if x.ndim == 3:
        x = x[:, None]
    if x.shape[1:] != (1, 28, 28):
        raise ValueError(f"expected 28x28 grey images, got shape {x.shape}")
    return np.clip(x, 0.0, 1.0)


@register
class Classifier(Experiment):
    """Train LeNet on MNIST or Fashion-MNIST with Adam."""

    name = "classifier"
    datasets = data.DATASETS
    description = "LeNet-style classifier; measures samples (accuracy, FID on its features)"
    defaults = {"batch_size": 128, "lr": 1e-3, "epochs": 6, "dropout": 0.25}

    def __init__(self, config):
        super().__init__(config)
        self.net = LeNet(dropout=config["dropout"]).to(config["device"])
        self.opt = optim.Adam(self.net.parameters(), lr=config["lr"])

    def modules(self):
        return {"net": self.net}

    def optimizers(self):
        return {"opt": self.opt}

    def train_loader(self):
        images, labels = data.load_dataset(self.config["dataset"], "train",
                                           self.config.get("data_root"))
        x = images_to_input(images)
        return data.DataLoader(x, labels, batch_size=self.config["batch_size"], shuffle=True,
                               seed=self.config.get("seed", 0), device=self.config["device"])

    def training_step(self, batch):
        x, y = batch
        self.net.train()
        logits = self.net(x)
        loss = F.cross_entropy(logits, y)
        self.opt.zero_grad()
        loss.backward()
        self.opt.step()
        accuracy = float((logits.data.argmax(1) == y.data).mean())
        return {"loss": loss.item(), "accuracy": accuracy}

    @no_grad()
    def predict(self, images, batch_size: int = 1000) -> np.ndarray:
        """Class predictions (N,) for images (any of the forms images_to_input takes)."""
        return np.concatenate([self._logits(b).argmax(1) for b in _batches(images, batch_size)])

    @no_grad()
    def features(self, images, batch_size: int = 1000) -> np.ndarray:
        """The 128-d features h (N, 128) used for FID."""
        self.net.eval()
        return np.concatenate([self.net.features(tensor(b, device=self.config["device"])).numpy()
                               for b in _batches(images, batch_size)])

    def _logits(self, x):
        self.net.eval()
        return self.net(tensor(x, device=self.config["device"])).numpy()

    def evaluate(self):
        """Test accuracy, and the two reference points of FID with these features: the
        floor, FID(10,000 training images, test set), what a perfect model would score,
        and the ceiling, FID(uniform noise, test set)."""
        root = self.config.get("data_root")
        images, labels = data.load_dataset(self.config["dataset"], "test", root)
        train_images, _ = data.load_dataset(self.config["dataset"], "train", root)
        noise = generator(0).random((10_000, 28, 28), dtype=np.float32)
        return {"test_accuracy": float((self.predict(images) == labels).mean()),
                "fid_train_vs_test": fid(train_images[:10_000], self.config["dataset"], self),
                "fid_noise_vs_test": fid(noise, self.config["dataset"], self)}


def _batches(images, batch_size):
    x = images_to_input(images)
    for i in range(0, len(x), batch_size):
        yield x[i:i + batch_size]


# --------------------------------------------------------------------------- the cached instrument

def cached_classifier_path(dataset: str) -> str:
    """Where the trained classifier for ``dataset`` is kept (the per-user cache)."""
    return os.path.join(data.cache_dir(), "classifiers", f"{dataset}.npz")


def trained_classifier(dataset: str, device: str = "cpu", data_root=None,
                       progress: bool = True) -> Classifier:
    """The classifier for ``dataset``, trained once (with a progress bar) and cached."""
    config = {**Classifier.defaults, "model": "classifier", "dataset": dataset,
              "device": device, "seed": 0, "data_root": data_root}
    clf = Classifier(config)
    path = cached_classifier_path(dataset)
    if os.path.isfile(path):
        clf.net.load_state_dict(load(path, device=device))
        return clf
    from ..train import fit
    import tempfile
    with tempfile.TemporaryDirectory() as run_dir:
        print(f"training the {dataset} classifier that measures samples (once; it is cached "
              f"in {path})")
        fit(clf, run_dir, epochs=config["epochs"], progress=progress,
            checkpoint_every=10 ** 9)
    save(clf.net.state_dict(), path)
    return clf


# --------------------------------------------------------------------------- measuring samples

def fid(samples, dataset: str = "mnist", classifier: Classifier | None = None,
        device: str = "cpu", data_root=None) -> float:
    """FID with LeNet features: the Frechet distance between Gaussians fitted to the
    classifier's 128-d features of ``samples`` and of the dataset's 10,000 test images,

        ||mu_s - mu_t||^2 + tr(C_s + C_t - 2 (C_s C_t)^{1/2}).

    0 for identical feature statistics; lower is better. Use several thousand samples:
    the estimate is biased upwards for few. ``classifier`` defaults to the cached one.
    """
    clf = classifier or trained_classifier(dataset, device, data_root)
    # the test set's statistics, computed once per classifier (kept on it)
    cache = clf.__dict__.setdefault("_test_statistics", {})
    key = (dataset, data_root)
    if key not in cache:
        test_images, _ = data.load_dataset(dataset, "test", data_root)
        cache[key] = gaussian_statistics(clf.features(test_images))
    mu_s, cov_s = gaussian_statistics(clf.features(samples))
    return frechet_distance(mu_s, cov_s, *cache[key])


def class_accuracy(samples, labels, dataset: str = "mnist",
                   classifier: Classifier | None = None, device: str = "cpu") -> float:
    """How often the classifier sees the requested class in class-conditional samples."""
    clf = classifier or trained_classifier(dataset, device)
    return float((clf.predict(samples) == np.asarray(labels)).mean())
