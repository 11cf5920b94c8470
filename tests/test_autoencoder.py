"""Autoencoders: the loss and penalties against formulas written out in NumPy, the
corruption of the denoising autoencoder, the linear autoencoder as PCA, learning on
MNIST, and the registered experiments."""
import os

import numpy as np
import pytest

import tinygen as tg
from tinygen import data, nn, optim
from tinygen.experiments import REGISTRY, get_experiment
from tinygen.experiments.vae.autoencoder import (AutoEncoderExperiment,
                                                 DenoisingAutoEncoderExperiment)
from tinygen.models.vae.autoencoder import AutoEncoder, DenoisingAutoEncoder, corrupt
from tinygen.train import fit, read_log

needs_mnist = pytest.mark.skipif(not os.environ.get("TINYGEN_DATA"),
                                 reason="needs MNIST: set TINYGEN_DATA to the data folder")


def _float64(module):
    for p in module.parameters():
        p.data = p.data.astype(np.float64)
    return module


def _sigmoid(a):
    return 1 / (1 + np.exp(-a))


# --------------------------------------------------------------------------- the math

def _small_networks():
    """f: R^6 -> R^3 (Linear, tanh, Linear), g: R^3 -> R^6 (Linear), in float64."""
    f = _float64(nn.Sequential(nn.Linear(6, 4), nn.Tanh(), nn.Linear(4, 3)))
    g = _float64(nn.Linear(3, 6))
    return f, g


def _by_hand(f, g, x, reconstruction, penalty, lam):
    """L(x, g(f(x))) + lambda Omega(f(x)) in NumPy from the weights, averaged over the
    batch: reconstruction term, penalty term, total."""
    W1, b1 = f[0].weight.numpy(), f[0].bias.numpy()
    W2, b2 = f[2].weight.numpy(), f[2].bias.numpy()
    W3, b3 = g.weight.numpy(), g.bias.numpy()
    z = np.tanh(x @ W1.T + b1) @ W2.T + b2
    eta = z @ W3.T + b3
    if reconstruction == "bernoulli":
        x_hat = _sigmoid(eta)
        L = -(x * np.log(x_hat) + (1 - x) * np.log(1 - x_hat)).sum(axis=1)
    else:
        L = ((x - eta) ** 2).sum(axis=1)
    omega = {"none": np.zeros(len(x)), "l1": np.abs(z).sum(axis=1),
             "l2": (z ** 2).sum(axis=1)}[penalty]
    return L.mean(), omega.mean(), L.mean() + lam * omega.mean()


@pytest.mark.parametrize("penalty", ["none", "l1", "l2"])
@pytest.mark.parametrize("reconstruction", ["bernoulli", "mse"])
def test_the_loss_is_the_formula_written_out_by_hand(reconstruction, penalty):
    f, g = _small_networks()
    x = tg.generator(1).random((5, 6))                      # float64 in [0, 1)
    lam = 0.37
    ae = AutoEncoder(reconstruction=reconstruction, penalty=penalty, penalty_weight=lam,
                     encoder=f, decoder=g)
    L, omega, total = _by_hand(f, g, x, reconstruction, penalty, lam)
    terms = ae.losses(tg.tensor(x))
    np.testing.assert_allclose(terms["reconstruction"].item(), L, rtol=1e-12)
    np.testing.assert_allclose(ae.loss(tg.tensor(x)).item(), total, rtol=1e-12)
    if penalty == "none":
        assert set(terms) == {"loss", "reconstruction"}
    else:
        np.testing.assert_allclose(terms["penalty"].item(), omega, rtol=1e-12)


