"""The conditional VAE and the two-layer hierarchical VAE: their bounds' properties,
learning, and the conditional VAE drawing the class it is asked for."""
import math
import os

import numpy as np
import pytest

import tinygen as tg
from tinygen import data
from tinygen.experiments.vae.cvae import ConditionalVAEExperiment
from tinygen.experiments.vae.hvae import HierarchicalVAEExperiment
from tinygen.models.vae import VAE, ConditionalVAE, HierarchicalVAE
from tinygen.train import fit

needs_mnist = pytest.mark.skipif(not os.environ.get("TINYGEN_DATA"),
                                 reason="needs MNIST: set TINYGEN_DATA to the data folder")


def binary_batch(n=6, seed=0):
    return tg.tensor((np.random.default_rng(seed).random((n, 1, 28, 28)) > 0.7)
                     .astype(np.float32))


def test_hvae_bounds_tighten_with_k():
    """ELBO = L_1 <= L_5 <= L_50 in expectation, for any model and x (an untrained one here)."""
    tg.manual_seed(0)
    model = HierarchicalVAE(latent_dims=(8, 4), hidden=(32, 16))
    x = binary_batch()
    xs = tg.tensor(np.repeat(x.numpy(), 300, axis=0))
    est = {}
    with tg.no_grad():
        for k in (1, 5, 50):
            b = model.iwae_bound(xs, k).numpy().reshape(6, -1)
            est[k] = (b.mean(1), b.std(1) / math.sqrt(b.shape[1]))
    for lo, hi in ((1, 5), (5, 50)):
        gap = est[hi][0] - est[lo][0]
        assert np.all(gap > 3 * np.hypot(est[lo][1], est[hi][1])), (lo, hi, gap)


def test_hvae_elbo_terms_add_up_to_the_log_weight():
    model = HierarchicalVAE(latent_dims=(8, 4), hidden=(32, 16))
    x = binary_batch()
    tg.manual_seed(3)
    recon, kl = model.elbo(x)
    tg.manual_seed(3)
    log_w = model.log_weights(x, 1)[0]
    np.testing.assert_allclose((recon - kl).numpy(), log_w.numpy(), rtol=1e-5)
    assert model.sample(3).shape == (3, 1, 28, 28)


@pytest.mark.parametrize("kind", ["vae", "hvae"])
def test_untrained_decoder_gives_each_pixel_its_frequency_in_the_data(kind):
    """init_output_bias(mean image): with the last layer's weights at zero, p(x|z) is the
    model of independent pixels with the data's frequencies (clipped to [0.001, 0.999]),
    whatever z; so the bias alone carries them."""
    tg.manual_seed(0)
    model = VAE(8, 32) if kind == "vae" else HierarchicalVAE((8, 4), (32, 16))
    last = model.decoder[-1]
    x_mean = np.random.default_rng(0).random(784)
    x_mean[:3] = (0.0, 1.0, 0.5)
    model.init_output_bias(x_mean)
    last.weight.data[...] = 0
    z = tg.randn(5, model.latent_dim)
    probs = model.decode(z).sigmoid().numpy()
    np.testing.assert_allclose(probs, np.broadcast_to(np.clip(x_mean, 1e-3, 1 - 1e-3),
                                                      probs.shape), rtol=1e-5)


def test_cvae_decoder_uses_the_label():
    tg.manual_seed(0)
    model = ConditionalVAE(latent_dim=4, hidden=16)
    z = tg.randn(2, 4)
    a = model.decode(z, np.array([0, 0])).numpy()
    b = model.decode(z, np.array([1, 1])).numpy()
    assert not np.allclose(a, b)                      # another class, another image
    recon, kl = model.elbo(binary_batch(2), np.array([3, 7]))
    assert recon.shape == kl.shape == (2,) and np.all(kl.numpy() >= 0)


def experiment(cls, **overrides):
    return cls({**cls.defaults, "model": cls.name, "dataset": "mnist", "device": "cpu",
                "seed": 0, "eval_k": 20, "eval_n": 300, "eval_fid": False, **overrides})


@needs_mnist
def test_hvae_learns(tmp_path):
    exp = experiment(HierarchicalVAEExperiment)
    before = exp.evaluate()
    fit(exp, str(tmp_path), steps=200, progress=False)
    after = exp.evaluate()
    assert after["elbo_nats"] > before["elbo_nats"] + 250, (before, after)
    assert "samples.png" in os.listdir(tmp_path)


@needs_mnist
def test_cvae_draws_the_requested_digit(tmp_path):
    """After a short training, a classifier recognises the requested class in the cVAE's
    samples far more often than chance (10%)."""
    from tinygen.experiments.classifier import ClassifierExperiment as Classifier
    from tinygen.experiments.classifier import images_to_input

    class Small(Classifier):
        def train_loader(self):
            images, labels = data.load_mnist("train")
            return data.DataLoader(images_to_input(images[:4000]), labels[:4000],
                                   batch_size=64, shuffle=True, seed=0)
    clf = Small({**Classifier.defaults, "model": "classifier", "dataset": "mnist",
                 "device": "cpu", "seed": 0})
    fit(clf, str(tmp_path / "clf"), steps=150, progress=False)

    exp = experiment(ConditionalVAEExperiment)
    fit(exp, str(tmp_path / "cvae"), steps=600, progress=False)
    y = np.arange(500) % 10
    tg.manual_seed(0)
    accuracy = (clf.predict(exp.model.sample(y).numpy()) == y).mean()
    assert accuracy > 0.6, accuracy
    assert "class_rows.png" in os.listdir(tmp_path / "cvae")
