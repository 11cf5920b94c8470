"""Convolution as a matrix product: im2col (``unfold``), its adjoint col2im (``fold``),
and the convolutions and pooling built from them.

A 2-D convolution with weight W of shape (O, C, kh, kw) computes

    y[n, o, i, j] = sum_{c, p, q} W[o, c, p, q] x_pad[n, c, i*s_h + p*d_h, j*s_w + q*d_w].

``unfold`` gathers, for every output position (n, i, j), the C*kh*kw input values it
reads, as the columns of one matrix X_col of shape (C*kh*kw, N*Ho*Wo). The convolution
is then a single matrix product, y = W_mat X_col with W_mat = W reshaped to
(O, C*kh*kw), and the matrix product's backward gives both gradients as matrix products:

    dL/dW_mat = (dL/dy) X_col^T,       dL/dX_col = W_mat^T (dL/dy).

``fold`` is the adjoint of ``unfold``: it adds every column entry back onto the input
position it was read from, so dL/dx = fold(dL/dX_col). That is exactly a transposed
convolution, and ``conv_transpose2d`` is fold(W_mat^T x) by definition; with a stride it
is computed by phases instead (see ConvTranspose2dByPhase). Because unfold and fold are
each other's backward, every gradient here is differentiable again (a gradient penalty
through a convolutional critic works).

``Conv2d`` computes its two gradients as ops of their own, so that each can take its
fastest form and still be differentiated again:

- dL/dW = (dL/dy) X_col^T, the weight gradient: one matrix product with the columns
  saved by the forward pass (under create_graph, the same product built from ops).
- dL/dx, the input gradient, is the transposed convolution of dL/dy with W. With stride
  1 it is also an ordinary convolution of dL/dy with W flipped in space and with its
  input and output channels swapped (padding d (k - 1) - p), which needs no fold and
  gives the matrix product a longer inner dimension: the fastest route on a CPU.

unfold copies the input once into the column matrix, one kernel offset at a time, each
a strided view of x (on the CPU without a padded copy of x first: the padding is filled
in place). fold loops over the kh*kw kernel offsets, adding one strided slice at a
time: kh*kw vectorised additions, never an element-wise scatter.

Speed-only routes, each equal to a plain form that tests/conv_reference.py writes as
naive loops from the definitions (compared in tests/test_conv.py and
tests/test_fast_routes.py); the comment at each route says what it buys:

- unfold on the CPU fills the padding itself; the plain form, a strided view of the
  padded x copied once, is the GPU branch of _unfold_array, met first.
- unfold and fold on the CPU split the channels over threads (tinygen.parallel); the
  plain form is one call for all channels (fold's GPU branch, or one thread).
- conv2d's plain backward takes dL/dW from the forward pass's columns; the plain form,
  conv2d_weight (unfold again), serves create_graph.
- conv2d's input gradient and conv_transpose2d at stride 1 are a convolution with the
  flipped kernel; at stride s > 1 conv_transpose2d goes by phases, whose plain backward
  shares one unfold between its two gradients. The plain form is the definition,
  fold(W^T x) (_conv_transpose2d_by_fold), which still serves the other cases.

Layout: the column tensor is (C, kh, kw, N, Ho, Wo), so that reshaping it to
(C*kh*kw, N*Ho*Wo) is free and the whole batch is one matrix product.
"""
from __future__ import annotations

import numpy as np

from .. import backend, parallel
from ..autograd import Function, Tensor, as_tensor, is_grad_enabled
from .reduce import max as _max, mean as _mean
from .shape import reshape, transpose
from .linalg import matmul


def _pair(v, name):
    if isinstance(v, (tuple, list)):
        if len(v) != 2:
            raise ValueError(f"{name} must be an int or a pair, got {v!r}")
        return int(v[0]), int(v[1])
    return int(v), int(v)


def conv_output_size(size, kernel, stride, padding, dilation):
    """floor((size + 2 padding - dilation (kernel - 1) - 1) / stride) + 1."""
    return (size + 2 * padding - dilation * (kernel - 1) - 1) // stride + 1