@pytest.mark.parametrize("penalty", ["l1", "l2"])
def test_the_penalty_adds_exactly_lambda_omega(penalty):
    f, g = _small_networks()
    x = tg.tensor(tg.generator(2).random((7, 6)))
    plain = AutoEncoder(encoder=f, decoder=g)
    z = f(x).numpy()
    omega = np.abs(z).sum(1).mean() if penalty == "l1" else (z ** 2).sum(1).mean()
    assert omega > 0.1  # large enough that a missing or doubled term shows
    for lam in (0.0, 0.5, 3.0):
        regularised = AutoEncoder(penalty=penalty, penalty_weight=lam, encoder=f, decoder=g)
        np.testing.assert_allclose(regularised.loss(x).item() - plain.loss(x).item(),
                                   lam * omega, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("network", ["mlp", "conv"])
@pytest.mark.parametrize("reconstruction", ["bernoulli", "mse"])
def test_image_autoencoder_shapes_and_reduction(network, reconstruction, device):
    """Summed over the 784 pixels, averaged over the batch; forward is g(f(x)) in data
    space (Bernoulli means for "bernoulli")."""
    ae = AutoEncoder(5, network, reconstruction).to(device)
    x = tg.rand(3, 1, 28, 28, device=device)
    z = ae.encode(x)
    assert z.shape == (3, 5)
    eta = ae.decoder(z).numpy().astype(np.float64)
    assert eta.shape == (3, 1, 28, 28)
    x_hat = ae(x).numpy()
    xn = x.numpy().astype(np.float64)
    if reconstruction == "bernoulli":
        np.testing.assert_allclose(x_hat, _sigmoid(eta), rtol=1e-5, atol=1e-6)
        per_image = -(xn * np.log(_sigmoid(eta)) + (1 - xn) * np.log(1 - _sigmoid(eta)))
    else:
        np.testing.assert_allclose(x_hat, eta, rtol=1e-6)
        per_image = (xn - eta) ** 2
    expected = per_image.reshape(3, -1).sum(1).mean()
    np.testing.assert_allclose(ae.loss(x).item(), expected, rtol=1e-5)


@pytest.mark.parametrize("model", ["ae-l1", "dae-masking", "dae-gaussian"])
@pytest.mark.parametrize("network", ["mlp", "conv"])
def test_gradients_reach_encoder_and_decoder(model, network, device):
    if model == "ae-l1":
        ae = AutoEncoder(4, network, penalty="l1", penalty_weight=0.1)
    else:
        ae = DenoisingAutoEncoder(4, network, noise=model.split("-")[1], noise_level=0.3)
    ae.to(device)
    ae.loss(tg.rand(4, 1, 28, 28, device=device)).backward()
    for part in (ae.encoder, ae.decoder):
        for name, p in part.named_parameters():
            assert p.grad is not None, name
            assert p.grad.shape == p.shape, name
            assert np.abs(p.grad.numpy()).max() > 0, f"{name} got a zero gradient"


@pytest.mark.parametrize("noise", ["masking", "gaussian"])
def test_the_dae_compares_with_the_clean_x(noise, monkeypatch):
    """The encoder reads x_tilde != x; the reconstruction is scored against x itself,
    unchanged; the loss is L(x, g(f(x_tilde))), not L(x_tilde, ...)."""
    f, g = _small_networks()
    dae = DenoisingAutoEncoder(noise=noise, noise_level=0.4, encoder=f, decoder=g)
    seen = {}

    class Spy(nn.Module):
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, x):
            seen["encoder_input"] = x
            return self.inner(x)

    dae.encoder = Spy(f)
    score = dae.reconstruction_loss

    def spy_score(eta, target):
        seen["target"] = target
        return score(eta, target)

    monkeypatch.setattr(dae, "reconstruction_loss", spy_score)
    x = tg.tensor(0.2 + 0.8 * tg.generator(3).random((50, 6)))   # no pixel is 0
    before = x.numpy().copy()
    loss = dae.loss(x).item()

    assert seen["target"] is x
    np.testing.assert_array_equal(x.numpy(), before)              # x was not modified
    x_tilde = seen["encoder_input"].numpy()
    assert x_tilde.shape == before.shape
    assert (x_tilde != before).mean() > 0.2                       # the input was corrupted
    eta = g(f(tg.tensor(x_tilde))).numpy()
    on_clean = -(before * np.log(_sigmoid(eta)) + (1 - before) * np.log(1 - _sigmoid(eta)))
    np.testing.assert_allclose(loss, on_clean.sum(1).mean(), rtol=1e-12)
    if noise == "masking":  # BCE needs targets in [0, 1] to be a reference at all
        x_hat = _sigmoid(eta)
        on_noisy = -(x_tilde * np.log(x_hat) + (1 - x_tilde) * np.log(1 - x_hat))
        assert abs(on_noisy.sum(1).mean() - loss) > 1e-3


