"""The flow recipes end to end (nice, realnvp, glow, maf, made): dequantisation and the
bits/dim accounting, training, evaluation with the out-of-distribution AUROC, pictures,
the command. (The math is in test_flows.py and test_flows_made.py.)"""
import json
import math
import os

import numpy as np
import pytest

from tinygen.cli import main
from tinygen.data import toy_entropy
from tinygen.experiments import REGISTRY, get_experiment
from tinygen.experiments.base import ConfigError
from tinygen.experiments.flows.flow import dequantize
from tinygen.metrics import auroc, compression_bits
from tinygen.train import fit

needs_mnist = pytest.mark.skipif(not os.environ.get("TINYGEN_DATA"),
                                 reason="needs MNIST: set TINYGEN_DATA to the data folder")
FLOWS = ["nice", "realnvp", "glow", "maf"]
SMALL = {"nice": {"hidden": 16, "num_layers": 1},
         "realnvp": {"hidden": 8, "num_scales": 1, "num_couplings": 2},
         "glow": {"hidden": 8, "num_levels": 1, "steps_per_level": 2},
         "maf": {"hidden": 16, "num_layers": 1, "num_mades": 2}}


def experiment(name, dataset="two_moons", **config):
    cls = get_experiment(name)
    return cls({**cls.defaults_for(dataset), "model": name, "dataset": dataset, "seed": 0,
                "device": "cpu", **SMALL.get(name, {}), **config})


def test_registered():
    for name in FLOWS:
        assert {"mnist", "fashion-mnist", "checkerboard", "8gaussians"} <= set(
            REGISTRY[name].datasets)
    assert REGISTRY["made"].datasets == ("mnist", "fashion-mnist")


def test_dequantize_keeps_each_pixel_inside_its_own_bin():
    """x = (k + u) / 256 with u ~ U[0, 1): floor(256 x) recovers the 8-bit level k, and
    the offsets are uniform (their mean about 1/2)."""
    k = np.arange(256, dtype=np.float32).reshape(1, 1, 16, 16)
    x = dequantize(np.repeat(k / 255, 50, axis=0), np.random.default_rng(0))
    assert x.dtype == np.float32 and x.min() >= 0 and x.max() < 1
    np.testing.assert_array_equal(np.floor(x * 256), np.broadcast_to(k, x.shape))
    assert abs((x * 256 - k).mean() - 0.5) < 0.01


def test_auroc_counts_pairs_and_ties():
    assert auroc([1, 2, 3], [4, 5]) == 1.0 and auroc([4, 5], [1, 2, 3]) == 0.0
    assert auroc([1, 2], [2, 3]) == pytest.approx((1 + 1 + 0.5 + 1) / 4)
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=300), rng.normal(0.5, size=200)
    assert auroc(a, b) == pytest.approx((b[:, None] > a[None]).mean())
    with pytest.raises(ValueError, match="at least one"):
        auroc([], [1.0])


def test_compression_bits_measure_input_complexity():
    """zlib's length of an image: a blank image compresses to far fewer bits than noise,
    and pixels in [0, 1] and their uint8 levels give the same lengths."""
    rng = np.random.default_rng(0)
    noise = rng.integers(0, 256, (3, 1, 28, 28)).astype(np.uint8)
    blank = np.zeros((3, 1, 28, 28), np.uint8)
    assert compression_bits(blank).max() < 200 < 784 * 8 < compression_bits(noise).min()
    np.testing.assert_array_equal(compression_bits(noise / 255), compression_bits(noise))


@pytest.mark.parametrize("name", FLOWS)
def test_toy_training_lowers_the_nll_and_evaluation_reports_the_floor(name, tmp_path):
    exp = experiment(name, "8gaussians", eval_n=500, batch_size=128)
    before = exp.evaluate()["nll_nats"]
    fit(exp, str(tmp_path), steps=60, progress=False)
    m = exp.evaluate()
    assert m["nll_nats"] < before
    assert m["nll_estimator"] == "exact" and m["eval_images"] == 500
    # the floor: the data's differential entropy, from its known density
    floor = toy_entropy("8gaussians")
    assert m["data_entropy_nats"] == floor.entropy
    assert m["data_entropy_standard_error"] == floor.standard_error
    for picture in ("density.png", "layers.png", "samples.png"):
        assert os.path.getsize(tmp_path / picture) > 1000


@needs_mnist
@pytest.mark.parametrize("name", FLOWS)
def test_image_flows_train_and_report_bits_per_dim(name, tmp_path):
    exp = experiment(name, "mnist", batch_size=16, eval_n=32, eval_fid=False)
    fit(exp, str(tmp_path), steps=3, progress=False)
    m = exp.evaluate()
    # bits/dim of the 8-bit data: -log p of x in [0, 1]^784, plus log 256 per pixel
    assert m["bits_per_dim"] == pytest.approx(m["nll_nats"] / (784 * math.log(2)) + 8)
    assert m["data_variant"] == "dequantized_8bit" and m["eval_images"] == 32
    assert exp.sample(3).shape == (3, 1, 28, 28)
    assert os.path.getsize(tmp_path / "samples.png") > 1000


