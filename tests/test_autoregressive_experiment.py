"""The nade, pixelcnn and gated-pixelcnn recipes end to end: training on -log p(x), the
exact test NLL, completions, pictures, resuming and the command. (The math is in
test_autoregressive.py.)"""
import json
import os

import numpy as np
import pytest

import tinygen as tg
from tinygen.cli import main
from tinygen.experiments import REGISTRY, get_experiment
from tinygen.train import fit

needs_mnist = pytest.mark.skipif(not os.environ.get("TINYGEN_DATA"),
                                 reason="needs MNIST: set TINYGEN_DATA to the data folder")

TINY = {"nade": {"hidden": 16},
        "pixelcnn": {"channels": 8, "num_blocks": 1, "hidden_output": 8},
        "gated-pixelcnn": {"channels": 4, "num_layers": 2, "hidden_output": 8}}


def experiment(name, **config):
    cls = get_experiment(name)
    return cls({**cls.defaults, "model": name, "dataset": "mnist", "seed": 0,
                "device": "cpu", "batch_size": 20, "lr": 3e-3, "eval_n": 40, "eval_fid": False,
                "eval_inpaint_n": 3, **TINY[name], **config})


def test_registered_for_the_image_sets():
    for name in TINY:
        assert REGISTRY[name].datasets == ("mnist", "fashion-mnist")


@needs_mnist
@pytest.mark.parametrize("name", list(TINY))
def test_training_lowers_the_exact_test_nll_and_evaluation_reports_it(name, tmp_path):
    exp = experiment(name)
    before = exp.evaluate()
    fit(exp, str(tmp_path / "run"), steps=30)
    after = exp.evaluate()
    assert after["nll_estimator"] == "exact" and after["eval_images"] == 40
    assert after["data_variant"] == "dynamic_binarized"
    assert after["nll_nats"] < before["nll_nats"] - 20, (before["nll_nats"], after["nll_nats"])
    assert after["bits_per_dim"] == pytest.approx(after["nll_nats"] / (784 * np.log(2)))
    # the NLL is the mean of -log p over exactly these binarised test images
    x, _ = exp.test_images()
    with tg.no_grad():
        log_p = exp.model.log_prob(tg.tensor(x)).numpy()
    assert after["nll_nats"] == pytest.approx(-log_p.mean(), rel=1e-6)
    assert 0 <= after["inpainting_mse"] <= 1 and after["inpainting_images"] == 3


@needs_mnist
@pytest.mark.parametrize("name", ["nade", "pixelcnn"])
def test_completions_keep_the_upper_half_and_fill_the_lower(name):
    exp = experiment(name)
    x, _ = exp.test_images()
    filled = exp.complete(x[:4])
    assert filled.shape == (4, 1, 28, 28)
    assert (filled[..., :14, :] == x[:4, ..., :14, :]).all()
    assert set(np.unique(filled)) <= {0.0, 1.0}
    assert (filled[..., 14:, :] != x[:4, ..., 14:, :]).any()   # drawn, not copied


@needs_mnist
def test_a_resumed_run_continues_exactly(tmp_path):
    """16 steps in one go give the weights of 8 steps, a stop and 8 more (NADE: its
    output biases, set to the pixels' log-odds when training starts, must come from the
    checkpoint on resuming, not be set again)."""
    config = {"lr_schedule": "constant"}
    whole = experiment("nade", **config)
    fit(whole, str(tmp_path / "whole"), steps=16)
    fit(experiment("nade", **config), str(tmp_path / "parts"), steps=8)
    second = experiment("nade", **config)
    fit(second, str(tmp_path / "parts"), steps=16)
    for (k, a), (_, b) in zip(whole.model.state_dict().items(),
                              second.model.state_dict().items()):
        assert np.array_equal(a.numpy(), b.numpy()), k


@needs_mnist
def test_the_command_trains_evaluates_and_samples(tmp_path, capsys):
    run = str(tmp_path / "run")
    assert main(["train", "gated-pixelcnn", "--steps", "3", "--channels", "4",
                 "--num-layers", "1", "--hidden-output", "4", "--eval-n", "20",
                 "--out", run]) == 0
    for picture in ("samples.png", "completions.png", "curves.png"):
        assert os.path.getsize(os.path.join(run, picture)) > 1000, picture
    assert main(["eval", run, "--no-classifier"]) == 0
    with open(os.path.join(run, "metrics.json")) as f:
        metrics = json.load(f)
    assert metrics["eval_images"] == 20 and metrics["nll_estimator"] == "exact"
    assert main(["sample", run, "--n", "2", "--out", str(tmp_path / "s.png")]) == 0
