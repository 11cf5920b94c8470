"""The ebm recipe end to end: the four kinds of chains on a toy set and on MNIST, the toy
NLL with log Z by quadrature (proved on an energy whose log Z is known), inpainting, the
out-of-distribution AUROC of the energy, samples, pictures, resuming and the command.
(The math is in test_ebm.py; the shared OOD scores in test_flow_experiments.py.)"""
import json
import os

import numpy as np
import pytest

from tinygen import tensor
from tinygen.cli import main
from tinygen.data import TOY_DATASETS, toy_entropy
from tinygen.experiments import REGISTRY, get_experiment
from tinygen.experiments.base import ConfigError
from tinygen.models.ebm import ConvEnergy, GaussianEnergy, MLPEnergy
from tinygen.train import fit, read_log

needs_mnist = pytest.mark.skipif(not os.environ.get("TINYGEN_DATA"),
                                 reason="needs MNIST: set TINYGEN_DATA to the data folder")
CHAINS = ["replay", "short_run", "pcd", "cd"]
# tiny settings: a few milliseconds a step; the buffer small, so checkpoints are too
TINY_TOY = {"hidden": 16, "batch_size": 32, "langevin_steps": 2, "sample_steps": 2,
            "eval_n": 100, "buffer_size": 100}
TINY_IMAGES = {"width": 4, "batch_size": 8, "langevin_steps": 2, "sample_steps": 2,
               "eval_n": 20, "eval_fid": False, "eval_inpainting_n": 8, "buffer_size": 64}


def experiment(dataset="8gaussians", cls=None, **config):
    cls = cls or get_experiment("ebm")
    tiny = TINY_TOY if dataset in TOY_DATASETS else TINY_IMAGES
    return cls({**cls.defaults_for(dataset), "model": "ebm", "dataset": dataset, "seed": 0,
                "device": "cpu", **tiny, **config})


def test_registered_for_the_image_and_toy_sets_with_their_own_defaults():
    assert set(REGISTRY["ebm"].datasets) == {"mnist", "fashion-mnist", *TOY_DATASETS}
    toy, images = experiment("two_moons"), experiment("mnist")
    assert isinstance(toy.model, MLPEnergy) and isinstance(images.model, ConvEnergy)
    # the toy sets: the true Langevin sampler (noise sqrt(step_size)), no clipping
    assert toy.config["noise"] == -1 and toy.config["step_size"] == 0.02 and toy.clip is None
    assert "noise sqrt(step_size)" in toy.sampler
    # images: the benchmark's x - 10 grad E + 0.005 xi, clipped to the pixels' range
    assert images.config["step_size"] == 20.0 and images.config["noise"] == 0.005
    assert images.clip == (-1.0, 1.0) and images.shape == (1, 28, 28)


def test_options_are_checked(tmp_path, capsys):
    with pytest.raises(ConfigError, match="--chains 'mcmc'"):
        experiment(chains="mcmc")
    with pytest.raises(ConfigError, match="--noise -0.5"):
        experiment(noise=-0.5)
    with pytest.raises(ConfigError, match="--alpha -0.1"):
        experiment(alpha=-0.1)
    # a replay buffer smaller than a batch is refused before any work, not at step 1
    with pytest.raises(ConfigError, match="--buffer-size 10"):
        experiment(buffer_size=10, batch_size=16)
    experiment(chains="pcd", buffer_size=10, batch_size=16)   # pcd sizes its own
    for noise in (-1, -1.0, 0.0):   # -1 is sqrt(step_size); 0 is descent without noise
        experiment(noise=noise)
    # the command reads a negative number as the option's value, not as an option
    assert main(["train", "ebm", "--dataset", "two_moons", "--noise", "-0.5", "--steps", "1",
                 "--out", str(tmp_path / "bad")]) == 2
    assert "--noise -0.5" in capsys.readouterr().err
    assert not os.path.exists(tmp_path / "bad")
    run = str(tmp_path / "good")
    assert main(["train", "ebm", "--dataset", "two_moons", "--noise", "-1", "--steps", "2",
                 "--hidden", "8", "--batch-size", "16", "--langevin-steps", "1",
                 "--sample-steps", "1", "--buffer-size", "32", "--out", run]) == 0
    assert json.load(open(os.path.join(run, "config.json")))["noise"] == -1


@pytest.mark.parametrize("chains", CHAINS)
def test_each_kind_of_chain_trains_on_a_toy_set(chains, tmp_path):
    exp = experiment("8gaussians", chains=chains)
    fit(exp, str(tmp_path), steps=3, progress=False)
    rows = read_log(str(tmp_path))
    assert [r["step"] for r in rows] == [1, 2, 3]
    for r in rows:
        assert np.isfinite([r["loss"], r["energy_pos"], r["energy_neg"]]).all()
    # only the buffer and the persistent chains are state a checkpoint must keep
    state = exp.state_dict()
    assert ("buffer" in state) == (chains in ("replay", "pcd"))
    if chains == "replay":
        assert exp.buffer.buffer.shape == (100, 2) and exp.buffer.reinit_prob == 0.05
    if chains == "pcd":   # one chain per example, never restarted
        assert exp.buffer.buffer.shape == (32, 2) and exp.buffer.reinit_prob == 0.0


