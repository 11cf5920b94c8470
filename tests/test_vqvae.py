"""VQ-VAE: nearest-code quantisation, the straight-through estimator, where each loss
term's gradient goes, the EMA codebook in closed form, perplexity, dead-code restarts,
a small learning test on MNIST, and the registered experiment."""
import math
import os

import numpy as np
import pytest

import tinygen as tg
from tinygen import backend, data, nn
from tinygen.experiments import REGISTRY, get_experiment
from tinygen.experiments.vae.vqvae import VQVAEExperiment
from tinygen.models.vae.quantizer import (VectorQuantizer, codebook_usage, nearest_codes,
                                          perplexity, straight_through)
from tinygen.models.vae.vqvae import VQVAE
from tinygen.train import fit, load_experiment, read_log

needs_mnist = pytest.mark.skipif(not os.environ.get("TINYGEN_DATA"),
                                 reason="needs MNIST: set TINYGEN_DATA to the data folder")


def brute_force_nearest(z, e):
    """k_i = the first j with the smallest ||z_i - e_j||^2, by explicit loops."""
    ks = []
    for zi in z:
        best, best_j = math.inf, -1
        for j, ej in enumerate(e):
            d = float(((zi - ej) ** 2).sum())
            if d < best:            # strict: a tie keeps the lower index
                best, best_j = d, j
        ks.append(best_j)
    return np.array(ks)


def zero_or_none(g):
    return g is None or not np.any(g.numpy())


# --------------------------------------------------------------------------- quantisation

def test_nearest_codes_agree_with_a_brute_force_loop(device):
    rng = np.random.default_rng(0)
    for M, K, D in [(1, 1, 1), (40, 7, 3), (25, 64, 16)]:
        z, e = rng.standard_normal((M, D)), rng.standard_normal((K, D))
        k = nearest_codes(tg.tensor(z, device=device), tg.tensor(e, device=device))
        np.testing.assert_array_equal(backend.to_numpy(k), brute_force_nearest(z, e))


def test_ties_go_to_the_lowest_index(device):
    # Small integers: distances are exact in floating point, so ties are real ties.
    rng = np.random.default_rng(1)
    z = rng.integers(-1, 2, (200, 2)).astype(np.float64)
    e = rng.integers(-1, 2, (6, 2)).astype(np.float64)
    e[4] = e[1]                                    # a duplicated code: 1 must win over 4
    expected = brute_force_nearest(z, e)
    assert 4 not in expected
    k = backend.to_numpy(nearest_codes(tg.tensor(z, device=device), tg.tensor(e, device=device)))
    np.testing.assert_array_equal(k, expected)
    # (0, 1) is equally far from (1, 0) and (-1, 0): the first of them is chosen.
    e2 = np.array([[5.0, 5.0], [1.0, 0.0], [-1.0, 0.0]])
    assert nearest_codes(np.array([[0.0, 1.0]]), e2).tolist() == [1]


def test_the_quantizer_replaces_each_grid_vector_by_its_nearest_code(device):
    vq = VectorQuantizer(num_embeddings=5, embedding_dim=3).to(device)
    vq.embedding.data[...] = backend.to_device(
        np.random.default_rng(2).standard_normal((5, 3)).astype(np.float32), device)
    z_e = tg.randn(2, 3, 4, 5, device=device)           # (N, D, h, w)
    q = vq(z_e)
    assert q.k.shape == (2, 4, 5) and q.z_q.shape == q.z_q_st.shape == (2, 3, 4, 5)
    z, e, k, z_q = z_e.numpy(), vq.embedding.numpy(), backend.to_numpy(q.k), q.z_q.numpy()
    for n in range(2):
        for i in range(4):
            for j in range(5):
                assert k[n, i, j] == brute_force_nearest(z[None, n, :, i, j], e)[0]
                np.testing.assert_array_equal(z_q[n, :, i, j], e[k[n, i, j]])
    np.testing.assert_allclose(q.z_q_st.numpy(), z_q, atol=1e-6)   # forward value is z_q
    with pytest.raises(ValueError, match=r"expected z_e \(N, 3, h, w\)"):
        vq(tg.randn(2, 4, 4, 5, device=device))


# --------------------------------------------------------------------------- gradients

