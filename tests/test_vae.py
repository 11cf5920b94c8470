"""The VAE's math, independent of training, then a small learning test.

Probabilistic PCA is a VAE whose log p(x) is known exactly: p(z) = N(0, I),
p(x|z) = N(W z + b, sigma^2 I), so p(x) = N(b, W W^T + sigma^2 I), and the posterior is
Gaussian with M = W^T W + sigma^2 I: q*(z|x) = N(M^-1 W^T (x - b), sigma^2 M^-1). With W's
columns orthogonal, M is diagonal, so q* is exactly representable by the VAE's encoder.
"""
import math
import os
import signal

import numpy as np
import pytest

import tinygen as tg
from tinygen import nn
from tinygen.distributions import kl_divergence
from tinygen.experiments.vae.vae import VAEExperiment
from tinygen.models.vae.common import diagonal_normal, standard_normal
from tinygen.models.vae.vae import VAE
from tinygen.train import fit, read_log

needs_mnist = pytest.mark.skipif(not os.environ.get("TINYGEN_DATA"),
                                 reason="needs MNIST: set TINYGEN_DATA to the data folder")

D, d, SIGMA = 5, 2, 0.5


def linear(weight, bias):
    layer = nn.Linear(weight.shape[1], weight.shape[0])
    layer.weight = nn.Parameter(np.asarray(weight, np.float64))
    layer.bias = nn.Parameter(np.asarray(bias, np.float64))
    return layer


def ppca(posterior_error=0.0, seed=0):
    """A pPCA model as a VAE, its exact log p(x), and an encoder that is the exact
    posterior (posterior_error=0) or a wrong one."""
    rng = np.random.default_rng(seed)
    Q, _ = np.linalg.qr(rng.standard_normal((D, d)))
    W = Q * np.array([2.0, 1.0])                      # orthogonal columns of norms 2 and 1
    b = rng.standard_normal(D)
    M = W.T @ W + SIGMA ** 2 * np.eye(d)              # diagonal
    A = np.linalg.inv(M) @ W.T                        # posterior mean = A (x - b)
    post_var = SIGMA ** 2 / np.diag(M)
    A_enc = A * (1 + posterior_error)
    logvar = np.log(post_var) + posterior_error * 2
    encoder = linear(np.vstack([A_enc, np.zeros((d, D))]), np.concatenate([-A_enc @ b, logvar]))
    decoder = linear(W, b)
    model = VAE(d, likelihood="gaussian", data_dim=D, encoder=encoder, decoder=decoder)
    model.log_sigma_x = nn.Parameter(np.array([math.log(SIGMA)]))
    C = W @ W.T + SIGMA ** 2 * np.eye(D)

    def log_px(x):
        diff = x - b
        _, logdet = np.linalg.slogdet(C)
        return -0.5 * (np.einsum("ni,ij,nj->n", diff, np.linalg.inv(C), diff) + logdet
                       + D * math.log(2 * math.pi))
    x = rng.multivariate_normal(b, C, size=4)
    return model, log_px, x


def test_kl_closed_form_matches_monte_carlo():
    rng = np.random.default_rng(0)
    mu, logvar = rng.standard_normal((3, 4)), rng.uniform(-1.5, 1, (3, 4))
    tg.manual_seed(0)
    q, p = diagonal_normal(tg.tensor(mu), tg.tensor(logvar)), standard_normal(4)
    z = q.rsample((200_000,))
    samples = (q.log_prob(z) - p.log_prob(z)).numpy()                      # log q - log p
    mc, se = samples.mean(0), samples.std(0) / math.sqrt(len(samples))
    closed = kl_divergence(q, p).numpy()
    # the VAE's closed form, 1/2 sum_j (mu_j^2 + sigma_j^2 - 1 - log sigma_j^2)
    np.testing.assert_allclose(closed, 0.5 * (mu ** 2 + np.exp(logvar) - 1 - logvar).sum(-1),
                               rtol=1e-12)
    assert np.all(np.abs(mc - closed) < 5 * se), (mc, closed, se)
    assert np.all(closed > 20 * se)  # the check is sharp compared with the KL itself


