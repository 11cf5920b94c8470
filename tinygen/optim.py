r"""Optimizers, gradient clipping, learning-rate schedules and an EMA of the weights.

The names, arguments and update rules are PyTorch's (torch.optim, torch.nn.utils,
torch.optim.lr_scheduler), so what you learn here carries over.

Notation: theta are the parameters, t = 1, 2, ... counts the steps of one parameter,
g_t = dL/dtheta at step t (``p.grad``), lr is the learning rate and lambda the weight
decay. Products, squares, square roots and divisions of arrays are element-wise.

SGD with momentum mu, dampening tau, optionally Nesterov (PyTorch's form):

    g_t     <- g_t + lambda theta_{t-1}                      (weight decay: an L2 penalty)
    b_1      = g_1                                           (first step: no dampening)
    b_t      = mu b_{t-1} + (1 - tau) g_t                    (t > 1; only when mu != 0)
    d_t      = g_t + mu b_t   with Nesterov,   b_t   with momentum,   g_t   without
    theta_t  = theta_{t-1} - lr d_t

Adam (Kingma & Ba, 2015) with beta1, beta2, eps; m_0 = v_0 = 0:

    g_t     <- g_t + lambda theta_{t-1}                      (Adam: L2 in the gradient)
    theta_{t-1} <- theta_{t-1} - lr lambda theta_{t-1}       (AdamW instead: decoupled decay)
    m_t      = beta1 m_{t-1} + (1 - beta1) g_t               (first moment, "exp_avg")
    v_t      = beta2 v_{t-1} + (1 - beta2) g_t^2             (second moment, "exp_avg_sq")
    hat m_t  = m_t / (1 - beta1^t)                           (bias corrections: m_0 = v_0 = 0
    hat v_t  = v_t / (1 - beta2^t)                            pulls early averages to zero)
    theta_t  = theta_{t-1} - lr hat m_t / (sqrt(hat v_t) + eps)

RMSprop (Hinton's lecture 6e; PyTorch's form, without momentum or centring), alpha, eps;
v_0 = 0:

    g_t     <- g_t + lambda theta_{t-1}
    v_t      = alpha v_{t-1} + (1 - alpha) g_t^2             ("square_avg")
    theta_t  = theta_{t-1} - lr g_t / (sqrt(v_t) + eps)

Adam's L2 term passes through the 1/sqrt(hat v_t) scaling, so weights with large
gradients are decayed less; AdamW (Loshchilov & Hutter, 2019) shrinks every weight by
the same factor (1 - lr lambda), and m_t, v_t see the loss gradient alone.

Gradient clipping by the global norm over all gradients g (one long vector):

    ||g||_p  = (sum_i |g_i|^p)^(1/p)         (max_i |g_i| for p = inf)
    g       <- g * min(1, max_norm / (||g||_p + 1e-6))

Learning-rate schedules set ``group["lr"]`` from the group's base rate lr_0 at step t
(t = 0 before the first ``scheduler.step()``):

    LambdaLR            lr_t = lr_0 f(t)
    LinearWarmup        lr_t = lr_0 (s + (1 - s) min(t, W) / W)           (s = start_factor)
    CosineAnnealingLR   lr_t = eta_min + (lr_0 - eta_min) (1 + cos(pi t / T_max)) / 2
    warmup_cosine       linear warm-up for W steps, then cosine from lr_0 to eta_min at T

Exponential moving average of the weights (what diffusion models and GANs sample with):

    shadow  <- decay shadow + (1 - decay) theta,
    decay_n  = min(decay, (1 + n) / (10 + n))   with use_num_updates (n = updates so far)

Every update is in place on the parameter's raw array ``p.data`` and uses that array's
module (NumPy or CuPy), so one code path serves both devices. Gradients are never
changed in place: ``p.grad.data`` may be shared with other tensors or be a read-only
broadcast view. Hyperparameters enter as Python floats, which keep float32 arrays
float32 (NumPy's promotion rules); state arrays have their parameter's shape and dtype.
"""
from __future__ import annotations

import contextlib
import math
import numbers
from collections import defaultdict

import numpy as np

from . import backend, parallel
from .autograd import Tensor, enable_grad, mark_modified

__all__ = ["Optimizer", "SGD", "RMSprop", "Adam", "AdamW", "clip_grad_norm_", "LRScheduler",
           "LambdaLR", "LinearWarmup", "CosineAnnealingLR", "warmup_cosine", "EMA"]


# --------------------------------------------------------------------------- helpers

