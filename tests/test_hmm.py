"""The hidden Markov model (tinygen/models/classic/hmm.py) and its recipe.

The math against brute force over every state path of short sequences (forward, Viterbi,
posteriors, expected counts, the M-step), EM's ascent, forward-backward as the engine's
gradient, a textbook example's numbers, sampling against the model's marginals, and the
errors for bad input; then learning the casino back, and the recipe and its command.
"""
import itertools
import json
import math
import os

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import tinygen as tg
from tinygen.cli import main
from tinygen.experiments import REGISTRY, get_experiment
from tinygen.experiments.base import ConfigError
from tinygen.models.classic.hmm import (FAIR, LOADED, HMM, align_states, backward_algorithm,
                                        best_of_restarts, casino, check_parameters,
                                        expected_counts, forward_algorithm, log_likelihood,
                                        m_step, posteriors, viterbi)
from tinygen.train import fit, read_log


# --------------------------------------------------------------------------- brute force

def brute_force(pi, A, B, x):
    """Every state path z (P, T) of length T = x.shape[1] and log p(x^(n), z) (N, P), by
    eq. (1) term by term: the K^T paths the algorithms avoid enumerating."""
    K, T = len(pi), x.shape[1]
    paths = np.array(list(itertools.product(range(K), repeat=T)))
    with np.errstate(divide="ignore"):
        log_pi, log_A, log_B = np.log(pi), np.log(A), np.log(B)
    log_joint = (log_pi[paths[:, 0]][None]
                 + log_A[paths[:, :-1], paths[:, 1:]].sum(axis=1)[None]
                 + log_B[paths[None], x[:, None]].sum(axis=2))
    return paths, log_joint


def logsumexp(a, axis):
    top = np.max(a, axis=axis, keepdims=True)
    top = np.where(np.isfinite(top), top, 0)
    with np.errstate(divide="ignore"):
        return np.squeeze(top, axis) + np.log(np.exp(a - top).sum(axis=axis))


def brute_posteriors(pi, A, B, x):
    """gamma (N, T, K), xi (N, T-1, K, K) and log p(x) (N,) by summing over the paths."""
    K = len(pi)
    paths, log_joint = brute_force(pi, A, B, x)
    log_p = logsumexp(log_joint, axis=1)
    with np.errstate(invalid="ignore"):     # -inf - -inf: a sequence of probability 0
        weight = np.exp(log_joint - log_p[:, None])                      # p(z | x), (N, P)
    onehot = np.eye(K)[paths]                                            # (P, T, K)
    gamma = np.einsum("np,ptk->ntk", weight, onehot)
    xi = np.einsum("np,pti,ptj->ntij", weight, onehot[:, :-1], onehot[:, 1:])
    return gamma, xi, log_p


@st.composite
def hmms_and_sequences(draw, max_states=3, max_symbols=4, max_length=5, max_sequences=3,
                       zeros=False):
    """A random HMM (pi and rows of A and B from Dirichlets of a drawn concentration; with
    zeros=True some entries set to 0, each row keeping one) and a batch of random symbol
    sequences (not drawn from the HMM: any sequence must work)."""
    K = draw(st.integers(1, max_states))
    M = draw(st.integers(1, max_symbols))
    T = draw(st.integers(1, max_length))
    N = draw(st.integers(1, max_sequences))
    g = np.random.default_rng(draw(st.integers(0, 2 ** 32 - 1)))
    alpha = draw(st.sampled_from([0.3, 1.0, 5.0]))
    pi, A, B = (g.dirichlet(np.full(K, alpha)), g.dirichlet(np.full(K, alpha), size=K),
                g.dirichlet(np.full(M, alpha), size=K))
    if zeros and draw(st.booleans()):
        params = []
        for p in (pi[None], A, B):
            keep = g.random(p.shape) < 0.6
            keep[np.arange(len(p)), g.integers(0, p.shape[1], len(p))] = True
            p = np.where(keep, p, 0)
            params.append(p / p.sum(axis=1, keepdims=True))
        pi, A, B = params[0][0], params[1], params[2]
    return pi, A, B, g.integers(0, M, size=(N, T))


# ---------------------------------------------------------------- forward, Viterbi, posteriors

