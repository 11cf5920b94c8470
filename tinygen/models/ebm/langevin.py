"""Training an energy-based model by maximum likelihood: Langevin dynamics for the
negative samples, the contrastive loss, and the chains' starting points.

The model is p_theta(x) = exp(-E_theta(x)) / Z(theta) (energies.py). Its log-likelihood
has a gradient with two terms, because Z depends on theta too:

    grad_theta log p_theta(x) = -grad_theta E_theta(x) - grad_theta log Z(theta)
                              = -grad_theta E_theta(x)
                                + E_{x^- ~ p_theta}[grad_theta E_theta(x^-)],          (1)

using grad_theta log Z = (1/Z) int grad_theta exp(-E) dx = -int p_theta(x) grad_theta E(x) dx.
The first term lowers the energy of the data x^+, the second raises the energy of the
model's own samples x^-; at a maximum of the likelihood the two balance. Averaged over
a batch of data and a batch of negative samples, (1) is minus the gradient of

    L(theta) = mean_i E_theta(x^+_i) - mean_j E_theta(x^-_j),                          (2)

with x^- held fixed (detached: the samples' dependence on theta is not part of (1)).
``contrastive_loss`` is (2), plus Du & Mordatch's (2019) energy-magnitude regulariser
alpha (mean E(x^+)^2 + mean E(x^-)^2), which keeps the energies near 0: (2) alone is
unchanged by adding a constant to E, and without it the energies drift.

Negative samples: Langevin dynamics. To sample p_theta we only need the score
grad_x log p_theta(x) = -grad_x E_theta(x), in which Z does not appear. The unadjusted
Langevin algorithm (the discretised Langevin diffusion; Welling & Teh 2011 use it with
minibatch gradients as SGLD, Du & Mordatch 2019 for EBMs) iterates, step size epsilon,

    x_{k+1} = x_k - (epsilon / 2) grad_x E_theta(x_k) + sqrt(epsilon) xi_k,
    xi_k ~ N(0, I).                                                                  (3)

As epsilon -> 0 and k -> infinity x_k is distributed as p_theta; at a finite epsilon the
stationary law is slightly off (for a quadratic energy it is a Gaussian with a known,
slightly larger covariance; the tests check it exactly). ``langevin`` runs (3).

Decoupled noise. EBM practice (Du & Mordatch 2019; Nijkamp et al. 2019, "On the
Anatomy of MCMC-Based Maximum Likelihood Learning of Energy-Based Models") takes a large
gradient step and a small noise, e.g. x - 10 grad E + 0.005 xi: with the noise's
standard deviation sigma set apart from epsilon,

    x_{k+1} = x_k - (epsilon / 2) grad_x E_theta(x_k) + sigma xi_k.                     (4)

This is (3) for the tempered energy E / T with T = sigma^2 / epsilon (substitute
epsilon' = sigma^2 and E' = E / T into (3)), so for small steps it samples
p_theta^{1/T} = exp(-E/T) / Z_T, not p_theta: with the numbers above T ~ 1e-6, a nearly
noiseless descent of the energy. Short-run chains of this kind are not samplers of
p_theta but a learned generator of their own (Nijkamp, Hill, Zhu & Wu 2019, "Learning
Non-Convergent Non-Persistent Short-Run MCMC Toward Energy-Based Model"); (1) then no
longer holds exactly, and the training still works as a heuristic.

Where the chains start. (1) needs samples of p_theta; a chain needs many steps to get
there from anywhere. The classic algorithms differ only in the chains' starting points:

    CD-k (Hinton 2002)          start at the data x^+, run k steps: cheap, biased
                                (the chains barely leave the data);
    PCD (Tieleman 2008)         start where the previous update's chains ended
                                (persistent chains: the model changes little per
                                update, so the chains stay near equilibrium);
    replay buffer (Du & Mordatch 2019, section 3.1)
                                start from a stored past sample with probability
                                1 - rho, from uniform noise with probability rho: PCD
                                with many more chains than a batch, of which a fraction
                                is restarted (so new modes can still be found).

``ReplayBuffer`` is the third; with rho = 0 and capacity = batch size it is exactly the
second. CD-k is ``langevin(E, x_pos, k, ...)``.

Symbols and code:

    symbol                code                                        shape
    E_theta               energy, a callable (an energies.py module)  (n, ...) -> (n,)
    epsilon, sigma        step_size, noise
    x_0 -> x_K (3), (4)   langevin(energy, x0, K, epsilon, sigma)     (n, ...)
    L (2) + regulariser   contrastive_loss(energy, x_pos, x_neg, alpha)  ()
    x^- starting points   ReplayBuffer.sample(n), .push(x)            (n, *shape)
"""
from __future__ import annotations

