"""NADE, the neural autoregressive distribution estimator (Larochelle & Murray 2011, "The
Neural Autoregressive Distribution Estimator", AISTATS): the factorisation of base.py,
p(x) = prod_d p(x_d | x_{<d}), for binary x in {0, 1}^D, with one small network per
conditional, all sharing their weights.

Each conditional is a one-hidden-layer network of the variables before it (eqs. 6 and 7
of the paper; W is H x D, V is D x H, sigm the logistic function):

    h_d = sigm(c + W_{:, <d} x_{<d}),                                                   (1)
    p(x_d = 1 | x_{<d}) = sigm(b_d + V_{d, :} h_d).                                     (2)

Written as D separate networks, (1) costs O(D H) for each d, O(D^2 H) in all. The
columns of W are shared between the conditionals, so the pre-activations obey the
recurrence (section 3 of the paper)

    a_1 = c,     a_{d+1} = a_d + W_{:, d} x_d,     h_d = sigm(a_d),                     (3)

and all D hidden layers cost O(D H), the price of one ordinary network. Vectorised over a
batch, (3) is a running sum along d of the terms W_{:, d} x_d, one ``cumsum``. Sampling
follows (3) too: draw x_1, add its column, draw x_2, ..., O(D H) for a whole sample.

NADE is also the mean-field inference of an RBM made tractable (section 2 of the paper):
an RBM's p(x_d | x_{<d}) is intractable, and (1) with tied weights is one step of its
mean-field approximation, with W and V then trained freely.

Symbols and code (x: (N, 1, H, W) binary images, flattened in raster order to (N, D)):

    symbol              code                          shape
    W, V                NADE.W, NADE.V                (H, D), (D, H)
    b, c                NADE.b, NADE.c                (D,), (H,)
    a_d, all d (3)      NADE.hidden_preactivations    (N, D, H)
    logits of (2)       NADE(x)                       (N, 1, H, W)
"""
from __future__ import annotations


from ... import cat, no_grad, rand, randn, stack, tensor, where, zeros
from ...nn.module import Parameter, _check_size
from .base import AutoregressiveModel
from .pixelcnn import image_hw


class NADE(AutoregressiveModel):
    """NADE for binary images (1, H, W) in raster order.

    Args:
        image_size: (H, W), or one int for a square image; D = H W.
        hidden: H >= 1 hidden units (the paper's MNIST model: 500).

    The parameters start as W, V ~ N(0, 0.01^2) (from the global generator) and
    b = c = 0; a recipe may set b to the pixels' log-odds.

    Raises:
        ValueError: a size < 1.
    """

    def __init__(self, image_size=28, hidden: int = 500):
        super().__init__()
        name = type(self).__name__
        Hi, Wi = image_hw(name, image_size)
        self.event_shape = (1, Hi, Wi)
        self.num_inputs = D = Hi * Wi
        self.hidden = H = _check_size(name, "hidden", hidden)
        self.W = Parameter(randn(H, D) * 0.01)
        self.V = Parameter(randn(D, H) * 0.01)
        self.b = Parameter(zeros(D))
        self.c = Parameter(zeros(H))

    def hidden_preactivations(self, x):
        """a_1, ..., a_D of eq. (3) for a batch: x (N, D) -> (N, D, H). a_d depends on
        x_{<d} only: it is c plus the running sum of the terms W_{:, e} x_e, e < d."""
        N, D = x.shape
        terms = x[:, :D - 1, None] * self.W.transpose()[None, :D - 1, :]   # (N, D-1, H)
        first = self.c.reshape(1, 1, self.hidden).broadcast_to((N, 1, self.hidden))
        return cat([first, terms], axis=1).cumsum(axis=1)                   # (N, D, H)

    def forward(self, x):
        """The logits of eq. (2) for every d: x (N, 1, H, W) of 0/1 -> (N, 1, H, W)."""
        self.check_input(x)
        flat = x.reshape(x.shape[0], self.num_inputs)
        h = self.hidden_preactivations(flat).sigmoid()                        # (1)
        logits = (h * self.V[None]).sum(axis=2) + self.b                     # (2)
        return logits.reshape(x.shape)

    def sample(self, n: int, x=None, observed=None):
        """n draws by the recurrence (3), one pixel at a time, O(D H) per sample (not D
        passes of the network); no gradient. With ``x`` and ``observed`` (a boolean
        array broadcasting to (n, 1, H, W)), the observed pixels are kept from x and the
        others drawn given every pixel before them, as ``AutoregressiveModel.sample``.

        Returns (n, 1, H, W) of 0.0 and 1.0.

        Raises:
            ValueError: as ``AutoregressiveModel.sample``.
        """
        n = _check_size(f"{type(self).__name__}.sample", "n", n)
        shape = (n,) + self.event_shape
        device, dtype = self.W.device, self.W.dtype
        with no_grad():
            if x is None:
                if observed is not None:
                    raise ValueError(f"{type(self).__name__}.sample: give x and observed "
                                     f"together")
            else:
                x, keep = self._observed(x, observed, shape, device, dtype)
                x, keep = x.reshape(n, self.num_inputs), keep.reshape(n, self.num_inputs)
            u = rand(n, self.num_inputs, dtype=dtype, device=device)
            a = self.c.reshape(1, self.hidden).broadcast_to((n, self.hidden))   # a_1 = c
            columns = []
            for d in range(self.num_inputs):
                p = ((a.sigmoid() * self.V[d]).sum(axis=1) + self.b[d]).sigmoid()   # (1), (2)
                x_d = (u[:, d] < p).astype(dtype)
                if x is not None and keep[:, d].any():
                    x_d = where(tensor(keep[:, d], device=device), x[:, d], x_d)
                columns.append(x_d)
                a = a + x_d[:, None] * self.W[:, d][None]                      # (3)
        return stack(columns, axis=1).reshape(shape)

    def extra_repr(self):
        return f"image_size={self.event_shape[1:]}, hidden={self.hidden}"