def _as_strided(xp, a, shape, strides):
    if xp is np:
        return np.lib.stride_tricks.as_strided(a, shape, strides, writeable=False)
    return xp.lib.stride_tricks.as_strided(a, shape, strides)


def _unfold_array(x, kernel_size, stride, padding, dilation, pad_value=0.0):
    """The columns of unfold (see Unfold) computed on a raw array."""
    xp = backend.get_array_module(x)
    (kh, kw), (sh, sw), (ph, pw), (dh, dw) = kernel_size, stride, padding, dilation
    N, C, H, W = x.shape
    Ho = conv_output_size(H, kh, sh, ph, dh)
    Wo = conv_output_size(W, kw, sw, pw, dw)
    if xp is not np:
        if ph or pw:
            x = xp.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)), constant_values=pad_value)
        sN, sC, sH, sW = x.strides
        windows = _as_strided(xp, x, (C, kh, kw, N, Ho, Wo),
                              (sC, sH * dh, sW * dw, sN, sH * sh, sW * sw))
        return xp.ascontiguousarray(windows)  # the one copy
    # On the CPU, no padded copy of x: each kernel offset copies the window positions
    # that fall inside x and fills the others with the padding value. Recorded when
    # written (README): 5 to 30% per unfold. Re-measured on one thread (timeit; the
    # machine was shared): 1.2 times faster for 64 x 128 x 7 x 7, even for 64 x 64 x
    # 14 x 14 (k 4, s 2), 0.74 times the speed for 64 x 32 x 28 x 28 (k 3); possibly
    # because a border slab is written twice (filled whole, then its inside copied).
    cols = np.empty((C, kh, kw, N, Ho, Wo), dtype=x.dtype)
    offsets = [(p, q, _inside(p * dh - ph, sh, H, Ho), _inside(q * dw - pw, sw, W, Wo))
               for p in range(kh) for q in range(kw)]

    def copy_channels(c):  # the one copy, a range of channels per core
        for p, q, (i0, i1, r0), (j0, j1, s0) in offsets:
            out = cols[c, p, q]
            if i0 > 0 or i1 < Ho or j0 > 0 or j1 < Wo:
                out[...] = pad_value
            if i1 > i0 and j1 > j0:
                rows = slice(r0, r0 + sh * (i1 - i0 - 1) + 1, sh)
                columns = slice(s0, s0 + sw * (j1 - j0 - 1) + 1, sw)
                np.copyto(out[:, :, i0:i1, j0:j1],
                          x[:, c, rows, columns].transpose(1, 0, 2, 3))
    _by_channel(copy_channels, C)
    return cols