@pytest.mark.parametrize("p", [0.1, 0.5, 0.9])
def test_masking_noise_zeroes_a_fraction_p(p, device):
    x = 0.5 + tg.rand(100, 1, 28, 28, device=device)             # no pixel is 0
    x_tilde = corrupt(x, "masking", p)
    xn, xt = x.numpy(), x_tilde.numpy()
    zeroed = xt == 0
    n = xn.size
    assert abs(zeroed.mean() - p) < 4 * np.sqrt(p * (1 - p) / n), zeroed.mean()
    np.testing.assert_array_equal(xt[~zeroed], xn[~zeroed])       # the rest is kept as is
    assert (corrupt(x, "masking", p).numpy() != xt).any()         # a new draw each call
    np.testing.assert_array_equal(corrupt(x, "masking", 0.0).numpy(), xn)


@pytest.mark.parametrize("sigma", [0.1, 0.5])
def test_gaussian_noise_has_the_requested_std(sigma, device):
    x = tg.rand(100, 1, 28, 28, device=device)
    eps = (corrupt(x, "gaussian", sigma).numpy() - x.numpy()).astype(np.float64)
    n = eps.size
    assert abs(eps.mean()) < 4 * sigma / np.sqrt(n)
    assert abs(eps.std() / sigma - 1) < 4 / np.sqrt(2 * n), eps.std()
    # and it is a normal distribution: 68.3% within one sigma
    assert abs((np.abs(eps) < sigma).mean() - 0.6827) < 4 * np.sqrt(0.22 / n)


def test_bad_settings_are_refused_clearly():
    with pytest.raises(ValueError, match="reconstruction loss 'l2'.*'bernoulli', 'mse'"):
        AutoEncoder(reconstruction="l2")
    with pytest.raises(ValueError, match="penalty 'kl'"):
        AutoEncoder(penalty="kl")
    with pytest.raises(ValueError, match="lambda"):
        AutoEncoder(penalty="l1", penalty_weight=-1.0)
    with pytest.raises(ValueError, match="both encoder and decoder"):
        AutoEncoder(encoder=nn.Linear(4, 2))
    with pytest.raises(ValueError, match="noise 'salt'"):
        DenoisingAutoEncoder(noise="salt")
    with pytest.raises(ValueError, match=r"probability p in \[0, 1\)"):
        DenoisingAutoEncoder(noise="masking", noise_level=1.0)
    with pytest.raises(ValueError, match="'mlp' or 'conv'"):
        AutoEncoder(network="resnet")
    with pytest.raises(ValueError, match="no penalty"):
        AutoEncoder(4).omega(tg.randn(2, 4))


# --------------------------------------------------------------------------- linear AE = PCA

def _anisotropic_data(D=8, N=2000):
    """Centred Gaussian data in R^8 with variances 6, 5, 4, 1, .5, .3, .2, .1 along a
    random rotation, and the eigendecomposition of its covariance (1/N), ascending."""
    rng = tg.generator(4)
    Q, _ = np.linalg.qr(rng.standard_normal((D, D)))
    x = (rng.standard_normal((N, D)) * np.sqrt([6, 5, 4, 1, .5, .3, .2, .1])) @ Q.T
    x -= x.mean(axis=0)
    eigenvalues, U = np.linalg.eigh(x.T @ x / N)
    return x, eigenvalues, U