def _check_number(owner, name, value, low=None, high=None, high_open=False):
    """Raise a clear error unless ``value`` is a real number in [low, high] (or [low, high))."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{owner}: {name} must be a number, got {value!r}")
    ok = not math.isnan(value)
    if low is not None:
        ok = ok and value >= low
    if high is not None:
        ok = ok and (value < high if high_open else value <= high)
    if not ok:
        lo = "" if low is None else f"[{low}, "
        hi = "" if high is None else (f"{high})" if high_open else f"{high}]")
        where = f"in {lo}{hi}" if lo and hi else (f">= {low}" if lo else f"<= {high}")
        raise ValueError(f"{owner}: {name} must be {where}, got {value}")


def _as_param_list(parameters, owner):
    """A list of Tensors from a Tensor or an iterable of them, checked."""
    if isinstance(parameters, Tensor):
        return [parameters]
    if isinstance(parameters, (set, frozenset)):
        raise TypeError(f"{owner}: parameters must be an ordered sequence (a set has no fixed "
                        "order, so state could not be matched to parameters); use a list")
    params = list(parameters)
    for i, p in enumerate(params):
        if not isinstance(p, Tensor):
            raise TypeError(f"{owner}: parameter {i} is a {type(p).__name__}, not a Tensor")
    return params


def _like_param(value, p):
    """A fresh copy of the array ``value`` with the device and dtype of parameter ``p``."""
    arr = backend.to_device(value, p.device)
    # to_device hands back the same object when no transfer was needed: copy it then,
    # so the loaded state never aliases the caller's arrays.
    return arr.astype(p.dtype, copy=arr is value)


def _is_array(value):
    return hasattr(value, "shape") and hasattr(value, "dtype")


def _copy_state_value(value):
    return value.copy() if _is_array(value) else value


def _call_closure(closure):
    """PyTorch's optional closure: re-evaluate the loss (with gradients) before the step."""
    if closure is None:
        return None
    with enable_grad():
        return closure()


# --------------------------------------------------------------------------- Optimizer

