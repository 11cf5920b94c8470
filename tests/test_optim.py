"""tinygen.optim: each update rule against its equations written out in float64 NumPy,
state_dict resuming, parameter groups, gradient clipping, schedules, the EMA, errors,
and two small learning problems."""
import copy
import math

import numpy as np
import pytest

import tinygen as tg
from tinygen.autograd import Tensor
from tinygen.optim import (EMA, SGD, Adam, AdamW, CosineAnnealingLR, LambdaLR, LinearWarmup,
                           RMSprop, clip_grad_norm_, warmup_cosine)

from conftest import CUDA_SKIP_REASON

THETA0 = np.array([0.5, -1.5, 2.0, 0.0])
# A fixed gradient for each step, independent of theta (zero entries and sign changes
# included), so the reference below is the update rule alone.
GRADS = [np.array([1.0, -0.5, 0.25, 0.0]),
         np.array([-2.0, 0.3, 0.5, 1.0]),
         np.array([0.1, -0.7, -1.5, 0.4]),
         np.array([0.6, 0.2, 0.0, -0.9])]


host = tg.backend.to_numpy  # any array as a NumPy array, for comparisons


def param(values, device, dtype=np.float64):
    return tg.tensor(np.asarray(values, dtype=dtype), requires_grad=True, device=device)


def set_grad(p, g):
    p.grad = tg.tensor(np.asarray(g, dtype=p.dtype), device=p.device)


def run(opt, params, grads_per_param):
    """Step ``opt`` once per gradient: grads_per_param[k][t] is param k's gradient at step t."""
    for t in range(len(grads_per_param[0])):
        for p, grads in zip(params, grads_per_param):
            set_grad(p, grads[t])
        opt.step()


# --------------------------------------------------------------------------- references,
# written from the update equations, in float64, one line per equation

def sgd_reference(theta, grads, lr, momentum=0.0, dampening=0.0, nesterov=False,
                  weight_decay=0.0):
    theta, b = theta.astype(np.float64), None
    for g in grads:
        g = g + weight_decay * theta
        if momentum != 0:
            b = g.copy() if b is None else momentum * b + (1 - dampening) * g
            d = g + momentum * b if nesterov else b
        else:
            d = g
        theta = theta - lr * d
    return theta


def adam_reference(theta, grads, lr, betas, eps, weight_decay=0.0, decoupled=False):
    beta1, beta2 = betas
    theta, m, v = theta.astype(np.float64), 0.0, 0.0
    for t, g in enumerate(grads, start=1):
        if decoupled:
            theta = theta - lr * weight_decay * theta
        else:
            g = g + weight_decay * theta
        m = beta1 * m + (1 - beta1) * g
        v = beta2 * v + (1 - beta2) * g ** 2
        m_hat = m / (1 - beta1 ** t)
        v_hat = v / (1 - beta2 ** t)
        theta = theta - lr * m_hat / (np.sqrt(v_hat) + eps)
    return theta


def rmsprop_reference(theta, grads, lr, alpha, eps, weight_decay=0.0):
    theta, v = theta.astype(np.float64), 0.0
    for g in grads:
        g = g + weight_decay * theta
        v = alpha * v + (1 - alpha) * g ** 2
        theta = theta - lr * g / (np.sqrt(v) + eps)
    return theta


# Hyperparameters large enough that every term of each rule shows in the result
# (eps comparable to sqrt(v_hat), strong decay, few steps so the bias corrections matter).
ADAM_HP = dict(lr=0.1, betas=(0.8, 0.9), eps=0.05)
# The same for RMSprop: alpha small enough that the average moves visibly at every step.
RMSPROP_HP = dict(lr=0.1, alpha=0.8, eps=0.05)

SGD_CASES = {
    "plain": dict(lr=0.1),
    "weight_decay": dict(lr=0.1, weight_decay=0.3),
    "momentum": dict(lr=0.1, momentum=0.9),
    "momentum_dampening_decay": dict(lr=0.05, momentum=0.8, dampening=0.3, weight_decay=0.2),
    "nesterov_decay": dict(lr=0.1, momentum=0.7, nesterov=True, weight_decay=0.1),
}


# --------------------------------------------------------------------------- update rules

@pytest.mark.parametrize("case", list(SGD_CASES))
def test_sgd_matches_its_equations(device, case):
    hp = SGD_CASES[case]
    p = param(THETA0, device)
    opt = SGD([p], **hp)
    for k in range(1, len(GRADS) + 1):
        set_grad(p, GRADS[k - 1])
        opt.step()
        np.testing.assert_allclose(p.numpy(), sgd_reference(THETA0, GRADS[:k], **hp),
                                   rtol=1e-12, atol=1e-14)


def test_sgd_first_momentum_step_is_the_plain_gradient(device):
    # b_1 = g_1 (no dampening on the first step), so step one is plain SGD.
    p = param(THETA0, device)
    opt = SGD([p], lr=0.1, momentum=0.9, dampening=0.5)
    set_grad(p, GRADS[0])
    opt.step()
    np.testing.assert_allclose(p.numpy(), THETA0 - 0.1 * GRADS[0], rtol=1e-12)
    np.testing.assert_allclose(host(opt.state[p]["momentum_buffer"]), GRADS[0], rtol=1e-12)


@pytest.mark.parametrize("weight_decay", [0.0, 0.3])
def test_adam_matches_its_equations(device, weight_decay):
    p = param(THETA0, device)
    opt = Adam([p], weight_decay=weight_decay, **ADAM_HP)
    for k in range(1, len(GRADS) + 1):
        set_grad(p, GRADS[k - 1])
        opt.step()
        expected = adam_reference(THETA0, GRADS[:k], weight_decay=weight_decay, **ADAM_HP)
        np.testing.assert_allclose(p.numpy(), expected, rtol=1e-12, atol=1e-14)
    assert opt.state[p]["step"] == len(GRADS)