def test_linear_ae_at_the_pca_solution_loses_the_discarded_variance():
    """f(x) = U_d^T (x - mu), g(z) = U_d z + mu with U_d the top-d eigenvectors: the mse
    loss is the sum of the D - d discarded eigenvalues. Any other d directions lose more."""
    x, eigenvalues, U = _anisotropic_data()
    x = x + 3.0  # a mean for the biases to remove
    mu = x.mean(axis=0)
    d = 3
    for directions, discarded in ((U[:, -d:], eigenvalues[:-d]),      # top d: PCA
                                  (U[:, :d], eigenvalues[d:])):       # bottom d
        f, g = _float64(nn.Linear(8, d)), _float64(nn.Linear(d, 8))
        f.weight.data, f.bias.data = directions.T.copy(), -directions.T @ mu
        g.weight.data, g.bias.data = directions.copy(), mu.copy()
        ae = AutoEncoder(reconstruction="mse", encoder=f, decoder=g)
        np.testing.assert_allclose(ae.loss(tg.tensor(x)).item(), discarded.sum(), rtol=1e-10)
    assert eigenvalues[d:].sum() > 5 * eigenvalues[:-d].sum()


def test_a_trained_linear_ae_finds_the_principal_subspace():
    """Trained from a random start, a linear autoencoder with the mse loss reaches the PCA
    reconstruction error with the same d, and its decoder spans the top-d eigenvectors."""
    x, eigenvalues, U = _anisotropic_data()
    d = 3
    ae = AutoEncoder(reconstruction="mse", encoder=nn.Linear(8, d), decoder=nn.Linear(d, 8))
    opt = optim.Adam(ae.parameters(), lr=0.01)
    xt = tg.tensor(x.astype(np.float32))
    for _ in range(500):
        loss = ae.loss(xt)
        opt.zero_grad()
        loss.backward()
        opt.step()
    pca_error = eigenvalues[:-d].sum()                       # about 2.1
    assert ae.loss(xt).item() < 1.005 * pca_error            # missing one top direction: +3
    # the decoder's column space is the principal subspace: equal orthogonal projectors
    Q, _ = np.linalg.qr(ae.decoder.weight.numpy().astype(np.float64))
    top = U[:, -d:]
    assert np.linalg.norm(Q @ Q.T - top @ top.T) < 0.01


def test_a_linear_dae_learns_the_optimal_denoiser():
    """For Gaussian data x ~ N(0, Sigma) and x_tilde = x + sigma eps, the best estimate of
    x from x_tilde in squared error is the posterior mean E[x | x_tilde] =
    Sigma (Sigma + sigma^2 I)^-1 x_tilde (the Wiener filter), with error
    tr(Sigma - Sigma (Sigma + sigma^2 I)^-1 Sigma). A linear DAE with d = D, trained with
    the mse loss, must learn exactly that map; the identity, which a plain autoencoder
    with d = D learns, or a filter for another noise level, is far from it."""
    rng = tg.generator(5)
    D, N, sigma = 8, 4000, 0.5
    Q, _ = np.linalg.qr(rng.standard_normal((D, D)))
    x = (rng.standard_normal((N, D)) * np.sqrt([4, 2, 1, .05, .05, .05, .05, .05])) @ Q.T
    x -= x.mean(axis=0)
    Sigma = x.T @ x / N
    wiener = Sigma @ np.linalg.inv(Sigma + sigma ** 2 * np.eye(D))
    bayes_error = np.trace(Sigma - wiener @ Sigma)                       # about 0.87

    dae = DenoisingAutoEncoder(reconstruction="mse", noise="gaussian", noise_level=sigma,
                               encoder=nn.Linear(D, D), decoder=nn.Linear(D, D))
    opt = optim.Adam(dae.parameters(), lr=0.02)
    schedule = optim.CosineAnnealingLR(opt, T_max=400)  # a small lr at the end: less jitter
    xt = tg.tensor(x.astype(np.float32))
    for _ in range(400):                                  # a fresh x_tilde every step
        loss = dae.loss(xt)
        opt.zero_grad()
        loss.backward()
        opt.step()
        schedule.step()
    learned = dae.decoder.weight.numpy() @ dae.encoder.weight.numpy()   # g(f(x)) = M x + c
    size = np.linalg.norm(wiener)
    assert np.linalg.norm(learned - wiener) < 0.05 * size
    assert np.linalg.norm(np.eye(D) - wiener) > 1.0 * size               # not the identity
    x_noisy = x + sigma * rng.standard_normal(x.shape)                   # new noise
    with tg.no_grad():
        out = dae(tg.tensor(x_noisy.astype(np.float32))).numpy()
    error = ((out - x) ** 2).sum(axis=1).mean()
    assert error < 1.03 * bayes_error, (error, bayes_error)            # doing nothing: 2.0