import math
import numbers

import numpy as np

from ... import backend, grad, no_grad, randn, tensor
from ...autograd import Tensor
from ... import random as _random
from ... import nn
from ...nn.module import _check_size
from .energies import _energies

__all__ = ["langevin", "contrastive_loss", "ReplayBuffer"]


def _number(value):
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _check_clip(caller, clip):
    if clip is None:
        return None
    try:
        low, high = clip
    except (TypeError, ValueError):
        raise ValueError(f"{caller}: clip must be None or a pair (low, high), got "
                         f"{clip!r}") from None
    if not (_number(low) and _number(high) and math.isfinite(low) and math.isfinite(high)
            and low < high):
        raise ValueError(f"{caller}: clip must be a pair of finite numbers low < high, got "
                         f"{clip!r}")
    return float(low), float(high)


def langevin(energy, x0, steps: int, step_size: float, noise=None, clip=None,
             return_chain: bool = False):
    """Langevin dynamics on an energy: K = ``steps`` updates (3) (or (4) with a noise
    scale of its own) from x_0 = x0, independently for every example of the batch.

        x_{k+1} = x_k - (step_size / 2) grad_x E(x_k) + sigma xi_k,   xi_k ~ N(0, I),
        sigma = sqrt(step_size) if noise is None else noise,

    then, with clip = (low, high), x_{k+1} is clipped to [low, high] (the data range).

    ``step_size`` means the same thing in both cases: epsilon, the drift being
    epsilon / 2 times the score. noise=None is the sampler of the math, (3), which
    samples p_theta as step_size -> 0. A number sets sigma apart (4): the chain then
    targets exp(-E / T) with T = noise^2 / step_size (module docstring), not p_theta;
    to reproduce a recipe written x - lambda grad E + sigma xi, pass step_size = 2 lambda
    and noise = sigma (e.g. lambda = 10, sigma = 0.005: step_size=20, noise=0.005).
    noise=0 is plain gradient descent on E with learning rate step_size / 2.

    The gradient is that of energy(x).sum(), so every example moves by the gradient of
    its own energy, provided the energy treats the examples independently (no batch
    norm in training mode). Each step starts from a detached x: no graph runs through
    the chain, and the result carries none. If ``energy`` is an ``nn.Module`` its
    parameters are frozen during the chain (requires_grad restored afterwards), so the
    backward passes skip the weight gradients; for any other callable they are computed
    and discarded. ``.grad`` of the parameters is never touched.

    Args:
        energy: a callable x (n, ...) -> energies (n,) or (n, 1), differentiable in x.
        x0: the starting points, a Tensor (n, ...) (or an array); any device, any float
            dtype (the chain keeps both).
        steps: K >= 0 (0 returns x0, detached).
        step_size: epsilon > 0.
        noise: None, or the noise's standard deviation sigma >= 0.
        clip: None, or (low, high) with low < high.
        return_chain: also return the states.

    Returns:
        x_K, a detached Tensor shaped like x0; with return_chain=True the pair
        (x_K, [x_0, x_1, ..., x_K]), K + 1 detached Tensors on x0's device.

    Raises:
        ValueError: steps < 0, step_size <= 0, noise < 0, a bad clip (each names the
            value), or an energy of the wrong shape.
    """
    if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or steps < 0:
        raise ValueError(f"langevin: steps must be an integer >= 0, got {steps!r}")
    if not (_number(step_size) and math.isfinite(step_size) and step_size > 0):
        raise ValueError(f"langevin: step_size must be a finite number > 0, got {step_size!r}")
    if noise is not None and not (_number(noise) and math.isfinite(noise) and noise >= 0):
        raise ValueError(f"langevin: noise must be None or a finite number >= 0, got "
                         f"{noise!r}")
    clip = _check_clip("langevin", clip)
    sigma = math.sqrt(step_size) if noise is None else float(noise)
    x = (x0 if isinstance(x0, Tensor) else tensor(x0)).detach()
    chain = [x]

    frozen = []
    if isinstance(energy, nn.Module):
        frozen = [(p, p.requires_grad) for p in energy.parameters()]
        for p, _ in frozen:
            p.requires_grad = False
    try:
        for _ in range(int(steps)):
            x = x.detach().requires_grad_()
            (dE_dx,) = grad(_energies(energy, x, "langevin").sum(), x)
            with no_grad():
                x = x.detach() - (0.5 * step_size) * dE_dx
                if sigma > 0:
                    x = x + sigma * randn(*x.shape, dtype=x.dtype, device=x.device)
                if clip is not None:
                    x = x.clip(*clip)
            if return_chain:
                chain.append(x)
    finally:
        for p, flag in frozen:
            p.requires_grad = flag
    if return_chain:
        return x, chain
    return x