@pytest.mark.parametrize("weight_decay", [0.0, 0.3])
def test_rmsprop_matches_its_equations(device, weight_decay):
    p = param(THETA0, device)
    opt = RMSprop([p], weight_decay=weight_decay, **RMSPROP_HP)
    for k in range(1, len(GRADS) + 1):
        set_grad(p, GRADS[k - 1])
        opt.step()
        expected = rmsprop_reference(THETA0, GRADS[:k], weight_decay=weight_decay,
                                     **RMSPROP_HP)
        np.testing.assert_allclose(p.numpy(), expected, rtol=1e-12, atol=1e-14)
    # the state is v_t itself, the running average of the squared (decayed) gradients
    v, theta = np.zeros_like(THETA0), THETA0.copy()
    for g in GRADS:
        g = g + weight_decay * theta
        v = RMSPROP_HP["alpha"] * v + (1 - RMSPROP_HP["alpha"]) * g ** 2
        theta = theta - RMSPROP_HP["lr"] * g / (np.sqrt(v) + RMSPROP_HP["eps"])
    np.testing.assert_allclose(host(opt.state[p]["square_avg"]), v, rtol=1e-12, atol=1e-15)


def test_rmsprop_has_no_bias_correction(device):
    # PyTorch's RMSprop starts from v_0 = 0 and does not correct for it (unlike Adam): the
    # first step is lr g / (sqrt(1 - alpha) |g| + eps), 10 lr per coordinate at alpha 0.99.
    p = param(THETA0, device)
    opt = RMSprop([p], lr=0.01, alpha=0.99, eps=1e-12)
    set_grad(p, GRADS[0])
    opt.step()
    expected = THETA0 - 0.01 * np.sign(GRADS[0]) / np.sqrt(0.01)
    np.testing.assert_allclose(p.numpy(), expected, rtol=1e-9, atol=1e-12)


def test_rmsprop_with_alpha_zero_is_sign_descent(device):
    # alpha = 0: v_t = g_t^2, so each coordinate moves by lr sign(g_t) (0 where g_t = 0).
    p = param(THETA0, device)
    opt = RMSprop([p], lr=0.1, alpha=0.0, eps=1e-12)
    theta = THETA0.copy()
    for g in GRADS:
        set_grad(p, g)
        opt.step()
        theta = theta - 0.1 * np.sign(g)
        np.testing.assert_allclose(p.numpy(), theta, rtol=1e-9, atol=1e-12)


def test_adamw_matches_its_equations(device):
    p = param(THETA0, device)
    opt = AdamW([p], weight_decay=0.3, **ADAM_HP)
    for k in range(1, len(GRADS) + 1):
        set_grad(p, GRADS[k - 1])
        opt.step()
        expected = adam_reference(THETA0, GRADS[:k], weight_decay=0.3, decoupled=True, **ADAM_HP)
        np.testing.assert_allclose(p.numpy(), expected, rtol=1e-12, atol=1e-14)


def test_adam_and_adamw_differ_exactly_by_decoupled_decay(device):
    lr, wd = ADAM_HP["lr"], 0.3
    plain, adamw, adam_l2 = (param(THETA0, device) for _ in range(3))
    opts = [Adam([plain], **ADAM_HP), AdamW([adamw], weight_decay=wd, **ADAM_HP),
            Adam([adam_l2], weight_decay=wd, **ADAM_HP)]
    for p in (plain, adamw, adam_l2):
        set_grad(p, GRADS[0])
    for opt in opts:
        opt.step()
    # One step from the same theta_0: AdamW = Adam without decay - lr lambda theta_0.
    np.testing.assert_allclose(adamw.numpy() - plain.numpy(), -lr * wd * THETA0,
                               rtol=1e-12, atol=1e-15)
    # Adam's L2 term goes through the adaptive scaling instead, so it is not that.
    assert not np.allclose(adam_l2.numpy() - plain.numpy(), -lr * wd * THETA0, atol=1e-3)

    for g in GRADS[1:]:
        for p in (plain, adamw, adam_l2):
            set_grad(p, g)
        for opt in opts:
            opt.step()
    # The moments of AdamW see the loss gradient only; those of Adam + L2 see the decay.
    for name in ("exp_avg", "exp_avg_sq"):
        reference = host(opts[0].state[plain][name])
        np.testing.assert_array_equal(host(opts[1].state[adamw][name]), reference)
        assert not np.allclose(host(opts[2].state[adam_l2][name]), reference)


@pytest.mark.parametrize("make", [
    lambda ps: SGD(ps, lr=np.float64(0.1), momentum=np.float64(0.9), dampening=0.1,
                   weight_decay=np.float64(0.01)),
    lambda ps: SGD(ps, lr=0.1, momentum=0.9, nesterov=True, weight_decay=0.01),
    lambda ps: Adam(ps, lr=np.float64(0.01), betas=(np.float64(0.9), 0.99),
                    weight_decay=np.float64(0.1)),
    lambda ps: AdamW(ps, lr=0.01, eps=np.float64(1e-6)),
    lambda ps: RMSprop(ps, lr=np.float64(0.01), alpha=np.float64(0.9), eps=np.float64(1e-6),
                       weight_decay=np.float64(0.1)),
], ids=["sgd", "sgd_nesterov", "adam_l2", "adamw", "rmsprop"])
def test_float32_parameters_and_state_stay_float32(device, make):
    # Hyperparameters given as NumPy float64 scalars must not promote the arrays.
    p = param(THETA0, device, dtype=np.float32)
    opt = make([p])
    before = p.data
    run(opt, [p], [[g.astype(np.float32) for g in GRADS]])
    assert p.data is before and p.dtype == np.float32
    for value in opt.state[p].values():
        if hasattr(value, "dtype"):
            assert value.dtype == np.float32
    # and the float32 result is the float64 one, to float32 precision
    p64 = param(THETA0, device)
    run(make([p64]), [p64], [GRADS])
    np.testing.assert_allclose(p.numpy(), p64.numpy(), rtol=2e-6, atol=1e-6)