@needs_mnist
@pytest.mark.parametrize("chains", CHAINS)
def test_each_kind_of_chain_trains_on_mnist_and_draws(chains, tmp_path):
    exp = experiment("mnist", chains=chains)
    fit(exp, str(tmp_path), steps=3, progress=False)
    rows = read_log(str(tmp_path))
    assert len(rows) == 3 and all(np.isfinite(r["loss"]) for r in rows)
    for picture in ("samples.png", "langevin_chain.png"):
        assert os.path.getsize(tmp_path / picture) > 1000
    # the buffer's picture only where there is a buffer
    assert os.path.exists(tmp_path / "buffer.png") == (chains in ("replay", "pcd"))
    if chains in ("replay", "pcd"):
        assert os.path.getsize(tmp_path / "buffer.png") > 1000
        b = exp.buffer.buffer
        assert b.shape[1:] == (1, 28, 28) and b.min() >= -1 and b.max() <= 1


def test_toy_evaluation_reports_the_nll_by_quadrature_beside_the_entropy(tmp_path):
    """200 steps of a 64-unit energy on 8gaussians: the quadrature NLL falls below that
    of the nearly flat energy it starts from (about ln 144 = 4.97 nats, uniform over the
    quadrature's square), stays above the floor, the data's entropy, and is the mean
    energy of the test points plus the reported log Z."""
    exp = experiment("8gaussians", hidden=64, batch_size=128, buffer_size=1000, eval_n=500,
                     sample_steps=20)
    before = exp.evaluate()["nll_nats"]
    fit(exp, str(tmp_path), steps=200, progress=False)
    m = exp.evaluate()
    assert m["nll_estimator"] == "quadrature_400x400" and m["eval_images"] == 500
    assert m["data_variant"] == "continuous"
    x = exp.images("test")[0][:500]
    assert m["nll_nats"] == pytest.approx(exp.energy(x).mean() + m["log_Z"], abs=1e-9)
    assert m["nll_nats"] < before
    floor = toy_entropy("8gaussians")
    assert m["data_entropy_nats"] == floor.entropy
    assert m["data_entropy_standard_error"] == floor.standard_error
    assert m["nll_nats"] > m["data_entropy_nats"]
    assert 0 < m["nll_standard_error"] < 0.5
    assert isinstance(m["modes_covered"], int) and 0 <= m["modes_covered"] <= 8
    assert 0 <= m["high_quality_fraction"] <= 1
    assert m["sampler"].startswith("langevin-20 from noise")
    for picture in ("energy.png", "density.png", "samples.png"):
        assert os.path.getsize(tmp_path / picture) > 1000


@pytest.mark.parametrize("mean, precision", [
    ([0.5, -0.3], [[2.0, 0.6], [0.6, 1.0]]),     # wide and correlated
    ([1.0, 2.0], [[25.0, 0.0], [0.0, 25.0]]),    # narrow: sd 0.2, like one toy mode
])
def test_the_quadrature_recovers_the_exact_log_partition_of_a_gaussian(mean, precision):
    """With the energy replaced by a quadratic one, whose log Z = log 2 pi - 1/2 log det A
    is known in closed form, the 400 x 400 midpoint rule agrees to 1e-4 nats (measured:
    about 1e-7), and the evaluation's NLL with the Gaussian's exact -log p(x) to 1e-3."""
    exp = experiment("8gaussians", eval_n=200, sample_steps=2)
    exp.model = GaussianEnergy.from_mean_precision(np.array(mean, np.float32),
                                                   np.array(precision, np.float32))
    exact = exp.model.log_partition().item()
    assert exact == pytest.approx(np.log(2 * np.pi) - 0.5 * np.log(np.linalg.det(precision)),
                                  abs=1e-5)
    assert abs(exp.log_partition_2d() - exact) < 1e-4
    x = exp.images("test")[0][:200]
    exact_nll = -exp.model.log_prob(tensor(x)).numpy().astype(np.float64).mean()
    assert abs(exp.evaluate()["nll_nats"] - exact_nll) < 1e-3


@needs_mnist
def test_image_evaluation_inpaints_scores_ood_and_samples(tmp_path):
    exp = experiment("mnist", eval_ood="fashion-mnist")
    fit(exp, str(tmp_path), steps=2, progress=False)
    m = exp.evaluate()
    assert m["data_variant"] == "continuous" and m["eval_images"] == 20
    assert 0 < m["inpainting_mse"] < 1 and m["inpainting_images"] == 8
    assert "fid_lenet" not in m and "inpainting_class_accuracy" not in m
    ood = m["ood"]
    assert ood["dataset"] == "fashion-mnist" and ood["score"] == "energy E(x)"
    assert 0 <= ood["auroc"] <= 1 and 0 <= ood["auroc_typicality"] <= 1
    # with decoupled noise E is in nats of no density: no complexity correction; with
    # the true sampler (noise -1) it is there
    assert "auroc_complexity" not in ood
    exp.config["noise"] = -1
    assert 0 <= exp.evaluate()["ood"]["auroc_complexity"] <= 1
    exp.config["noise"] = 0.005
    # the score is the energy of the run's own test images, in [-1, 1]
    x_in = exp.images("test")[0][:20]
    assert ood["score_in"] == pytest.approx(exp.energy(x_in).mean())
    assert x_in.min() == -1 and x_in.max() == 1
    x = exp.sample(3)
    assert x.shape == (3, 1, 28, 28) and x.min() >= 0 and x.max() <= 1
    x, chain = exp.sample(2, steps=4, return_chain=True)
    assert len(chain) == 5 and chain[0].shape == (2, 1, 28, 28)