@needs_mnist
def test_ood_evaluation_scores_the_other_dataset(tmp_path):
    exp = experiment("glow", "mnist", batch_size=16, eval_n=40, eval_fid=False,
                     eval_ood="fashion-mnist")
    fit(exp, str(tmp_path), steps=3, progress=False)
    ood = exp.evaluate()["ood"]
    assert ood["dataset"] == "fashion-mnist" and 0 <= ood["auroc"] <= 1
    assert ood["bits_per_dim_in"] == pytest.approx(exp.evaluate()["bits_per_dim"])


@needs_mnist
def test_eval_command_takes_ood_and_refuses_it_where_it_cannot_apply(tmp_path, capsys):
    run = str(tmp_path / "glow")
    assert main(["train", "glow", "--dataset", "mnist", "--steps", "2", "--batch-size", "8",
                 "--hidden", "8", "--num-levels", "1", "--steps-per-level", "1", "--eval-n",
                 "20", "--out", run]) == 0
    assert main(["eval", run, "--no-classifier", "--ood", "fashion-mnist"]) == 0
    metrics = json.load(open(os.path.join(run, "metrics.json")))
    assert metrics["ood"]["dataset"] == "fashion-mnist"
    assert os.path.getsize(os.path.join(run, "ood_histogram.png")) > 1000
    assert main(["eval", run, "--ood", "two_moons"]) == 2
    assert "--ood two_moons" in capsys.readouterr().err
    assert main(["eval", run, "--ood", "mnist"]) == 2   # its own data: AUROC 0.5 by design
    assert "the run's own dataset" in capsys.readouterr().err


@needs_mnist
def test_made_recipe_trains_evaluates_and_samples(tmp_path):
    exp = get_experiment("made")({**get_experiment("made").defaults, "model": "made",
                                  "dataset": "mnist", "seed": 0, "device": "cpu",
                                  "hidden": 32, "num_masks": 2, "eval_n": 50,
                                  "eval_fid": False, "batch_size": 32})
    fit(exp, str(tmp_path), steps=20, progress=False)
    m = exp.evaluate()
    assert m["nll_estimator"] == "exact_ensemble_2_masks" and m["eval_images"] == 50
    assert 50 < m["nll_nats"] < 544   # below 784 ln 2 (a coin per pixel) after 20 steps
    x = exp.sample(2)
    assert x.shape == (2, 1, 28, 28) and set(np.unique(x)) <= {0.0, 1.0}
    for picture in ("samples.png", "conditionals.png"):
        assert os.path.getsize(tmp_path / picture) > 1000


def test_options_are_checked():
    with pytest.raises(ConfigError, match="--logit-alpha 0.7"):
        experiment("realnvp", "mnist", logit_alpha=0.7)
    with pytest.raises(ConfigError, match="--temperature -1"):
        experiment("glow", temperature=-1.0)


def test_ood_scores_point_the_right_way(monkeypatch):
    """The scores on made-up log-likelihoods whose answer is known. Images are constant
    (the in-distribution test set 0.1, the OOD set 0.9, training images 0.5, so all
    compress alike) and the model's log p is looked up from that value: OOD data less
    likely than the model's own must give AUROC 1 for -log p, and, with the training
    images' NLL H in between, 1 for the typicality score |-log p - H| as well; OOD data
    *more* likely (the failure Nalisnick et al. found) gives 0 for -log p but still 1
    for typicality."""
    exp = experiment("glow", "two_moons")
    log_p = {0.1: -100.0, 0.5: -101.0, 0.9: -300.0}
    monkeypatch.setattr(exp, "test_data", lambda dataset=None, n=None: np.full(
        (n or 50, 1, 28, 28), 0.1 if dataset in (None, "mnist") else 0.9, np.float32))
    monkeypatch.setattr(exp, "images", lambda split: (np.full((50, 1, 28, 28), 0.5, np.float32),
                                                       np.zeros(50)))
    def nearest(x):   # training images arrive dequantised: 0.5 + u / 256
        return min(log_p, key=lambda v: abs(v - float(x[0, 0, 0, 0])))
    monkeypatch.setattr(exp, "log_prob", lambda x, desc="": np.full(len(x), log_p[nearest(x)]))
    exp.config["dataset"] = "mnist"
    m = exp.ood_metrics("fashion-mnist", np.full(50, log_p[0.1]))
    assert m["auroc"] == 1.0 and m["auroc_typicality"] == 1.0 and m["auroc_complexity"] == 1.0
    log_p[0.9] = 50.0   # the OOD images now more likely than the model's own data
    m = exp.ood_metrics("fashion-mnist", np.full(50, log_p[0.1]))
    assert m["auroc"] == 0.0 and m["auroc_typicality"] == 1.0
    assert m["bits_per_dim_out"] < m["bits_per_dim_in"]


def test_a_resumed_flow_run_continues_exactly(tmp_path):
    """3 + 3 steps give the same log as 6 straight: ActNorm's initialisation, the weights,
    Adam's state and the data order all come back from the checkpoint."""
    from tinygen.train import read_log
    exp = experiment("glow", "two_moons", lr_schedule="constant")
    fit(exp, str(tmp_path / "straight"), steps=6, progress=False)
    first = experiment("glow", "two_moons", lr_schedule="constant")
    fit(first, str(tmp_path / "resumed"), steps=3, progress=False)
    again = experiment("glow", "two_moons", lr_schedule="constant")
    fit(again, str(tmp_path / "resumed"), steps=6, progress=False)   # resumes
    assert [r["nll"] for r in read_log(str(tmp_path / "resumed"))] == \
        [r["nll"] for r in read_log(str(tmp_path / "straight"))]