@pytest.mark.parametrize("make", [
    lambda ps: SGD(ps, lr=0.1, momentum=0.9, weight_decay=0.1),
    lambda ps: SGD(ps, lr=0.1, momentum=0.9, nesterov=True),
    lambda ps: Adam(ps, lr=0.1, weight_decay=0.1),
    lambda ps: AdamW(ps, lr=0.1),
    lambda ps: RMSprop(ps, lr=0.1, weight_decay=0.1),
], ids=["sgd", "sgd_nesterov", "adam", "adamw", "rmsprop"])
def test_gradients_are_never_written_to(device, make):
    xp = tg.get_array_module(param([0.0], device))
    a, b = param(THETA0, device), param(THETA0, device)
    opt = make([a, b])
    for t in range(3):
        shared = xp.asarray(GRADS[t]) if device == "cuda" else GRADS[t].copy()
        a.grad = Tensor(shared)       # one gradient array shared by two tensors
        b.grad = Tensor(shared)
        opt.step()
        np.testing.assert_array_equal(host(shared), GRADS[t])
    if device == "cpu":  # a read-only broadcast view, as the engine makes for sums
        ro = np.broadcast_to(np.float64(0.5), THETA0.shape)
        a.grad = b.grad = Tensor(ro)
        opt.step()
        opt.step()
        assert (ro == 0.5).all()


@pytest.mark.parametrize("make", [
    lambda ps: SGD(ps, lr=np.float64(0.1), momentum=np.float64(0.9)),
    lambda ps: Adam(ps, lr=np.float64(0.1), betas=(np.float64(0.9), np.float64(0.99))),
    lambda ps: AdamW(ps, lr=np.float64(0.1), weight_decay=np.float64(0.1)),
    lambda ps: RMSprop(ps, lr=np.float64(0.1), alpha=np.float64(0.9)),
    lambda ps: EMA(ps, decay=np.float64(0.9)),
], ids=["sgd", "adam", "adamw", "rmsprop", "ema"])
def test_a_step_allocates_at_most_one_float32_scratch_array(make):
    # Measured with tracemalloc, which sees NumPy's buffers: a float64 temporary (8 bytes
    # per element) or a second full-size temporary would exceed the bound.
    tracemalloc = pytest.importorskip("tracemalloc")
    n = 1 << 20
    p = param(np.linspace(-1, 1, n), "cpu", np.float32)
    p.grad = Tensor(np.linspace(1, 2, n, dtype=np.float32))
    opt = make([p])
    do_step = opt.update if isinstance(opt, EMA) else opt.step
    do_step()                  # the first step creates the state
    tracemalloc.start()
    try:
        do_step()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert p.dtype == np.float32
    assert peak < 1.25 * p.data.nbytes, f"peak {peak} bytes for a {p.data.nbytes}-byte parameter"


def test_parameters_without_gradient_are_skipped(device):
    used, unused = param(THETA0, device), param(THETA0, device)
    for opt in (SGD([used, unused], lr=0.1, momentum=0.9, weight_decay=0.5),
                AdamW([used, unused], lr=0.1, weight_decay=0.5),
                RMSprop([used, unused], lr=0.1, weight_decay=0.5)):
        set_grad(used, GRADS[0])
        opt.step()
        np.testing.assert_array_equal(unused.numpy(), THETA0)   # not even decayed
        assert unused not in opt.state or not opt.state[unused]
        assert not np.array_equal(used.numpy(), THETA0)


def test_step_calls_the_closure_and_returns_its_loss():
    x = param([3.0], "cpu")
    opt = SGD([x], lr=0.25)

    def closure():
        opt.zero_grad()
        loss = (x * x).sum()
        loss.backward()
        return loss

    with tg.no_grad():  # the closure records its graph anyway, as in PyTorch
        loss = opt.step(closure)
    assert loss.item() == 9.0
    np.testing.assert_allclose(x.numpy(), [3.0 - 0.25 * 6.0])


# --------------------------------------------------------------------------- groups, zero_grad

def test_param_groups_use_their_own_lr_and_the_defaults(device):
    a, b = param(THETA0, device), param(THETA0[::-1].copy(), device)
    opt = SGD([{"params": [a], "lr": 0.5}, {"params": [b]}], lr=0.01, momentum=0.9)
    assert [g["lr"] for g in opt.param_groups] == [0.5, 0.01]
    assert all(g["momentum"] == 0.9 for g in opt.param_groups)
    ga, gb = GRADS[:3], [g[::-1] for g in GRADS[:3]]
    run(opt, [a, b], [ga, gb])
    np.testing.assert_allclose(a.numpy(), sgd_reference(THETA0, ga, lr=0.5, momentum=0.9))
    np.testing.assert_allclose(b.numpy(), sgd_reference(THETA0[::-1], gb, lr=0.01, momentum=0.9))


def test_changing_group_lr_changes_the_next_step(device):
    p = param(THETA0, device)
    opt = SGD([p], lr=0.1)
    opt.param_groups[0]["lr"] = 0.02
    set_grad(p, GRADS[0])
    opt.step()
    np.testing.assert_allclose(p.numpy(), THETA0 - 0.02 * GRADS[0])