def _inside(start, stride, size, count):
    """Output positions i in [0, count) whose input position start + stride i lies in
    [0, size): (first i, last i + 1, the input position of the first)."""
    first = max(0, -(start // stride)) if start < 0 else 0
    last = min(count, (size - 1 - start) // stride + 1) if size - 1 >= start else 0
    first = min(first, last)
    return first, last, start + stride * first


class Unfold(Function):
    """X_col = unfold(x);  dL/dx = fold(g)  (fold is unfold's adjoint).

    x (N, C, H, W) -> columns (C, kh, kw, N, Ho, Wo); column [c, p, q, n, i, j] is
    x_pad[n, c, i*s_h + p*d_h, j*s_w + q*d_w], with x padded by ``pad_value``.
    """
    saves = ()  # backward reads no input values (see Function.saves)

    def forward(self, x, kernel_size, stride, padding, dilation, pad_value):
        self.geometry = kernel_size, stride, padding, dilation
        return _unfold_array(x, kernel_size, stride, padding, dilation, pad_value)

    def backward(self, g):
        return fold(g, self.inputs[0].shape[2:], *self.geometry)


def unfold(x, kernel_size, stride=1, padding=0, dilation=1, pad_value=0.0):
    """Columns (C, kh, kw, N, Ho, Wo) of the windows of x (N, C, H, W); see Unfold."""
    x = as_tensor(x)
    if x.ndim != 4:
        raise ValueError(f"unfold: expected input (N, C, H, W), got shape {x.shape}")
    k, s = _pair(kernel_size, "kernel_size"), _pair(stride, "stride")
    p, d = _pair(padding, "padding"), _pair(dilation, "dilation")
    _check_geometry("unfold", x.shape[2:], k, s, p, d)
    return Unfold.apply(x, kernel_size=k, stride=s, padding=p, dilation=d, pad_value=pad_value)


def _check_geometry(name, size, k, s, p, d):
    H, W = size
    Ho, Wo = (conv_output_size(H, k[0], s[0], p[0], d[0]),
              conv_output_size(W, k[1], s[1], p[1], d[1]))
    if min(k + s + d) < 1 or min(p) < 0:
        raise ValueError(f"{name}: kernel_size {k}, stride {s} and dilation {d} must be "
                         f"positive and padding {p} non-negative")
    if Ho < 1 or Wo < 1:
        raise ValueError(f"{name}: the input of spatial size {(H, W)} (padding {p}) is smaller "
                         f"than the kernel {k} with dilation {d}: the output would be {(Ho, Wo)}")


class Fold(Function):
    """x = fold(X_col);  dL/dX_col = unfold(g)  (unfold is fold's adjoint).

    columns (C, kh, kw, N, Ho, Wo) -> x (N, C, H, W): the adjoint of Unfold, adding
    each column entry onto the input position it came from (padding is cut off).
    """
    saves = ()  # backward reads no input values (see Function.saves)

    def forward(self, cols, output_size, kernel_size, stride, padding, dilation):
        xp = backend.get_array_module(cols)
        (H, W), (kh, kw), (sh, sw), (ph, pw), (dh, dw) = (output_size, kernel_size, stride,
                                                          padding, dilation)
        self.geometry = kernel_size, stride, padding, dilation
        C, _, _, N, Ho, Wo = cols.shape
        # Accumulate in (C, N, H, W) order, the order of the columns, so each addition
        # walks both operands contiguously; transpose to NCHW once at the end.
        out = xp.zeros((C, N, H + 2 * ph, W + 2 * pw), dtype=cols.dtype)
        result = xp.empty((N, C, H, W), dtype=cols.dtype)

        # Channels are independent: on the CPU a range of them per core (the plain form
        # is the GPU branch below, all channels at once). No figure is recorded, and
        # the machine's second core was busy when this was re-measured.
        def fold_channels(c):
            for p in range(kh):
                for q in range(kw):
                    rows = slice(p * dh, p * dh + sh * (Ho - 1) + 1, sh)
                    columns = slice(q * dw, q * dw + sw * (Wo - 1) + 1, sw)
                    out[c, :, rows, columns] += cols[c, p, q]
            result[:, c] = out[c, :, ph:ph + H, pw:pw + W].transpose(1, 0, 2, 3)

        if xp is np:
            _by_channel(fold_channels, C)
        else:
            fold_channels(slice(None))
        return result

    def backward(self, g):
        kernel_size, stride, padding, dilation = self.geometry
        cols = unfold(g, kernel_size, stride, padding, dilation)
        # With output_padding >= stride (allowed when dilation > stride) the output has
        # room for windows the columns never held; they lie at the end and get no share.
        Ho, Wo = self.inputs[0].shape[4:]
        if cols.shape[4:] != (Ho, Wo):
            cols = cols[:, :, :, :, :Ho, :Wo]
        return cols


def fold(cols, output_size, kernel_size, stride=1, padding=0, dilation=1):
    """The adjoint of unfold: columns (C, kh, kw, N, Ho, Wo) summed back into
    (N, C, H, W) with (H, W) = output_size."""
    cols = as_tensor(cols)
    return Fold.apply(cols, output_size=tuple(int(v) for v in output_size),
                      kernel_size=_pair(kernel_size, "kernel_size"),
                      stride=_pair(stride, "stride"), padding=_pair(padding, "padding"),
                      dilation=_pair(dilation, "dilation"))


def _by_channel(fn, C):
    """fn(channel slice) for a few contiguous ranges of the C channels, on all cores."""
    parts = min(C, parallel.num_threads())
    parallel.parallel_map(fn, [slice(i * C // parts, (i + 1) * C // parts) for i in range(parts)])


# --------------------------------------------------------------------------- convolutions

class Conv2d(Function):
    """y = W_mat unfold(x);  dL/dW = g X_col^T,  dL/dx = conv_transpose2d(g, W).

    conv2d(x, W) without bias: one matrix product over the columns of x, per group.
    x (N, C, H, W), W (O, C / G, kh, kw) -> y (N, O, Ho, Wo).
    """

    def forward(self, x, w, stride, padding, dilation, groups):
        N = x.shape[0]
        O, Cg, kh, kw = w.shape
        G = groups
        self.geometry = stride, padding, dilation, groups
        self.cols = _unfold_array(x, (kh, kw), stride, padding, dilation)  # (C, kh, kw, N, Ho, Wo)
        Ho, Wo = self.cols.shape[4:]
        X = self.cols.reshape(G, Cg * kh * kw, N * Ho * Wo)
        y = w.reshape(G, O // G, Cg * kh * kw) @ X                    # (G, O/G, N*Ho*Wo)
        return y.reshape(O, N, Ho, Wo).transpose(1, 0, 2, 3)          # a view, NCHW

    def backward(self, g):
        x, w = self.inputs
        stride, padding, dilation, groups = self.geometry
        gx = gw = None
        if self.needs_input_grad[0]:
            gx = conv2d_input_grad(g, w, x.shape[2:], stride, padding, dilation, groups)
        if self.needs_input_grad[1]:
            if is_grad_enabled():  # create_graph: the weight gradient as differentiable ops
                gw = conv2d_weight(x, g, w.shape, stride, padding, dilation, groups)
            else:
                # plain backward: reuse the columns of the forward pass instead of
                # unfolding x again as conv2d_weight does above: 1.7 to 2.2 times faster
                # here for 64 images, 3 x 3, 32 channels at 28 x 28 and 64 at 14 x 14
                # (timeit, one thread, the machine shared)
                gw = Tensor(_weight_grad_array(g.data, self.cols, w.shape, groups))
        return gx, gw


def conv2d(x, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    """2-D cross-correlation, as torch.nn.functional.conv2d.

    x: (N, C, H, W); weight: (O, C / groups, kh, kw); bias: (O,) or None
    -> (N, O, Ho, Wo) with Ho = floor((H + 2 padding - dilation (kh - 1) - 1) / stride) + 1.
    With groups G, the channels split into G groups convolved separately.
    """
    x, weight = as_tensor(x), as_tensor(weight)
    if x.ndim != 4 or weight.ndim != 4:
        raise ValueError(f"conv2d: expected input (N, C, H, W) and weight (O, C/groups, kh, "
                         f"kw), got shapes {x.shape} and {weight.shape}")
    C = x.shape[1]
    O, Cg, kh, kw = weight.shape
    G = int(groups)
    if G < 1 or C % G or O % G or Cg * G != C:
        raise ValueError(f"conv2d: input with {C} channels and weight of shape {weight.shape} "
                         f"do not fit groups={groups} (need C = groups * weight.shape[1] and "
                         f"O divisible by groups)")
    k, s = (kh, kw), _pair(stride, "stride")
    p, d = _pair(padding, "padding"), _pair(dilation, "dilation")
    _check_geometry("conv2d", x.shape[2:], k, s, p, d)
    y = Conv2d.apply(x, weight, stride=s, padding=p, dilation=d, groups=G)
    if bias is not None:
        y = y + reshape(as_tensor(bias), (1, O, 1, 1))
    return y


def _weight_grad_array(g, cols, weight_shape, groups):
    """dL/dW = (dL/dy) X_col^T per group, on arrays. g (N, O, Ho, Wo)."""
    xp = backend.get_array_module(g)
    O, Cg, kh, kw = weight_shape
    G = groups
    g_mat = xp.ascontiguousarray(g.transpose(1, 0, 2, 3)).reshape(G, O // G, -1)
    X = cols.reshape(G, Cg * kh * kw, -1)
    return (g_mat @ X.transpose(0, 2, 1)).reshape(weight_shape)


def conv2d_weight(x, g, weight_shape, stride=1, padding=0, dilation=1, groups=1):
    """dL/dW of conv2d from its input x (N, C, H, W) and output gradient g (N, O, Ho, Wo):
    (dL/dy) X_col^T per group, built from differentiable ops."""
    O, Cg, kh, kw = weight_shape
    G = groups
    X = reshape(unfold(x, (kh, kw), stride, padding, dilation), (G, Cg * kh * kw, -1))
    g_mat = reshape(transpose(g, (1, 0, 2, 3)), (G, O // G, -1))
    return reshape(matmul(g_mat, X.mT), tuple(weight_shape))


def _flipped_transposed(w, groups):
    """W (O, C/G, kh, kw) -> W' (C, O/G, kh, kw) with W'[c, o, p, q] = W[o, c, -p, -q]
    within each group: the kernel of the adjoint convolution at stride 1."""
    O, Cg, kh, kw = w.shape
    G = groups
    w = reshape(w, (G, O // G, Cg, kh, kw)).transpose(0, 2, 1, 3, 4)
    return reshape(w, (G * Cg, O // G, kh, kw)).flip((2, 3))


def conv2d_input_grad(g, w, input_size, stride=1, padding=0, dilation=1, groups=1):
    """dL/dx of conv2d from the output gradient g (N, O, Ho, Wo): the transposed
    convolution of g with W, returned at the input's spatial size ``input_size``."""
    (H, W), (sh, sw), (ph, pw), (dh, dw) = input_size, stride, padding, dilation
    O, Cg, kh, kw = w.shape
    full_h, full_w = dh * (kh - 1) - ph, dw * (kw - 1) - pw
    if (sh, sw) == (1, 1) and full_h >= 0 and full_w >= 0 and O <= Cg * groups:
        # stride 1: an ordinary convolution with the flipped, channel-swapped kernel. It
        # unfolds O k^2 values per pixel where fold would add C k^2, so it is used when
        # O <= C (e.g. not for a first layer that lifts 1 channel to 32). The plain form
        # is the transposed convolution below; both are compared with the naive one in
        # test_fast_routes. Recorded (README), together with the phases and their shared
        # unfold: dcgan from 2.94 to 1.96 times PyTorch's step, ebm from 3.57 to 2.46.
        # Alone, re-measured on one thread against fold: 1.1 times faster for 64
        # channels at 14 x 14, 0.96 times the speed for 32 at 28 x 28 (64 images, 3 x 3).
        return conv2d(g, _flipped_transposed(w, groups), None, 1, (full_h, full_w), dilation,
                      groups)
    Ho, Wo = g.shape[2:]
    output_padding = (H - ((Ho - 1) * sh - 2 * ph + dh * (kh - 1) + 1),
                      W - ((Wo - 1) * sw - 2 * pw + dw * (kw - 1) + 1))
    return conv_transpose2d(g, w, None, stride, padding, output_padding, groups, dilation)


def conv_transpose2d(x, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1,
                     dilation=1):
    """The transposed convolution (the input-gradient of conv2d), as
    torch.nn.functional.conv_transpose2d.

    x: (N, C_in, H, W); weight: (C_in, C_out / groups, kh, kw); bias: (C_out,) or None
    -> (N, C_out, Ho, Wo), Ho = (H - 1) stride - 2 padding + dilation (kh - 1)
    + output_padding + 1.
    """
    x, weight = as_tensor(x), as_tensor(weight)
    if x.ndim != 4 or weight.ndim != 4:
        raise ValueError(f"conv_transpose2d: expected input (N, C_in, H, W) and weight "
                         f"(C_in, C_out/groups, kh, kw), got {x.shape} and {weight.shape}")
    N, Cin, H, W = x.shape
    _, Cog, kh, kw = weight.shape
    G = int(groups)
    if G < 1 or Cin % G or weight.shape[0] != Cin:
        raise ValueError(f"conv_transpose2d: input with {Cin} channels and weight of shape "
                         f"{weight.shape} do not fit groups={groups}")
    s, p = _pair(stride, "stride"), _pair(padding, "padding")
    d, op = _pair(dilation, "dilation"), _pair(output_padding, "output_padding")
    if any(o >= max(si, di) or o < 0 for o, si, di in zip(op, s, d)):
        raise ValueError(f"conv_transpose2d: output_padding {op} must be smaller than stride "
                         f"{s} or dilation {d}")
    Ho = (H - 1) * s[0] - 2 * p[0] + d[0] * (kh - 1) + op[0] + 1
    Wo = (W - 1) * s[1] - 2 * p[1] + d[1] * (kw - 1) + op[1] + 1
    if Ho < 1 or Wo < 1:
        raise ValueError(f"conv_transpose2d: the output size {(Ho, Wo)} is not positive")
    full = (d[0] * (kh - 1) - p[0], d[1] * (kw - 1) - p[1])
    if s == (1, 1) and op == (0, 0) and min(full) >= 0 and Cin <= Cog * G:
        # stride 1: an ordinary convolution with the flipped, channel-swapped kernel
        # (unfolding C_in k^2 values per pixel where fold would add C_out k^2); the
        # route of conv2d_input_grad, whose comment has the figures
        y = conv2d(x, _flipped_transposed(weight, G), None, 1, full, d, G)
    elif s != (1, 1) and d == (1, 1) and Cin * _ceil_div(kh, s[0]) * _ceil_div(kw, s[1]) <= (
            Cog * G * kh * kw):
        # stride > 1: by phases, whose columns hold C_in ceil(k / s)^2 values per input
        # pixel where fold's hold C_out k^2 (e.g. not for a last layer down to 1 channel).
        # 1.4 to 1.6 times faster here than fold for 64 images, k 4, s 2, 128 -> 64
        # channels at 7 -> 14 and 64 -> 32 at 14 -> 28 (timeit, one thread, the machine
        # shared); recorded with the routes above: see conv2d_input_grad.
        y = ConvTranspose2dByPhase.apply(x, weight, stride=s, padding=p, output_size=(Ho, Wo),
                                         groups=G)
    else:
        y = _conv_transpose2d_by_fold(x, weight, s, p, d, (Ho, Wo), G)
    if bias is not None:
        y = y + reshape(as_tensor(bias), (1, Cog * G, 1, 1))
    return y


def _conv_transpose2d_by_fold(x, weight, s, p, d, output_size, G):
    """The definition: every input pixel scatters its kernel-weighted copy, W^T x as
    columns, then fold adds the overlapping columns up."""
    N, Cin, H, W = x.shape
    _, Cog, kh, kw = weight.shape
    Xm = reshape(transpose(x, (1, 0, 2, 3)), (G, Cin // G, N * H * W))
    Wm = reshape(weight, (G, Cin // G, Cog * kh * kw)).mT        # (G, Cout/G*kh*kw, Cin/G)
    cols = matmul(Wm, Xm)                                          # (G, Cout/G*kh*kw, N*H*W)
    cols = reshape(cols, (Cog * G, kh, kw, N, H, W))
    return fold(cols, output_size, (kh, kw), s, p, d)


class ConvTranspose2dByPhase(Function):
    """y = conv_transpose2d(x, W);  dL/dx = conv2d(g, W),  dL/dW = conv2d_weight(g, x).

    Without bias, stride s > 1 and dilation 1, computed by phases (the sub-pixel form).
    x (N, C_in, H, W), W (C_in, C_out / G, kh, kw) -> y (N, C_out, Ho, Wo).

    Along one axis, y[i] = sum_{h, k : s h + k - p = i} W[k] x[h]. Write i + p = s q + r
    with the phase r in [0, s): then k = s (q - h) + r, so the output pixels of one
    phase r see only the taps W[r], W[s + r], W[2 s + r], ... of the kernel, each at a
    fixed offset j = q - h:

        y[s q + r - p] = sum_j W[s j + r] x[q - j],   j = 0 .. T - 1,  T = ceil(k / s).

    That is an ordinary stride-1 correlation of x with a T-tap kernel, one per phase.
    All s*s phases read the same T x T windows of x, so one unfold of x and one matrix
    product with the phase kernels stacked as rows compute every output pixel, already
    summed; interleaving the phases places them. Nothing is added up afterwards, unlike
    fold, whose k^2 strided additions dominate a stride-2 layer.

    Backward: y is the input gradient of conv2d(., W) with the same geometry, so its
    adjoint gives dL/dx = conv2d(dL/dy, W), and dL/dW = conv2d_weight(dL/dy, x) (x
    playing the output gradient). Both read the same columns of dL/dy, unfolded once.
    """

    def forward(self, x, w, stride, padding, output_size, groups):
        self.geometry = stride, padding, groups
        xp = backend.get_array_module(x)
        (sh, sw), (ph, pw), (Ho, Wo), G = stride, padding, output_size, groups
        N, Cin, H, W = x.shape
        _, Cog, kh, kw = w.shape
        Th, Tw = _ceil_div(kh, sh), _ceil_div(kw, sw)
        # The kernel padded with zero taps to T s, split as k = s j + r, each phase's taps
        # put in window order (tap t of a window over x[q-T+1 .. q] is offset j = T-1-t).
        wp = xp.zeros((Cin, Cog, Th * sh, Tw * sw), dtype=w.dtype)
        wp[:, :, :kh, :kw] = w
        wp = wp.reshape(G, Cin // G, Cog, Th, sh, Tw, sw)[:, :, :, ::-1, :, ::-1]
        w_phases = wp.transpose(0, 4, 6, 2, 1, 3, 5).reshape(G, sh * sw * Cog, -1)
        # The windows: q runs over q0 .. q1, the q of the first and last output pixel;
        # x is padded (or cut) so that window q covers x[q-T+1 .. q].
        q0h, q0w = ph // sh, pw // sw
        Qh, Qw = (Ho - 1 + ph) // sh - q0h + 1, (Wo - 1 + pw) // sw - q0w + 1
        rows, columns = (Th - 1 - q0h, Qh + q0h - H), (Tw - 1 - q0w, Qw + q0w - W)
        both = max(0, min(rows)), max(0, min(columns))  # unfold pads both sides alike
        x = _pad_or_crop_array(x, (rows[0] - both[0], rows[1] - both[0]),
                               (columns[0] - both[1], columns[1] - both[1]))
        cols = _unfold_array(x, (Th, Tw), (1, 1), both, (1, 1))        # (Cin, Th, Tw, N, Qh, Qw)
        z = w_phases @ cols.reshape(G, Cin // G * Th * Tw, N * Qh * Qw)
        z = z.reshape(G, sh, sw, Cog, N, Qh, Qw).transpose(1, 2, 0, 3, 4, 5, 6)
        z = z.reshape(sh, sw, G * Cog, N, Qh, Qw)
        # Interleave: one strided copy per phase into a (C, N)-ordered array seen as NCHW
        # (a transpose-and-reshape does the same 1.8 to 3.2 times slower here, for
        # 2 x 2 phases of 64 x 64 x 8 x 8; timeit, 2 cores).
        y = xp.empty((G * Cog, N, Ho, Wo), dtype=z.dtype)
        for a in range(sh):
            for b in range(sw):
                out_rows, qa = _phase_positions(a, ph, sh, Ho)
                out_columns, qb = _phase_positions(b, pw, sw, Wo)
                y[:, :, out_rows, out_columns] = z[a, b, :, :, qa, qb]
        return y.transpose(1, 0, 2, 3)

    def backward(self, g):
        x, w = self.inputs
        stride, padding, groups = self.geometry
        gx = gw = None
        if is_grad_enabled():  # create_graph: both as differentiable ops
            if self.needs_input_grad[0]:
                gx = conv2d(g, w, None, stride, padding, 1, groups)
            if self.needs_input_grad[1]:
                gw = conv2d_weight(g, x, w.shape, stride, padding, 1, groups)
            return gx, gw
        # plain backward: one unfold of dL/dy serves both products, where the branch
        # above unfolds it twice: 1.3 times faster here for 64 images, k 4, s 2, 128 ->
        # 64 and 64 -> 32 channels (timeit, one thread, the machine shared)
        Cin, Cog, kh, kw = w.shape
        G, N, (H, W) = groups, x.shape[0], x.shape[2:]
        cols = _unfold_array(g.data, (kh, kw), stride, padding, (1, 1))  # (Cout, kh, kw, N, H, W)
        cols = cols.reshape(G, Cog * kh * kw, N * H * W)
        if self.needs_input_grad[0]:
            gx = w.data.reshape(G, Cin // G, Cog * kh * kw) @ cols           # (G, Cin/G, NHW)
            gx = Tensor(gx.reshape(Cin, N, H, W).transpose(1, 0, 2, 3))
        if self.needs_input_grad[1]:
            xp = backend.get_array_module(x.data)
            x_mat = xp.ascontiguousarray(x.data.transpose(1, 0, 2, 3)).reshape(G, Cin // G, -1)
            gw = Tensor((x_mat @ cols.transpose(0, 2, 1)).reshape(w.shape))
        return gx, gw


def _phase_positions(r, p, s, size):
    """The output positions i (a strided slice of 0 .. size - 1) of phase r, those with
    (i + p) mod s = r, and the window positions q - q0 (a slice) that compute them."""
    first = (r - p) % s
    count = len(range(first, size, s))
    q = (first + p - r) // s - p // s
    return slice(first, size, s), slice(q, q + count)


def _ceil_div(a, b):
    return -(-a // b)


def _pad_or_crop_array(x, rows, columns):
    """x (N, C, H, W) with (before, after) rows and columns added as zeros, or cut
    off where negative."""
    (top, bottom), (left, right) = rows, columns
    H, W = x.shape[2:]
    if min(top, bottom, left, right) < 0:
        x = x[:, :, max(-top, 0):H - max(-bottom, 0), max(-left, 0):W - max(-right, 0)]
    if max(top, bottom, left, right) > 0:
        xp = backend.get_array_module(x)
        x = xp.pad(x, ((0, 0), (0, 0), (max(top, 0), max(bottom, 0)),
                       (max(left, 0), max(right, 0))))
    return x


# --------------------------------------------------------------------------- pooling

def max_pool2d(x, kernel_size, stride=None, padding=0, dilation=1):
    """The maximum over each window. x: (N, C, H, W) -> (N, C, Ho, Wo); stride defaults
    to kernel_size. Padding counts as -inf. Tied maxima share the gradient."""
    x = as_tensor(x)
    k = _pair(kernel_size, "kernel_size")
    s = k if stride is None else _pair(stride, "stride")
    p = _pair(padding, "padding")
    if p[0] * 2 > k[0] or p[1] * 2 > k[1]:
        raise ValueError(f"max_pool2d: padding {p} must be at most half the kernel size {k}")
    cols = unfold(x, k, s, p, dilation, pad_value=-np.inf)
    return transpose(_max(cols, axis=(1, 2)), (1, 0, 2, 3))


def avg_pool2d(x, kernel_size, stride=None, padding=0):
    """The mean over each window (zero padding counted, as PyTorch's default).
    x: (N, C, H, W) -> (N, C, Ho, Wo); stride defaults to kernel_size."""
    x = as_tensor(x)
    k = _pair(kernel_size, "kernel_size")
    s = k if stride is None else _pair(stride, "stride")
    cols = unfold(x, k, s, padding, 1)
    return transpose(_mean(cols, axis=(1, 2)), (1, 0, 2, 3))