@needs_mnist
def test_inpainting_keeps_the_known_pixels():
    exp = experiment("mnist")
    x = exp.images("test")[0][:4]
    known = np.ones((1, 28, 28), np.float32)
    known[:, 14:] = 0
    filled = exp.inpaint(x, known, steps=3)
    assert filled.shape == (4, 1, 28, 28) and filled.min() >= -1 and filled.max() <= 1
    np.testing.assert_array_equal(filled[:, :, :14], x[:, :, :14])
    assert not np.array_equal(filled[:, :, 14:], x[:, :, 14:])   # the rest was drawn


class ForgetfulEBM(get_experiment("ebm")):
    """The recipe, except that a checkpoint's replay buffer is not loaded back."""

    def load_state_dict(self, state):
        super().load_state_dict({k: v for k, v in state.items() if k != "buffer"})


def _losses(run):
    return [r["loss"] for r in read_log(str(run))]


@pytest.mark.parametrize("dataset, chains", [
    *[("8gaussians", chains) for chains in CHAINS],
    # on images only the kinds with state of their own (the others are as on the toy set)
    *[pytest.param("mnist", chains, marks=needs_mnist) for chains in ("replay", "pcd")]])
def test_a_resumed_run_continues_exactly(dataset, chains, tmp_path):
    """3 + 3 steps give the same losses as 6 straight: the weights, Adam's state, the
    data order, the global generator (the chains' noise, the fresh starting points) and,
    for replay and pcd, the buffer's samples and its own generator all come back from
    the checkpoint. Without the buffer the losses after the resume differ: it is what
    carries the chains over."""
    def run(folder, steps, cls=None):
        exp = experiment(dataset, cls=cls, chains=chains, lr_schedule="constant")
        fit(exp, str(tmp_path / folder), steps=steps, progress=False)

    run("straight", 6)
    run("resumed", 3)
    run("resumed", 6)
    straight = _losses(tmp_path / "straight")
    assert len(straight) == 6 and _losses(tmp_path / "resumed") == straight
    if chains in ("replay", "pcd"):
        run("forgetful", 3)
        run("forgetful", 6, cls=ForgetfulEBM)
        forgetful = _losses(tmp_path / "forgetful")
        assert forgetful[:3] == straight[:3] and forgetful[3:] != straight[3:]


@needs_mnist
def test_command_trains_evaluates_with_ood_and_draws(tmp_path):
    run = str(tmp_path / "ebm")
    assert main(["train", "ebm", "--dataset", "mnist", "--steps", "3", "--width", "4",
                 "--batch-size", "8", "--langevin-steps", "2", "--sample-steps", "2",
                 "--buffer-size", "64", "--eval-n", "20", "--eval-inpainting-n", "8",
                 "--out", run]) == 0
    assert main(["eval", run, "--no-classifier", "--ood", "fashion-mnist"]) == 0
    m = json.load(open(os.path.join(run, "metrics.json")))
    assert m["ood"]["dataset"] == "fashion-mnist" and 0 <= m["ood"]["auroc"] <= 1
    assert m["ood"]["score"] == "energy E(x)"
    assert m["inpainting_images"] == 8 and "fid_lenet" not in m
    for picture in ("ood_histogram.png", "inpainting.png", "samples.png",
                    "langevin_chain.png", "buffer.png"):
        assert os.path.getsize(os.path.join(run, picture)) > 1000


@needs_mnist
def test_evaluation_with_the_classifier_measures_samples_and_the_buffer(small_classifier,
                                                                        monkeypatch):
    """With the classifier: fid_lenet of fresh chains, fid_lenet_buffer of the replay
    buffer (uniform noise at first, far from digits), the sampler named, and the class
    accuracy of the inpainted digits."""
    from tinygen.experiments import classifier
    monkeypatch.setattr(classifier, "trained_classifier", lambda *a, **k: small_classifier)
    exp = experiment("mnist", eval_fid=True, eval_fid_n=20, buffer_size=30)
    m = exp.evaluate()
    assert m["fid_lenet"] > 0 and m["fid_samples"] == 20 and "langevin" in m["sampler"]
    assert m["fid_lenet_buffer"] > 0 and m["sampling_seconds_per_1000"] > 0
    assert 0 <= m["inpainting_class_accuracy"] <= 1