# --------------------------------------------------------------------------- learning on MNIST

@pytest.fixture(scope="module")
def trained_on_mnist():
    """An AE and a DAE (Gaussian noise, sigma 0.5), 32-d codes, each trained for 200
    Adam steps of 64 on the first 4000 training images; 1000 held-out test images."""
    tg.manual_seed(0)
    images, _ = data.load_mnist("train")
    train = data.scale(images[:4000])[:, None]
    test_images, _ = data.load_mnist("test")
    test = tg.tensor(data.scale(test_images[:1000])[:, None])
    models = {"ae": AutoEncoder(32), "dae": DenoisingAutoEncoder(32, noise="gaussian",
                                                                 noise_level=0.5)}
    before = {}
    for name, model in models.items():
        with tg.no_grad():
            before[name] = model.loss(test).item()
        opt = optim.Adam(model.parameters(), lr=1e-3)
        loader = data.DataLoader(train, batch_size=64, shuffle=True, seed=0)
        step = 0
        while step < 200:
            for x in loader:
                loss = model.loss(x)
                opt.zero_grad()
                loss.backward()
                opt.step()
                step += 1
                if step == 200:
                    break
    return models, before, test


@needs_mnist
def test_the_reconstruction_loss_falls(trained_on_mnist):
    models, before, test = trained_on_mnist
    with tg.no_grad():
        after = models["ae"].loss(test).item()
    # 784 log 2 = 543 nats at the start (x_hat near 1/2); 200 steps bring it below 130,
    # well below the 200 of answering every image with the mean training image (it
    # reaches about 118).
    assert before["ae"] > 500
    assert after < 130, after


@needs_mnist
def test_the_dae_denoises(trained_on_mnist):
    models, _, x = trained_on_mnist
    tg.manual_seed(1)
    x_tilde = corrupt(x, "gaussian", 0.5)
    with tg.no_grad():
        denoised = models["dae"](x_tilde).numpy()
    noisy_error = np.mean((x_tilde.numpy() - x.numpy()) ** 2)           # sigma^2 = 0.25
    dae_error = np.mean((denoised - x.numpy()) ** 2)
    # 0.05 is also below the 0.065 of answering every input with the mean image (it
    # reaches about 0.033)
    assert dae_error < 0.2 * noisy_error, (dae_error, noisy_error)


# --------------------------------------------------------------------------- the experiments

def test_the_experiments_are_registered():
    assert get_experiment("ae") is AutoEncoderExperiment
    assert get_experiment("dae") is DenoisingAutoEncoderExperiment
    for cls in (AutoEncoderExperiment, DenoisingAutoEncoderExperiment):
        assert REGISTRY[cls.name].datasets == ("mnist", "fashion-mnist")
        for key in ("latent_dim", "network", "reconstruction", "penalty", "penalty_weight",
                    "batch_size", "lr", "epochs"):
            assert key in cls.defaults, key
    assert {"noise", "noise_level"} <= set(DenoisingAutoEncoderExperiment.defaults)


def _small(cls):
    """The experiment trained on the first 512 training images only (fast)."""
    class Small(cls):
        def train_loader(self):
            images, _ = data.load_mnist("train")
            return data.DataLoader(images[:512], batch_size=self.config["batch_size"],
                                   shuffle=True, seed=0,
                                   transform=lambda x, g: data.scale(x)[:, None])
    return Small


