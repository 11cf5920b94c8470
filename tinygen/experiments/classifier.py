"""Training the LeNet classifier, and using it as the instrument that measures samples:
class accuracy of class-conditional samples, and FID on its 128-d features.

The classifier of each dataset is trained once, on first use, and kept in the per-user
cache (``$XDG_CACHE_HOME/tinygen/classifiers/``, else ``~/.cache/tinygen/classifiers/``),
so that every model's FID uses the same instrument. The network is
``tinygen.models.classifier.LeNet``.
"""
from __future__ import annotations

import os
import sys
import tempfile

import numpy as np

from .. import data, enable_grad, no_grad, tensor
from ..metrics import frechet_distance, gaussian_statistics
from ..models.classifier import LeNet
from ..nn import functional as F
from ..random import generator
from ..serialization import load, save
from .base import Experiment, fraction


def images_to_input(images, value_range=(0, 1)) -> np.ndarray:
    """Images as LeNet reads them: float32 (N, 1, 28, 28) in [0, 1].

    Args:
        images: uint8 (N, 28, 28) (0..255), or floats of shape (N, 28, 28) or
            (N, 1, 28, 28), NumPy or Tensor.
        value_range: (lo, hi), the range of float pixels, (0, 1) or (-1, 1) (a model
            trained on [-1, 1] gives samples there); uint8 ignores it.

    Raises ValueError for images that are not 28x28 and grey, or floats outside
    value_range (beyond a rounding margin of 1e-3): the range is stated, never guessed.
    """
    x = images.numpy() if hasattr(images, "numpy") else np.asarray(images)
    if x.dtype == np.uint8:
        x = x.astype(np.float32) / 255.0
    else:
        lo, hi = value_range
        x = x.astype(np.float32, copy=False)
        if x.size and (x.min() < lo - 1e-3 or x.max() > hi + 1e-3):
            raise ValueError(f"images_to_input: pixel values in [{x.min():.4g}, "
                             f"{x.max():.4g}], outside the value_range {tuple(value_range)}")
        x = (x - lo) / (hi - lo)
    if x.ndim == 3:
        x = x[:, None]
    if x.shape[1:] != (1, 28, 28):
        raise ValueError(f"expected 28x28 grey images, got shape {x.shape}")
    return np.clip(x, 0.0, 1.0)


class ClassifierExperiment(Experiment):
    """Train LeNet on MNIST or Fashion-MNIST with Adam (6 epochs: about 99.2% test
    accuracy on MNIST, 90.6% on Fashion-MNIST).

    Defaults (tinygen's, the usual ones for this network on MNIST): Adam 1e-3, batch
    128, dropout 0.25, 6 epochs (enough for 99% on MNIST in a few minutes on a CPU)."""

    name = "classifier"
    defaults = {"batch_size": 128, "lr": 1e-3, "epochs": 6, "dropout": 0.25}
    rules = {"dropout": fraction}
    with_labels = True

    def build_model(self):
        return LeNet(dropout=self.config["dropout"])

    def training_step(self, batch):
        x, y = batch
        self.model.train()
        logits = self.model(x)
        loss = F.cross_entropy(logits, y)
        self.update(loss)
        accuracy = float((logits.data.argmax(1) == y.data).mean())
        return {"loss": loss.item(), "accuracy": accuracy}

    @no_grad()
    def predict(self, images, batch_size: int = 1000, value_range=(0, 1)) -> np.ndarray:
        """Class predictions (N,) for images (any of the forms images_to_input takes)."""
        return np.concatenate([self._logits(b).argmax(1)
                               for b in _batches(images, batch_size, value_range)])

    @no_grad()
    def features(self, images, batch_size: int = 1000, value_range=(0, 1)) -> np.ndarray:
        """The 128-d features h (N, 128) used for FID."""
        self.model.eval()
        return np.concatenate([self.model.features(tensor(b, device=self.device)).numpy()
                               for b in _batches(images, batch_size, value_range)])

    def _logits(self, x):
        self.model.eval()
        return self.model(tensor(x, device=self.device)).numpy()

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
                "fid_noise_vs_test": fid(noise, self.config["dataset"], self),
                "eval_images": int(len(images))}