def test_zero_grad(device):
    a, b = param(THETA0, device), param(THETA0, device)
    opt = Adam([a, b])
    set_grad(a, GRADS[0])
    opt.zero_grad()
    assert a.grad is None and b.grad is None
    set_grad(a, GRADS[0])
    old = a.grad.data
    opt.zero_grad(set_to_none=False)
    assert a.grad.shape == a.shape and a.grad.dtype == a.dtype and a.grad.device == device
    assert not a.grad.numpy().any()
    np.testing.assert_array_equal(host(old), GRADS[0])  # not zeroed in place
    assert b.grad is None


# --------------------------------------------------------------------------- state_dict

OPTIMIZERS = {
    "sgd_nesterov": lambda groups: SGD(groups, lr=0.1, momentum=0.9, nesterov=True,
                                       weight_decay=0.01),
    "sgd_dampening": lambda groups: SGD(groups, lr=0.1, momentum=0.5, dampening=0.5),
    "adam": lambda groups: Adam(groups, lr=0.05, weight_decay=0.1),
    "adamw": lambda groups: AdamW(groups, lr=0.05, betas=(0.5, 0.9)),
    "rmsprop": lambda groups: RMSprop(groups, lr=0.05, alpha=0.9, weight_decay=0.01),
}


def two_groups(device, dtype=np.float64):
    a = param(THETA0, device, dtype)
    b = param(np.arange(6.0).reshape(2, 3) / 7, device, dtype)
    return [a, b], [{"params": [a], "lr": 0.02}, {"params": [b]}]


def grads_for(params, t):
    return [np.roll(GRADS[t % 4], t)[: p.size].reshape(p.shape) * (k + 1)
            if p.size <= 4 else np.sin(np.arange(p.size) + t).reshape(p.shape)
            for k, p in enumerate(params)]


def steps(opt, params, ts):
    for t in ts:
        for p, g in zip(params, grads_for(params, t)):
            set_grad(p, g)
        opt.step()


@pytest.mark.parametrize("name", list(OPTIMIZERS))
def test_state_dict_resumes_exactly(device, name):
    make = OPTIMIZERS[name]
    params_a, groups_a = two_groups(device)
    opt_a = make(groups_a)
    steps(opt_a, params_a, range(3))
    saved = opt_a.state_dict()
    frozen = copy.deepcopy(saved)

    def fresh():
        params, groups = two_groups(device)
        for p, q in zip(params, params_a):
            p.data[...] = q.data
        return params, make(groups)

    params_b, opt_b = fresh()
    opt_b.load_state_dict(saved)
    params_c, opt_c = fresh()  # not loaded: must end elsewhere, or the test proves nothing

    steps(opt_a, params_a, range(3, 6))
    steps(opt_b, params_b, range(3, 6))
    steps(opt_c, params_c, range(3, 6))
    for pa, pb, pc in zip(params_a, params_b, params_c):
        np.testing.assert_array_equal(pb.numpy(), pa.numpy())
        assert not np.array_equal(pc.numpy(), pa.numpy())
    # the snapshot did not follow opt_a's later steps, and loading copied it
    for i, entries in frozen["state"].items():
        for key, value in entries.items():
            np.testing.assert_array_equal(host(saved["state"][i][key]),
                                          host(value))
    assert saved["param_groups"][0]["params"] == [0] and saved["param_groups"][1]["params"] == [1]


@pytest.mark.parametrize("name", list(OPTIMIZERS))
def test_a_step_is_seen_by_graphs_that_saved_the_parameters(name):
    # A step writes the weights in place; a graph recorded before it (here a * a, which
    # saved a) would differentiate through the new values, and must refuse instead.
    params, groups = two_groups("cpu")
    loss = (params[0] * params[0]).sum() + (params[1] * params[1]).sum()
    steps(OPTIMIZERS[name](groups), params, [0])
    with pytest.raises(RuntimeError, match="modified by an in-place operation"):
        loss.backward()


def test_state_dict_layout_and_hyperparameters_are_restored():
    params, groups = two_groups("cpu")
    opt = Adam(groups, lr=0.05)
    steps(opt, params, range(2))
    sd = opt.state_dict()
    assert set(sd["state"]) == {0, 1}
    assert sd["state"][0]["step"] == 2 and sd["state"][1]["exp_avg"].shape == (2, 3)
    params2, groups2 = two_groups("cpu")
    opt2 = Adam(groups2, lr=0.9)
    opt2.load_state_dict(sd)
    assert [g["lr"] for g in opt2.param_groups] == [0.02, 0.05]
    assert opt2.param_groups[0]["params"][0] is params2[0]
    # Loading replaces all state: the state of a fresh optimizer means "no steps yet".
    opt2.load_state_dict(Adam(two_groups("cpu")[1], lr=0.05).state_dict())
    assert not any(opt2.state.values())


@pytest.mark.skipif(not tg.cuda_available(), reason=CUDA_SKIP_REASON)
@pytest.mark.parametrize("src,dst", [("cpu", "cuda"), ("cuda", "cpu")])
def test_state_dict_loads_onto_the_other_device(src, dst):
    params_a, groups_a = two_groups(src, np.float32)
    opt_a = Adam(groups_a, lr=0.05)
    steps(opt_a, params_a, range(3))
    params_b, groups_b = two_groups(dst, np.float32)
    for p, q in zip(params_b, params_a):
        p.data[...] = tg.backend.to_device(q.data, dst)
    opt_b = Adam(groups_b, lr=0.05)
    opt_b.load_state_dict(opt_a.state_dict())
    for p in params_b:
        assert tg.backend.device_of(opt_b.state[p]["exp_avg"]) == dst
    steps(opt_a, params_a, range(3, 5))
    steps(opt_b, params_b, range(3, 5))
    for pa, pb in zip(params_a, params_b):
        np.testing.assert_allclose(pb.numpy(), pa.numpy(), rtol=1e-6, atol=1e-7)