def test_straight_through_passes_the_decoder_gradient_to_the_encoder_unchanged(device):
    tg.manual_seed(3)
    decoder = nn.Sequential(nn.Conv2d(4, 6, 3, padding=1), nn.Tanh(),
                            nn.ConvTranspose2d(6, 1, 4, 2, 1)).to(device)
    vq = VectorQuantizer(8, 4).to(device)
    x = tg.rand(3, 1, 10, 10, device=device)
    z_e = tg.randn(3, 4, 5, 5, device=device, requires_grad=True)

    q = vq(z_e)
    loss = ((decoder(q.z_q_st) - x) ** 2).mean()
    (g_e,) = tg.grad(loss, z_e, retain_graph=True)                # d loss / d z_e

    z_q = tg.tensor(q.z_q.numpy(), device=device, requires_grad=True)
    (g_q,) = tg.grad(((decoder(z_q) - x) ** 2).mean(), z_q)       # d loss / d z_q, alone
    assert np.abs(g_q.numpy()).max() > 0
    np.testing.assert_allclose(g_e.numpy(), g_q.numpy(), rtol=1e-6, atol=1e-9)
    # Nothing of that gradient reaches the codebook through z_q_st.
    (g_codebook,) = tg.grad(loss, vq.embedding, allow_unused=True)
    assert zero_or_none(g_codebook)


def test_straight_through_alone():
    z_e = tg.tensor([1.0, -2.0, 3.0], requires_grad=True)
    z_q = tg.tensor([0.5, 0.5, 0.5], requires_grad=True)
    y = straight_through(z_e, z_q)
    np.testing.assert_array_equal(y.numpy(), [0.5, 0.5, 0.5])
    g_e, g_q = tg.grad((y * tg.tensor([1.0, 2.0, 3.0])).sum(), [z_e, z_q], allow_unused=True)
    np.testing.assert_array_equal(g_e.numpy(), [1.0, 2.0, 3.0])
    assert zero_or_none(g_q)


def small_model(**kwargs):
    tg.manual_seed(4)
    return VQVAE(num_embeddings=8, embedding_dim=4, channels=4, **kwargs)


def test_stop_gradients_route_each_loss_term_to_its_parameters():
    model = small_model()
    x = tg.rand(2, 1, 28, 28)
    x_hat, z_e, q = model(x)
    terms = model.loss_terms(x, x_hat, z_e, q.z_q)
    enc, dec = list(model.encoder.parameters()), list(model.decoder.parameters())
    e = model.quantizer.embedding

    def grads(term):
        g = tg.grad(term, enc + [e] + dec, retain_graph=True, allow_unused=True)
        return g[:len(enc)], g[len(enc)], g[len(enc) + 1:]

    g_enc, g_e, g_dec = grads(terms["codebook"])          # ||sg[z_e] - e||^2
    assert all(zero_or_none(g) for g in g_enc + g_dec) and not zero_or_none(g_e)
    # Its gradient in closed form: 2 (e_j - z_e,i) / (M D), summed over the i assigned j.
    z = z_e.numpy().transpose(0, 2, 3, 1).reshape(-1, 4)
    k = q.k.ravel()
    expected = np.zeros((8, 4))
    np.add.at(expected, k, 2 * (e.numpy()[k] - z) / z.size)
    np.testing.assert_allclose(g_e.numpy(), expected, rtol=1e-4, atol=1e-8)

    g_enc, g_e, g_dec = grads(terms["commitment"])        # ||z_e - sg[e]||^2
    assert all(not zero_or_none(g) for g in g_enc)
    assert zero_or_none(g_e) and all(zero_or_none(g) for g in g_dec)
    (g_z,) = tg.grad(terms["commitment"], z_e, retain_graph=True)    # 2 (z_e - e) / (M D)
    np.testing.assert_allclose(g_z.numpy(), 2 * (z_e.numpy() - q.z_q.numpy()) / z.size,
                               rtol=1e-5, atol=1e-9)

    g_enc, g_e, g_dec = grads(terms["reconstruction"])    # ||x - decoder(z_q_st)||^2
    assert all(not zero_or_none(g) for g in g_enc)        # through the straight-through
    assert all(not zero_or_none(g) for g in g_dec) and zero_or_none(g_e)

    # L = reconstruction + codebook + beta commitment.
    expected_loss = sum(terms[n].item() for n in ("reconstruction", "codebook")) \
        + 0.25 * terms["commitment"].item()
    assert model.loss(terms).item() == pytest.approx(expected_loss, rel=1e-6)