def _batches(images, batch_size, value_range=(0, 1)):
    x = images_to_input(images, value_range)
    for i in range(0, len(x), batch_size):
        yield x[i:i + batch_size]


# --------------------------------------------------------------------------- the cached instrument

def cached_classifier_path(dataset: str) -> str:
    """Where the trained classifier for ``dataset`` is kept (the per-user cache)."""
    return os.path.join(data.cache_dir(), "classifiers", f"{dataset}.npz")


def trained_classifier(dataset: str, device: str = "cpu", data_root=None,
                       progress: bool = True) -> ClassifierExperiment:
    """The classifier for ``dataset``: loaded from the cache, or trained now (with a
    progress bar and a note saying what, why and how long) and cached.

    Callers may hold gradients off (an evaluation under ``no_grad``); the training here
    turns them back on for itself."""
    config = {**ClassifierExperiment.defaults, "model": "classifier", "dataset": dataset,
              "device": device, "seed": 0, "data_root": data_root}
    clf = ClassifierExperiment(config)
    path = cached_classifier_path(dataset)
    if os.path.isfile(path):
        clf.model.load_state_dict(load(path, device=device))
        return clf
    from ..train import fit
    print(f"No trained {dataset} classifier in the cache yet: training one now, once, to "
          f"measure the samples (FID on its features, class accuracy). LeNet, "
          f"{config['epochs']} epochs, a few minutes on a laptop CPU; it is then kept in "
          f"{path}. To skip it: tinygen eval RUN --no-classifier.", file=sys.stderr)
    with tempfile.TemporaryDirectory() as run_dir, enable_grad():
        fit(clf, run_dir, epochs=config["epochs"], progress=progress,
            checkpoint_every=10 ** 9)
    save(clf.model.state_dict(), path)
    return clf


# --------------------------------------------------------------------------- measuring samples

def fid(samples, dataset: str = "mnist", classifier: ClassifierExperiment | None = None,
        device: str = "cpu", data_root=None, value_range=(0, 1)) -> float:
    """FID with LeNet features: the Frechet distance between Gaussians fitted to the
    classifier's 128-d features of ``samples`` and of the dataset's 10,000 test images,

        ||mu_s - mu_t||^2 + tr(C_s + C_t - 2 (C_s C_t)^{1/2}).

    0 for identical feature statistics; lower is better. Use several thousand samples:
    the estimate is biased upwards for few. ``classifier`` defaults to the cached one;
    ``value_range`` is the range of float samples' pixels, (0, 1) or (-1, 1).
    """
    clf = classifier or trained_classifier(dataset, device, data_root)
    # the test set's statistics, computed once per classifier (kept on it)
    cache = clf.__dict__.setdefault("_test_statistics", {})
    key = (dataset, data_root)
    if key not in cache:
        test_images, _ = data.load_dataset(dataset, "test", data_root)
        cache[key] = gaussian_statistics(clf.features(test_images))
    mu_s, cov_s = gaussian_statistics(clf.features(samples, value_range=value_range))
    return frechet_distance(mu_s, cov_s, *cache[key])


def class_accuracy(samples, labels, dataset: str = "mnist",
                   classifier: ClassifierExperiment | None = None, device: str = "cpu",
                   data_root=None, value_range=(0, 1)) -> float:
    """How often the classifier sees the requested class in class-conditional samples
    (N, 1, 28, 28), pixels in ``value_range``, with requested labels (N,): a fraction in
    [0, 1]; chance is 0.1."""
    clf = classifier or trained_classifier(dataset, device, data_root)
    return float((clf.predict(samples, value_range=value_range) == np.asarray(labels)).mean())
