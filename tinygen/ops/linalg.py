"""Linear algebra: the matrix product, and the determinant, inverse and linear solves
that normalizing flows need (log |det| of a Jacobian, inverting a layer).

For C = A B (each possibly a batch of matrices, broadcasting over the batch axes),

    dL/dA = (dL/dC) B^T,        dL/dB = A^T (dL/dC),

with ^T swapping the last two axes. When a batch axis was broadcast, the engine sums
these back to the input's shape.

The others follow from one identity, d(A^{-1}) = -A^{-1} (dA) A^{-1} (differentiate
A A^{-1} = I), and from Jacobi's formula d log|det A| = tr(A^{-1} dA). Turned into
reverse mode (M. Giles, "An extended collection of matrix derivative results for
forward and reverse mode algorithmic differentiation", Oxford NA report 08/01, 2008):

    y = log|det A|:  dL/dA = g A^{-T}
    Y = A^{-1}:      dL/dA = -Y^T G Y^T
    X = A^{-1} B:    dL/dB = A^{-T} G,   dL/dA = -(dL/dB) X^T

Every backward is written with these same ops (inv, solve, matmul), so the gradients
can be differentiated again. All of them work on batches: a (..., n, n) array is a
stack of n x n matrices, and the leading axes broadcast between the arguments.
"""
from __future__ import annotations

import numpy as np

from .. import backend
from ..autograd import Function, Tensor, as_tensor
from .shape import reshape, squeeze, unsqueeze


class MatMul(Function):
    """y = a b (matrices);  dL/da = g b^T,  dL/db = a^T g  (^T swaps the last two axes)."""
    saves = "cross"  # dL/da reads b, dL/db reads a

    def forward(self, a, b):
        if a.shape[-1] == 1:
            # An outer product (inner dimension 1, e.g. the backward of a 1-channel
            # convolution): a broadcast multiply gives the same numbers as a @ b and took
            # 1/1.8 to 1/2.5 of its time for (576, 1) @ (1, 50176) here (timeit, 2 cores).
            return a * b
        return a @ b

    def backward(self, g):
        a, b = self.inputs
        ga = gb = None
        # Each gradient is computed in its input's memory layout: for an input that is a
        # transposed view (as W^T in x @ W^T, how Linear uses its weight), the transposed
        # product (X^T)^T is formed, which costs the same, so that once the transpose is
        # undone the gradient is contiguous again (and an optimizer can stream through it
        # without copying it first; test_fast_routes compares it with the plain product).
        # It is one of the changes of commit 01a9fb4, which together took mlp_vae from
        # 8.9 to 4.5 ms per step; alone, an Adam step on a 400 x 784 weight measured the
        # same here with either layout of its gradient, within the noise.
        if self.needs_input_grad[0]:
            ga = (b @ g.mT).mT if _is_transposed(a.data) else g @ b.mT
        if self.needs_input_grad[1]:
            gb = (g.mT @ a).mT if _is_transposed(b.data) else a.mT @ g
        return ga, gb


def matmul(a, b):
    """The matrix product a @ b.

    Shapes: (..., n, k) @ (..., k, m) -> (..., m) with the batch axes broadcast. A 1-D
    argument is a vector: (k,) @ (k, m) -> (m,) and (n, k) @ (k,) -> (n,).
    """
    a, b = as_tensor(a), as_tensor(b)
    if a.ndim == 0 or b.ndim == 0:
        raise ValueError(f"matmul: needs at least 1-D inputs, got shapes {a.shape} and {b.shape}")
    if a.ndim == 1:
        return squeeze(matmul(unsqueeze(a, 0), b), -2)
    if b.ndim == 1:
        return squeeze(matmul(a, unsqueeze(b, -1)), -1)
    if a.shape[-1] != b.shape[-2]:
        raise ValueError(f"matmul: shapes {a.shape} and {b.shape} are not aligned: "
                         f"{a.shape[-1]} (last axis of the first) != {b.shape[-2]} "
                         "(second-to-last axis of the second)")
    try:
        return MatMul.apply(a, b)
    except ValueError:
        raise ValueError(f"matmul: the batch axes of shapes {a.shape} and {b.shape} cannot "
                         "be broadcast together") from None


def _is_transposed(x) -> bool:
    """Whether x is laid out as the transpose of a C-contiguous array (last two axes)."""
    return (x.ndim >= 2 and not x.flags.c_contiguous and x.shape[-1] > 1 and x.shape[-2] > 1
            and x.strides[-2] == x.itemsize and x.strides[-1] == x.shape[-2] * x.itemsize)


