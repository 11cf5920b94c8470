"""The LeNet classifier that measures samples: shapes, input handling, learning, FID."""
import os

import numpy as np
import pytest

import tinygen as tg
from tinygen import data
from tinygen.experiments.classifier import class_accuracy, fid, images_to_input
from tinygen.models.classifier import LeNet

needs_mnist = pytest.mark.skipif(not os.environ.get("TINYGEN_DATA"),
                                 reason="needs MNIST: set TINYGEN_DATA to the data folder")


def test_lenet_shapes():
    net = LeNet()
    x = tg.randn(3, 1, 28, 28)
    assert net(x).shape == (3, 10) and net.features(x).shape == (3, 128)
    assert sum(p.size for p in net.parameters()) == (32 * 25 + 32) + (64 * 32 * 25 + 64) \
        + (3136 * 128 + 128) + (128 * 10 + 10)


def test_images_to_input_accepts_the_usual_forms():
    u8 = np.full((2, 28, 28), 255, np.uint8)
    np.testing.assert_allclose(images_to_input(u8), np.ones((2, 1, 28, 28)))
    pm1 = -np.ones((2, 1, 28, 28), np.float32)          # a model's samples in [-1, 1]
    np.testing.assert_allclose(images_to_input(pm1, value_range=(-1, 1)),
                               np.zeros((2, 1, 28, 28)))
    half = np.full((2, 28, 28), 0.5, np.float32)
    half[0, 0, 0] = -0.01           # one stray value must not rescale a [0, 1] batch
    with pytest.raises(ValueError, match=r"outside the value_range \(0, 1\)"):
        images_to_input(half)
    half[0, 0, 0] = -0.0005         # rounding is tolerated, and clipped
    np.testing.assert_allclose(images_to_input(half)[1], 0.5)
    assert images_to_input(tg.rand(2, 28, 28)).shape == (2, 1, 28, 28)
    with pytest.raises(ValueError, match="28x28"):
        images_to_input(np.zeros((2, 3, 32, 32), np.float32))


@needs_mnist
def test_the_classifier_learns(small_classifier):
    images, labels = data.load_mnist("test")
    accuracy = (small_classifier.predict(images[:2000]) == labels[:2000]).mean()
    assert accuracy > 0.93, accuracy   # 150 steps on 4000 images; chance is 0.1
    assert class_accuracy(images[:500], labels[:500], classifier=small_classifier) > 0.93


@needs_mnist
def test_fid_orders_what_it_measures(small_classifier):
    test_images, _ = data.load_mnist("test")
    train_images, _ = data.load_mnist("train")
    same = fid(test_images, "mnist", small_classifier)
    real = fid(train_images[:5000], "mnist", small_classifier)
    noise = fid(tg.generator(0).random((5000, 28, 28), dtype=np.float32), "mnist",
                small_classifier)
    assert abs(same) < 1e-6                    # the test set against itself
    assert 0 < real < noise / 10, (real, noise)  # real digits are far closer than noise


@needs_mnist
def test_the_instrument_is_trained_once_and_cached(tmp_path, monkeypatch, capsys):
    from tinygen.experiments import classifier as module
    monkeypatch.setattr(data, "cache_dir", lambda: str(tmp_path))
    monkeypatch.setattr(module.ClassifierExperiment, "defaults",
                        {**module.ClassifierExperiment.defaults, "epochs": 0.01})  # 5 steps
    with tg.no_grad():  # as inside an evaluation: training turns gradients back on
        first = module.trained_classifier("mnist", progress=False)
    note = capsys.readouterr().err
    assert "training one now" in note and "--no-classifier" in note   # what, and how to skip
    assert os.path.isfile(tmp_path / "classifiers" / "mnist.npz")
    second = module.trained_classifier("mnist", progress=False)     # loaded, not trained
    assert "training one now" not in capsys.readouterr().err
    for a, b in zip(first.model.parameters(), second.model.parameters()):
        np.testing.assert_array_equal(a.numpy(), b.numpy())


@needs_mnist
@pytest.mark.parametrize("model", ["vae", "cvae"])
def test_the_first_eval_on_a_machine_with_an_empty_cache(tmp_path, monkeypatch, model):
    """tinygen eval trains the instrument inside the evaluation (gradients off there);
    with an empty cache it must still write metrics.json."""
    import json
    from tinygen.cli import main
    from tinygen.experiments import classifier as module
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setattr(module.ClassifierExperiment, "defaults",
                        {**module.ClassifierExperiment.defaults, "epochs": 0.01})
    run = str(tmp_path / "run")
    assert main(["train", model, "--steps", "5", "--eval-n", "10", "--out", run]
                + (["--eval-k", "2"] if model == "vae" else [])) == 0
    assert main(["eval", run]) == 0
    assert os.path.isfile(tmp_path / "cache" / "tinygen" / "classifiers" / "mnist.npz")
    metrics = json.load(open(os.path.join(run, "metrics.json")))
    assert ("fid_lenet" if model == "vae" else "class_accuracy") in metrics
    assert metrics["device"] == "cpu" and metrics["train_seconds"] > 0
    assert main(["eval", run, "--no-classifier"]) == 0
    metrics = json.load(open(os.path.join(run, "metrics.json")))
    assert "fid_lenet" not in metrics and "class_accuracy" not in metrics