def test_the_ema_codebook_is_no_parameter_and_drops_the_codebook_term():
    model = small_model(codebook_update="ema")
    e = model.quantizer.embedding
    assert all(p is not e for p in model.parameters()) and not e.requires_grad
    x = tg.rand(2, 1, 28, 28)
    x_hat, z_e, q = model(x)
    terms = model.loss_terms(x, x_hat, z_e, q.z_q)
    assert terms["codebook"].item() > 0
    assert model.loss(terms).item() == pytest.approx(
        terms["reconstruction"].item() + 0.25 * terms["commitment"].item(), rel=1e-6)
    with pytest.raises(ValueError, match="'loss' or 'ema'"):
        VectorQuantizer(4, 2, codebook_update="kmeans")


def test_encode_then_decode_is_the_forward_pass():
    model = small_model()
    x = tg.rand(3, 1, 28, 28)
    k = model.encode(x)
    assert k.shape == (3, 7, 7) and k.dtype == np.int64
    with tg.no_grad():
        x_hat, z_e, q = model(x)
    assert z_e.shape == (3, 4, 7, 7) and x_hat.shape == (3, 1, 28, 28)
    np.testing.assert_array_equal(k, q.k)
    np.testing.assert_allclose(model.decode(k).numpy(), x_hat.numpy(), rtol=1e-5, atol=1e-6)


# --------------------------------------------------------------------------- the EMA update

def test_the_ema_update_equals_its_closed_form():
    gamma, eps = 0.9, 0.1      # a large eps, so that the Laplace smoothing shows
    vq = VectorQuantizer(3, 2, codebook_update="ema", decay=gamma, eps=eps)
    vq.embedding.data[...] = [[0.0, 0.0], [1.0, 1.0], [9.0, 9.0]]
    vq.ema_count.data[...] = [2.0, 1.0, 1.0]
    vq.ema_sum.data[...] = [[0.2, -0.2], [1.0, 1.0], [9.0, 9.0]]
    # Four grid vectors (N=1, h=1, w=4): three go to code 0, one to code 1, none to 2.
    z = np.array([[0.1, 0.3], [-0.1, 0.1], [0.3, 0.2], [1.5, 0.5]], np.float32)
    z_e = z.T.reshape(1, 2, 1, 4)
    k = np.array([[[0, 0, 0, 1]]])
    vq.ema_update(z_e, k)
    # By hand: N = 0.9 N + 0.1 n with n = (3, 1, 0), m = 0.9 m + 0.1 (sums of the z's).
    N = np.array([0.9 * 2 + 0.3, 0.9 + 0.1, 0.9])
    m = np.array([[0.18 + 0.03, -0.18 + 0.06], [0.9 + 0.15, 0.9 + 0.05], [8.1, 8.1]])
    np.testing.assert_allclose(vq.ema_count.numpy(), N, rtol=1e-6)
    np.testing.assert_allclose(vq.ema_sum.numpy(), m, rtol=1e-6)
    # e_k = m_k / N_k' with N_k' = (N_k + eps) / (n + K eps) n, n = sum N = 4.
    N_smoothed = (N + 0.1) / (4.0 + 3 * 0.1) * 4.0
    np.testing.assert_allclose(vq.embedding.numpy(), m / N_smoothed[:, None], rtol=1e-5)


def test_the_smoothed_counts_keep_a_never_used_code_finite():
    vq = VectorQuantizer(2, 2, codebook_update="ema", decay=0.5)     # eps = 1e-5
    vq.ema_count.data[...] = [1.0, 0.0]                              # code 1: never used
    vq.ema_sum.data[...] = [[1.0, 1.0], [0.0, 0.0]]
    vq.ema_update(np.ones((1, 2, 1, 2), np.float32), np.array([[[0, 0]]]))
    e = vq.embedding.numpy()
    assert np.isfinite(e).all()                                      # not 0 / 0
    np.testing.assert_allclose(e, [[1.0, 1.0], [0.0, 0.0]], atol=1e-4)


