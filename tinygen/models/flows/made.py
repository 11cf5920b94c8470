"""MADE: the masked autoencoder for distribution estimation (Germain, Gregor, Murray &
Larochelle 2015, "MADE: Masked Autoencoder for Distribution Estimation"), and its
Gaussian variant, the building block of the masked autoregressive flow (maf.py).

Any joint distribution over x in R^D (or {0, 1}^D) factorises in an ordering of the
variables. MADE writes the ordering as a degree m^0(d) in {1, ..., D} for each input
x_d (x_d is the m^0(d)-th variable; the "natural" ordering is m^0(d) = d; the
equations are numbered within this file):

    p(x) = prod_d p(x_d | x_{<d}),     x_{<d} = { x_e : m^0(e) < m^0(d) }.          (1)

One feed-forward network computes the parameters of every conditional in one pass, if
the parameters of x_d depend only on x_{<d}. MADE ensures it by masking the weight
matrices of an ordinary MLP. Each hidden unit k of layer l = 1..L gets a degree m^l(k):
it may depend only on the inputs of degree <= m^l(k). The degrees are drawn uniformly,

    m^l(k) ~ U{ min_{k'} m^{l-1}(k'), ..., D - 1 },                                 (2)

(Germain et al., section 4.2) so that no unit is left without inputs and none sees all D
(a unit of degree D could feed no output). A connection from unit d of layer l - 1 to unit
k of layer l is kept iff it respects the degrees (sections 4.1 and 4.2):

    M^{W^l}[k, d] = 1[ m^l(k) >= m^{l-1}(d) ],                                       (3)

and a connection from the last hidden layer to the output of x_d iff it comes from
strictly earlier variables:

    M^V[d, k] = 1[ m^0(d) > m^L(k) ].                                                (4)

The masked layers compute h^l = g(h^{l-1} (W^l ⊙ M^{W^l})^T + b^l) and the output
x_hat = h^L (V ⊙ M^V)^T + c. By induction on l, unit k of layer l depends on at most the
inputs of degree <= m^l(k), so the output for x_d depends on at most x_{<d}: the
Jacobian d x_hat / dx is strictly lower-triangular in the ordering (tests prove it).
With several parameters per variable (a Gaussian's mean and log-scale) each output unit
takes the degree m^0(d) of the variable it belongs to.

Order-agnostic and connectivity-agnostic training (sections 4.3 and 4.4): the degrees
(2), and with ordering="random" also the ordering m^0, are resampled for every minibatch
from a fixed set of ``num_masks`` mask sets, so one network learns many factorisations
(1) at once. At test time each mask set is a model p_k(x); their ensemble is the mixture

    p(x) = 1/K sum_k p_k(x),   log p(x) = logsumexp_k log p_k(x) - log K,          (5)

an average of probabilities, never of logits (see ``MADE.log_prob_ensemble``).

Likelihoods. Binary x (Germain et al., section 3): one logit l_d per variable,
p(x_d = 1 | x_{<d}) = sigmoid(l_d), and log p(x) = sum_d [x_d l_d - softplus(l_d)].
Real x (Papamakarios et al. 2017, section 3.1, eq. 3): two outputs per variable,

    p(x_d | x_{<d}) = N(x_d; mu_d, (exp alpha_d)^2),   mu_d = f_{mu_d}(x_{<d}),
                                                        alpha_d = f_{alpha_d}(x_{<d}),

equivalently x_d = u_d exp(alpha_d) + mu_d with u ~ N(0, I): a one-layer MAF.
Sampling runs the network D times, one variable per pass in the ordering (the price of
evaluating all conditionals in one pass).

Symbols and code (x: (N, D); every log-probability in nats, one per example):

    symbol                      code                                shape
    D, K outputs per variable   num_inputs, num_outputs_per_input
    m^0, m^1, ..., m^L          degrees                             list of (D,), (H_l,)
    M^{W^l}, M^V                MaskedLinear.mask                   (out, in)
    x_hat, parameters of x_d    MADE(x)[:, k * D + d], k < K        (N, K D)
    log p(x), Bernoulli (1)     MADE.log_prob(x)                    (N,)
    ensemble (5)                MADE.log_prob_ensemble(x, K)        (N,)
    mu, alpha                   GaussianMADE.mu_alpha(x)            (N, D) each
    u, log |det du/dx|          GaussianMADE.u_from_x(x)            (N, D), (N,)
    x from u (D passes)         GaussianMADE.x_from_u(u)            (N, D)
"""
from __future__ import annotations

