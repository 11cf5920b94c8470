"""The DDPM recipe end to end: the data's range, training, sampling, the bound's
evaluation, pictures, the command, and two small learning tests. (The math is in
test_diffusion.py.)"""
import json
import math
import os

import numpy as np
import pytest

import tinygen as tg
from tinygen.cli import main
from tinygen.data import toy_modes
from tinygen.experiments import REGISTRY, get_experiment
from tinygen.experiments.base import ConfigError
from tinygen.metrics import mode_coverage
from tinygen.train import fit, read_config

needs_mnist = pytest.mark.skipif(not os.environ.get("TINYGEN_DATA"),
                                 reason="needs MNIST: set TINYGEN_DATA to the data folder")


def experiment(dataset="8gaussians", **config):
    cls = get_experiment("ddpm")
    return cls({**cls.defaults_for(dataset), "model": "ddpm", "dataset": dataset,
                "seed": 0, "device": "cpu", **config})


def test_registered_for_images_and_toy_sets():
    assert "ddpm" in REGISTRY
    assert {"mnist", "fashion-mnist", "8gaussians", "25gaussians"} <= set(
        REGISTRY["ddpm"].datasets)


def test_toy_sets_take_their_own_defaults():
    toy, images = experiment("8gaussians"), get_experiment("ddpm").defaults_for("mnist")
    assert toy.config["batch_size"] == 256 and toy.config["lr"] == 1e-3
    assert images["batch_size"] == 64 and images["lr"] == 2e-4
    assert experiment("8gaussians", lr=5e-4).config["lr"] == 5e-4   # given wins


def test_options_are_checked_before_any_work():
    with pytest.raises(ConfigError, match="--schedule 'quadratic'"):
        experiment(schedule="quadratic")
    with pytest.raises(ConfigError, match="--sampler 'euler'"):
        experiment(sampler="euler")
    with pytest.raises(ConfigError, match="--sample-steps 60: must be at most --timesteps"):
        experiment(timesteps=50, sample_steps=60)


@needs_mnist
def test_images_enter_the_model_in_minus_one_to_one_and_leave_in_zero_to_one(tmp_path):
    exp = experiment("mnist", channels=8, batch_size=8, timesteps=20, sample_steps=5)
    seen = []
    forward = exp.model.forward

    def spy(x, t, y=None):
        seen.append((float(x.numpy().min()), float(x.numpy().max()), np.asarray(t).copy()))
        return forward(x, t, y)
    exp.model.forward = spy
    x_0 = exp.images("train")[0]
    assert x_0.min() == -1 and x_0.max() == 1
    exp.training_step(tg.tensor(x_0[:8]))
    images = exp.sample(3)
    assert images.shape == (3, 1, 28, 28) and images.min() >= 0 and images.max() <= 1
    # training saw x_t (noised images in [-1, 1]); sampling visited DDIM's 5 steps
    assert [int(s[2][0]) for s in seen[1:]] == [20, 16, 12, 8, 4]


@needs_mnist
def test_evaluation_reports_the_bound_in_bits_per_dim(tmp_path):
    exp = experiment("mnist", channels=8, batch_size=8, timesteps=50, sample_steps=5,
                     eval_nll_n=3, eval_ode_nll_n=2, eval_inpaint_n=2, eval_fid=False)
    fit(exp, str(tmp_path), steps=2, progress=False)
    m = exp.evaluate()
    assert m["inpainting_images"] == 2 and 0 < m["inpainting_mse"] < 1
    ode = m["probability_flow_ode"]
    assert ode["data_variant"] == "dequantized_8bit" and ode["nll_images"] == 2
    assert ode["bits_per_dim"] == pytest.approx(ode["nll_nats"] / (784 * math.log(2)) + 7)
    assert m["nll_estimator"] == "variational_bound" and m["data_variant"] == "discrete_8bit"
    assert m["nll_images"] == 3 and m["nll_standard_error"] > 0
    assert m["bits_per_dim"] == pytest.approx(m["nll_nats"] / (784 * math.log(2)))
    # a bound on the NLL of 256-level pixels: at most log 256 per pixel could be lost to
    # a uniform guess, an untrained network is worse, but never below 0
    assert m["nll_nats"] > 0 and m["bound_prior_nats"] >= 0
    for picture in ("samples.png", "forward.png", "reverse.png", "inpainting.png"):
        assert (tmp_path / picture).stat().st_size > 500, picture