# --------------------------------------------------------------------------- checking arguments

def _check_square(name, a, b=None):
    """Raise a ValueError unless a is a square matrix or a batch of them, (..., n, n)."""
    if a.ndim < 2 or a.shape[-1] != a.shape[-2]:
        shapes = f"shape {a.shape}" if b is None else f"shapes {a.shape} and {b.shape}"
        raise ValueError(f"{name}: needs a square matrix or a batch of them, shape "
                         f"(..., n, n), as its first argument; got {shapes}")


def _check_rhs(name, a, b):
    """Check the right-hand side b of a solve with a (..., n, n), and say whether it is a
    single vector (b.ndim == 1) rather than a (batch of) matrices (..., n, k)."""
    _check_square(name, a, b)
    n = a.shape[-1]
    if b.ndim == 0:
        raise ValueError(f"{name}: the right-hand side must be a vector (n,) or matrices "
                         f"(..., n, k); got shapes {a.shape} and {b.shape}")
    if b.ndim == 1:
        if b.shape[0] != n:
            raise ValueError(f"{name}: shapes {a.shape} and {b.shape} do not match: the "
                             f"vector b has {b.shape[0]} entries, the matrices {n} rows")
        return True
    if b.shape[-2] != n:
        raise ValueError(
            f"{name}: shapes {a.shape} and {b.shape} do not match: b is read as matrices "
            f"(..., n, k) with n = {n} rows, but has {b.shape[-2]} (its second-to-last "
            "axis). As in NumPy 2, b is a vector only when it is 1-D; for a batch of "
            "vectors (..., n), pass b[..., None] and take [..., 0] of the result")
    try:
        np.broadcast_shapes(a.shape[:-2], b.shape[:-2])
    except ValueError:
        raise ValueError(f"{name}: the batch axes of shapes {a.shape} and {b.shape} cannot "
                         "be broadcast together") from None
    return False


def _float_dtype(*arrays):
    """The dtype of a solve's result: the inputs' common dtype, float64 for integers."""
    dtype = np.result_type(*[x.dtype for x in arrays])
    return dtype if np.issubdtype(dtype, np.floating) else np.dtype(np.float64)


def _broadcast_batch(xp, a, b):
    """a (..., n, n) and b (..., n, k) with their batch axes broadcast to one shape."""
    batch = np.broadcast_shapes(a.shape[:-2], b.shape[:-2])
    return xp.broadcast_to(a, batch + a.shape[-2:]), xp.broadcast_to(b, batch + b.shape[-2:])


# --------------------------------------------------------------------------- determinant

class LogAbsDet(Function):
    """y = log|det a|;  dL/da = g a^{-T}  (Jacobi's formula)."""
    saves = (0,)  # backward inverts a

    def forward(self, a, logabsdet=None):
        if logabsdet is None:  # slogdet passes the one it computed along with the sign
            logabsdet = backend.get_array_module(a).linalg.slogdet(a)[1]
        return logabsdet

    def backward(self, g):
        (a,) = self.inputs
        # g has the batch shape (...); each matrix of the batch is scaled by its own g
        return reshape(g, g.shape + (1, 1)) * inv(a).mT


def slogdet(a):
    """The sign and the log of the absolute value of the determinant: (sign, logabsdet),
    with det a = sign * exp(logabsdet).

    Shapes: a (..., n, n) -> sign and logabsdet both of shape (...), one per matrix.
    Both have a's dtype (float32 stays float32; integers give float64).

    Computed from the LU factorisation with partial pivoting, P a = L U, in one call to
    ``linalg.slogdet`` of NumPy (LAPACK's getrf) or CuPy (getrf of cuSOLVER, or of
    cuBLAS for a batch): det a is
    (-1)^(number of row swaps) times the product of U's diagonal, so log|det a| is the
    sum of log|U_ii|, which neither overflows nor underflows where det a itself would.
    A singular matrix gives sign 0 and logabsdet -inf.

    Gradient: d logabsdet / da = a^{-T} (Jacobi's formula; Giles 2008, "An extended
    collection of matrix derivative results for forward and reverse mode AD"), written
    with ``inv`` so that it can be differentiated again. The sign is piecewise constant:
    it is returned as a constant tensor (requires_grad False), with no gradient.

    Raises:
        ValueError: a is not a square matrix or a batch of them (the message names the
            op and the shape).
    """
    a = as_tensor(a)
    _check_square("slogdet", a)
    xp = backend.get_array_module(a)
    sign, logabsdet = xp.linalg.slogdet(a.data)
    # asarray: NumPy returns scalars (np.float64) for a single matrix, not 0-d arrays
    return Tensor(xp.asarray(sign)), LogAbsDet.apply(a, logabsdet=xp.asarray(logabsdet))


