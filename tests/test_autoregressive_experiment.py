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

TINY = {"nade": {"hidden": 16, "lr": 0.02},
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
    exp.train_loader()        # what fit does first (NADE: b set to the pixels' log-odds)
    tg.manual_seed(7)
    before = exp.evaluate()
    fit(exp, str(tmp_path / "run"), steps=30)
    tg.manual_seed(7)
    after = exp.evaluate()
    assert after["nll_estimator"] == "exact" and after["eval_images"] == 40
    assert after["data_variant"] == "dynamic_binarized"
    # below the start (for NADE: the pixels' independent marginals, about 200 nats)
    assert after["nll_nats"] < before["nll_nats"] - 3, (before["nll_nats"], after["nll_nats"])
    assert after["bits_per_dim"] == pytest.approx(after["nll_nats"] / (784 * np.log(2)))
    # the NLL is the mean of -log p over exactly these binarised test images
    x, _ = exp.test_images()
    with tg.no_grad():
        log_p = exp.model.log_prob(tg.tensor(x)).numpy()
    assert after["nll_nats"] == pytest.approx(-log_p.mean(), rel=1e-6)
    # inpainting_mse: the squared error over the lower half of the 3 completed digits,
    # from the same random numbers (the NLL above draws none)
    tg.manual_seed(7)
    filled = exp.complete(x[:3])
    expected = ((filled - x[:3])[..., 14:, :] ** 2).mean()
    assert after["inpainting_mse"] == pytest.approx(expected) and after["inpainting_images"] == 3


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


@needs_mnist
@pytest.mark.parametrize("name", list(TINY))
def test_recipes_train_and_evaluate_on_every_device(name, device, tmp_path):
    """A few steps, the NLL and completions on the device (the CUDA case on the NumPy
    stand-in where CuPy is missing)."""
    exp = experiment(name, device=device, eval_n=20, eval_inpaint_n=2)
    fit(exp, str(tmp_path / "run"), steps=2)
    metrics = exp.evaluate()
    assert np.isfinite(metrics["nll_nats"]) and metrics["inpainting_images"] == 2
    assert exp.sample(2).shape == (2, 1, 28, 28)


def test_no_inpainting_is_allowed():
    assert experiment("nade", eval_inpaint_n=0).config["eval_inpaint_n"] == 0