def contrastive_loss(energy, x_pos, x_neg, alpha: float = 0.0, return_energies: bool = False):
    """The maximum-likelihood surrogate (2) with Du & Mordatch's energy regulariser:

        L = mean E(x^+) - mean E(x^-) + alpha (mean E(x^+)^2 + mean E(x^-)^2).

    Its gradient in theta, with alpha = 0, is minus the estimate (1) of the gradient of
    the mean log-likelihood of the batch x^+, when x^- are samples of p_theta: minimising
    L is gradient ascent on the likelihood. x^- is detached here, so the gradient does
    not run back into the sampler.

    Args:
        energy: a callable x (n, ...) -> (n,) or (n, 1).
        x_pos: data, a Tensor (n, ...).
        x_neg: negative samples, a Tensor (n', ...) (n' may differ from n).
        alpha: >= 0, the weight of the regulariser (the EBM benchmark uses 0.1).
        return_energies: also return the two mean energies.

    Returns:
        The scalar loss; with return_energies=True, (loss, {"energy_pos": mean E(x^+),
        "energy_neg": mean E(x^-)}), the two as detached scalar Tensors (for logging;
        no synchronisation with a GPU until read).

    Raises:
        ValueError: alpha < 0, or an energy of the wrong shape.
    """
    if not (_number(alpha) and math.isfinite(alpha) and alpha >= 0):
        raise ValueError(f"contrastive_loss: alpha must be a finite number >= 0, got "
                         f"{alpha!r}")
    e_pos = _energies(energy, x_pos, "contrastive_loss")
    e_neg = _energies(energy, x_neg.detach(), "contrastive_loss")
    loss = e_pos.mean() - e_neg.mean()
    if alpha > 0:
        loss = loss + alpha * ((e_pos * e_pos).mean() + (e_neg * e_neg).mean())
    if return_energies:
        return loss, {"energy_pos": e_pos.mean().detach(), "energy_neg": e_neg.mean().detach()}
    return loss