def test_state_dict_mismatches_are_refused():
    params, groups = two_groups("cpu")
    opt = Adam(groups)
    steps(opt, params, range(2))
    sd = opt.state_dict()

    one_group = Adam([param(THETA0, "cpu"), param(np.zeros((2, 3)), "cpu")])
    with pytest.raises(ValueError, match="2 parameter groups.*has 1"):
        one_group.load_state_dict(sd)

    extra = Adam([{"params": [param(THETA0, "cpu"), param(THETA0, "cpu")]},
                  {"params": [param(np.zeros((2, 3)), "cpu")]}])
    with pytest.raises(ValueError, match="group 0 has 1 parameters.*2 in this"):
        extra.load_state_dict(sd)

    reshaped = Adam([{"params": [param(THETA0, "cpu")]}, {"params": [param(np.zeros(6), "cpu")]}])
    before = copy.deepcopy(reshaped.state_dict())
    with pytest.raises(ValueError, match=r"shape \(2, 3\).*shape \(6,\)"):
        reshaped.load_state_dict(sd)
    assert reshaped.state_dict() == before  # a refused load changes nothing

    sgd_params, sgd_groups = two_groups("cpu")
    sgd = SGD(sgd_groups, lr=0.1, momentum=0.9)
    with pytest.raises(ValueError, match="unexpected state 'step'"):
        sgd.load_state_dict(sd)
    with pytest.raises(ValueError, match="'state' and 'param_groups'"):
        sgd.load_state_dict({"state": {}})

    rms_params, rms_groups = two_groups("cpu")
    with pytest.raises(ValueError, match="unexpected state 'step'"):
        RMSprop(rms_groups).load_state_dict(sd)


# --------------------------------------------------------------------------- clipping

def clip_setup(device, scale=1.0):
    a, b, c = param(THETA0, device), param(np.zeros((2, 3)), device), param([1.0], device)
    ga = np.array([3.0, -4.0, 0.5, 1.0]) * scale
    gb = np.array([[0.0, 2.0, -1.0], [7.0, 0.25, -3.0]]) * scale
    set_grad(a, ga)
    set_grad(b, gb)
    # c has no gradient: it is skipped, not counted as zeros (and not an error)
    return [a, b, c], np.concatenate([ga.ravel(), gb.ravel()])


@pytest.mark.parametrize("norm_type", [2.0, 1.0, 3.0, math.inf])
def test_clip_grad_norm_computes_the_global_norm(device, norm_type):
    params, flat = clip_setup(device)
    old = [p.grad for p in params]
    total = clip_grad_norm_(params, max_norm=1e9, norm_type=norm_type)
    assert type(total) is float
    expected = (np.abs(flat).max() if norm_type == math.inf
                else (np.abs(flat) ** norm_type).sum() ** (1 / norm_type))
    assert total == pytest.approx(expected, rel=1e-12)
    assert all(p.grad is g for p, g in zip(params, old))  # below max_norm: untouched


@pytest.mark.parametrize("norm_type", [2.0, math.inf])
def test_clip_grad_norm_scales_to_max_norm_without_touching_old_arrays(device, norm_type):
    params, flat = clip_setup(device, scale=10.0)
    old = [p.grad.data for p in params[:2]]
    old_values = [host(g).copy() for g in old]
    total = clip_grad_norm_(params, max_norm=2.0, norm_type=norm_type)
    assert total > 2.0
    new_flat = np.concatenate([p.grad.numpy().ravel() for p in params[:2]])
    new_norm = (np.abs(new_flat).max() if norm_type == math.inf
                else np.sqrt((new_flat ** 2).sum()))
    assert new_norm == pytest.approx(2.0, rel=1e-5)
    np.testing.assert_allclose(new_flat, flat * (2.0 / (total + 1e-6)), rtol=1e-12)
    assert params[2].grad is None
    for p, g, v in zip(params, old, old_values):
        assert p.grad.data is not g
        np.testing.assert_array_equal(host(g), v)


def test_clip_grad_norm_works_on_read_only_float32_gradients():
    p = param(np.zeros((3, 4)), "cpu", np.float32)
    p.grad = Tensor(np.broadcast_to(np.float32(2.0), (3, 4)))  # like the gradient of a sum
    total = clip_grad_norm_(p, max_norm=1.0)
    assert total == pytest.approx(2.0 * np.sqrt(12), rel=1e-6)
    assert p.grad.dtype == np.float32
    np.testing.assert_allclose(p.grad.numpy(), 1.0 / np.sqrt(12), rtol=1e-5)


def test_clip_grad_norm_edge_cases_and_errors():
    p = param([1.0, 2.0], "cpu")
    assert clip_grad_norm_([p], 1.0) == 0.0  # no gradients at all
    with pytest.raises(ValueError, match="max_norm"):
        clip_grad_norm_([p], -1.0)
    with pytest.raises(ValueError, match="norm_type"):
        clip_grad_norm_([p], 1.0, norm_type=0)
    set_grad(p, [np.nan, 1.0])
    with pytest.raises(RuntimeError, match="nan"):
        clip_grad_norm_([p], 1.0, error_if_nonfinite=True)


# --------------------------------------------------------------------------- schedules

BASES = (0.1, 0.02)


def sched_opt():
    return SGD([{"params": [param([1.0], "cpu")], "lr": BASES[0]},
                {"params": [param([1.0], "cpu")], "lr": BASES[1]}], lr=0.5)


def trace(scheduler, n):
    """The rates of steps 0..n-1 (step 0 is set on construction), checked against the groups."""
    lrs = []
    for _ in range(n):
        last = scheduler.get_last_lr()
        assert last == [g["lr"] for g in scheduler.optimizer.param_groups]
        lrs.append(last)
        scheduler.step()
    return np.array(lrs)