@given(hmms_and_sequences(zeros=True))
def test_forward_algorithm_equals_the_sum_over_all_paths(case):
    """log p(x) of the scaled forward algorithm (3) and of the engine's log-space one (4)
    equal log sum_z p(x, z) over the K^T paths (-inf where every path is impossible);
    and at every t the scaled quantities are what they claim to be: alpha_hat_t(j) =
    p(z_t = j | x_{1:t}) and sum_{s <= t} log c_s = log p(x_{1:t})."""
    pi, A, B, x = case
    _, log_joint = brute_force(pi, A, B, x)
    expected = logsumexp(log_joint, axis=1)
    np.testing.assert_allclose(HMM(pi, A, B).log_prob(x), expected, rtol=1e-10, atol=1e-10)
    alpha_hat, log_c = forward_algorithm(pi, A, B, x)
    for t in range(x.shape[1]):
        paths, log_joint = brute_force(pi, A, B, x[:, :t + 1])
        log_prefix = logsumexp(log_joint, axis=1)
        np.testing.assert_allclose(log_c[:, :t + 1].sum(axis=1), log_prefix, rtol=1e-10,
                                   atol=1e-10)
        possible = np.isfinite(log_prefix)
        for j in range(len(pi)):    # p(z_t = j | x_{1:t}): the paths ending in j
            log_j = logsumexp(np.where(paths[:, t] == j, log_joint, -np.inf), axis=1)
            with np.errstate(invalid="ignore"):   # -inf - -inf where x_{1:t} is impossible
                filtered = np.exp(log_j - log_prefix)
            np.testing.assert_allclose(alpha_hat[possible, t, j], filtered[possible],
                                       atol=1e-10)
        assert not np.isnan(alpha_hat).any()
    if not (A == 0).any() and not (B == 0).any() and not (pi == 0).any():
        log_p = log_likelihood(*(tg.tensor(np.log(p)) for p in (pi, A, B)), x)
        np.testing.assert_allclose(log_p.numpy(), expected, rtol=1e-10, atol=1e-10)


@given(hmms_and_sequences(zeros=True))
def test_viterbi_equals_the_brute_force_argmax(case):
    """The Viterbi path attains max_z log p(x, z) over all K^T paths, and the value it
    reports is that maximum (ties between paths may pick either, so the path is checked
    by its value)."""
    pi, A, B, x = case
    paths, log_joint = brute_force(pi, A, B, x)
    path, log_max = viterbi(pi, A, B, x)
    np.testing.assert_allclose(log_max, log_joint.max(axis=1), rtol=1e-10, atol=1e-10)
    index = (path[:, None, :] == paths[None]).all(axis=2).argmax(axis=1)   # path's row
    np.testing.assert_allclose(log_joint[np.arange(len(x)), index], log_joint.max(axis=1),
                               rtol=1e-10, atol=1e-10)


def test_viterbi_differs_from_posterior_decoding_and_the_model_methods_agree():
    """A case where the two decodings differ (the most probable path against the most
    probable state at each t): both computed by brute force, and the HMM's methods give
    the same (one (T,) sequence in, no batch axis out)."""
    pi, A, B = [0.5, 0.5], [[0.1, 0.9], [0.2, 0.8]], [[0.8, 0.2], [0.2, 0.8]]
    x = np.array([0, 0, 0])
    hmm = HMM(pi, A, B)
    paths, log_joint = brute_force(*check_parameters(pi, A, B), x[None])
    gamma = brute_posteriors(*check_parameters(pi, A, B), x[None])[0][0]
    best = paths[log_joint[0].argmax()]
    path, log_max = hmm.viterbi(x)
    assert path.tolist() == best.tolist() and log_max == pytest.approx(log_joint[0].max())
    assert hmm.posterior_decode(x).tolist() == gamma.argmax(axis=1).tolist()
    assert path.tolist() == [0, 1, 0] and hmm.posterior_decode(x).tolist() == [0, 1, 1]