def test_the_command_trains_samples_and_evaluates_a_toy_ddpm(tmp_path, capsys):
    out = str(tmp_path / "run")
    assert main(["train", "ddpm", "--dataset", "8gaussians", "--steps", "20", "--hidden",
                 "16", "--timesteps", "50", "--out", out]) == 0
    config = read_config(out)
    assert config["batch_size"] == 256 and config["lr_schedule"] == "cosine"
    assert main(["sample", out, "--n", "300"]) == 0
    assert main(["sample", out, "--n", "5", "--out", str(tmp_path / "p.npy")]) == 0
    assert np.load(tmp_path / "p.npy").shape == (5, 2)
    assert main(["eval", out]) == 0
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert set(metrics) >= {"modes_covered", "high_quality_fraction",
                            "sampling_seconds_per_1000", "probability_flow_ode"}
    assert metrics["probability_flow_ode"]["nll_estimator"] == "probability_flow_ode"
    for picture in ("samples.png", "reverse.png", "curves.png"):
        assert (tmp_path / "run" / picture).stat().st_size > 1000
    capsys.readouterr()
    with pytest.raises(SystemExit):
        main(["train", "ddpm", "--help"])
    assert "on the 2-D toy sets the defaults differ: --hidden 256" in capsys.readouterr().out


def test_a_resumed_run_repeats_an_uninterrupted_one(tmp_path):
    from tinygen.train import read_log
    whole, parts = tmp_path / "whole", tmp_path / "parts"
    settings = dict(hidden=16, timesteps=50, batch_size=32, lr_schedule="constant")
    fit(experiment(**settings), str(whole), steps=6, progress=False)
    fit(experiment(**settings), str(parts), steps=3, progress=False)
    fit(experiment(**settings), str(parts), steps=6, progress=False)
    assert read_log(str(whole)) == read_log(str(parts))


def test_one_step_on_every_device(device):
    exp = experiment(device=device, hidden=16, timesteps=50, batch_size=32)
    scalars = exp.training_step(next(iter(exp.train_loader())))
    assert np.isfinite(scalars["loss"])
    assert exp.sample(4).shape == (4, 2)


# ---- learning tests
def test_a_small_ddpm_covers_the_modes_of_8gaussians(tmp_path):
    """3,000 steps of the toy defaults (about 20 s): every mode, most samples near one."""
    exp = experiment("8gaussians", timesteps=200)
    fit(exp, str(tmp_path), steps=3000, progress=False)
    centers, std = toy_modes("8gaussians")
    cover = mode_coverage(exp.sample(2000), centers, std)
    assert cover["modes_covered"] == 8 and cover["high_quality_fraction"] > 0.8
    assert cover["counts"].min() > 2000 / 8 / 2      # no mode starved
    # the probability-flow ODE's NLL of test points is a cross-entropy of a density: at
    # least the data's entropy, log 8 + log(2 pi e std^2) = 2.84 nats
    ode = exp.ode_nll(300)
    entropy = math.log(8) + math.log(2 * math.pi * math.e * std ** 2)
    assert ode["nll_nats"] > entropy - 3 * ode["nll_standard_error"]


class ExactMixtureEps:
    """E[eps | x_t] for data from an equal-weight mixture of N(m_k, s^2 I): given the
    component, x_t ~ N(sqrt(a) m_k, v I) with v = a s^2 + 1 - a, so E[eps | x_t] is the
    responsibility-weighted sum of sqrt(1 - a) (x_t - sqrt(a) m_k) / v."""

    def __init__(self, centers, std, alpha_bars):
        self.m, self.s2, self.alpha_bars = np.asarray(centers, np.float64), std ** 2, alpha_bars

    def eval(self):
        return self

    def __call__(self, x, t, y=None):
        """Engine ops throughout: the ODE's divergence differentiates through it."""
        from tinygen.nn import functional as F
        a = np.interp(np.asarray(t, np.float64), np.arange(len(self.alpha_bars)),
                      self.alpha_bars)[:, None, None]           # real steps: interpolate
        v = a * self.s2 + 1 - a
        const = lambda arr: tg.tensor(np.asarray(arr, dtype=x.dtype))   # noqa: E731
        n = x.shape[0]
        diff = x.reshape(n, 1, 2) - const(np.sqrt(a) * self.m[None])          # (N, K, 2)
        r = F.softmax(-(diff ** 2).sum(axis=2) / const(2 * v[:, :, 0]), axis=1)
        return (r.reshape(n, -1, 1) * diff).sum(axis=1) * const(np.sqrt(1 - a[:, 0]) / v[:, 0])