def test_lambda_lr_matches_its_closed_form():
    s = LambdaLR(sched_opt(), lambda t: 0.9 ** t)
    np.testing.assert_allclose(trace(s, 8), [[b * 0.9 ** t for b in BASES] for t in range(8)],
                               rtol=1e-14)
    s = LambdaLR(sched_opt(), [lambda t: 1.0 / (t + 1), lambda t: 2.0 ** -t])
    np.testing.assert_allclose(trace(s, 5), [[BASES[0] / (t + 1), BASES[1] * 2.0 ** -t]
                                             for t in range(5)], rtol=1e-14)


def test_linear_warmup_ramps_then_holds():
    s = LinearWarmup(sched_opt(), warmup_steps=4, start_factor=0.2)
    factors = [0.2, 0.4, 0.6, 0.8, 1.0, 1.0, 1.0]
    np.testing.assert_allclose(trace(s, 7), np.outer(factors, BASES), rtol=1e-14)
    s = LinearWarmup(sched_opt(), warmup_steps=5)  # default: from 0
    np.testing.assert_allclose(trace(s, 7)[:, 0], [0.0, 0.02, 0.04, 0.06, 0.08, 0.1, 0.1],
                               rtol=1e-14, atol=1e-17)


def test_cosine_annealing_matches_pytorch_closed_form():
    T, eta = 10, 0.001
    s = CosineAnnealingLR(sched_opt(), T_max=T, eta_min=eta)
    lrs = trace(s, 21)
    expected = [[eta + (b - eta) * (1 + math.cos(math.pi * t / T)) / 2 for b in BASES]
                for t in range(21)]
    np.testing.assert_allclose(lrs, expected, rtol=1e-13)
    np.testing.assert_allclose(lrs[0], BASES)
    np.testing.assert_allclose(lrs[10], [eta, eta])
    np.testing.assert_allclose(lrs[5], [(b + eta) / 2 for b in BASES])
    np.testing.assert_allclose(lrs[20], BASES)  # periodic beyond T_max, like PyTorch


@pytest.mark.parametrize("make", [
    lambda opt, last: CosineAnnealingLR(opt, T_max=10, eta_min=0.001, last_epoch=last),
    lambda opt, last: LambdaLR(opt, lambda t: 0.9 ** t, last_epoch=last),
    lambda opt, last: LinearWarmup(opt, warmup_steps=6, start_factor=0.1, last_epoch=last),
])
def test_a_schedule_started_part_way_continues_the_full_one(make):
    # last_epoch = s - 1 starts at step s: the rates are those of the whole schedule from s
    full = trace(make(sched_opt(), -1), 14)
    opt = sched_opt()
    for g in opt.param_groups:
        g["initial_lr"], g["lr"] = g["lr"], 123.0   # the current rate does not matter
    np.testing.assert_allclose(trace(make(opt, 4), 9), full[5:], rtol=1e-14)
    with pytest.raises(KeyError, match="initial_lr"):
        make(sched_opt(), 4)                # resuming needs each group's base rate
    with pytest.raises(ValueError, match="last_epoch must be an integer >= -1"):
        make(sched_opt(), -2)


def test_warmup_cosine_matches_its_closed_form():
    W, T, eta = 3, 10, 0.001
    s = warmup_cosine(sched_opt(), warmup_steps=W, total_steps=T, eta_min=eta)
    lrs = trace(s, 14)

    def lr(b, t):
        if t < W:
            return b * t / W
        if t > T:
            return eta
        return eta + (b - eta) * (1 + math.cos(math.pi * (t - W) / (T - W))) / 2

    np.testing.assert_allclose(lrs, [[lr(b, t) for b in BASES] for t in range(14)],
                               rtol=1e-13, atol=1e-17)
    np.testing.assert_allclose(lrs[W], BASES)
    np.testing.assert_allclose(lrs[T:], eta)


def test_schedule_drives_the_optimizer_updates():
    p = param([1.0], "cpu")
    opt = SGD([p], lr=0.1)
    s = LambdaLR(opt, lambda t: 0.5 ** t)
    for t in range(3):
        set_grad(p, [1.0])
        opt.step()
        s.step()
    np.testing.assert_allclose(p.numpy(), [1.0 - 0.1 * (1 + 0.5 + 0.25)])


@pytest.mark.parametrize("make", [
    lambda o: CosineAnnealingLR(o, T_max=7, eta_min=0.001),
    lambda o: LinearWarmup(o, 4, start_factor=0.1),
    lambda o: warmup_cosine(o, 2, 9, eta_min=0.001),
])
def test_scheduler_state_dict_resumes(make):
    a = make(sched_opt())
    for _ in range(5):
        a.step()
    sd = a.state_dict()
    opt_b = sched_opt()
    b = make(opt_b)
    b.load_state_dict(sd)
    assert b.get_last_lr() == a.get_last_lr() == [g["lr"] for g in opt_b.param_groups]
    np.testing.assert_allclose(trace(b, 6), trace(a, 6), rtol=1e-15)


def test_scheduler_state_dict_restores_the_settings():
    a = CosineAnnealingLR(sched_opt(), T_max=7, eta_min=0.001)
    a.step()
    b = CosineAnnealingLR(sched_opt(), T_max=100)
    b.load_state_dict(a.state_dict())
    assert (b.T_max, b.eta_min, b.last_epoch) == (7, 0.001, 1)
    np.testing.assert_allclose(trace(b, 8), trace(a, 8), rtol=1e-15)