def test_reparameterization_carries_the_gradient():
    """d/dmu E[(z - c)^2] = 2 (mu - c) and d/dlogvar E[(z - c)^2] = sigma^2, for
    z = mu + sigma eps: the Monte Carlo gradient through rsample matches."""
    mu = tg.tensor(np.array([0.5, -1.0, 2.0]), requires_grad=True)
    logvar = tg.tensor(np.array([0.0, -1.0, 0.7]), requires_grad=True)
    c, n = 0.3, 400_000
    tg.manual_seed(1)
    z = diagonal_normal(mu, logvar).rsample((n,))
    ((z - c) ** 2).mean(axis=0).sum().backward()
    sigma = np.exp(0.5 * logvar.numpy())
    eps = (z.numpy() - mu.numpy()) / sigma
    # per-sample gradients, only to size the tolerance by the standard error
    se_mu = (2 * (z.numpy() - c)).std(0) / math.sqrt(n)
    se_lv = (sigma * eps * (z.numpy() - c)).std(0) / math.sqrt(n)
    assert np.all(np.abs(mu.grad.numpy() - 2 * (mu.numpy() - c)) < 5 * se_mu)
    assert np.all(np.abs(logvar.grad.numpy() - sigma ** 2) < 5 * se_lv)


def test_exact_posterior_makes_every_importance_weight_log_p_x():
    model, log_px, x = ppca()
    tg.manual_seed(0)
    w = model.log_weights(tg.tensor(x), 7).numpy()                 # (7, 4)
    np.testing.assert_allclose(w, np.broadcast_to(log_px(x), w.shape), atol=1e-9)
    for k in (1, 3, 1200):
        np.testing.assert_allclose(model.iwae_bound(tg.tensor(x), k).numpy(), log_px(x),
                                   atol=1e-9)


def test_elbo_with_exact_posterior_equals_log_p_x_on_average():
    model, log_px, x = ppca()
    tg.manual_seed(0)
    xs = tg.tensor(np.repeat(x, 20_000, axis=0))
    recon, kl = model.elbo(xs)
    elbo = (recon - kl).numpy().reshape(4, -1)
    mc, se = elbo.mean(1), elbo.std(1) / math.sqrt(elbo.shape[1])
    assert np.all(np.abs(mc - log_px(x)) < 5 * se)


def test_bounds_are_ordered_and_tighten_with_k():
    """With a wrong posterior: ELBO = L_1 < L_5 < L_50 < log p(x), and L_5000 is close."""
    model, log_px, x = ppca(posterior_error=0.6)
    tg.manual_seed(0)
    xs = tg.tensor(np.repeat(x, 2000, axis=0))   # 2000 estimates of each bound per point
    bounds = {}
    for k in (1, 5, 50):
        b = model.iwae_bound(xs, k).numpy().reshape(4, -1)
        bounds[k] = (b.mean(1), b.std(1) / math.sqrt(b.shape[1]))
    exact = log_px(x)
    for lo, hi in ((1, 5), (5, 50)):
        gap = bounds[hi][0] - bounds[lo][0]
        assert np.all(gap > 3 * np.hypot(bounds[lo][1], bounds[hi][1])), (lo, hi, gap)
    assert np.all(bounds[50][0] < exact)
    assert np.all(exact - bounds[1][0] > 0.5)                   # the ELBO's gap is real
    close = model.iwae_bound(tg.tensor(x), 5000).numpy()
    assert np.all(exact - close < 0.1 * (exact - bounds[1][0]))


def test_bernoulli_likelihood_is_the_negative_bce():
    model = VAE(latent_dim=3, hidden=8)
    rng = np.random.default_rng(0)
    x = (rng.random((2, 784)) > 0.5).astype(np.float32)
    logits = rng.standard_normal((2, 784)).astype(np.float32) * 3
    expected = (x * np.log(1 / (1 + np.exp(-logits))) + (1 - x) * np.log(1 / (1 + np.exp(logits)))).sum(1)
    np.testing.assert_allclose(model.likelihood_from(tg.tensor(logits)).log_prob(tg.tensor(x)).numpy(),
                               expected, rtol=1e-5)