import math

import numpy as np

from ... import backend, nn, no_grad, rand, randn, stack, where, zeros, zeros_like
from ...autograd import Tensor
from ...distributions import Bernoulli, Independent
from ...nn import functional as F
from ...nn.module import _check_size
from .base import standard_normal_log_prob

__all__ = ["MaskedLinear", "MADE", "GaussianMADE", "ORDERINGS", "ACTIVATIONS"]

ALPHA_BOUND = 10.0   # |alpha| < ALPHA_BOUND (see GaussianMADE.mu_alpha)
ORDERINGS = ("natural", "random")
ACTIVATIONS = {"relu": F.relu, "tanh": F.tanh}


class MaskedLinear(nn.Linear):
    """y = x (W ⊙ M)^T + b: a Linear layer whose weight is multiplied elementwise by a
    fixed 0/1 mask M (eqs. 3 and 4). x: (..., in_features) -> (..., out_features).

    The mask, shape (out_features, in_features) like the weight, is a buffer: saved in
    ``state_dict``, moved by ``.to(device)``, never trained. It starts as all ones (an
    ordinary Linear layer); ``set_mask`` replaces it. A weight whose mask is 0 gets a
    zero gradient, so it stays at its (unused) value.

    Raises:
        ValueError: from Linear for sizes < 0, or an input whose last axis is not
            in_features.
    """

    def __init__(self, in_features: int, out_features: int, bias: bool = True):
        super().__init__(in_features, out_features, bias)
        self.register_buffer("mask", Tensor(np.ones((self.out_features, self.in_features),
                                                    dtype=self.weight.dtype)))

    def set_mask(self, mask) -> None:
        """Use ``mask`` (array-like of 0/1, shape (out_features, in_features)) from now on.

        A new buffer tensor is made (on the weight's device, in its dtype) rather than
        the old one overwritten, so a graph built with the old mask still differentiates
        correctly (``MADE.log_prob_ensemble`` relies on it).

        Raises:
            ValueError: the mask's shape is not (out_features, in_features), or it holds
                values other than 0 and 1.
        """
        m = np.asarray(backend.to_device(mask.data if isinstance(mask, Tensor) else mask,
                                         "cpu"))
        expected = (self.out_features, self.in_features)
        if m.shape != expected:
            raise ValueError(f"MaskedLinear({self.in_features}, {self.out_features}).set_mask: "
                             f"mask of shape {m.shape}, expected {expected}")
        if not np.isin(m, (0, 1)).all():
            raise ValueError("MaskedLinear.set_mask: the mask must hold only 0 and 1")
        self.mask = Tensor(backend.to_device(m.astype(self.weight.dtype), self.weight.device))

    def forward(self, x):
        if x.shape[-1] != self.in_features:
            raise ValueError(f"MaskedLinear({self.in_features}, {self.out_features}): input's "
                             f"last axis has {x.shape[-1]} features (shape {x.shape})")
        return F.linear(x, self.weight * self.mask, self.bias)