# --------------------------------------------------------------------------- inverse

class Inv(Function):
    """y = a^{-1};  dL/da = -y^T g y^T  (from d(a^{-1}) = -a^{-1} da a^{-1})."""
    saves = ()  # backward reads its output only

    def forward(self, a):
        return backend.get_array_module(a).linalg.inv(a)

    def backward(self, g):
        yT = self.output.mT
        return -(yT @ g @ yT)


def inv(a):
    """The inverse of a square matrix, or of each matrix in a batch.

    Shapes: a (..., n, n) -> (..., n, n), of a's dtype (float32 stays float32).

    Gradient: dL/da = -a^{-T} G a^{-T} for G = dL/d(a^{-1}) (Giles 2008, "An extended
    collection of matrix derivative results for forward and reverse mode AD").

    To apply an inverse to a vector or matrix, ``solve(a, b)`` is cheaper and more
    accurate than ``inv(a) @ b``.

    Raises:
        ValueError: a is not a square matrix or a batch of them (names the op and the
            shape).
        numpy.linalg.LinAlgError: a matrix is singular (on the CPU; CuPy by default does
            not check, and returns inf or nan instead).
    """
    a = as_tensor(a)
    _check_square("inv", a)
    return Inv.apply(a)


# --------------------------------------------------------------------------- solve

class Solve(Function):
    """y = a^{-1} b;  dL/db = a^{-T} g,  dL/da = -(dL/db) y^T."""
    saves = (0,)  # dL/db solves with a; b itself is not read

    def forward(self, a, b):
        xp = backend.get_array_module(a, b)
        # The batch axes are broadcast here, so that a and b reach linalg.solve with the
        # same number of axes: NumPy 1 and 2 (and CuPy) then all read b as matrices.
        a, b = _broadcast_batch(xp, a, b)
        return xp.linalg.solve(a, b)

    def backward(self, g):
        a = self.inputs[0]
        gb = Solve.apply(a.mT, g)  # needed for dL/da too, even when b wants no gradient
        ga = -(gb @ self.output.mT) if self.needs_input_grad[0] else None
        return ga, gb


def solve(a, b):
    """The solution x of a x = b, that is x = a^{-1} b, without forming a^{-1}.

    Shapes (the same rule as NumPy 2's ``linalg.solve``):
        a (..., n, n), b (..., n, k) -> x (..., n, k), the batch axes broadcast;
        a (..., n, n), b (n,)        -> x (..., n): b is a vector only when it is 1-D.
    A batch of vectors (..., n) must be passed as b[..., None] (and the result read
    with [..., 0]): NumPy 1 guessed from the number of axes, NumPy 2 does not, and
    neither does this function.

    Computed by LU factorisation with partial pivoting (LAPACK's gesv in NumPy, the LU
    routines of cuSOLVER or cuBLAS in CuPy). The result has the inputs' common dtype
    (float32 stays float32).

    Gradient (Giles 2008, "An extended collection of matrix derivative results for
    forward and reverse mode AD"): with G = dL/dx,
        dL/db = solve(a^T, G),    dL/da = -(dL/db) x^T.

    Raises:
        ValueError: a is not square, b's rows do not match a's size, or the batch axes
            do not broadcast (the message names the op and both shapes).
        numpy.linalg.LinAlgError: a matrix is singular (on the CPU; CuPy by default does
            not check).
    """
    a, b = as_tensor(a), as_tensor(b)
    if _check_rhs("solve", a, b):
        return squeeze(solve(a, unsqueeze(b, -1)), -1)
    return Solve.apply(a, b)


# --------------------------------------------------------------------------- triangular solve