def test_the_recipe_ode_nll_is_the_data_nll_for_the_exact_model():
    """With the exact eps of 8gaussians in place of the network, the recipe's
    probability-flow NLL of test points (noise-level matching, the start at the first
    step's noise, Dormand-Prince, the exact 2-D divergence) equals their true NLL under
    the mixture, computed directly."""
    exp = experiment("8gaussians", eval_ode_nll_n=200)
    centers, std = toy_modes("8gaussians")
    exp.model = ExactMixtureEps(centers, std, exp.diffusion.schedule.alpha_bars)
    exp.ema = None
    x = exp.images("test")[0][:200].astype(np.float64)
    d2 = ((x[:, None, :] - centers[None]) ** 2).sum(axis=2)
    log_p = np.log(np.exp(-d2 / (2 * std ** 2)).mean(axis=1)) - math.log(2 * math.pi * std ** 2)
    ode = exp.ode_nll(200)
    assert ode["nll_nats"] == pytest.approx(-log_p.mean(), abs=0.02)


@needs_mnist
def test_a_few_hundred_mnist_steps_reduce_l_simple(tmp_path):
    """L_simple on a fixed held-out batch (t spread over 1..T, fixed eps): about 1 for the
    untrained network (it predicts eps ~ 0), below 0.4 of that after 150 steps."""
    exp = experiment("mnist", channels=8, batch_size=32, timesteps=200)
    x = tg.tensor(exp.images("test")[0][:256])
    t = np.linspace(1, 200, 256).round().astype(np.int64)
    eps = tg.tensor(np.random.default_rng(0).standard_normal(x.shape).astype(np.float32))

    def held_out():
        exp.model.eval()
        with tg.no_grad():
            return exp.diffusion.loss_simple(exp.model, x, t, eps).item()
    before = held_out()
    fit(exp, str(tmp_path), steps=150, progress=False)
    after = held_out()
    assert 0.8 < before < 1.3 and after < 0.4 * before


# ---- classifier-free guidance
@needs_mnist
def test_cfg_drops_labels_in_training_and_mixes_two_predictions_in_sampling(tmp_path):
    cls = get_experiment("ddpm-cfg")
    exp = cls({**cls.defaults, "model": "ddpm-cfg", "dataset": "mnist", "seed": 0,
               "device": "cpu", "channels": 8, "batch_size": 64, "timesteps": 20,
               "sample_steps": 4, "p_uncond": 0.5, "guidance": 3.0})
    seen = []
    forward = exp.model.forward

    def spy(x, t, y=None):
        seen.append(None if y is None else np.asarray(y).copy())
        return forward(x, t, y)
    exp.model.forward = spy
    x, y = next(iter(exp.train_loader()))
    exp.training_step((x, y))
    labels = seen.pop()
    dropped = labels == 10
    assert 10 < dropped.sum() < 54                                  # about half of 64
    assert np.array_equal(labels[~dropped], y.numpy()[~dropped])
    images = exp.sample(5)
    assert images.shape == (5, 1, 28, 28) and 0 <= images.min() and images.max() <= 1
    # four DDIM steps, each the conditional prediction (classes 0..4) and the
    # unconditional one
    assert len(seen) == 8
    for conditional, unconditional in zip(seen[0::2], seen[1::2]):
        assert np.array_equal(conditional, np.arange(5)) and unconditional is None
    seen.clear()
    exp.sample(3, omega=0.0)                                        # omega 0: one each
    assert len(seen) == 4 and all(s is not None for s in seen)