def small_experiment(**overrides):
    config = {**VAEExperiment.defaults, "model": "vae", "dataset": "mnist", "device": "cpu",
              "seed": 0, "eval_k": 50, "eval_n": 200, "eval_fid": False, **overrides}
    return VAEExperiment(config)


@needs_mnist
def test_a_vae_learns_mnist(tmp_path):
    exp = small_experiment()
    before = exp.evaluate()
    fit(exp, str(tmp_path), steps=300, progress=False)
    after = exp.evaluate()
    # 300 steps of batch 100 take the test ELBO from about -545 nats to well above -200
    assert after["elbo_nats"] > before["elbo_nats"] + 300, (before, after)
    assert after["nll_nats"] < -after["elbo_nats"]   # IWAE bound tighter
    assert after["nll_estimator"] == "iwae_k50" and after["eval_images"] == 200
    assert after["data_variant"] == "dynamic_binarized"
    assert {"reconstructions.png", "samples.png", "interpolations.png"} <= set(os.listdir(tmp_path))


@needs_mnist
def test_two_dimensional_latent_space_draws_its_manifold(tmp_path):
    exp = small_experiment(latent_dim=2, hidden=32, k=3)       # trains the IWAE bound
    fit(exp, str(tmp_path), steps=3, progress=False)
    assert "manifold.png" in os.listdir(tmp_path)
    assert exp.sample(5).shape == (5, 1, 28, 28)


def test_cosine_schedule_runs_from_lr_to_a_hundredth(tmp_path, monkeypatch):
    config = {**VAEExperiment.defaults, "model": "vae", "dataset": "mnist", "device": "cpu",
              "seed": 0, "latent_dim": 2, "hidden": 8}
    exp = VAEExperiment(config)
    lrs = []
    for step in (0, 50, 100):
        exp.configure_schedules(100, step)
        lrs.append(exp.optimizer.param_groups[0]["lr"])
    np.testing.assert_allclose(lrs, [1e-3, (1e-3 + 1e-5) / 2, 1e-5])


def test_the_logged_rate_follows_the_cosine_through_a_resume(tmp_path, monkeypatch):
    """lr_t = lr/100 + (lr - lr/100) (1 + cos(pi t / T)) / 2 at every step t of T = 12,
    also after stopping at step 5 and resuming; extending the run to T = 20 lays the
    cosine over the new total."""
    rng = np.random.default_rng(0)
    images = (rng.random((60, 1, 28, 28)) < 0.3).astype(np.float32)
    monkeypatch.setattr(VAEExperiment, "images",
                        lambda self, split: (images, np.zeros(60, np.int64)))
    config = {**VAEExperiment.defaults, "model": "vae", "dataset": "mnist", "device": "cpu",
              "seed": 0, "latent_dim": 2, "hidden": 8, "batch_size": 10}

    def cosine(t, T, lr=1e-3):
        return lr / 100 + (lr - lr / 100) * (1 + math.cos(math.pi * t / T)) / 2

    class StoppedAtFive(VAEExperiment):   # Ctrl-C during step 5
        def training_step(self, x):
            if self.step == 4:
                os.kill(os.getpid(), signal.SIGINT)
            return super().training_step(x)

    assert fit(StoppedAtFive(config), str(tmp_path), steps=12, progress=False)["step"] == 5
    fit(VAEExperiment(config), str(tmp_path), steps=12, progress=False)
    logged = [row["lr"] for row in read_log(str(tmp_path))]
    np.testing.assert_allclose(logged, [cosine(t, 12) for t in range(12)], rtol=1e-12)
    fit(VAEExperiment(config), str(tmp_path), steps=20, progress=False)
    logged = [row["lr"] for row in read_log(str(tmp_path))][12:]
    np.testing.assert_allclose(logged, [cosine(t, 20) for t in range(12, 20)], rtol=1e-12)