def test_the_ema_codes_converge_to_the_mean_of_their_vectors():
    vq = VectorQuantizer(2, 2, codebook_update="ema", decay=0.8, eps=0.0)
    vq.embedding.data[...] = [[0.0, 0.0], [5.0, 5.0]]
    vq.ema_sum.data[...] = vq.embedding.data
    z = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0], [4.0, 6.0], [6.0, 6.0]], np.float32)
    z_e, k = z.T.reshape(1, 2, 1, 5), np.array([[[0, 0, 0, 1, 1]]])
    for _ in range(100):
        vq.ema_update(z_e, k)
    np.testing.assert_allclose(vq.embedding.numpy(), [[2 / 3, 2 / 3], [5.0, 6.0]], rtol=1e-4)
    np.testing.assert_allclose(vq.ema_count.numpy(), [3.0, 2.0], rtol=1e-4)


def test_the_loss_codebook_ignores_the_ema_except_for_counting():
    vq = VectorQuantizer(3, 2, codebook_update="loss", decay=0.5)
    before = vq.embedding.numpy().copy()
    vq.ema_update(np.ones((1, 2, 1, 2), np.float32), np.array([[[2, 2]]]))
    np.testing.assert_array_equal(vq.embedding.numpy(), before)
    np.testing.assert_allclose(vq.ema_count.numpy(), [0.5, 0.5, 1.5])


# --------------------------------------------------------------------------- usage

def test_perplexity_is_the_effective_number_of_codes():
    assert perplexity(np.full(64, 10.0)) == pytest.approx(64)
    assert perplexity([0, 0, 7, 0]) == pytest.approx(1.0)
    assert perplexity([2, 1, 1, 0]) == pytest.approx(2 ** 1.5)    # H = 1.5 bits
    with pytest.raises(ValueError):
        perplexity([0, 0])
    counts = codebook_usage(np.array([[0, 3], [3, 3]]), 5)
    np.testing.assert_array_equal(counts, [1, 0, 0, 3, 0])


def test_dead_codes_are_restarted_on_encoder_outputs(device):
    tg.manual_seed(5)
    z = np.random.default_rng(5).standard_normal((6, 2)).astype(np.float32)
    z_e = tg.tensor(z.T.reshape(1, 2, 2, 3).copy(), device=device)
    k = backend.to_device(np.array([[[1, 1, 2], [2, 1, 2]]]), device)
    for threshold, mode in [(0.0, "loss"), (1.0, "loss"), (1.0, "ema")]:
        vq = VectorQuantizer(4, 2, codebook_update=mode, decay=0.9,
                             dead_code_threshold=threshold).to(device)
        vq.embedding.data[0] = 100.0                     # far away: nothing chooses 0 or 3
        before = vq.embedding.numpy().copy()
        vq.ema_update(z_e, k)
        restarted = vq.restart_dead_codes(z_e)
        e = vq.embedding.numpy()
        if threshold == 0:                               # off: the paper's algorithm
            assert restarted == 0
            np.testing.assert_array_equal(e, before)
            continue
        assert restarted == 2                            # codes 0 and 3: N = 0.9 < 1
        for j in (0, 3):
            assert any(np.array_equal(e[j], zi) for zi in z), (j, e[j])
        np.testing.assert_array_equal(vq.ema_count.numpy()[[0, 3]], [1.0, 1.0])
        np.testing.assert_array_equal(vq.ema_sum.numpy()[[0, 3]], e[[0, 3]])
        if mode == "loss":                               # used codes are left alone
            np.testing.assert_array_equal(e[[1, 2]], before[[1, 2]])


# --------------------------------------------------------------------------- learning