@given(hmms_and_sequences(zeros=True))
def test_posteriors_sum_to_one_and_equal_brute_force(case):
    """gamma_t(i) = p(z_t = i | x) and xi_t(i, j) = p(z_t = i, z_{t+1} = j | x), eqs. (6)
    and (7), equal the sums over all paths; gamma sums to 1 over i, xi to 1 over (i, j),
    and xi's margins are gamma at t and t + 1. Sequences of probability 0 are refused."""
    pi, A, B, x = case
    _, _, log_p = brute_posteriors(pi, A, B, x)
    if np.isneginf(log_p).any():
        with pytest.raises(ValueError, match="probability 0"):
            posteriors(pi, A, B, x)
        x = x[np.isfinite(log_p)]
        if len(x) == 0:
            return
    gamma_bf, xi_bf, log_p = brute_posteriors(pi, A, B, x)
    post = posteriors(pi, A, B, x)
    np.testing.assert_allclose(post.gamma, gamma_bf, atol=1e-10)
    np.testing.assert_allclose(post.xi, xi_bf, atol=1e-10)
    np.testing.assert_allclose(post.log_prob, log_p, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(post.gamma.sum(axis=2), 1.0, atol=1e-12)
    np.testing.assert_allclose(post.xi.sum(axis=(2, 3)), 1.0, atol=1e-12)
    np.testing.assert_allclose(post.xi.sum(axis=3), post.gamma[:, :-1], atol=1e-12)
    np.testing.assert_allclose(post.xi.sum(axis=2), post.gamma[:, 1:], atol=1e-12)


@given(hmms_and_sequences())
def test_expected_counts_and_the_m_step_equal_brute_force(case):
    """The E-step's counts (9) are the path-weighted counts of starts, transitions and
    emissions, and the M-step (10) normalises them row by row."""
    pi, A, B, x = case
    gamma, xi, _ = brute_posteriors(pi, A, B, x)
    counts = expected_counts(pi, A, B, x)
    np.testing.assert_allclose(counts.initial, gamma[:, 0].sum(axis=0), atol=1e-10)
    np.testing.assert_allclose(counts.transitions, xi.sum(axis=(0, 1)), atol=1e-10)
    emissions = np.einsum("ntk,ntm->km", gamma, np.eye(B.shape[1])[x])
    np.testing.assert_allclose(counts.emissions, emissions, atol=1e-10)
    new_pi, new_A, new_B = m_step(counts, pi, A, B)
    np.testing.assert_allclose(new_pi, gamma[:, 0].mean(axis=0), atol=1e-10)
    np.testing.assert_allclose(new_B, emissions / emissions.sum(axis=1, keepdims=True),
                               atol=1e-10)
    visited = xi.sum(axis=(0, 1, 3)) > 1e-300     # states left at some t < T
    transitions = xi.sum(axis=(0, 1))
    np.testing.assert_allclose(new_A[visited], (transitions / transitions.sum(
        axis=1, keepdims=True).clip(1e-300))[visited], atol=1e-10)
    np.testing.assert_allclose(new_A[~visited], A[~visited])   # T = 1: nothing to learn


@given(hmms_and_sequences(max_states=4, max_symbols=6, max_length=30, max_sequences=5))
def test_baum_welch_never_decreases_the_likelihood(case):
    """Fifteen EM steps from a random HMM on random sequences: sum_n log p(x^(n)) never
    falls from one step to the next (up to rounding), and the parameters stay
    stochastic."""
    pi, A, B, x = case
    hmm = HMM(pi, A, B)
    history = hmm.fit(x, iterations=15)
    assert len(history) == 16
    for before, after in zip(history, history[1:]):
        assert after >= before - 1e-9 * max(1.0, abs(before)), history
    check_parameters(*hmm.parameters_numpy())
    assert history[-1] == pytest.approx(hmm.log_prob(x).sum(), rel=1e-12)


def test_the_likelihood_of_thousands_of_rolls_does_not_underflow():
    """2,000 rolls: p(x) is about 10^-1500, far below float64's smallest number (about
    10^-308), yet the scaled forward algorithm and the engine's log-space one agree on
    log p(x), and the posteriors are finite and normalised."""
    z, x = casino().sample(2, 2000, np.random.default_rng(0))
    log_p = casino().log_prob(x)
    assert np.all(log_p < -3000) and np.all(np.isfinite(log_p))
    engine = log_likelihood(*(tg.tensor(np.log(p)) for p in casino().parameters_numpy()), x)
    np.testing.assert_allclose(engine.numpy(), log_p, rtol=1e-10)
    gamma = casino().forward_backward(x).gamma
    assert np.isfinite(gamma).all() and np.allclose(gamma.sum(axis=2), 1)


# ---------------------------------------------------------- forward-backward is backpropagation

@given(hmms_and_sequences(max_length=6))
def test_expected_counts_are_the_engines_gradient_of_the_log_likelihood(case):
    """Eisner (2016): backpropagation through the forward algorithm is the backward
    algorithm. With the log-parameters free (not renormalised), the engine's gradient of
    sum_n log p(x^(n)) is, exactly, eq. (11):
        d/d log pi_i   = sum_n gamma^n_1(i)                  (expected starts in i)
        d/d log A_ij   = sum_n sum_t xi^n_t(i, j)            (expected i -> j transitions)
        d/d log B_i(k) = sum_n sum_t gamma^n_t(i) [x_t = k]  (expected emissions of k by i)
    and with logits theta through log_softmax (rows), eq. (12): the counts minus each
    row's total times the probabilities, e.g. E[n_ij] - (sum_j' E[n_ij']) A_ij."""
    pi, A, B, x = case
    counts = expected_counts(pi, A, B, x)
    log_params = [tg.tensor(np.log(p), requires_grad=True) for p in (pi, A, B)]
    log_likelihood(*log_params, x).sum().backward()
    for param, count in zip(log_params, counts[:3]):
        np.testing.assert_allclose(gradient(param, x), count, rtol=1e-9, atol=1e-12)

    logits = [tg.tensor(np.log(p) + shift, requires_grad=True)
              for p, shift in ((pi, 0.7), (A, -1.3), (B, 2.0))]   # any shift: same softmax
    log_likelihood(*(tg.log_softmax(theta, axis=-1) for theta in logits), x).sum().backward()
    for theta, count, p in zip(logits, counts[:3], (pi, A, B)):
        expected = count - count.sum(axis=-1, keepdims=True) * p
        np.testing.assert_allclose(gradient(theta, x), expected, rtol=1e-9, atol=1e-10)


def gradient(param, x):
    """param's float64 gradient; log A is not used when T = 1, and gets none (0)."""
    if param.grad is None:
        assert x.shape[1] == 1 and param.ndim == 2 and param.shape[0] == param.shape[1]
        return np.zeros(param.shape)
    assert param.grad.dtype == np.float64
    return param.grad.numpy()


# --------------------------------------------------------------------------- textbook values

def test_the_textbook_healthy_fever_example():
    """The two-state example of Wikipedia's "Viterbi algorithm" article (a doctor's
    patient, states Healthy and Fever; observations normal, cold, dizzy): pi = (0.6,
    0.4), A = [[0.7, 0.3], [0.4, 0.6]], B = [[0.5, 0.4, 0.1], [0.1, 0.3, 0.6]], seen
    normal, cold, dizzy. P(observations) = 0.03628 and the Viterbi path is Healthy,
    Healthy, Fever with p(x, z*) = 0.01512 (0.6 * 0.5 * 0.7 * 0.4 * 0.3 * 0.6), both
    checked by hand over the 8 paths before this test was written.

    The issue that asked for this test called it Jurafsky & Martin's ice-cream example
    (hot/cold days, 1-3 ice creams) and the path "H, H, F": the numbers 0.03628 and
    0.01512 and the path H, H, F (Healthy, Healthy, Fever) are this example's. The
    ice-cream model (pi = (0.8, 0.2), A = [[0.6, 0.4], [0.5, 0.5]], P(1|H) = 0.2,
    P(2|H) = 0.4, P(3|H) = 0.4, P(1|C) = 0.5, P(2|C) = 0.4, P(3|C) = 0.1, seeing 3 1 3)
    gives P = 0.028562 and the path H, C, H with 0.0128, checked at the end."""
    HEALTHY, FEVER = 0, 1
    normal, cold, dizzy = 0, 1, 2
    doctor = HMM(pi=[0.6, 0.4], A=[[0.7, 0.3], [0.4, 0.6]],
                 B=[[0.5, 0.4, 0.1], [0.1, 0.3, 0.6]])
    x = np.array([normal, cold, dizzy])
    assert math.exp(doctor.log_prob(x)) == pytest.approx(0.03628, rel=1e-12)
    path, log_p = doctor.viterbi(x)
    assert path.tolist() == [HEALTHY, HEALTHY, FEVER]
    assert math.exp(log_p) == pytest.approx(0.01512, rel=1e-12)
    engine = log_likelihood(*(tg.tensor(np.log(p)) for p in doctor.parameters_numpy()), x)
    assert math.exp(engine.item()) == pytest.approx(0.03628, rel=1e-12)

    HOT, COLD = 0, 1
    ice_cream = HMM(pi=[0.8, 0.2], A=[[0.6, 0.4], [0.5, 0.5]],
                    B=[[0.2, 0.4, 0.4], [0.5, 0.4, 0.1]])
    x = np.array([3, 1, 3]) - 1
    assert math.exp(ice_cream.log_prob(x)) == pytest.approx(0.028562, rel=1e-12)
    path, log_p = ice_cream.viterbi(x)
    assert path.tolist() == [HOT, COLD, HOT] and math.exp(log_p) == pytest.approx(0.0128)


def test_the_casino_has_durbin_et_al_s_parameters():
    """Durbin et al. 1998, section 3.2: P(F -> L) = 0.05, P(L -> F) = 0.1, the fair die
    uniform, the loaded die a six with 1/2 and each other face with 1/10."""
    pi, A, B = casino().parameters_numpy()
    assert A[FAIR, LOADED] == 0.05 and A[LOADED, FAIR] == 0.1
    np.testing.assert_allclose(B[FAIR], np.full(6, 1 / 6))
    np.testing.assert_allclose(B[LOADED], [0.1] * 5 + [0.5])
    np.testing.assert_allclose(pi, [0.5, 0.5])


# --------------------------------------------------------------------------- sampling

def test_sampling_frequencies_converge_to_the_models_marginals():
    """40,000 sequences of 4 steps from a 3-state HMM: the frequencies of z_t, of the
    pairs (z_t, z_{t+1}) and of x_t match the marginals p(z_t) = pi A^{t-1}, p(z_t,
    z_{t+1}) = p(z_t)_i A_ij and p(x_t) = p(z_t) B, within 4.5 standard errors."""
    pi = np.array([0.2, 0.5, 0.3])
    A = np.array([[0.1, 0.6, 0.3], [0.3, 0.3, 0.4], [0.8, 0.1, 0.1]])
    B = np.array([[0.7, 0.2, 0.1, 0.0], [0.1, 0.1, 0.4, 0.4], [0.25, 0.25, 0.25, 0.25]])
    n = 40_000
    z, x = HMM(pi, A, B).sample(n, 4, np.random.default_rng(1))
    assert z.shape == x.shape == (n, 4) and z.dtype == x.dtype == np.int64

    def close(frequency, p):
        assert np.all(np.abs(frequency - p) <= 4.5 * np.sqrt(p * (1 - p) / n) + 1e-12), \
            (frequency, p)

    p_z = pi
    for t in range(4):
        close(np.bincount(z[:, t], minlength=3) / n, p_z)
        close(np.bincount(x[:, t], minlength=4) / n, p_z @ B)
        if t < 3:
            pairs = np.bincount(3 * z[:, t] + z[:, t + 1], minlength=9).reshape(3, 3) / n
            close(pairs, p_z[:, None] * A)
        p_z = p_z @ A
    assert not (x[z == 0] == 3).any()    # B[0, 3] = 0 is never emitted


def test_sampling_is_reproducible_and_refuses_bad_sizes():
    a = casino().sample(3, 10, np.random.default_rng(5))
    b = casino().sample(3, 10, np.random.default_rng(5))
    assert all((u == v).all() for u, v in zip(a, b))
    for n, T in ((0, 5), (2, 0), (2.5, 3)):
        with pytest.raises(ValueError, match="positive integer"):
            casino().sample(n, T)


# --------------------------------------------------------------------------- errors

@pytest.mark.parametrize("pi, A, B, message", [
    ([0.5, 0.6], [[1, 0], [0, 1]], [[1.0], [1.0]], r"pi must sum to 1, but it sums to 1.1"),
    ([0.5, 0.5], [[0.9, 0.2], [0, 1]], [[1.0], [1.0]],
     r"A's rows must sum to 1, but they sum to \[1.1, 1.0\]"),
    ([0.5, 0.5], [[1, 0], [0, 1]], [[0.5, 0.4], [1.0, 0]],
     r"B's rows must sum to 1, but they sum to \[0.9, 1.0\]"),
    ([0.5, 0.5], [[1.5, -0.5], [0, 1]], [[1.0], [1.0]], "A holds negative probabilities"),
    ([0.5, 0.5], [[np.nan, 1], [0, 1]], [[1.0], [1.0]], "A holds non-finite values"),
    ([0.5, 0.5], [[1.0]], [[1.0], [1.0]], r"A must be the \(2, 2\) transition matrix"),
    ([0.5, 0.5], [[1, 0], [0, 1]], [[1.0]], r"B must be a \(2, M\) emission matrix"),
    ([[0.5, 0.5]], [[1, 0], [0, 1]], [[1.0], [1.0]], r"pi must be a vector"),
    ([], [[1.0]], [[1.0]], r"pi must be a vector of K >= 1"),
])
def test_parameters_that_are_not_an_hmms_are_refused(pi, A, B, message):
    with pytest.raises(ValueError, match=message):
        HMM(pi, A, B)


def test_nearly_stochastic_rows_are_accepted_and_renormalised():
    hmm = HMM([0.5, 0.5 + 1e-9], [[1, 0], [0, 1]], [[1.0], [1.0]])
    assert hmm.parameters_numpy()[0].sum() == pytest.approx(1, abs=1e-15)
    with pytest.raises(TypeError, match="pi must be an array"):
        HMM("abc", [[1.0]], [[1.0]])


@pytest.mark.parametrize("x, error, message", [
    (np.array([0, 6, 1]), ValueError, r"symbols 0..5 \(B has 6 columns\), got 6"),
    (np.array([[0, -1]]), ValueError, "got -1"),
    (np.array([0.0, 1.0]), TypeError, "must hold integer symbols 0..5, got dtype float64"),
    (np.zeros((2, 2, 2), np.int64), ValueError, r"one sequence \(T,\) or a batch \(N, T\)"),
    (np.zeros((2, 0), np.int64), ValueError, "at least one sequence of at least one"),
    ([[0, 1, 2], [3, 4]], ValueError, r"share one length .* got lengths \[2, 3\]"),
])
def test_bad_observations_are_refused(x, error, message):
    hmm = casino()
    for method in (hmm.log_prob, hmm.viterbi, hmm.forward_backward, hmm.baum_welch_step):
        with pytest.raises(error, match=message):
            method(x)
    params = [tg.tensor(np.log(p)) for p in hmm.parameters_numpy()]
    with pytest.raises(error, match=message):
        log_likelihood(*params, x)


def test_a_list_of_equal_sequences_is_a_batch_and_one_sequence_has_no_batch_axis():
    hmm = casino()
    x = [[0, 5, 5, 1], [2, 2, 3, 5]]
    np.testing.assert_allclose(hmm.log_prob(x), [hmm.log_prob(np.array(s)) for s in x])
    assert isinstance(hmm.log_prob(x[0]), float)
    post = hmm.forward_backward(x[0])
    assert post.gamma.shape == (4, 2) and post.xi.shape == (3, 2, 2)


def test_engine_inputs_are_checked():
    log_pi, log_A, log_B = (tg.tensor(np.log(p)) for p in casino().parameters_numpy())
    with pytest.raises(TypeError, match="log_A must be a tinygen Tensor"):
        log_likelihood(log_pi, np.log(casino().parameters_numpy()[1]), log_B, [0])
    with pytest.raises(ValueError, match=r"log_A \(K, K\)"):
        log_likelihood(log_pi, log_B, log_B, [0])


def test_an_impossible_sequence_has_log_probability_minus_infinity_not_nan():
    """A die that never shows a six, asked about a six: log p = -inf from the forward
    algorithm and from Viterbi; the posteriors and EM refuse it by name."""
    hmm = HMM([1.0], [[1.0]], [[0.5, 0.5, 0, 0, 0, 0]])
    x = np.array([[0, 1, 5, 0], [0, 0, 1, 1]])
    log_p = hmm.log_prob(x)
    assert log_p[0] == -np.inf and np.isfinite(log_p[1])
    alpha_hat, log_c = forward_algorithm(*hmm.parameters_numpy(), x)
    assert not np.isnan(alpha_hat).any() and not np.isnan(log_c).any()
    assert not np.isnan(backward_algorithm(*hmm.parameters_numpy()[1:], x, log_c)).any()
    assert hmm.viterbi(x)[1][0] == -np.inf
    for method in (hmm.forward_backward, hmm.baum_welch_step):
        with pytest.raises(ValueError, match=r"sequence\(s\) \[0\] of x have probability 0"):
            method(x)


def test_permuting_states_keeps_the_distribution_and_align_states_undoes_it():
    hmm = HMM.random(3, 4, np.random.default_rng(0))
    x = hmm.sample(5, 7, np.random.default_rng(1))[1]
    shuffled = hmm.permute([2, 0, 1])
    np.testing.assert_allclose(shuffled.log_prob(x), hmm.log_prob(x), rtol=1e-12)
    back = shuffled.permute(align_states(shuffled, hmm))
    for p, q in zip(back.parameters_numpy(), hmm.parameters_numpy()):
        np.testing.assert_allclose(p, q)
    with pytest.raises(ValueError, match="permutation of 0..2"):
        hmm.permute([0, 0, 1])
    with pytest.raises(ValueError, match="differ in size"):
        align_states(hmm, casino())


def test_a_checkpoint_of_the_model_holds_its_parameters(tmp_path):
    hmm = HMM.random(2, 6, np.random.default_rng(3))
    tg.save(hmm.state_dict(), str(tmp_path / "hmm.npz"))
    other = HMM.random(2, 6, np.random.default_rng(4))
    other.load_state_dict(tg.load(str(tmp_path / "hmm.npz")))
    for p, q in zip(other.parameters_numpy(), hmm.parameters_numpy()):
        assert p.dtype == np.float64 and (p == q).all()


# --------------------------------------------------------------------------- learning

def test_baum_welch_learns_the_casino_back_from_its_rolls():
    """60,000 rolls (200 sequences of 300) from the casino; Baum-Welch from the best of
    5 random starts (10 iterations each), then 150 iterations: after renaming the states
    (label switching, ``align_states``), A and B lie within 0.03 of the truth, the
    training likelihood is at least the true parameters' (EM found the maximum, not a
    plateau), and the learned model decodes held-out rolls as well as the true one,
    within 2 points. (Measured: A within 0.005, B within 0.006, the training
    log-likelihood 6.6 nats above the true parameters'; posterior decoding 0.829
    against 0.829.)"""
    true = casino()
    rng = np.random.default_rng(0)
    _, x = true.sample(200, 300, rng)
    model, _ = best_of_restarts(x, 2, 6, restarts=5, iterations=10, generator=rng)
    model.fit(x, iterations=150)
    learned = model.permute(align_states(model, true))
    _, A, B = learned.parameters_numpy()
    _, A_true, B_true = true.parameters_numpy()
    assert np.abs(A - A_true).max() < 0.03 and np.abs(B - B_true).max() < 0.03
    assert learned.log_prob(x).sum() >= true.log_prob(x).sum()
    z_test, x_test = true.sample(50, 300, rng)
    accuracy = (learned.posterior_decode(x_test) == z_test).mean()
    assert accuracy >= (true.posterior_decode(x_test) == z_test).mean() - 0.02


# --------------------------------------------------------------------------- the recipe

def experiment(**config):
    cls = get_experiment("hmm")
    return cls({**cls.defaults, "model": "hmm", "dataset": "casino", "seed": 0,
                "device": "cpu", "train_sequences": 20, "length": 100, "eval_sequences": 10,
                "restarts": 3, "restart_iterations": 5, **config})


def test_the_recipe_is_registered_for_the_casino():
    assert REGISTRY["hmm"].datasets == ("casino",)
    assert get_experiment("hmm").name == "hmm"


@pytest.mark.parametrize("option, value, message", [
    ("lr", 0.1, "--lr 0.1: Baum-Welch .* no learning rate"),
    ("batch_size", 10, "--batch-size 10: Baum-Welch .* no batch size"),
    ("train_sequences", 0, "--train-sequences 0: must be positive"),
    ("restart_iterations", -1, "--restart-iterations -1: must be 0 or more"),
    ("init_concentration", 0.0, "--init-concentration 0.0: must be positive"),
    ("dataset", "mnist", "knows only 'casino'"),
])
def test_recipe_options_are_checked(option, value, message):
    with pytest.raises(ConfigError, match=message):
        experiment(**{option: value})


def test_the_recipe_trains_evaluates_and_draws(tmp_path):
    """20 EM steps on 20 x 100 rolls: the logged training NLL never rises, evaluate
    reports the learned and true models side by side on held-out rolls, and the casino
    picture is drawn; the recipe's data are the same for the same seed."""
    exp = experiment()
    fit(exp, str(tmp_path), steps=20, progress=False)
    nll = [row["train_nll_nats"] for row in read_log(str(tmp_path))]
    assert len(nll) == 20
    assert all(b <= a + 1e-9 for a, b in zip(nll, nll[1:]))
    m = exp.evaluate()
    assert m["nll_estimator"] == "exact" and m["eval_sequences"] == 10
    assert m["sequence_length"] == 100
    # the held-out NLL of the true casino, by hand
    z, x = exp.sequences("test")
    assert m["true_nll_nats"] == pytest.approx(-casino().log_prob(x).mean())
    assert m["true_viterbi_accuracy"] == pytest.approx((casino().viterbi(x)[0] == z).mean())
    for key in ("viterbi_accuracy", "posterior_accuracy", "true_posterior_accuracy"):
        assert 0.5 < m[key] <= 1.0, (key, m[key])
    # a learned model cannot beat the truth by much on held-out rolls: the true model
    # minimises the expected NLL
    assert m["nll_nats"] > m["true_nll_nats"] - 3 * m["true_nll_standard_error"]
    assert m["parameters"]["true"]["A"] == [[0.95, 0.05], [0.1, 0.9]]
    assert set(m["parameter_error"]) == {"pi", "A", "B"}
    assert sorted(m["state_order"]) == [0, 1]
    assert (tmp_path / "casino.png").stat().st_size > 10_000
    again = experiment()
    assert (again.sequences("train")[1] == exp.sequences("train")[1]).all()
    assert not (experiment(seed=1).sequences("train")[1] == exp.sequences("train")[1]).all()


def test_the_command_trains_and_evaluates_a_run(tmp_path, capsys):
    out = str(tmp_path / "run")
    argv = ["train", "hmm", "--dataset", "casino", "--steps", "5", "--train-sequences", "8",
            "--length", "40", "--eval-sequences", "6", "--restarts", "2", "--out", out]
    assert main(argv) == 0
    assert main(["eval", out]) == 0
    with open(os.path.join(out, "metrics.json")) as f:
        metrics = json.load(f)
    assert metrics["eval_sequences"] == 6 and "true_nll_nats" in metrics
    assert os.path.isfile(os.path.join(out, "casino.png"))
    # Baum-Welch has no learning rate and no batches: the command has no such options
    with pytest.raises(SystemExit) as stop:
        main(["train", "hmm", "--lr", "0.1", "--out", str(tmp_path / "x")])
    assert stop.value.code == 2
    assert "unrecognized arguments: --lr 0.1" in capsys.readouterr().err
    assert main(["sample", out]) == 2
    assert "sequences of rolls, not images" in capsys.readouterr().err


def test_a_resumed_run_ends_where_an_uninterrupted_one_does(tmp_path):
    """6 steps at once against 3, then 3 more resumed from the checkpoint: the same
    parameters (the random starts are drawn once, in the first step, from the generator
    fit seeds; the checkpoint holds pi, A, B as the module's buffers)."""
    whole = experiment()
    fit(whole, str(tmp_path / "whole"), steps=6, progress=False)
    part = experiment()
    fit(part, str(tmp_path / "parts"), steps=3, progress=False)
    resumed = experiment()
    fit(resumed, str(tmp_path / "parts"), steps=6, progress=False)
    for p, q in zip(resumed.model.parameters_numpy(), whole.model.parameters_numpy()):
        np.testing.assert_array_equal(p, q)
    assert len(read_log(str(tmp_path / "parts"))) == 6


def test_the_recipe_runs_with_its_buffers_on_every_device(device, tmp_path):
    """With --device cuda the parameters live on the GPU (here the NumPy stand-in for
    CuPy where CuPy is missing, which refuses silent conversions) and the algorithms
    read and write them there."""
    exp = experiment(device=device, train_sequences=5, length=30, eval_sequences=4)
    fit(exp, str(tmp_path), steps=3, progress=False)
    assert exp.model.A.device == device
    m = exp.evaluate()
    assert np.isfinite(m["nll_nats"]) and m["eval_sequences"] == 4