class MADE(nn.Module):
    """The masked autoencoder (module docstring): an MLP D -> H_1 -> ... -> H_L -> K D
    whose output for variable x_d depends only on x_{<d} in the ordering m^0.

    Args:
        num_inputs: D >= 1.
        hidden_sizes: (H_1, ..., H_L), each >= 1; () gives a masked linear map (a
            fully visible sigmoid belief net for binary x). Hidden layers narrower than
            D - 1 leave some degrees unused, which restricts the model but keeps it
            valid.
        num_outputs_per_input: K >= 1; output j = k D + d is the k-th parameter of x_d,
            so ``out.chunk(K, axis=1)`` gives K tensors (N, D) in the variables' order.
        ordering: "natural" (m^0(d) = d + 1 for the 0-based index d) or "random" (a
            permutation drawn for each mask set).
        num_masks: how many mask sets to cycle through (connectivity-agnostic training,
            sections 4.3 and 4.4); 1 = a fixed network.
        seed: mask set i is drawn from ``numpy.random.default_rng([seed, i])``, the
            same every time, independent of the global generator.
        activation: "relu" or "tanh", for the hidden layers.

    Raises:
        ValueError: a size < 1, an unknown ordering or activation.
        TypeError: a size is not an integer.

    With D = 1 the degree range (2) is empty; hidden units then get degree 0 and see
    no input, and the output for x_1 is a learned constant, which is what (1) asks for.
    """

    def __init__(self, num_inputs: int, hidden_sizes=(), num_outputs_per_input: int = 1,
                 ordering: str = "natural", num_masks: int = 1, seed: int = 0,
                 activation: str = "relu"):
        super().__init__()
        name = type(self).__name__
        self.num_inputs = _check_size(name, "num_inputs", num_inputs)
        if isinstance(hidden_sizes, (int, np.integer)):
            hidden_sizes = (hidden_sizes,)
        self.hidden_sizes = tuple(_check_size(name, f"hidden_sizes[{i}]", h)
                                  for i, h in enumerate(hidden_sizes))
        self.num_outputs_per_input = _check_size(name, "num_outputs_per_input",
                                                 num_outputs_per_input)
        if ordering not in ORDERINGS:
            raise ValueError(f"{name}: ordering must be one of {', '.join(ORDERINGS)}, got "
                             f"{ordering!r}")
        if activation not in ACTIVATIONS:
            raise ValueError(f"{name}: activation must be one of {', '.join(ACTIVATIONS)}, "
                             f"got {activation!r}")
        self.ordering, self.activation = ordering, activation
        self.num_masks = _check_size(name, "num_masks", num_masks)
        self.seed = int(seed)
        D, K = self.num_inputs, self.num_outputs_per_input
        sizes = (D,) + self.hidden_sizes + (K * D,)
        self.layers = nn.ModuleList(MaskedLinear(a, b) for a, b in zip(sizes[:-1], sizes[1:]))
        self.register_buffer("mask_index", Tensor(np.array(0, dtype=np.int64)))
        self.set_mask_index(0)

    # ---- degrees and masks, eqs. (2) to (4)
    def degrees_of(self, index: int):
        """[m^0, m^1, ..., m^L] of mask set ``index``: int64 arrays (D,), (H_1,), ...

        m^0 is the ordering (values 1..D, a permutation); m^l is drawn by (2).
        """
        D = self.num_inputs
        rng = np.random.default_rng([self.seed, int(index)])
        if self.ordering == "natural":
            m0 = np.arange(1, D + 1)
        else:
            m0 = rng.permutation(D) + 1
        degrees = [m0.astype(np.int64)]
        for H in self.hidden_sizes:
            low = int(degrees[-1].min())
            if D == 1:
                m = np.zeros(H, dtype=np.int64)
            else:
                m = rng.integers(low, D, size=H, dtype=np.int64)  # {low, ..., D - 1}
            degrees.append(m)
        return degrees

    @property
    def degrees(self):
        """[m^0, m^1, ..., m^L] of the mask set in use (see ``degrees_of``)."""
        return self.degrees_of(int(self.mask_index.item()))

    @property
    def ordering_degrees(self) -> np.ndarray:
        """m^0 of the mask set in use: (D,) int64, x_d is the m^0[d]-th variable."""
        return self.degrees[0]

    def masks_of(self, index: int):
        """The masks of mask set ``index``: [M^{W^1}, ..., M^{W^L}, M^V], float arrays of
        the layers' weight shapes (out, in), by eqs. (3) and (4)."""
        m = self.degrees_of(index)
        masks = [(m[l][:, None] >= m[l - 1][None, :]) for l in range(1, len(m))]
        # each of the K parameters of x_d sits at output k D + d and takes x_d's degree
        out_degrees = np.tile(m[0], self.num_outputs_per_input)
        masks.append(out_degrees[:, None] > m[-1][None, :])
        return [mk.astype(np.float32) for mk in masks]

    def set_mask_index(self, index: int) -> None:
        """Switch to mask set ``index`` (0 <= index < num_masks).

        Raises:
            ValueError: index outside [0, num_masks).
        """
        if not 0 <= int(index) < self.num_masks:
            raise ValueError(f"{type(self).__name__}: mask index must lie in [0, "
                             f"{self.num_masks}), got {index}")
        for layer, mask in zip(self.layers, self.masks_of(index)):
            layer.set_mask(mask)
        self.mask_index.data[...] = int(index)

    def update_masks(self) -> None:
        """Move to the next mask set, cyclically (call once per minibatch when training
        connectivity-agnostically). With num_masks = 1 nothing changes."""
        if self.num_masks > 1:
            self.set_mask_index((int(self.mask_index.item()) + 1) % self.num_masks)

    # ---- the network
    def _check_input(self, x):
        if x.ndim != 2 or x.shape[1] != self.num_inputs:
            raise ValueError(f"{type(self).__name__}: expected input (N, {self.num_inputs}), "
                             f"got shape {x.shape}")

    def forward(self, x):
        """x: (N, D) -> the parameters (N, K D); column k D + d is the k-th parameter of
        x_d and depends only on x_{<d} (the variables of smaller degree m^0).

        Raises:
            ValueError: x is not (N, D).
        """
        self._check_input(x)
        g = ACTIVATIONS[self.activation]
        h = x
        for layer in self.layers[:-1]:
            h = g(layer(h))
        return self.layers[-1](h)

    # ---- binary x: Bernoulli conditionals
    def _need_logits(self, what):
        if self.num_outputs_per_input != 1:
            raise ValueError(f"{type(self).__name__}.{what}: the Bernoulli likelihood needs "
                             f"num_outputs_per_input = 1 (one logit per variable), got "
                             f"{self.num_outputs_per_input}")

    def log_prob(self, x):
        """log p(x) = sum_d [x_d l_d - softplus(l_d)] with the logits l = MADE(x), eq. (1)
        with Bernoulli conditionals p(x_d = 1 | x_{<d}) = sigmoid(l_d), under the mask
        set in use. x: (N, D) of 0.0 and 1.0 -> (N,), nats.

        Raises:
            ValueError: x is not (N, D), or num_outputs_per_input != 1.
        """
        self._need_logits("log_prob")
        self._check_input(x)
        return Independent(Bernoulli(logits=self(x)), 1).log_prob(x)

    def log_prob_ensemble(self, x, num_masks: int | None = None):
        """log of the mixture of the first ``num_masks`` mask sets (eq. 5):
        log (1/K sum_k p_k(x)) = logsumexp_k log p_k(x) - log K. x: (N, D) -> (N,), nats.

        Uses ``log_prob`` of this class (Bernoulli here, Gaussian in GaussianMADE). The
        mask set in use before the call is restored afterwards. Differentiable.

        Args:
            num_masks: K, 1 <= K <= self.num_masks (default: all of them).
        Raises:
            ValueError: K outside [1, self.num_masks], or what log_prob raises.
        """
        K = self.num_masks if num_masks is None else num_masks
        if isinstance(K, bool) or not isinstance(K, (int, np.integer)) \
                or not 1 <= K <= self.num_masks:
            raise ValueError(f"{type(self).__name__}.log_prob_ensemble: num_masks must be an "
                             f"integer in [1, {self.num_masks}], got {num_masks!r}")
        start = int(self.mask_index.item())
        log_p = []
        try:
            for k in range(int(K)):
                self.set_mask_index(k)
                log_p.append(self.log_prob(x))
        finally:
            self.set_mask_index(start)
        # Average the probabilities, not the logits: each p_k is normalised, so their
        # mean is a normalised mixture. The mean of the logits is a different network
        # output, and when the mask sets use different orderings its "conditional" for
        # x_d mixes outputs that condition on different variables, so the product (1)
        # of those conditionals no longer sums to 1 over x (the tests show it does not).
        return stack(log_p, axis=0).logsumexp(axis=0) - math.log(int(K))

    @property
    def _device(self):
        return self.layers[0].weight.device

    @property
    def _dtype(self):
        return self.layers[0].weight.dtype

    def sample(self, n: int):
        """n draws x ~ p(x) of eq. (1) with Bernoulli conditionals, under the mask set in
        use: (n, D) of 0.0 and 1.0, no gradient.

        D passes of the network: pass i fills the variable with m^0(d) = i, whose logit
        depends only on the variables already filled; the others are still 0 and do not
        reach it (masks).

        Raises:
            ValueError: n < 1, or num_outputs_per_input != 1.
        """
        self._need_logits("sample")
        n = _check_size(f"{type(self).__name__}.sample", "n", n)
        D, m0 = self.num_inputs, self.ordering_degrees
        with no_grad():
            v = rand(n, D, dtype=self._dtype, device=self._device)
            x = zeros(n, D, dtype=self._dtype, device=self._device)
            for i in range(1, D + 1):
                draw = (v < self(x).sigmoid()).astype(self._dtype)  # P(v < p) = p
                x = where(m0 == i, draw, x)
        return x

    def extra_repr(self):
        return (f"num_inputs={self.num_inputs}, hidden_sizes={self.hidden_sizes}, "
                f"num_outputs_per_input={self.num_outputs_per_input}, "
                f"ordering={self.ordering!r}, num_masks={self.num_masks}, seed={self.seed}, "
                f"activation={self.activation!r}")


