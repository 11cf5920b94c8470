"""The autoregressive factorisation, written once for every model of this family.

Any distribution over x = (x_1, ..., x_D) factorises by the chain rule of probability in
any fixed ordering of its variables (here the raster order of an image: row by row, left
to right within a row):

    p(x) = prod_{i=1}^{D} p(x_i | x_{<i}),     log p(x) = sum_i log p(x_i | x_{<i}).   (1)

An autoregressive model is one network that maps x to the parameters of every conditional
at once, with the output for x_i computed from x_{<i} only (its Jacobian with respect to
the input is strictly lower-triangular in the ordering; the tests check it). Then:

- the exact log-likelihood (1) costs one pass of the network on the data ("teacher
  forcing": every conditional sees the true earlier variables);
- sampling costs D passes: x_1 ~ p(x_1), then x_2 ~ p(x_2 | x_1), and so on, each pass
  filling one variable (for a whole batch of images at once);
- completing a partly observed x is the same loop that keeps the observed variables and
  draws the others, exact when the observed ones come first in the ordering (the upper
  half of an image); otherwise it conditions only on the observed variables before each
  drawn one.

Conditionals: Bernoulli for binary pixels, p(x_i = 1 | x_{<i}) = sigmoid(l_i), one logit
l_i per pixel; categorical for K-valued variables (VQ-VAE codes), p(x_i = k | x_{<i}) =
softmax(l_i)_k, K logits per variable. Images have one channel: the ordering of colour
channels within a pixel (van den Oord et al.'s R, G, B masks) is not built.

Symbols and code (binary images: ``event_shape`` (1, H, W), x (N, 1, H, W); K-valued
grids: ``event_shape`` (H, W), x (N, H, W) of integers):

    symbol                         code                          shape
    l, the logits                  model(x)                      (N, 1, H, W) binary,
                                                                 (N, K, H, W) K-valued
    log p(x), eq. (1)              model.log_prob(x)             (N,), nats
    x ~ p(x)                       model.sample(n)               (n, 1, H, W) or (n, H, W)
    completion                     model.sample(n, x, observed)  the same
"""
from __future__ import annotations

import numpy as np

from ... import backend, nn, no_grad, rand, tensor, zeros
from ...autograd import Tensor
from ...nn import functional as F
from ...nn.module import _check_size