def _png_height(path):
    with open(path, "rb") as f:
        header = f.read(24)
    assert header[:8] == b"\x89PNG\r\n\x1a\n"
    return int.from_bytes(header[20:24], "big")


def _config(cls, **settings):
    return {**cls.defaults, "model": cls.name, "dataset": "mnist", "device": "cpu",
            "seed": 0, **settings}


@needs_mnist
def test_ae_experiment_fits_and_draws(tmp_path):
    config = _config(AutoEncoderExperiment, latent_dim=2, penalty="l1", penalty_weight=0.1,
                     batch_size=64)
    experiment = _small(AutoEncoderExperiment)(config)
    run_dir = str(tmp_path / "ae")
    fit(experiment, run_dir, steps=6, progress=False)
    for name in ("config.json", "log.jsonl", "checkpoint.npz", "curves.png",
                 "reconstructions.png", "codes.png"):
        assert os.path.isfile(os.path.join(run_dir, name)), name
    rows = read_log(run_dir)
    assert len(rows) == 6
    for row in rows:
        np.testing.assert_allclose(row["loss"], row["reconstruction"] + 0.1 * row["penalty"],
                                   rtol=1e-5)
    assert _png_height(os.path.join(run_dir, "reconstructions.png")) == 4 * 30 + 2  # 4 rows
    metrics = experiment.evaluate()
    assert set(metrics) == {"recon_mse", "recon_bce", "eval_images"}
    assert 0 < metrics["recon_mse"] < 0.3 and 0 < metrics["recon_bce"] < 0.7, metrics
    with pytest.raises(NotImplementedError, match="no prior p\\(z\\).*VAE"):
        experiment.sample(4)
    from tinygen.cli import main
    assert main(["sample", run_dir]) == 2    # the command says why, in one line


@needs_mnist
def test_dae_experiment_fits_and_draws(tmp_path):
    config = _config(DenoisingAutoEncoderExperiment, latent_dim=8, network="conv",
                     noise="masking", noise_level=0.3, batch_size=32)
    experiment = _small(DenoisingAutoEncoderExperiment)(config)
    run_dir = str(tmp_path / "dae")
    fit(experiment, run_dir, steps=3, progress=False)
    for name in ("reconstructions.png", "denoising.png", "curves.png", "checkpoint.npz"):
        assert os.path.isfile(os.path.join(run_dir, name)), name
    assert not os.path.exists(os.path.join(run_dir, "codes.png"))  # only for 2-d codes
    assert _png_height(os.path.join(run_dir, "denoising.png")) == 6 * 30 + 2  # 2 x 3 rows
    assert isinstance(experiment.model, DenoisingAutoEncoder)
    assert experiment.model.noise == "masking" and experiment.model.noise_level == 0.3


@needs_mnist
def test_dae_evaluate_reports_the_corrupted_error(tmp_path):
    config = _config(DenoisingAutoEncoderExperiment, noise="masking", noise_level=0.3)
    experiment = DenoisingAutoEncoderExperiment(config)
    metrics = experiment.evaluate()   # untrained: the numbers' meaning, not their quality
    assert set(metrics) == {"recon_mse", "recon_bce", "denoised_mse", "denoised_bce",
                            "corrupted_input_mse", "eval_images"}
    x, _ = experiment.test_set()
    # masking zeroes a fraction p of the pixels: E (x_tilde - x)^2 = p E x^2
    np.testing.assert_allclose(metrics["corrupted_input_mse"], 0.3 * np.mean(x ** 2),
                               rtol=0.01)
    # an untrained decoder outputs about 1/2 everywhere: mse ~ E (x - 1/2)^2, bce ~ log 2
    np.testing.assert_allclose(metrics["denoised_mse"], np.mean((x - 0.5) ** 2), rtol=0.1)
    np.testing.assert_allclose(metrics["recon_bce"], np.log(2), rtol=0.05)