class ReplayBuffer:
    """The sample replay buffer of Du & Mordatch (2019, section 3.1): ``capacity`` past
    negative samples, from which the next chains start.

    ``sample(n)`` picks n distinct slots at random and returns their contents, except
    that each of the n points is replaced, with probability ``reinit_prob`` (rho),
    by fresh uniform noise on [low, high]^shape. ``push(x)`` writes the chains' final
    states back into the slots that the last ``sample`` took (the reinitialised ones
    included), so each slot holds one persistent chain that is occasionally restarted.
    A ``push`` with no ``sample`` pending writes into n random distinct slots.

    Two differences from Du & Mordatch's Algorithm 1: the buffer starts full of uniform
    noise, so it works from the first step (they start empty and fill it over time;
    with noise in every slot the first samples are the same uniform noise either way);
    and the chains' ends go back into the slots they came from, one persistent chain per
    slot (as in Grathwohl et al. 2020's buffer), where Du & Mordatch add the new samples
    to a first-in-first-out store of past ones. With reinit_prob = 0 and
    capacity = n, every sample returns all the chains (in a random order) and every push
    stores all of them: exactly persistent contrastive divergence (Tieleman 2008).

    The samples are held in a NumPy array on the CPU (capacity x prod(shape) numbers:
    10 000 MNIST images are 31 MB in float32) and copied to the device per batch; the
    randomness comes from a NumPy generator of its own, saved by ``state_dict``.

    Args:
        capacity: the number of slots, >= 1.
        shape: the shape of one sample, e.g. (2,) or (1, 28, 28).
        reinit_prob: rho in [0, 1].
        low, high: the range of the uniform noise, low < high.
        seed: the generator's seed; None seeds it from tinygen's global generator
            (``tinygen.manual_seed``).
        dtype: the samples' dtype (float32).

    Raises:
        ValueError: capacity < 1, a bad shape, rho outside [0, 1], low >= high.
    """

    def __init__(self, capacity: int, shape, reinit_prob: float = 0.05, low: float = -1.0,
                 high: float = 1.0, seed=None, dtype=np.float32):
        self.capacity = _check_size("ReplayBuffer", "capacity", capacity)
        if isinstance(shape, (int, np.integer)):
            shape = (shape,)
        self.shape = tuple(_check_size("ReplayBuffer", "shape", s) for s in shape)
        if not (_number(reinit_prob) and 0 <= reinit_prob <= 1):
            raise ValueError(f"ReplayBuffer: reinit_prob must be a number in [0, 1], got "
                             f"{reinit_prob!r}")
        self.reinit_prob = float(reinit_prob)
        self.low, self.high = _check_clip("ReplayBuffer (low, high)", (low, high))
        self.dtype = np.dtype(dtype)
        if self.dtype.kind != "f":
            raise ValueError(f"ReplayBuffer: dtype must be a float type, got {self.dtype}")
        self.rng = _random.generator(seed)
        self.buffer = self._noise(self.capacity)
        self.pending = None  # the slots of the last sample(), until push()

    def _noise(self, n):
        u = self.rng.random((n,) + self.shape)
        return (self.low + (self.high - self.low) * u).astype(self.dtype)

    def __len__(self):
        return self.capacity

    def sample(self, n: int, device: str = "cpu") -> Tensor:
        """n starting points: (n, *shape) Tensor on ``device``, each a stored sample
        (probability 1 - rho) or fresh uniform noise (probability rho). Remembers the
        slots for the next ``push``.

        Raises:
            ValueError: n < 1 or n > capacity.
        """
        n = _check_size("ReplayBuffer.sample", "n", n)
        if n > self.capacity:
            raise ValueError(f"ReplayBuffer.sample: n = {n} is more than the capacity "
                             f"{self.capacity}")
        slots = self.rng.choice(self.capacity, size=n, replace=False)
        x = self.buffer[slots]
        restart = self.rng.random(n) < self.reinit_prob
        if restart.any():
            x[restart] = self._noise(int(restart.sum()))
        self.pending = slots
        return tensor(x, device=device)

    def push(self, x) -> None:
        """Store the chains' final states x (a Tensor or array (n, *shape); copied to
        the CPU) into the slots of the last ``sample`` (which must have had the same n),
        or, with none pending, into n random distinct slots.

        Raises:
            ValueError: x is not (n, *shape), or n differs from the pending sample's, or
                n > capacity.
        """
        arr = backend.to_numpy(x.detach().data if isinstance(x, Tensor) else np.asarray(x))
        if arr.shape[1:] != self.shape or arr.ndim != len(self.shape) + 1:
            raise ValueError(f"ReplayBuffer.push: samples of shape {arr.shape}, expected "
                             f"(n, {', '.join(map(str, self.shape))})")
        n = arr.shape[0]
        if self.pending is not None:
            if n != len(self.pending):
                raise ValueError(f"ReplayBuffer.push: {n} samples, but the last sample() "
                                 f"took {len(self.pending)}")
            slots = self.pending
        else:
            if n > self.capacity:
                raise ValueError(f"ReplayBuffer.push: {n} samples, more than the capacity "
                                 f"{self.capacity}")
            slots = self.rng.choice(self.capacity, size=n, replace=False)
        self.buffer[slots] = arr.astype(self.dtype)
        self.pending = None

    def state_dict(self) -> dict:
        """Everything needed to continue exactly: the samples, the pending slots and the
        generator's state (a dict of arrays and numbers that ``tinygen.save`` stores)."""
        return {"buffer": self.buffer.copy(), "rng": self.rng.bit_generator.state,
                "pending": None if self.pending is None else self.pending.copy(),
                "reinit_prob": self.reinit_prob, "low": self.low, "high": self.high}

    def load_state_dict(self, state: dict) -> None:
        """Restore a ``state_dict``.

        Raises:
            ValueError: its buffer's shape is not (capacity, *shape).
        """
        buffer = np.asarray(backend.to_numpy(state["buffer"]))
        if buffer.shape != (self.capacity,) + self.shape:
            raise ValueError(f"ReplayBuffer.load_state_dict: buffer of shape {buffer.shape}, "
                             f"expected {(self.capacity,) + self.shape}")
        self.buffer = buffer.astype(self.dtype)
        self.rng.bit_generator.state = state["rng"]
        pending = state.get("pending")
        self.pending = None if pending is None else np.asarray(pending, dtype=np.int64)
        self.reinit_prob = float(state.get("reinit_prob", self.reinit_prob))
        self.low = float(state.get("low", self.low))
        self.high = float(state.get("high", self.high))

    def __repr__(self):
        return (f"ReplayBuffer(capacity={self.capacity}, shape={self.shape}, "
                f"reinit_prob={self.reinit_prob}, low={self.low}, high={self.high})")