class Optimizer:
    """Base class: parameter groups, per-parameter state, zero_grad and state_dict.

    Args:
        params: an iterable of Tensors, or a list of dicts
            ``{"params": [Tensor, ...], "lr": ..., ...}`` (parameter groups); a group
            takes the optimizer's defaults for the hyperparameters it does not set.
        defaults: the hyperparameters of the subclass, e.g. ``{"lr": 1e-3, ...}``.

    Attributes:
        param_groups: list of dicts, each with "params" (a list of Tensors) and the
            hyperparameters used for them; schedules change ``group["lr"]``.
        state: dict Tensor -> dict of that parameter's state (e.g. Adam's "exp_avg"),
            arrays of the parameter's shape and dtype, on its device.

    Subclasses implement ``step()`` and ``_check_hyperparameters(group)`` and list the
    names of their per-parameter state in ``_state_names``.
    """

    _state_names: tuple = ()

    def __init__(self, params, defaults: dict):
        name = type(self).__name__
        if isinstance(params, Tensor):
            raise TypeError(f"{name}: params must be an iterable of Tensors or of dicts, got a "
                            "single Tensor; pass [p] instead")
        if isinstance(params, (set, frozenset)):
            raise TypeError(f"{name}: params must be an ordered sequence, not a set (state "
                            "is matched to parameters by position)")
        self.defaults = dict(defaults)
        self.state = defaultdict(dict)
        self.param_groups = []
        groups = list(params)
        if not groups:
            raise ValueError(f"{name} got an empty parameter list")
        if not isinstance(groups[0], dict):
            groups = [{"params": groups}]
        for group in groups:
            self.add_param_group(group)

    def add_param_group(self, param_group: dict) -> None:
        """Add a group of parameters with its own hyperparameters (e.g. a smaller lr)."""
        name = type(self).__name__
        if not isinstance(param_group, dict):
            raise TypeError(f"{name}: a parameter group must be a dict with a 'params' entry, "
                            f"got {type(param_group).__name__} (do not mix Tensors and dicts)")
        if "params" not in param_group:
            raise ValueError(f"{name}: parameter group has no 'params' entry")
        group = dict(param_group)
        params = _as_param_list(group["params"], name)
        if not params:
            raise ValueError(f"{name} got an empty parameter list (in a parameter group)")
        for p in params:
            if not p.is_leaf:
                raise ValueError(f"{name}: can't optimize a non-leaf Tensor (one computed by an "
                                 "op); optimize the leaf it came from, or .detach() it")
            if p.dtype.kind != "f":
                raise TypeError(f"{name}: can only optimize floating-point tensors, got "
                                f"dtype {p.dtype}")
        if len({id(p) for p in params}) != len(params):
            raise ValueError(f"{name}: a parameter appears twice in one parameter group")
        seen = {id(p) for g in self.param_groups for p in g["params"]}
        if any(id(p) in seen for p in params):
            raise ValueError(f"{name}: some parameters appear in more than one parameter group")
        for key, value in self.defaults.items():
            group.setdefault(key, value)
        group["params"] = params
        self._check_hyperparameters(group)
        self.param_groups.append(group)

    def _check_hyperparameters(self, group: dict) -> None:
        """Raise ValueError/TypeError for a bad hyperparameter in ``group``."""

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Forget the gradients of all parameters before the next backward().

        With ``set_to_none`` (the default, like PyTorch) ``.grad`` becomes None; otherwise
        a new zero array (the old gradient array may be shared, so it is not zeroed).
        """
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                if set_to_none:
                    p.grad = None
                else:
                    p.grad = Tensor(backend.get_array_module(p.data).zeros_like(p.data))

    def _params_with_grads(self, group):
        """Yield (p, g) for each parameter of ``group`` with a gradient; g = p.grad.data."""
        for p in group["params"]:
            if p.grad is None:  # not used by the loss: no update, no state, no decay
                continue
            g = p.grad.data
            if g.shape != p.data.shape:
                raise ValueError(f"{type(self).__name__}: a parameter of shape {p.shape} has a "
                                 f".grad of shape {g.shape}; they must match")
            yield p, g

    def step(self, closure=None):
        """Update every parameter that has a gradient; returns closure() if one is given."""
        raise NotImplementedError

    # ---- saving and resuming
    def state_dict(self) -> dict:
        """A snapshot of the optimizer for a checkpoint, in PyTorch's layout.

        Returns ``{"state": {i: {name: array or int}}, "param_groups": [{..., "params":
        [i, ...]}]}``, where i numbers the parameters in the order of ``param_groups``.
        Arrays are copies (on the parameters' device), so the snapshot does not change as
        training goes on.
        """
        index, groups = {}, []
        for group in self.param_groups:
            packed = {k: v for k, v in group.items() if k != "params"}
            packed["params"] = [index.setdefault(id(p), len(index)) for p in group["params"]]
            groups.append(packed)
        state = {index[id(p)]: {k: _copy_state_value(v) for k, v in s.items()}
                 for p, s in self.state.items() if id(p) in index}
        return {"state": state, "param_groups": groups}

    def load_state_dict(self, state_dict: dict) -> None:
        """Resume from ``state_dict()`` output: hyperparameters and per-parameter state.

        The parameters must match the saved ones in number, grouping and shape; state
        arrays are copied onto each parameter's device (CPU or GPU) and into its dtype.
        """
        name = type(self).__name__
        if not isinstance(state_dict, dict) or set(state_dict) != {"state", "param_groups"}:
            raise ValueError(f"{name}.load_state_dict: expected a dict with keys 'state' and "
                             "'param_groups' (the output of state_dict())")
        saved_groups = state_dict["param_groups"]
        if len(saved_groups) != len(self.param_groups):
            raise ValueError(f"{name}.load_state_dict: the state dict has {len(saved_groups)} "
                             f"parameter groups, this optimizer has {len(self.param_groups)}")
        by_index = {}
        for k, (saved, group) in enumerate(zip(saved_groups, self.param_groups)):
            if len(saved["params"]) != len(group["params"]):
                raise ValueError(f"{name}.load_state_dict: parameter group {k} has "
                                 f"{len(saved['params'])} parameters in the state dict and "
                                 f"{len(group['params'])} in this optimizer")
            by_index.update(zip(saved["params"], group["params"]))

        # Check everything before changing anything, so a bad state dict leaves us intact.
        new_state = defaultdict(dict)
        for i, entries in state_dict["state"].items():
            if int(i) not in by_index:
                raise ValueError(f"{name}.load_state_dict: state for parameter {i}, which no "
                                 "parameter group of the state dict lists")
            p = by_index[int(i)]
            for key, value in entries.items():
                if key not in self._state_names:
                    raise ValueError(f"{name}.load_state_dict: unexpected state {key!r} for "
                                     f"parameter {i} ({name} keeps {self._state_names}); is it "
                                     "the state of another kind of optimizer?")
                if key == "step":  # a counter; some checkpoint formats make it a 0-d array
                    value = int(value)
                elif _is_array(value):
                    if tuple(value.shape) != p.shape:
                        raise ValueError(f"{name}.load_state_dict: state {key!r} of parameter "
                                         f"{i} has shape {tuple(value.shape)}, the parameter "
                                         f"has shape {p.shape}")
                    value = _like_param(value, p)
                new_state[p][key] = value
        for saved, group in zip(saved_groups, self.param_groups):
            hyper = {k: v for k, v in saved.items() if k != "params"}
            self._check_hyperparameters({**group, **hyper})
        for saved, group in zip(saved_groups, self.param_groups):
            group.update({k: v for k, v in saved.items() if k != "params"})
        self.state = new_state

    def __repr__(self):
        lines = [f"{type(self).__name__} ("]
        for k, group in enumerate(self.param_groups):
            hyper = ", ".join(f"{key}={value}" for key, value in group.items() if key != "params")
            lines.append(f"  group {k}: {len(group['params'])} parameters, {hyper}")
        return "\n".join(lines + [")"])


# --------------------------------------------------------------------------- SGD

class SGD(Optimizer):
    """Stochastic gradient descent with optional momentum, dampening, Nesterov and L2 decay.

    ``SGD(params, lr, momentum=0, dampening=0, nesterov=False, weight_decay=0)`` follows
    torch.optim.SGD exactly (see the module docstring for the equations). State per
    parameter: "momentum_buffer" b_t (shape of the parameter), kept when momentum != 0.
    """

    _state_names = ("momentum_buffer",)

    def __init__(self, params, lr, momentum=0.0, dampening=0.0, nesterov=False,
                 weight_decay=0.0):
        super().__init__(params, dict(lr=lr, momentum=momentum, dampening=dampening,
                                      nesterov=nesterov, weight_decay=weight_decay))

    def _check_hyperparameters(self, group):
        _check_number("SGD", "lr", group["lr"], low=0.0)
        _check_number("SGD", "momentum", group["momentum"], low=0.0)
        _check_number("SGD", "dampening", group["dampening"], low=0.0, high=1.0)
        _check_number("SGD", "weight_decay", group["weight_decay"], low=0.0)
        if group["nesterov"] and (group["momentum"] <= 0 or group["dampening"] != 0):
            raise ValueError("SGD: Nesterov momentum requires a momentum > 0 and zero dampening")

    def step(self, closure=None):
        """One SGD update of every parameter with a gradient; returns closure() if given."""
        loss = _call_closure(closure)
        for group in self.param_groups:
            lr, mu = float(group["lr"]), float(group["momentum"])
            tau, wd = float(group["dampening"]), float(group["weight_decay"])
            nesterov = bool(group["nesterov"])
            for p, g in self._params_with_grads(group):
                theta = p.data
                d = g
                if wd != 0:
                    d = theta * wd             # g_t + lambda theta, as a new array:
                    d += g                     # the gradient itself is never written to
                if mu != 0:
                    state = self.state[p]
                    b = state.get("momentum_buffer")
                    if b is None:
                        b = state["momentum_buffer"] = d.copy()   # b_1 = g_1 (our own copy)
                    else:
                        b *= mu                                    # b_t = mu b_{t-1}
                        b += d if tau == 0 else (1.0 - tau) * d    #       + (1 - tau) g_t
                    if nesterov:
                        step = b * mu          # d_t = g_t + mu b_t
                        step += d
                        d = step
                    else:
                        d = b                  # d_t = b_t
                theta -= lr * d                # theta_t = theta_{t-1} - lr d_t
                mark_modified(p)               # graphs that saved theta now refuse backward
        return loss


# --------------------------------------------------------------------------- RMSprop

class RMSprop(Optimizer):
    """RMSprop: each step divided by a running root mean square of the gradients.

    ``RMSprop(params, lr=1e-2, alpha=0.99, eps=1e-8, weight_decay=0)`` follows
    torch.optim.RMSprop without momentum or centring (see the module docstring for the
    equations); WGAN trains its critic and generator with it (Arjovsky et al. 2017).
    State per parameter: "square_avg" v_t (shape of the parameter).
    """

    _state_names = ("square_avg",)

    def __init__(self, params, lr=1e-2, alpha=0.99, eps=1e-8, weight_decay=0.0):
        super().__init__(params, dict(lr=lr, alpha=alpha, eps=eps, weight_decay=weight_decay))

    def _check_hyperparameters(self, group):
        _check_number("RMSprop", "lr", group["lr"], low=0.0)
        _check_number("RMSprop", "alpha", group["alpha"], low=0.0, high=1.0, high_open=True)
        _check_number("RMSprop", "eps", group["eps"], low=0.0)
        _check_number("RMSprop", "weight_decay", group["weight_decay"], low=0.0)

    def step(self, closure=None):
        """One RMSprop update of every parameter with a gradient."""
        loss = _call_closure(closure)
        for group in self.param_groups:
            lr, alpha = float(group["lr"]), float(group["alpha"])
            eps, wd = float(group["eps"]), float(group["weight_decay"])
            for p, g in self._params_with_grads(group):
                theta = p.data
                xp = backend.get_array_module(theta)
                if wd != 0:
                    g = g + wd * theta                    # a new array: p.grad stays as it is
                state = self.state[p]
                if not state:
                    state["square_avg"] = xp.zeros_like(theta)
                v = state["square_avg"]
                # one scratch array of the parameter's size, as in _adam_update
                buf = xp.multiply(g, g)
                buf *= 1.0 - alpha
                v *= alpha
                v += buf                     # v_t = alpha v_{t-1} + (1 - alpha) g_t^2
                xp.sqrt(v, out=buf)
                buf += eps
                xp.divide(g, buf, out=buf)
                buf *= lr
                theta -= buf                 # theta_t = theta_{t-1} - lr g_t / (sqrt(v_t) + eps)
                mark_modified(p)
        return loss


# --------------------------------------------------------------------------- Adam, AdamW

class Adam(Optimizer):
    """Adam with bias correction; ``weight_decay`` adds lambda theta to the gradient (L2).

    ``Adam(params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0)`` follows
    torch.optim.Adam (see the module docstring for the equations). State per parameter:
    "step" t (int), "exp_avg" m_t and "exp_avg_sq" v_t (shape of the parameter).
    """

    _state_names = ("step", "exp_avg", "exp_avg_sq")
    _decoupled = False  # AdamW sets this: decay theta directly instead of via the gradient

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0):
        super().__init__(params, dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay))

    def _check_hyperparameters(self, group):
        name = type(self).__name__
        _check_number(name, "lr", group["lr"], low=0.0)
        betas = group["betas"]
        if not isinstance(betas, (tuple, list)) or len(betas) != 2:
            raise ValueError(f"{name}: betas must be a pair (beta1, beta2), got {betas!r}")
        _check_number(name, "betas[0]", betas[0], low=0.0, high=1.0, high_open=True)
        _check_number(name, "betas[1]", betas[1], low=0.0, high=1.0, high_open=True)
        _check_number(name, "eps", group["eps"], low=0.0)
        _check_number(name, "weight_decay", group["weight_decay"], low=0.0)

    def step(self, closure=None):
        """One Adam (or AdamW) update of every parameter with a gradient."""
        loss = _call_closure(closure)
        work = []  # (arguments of _adam_update, slice) for every block of every parameter
        for group in self.param_groups:
            lr, eps, wd = float(group["lr"]), float(group["eps"]), float(group["weight_decay"])
            beta1, beta2 = float(group["betas"][0]), float(group["betas"][1])
            for p, g in self._params_with_grads(group):
                theta = p.data
                xp = backend.get_array_module(theta)
                state = self.state[p]
                if not state:  # m_0 = v_0 = 0
                    state["step"] = 0
                    state["exp_avg"] = xp.zeros_like(theta)
                    state["exp_avg_sq"] = xp.zeros_like(theta)
                state["step"] += 1
                t = state["step"]
                mark_modified(p)  # updated below; graphs that saved theta refuse backward
                # The bias corrections, folded into two scalars (no pass over the arrays):
                # lr hat m / (sqrt(hat v) + eps) = step_size m / (sqrt(v) + eps_hat) with
                # step_size = lr sqrt(1 - beta2^t) / (1 - beta1^t), eps_hat = eps sqrt(1 - beta2^t).
                root_bias2 = math.sqrt(1.0 - beta2 ** t)
                scalars = (beta1, beta2, lr * root_bias2 / (1.0 - beta1 ** t), eps * root_bias2,
                           wd, lr, self._decoupled)
                arrays = (theta, g, state["exp_avg"], state["exp_avg_sq"])
                theta_m_v = (theta, state["exp_avg"], state["exp_avg_sq"])
                if xp is np and all(a.flags.c_contiguous for a in theta_m_v):
                    # On the CPU: cache-sized blocks, spread over the cores (tinygen.parallel).
                    # The plain form is the else branch, _adam_update on whole arrays; the
                    # blocks give the same bits (test_fast_routes) and took 1/1.4 to 1/2.1
                    # of its time for 1.6M and 10M float32 weights here (timeit, 2 cores),
                    # nearly as much on one thread: the gain is the cache (each array read
                    # once per step instead of once per operation), not the second core.
                    flat = tuple(a.reshape(-1) for a in arrays)  # views (g may be copied)
                    work += [(flat, scalars, block) for block in parallel.blocks(theta.size)]
                else:  # CuPy (one kernel per operation already fills the GPU), or odd layouts
                    _adam_update(*arrays, *scalars)

        def update_block(item):
            flat, scalars, block = item
            _adam_update(*(a[block] for a in flat), *scalars)

        parallel.parallel_map(update_block, work)
        return loss


def _adam_update(theta, g, m, v, beta1, beta2, step_size, eps_hat, wd, lr, decoupled):
    """One Adam step, in place, on matching arrays: whole parameters or one block of each.

    m <- beta1 m + (1 - beta1) g;  v <- beta2 v + (1 - beta2) g^2;
    theta <- theta - step_size m / (sqrt(v) + eps_hat);  weight decay first, if any.
    """
    xp = backend.get_array_module(theta)
    if wd != 0:
        if decoupled:
            theta *= 1.0 - lr * wd           # AdamW: theta <- theta - lr lambda theta
        else:
            decayed = theta * wd             # Adam: g <- g + lambda theta, in a new array
            decayed += g                     # (the gradient itself is never written to)
            g = decayed
    buf = xp.multiply(g, 1.0 - beta1)        # the one scratch array
    m *= beta1
    m += buf                                 # m_t = beta1 m_{t-1} + (1 - beta1) g_t
    xp.multiply(g, g, out=buf)
    buf *= 1.0 - beta2
    v *= beta2
    v += buf                                 # v_t = beta2 v_{t-1} + (1 - beta2) g_t^2
    xp.sqrt(v, out=buf)
    buf += eps_hat
    xp.divide(m, buf, out=buf)
    buf *= step_size
    theta -= buf                             # theta_t = theta_{t-1} - step_size m / (sqrt v + eps_hat)


class AdamW(Adam):
    """Adam with decoupled weight decay: theta <- (1 - lr lambda) theta before the Adam step.

    ``AdamW(params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2)`` follows
    torch.optim.AdamW. The moments m_t, v_t see only the loss gradient.
    """

    _decoupled = True

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2):
        super().__init__(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay)


# --------------------------------------------------------------------------- clipping

def clip_grad_norm_(parameters, max_norm, norm_type=2.0, error_if_nonfinite=False) -> float:
    """Scale all gradients together so that their global norm is at most ``max_norm``.

    Args:
        parameters: a Tensor or an iterable of Tensors; those with ``.grad`` None are skipped.
        max_norm: the largest allowed norm (>= 0).
        norm_type: p of the p-norm (> 0), or ``float("inf")`` for the largest |g_i|.
        error_if_nonfinite: raise if the total norm is NaN or infinite (else, as in
            PyTorch, the gradients are left to carry the NaN/inf on).

    Returns:
        The total norm of all gradients before clipping, as a Python float.

    When clipping is needed, each ``p.grad`` is replaced by a new Tensor
    g * max_norm / (||g|| + 1e-6); the old gradient arrays are not modified.
    """
    params = _as_param_list(parameters, "clip_grad_norm_")
    _check_number("clip_grad_norm_", "max_norm", max_norm, low=0.0)
    _check_number("clip_grad_norm_", "norm_type", norm_type)
    max_norm, norm_type = float(max_norm), float(norm_type)
    if not norm_type > 0:
        raise ValueError(f"clip_grad_norm_: norm_type must be > 0 or inf, got {norm_type}")
    params = [p for p in params if p.grad is not None]
    if not params:
        return 0.0

    # ||g||_p over all gradients = the p-norm of the per-tensor p-norms (and max of maxima
    # for p = inf), so each tensor is reduced on its own device and one small vector is
    # brought together: a single device-to-host transfer for the final float.
    grads = [p.grad.data for p in params]
    device = "cuda" if any(backend.device_of(g) == "cuda" for g in grads) else "cpu"
    xp = backend.array_module(device)
    norms = [backend.get_array_module(g).linalg.norm(g.ravel(), ord=norm_type) for g in grads]
    norms = xp.stack([backend.to_device(n, device) for n in norms])
    total = float(xp.linalg.norm(norms, ord=norm_type))

    if error_if_nonfinite and not math.isfinite(total):
        raise RuntimeError(f"clip_grad_norm_: the total norm of order {norm_type} of the "
                           f"gradients is {total}, so they cannot be clipped")
    coef = max_norm / (total + 1e-6)  # the 1e-6 keeps a zero norm from dividing by zero
    if coef < 1.0:
        for p in params:
            p.grad = Tensor(p.grad.data * coef)  # new array: gradients may be shared
    return total


# --------------------------------------------------------------------------- schedules

class LRScheduler:
    """Base class of the learning-rate schedules: sets each group's lr from a closed form.

    On construction every group remembers its base rate as ``group["initial_lr"]``
    (``base_lrs``) and gets the rate of step 0, or of step ``last_epoch + 1`` when
    ``last_epoch`` is given (PyTorch's way to start a schedule part-way; the groups must
    then hold ``initial_lr``); each ``step()`` (called once per training
    step, after ``optimizer.step()``) advances ``last_epoch`` t by one and sets
    ``group["lr"] = get_lr()[i]``. Subclasses implement ``get_lr()`` for step t and list
    their settings in ``_settings`` (saved in ``state_dict``).
    """

    _settings: tuple = ()

    def __init__(self, optimizer: Optimizer, last_epoch: int = -1):
        if not isinstance(optimizer, Optimizer):
            raise TypeError(f"{type(self).__name__}: expected an Optimizer, "
                            f"got {type(optimizer).__name__}")
        if isinstance(last_epoch, bool) or not isinstance(last_epoch, numbers.Integral) \
                or last_epoch < -1:
            raise ValueError(f"{type(self).__name__}: last_epoch must be an integer >= -1, "
                             f"got {last_epoch!r}")
        self.optimizer = optimizer
        for i, group in enumerate(optimizer.param_groups):
            if last_epoch == -1:
                group.setdefault("initial_lr", group["lr"])
            elif "initial_lr" not in group:  # PyTorch's rule: a resumed schedule needs lr_0
                raise KeyError(f"{type(self).__name__}: param_groups[{i}] has no 'initial_lr'; "
                               "to start a schedule at step last_epoch + 1, set each group's "
                               "'initial_lr' (its base rate lr_0) first")
        self.base_lrs = [group["initial_lr"] for group in optimizer.param_groups]
        self.last_epoch = int(last_epoch)
        self._last_lr = []
        self.step()

    def get_lr(self) -> list:
        """The learning rate of every group at step ``self.last_epoch``."""
        raise NotImplementedError

    def step(self) -> None:
        """Advance one step and write the new rates into the optimizer's groups."""
        self.last_epoch += 1
        self._apply(self.get_lr())

    def _apply(self, lrs):
        for group, lr in zip(self.optimizer.param_groups, lrs):
            group["lr"] = lr
        self._last_lr = list(lrs)

    def get_last_lr(self) -> list:
        """The rates set by the last step(), one per parameter group."""
        return list(self._last_lr)

    def state_dict(self) -> dict:
        """``{"last_epoch", "base_lrs", "last_lr"}`` and the schedule's own settings."""
        state = {"last_epoch": self.last_epoch, "base_lrs": list(self.base_lrs),
                 "last_lr": list(self._last_lr)}
        state.update({k: getattr(self, k) for k in self._settings})
        return state

    def load_state_dict(self, state_dict: dict) -> None:
        """Resume a schedule; also writes its last rates into the optimizer's groups.

        (LambdaLR's functions are not saved: make the scheduler with the same functions,
        then load.)
        """
        name = type(self).__name__
        missing = {"last_epoch", "base_lrs", "last_lr"} - set(state_dict)
        if missing:
            raise ValueError(f"{name}.load_state_dict: missing {sorted(missing)}")
        n = len(self.optimizer.param_groups)
        if len(state_dict["base_lrs"]) != n or len(state_dict["last_lr"]) != n:
            raise ValueError(f"{name}.load_state_dict: the state dict is for "
                             f"{len(state_dict['base_lrs'])} parameter groups, the optimizer "
                             f"has {n}")
        for k in self._settings:
            if k in state_dict:
                setattr(self, k, state_dict[k])
        self.last_epoch = int(state_dict["last_epoch"])
        self.base_lrs = list(state_dict["base_lrs"])
        for group, base in zip(self.optimizer.param_groups, self.base_lrs):
            group["initial_lr"] = base
        self._apply(state_dict["last_lr"])


class LambdaLR(LRScheduler):
    """lr_t = lr_0 * lr_lambda(t): any schedule given as a multiplicative factor.

    Args:
        optimizer: the Optimizer whose groups' lr is set.
        lr_lambda: a function int t -> float, or a list of them, one per parameter group.
    """

    def __init__(self, optimizer, lr_lambda, last_epoch=-1):
        n = len(optimizer.param_groups) if isinstance(optimizer, Optimizer) else 0
        if isinstance(lr_lambda, (list, tuple)):
            if len(lr_lambda) != n:
                raise ValueError(f"LambdaLR: {len(lr_lambda)} lr_lambdas for {n} parameter "
                                 "groups; give one function, or one per group")
            self.lr_lambdas = list(lr_lambda)
        else:
            self.lr_lambdas = [lr_lambda] * n
        if not all(callable(f) for f in self.lr_lambdas):
            raise TypeError("LambdaLR: lr_lambda must be a function of the step t (or a list "
                            "of them)")
        super().__init__(optimizer, last_epoch)

    def get_lr(self):
        t = self.last_epoch
        return [base * f(t) for base, f in zip(self.base_lrs, self.lr_lambdas)]


class LinearWarmup(LRScheduler):
    """Linear warm-up: lr_t = lr_0 (s + (1 - s) min(t, W) / W), then constant lr_0.

    Args:
        warmup_steps: W >= 0, the step at which the full rate is reached (0: no warm-up).
        start_factor: s in [0, 1], the fraction of lr_0 used at step 0. The default 0
            starts from lr 0, so the first update is a no-op (it still fills the
            optimizer's moment estimates).

    PyTorch's LinearLR(start_factor, end_factor=1, total_iters=W) is the same schedule.
    """

    _settings = ("warmup_steps", "start_factor")

    def __init__(self, optimizer, warmup_steps, start_factor=0.0, last_epoch=-1):
        _check_number("LinearWarmup", "start_factor", start_factor, low=0.0, high=1.0)
        if isinstance(warmup_steps, bool) or not isinstance(warmup_steps, numbers.Integral) \
                or warmup_steps < 0:
            raise ValueError(f"LinearWarmup: warmup_steps must be an integer >= 0, "
                             f"got {warmup_steps!r}")
        self.warmup_steps = int(warmup_steps)
        self.start_factor = float(start_factor)
        super().__init__(optimizer, last_epoch)

    def factor(self, t: int) -> float:
        """The multiplier of lr_0 at step t."""
        if t >= self.warmup_steps:
            return 1.0
        s = self.start_factor
        return s + (1.0 - s) * t / self.warmup_steps

    def get_lr(self):
        f = self.factor(self.last_epoch)
        return [base * f for base in self.base_lrs]


class CosineAnnealingLR(LRScheduler):
    """lr_t = eta_min + (lr_0 - eta_min) (1 + cos(pi t / T_max)) / 2 (PyTorch's closed form).

    Falls from lr_0 at t = 0 to eta_min at t = T_max; beyond T_max the formula rises
    again, as in PyTorch (``warmup_cosine`` stays at eta_min instead).
    """

    _settings = ("T_max", "eta_min")

    def __init__(self, optimizer, T_max, eta_min=0.0, last_epoch=-1):
        if isinstance(T_max, bool) or not isinstance(T_max, numbers.Integral) or T_max < 1:
            raise ValueError(f"CosineAnnealingLR: T_max must be an integer >= 1, got {T_max!r}")
        _check_number("CosineAnnealingLR", "eta_min", eta_min, low=0.0)
        self.T_max = int(T_max)
        self.eta_min = float(eta_min)
        super().__init__(optimizer, last_epoch)

    def get_lr(self):
        c = (1.0 + math.cos(math.pi * self.last_epoch / self.T_max)) / 2.0
        return [self.eta_min + (base - self.eta_min) * c for base in self.base_lrs]


def warmup_cosine(optimizer, warmup_steps, total_steps, eta_min=0.0, start_factor=0.0):
    """A linear warm-up over W = warmup_steps, then a cosine decay to eta_min at T = total_steps.

        lr_t = lr_0 (s + (1 - s) t / W)                                         t < W
        lr_t = eta_min + (lr_0 - eta_min) (1 + cos(pi (t - W) / (T - W))) / 2    W <= t <= T
        lr_t = eta_min                                                          t > T

    Returns a LambdaLR (one function per group, since eta_min is an absolute rate); to
    resume, call warmup_cosine again with the same arguments and load its state_dict.
    """
    for name, value in (("warmup_steps", warmup_steps), ("total_steps", total_steps)):
        if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 0:
            raise ValueError(f"warmup_cosine: {name} must be an integer >= 0, got {value!r}")
    if total_steps <= warmup_steps:
        raise ValueError(f"warmup_cosine: total_steps ({total_steps}) must be larger than "
                         f"warmup_steps ({warmup_steps})")
    _check_number("warmup_cosine", "eta_min", eta_min, low=0.0)
    _check_number("warmup_cosine", "start_factor", start_factor, low=0.0, high=1.0)
    W, T, s, eta_min = int(warmup_steps), int(total_steps), float(start_factor), float(eta_min)

    def schedule(base):
        def factor(t):
            if t < W:
                return s + (1.0 - s) * t / W
            if base == 0:  # nothing to scale
                return 0.0
            c = (1.0 + math.cos(math.pi * min(t - W, T - W) / (T - W))) / 2.0
            return (eta_min + (base - eta_min) * c) / base
        return factor

    if not isinstance(optimizer, Optimizer):
        raise TypeError(f"warmup_cosine: expected an Optimizer, got {type(optimizer).__name__}")
    bases = [group.get("initial_lr", group["lr"]) for group in optimizer.param_groups]
    return LambdaLR(optimizer, [schedule(base) for base in bases])


# --------------------------------------------------------------------------- EMA

class EMA:
    """Exponential moving average of parameters, for sampling with smoothed weights.

    ``update()`` after each optimizer step does shadow <- decay shadow + (1 - decay) theta
    for every parameter. With ``use_num_updates`` the decay is warmed up as in the
    torch_ema package (where it is on by default): min(decay, (1 + n) / (10 + n)) with
    n the number of updates so far, so early averages do not cling to the random init.

    Args:
        parameters: a Tensor or an iterable of Tensors (e.g. ``model.parameters()``).
        decay: in [0, 1]; 0.999 averages over roughly the last 1000 steps.
        use_num_updates: warm the decay up as above.

    Attributes:
        shadow_params: the averages, arrays of each parameter's shape, dtype and device.

    Typical use::

        ema = EMA(model.parameters(), decay=0.999)
        ... optimizer.step(); ema.update() ...
        with ema.average_parameters():   # sample with the averages, then swap back
            x = model.sample(...)
    """

    def __init__(self, parameters, decay=0.999, use_num_updates=False):
        self.parameters = _as_param_list(parameters, "EMA")
        if not self.parameters:
            raise ValueError("EMA got an empty parameter list")
        _check_number("EMA", "decay", decay, low=0.0, high=1.0)
        self.decay = float(decay)
        self.use_num_updates = bool(use_num_updates)
        self.num_updates = 0
        self.shadow_params = [p.data.copy() for p in self.parameters]
        self.collected_params = None  # what store() saved, for restore()

    def _resolve(self, parameters, what):
        if parameters is None:
            return self.parameters
        params = _as_param_list(parameters, f"EMA.{what}")
        if len(params) != len(self.shadow_params):
            raise ValueError(f"EMA.{what}: got {len(params)} parameters, the EMA tracks "
                             f"{len(self.shadow_params)}")
        for i, (p, s) in enumerate(zip(params, self.shadow_params)):
            if p.shape != s.shape:
                raise ValueError(f"EMA.{what}: parameter {i} has shape {p.shape}, its "
                                 f"average has shape {s.shape}")
        return params

    def current_decay(self) -> float:
        """The decay the next update() will use."""
        if not self.use_num_updates:
            return self.decay
        n = self.num_updates + 1
        return min(self.decay, (1.0 + n) / (10.0 + n))

    def update(self, parameters=None) -> None:
        """shadow <- decay shadow + (1 - decay) theta, in place, for every parameter."""
        params = self._resolve(parameters, "update")
        decay = self.current_decay()
        self.num_updates += 1
        for s, p in zip(self.shadow_params, params):
            # Written as shadow + (1 - decay)(theta - shadow): equal to the formula above,
            # one scratch array, and a parameter that stops changing is matched exactly.
            diff = p.data - s
            diff *= 1.0 - decay
            s += diff

    def copy_to(self, parameters=None) -> None:
        """Overwrite the parameters' values (in place) with the averages."""
        for s, p in zip(self.shadow_params, self._resolve(parameters, "copy_to")):
            p.data[...] = s
            mark_modified(p)

    def store(self, parameters=None) -> None:
        """Save a copy of the parameters' current values, for restore()."""
        self.collected_params = [p.data.copy()
                                 for p in self._resolve(parameters, "store")]

    def restore(self, parameters=None) -> None:
        """Put back the values saved by the last store() (in place)."""
        if self.collected_params is None:
            raise RuntimeError("EMA.restore: nothing to restore; call store() first")
        for c, p in zip(self.collected_params, self._resolve(parameters, "restore")):
            p.data[...] = c
            mark_modified(p)
        self.collected_params = None

    @contextlib.contextmanager
    def average_parameters(self, parameters=None):
        """Context in which the parameters hold the averages; their values return on exit."""
        self.store(parameters)
        self.copy_to(parameters)
        try:
            yield
        finally:
            self.restore(parameters)

    def state_dict(self) -> dict:
        """``{"decay", "use_num_updates", "num_updates", "shadow_params": [arrays]}`` (copies)."""
        return {"decay": self.decay, "use_num_updates": self.use_num_updates,
                "num_updates": self.num_updates,
                "shadow_params": [s.copy() for s in self.shadow_params]}

    def load_state_dict(self, state_dict: dict) -> None:
        """Resume; averages are copied onto each parameter's device and dtype."""
        shadows = state_dict["shadow_params"]
        if len(shadows) != len(self.parameters):
            raise ValueError(f"EMA.load_state_dict: the state dict has {len(shadows)} "
                             f"averages, the EMA tracks {len(self.parameters)} parameters")
        for i, (s, p) in enumerate(zip(shadows, self.parameters)):
            if tuple(s.shape) != p.shape:
                raise ValueError(f"EMA.load_state_dict: average {i} has shape "
                                 f"{tuple(s.shape)}, the parameter has shape {p.shape}")
        _check_number("EMA", "decay", state_dict["decay"], low=0.0, high=1.0)
        self.shadow_params = [_like_param(s, p) for s, p in zip(shadows, self.parameters)]
        self.decay = float(state_dict["decay"])
        self.use_num_updates = bool(state_dict.get("use_num_updates", False))
        self.num_updates = int(state_dict.get("num_updates", 0))