class GaussianMADE(MADE):
    """MADE with Gaussian conditionals (Papamakarios et al. 2017, section 3.1):
    p(x_d | x_{<d}) = N(x_d; mu_d, (exp alpha_d)^2), two outputs per variable.

    As a change of variables, u = (x - mu) ⊙ exp(-alpha) ~ N(0, I) (eq. 5 of the MAF
    paper), so this is one layer of a MAF; ``MAFLayer`` wraps it as a Flow.

    Args: as MADE, without num_outputs_per_input (always 2: [mu | alpha]).
    Raises: as MADE.
    """

    def __init__(self, num_inputs: int, hidden_sizes=(), ordering: str = "natural",
                 num_masks: int = 1, seed: int = 0, activation: str = "relu"):
        super().__init__(num_inputs, hidden_sizes, 2, ordering, num_masks, seed, activation)

    def mu_alpha(self, x):
        """mu_d(x_{<d}) and alpha_d(x_{<d}) (log of the standard deviation, softly
        bounded to (-10, 10)):
        x (N, D) -> two tensors (N, D).

        Raises:
            ValueError: x is not (N, D).
        """
        mu, raw = self(x).chunk(2, axis=1)
        # alpha = A tanh(raw / A), about raw for |raw| << A = 10: a soft bound, so that
        # exp(+-alpha) stays within e^10. Far from the data a ReLU network's outputs grow
        # linearly; unbounded, exp(-alpha) there overflowed to inf in float32 and the next
        # layer turned inf - inf into NaN (a density plot of a briefly trained MAF on
        # 8gaussians met it). The layer stays exactly invertible with the same log-det.
        return mu, ALPHA_BOUND * (raw / ALPHA_BOUND).tanh()

    def u_from_x(self, x):
        """The density direction, one pass (MAF paper, eqs. 5 and 6):
        u_d = (x_d - mu_d) exp(-alpha_d), log |det du/dx| = -sum_d alpha_d (the Jacobian
        is triangular in the ordering, with diagonal exp(-alpha_d)).
        x: (N, D) -> u (N, D), log_det (N,) in nats.

        Raises:
            ValueError: x is not (N, D).
        """
        mu, alpha = self.mu_alpha(x)
        return (x - mu) * (-alpha).exp(), -alpha.sum(axis=1)

    def x_from_u(self, u):
        """The sampling direction, D passes (MAF paper, eq. 4): x_d = u_d exp(alpha_d) +
        mu_d, the variables filled one per pass in the ordering m^0 (the variables not yet
        filled stay 0 and cannot reach the one being filled). u: (N, D) -> x (N, D);
        differentiable (the graph is D passes deep).

        Raises:
            ValueError: u is not (N, D).
        """
        self._check_input(u)
        m0 = self.ordering_degrees
        x = zeros_like(u)
        for i in range(1, self.num_inputs + 1):
            mu, alpha = self.mu_alpha(x)
            x = where(m0 == i, u * alpha.exp() + mu, x)
        return x

    def log_prob(self, x):
        """log p(x) = log N(u; 0, I) - sum_d alpha_d with u = u_from_x(x) (eq. 1 with
        Gaussian conditionals). x: (N, D) real -> (N,), nats.

        Raises:
            ValueError: x is not (N, D).
        """
        u, log_det = self.u_from_x(x)
        return standard_normal_log_prob(u) + log_det

    def sample(self, n: int):
        """n draws x = x_from_u(u), u ~ N(0, I): (n, D), no gradient.

        Raises:
            ValueError: n < 1.
        """
        n = _check_size(f"{type(self).__name__}.sample", "n", n)
        with no_grad():
            u = randn(n, self.num_inputs, dtype=self._dtype, device=self._device)
            return self.x_from_u(u)