class AutoregressiveModel(nn.Module):
    """A network whose output for each variable depends only on the variables before it
    in raster order, read as the conditionals of eq. (1).

    Subclasses set ``event_shape`` ((C, H, W) for binary images; (H, W) for K-valued
    grids) and ``num_classes`` (None for binary, else K), and define ``forward(x)`` -> the
    logits. A subclass may also override ``logits_for_row`` when it can compute the
    conditionals of one row from fewer rows (the convolutional models do).
    """

    event_shape: tuple = ()
    num_classes: int | None = None

    # ---- the data
    def check_input(self, x, name: str = "x") -> None:
        """Raises ValueError unless x has the shape (N, *event_shape) (the values are
        checked by ``_check_values``)."""
        if tuple(x.shape[1:]) != tuple(self.event_shape) or x.ndim != len(self.event_shape) + 1:
            raise ValueError(f"{type(self).__name__}: expected {name} of shape (N, "
                             f"{', '.join(map(str, self.event_shape))}), got {tuple(x.shape)}")

    def _check_values(self, x) -> None:
        values = np.asarray(backend.to_device(x.data if isinstance(x, Tensor) else x, "cpu"))
        if self.num_classes is None:
            if not np.isin(values, (0, 1)).all():
                raise ValueError(f"{type(self).__name__}: binary pixels must be 0 or 1, got "
                                 f"values in [{values.min()}, {values.max()}]")
        elif values.dtype.kind not in "iu" or values.min(initial=0) < 0 or \
                values.max(initial=0) >= self.num_classes:
            raise ValueError(f"{type(self).__name__}: variables must be integers in [0, "
                             f"{self.num_classes}), got {values.dtype} values in "
                             f"[{values.min()}, {values.max()}]")

    # ---- eq. (1)
    def log_prob(self, x, check: bool = True):
        """log p(x) = sum_i log p(x_i | x_{<i}), eq. (1), in one pass of the network.
        x: (N, *event_shape) -> (N,), nats.

        Args:
            check: verify that x holds valid values (0/1, or integers in [0, K)); off
                saves a pass over the data in training.
        Raises:
            ValueError: x has the wrong shape or (with check) invalid values.
        """
        x = x if isinstance(x, Tensor) else tensor(x)
        self.check_input(x)
        if check:
            self._check_values(x)
        if self.num_classes is None:
            x = x.astype(self._device_dtype()[1])   # 0/1 given as integers: the model's dtype
        logits = self(x)
        axes = tuple(range(1, x.ndim))
        if self.num_classes is None:
            # log Bernoulli(x; sigmoid(l)) = x l - softplus(l), stable for any l
            return (x * logits - F.softplus(logits)).sum(axis=axes)
        log_p = F.log_softmax(logits, axis=1)                 # (N, K, H, W)
        chosen = F.one_hot(x, self.num_classes).transpose(0, 3, 1, 2)
        return (log_p * chosen.astype(log_p.dtype)).sum(axis=tuple(range(1, logits.ndim)))

    # ---- sampling one variable at a time
    def logits_for_row(self, x, row: int):
        """The logits of the variables of row ``row`` (axis -2 of the event), from x with
        every earlier variable filled in: (N, C, W) binary or (N, K, W) K-valued. This
        default runs the whole network; models whose row r depends only on rows <= r run
        it on those rows only."""
        return self(x)[..., row, :]

    def _device_dtype(self):
        p = next(iter(self.parameters()))
        return p.device, p.dtype

    def sample(self, n: int, x=None, observed=None):
        """n draws from eq. (1), one variable per pass in raster order, batched over the
        n images; no gradient.

        With ``x`` and ``observed`` (a boolean array broadcasting to x's shape), the
        variables where observed is True are kept from x and the others drawn in raster
        order, each conditioned on every variable before it (observed or drawn): a
        completion, an exact draw from p(missing | observed) when every observed variable
        precedes every missing one (e.g. the upper half of an image observed).

        Returns (n, *event_shape): 0.0/1.0 floats (binary) or int64 codes (K-valued).

        Raises:
            ValueError: n < 1; x given without observed or the reverse; x not (n,
                *event_shape), or invalid values at observed positions; observed not
                boolean or not broadcastable to x.
        """
        n = _check_size(f"{type(self).__name__}.sample", "n", n)
        device, dtype = self._device_dtype()
        shape = (n,) + tuple(self.event_shape)
        with no_grad():
            if x is None:
                if observed is not None:
                    raise ValueError(f"{type(self).__name__}.sample: give x and observed "
                                     f"together")
                keep = None
                cur = zeros(*shape, dtype=dtype if self.num_classes is None else np.int64,
                            device=device)
            else:
                cur, keep = self._observed(x, observed, shape, device, dtype)
            H, W = self.event_shape[-2:]
            for r in range(H):
                for c in range(W):
                    if keep is not None and keep[..., r, c].all():
                        continue   # observed in every image: nothing to draw
                    logits = self.logits_for_row(cur, r)[..., c]      # (n, C) or (n, K)
                    cur = self._put(cur, self._draw(logits, device, dtype), r, c, keep)
        return cur

    def _observed(self, x, observed, shape, device, dtype):
        """The partly observed x on the device, with its unobserved entries zeroed, and
        ``observed`` as a boolean NumPy array of x's shape (see ``sample``)."""
        name = f"{type(self).__name__}.sample"
        if observed is None:
            raise ValueError(f"{name}: give x and observed together")
        x = x if isinstance(x, Tensor) else tensor(x)
        if tuple(x.shape) != shape:
            raise ValueError(f"{name}: x has shape {tuple(x.shape)}, expected {shape}")
        keep = np.asarray(backend.to_device(
            observed.data if isinstance(observed, Tensor) else observed, "cpu"))
        if keep.dtype != bool:
            raise ValueError(f"{name}: observed must be a boolean array, got {keep.dtype}")
        try:
            keep = np.broadcast_to(keep, shape)
        except ValueError:
            raise ValueError(f"{name}: observed of shape {keep.shape} does not broadcast "
                             f"to x's shape {shape}") from None
        values = np.asarray(backend.to_device(x.data, "cpu"))
        self._check_values(values[keep])
        values = np.where(keep, values, 0).astype(
            dtype if self.num_classes is None else np.int64)
        return tensor(values, device=device), keep

    def _draw(self, logits, device, dtype):
        """One draw per image from the conditionals whose logits are given: (n, C) -> 0/1
        (Bernoulli), or (n, K) -> integer codes (categorical, by the inverse CDF)."""
        u = rand(*logits.shape[:1], *(logits.shape[1:] if self.num_classes is None else ()),
                 dtype=logits.dtype, device=device)
        if self.num_classes is None:
            return (u < logits.sigmoid()).astype(dtype)        # P(u < p) = p
        p = F.softmax(logits, axis=1).data                     # (n, K)
        xp = backend.get_array_module(p)
        cdf = xp.cumsum(p, axis=1)
        k = (cdf <= u.data[:, None]).sum(axis=1)               # the first k with cdf > u
        return Tensor(xp.minimum(k, self.num_classes - 1).astype(np.int64))

    def _put(self, cur, draw, r, c, keep):
        """cur with position (row r, column c) set to draw, except where observed."""
        xp = backend.get_array_module(cur.data)
        new = cur.data.copy()
        if self.num_classes is None:
            slot = new[:, :, r, c]
            fresh = draw.data
            if keep is not None:
                fresh = xp.where(xp.asarray(keep[:, :, r, c]), slot, fresh)
            new[:, :, r, c] = fresh
        else:
            slot = new[:, r, c]
            fresh = draw.data
            if keep is not None:
                fresh = xp.where(xp.asarray(keep[:, r, c]), slot, fresh)
            new[:, r, c] = fresh
        return Tensor(new)