def test_schedule_errors():
    opt = sched_opt()
    with pytest.raises(ValueError, match="T_max"):
        CosineAnnealingLR(opt, T_max=0)
    with pytest.raises(ValueError, match="warmup_steps"):
        LinearWarmup(opt, -1)
    with pytest.raises(ValueError, match="start_factor"):
        LinearWarmup(opt, 3, start_factor=1.5)
    with pytest.raises(ValueError, match="total_steps"):
        warmup_cosine(opt, 10, 10)
    with pytest.raises(ValueError, match="2 parameter groups"):
        LambdaLR(opt, [lambda t: 1.0])
    with pytest.raises(TypeError, match="Optimizer"):
        LambdaLR([param([1.0], "cpu")], lambda t: 1.0)
    s = LambdaLR(opt, lambda t: 1.0)
    with pytest.raises(ValueError, match="3 parameter groups"):
        s.load_state_dict({"last_epoch": 1, "base_lrs": [1, 2, 3], "last_lr": [1, 2, 3]})


# --------------------------------------------------------------------------- EMA

def test_ema_follows_its_equation(device):
    a = param(THETA0, device, np.float32)
    b = param(np.ones((2, 2)), device, np.float32)
    ema = EMA([a, b], decay=0.9)
    shadow_a, shadow_b = THETA0.copy(), np.ones((2, 2))
    for t in range(4):
        a.data[...] = tg.backend.to_device(GRADS[t].astype(np.float32), device)  # new values
        ema.update()
        shadow_a = 0.9 * shadow_a + 0.1 * GRADS[t]
        shadow_b = 0.9 * shadow_b + 0.1 * np.ones((2, 2))
        np.testing.assert_allclose(host(ema.shadow_params[0]), shadow_a,
                                   rtol=1e-6, atol=1e-7)
    # a parameter that never changes is matched exactly, and dtypes stay float32
    np.testing.assert_array_equal(host(ema.shadow_params[1]), shadow_b)
    assert all(s.dtype == np.float32 for s in ema.shadow_params)
    assert ema.num_updates == 4


def test_ema_warmup_decay(device):
    p = param([0.0], device)
    ema = EMA([p], decay=0.5, use_num_updates=True)
    shadow = 0.0
    for n in range(1, 10):
        decay = min(0.5, (1 + n) / (10 + n))   # 2/11, 3/12, ..., 8/17, then 0.5 from n = 8
        assert ema.current_decay() == pytest.approx(decay, rel=1e-15)
        p.data[...] = float(n)
        ema.update()
        shadow = decay * shadow + (1 - decay) * n
        np.testing.assert_allclose(host(ema.shadow_params[0]), [shadow],
                                   rtol=1e-14)
    assert ema.current_decay() == 0.5


def test_ema_store_restore_copy_to_and_context(device):
    p = param(THETA0, device)
    ema = EMA([p], decay=0.5)
    data = p.data
    p.data[...] = 0.0
    ema.update()                      # shadow = THETA0 / 2
    current = np.full(4, 7.0)
    p.data[...] = 7.0

    with ema.average_parameters():
        np.testing.assert_allclose(p.numpy(), THETA0 / 2)
    np.testing.assert_array_equal(p.numpy(), current)

    with pytest.raises(KeyError):
        with ema.average_parameters():
            raise KeyError("fails inside")
    np.testing.assert_array_equal(p.numpy(), current)  # swapped back on an error too

    ema.store()
    ema.copy_to()
    np.testing.assert_allclose(p.numpy(), THETA0 / 2)
    ema.restore()
    np.testing.assert_array_equal(p.numpy(), current)
    assert p.data is data             # all of it in place: the optimizer's array is kept
    with pytest.raises(RuntimeError, match="store"):
        ema.restore()

    q = param(np.zeros(4), device)    # copy_to another set of parameters (e.g. a model copy)
    ema.copy_to([q])
    np.testing.assert_allclose(q.numpy(), THETA0 / 2)


def test_ema_state_dict_and_errors(device):
    p = param(THETA0, device)
    ema = EMA([p], decay=0.8, use_num_updates=True)
    for t in range(3):
        p.data[...] = tg.backend.to_device(GRADS[t], device)
        ema.update()
    sd = ema.state_dict()
    q = param(THETA0, device)
    ema2 = EMA([q], decay=0.1)
    ema2.load_state_dict(sd)
    assert ema2.decay == 0.8 and ema2.num_updates == 3 and ema2.use_num_updates
    p.data[...] = 1.0
    q.data[...] = 1.0
    ema.update()
    ema2.update()
    np.testing.assert_array_equal(host(ema2.shadow_params[0]),
                                  host(ema.shadow_params[0]))

    with pytest.raises(ValueError, match="shape"):
        EMA([param(np.zeros(3), device)]).load_state_dict(sd)
    with pytest.raises(ValueError, match="1 averages.*2 parameters"):
        EMA([param(THETA0, device), param(THETA0, device)]).load_state_dict(sd)
    with pytest.raises(ValueError, match="decay"):
        EMA([p], decay=1.5)
    with pytest.raises(ValueError, match="empty"):
        EMA([])
    with pytest.raises(ValueError, match="2 parameters"):
        ema.copy_to([p, q])


# --------------------------------------------------------------------------- errors

def _p():
    return param([1.0, 2.0], "cpu")


def case(id, make, error, match):
    return pytest.param(make, error, match, id=id)