def _substitute(t, b, lower, unit_diagonal):
    """x with T x = b for the triangle T of t: forward substitution (lower) or back
    substitution (upper), one row at a time.

    t (..., n, n), b (..., n, k); every matrix of the batch and every column of b is
    solved at once, so the Python loop runs over the n rows only. Row i of T x = b reads

        T_ii x_i + sum_j T_ij x_j = b_i,

    the sum running over the rows already solved (j < i for a lower triangle, j > i for
    an upper one), so x_i = (b_i - sum_j T_ij x_j) / T_ii. The entries of t outside the
    triangle are never read, nor its diagonal when it is a unit diagonal.
    """
    xp = backend.get_array_module(t, b)
    n, k = b.shape[-2:]
    batch = np.broadcast_shapes(t.shape[:-2], b.shape[:-2])
    x = xp.empty(batch + (n, k), dtype=_float_dtype(t, b))
    rows = range(n) if lower else range(n - 1, -1, -1)
    for i in rows:
        solved = slice(0, i) if lower else slice(i + 1, n)
        r = b[..., i, :]
        if i != rows[0]:  # the first row has nothing solved before it
            # (..., 1, m) @ (..., m, k): the sum over the m solved rows, for every column
            r = r - (t[..., i:i + 1, solved] @ x[..., solved, :])[..., 0, :]
        x[..., i, :] = r if unit_diagonal else r / t[..., i, i:i + 1]
    return x


def _triangle_mask(xp, n, dtype, lower, unit_diagonal):
    """1 on the entries of an n x n matrix that a triangular solve reads, 0 elsewhere."""
    ones = xp.ones((n, n), dtype=dtype)
    k = 1 if unit_diagonal else 0  # a unit diagonal is not read: the strict triangle
    return xp.tril(ones, -k) if lower else xp.triu(ones, k)


class SolveTriangular(Function):
    """y = T^{-1} b, T a triangle of a;  dL/db = T^{-T} g,  dL/da = -(dL/db) y^T on T's entries."""
    saves = (0,)  # dL/db solves with a

    def forward(self, a, b, lower, unit_diagonal):
        self.lower, self.unit_diagonal = lower, unit_diagonal
        return _substitute(a, b, lower, unit_diagonal)

    def backward(self, g):
        a = self.inputs[0]
        # T^T is a triangle of a^T, on the other side: the lower triangle of a, transposed,
        # is the upper triangle of a^T. The diagonal (unit or not) is the same.
        gb = SolveTriangular.apply(a.mT, g, lower=not self.lower,
                                   unit_diagonal=self.unit_diagonal)
        ga = None
        if self.needs_input_grad[0]:
            ga = -(gb @ self.output.mT)
            # Entries of a that the solve never read get no gradient.
            xp = backend.get_array_module(ga)
            mask = _triangle_mask(xp, a.shape[-1], ga.dtype, self.lower, self.unit_diagonal)
            ga = ga * Tensor(mask)
        return ga, gb


def solve_triangular(a, b, lower=True, unit_diagonal=False):
    """The solution x of T x = b, where T is the lower (or, with lower=False, the upper)
    triangle of a, by forward (or back) substitution.

    Only that triangle of a is read: the other one may hold anything (as in a packed LU
    factorisation) and gets a zero gradient. With unit_diagonal=True the diagonal is
    taken to be 1 without being read, and gets a zero gradient too.

    Shapes (as for ``solve``):
        a (..., n, n), b (..., n, k) -> x (..., n, k), the batch axes broadcast;
        a (..., n, n), b (n,)        -> x (..., n): b is a vector only when it is 1-D.
    The result has the inputs' common dtype (float32 stays float32).

    Written here, not taken from SciPy (not a dependency): a loop over the n rows,
    vectorised over the batch and the columns of b; O(n^2 k) work per matrix.

    Gradient (the one of ``solve``, Giles 2008, "An extended collection of matrix
    derivative results for forward and reverse mode AD", restricted to the entries T
    is made of): with G = dL/dx,
        dL/db = solve_triangular(a^T, G, lower=not lower, unit_diagonal=unit_diagonal),
        dL/da = -(dL/db) x^T on the triangle read (strict when unit_diagonal), 0 elsewhere.

    Raises:
        ValueError: a is not square, b's rows do not match a's size, or the batch axes
            do not broadcast (the message names the op and both shapes).
    A zero on the diagonal read (a singular T) is not checked for, as that would need a
    round trip from the GPU: the result then holds inf or nan.
    """
    a, b = as_tensor(a), as_tensor(b)
    if _check_rhs("solve_triangular", a, b):
        return squeeze(solve_triangular(a, unsqueeze(b, -1), lower, unit_diagonal), -1)
    return SolveTriangular.apply(a, b, lower=bool(lower), unit_diagonal=bool(unit_diagonal))