@needs_mnist
def test_ddim_sweep_measures_each_sampler(small_classifier, monkeypatch, tmp_path):
    from tinygen.experiments import classifier
    monkeypatch.setattr(classifier, "trained_classifier", lambda *a, **k: small_classifier)
    exp = experiment("mnist", channels=8, batch_size=8, timesteps=20, sample_steps=5,
                     eval_n=10, eval_nll_n=0, eval_inpaint_n=0, eval_ddim_sweep_n=10)
    m = exp.evaluate()
    assert set(m["ddim_sweep"]) == {"DDIM-10", "DDIM-20", "ancestral-20"}   # S <= T only
    assert all(v["fid_lenet"] > 0 and v["sampling_seconds_per_1000"] > 0
               for v in m["ddim_sweep"].values())


@needs_mnist
def test_cfg_evaluation_sweeps_omega(small_classifier, monkeypatch, tmp_path):
    from tinygen.experiments import classifier
    monkeypatch.setattr(classifier, "trained_classifier", lambda *a, **k: small_classifier)
    cls = get_experiment("ddpm-cfg")
    exp = cls({**cls.defaults, "model": "ddpm-cfg", "dataset": "mnist", "seed": 0,
               "device": "cpu", "channels": 8, "batch_size": 8, "timesteps": 10,
               "sample_steps": 2, "eval_n": 20, "eval_guidance_n": 10})
    fit(exp, str(tmp_path), steps=1, progress=False)
    m = exp.evaluate()
    assert m["eval_images"] == 20 and m["guidance"] == 2.0 and 0 <= m["class_accuracy"] <= 1
    assert set(m["guidance_sweep"]) == {"0.0", "0.5", "2.0", "4.0"}
    assert all(set(v) == {"class_accuracy", "fid_lenet"} for v in m["guidance_sweep"].values())
    assert (tmp_path / "guidance.png").stat().st_size > 500


@needs_mnist
def test_the_command_draws_a_chosen_class(tmp_path, capsys):
    out = str(tmp_path / "cfg")
    assert main(["train", "ddpm-cfg", "--steps", "1", "--batch-size", "4", "--channels", "8",
                 "--timesteps", "10", "--sample-steps", "2", "--out", out]) == 0
    assert main(["sample", out, "--n", "3", "--label", "7",
                 "--out", str(tmp_path / "s.npy")]) == 0
    assert np.load(tmp_path / "s.npy").shape == (3, 1, 28, 28)
    assert main(["sample", out, "--label", "10"]) == 2
    assert "--label 10: choose a class in 0..9" in capsys.readouterr().err
    toy = str(tmp_path / "toy")
    assert main(["train", "ddpm", "--dataset", "8gaussians", "--steps", "2", "--hidden", "8",
                 "--timesteps", "10", "--sample-steps", "2", "--out", toy]) == 0
    assert main(["sample", toy, "--label", "1"]) == 2
    assert "ddpm is not class-conditional" in capsys.readouterr().err


# ---- classifier guidance
@needs_mnist
def test_classifier_guidance_recipe(tmp_path, capsys):
    ddpm_run = str(tmp_path / "ddpm")
    fit(experiment("mnist", channels=8, batch_size=8, timesteps=20, sample_steps=4),
        ddpm_run, steps=2, progress=False)
    cls = get_experiment("ddpm-cg")

    def cg(**config):
        return cls({**cls.defaults, "model": "ddpm-cg", "dataset": "mnist", "seed": 0,
                    "device": "cpu", "channels": 8, "time_dim": 16, "batch_size": 16,
                    "sample_steps": 4, "eval_fid": False, "eval_n": 50, **config})
    with pytest.raises(ConfigError, match="--ddpm-run '': give the run folder"):
        cg()
    with pytest.raises(ConfigError, match="holds no trained run"):
        cg(ddpm_run=str(tmp_path))
    with pytest.raises(ConfigError, match="not fashion-mnist"):
        cg(ddpm_run=ddpm_run, dataset="fashion-mnist")
    with pytest.raises(ConfigError, match="at most the DDPM's T = 20"):
        cg(ddpm_run=ddpm_run, sample_steps=50)
    exp = cg(ddpm_run=ddpm_run, lr=0.05)
    fit(exp, str(tmp_path / "cg"), steps=3, progress=False)
    assert (tmp_path / "cg" / "guidance.png").stat().st_size > 500
    y = np.array([3, 3, 7])
    tg.manual_seed(5)
    plain = exp.sample(3, y, scale=0.0)
    tg.manual_seed(5)
    guided = exp.sample(3, y, scale=20.0)
    assert plain.shape == (3, 1, 28, 28) and 0 <= guided.min() and guided.max() <= 1
    assert np.abs(plain - guided).max() > 1e-3          # the classifier's gradient acts
    m = exp.evaluate()
    assert set(m["noisy_accuracy"]) == {"1", "5", "10", "15"}
    assert all(0 <= a <= 1 for a in m["noisy_accuracy"].values())