@pytest.mark.parametrize("make,error,match", [
    case("sgd_negative_lr", lambda: SGD([_p()], lr=-0.1), ValueError, "lr must be >= 0"),
    case("sgd_lr_none", lambda: SGD([_p()], lr=None), TypeError, "lr must be a number"),
    case("sgd_negative_momentum", lambda: SGD([_p()], lr=0.1, momentum=-0.5), ValueError,
         "momentum"),
    case("sgd_negative_decay", lambda: SGD([_p()], lr=0.1, weight_decay=-1.0), ValueError,
         "weight_decay"),
    case("nesterov_without_momentum", lambda: SGD([_p()], lr=0.1, nesterov=True), ValueError,
         "Nesterov"),
    case("nesterov_with_dampening",
         lambda: SGD([_p()], lr=0.1, momentum=0.9, dampening=0.1, nesterov=True), ValueError,
         "Nesterov"),
    case("adam_nan_lr", lambda: Adam([_p()], lr=float("nan")), ValueError, "lr"),
    case("adam_beta1_one", lambda: Adam([_p()], betas=(1.0, 0.999)), ValueError,
         r"betas\[0\] must be in \[0.0, 1.0\)"),
    case("adam_negative_beta2", lambda: Adam([_p()], betas=(0.9, -0.1)), ValueError,
         r"betas\[1\]"),
    case("adam_one_beta", lambda: Adam([_p()], betas=(0.9,)), ValueError, "pair"),
    case("adam_negative_eps", lambda: Adam([_p()], eps=-1e-8), ValueError, "eps"),
    case("adamw_negative_decay", lambda: AdamW([_p()], weight_decay=-0.01), ValueError,
         "weight_decay"),
    case("rmsprop_negative_lr", lambda: RMSprop([_p()], lr=-0.1), ValueError,
         "lr must be >= 0"),
    case("rmsprop_nan_lr", lambda: RMSprop([_p()], lr=float("nan")), ValueError, "lr"),
    case("rmsprop_alpha_one", lambda: RMSprop([_p()], alpha=1.0), ValueError,
         r"alpha must be in \[0.0, 1.0\)"),
    case("rmsprop_negative_alpha", lambda: RMSprop([_p()], alpha=-0.1), ValueError, "alpha"),
    case("rmsprop_negative_eps", lambda: RMSprop([_p()], eps=-1e-8), ValueError, "eps"),
    case("rmsprop_negative_decay", lambda: RMSprop([_p()], weight_decay=-0.01), ValueError,
         "weight_decay"),
    case("rmsprop_alpha_none", lambda: RMSprop([_p()], alpha=None), TypeError,
         "alpha must be a number"),
    case("rmsprop_empty", lambda: RMSprop([], lr=0.1), ValueError, "empty parameter list"),
    case("group_negative_lr", lambda: Adam([{"params": [_p()], "lr": -1.0}], lr=0.1),
         ValueError, "lr"),
    case("sgd_empty", lambda: SGD([], lr=0.1), ValueError, "empty parameter list"),
    case("adam_empty_generator", lambda: Adam(iter([])), ValueError, "empty parameter list"),
    case("empty_group", lambda: Adam([{"params": []}]), ValueError, "empty parameter list"),
    case("single_tensor", lambda: Adam(_p()), TypeError, "single Tensor"),
    case("set_of_params", lambda: Adam({_p()}), TypeError, "set"),
    case("non_leaf", lambda: Adam([_p() * 2.0]), ValueError, "non-leaf"),
    case("integer_tensor", lambda: Adam([tg.tensor([1, 2])]), TypeError, "floating-point"),
    case("not_a_tensor", lambda: Adam([np.zeros(3)]), TypeError, "not a Tensor"),
])
def test_bad_arguments_are_refused(make, error, match):
    with pytest.raises(error, match=match):
        make()


def test_a_parameter_may_be_in_only_one_group():
    p = _p()
    with pytest.raises(ValueError, match="more than one parameter group"):
        SGD([{"params": [p]}, {"params": [p]}], lr=0.1)
    with pytest.raises(ValueError, match="twice"):
        SGD([p, p], lr=0.1)


def test_gradient_of_the_wrong_shape_is_refused():
    p = _p()
    opt = Adam([p])
    p.grad = tg.tensor([1.0, 2.0, 3.0])
    with pytest.raises(ValueError, match=r"shape \(2,\) has a .grad of shape \(3,\)"):
        opt.step()


# --------------------------------------------------------------------------- learning

def test_adam_is_insensitive_to_bad_scaling_where_sgd_is_not():
    # f(x) = 1/2 sum_i c_i x_i^2 with condition number 1e4. Adam rescales each coordinate
    # by its gradient size, so all three reach 0; SGD needs lr < 2 / 1e4 to be stable and
    # then hardly moves the flat direction in the same number of steps.
    c = tg.tensor([1.0, 1e2, 1e4])

    def train(opt, x, n=300):
        sched = warmup_cosine(opt, 10, n)
        for _ in range(n):
            opt.zero_grad()
            loss = 0.5 * (c * x * x).sum()
            loss.backward()
            opt.step()
            sched.step()
        return x.numpy()

    x = tg.tensor([1.0, 1.0, 1.0], requires_grad=True)
    assert np.abs(train(Adam([x], lr=0.1), x)).max() < 1e-4
    x = tg.tensor([1.0, 1.0, 1.0], requires_grad=True)
    assert train(SGD([x], lr=1.9e-4), x)[0] > 0.9


def test_adam_minimizes_rosenbrock():
    # f(x, y) = (1 - x)^2 + 100 (y - x^2)^2: a curved narrow valley, minimum 0 at (1, 1).
    xy = tg.tensor([-1.5, 2.0], requires_grad=True)
    opt = Adam([xy], lr=0.1)
    for _ in range(800):
        opt.zero_grad()
        x, y = xy[0], xy[1]
        loss = (1 - x) ** 2 + 100 * (y - x * x) ** 2
        loss.backward()
        opt.step()
    assert loss.item() < 1e-3
    np.testing.assert_allclose(xy.numpy(), [1.0, 1.0], atol=0.03)
