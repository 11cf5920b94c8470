"""The VAE-GAN's math (Larsen et al. 2016), independent of training: the feature-space
Gaussian, the KL, the GAN value, and Algorithm 1's routing of each loss to its network;
then a checkpoint round trip and a small learning test."""
import math
import os

import numpy as np
import pytest

import tinygen as tg
from tinygen.distributions import Independent, Normal, kl_divergence
from tinygen.experiments.base import ConfigError
from tinygen.experiments.gan.vaegan import VAEGANExperiment
from tinygen.models.gan.gan import value
from tinygen.models.gan.vaegan import VAEGAN, backward, feature_nll, gan_value, objectives
from tinygen.models.vae.common import diagonal_normal, standard_normal
from tinygen.train import NonFiniteError, fit, read_log

needs_mnist = pytest.mark.skipif(not os.environ.get("TINYGEN_DATA"),
                                 reason="needs MNIST: set TINYGEN_DATA to the data folder")


def small_model(seed=0, **kw):
    tg.manual_seed(seed)
    return VAEGAN(latent_dim=3, channels=4, encoder_channels=4, encoder_hidden=8, **kw)


def images(m, seed=0):
    """Random images in [-1, 1]: blobs, so that the networks see some structure."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:28, :28]
    centres = rng.uniform(8, 20, (m, 2, 1, 1))
    blob = np.exp(-((yy - centres[:, 0]) ** 2 + (xx - centres[:, 1]) ** 2) / 18.0)
    return (2 * blob - 1).astype(np.float32)[:, None]


def sigmoid(a):
    return 1 / (1 + np.exp(-a))


# --------------------------------------------------------------------------- the losses

def test_the_feature_likelihood_is_a_unit_gaussian_without_its_constant():
    rng = np.random.default_rng(0)
    h, h_tilde = rng.standard_normal((2, 5, 7))
    nll = feature_nll(tg.tensor(h), tg.tensor(h_tilde)).numpy()
    log_p = Independent(Normal(tg.tensor(h_tilde), 1.0), 1).log_prob(tg.tensor(h)).numpy()
    np.testing.assert_allclose(nll, -log_p - 7 / 2 * math.log(2 * math.pi), rtol=1e-12)
    np.testing.assert_allclose(nll, 0.5 * ((h - h_tilde) ** 2).sum(1), rtol=1e-12)
    with pytest.raises(ValueError, match=r"feature_nll.*\(5, 7\).*\(5, 6\)"):
        feature_nll(tg.tensor(h), tg.tensor(h_tilde[:, :6]))


def test_the_prior_term_is_the_vae_familys_kl_in_closed_form():
    model = small_model()
    x = tg.tensor(images(6))
    kl = model.losses(x)["prior"].numpy()
    mu, logvar = (t.numpy().astype(np.float64) for t in model.encode(x))
    closed = 0.5 * (mu ** 2 + np.exp(logvar) - 1 - logvar).sum(1)
    vae_kl = kl_divergence(diagonal_normal(*model.encode(x)), standard_normal(3)).numpy()
    assert kl.shape == (6,)
    np.testing.assert_allclose(kl, closed, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(kl, vae_kl, rtol=1e-6)


def test_the_gan_term_is_the_value_with_two_kinds_of_fakes():
    rng = np.random.default_rng(1)
    l_x, l_tilde, l_p = rng.standard_normal(4) * 3, rng.standard_normal(4) * 3, \
        rng.standard_normal(6)
    got = gan_value(*(tg.tensor(a) for a in (l_x, l_tilde, l_p))).item()
    expected = (np.log(sigmoid(l_x)).mean() + np.log(1 - sigmoid(l_tilde)).mean()
                + np.log(1 - sigmoid(l_p)).mean())
    assert got == pytest.approx(expected, rel=1e-12)
    assert got == pytest.approx(value(tg.tensor(l_x), tg.tensor(l_tilde)).item()
                                + np.log(1 - sigmoid(l_p)).mean(), rel=1e-12)
    # a perfect discriminator: exactly 0 from the logits, where sigmoid rounds to 0 and 1
    perfect = gan_value(tg.tensor([100.0]), tg.tensor([-100.0]), tg.tensor([-100.0])).item()
    assert math.isfinite(perfect) and perfect == pytest.approx(0.0, abs=1e-40)


# --------------------------------------------------------------------------- Algorithm 1

def reached(model, loss):
    """The networks in whose parameters a backward pass of ``loss`` leaves a gradient."""
    for net in model.networks().values():
        net.zero_grad()
    loss.backward()
    return {name for name, net in model.networks().items()
            if any(p.grad is not None and np.abs(p.grad.numpy()).max() > 0
                   for p in net.parameters())}


def test_which_networks_each_loss_reaches_unless_routed():
    model, x = small_model(), tg.tensor(images(4))
    assert reached(model, model.losses(x)["prior"].mean()) == {"E"}
    assert reached(model, model.losses(x)["llike"].mean()) == {"E", "G", "D"}
    assert reached(model, model.losses(x)["gan"]) == {"E", "G", "D"}


def routed(model, x, seed, **kw):
    tg.manual_seed(seed)
    backward(model.networks(), objectives(model.losses(x), **kw))
    return {name: [p.grad.numpy().copy() for p in net.parameters()]
            for name, net in model.networks().items()}


def test_each_network_gets_the_gradient_of_its_own_loss_alone():
    """Algorithm 1: Enc on L_prior + L_llike, Dec on gamma L_llike + its GAN term, Dis on
    -L_GAN. Every loss reaches every network, yet each network's gradient is that of its
    own loss: the same as a backward pass of that loss alone, whatever the others are."""
    model, x = small_model(), tg.tensor(images(4))
    got = routed(model, x, seed=5, gamma=0.3)
    for name, net in model.networks().items():
        for other in model.networks().values():
            other.zero_grad()
        tg.manual_seed(5)   # the same z ~ q(z|x) and z_p
        objectives(model.losses(x), gamma=0.3)[name].backward()
        for g, p in zip(got[name], net.parameters()):
            np.testing.assert_allclose(g, p.grad.numpy(), rtol=1e-5, atol=1e-7)
    # gamma and Dec's GAN loss change Dec's gradient alone
    other = routed(model, x, seed=5, gamma=3.0, kind="minimax")
    for name in ("E", "D"):
        for a, b in zip(got[name], other[name]):
            np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)
    assert any(not np.allclose(a, b) for a, b in zip(got["G"], other["G"]))
    # unrouted, the sum of the three losses would leave a different gradient in Dis
    for net in model.networks().values():
        net.zero_grad()
    tg.manual_seed(5)
    sum(objectives(model.losses(x), gamma=0.3).values()).backward()
    assert any(not np.allclose(a, p.grad.numpy(), atol=1e-6)
               for a, p in zip(got["D"], model.discriminator.parameters()))


def test_shapes_and_errors():
    model, x = small_model(), tg.tensor(images(4))
    out = model.losses(x, z_p=tg.randn(7, 3))
    assert out["prior"].shape == out["llike"].shape == out["l_x"].shape == (4,)
    assert out["l_tilde"].shape == (4,) and out["l_p"].shape == (7,)
    assert out["gan"].shape == ()
    assert out["x_tilde"].shape == (4, 1, 28, 28) and out["x_p"].shape == (7, 1, 28, 28)
    assert model.reconstruct(x).shape == (4, 1, 28, 28)
    assert model.discriminator.features(x).shape == (4, 2 * 4 * 7 * 7)
    assert float(np.abs(out["x_p"].numpy()).max()) <= 1   # tanh
    with pytest.raises(ValueError, match=r"\(m, 1, 28, 28\), got \(4, 784\)"):
        model.losses(x.reshape(4, 784))
    with pytest.raises(ValueError, match="gamma"):
        objectives(out, gamma=-1.0)
    with pytest.raises(ValueError, match="generator loss 'wasserstein'"):
        objectives(out, kind="wasserstein")
    with pytest.raises(ValueError, match="norm 'instance'"):
        small_model(norm="instance")
    with pytest.raises(ValueError, match="same networks"):
        backward(model.networks(), {"E": out["gan"]})


# --------------------------------------------------------------------------- the recipe

def experiment(tmp_images=None, **overrides):
    config = {**VAEGANExperiment.defaults, "model": "vaegan", "dataset": "mnist",
              "device": "cpu", "seed": 0, "eval_fid": False, "latent_dim": 4, "channels": 4,
              "batch_size": 8, **overrides}
    return VAEGANExperiment(config)


def test_a_run_resumes_from_its_checkpoint_as_if_never_stopped(tmp_path, monkeypatch):
    x = images(40)
    monkeypatch.setattr(VAEGANExperiment, "images",
                        lambda self, split: (x, np.zeros(len(x), np.int64)))
    a, b = experiment(), experiment()
    assert set(a.modules()) == set(a.optimizers()) == {"E", "G", "D"}
    fit(a, str(tmp_path / "a"), steps=3, progress=False)
    a = experiment()
    fit(a, str(tmp_path / "a"), steps=5, progress=False)             # resumes at step 3
    fit(b, str(tmp_path / "b"), steps=5, progress=False)
    assert [row["step"] for row in read_log(str(tmp_path / "a"))] == [1, 2, 3, 4, 5]
    for name, module in a.modules().items():
        other = b.modules()[name].state_dict()
        for k, p in module.state_dict().items():
            np.testing.assert_array_equal(p.numpy(), other[k].numpy(),
                                          err_msg=f"{name}.{k}")
    pictures = {"samples.png", "progress.png", "interpolations.png", "reconstructions.png"}
    assert pictures <= set(os.listdir(tmp_path / "a"))
    metrics = a.evaluate()
    assert 0 < metrics["recon_mse"] < 1 and a.sample(3).shape == (3, 1, 28, 28)


def test_a_non_finite_gradient_stops_the_step_before_any_network_moves():
    exp = experiment()
    before = {k: [p.numpy().copy() for p in m.parameters()] for k, m in exp.modules().items()}
    x = images(8)
    x[0, 0, 3, 3] = np.nan
    with pytest.raises(NonFiniteError, match=r"the gradient of [EGD]\..* holds nan"):
        exp.training_step(tg.tensor(x))
    for k, m in exp.modules().items():
        for a, p in zip(before[k], m.parameters()):
            np.testing.assert_array_equal(a, p.numpy())


def test_bad_settings_are_refused():
    with pytest.raises(ConfigError, match="--gamma -0.5"):
        experiment(gamma=-0.5)
    with pytest.raises(ConfigError, match="28x28 images"):
        experiment(dataset="8gaussians")


@needs_mnist
def test_reconstructions_improve_in_a_few_steps(tmp_path, monkeypatch):
    """60 steps of batch 32 on 320 MNIST digits, small networks: the reconstruction error
    per pixel (in [0, 1]) of 320 test digits falls from an untrained decoder's, 0.23, to
    less than half of it (0.095 to 0.097 for seeds 0 to 2)."""
    load = VAEGANExperiment.images

    def few(self, split):
        x, y = load(self, split)
        return x[:320], y[:320]
    monkeypatch.setattr(VAEGANExperiment, "images", few)
    exp = experiment(latent_dim=16, channels=16, batch_size=32, eval_n=320, lr=1e-3)
    before = exp.evaluate()["recon_mse"]
    fit(exp, str(tmp_path), steps=60, progress=False)
    after = exp.evaluate()["recon_mse"]
    assert after < 0.5 * before, (before, after)