# ---- latent diffusion
@needs_mnist
def test_latent_diffusion_on_a_vae_run(tmp_path):
    vae_cls = get_experiment("vae")
    vae_run = str(tmp_path / "vae")
    fit(vae_cls({**vae_cls.defaults, "model": "vae", "dataset": "mnist", "seed": 0,
                 "device": "cpu", "latent_dim": 4, "hidden": 16}), vae_run, steps=20,
        progress=False)
    cls = get_experiment("ldm")

    def ldm(**config):
        return cls({**cls.defaults, "model": "ldm", "dataset": "mnist", "seed": 0,
                    "device": "cpu", "hidden": 16, "timesteps": 50, "eval_n": 30,
                    "eval_fid": False, **config})
    with pytest.raises(ConfigError, match="--autoencoder-run '': give the run folder"):
        ldm()
    with pytest.raises(ConfigError, match="not fashion-mnist"):
        ldm(autoencoder_run=vae_run, dataset="fashion-mnist")
    ddpm_run = str(tmp_path / "ddpm")
    fit(experiment("mnist", channels=8, batch_size=8, timesteps=20, sample_steps=4,
                   eval_fid=False), ddpm_run, steps=1, progress=False)
    with pytest.raises(ConfigError, match="give a run of tinygen train vae"):
        ldm(autoencoder_run=ddpm_run)
    exp = ldm(autoencoder_run=vae_run)
    z = exp.latents()
    assert z.shape == (60000, 4)
    np.testing.assert_allclose(z.mean(axis=0), 0, atol=1e-4)
    np.testing.assert_allclose(z.std(axis=0), 1, rtol=1e-3)
    fit(exp, str(tmp_path / "ldm"), steps=5, progress=False)
    images = exp.sample(3)
    assert images.shape == (3, 1, 28, 28) and 0 <= images.min() and images.max() <= 1
    # decoding the unscaled latent means of test digits is the first stage's round trip
    x = exp.images("test")[0][:5]
    vae = exp.autoencoder.model
    from tinygen.data import binarize
    from tinygen.random import generator
    with tg.no_grad():   # the default VAE reads binary pixels: one fixed binarisation
        z = vae.encode(tg.tensor(binarize(x, generator(1234))))[0]
        direct = vae.mean(vae.decode(z)).numpy().reshape(-1, 1, 28, 28)
    np.testing.assert_allclose(exp.decode(exp.encode(x)), direct, rtol=1e-5, atol=1e-6)
    m = exp.evaluate()
    assert m["eval_images"] == 30 and m["sampling_seconds_per_1000"] > 0
    for picture in ("samples.png", "reconstructions.png"):
        assert (tmp_path / "ldm" / picture).stat().st_size > 500


def test_the_ema_of_the_weights_is_warmed_up(tmp_path):
    """After 200 updates at decay 0.999 a plain average would still be 82% the random
    initial weights (0.999^200); warmed up (min(decay, (1 + n) / (10 + n))) it holds
    almost none of them and sits near the trained weights."""
    exp = experiment(hidden=16, timesteps=50, batch_size=32, ema_decay=0.999)
    initial = [p.numpy().copy() for p in exp.model.parameters()]
    fit(exp, str(tmp_path), steps=200, progress=False)
    assert exp.ema.use_num_updates
    live = [p.numpy() for p in exp.model.parameters()]
    moved = sum(np.abs(w - i).sum() for w, i in zip(live, initial))
    gap = sum(np.abs(s - w).sum() for s, w in zip(exp.ema.shadow_params, live))
    assert gap < 0.3 * moved