@needs_mnist
def test_a_small_vqvae_learns_to_reconstruct_mnist():
    tg.manual_seed(0)
    images, _ = data.load_mnist("train")
    x_train = data.scale(images[:3000], to=(0, 1))[:, None]
    test_images, _ = data.load_mnist("test")
    x_test = tg.tensor(data.scale(test_images[:500], to=(0, 1))[:, None])
    model = VQVAE(num_embeddings=32, embedding_dim=8, channels=16)
    opt = tg.optim.Adam(model.parameters(), lr=2e-3)
    loader = data.DataLoader(x_train, batch_size=32, shuffle=True, seed=0)

    def test_mse():
        with tg.no_grad():
            x_hat, _, q = model(x_test)
        return float(((x_hat - x_test) ** 2).mean().item()), q.k

    before, _ = test_mse()
    step = 0
    while step < 150:
        for x in loader:
            x_hat, z_e, q = model(x)
            loss = model.loss(model.loss_terms(x, x_hat, z_e, q.z_q))
            opt.zero_grad()
            loss.backward()
            opt.step()
            step += 1
            if step == 150:
                break
    after, k = test_mse()
    # The best constant guess, the mean training image, scores 0.064; after 150 steps
    # the error is about 0.019 (seeds 0 to 3), with 26 to 31 codes in use.
    mean_image_mse = float(((x_test.numpy() - x_train.mean(0)) ** 2).mean())
    assert after < 0.4 * mean_image_mse and after < before / 3, (before, after, mean_image_mse)
    counts = codebook_usage(k, 32)
    assert (counts > 0).sum() >= 8 and perplexity(counts) > 2, counts


# --------------------------------------------------------------------------- the experiment

def test_vqvae_is_registered():
    assert get_experiment("vqvae") is VQVAEExperiment
    assert REGISTRY["vqvae"].datasets == ("mnist", "fashion-mnist")
    assert {"num_embeddings", "embedding_dim", "beta", "codebook_update", "batch_size", "lr",
            "epochs"} <= set(VQVAEExperiment.defaults)


def small_config(**kwargs):
    return {**VQVAEExperiment.defaults, "model": "vqvae", "dataset": "mnist", "device": "cpu",
            "seed": 0, "batch_size": 16, "num_embeddings": 16, "embedding_dim": 4,
            "channels": 4, **kwargs}


def test_sample_decodes_uniformly_drawn_code_grids():
    exp = VQVAEExperiment(small_config())
    tg.manual_seed(6)
    a = exp.sample(5)
    assert a.shape == (5, 1, 28, 28) and isinstance(a, np.ndarray)
    assert a.min() >= 0 and a.max() <= 1 and not np.allclose(a[0], a[1])
    tg.manual_seed(6)                 # the same codes as the uniform draw sample() makes
    k = tg.randint(0, 16, (5, 7, 7))
    np.testing.assert_allclose(a, np.clip(exp.model.decode(k).numpy(), 0, 1))


@needs_mnist
@pytest.mark.parametrize("codebook_update", ["loss", "ema"])
def test_fit_writes_the_run_folder_and_pictures(tmp_path, codebook_update):
    run = str(tmp_path / "run")
    exp = VQVAEExperiment(small_config(codebook_update=codebook_update,
                                       dead_code_threshold=1.0))
    fit(exp, run, steps=4, progress=False)
    assert {"config.json", "log.jsonl", "checkpoint.npz", "curves.png", "reconstructions.png",
            "codebook_usage.png", "samples.png"} <= set(os.listdir(run))
    for name in ("reconstructions.png", "codebook_usage.png", "samples.png"):
        with open(os.path.join(run, name), "rb") as f:
            assert f.read(8) == b"\x89PNG\r\n\x1a\n"
    rows = read_log(run)
    assert len(rows) == 4
    assert {"loss", "reconstruction", "codebook", "commitment", "perplexity", "codes_used",
            "restarted"} <= set(rows[0])
    assert all(1 <= r["perplexity"] <= 16 and 1 <= r["codes_used"] <= 16 for r in rows)

    metrics = exp.evaluate(limit=200)
    assert set(metrics) == {"recon_mse", "perplexity", "codes_used", "eval_images"}
    x = exp.test_images()[:200]
    with tg.no_grad():
        x_hat, _, _ = exp.model(tg.tensor(x))
    assert metrics["recon_mse"] == pytest.approx(float(((x_hat.numpy() - x) ** 2).mean()),
                                                rel=1e-5)
    assert 1 <= metrics["perplexity"] <= metrics["codes_used"] <= 16

    # The checkpoint keeps the codebook and its moving averages (buffers in "ema" mode).
    again = load_experiment(run, get_experiment)
    for a, b in zip(again.model.state_dict().values(), exp.model.state_dict().values()):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
