"""The GAN recipes end to end: k updates of D per update of G, resuming, sampling,
evaluation, pictures and the command's checks. (The math is in test_gan.py.)"""
import json
import os

import numpy as np
import pytest

from tinygen.cli import main
from tinygen.experiments import REGISTRY, get_experiment
from tinygen.experiments.base import ConfigError
from tinygen.train import fit, read_log

needs_mnist = pytest.mark.skipif(not os.environ.get("TINYGEN_DATA"),
                                 reason="needs MNIST: set TINYGEN_DATA to the data folder")
GANS = ("gan", "dcgan", "cgan", "wgan", "wgan-gp")


def experiment(name, **config):
    cls = get_experiment(name)
    return cls({**cls.defaults, "model": name, "dataset": "8gaussians", "seed": 0,
                "device": "cpu", "batch_size": 16, "hidden": 16, "latent_dim": 4, **config})


@pytest.mark.parametrize("name, k_key", [("gan", "k"), ("wgan", "n_critic"),
                                         ("wgan-gp", "n_critic")])
def test_generator_updates_once_every_k_discriminator_updates(name, k_key, tmp_path):
    exp = experiment(name, **{k_key: 3})
    g_before = [p.numpy().copy() for p in exp.G.parameters()]
    d_before = [p.numpy().copy() for p in exp.D.parameters()]
    fit(exp, str(tmp_path), steps=2, progress=False)
    # two D updates: D has moved, G not yet
    assert all(np.array_equal(a, p.numpy()) for a, p in zip(g_before, exp.G.parameters()))
    assert not all(np.array_equal(a, p.numpy()) for a, p in zip(d_before, exp.D.parameters()))
    fit(exp, str(tmp_path), steps=6, progress=False)
    rows = read_log(str(tmp_path))
    assert [r["step"] for r in rows if "g_loss" in r] == [3, 6]
    assert not all(np.array_equal(a, p.numpy()) for a, p in zip(g_before, exp.G.parameters()))


def test_wgan_critic_weights_stay_clipped(tmp_path):
    exp = experiment("wgan", clip=0.02, lr=0.05)   # steps large enough to hit the bound
    fit(exp, str(tmp_path), steps=4, progress=False)
    weights = np.concatenate([p.numpy().ravel() for p in exp.D.parameters()])
    assert np.abs(weights).max() <= 0.02 and np.isclose(np.abs(weights).max(), 0.02)


@pytest.mark.parametrize("name", ["gan", "wgan-gp"])
def test_a_resumed_run_repeats_an_uninterrupted_one(name, tmp_path):
    whole, parts = tmp_path / "whole", tmp_path / "parts"
    fit(experiment(name, n_critic=2, ema_decay=0.9), str(whole), steps=6, progress=False)
    fit(experiment(name, n_critic=2, ema_decay=0.9), str(parts), steps=3, progress=False)
    fit(experiment(name, n_critic=2, ema_decay=0.9), str(parts), steps=6, progress=False)
    assert read_log(str(whole)) == read_log(str(parts))


def test_toy_samples_evaluation_and_pictures(tmp_path):
    exp = experiment("gan")
    fit(exp, str(tmp_path), steps=20, progress=False)
    points = exp.sample(7)
    assert points.shape == (7, 2) and np.isfinite(points).all()
    metrics = exp.evaluate()
    assert metrics["eval_images"] == 10000 and 0 <= metrics["modes_covered"] <= 8
    assert 0 <= metrics["high_quality_fraction"] <= 1
    for picture in ("samples.png", "progress.png", "curves.png"):
        assert (tmp_path / picture).stat().st_size > 1000


def test_options_are_checked_before_any_work():
    with pytest.raises(ConfigError, match="--generator-loss 'least_squares'"):
        experiment("gan", generator_loss="least_squares")
    with pytest.raises(ConfigError, match="--network conv reads 28x28 images"):
        experiment("wgan-gp", network="conv")
    with pytest.raises(ConfigError, match="--beta2 1.0"):
        experiment("wgan-gp", beta2=1.0)


def test_the_command_trains_samples_and_evaluates_a_toy_gan(tmp_path, capsys):
    out = str(tmp_path / "run")
    assert main(["train", "wgan-gp", "--dataset", "25gaussians", "--steps", "10",
                 "--hidden", "16", "--out", out]) == 0
    assert main(["sample", out, "--n", "300"]) == 0
    assert (tmp_path / "run" / "samples.png").read_bytes()[:4] == b"\x89PNG"
    assert main(["sample", out, "--n", "5", "--out", str(tmp_path / "p.npy")]) == 0
    assert np.load(tmp_path / "p.npy").shape == (5, 2)
    assert main(["eval", out]) == 0
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert set(metrics) >= {"modes_covered", "high_quality_fraction", "train_seconds"}
    assert main(["train", "dcgan", "--dataset", "8gaussians", "--out", out]) == 2
    assert "unknown dataset '8gaussians' for dcgan" in capsys.readouterr().err


