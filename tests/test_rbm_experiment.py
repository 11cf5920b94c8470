"""The rbm recipe end to end: training by PCD and CD, the test log-likelihood exact and by
AIS, inpainting, the out-of-distribution AUROC, pictures, resuming and the command.
(The math is in test_rbm.py; the shared OOD scores in test_flow_experiments.py.)"""
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


def experiment(**config):
    cls = get_experiment("rbm")
    return cls({**cls.defaults, "model": "rbm", "dataset": "mnist", "seed": 0,
                "device": "cpu", "hidden": 8, "batch_size": 20, "eval_n": 50,
                "eval_fid": False, "eval_inpainting_n": 20, "sample_steps": 5, **config})


def test_registered_for_the_image_sets_only():
    assert REGISTRY["rbm"].datasets == ("mnist", "fashion-mnist")


def test_options_are_checked():
    with pytest.raises(ConfigError, match="--optimizer 'rmsprop'"):
        experiment(optimizer="rmsprop")
    with pytest.raises(ConfigError, match="--cd-k 0"):
        experiment(cd_k=0)


@needs_mnist
@pytest.mark.parametrize("persistent, optimizer, lr", [(True, "sgd", 0.1),
                                                       (False, "sgd", 0.1),
                                                       (True, "adam", 0.01)])
def test_training_raises_the_exact_log_likelihood(persistent, optimizer, lr, tmp_path):
    """300 updates of an 8-hidden-unit RBM: the exact test NLL falls more than 10 nats
    below that of the base-rate start (the visible biases at the pixels' log-odds, W ~
    0.01: nearly every pixel its own coin with the data's frequency; 196.1 nats on these
    50 images; measured after training: SGD 175.0 with PCD, 174.6 with CD; Adam 180.9), and its
    inpainting beats filling in the base rates."""
    exp = experiment(persistent=persistent, optimizer=optimizer, lr=lr)
    p = exp.base_rates()
    exp.train_loader()   # sets the visible biases, as fit does
    start = exp.evaluate()
    assert start["nll_estimator"] == "exact"
    fit(exp, str(tmp_path), steps=300, progress=False)
    m = exp.evaluate()
    assert m["nll_nats"] < start["nll_nats"] - 10
    assert m["bits_per_dim"] == pytest.approx(m["nll_nats"] / (784 * np.log(2)))
    assert m["data_variant"] == "dynamic_binarized" and m["eval_images"] == 50
    assert "log_Z_interval" not in m
    x = exp.images("test")[0][:20].reshape(20, 784)
    base_rate_mse = ((x[:, 392:] - p[392:]) ** 2).mean()
    assert m["inpainting_mse"] < base_rate_mse and m["inpainting_images"] == 20
    # the biases moved from the log-odds they started at, but not far in 300 steps
    a = exp.model.a.numpy()
    assert np.corrcoef(a, np.log(p / (1 - p)))[0, 1] > 0.9
    for picture in ("filters.png", "samples.png", "gibbs_chain.png"):
        assert os.path.getsize(tmp_path / picture) > 1000


@needs_mnist
def test_ais_is_used_above_the_exact_limit_and_agrees_with_the_exact_value(tmp_path):
    """The same trained 12-hidden-unit model measured exactly and by AIS (exact_max_hidden
    lowered to 10): AIS's NLL interval holds the exact NLL."""
    exp = experiment(hidden=12, lr=0.05, ais_runs=50, ais_betas=1000)
    fit(exp, str(tmp_path), steps=30, progress=False)
    exact = exp.evaluate()
    exp.config["exact_max_hidden"] = 10
    ais = exp.evaluate()
    assert ais["nll_estimator"] == "ais_1000x50"
    low, high = ais["nll_interval"]
    assert low <= exact["nll_nats"] <= high
    assert ais["log_Z_interval"][0] <= exact["log_Z"] <= ais["log_Z_interval"][1]


@needs_mnist
@pytest.mark.parametrize("persistent", [True, False])
def test_a_resumed_run_continues_exactly(persistent, tmp_path):
    """4 + 4 steps give the same log as 8 straight: PCD's chains come back from the
    checkpoint (fresh chains would change the negative phase and so the log), and CD's
    checkpoint draws nothing from the generator whose state it saves."""
    for folder, steps in (("straight", 8), ("resumed", 4), ("resumed", 8)):
        fit(experiment(lr_schedule="constant", persistent=persistent),
            str(tmp_path / folder), steps=steps, progress=False)
    assert [r["free_energy_gap"] for r in read_log(str(tmp_path / "resumed"))] == \
        [r["free_energy_gap"] for r in read_log(str(tmp_path / "straight"))]


@needs_mnist
def test_inpainting_keeps_the_known_pixels():
    exp = experiment()
    mask = np.ones(784, np.float32)
    mask[392:] = 0
    v = (np.random.default_rng(0).random((4, 784)) < 0.3).astype(np.float32)
    filled = exp.inpaint(v, mask, steps=6, average=3)
    np.testing.assert_array_equal(filled[:, :392], v[:, :392])
    assert filled.min() >= 0 and filled.max() <= 1 and filled.shape == (4, 784)


@needs_mnist
def test_command_trains_evaluates_with_ood_and_draws(tmp_path):
    run = str(tmp_path / "rbm")
    assert main(["train", "rbm", "--dataset", "mnist", "--steps", "5", "--hidden", "6",
                 "--batch-size", "10", "--eval-n", "40", "--sample-steps", "3",
                 "--eval-inpainting-n", "10", "--out", run]) == 0
    assert main(["eval", run, "--no-classifier", "--ood", "fashion-mnist"]) == 0
    m = json.load(open(os.path.join(run, "metrics.json")))
    # (the wiring only: 5 steps teach nothing to separate)
    assert m["ood"]["dataset"] == "fashion-mnist" and 0 <= m["ood"]["auroc"] <= 1
    assert m["ood"]["score"] == "free energy F(v)"
    for picture in ("ood_histogram.png", "inpainting.png"):
        assert os.path.getsize(os.path.join(run, picture)) > 1000


@needs_mnist
def test_evaluation_with_the_classifier_measures_samples(small_classifier, monkeypatch):
    from tinygen.experiments import classifier
    monkeypatch.setattr(classifier, "trained_classifier", lambda *a, **k: small_classifier)
    m = experiment(eval_fid=True, eval_fid_n=30).evaluate()
    assert m["fid_lenet"] > 0 and m["fid_samples"] == 30 and m["sampler"] == "gibbs-5"
    assert 0 <= m["inpainting_class_accuracy"] <= 1
