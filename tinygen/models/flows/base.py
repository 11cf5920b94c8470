"""The change of variables, written once.

A normalizing flow is an invertible map f from data x in R^D to a latent z = f(x) with a
simple density p_Z (here N(0, I)). Because f is a bijection,

    log p_X(x) = log p_Z(f(x)) + log |det df/dx (x)|                       (1)

(Dinh et al. 2015, eq. 1; Rezende & Mohamed 2015). A flow is a composition of layers
f = f_K o ... o f_1; the Jacobian of a composition is the product of the layers'
Jacobians, so its log-determinant is the sum of theirs:

    log |det df/dx| = sum_k log |det df_k/dh_{k-1}|,   h_0 = x,  h_k = f_k(h_{k-1}).

Every layer here is a ``Flow``: ``forward(x)`` returns (y, log_det) with log_det of
shape (N,), one number per example, and ``inverse(y)`` returns x exactly (up to
rounding). ``NormalizingFlow`` puts a stack of layers over the standard normal and
evaluates (1); sampling runs the layers backwards from z ~ N(0, T^2 I) (T is the
temperature of Kingma & Dhariwal 2018, section 6: T < 1 trades diversity for quality;
the paper defines it as p_T(x) proportional to p(x)^(T^2), which scaling z reaches
exactly only for volume-preserving flows; for the others it is the same practice as
Glow's code, an approximation).
"""
from __future__ import annotations

import math

import tinygen as tg
from tinygen import nn

__all__ = ["Flow", "SequentialFlow", "NormalizingFlow", "standard_normal_log_prob"]


class Flow(nn.Module):
    """One invertible layer y = f(x) with a tractable log |det df/dx|.

    Subclasses implement ``forward(x) -> (y, log_det)``, log_det of shape (N,) (N the
    batch size, the first axis of x), and ``inverse(y) -> x``.
    """

    def forward(self, x):
        raise NotImplementedError

    def inverse(self, y):
        raise NotImplementedError


class SequentialFlow(Flow):
    """f = f_K o ... o f_1: the layers applied in order, their log-determinants summed;
    the inverse applies the layers' inverses in reverse order.

    Args:
        *layers: ``Flow`` modules.
    Raises:
        TypeError: a layer is not a Flow.
    """

    def __init__(self, *layers):
        super().__init__()
        for i, layer in enumerate(layers):
            if not isinstance(layer, Flow):
                raise TypeError(f"SequentialFlow: layer {i} is a {type(layer).__name__}, "
                                "expected a Flow (forward -> (y, log_det), inverse)")
        self.layers = nn.ModuleList(layers)

    def forward(self, x):
        log_det = 0.0
        for layer in self.layers:
            x, ld = layer(x)
            log_det = log_det + ld
        return x, log_det

    def inverse(self, y):
        for layer in reversed(self.layers):
            y = layer.inverse(y)
        return y

    def trajectory(self, x):
        """[x, h_1, ..., h_K]: the data carried through each layer in turn (for the
        pictures of a flow bending the data into the Gaussian)."""
        out = [x]
        for layer in self.layers:
            x, _ = layer(x)
            out.append(x)
        return out


    def inverse_trajectory(self, z):
        """[z, f_K^{-1}(z), ..., x]: a latent carried back through each layer's inverse
        in turn (the pictures of a flow bending the Gaussian into the data)."""
        out = [z]
        for layer in reversed(self.layers):
            z = layer.inverse(z)
            out.append(z)
        return out


def standard_normal_log_prob(z):
    """log N(z; 0, I) summed over every axis but the first: (N, ...) -> (N,), nats."""
    d = math.prod(z.shape[1:])
    return -0.5 * (z * z).reshape(z.shape[0], -1).sum(axis=1) - 0.5 * d * math.log(2 * math.pi)


class NormalizingFlow(nn.Module):
    """A flow f over the standard normal: log p(x) by the change of variables (1).

    Args:
        flow: a ``Flow`` from data space to latent space.
        event_shape: the shape of one example, e.g. (2,) for points or (1, 28, 28) for
            images.
        latent_shape: the shape of one z, if the flow changes the shape (e.g. a
            multi-scale flow ends with flat latents); default ``event_shape``.
    """

    def __init__(self, flow: Flow, event_shape, latent_shape=None):
        super().__init__()
        if not isinstance(flow, Flow):
            raise TypeError(f"NormalizingFlow: flow is a {type(flow).__name__}, expected a Flow")
        self.flow = flow
        self.event_shape = tuple(int(s) for s in event_shape)
        self.latent_shape = tuple(int(s) for s in (latent_shape or event_shape))

    def log_prob(self, x):
        """log p_X(x) = log p_Z(f(x)) + log |det df/dx|: (N, *event_shape) -> (N,), nats."""
        z, log_det = self.flow(x)
        return standard_normal_log_prob(z) + log_det

    def forward(self, x):
        """The latent z = f(x) and log |det df/dx|, as the flow returns them."""
        return self.flow(x)

    def sample(self, n: int, temperature: float = 1.0, device=None):
        """n samples x = f^{-1}(z), z ~ N(0, temperature^2 I): (n, *event_shape).

        Returns the flow's inverse of z; draw z yourself and call ``flow.inverse`` to
        interpolate or to reuse latents.

        Raises:
            ValueError: n < 1 or temperature < 0.
        """
        if int(n) < 1:
            raise ValueError(f"NormalizingFlow.sample: n must be >= 1, got {n}")
        if temperature < 0:
            raise ValueError(f"NormalizingFlow.sample: temperature must be >= 0, got {temperature}")
        device = device or self.device
        z = tg.randn(int(n), *self.latent_shape, device=device) * float(temperature)
        return self.flow.inverse(z)

    @property
    def device(self):
        for p in self.parameters():
            return p.device
        return "cpu"