@needs_mnist
@pytest.mark.parametrize("name", [n for n in GANS if n != "gan"] + ["gan"])
def test_every_image_gan_trains_samples_and_draws(name, tmp_path):
    cls = get_experiment(name)
    config = {**cls.defaults, "model": name, "dataset": "mnist", "seed": 0,
              "device": "cpu", "batch_size": 8, "channels": 4, "hidden": 16,
              "n_critic": 1, "k": 1, "eval_n": 20, "eval_fid": False}
    exp = cls(config)
    fit(exp, str(tmp_path), steps=2, progress=False)
    images = exp.sample(3)
    assert images.shape == (3, 1, 28, 28) and images.min() >= 0 and images.max() <= 1
    metrics = exp.evaluate()   # without the classifier: no FID, and no images claimed
    assert "fid_lenet" not in metrics and "eval_images" not in metrics
    pictures = ["samples.png", "progress.png", "interpolations.png"]
    pictures += ["class_rows.png"] if name == "cgan" else []
    for picture in pictures:
        assert (tmp_path / picture).stat().st_size > 500, picture


def test_every_gan_is_registered_with_its_datasets():
    for name in GANS:
        assert name in REGISTRY
    assert "25gaussians" in REGISTRY["gan"].datasets
    assert REGISTRY["dcgan"].datasets == ("mnist", "fashion-mnist")


@pytest.mark.parametrize("name", ["gan", "wgan", "wgan-gp"])
def test_one_step_of_each_objective_on_every_device(name, device, tmp_path):
    exp = experiment(name, device=device, n_critic=1)
    scalars = exp.training_step(exp.train_loader().__iter__().__next__())
    assert "g_loss" in scalars and all(np.isfinite(v) for v in scalars.values())
    assert exp.sample(4).shape == (4, 2)


def test_a_conditional_step_on_every_device(device):
    from tinygen.experiments.gan.cgan import ConditionalGANExperiment
    from tinygen import tensor
    cls = ConditionalGANExperiment
    exp = cls({**cls.defaults, "model": "cgan", "dataset": "mnist", "seed": 0,
               "device": device, "channels": 4, "latent_dim": 8})
    x = tensor(np.random.default_rng(0).uniform(-1, 1, (6, 1, 28, 28)).astype(np.float32),
               device=device)
    scalars = exp.training_step((x, np.arange(6) % 10))
    assert np.isfinite(scalars["d_loss"]) and np.isfinite(scalars["g_loss"])
    assert exp.sample(3).shape == (3, 1, 28, 28)


class FewImages:
    """A recipe trained on the first 3000 MNIST training images (a learning test)."""

    def images(self, split):
        x, y = super().images(split)
        return (x[:3000], y[:3000]) if split == "train" else (x, y)


def small_run(name, tmp_path, steps):
    cls = type("Few", (FewImages, get_experiment(name)), {})
    exp = cls({**cls.defaults, "model": name, "dataset": "mnist", "seed": 0, "device": "cpu",
               "channels": 16, "batch_size": 32, "lr": 1e-3})
    fit(exp, str(tmp_path), steps=steps, progress=False)
    return exp


@needs_mnist
def test_a_small_dcgan_improves_its_fid(small_classifier, tmp_path):
    from tinygen.experiments.classifier import fid
    before = fid(small_run("dcgan", tmp_path / "0", 1).sample(1000), "mnist", small_classifier)
    after = fid(small_run("dcgan", tmp_path / "1", 300).sample(1000), "mnist", small_classifier)
    # channels 16, batch 32, 3000 images: the FID falls to a fraction of its start
    assert after < 0.5 * before, (before, after)


@needs_mnist
def test_a_small_cgan_draws_the_digit_asked_for_more_often_than_chance(small_classifier,
                                                                       tmp_path):
    from tinygen.experiments.classifier import class_accuracy
    exp = small_run("cgan", tmp_path, 300)
    y = np.arange(1000) % 10
    accuracy = class_accuracy(exp.sample(1000, y), y, classifier=small_classifier)
    # chance is 0.1, and 0.15 lies 5 standard errors above it for 1000 samples;
    # measured 0.241 after 300 steps (channels 16, batch 32, 3000 images)
    assert accuracy > 0.15, accuracy


def test_an_eps_that_would_broadcast_over_features_is_refused():
    from tinygen import tensor
    from tinygen.models.gan.wgan import interpolate
    real, fake = tensor(np.ones((3, 2), np.float32)), tensor(np.zeros((3, 2), np.float32))
    with pytest.raises(ValueError, match=r"eps must have shape \(3, 1\)"):
        interpolate(real, fake, tensor(np.full(2, 0.5, np.float32)))
    assert interpolate(real, fake, tensor(np.full((3, 1), 0.25, np.float32))).numpy()[0, 0] \
        == 0.25


def test_conditional_samples_take_labels_as_a_tensor_or_an_array():
    from tinygen import tensor
    from tinygen.models.gan.cgan import ConditionalGenerator
    G = ConditionalGenerator(latent_dim=4, channels=2)
    assert G.sample(tensor(np.array([1, 2]))).shape == (2, 1, 28, 28)
    assert G.sample([3, 4, 5]).shape == (3, 1, 28, 28)


def test_progress_keeps_at_most_ten_moments_when_a_run_is_extended(tmp_path):
    exp = experiment("gan")
    for total in (50, 60, 70):
        fit(exp, str(tmp_path), steps=total, progress=False)
    steps = exp.snapshot_steps()
    assert len(exp.snapshots) > 10 and len(steps) == 10 and steps[-1] == 70
