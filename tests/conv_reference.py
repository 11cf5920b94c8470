"""Readable twins of the fast convolution ops, written as explicit loops straight from
the definitions, and a hypothesis strategy for convolution geometry.

They are slow and obviously right; the fast ops must agree with them.
"""
import numpy as np
from hypothesis import assume
from hypothesis import strategies as st


def out_size(size, k, s, p, d):
    return (size + 2 * p - d * (k - 1) - 1) // s + 1


def naive_conv2d(x, w, b, stride, padding, dilation, groups):
    """y[n, o, i, j] = b[o] + sum_{c, p, q} w[o, c, p, q] x_pad[n, g*Cg + c, i sh + p dh, j sw + q dw]."""
    N, C, H, W = x.shape
    O, Cg, kh, kw = w.shape
    (sh, sw), (ph, pw), (dh, dw) = stride, padding, dilation
    x_pad = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    Ho, Wo = out_size(H, kh, sh, ph, dh), out_size(W, kw, sw, pw, dw)
    Og = O // groups
    y = np.zeros((N, O, Ho, Wo))
    for n in range(N):
        for o in range(O):
            g = o // Og
            for i in range(Ho):
                for j in range(Wo):
                    total = 0.0 if b is None else b[o]
                    for c in range(Cg):
                        for p in range(kh):
                            for q in range(kw):
                                total += w[o, c, p, q] * x_pad[n, g * Cg + c, i * sh + p * dh,
                                                               j * sw + q * dw]
                    y[n, o, i, j] = total
    return y


def naive_conv_transpose2d(x, w, b, stride, padding, output_padding, dilation, groups):
    """Every input pixel x[n, c, i, j] adds x * w[c, o, p, q] onto output position
    (i sh + p dh - ph, j sw + q dw - pw) of channel g*Og + o (positions outside are dropped)."""
    N, Cin, H, W = x.shape
    _, Og, kh, kw = w.shape
    (sh, sw), (ph, pw), (oph, opw), (dh, dw) = stride, padding, output_padding, dilation
    Ho = (H - 1) * sh - 2 * ph + dh * (kh - 1) + oph + 1
    Wo = (W - 1) * sw - 2 * pw + dw * (kw - 1) + opw + 1
    Cg = Cin // groups
    y = np.zeros((N, Og * groups, Ho, Wo))
    for n in range(N):
        for c in range(Cin):
            g = c // Cg
            for i in range(H):
                for j in range(W):
                    for o in range(Og):
                        for p in range(kh):
                            for q in range(kw):
                                r, s = i * sh + p * dh - ph, j * sw + q * dw - pw
                                if 0 <= r < Ho and 0 <= s < Wo:
                                    y[n, g * Og + o, r, s] += x[n, c, i, j] * w[c, o, p, q]
    if b is not None:
        y += b.reshape(1, -1, 1, 1)
    return y


def naive_conv2d_weight_grad(x, g, weight_shape, stride, padding, dilation, groups):
    """dL/dw[o, c, p, q] = sum_{n, i, j} g[n, o, i, j] x_pad[n, g*Cg + c, i sh + p dh, j sw + q dw],
    the weight gradient of conv2d read off its definition (g = dL/dy)."""
    N, C, H, W = x.shape
    O, Cg, kh, kw = weight_shape
    (sh, sw), (ph, pw), (dh, dw) = stride, padding, dilation
    x_pad = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    Ho, Wo = g.shape[2:]
    Og = O // groups
    gw = np.zeros(weight_shape)
    for o in range(O):
        for c in range(Cg):
            for p in range(kh):
                for q in range(kw):
                    total = 0.0
                    for n in range(N):
                        for i in range(Ho):
                            for j in range(Wo):
                                total += g[n, o, i, j] * x_pad[n, o // Og * Cg + c, i * sh + p * dh,
                                                               j * sw + q * dw]
                    gw[o, c, p, q] = total
    return gw


def naive_unfold(x, kernel, stride, padding, dilation, pad_value=0.0):
    """cols[c, p, q, n, i, j] = x_pad[n, c, i sh + p dh, j sw + q dw], x padded by pad_value."""
    N, C, H, W = x.shape
    (kh, kw), (sh, sw), (ph, pw), (dh, dw) = kernel, stride, padding, dilation
    x_pad = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)), constant_values=pad_value)
    Ho, Wo = out_size(H, kh, sh, ph, dh), out_size(W, kw, sw, pw, dw)
    cols = np.zeros((C, kh, kw, N, Ho, Wo))
    for c in range(C):
        for p in range(kh):
            for q in range(kw):
                for n in range(N):
                    for i in range(Ho):
                        for j in range(Wo):
                            cols[c, p, q, n, i, j] = x_pad[n, c, i * sh + p * dh, j * sw + q * dw]
    return cols


def naive_fold(cols, size, kernel, stride, padding, dilation):
    """The adjoint of naive_unfold: every column entry is added onto the input position it
    was read from; positions in the padding are dropped."""
    C, kh, kw, N, Ho, Wo = cols.shape
    (H, W), (sh, sw), (ph, pw), (dh, dw) = size, stride, padding, dilation
    x = np.zeros((N, C, H, W))
    for c in range(C):
        for p in range(kh):
            for q in range(kw):
                for n in range(N):
                    for i in range(Ho):
                        for j in range(Wo):
                            r, s = i * sh + p * dh - ph, j * sw + q * dw - pw
                            if 0 <= r < H and 0 <= s < W:
                                x[n, c, r, s] += cols[c, p, q, n, i, j]
    return x


def naive_pool2d(x, kernel, stride, padding, reduce, pad_value, dilation=(1, 1)):
    """reduce (np.max or np.mean) over each window of the padded input."""
    N, C, H, W = x.shape
    (kh, kw), (sh, sw), (ph, pw), (dh, dw) = kernel, stride, padding, dilation
    x_pad = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)), constant_values=pad_value)
    Ho, Wo = out_size(H, kh, sh, ph, dh), out_size(W, kw, sw, pw, dw)
    y = np.zeros((N, C, Ho, Wo))
    for n in range(N):
        for c in range(C):
            for i in range(Ho):
                for j in range(Wo):
                    window = [x_pad[n, c, i * sh + p * dh, j * sw + q * dw]
                              for p in range(kh) for q in range(kw)]
                    y[n, c, i, j] = reduce(window)
    return y


@st.composite
def conv_geometry(draw, transposed=False, max_size=6):
    """Batch, channels, groups, size, kernel, stride, padding, dilation (and
    output_padding for the transposed convolution); combinations that leave no output
    are discarded."""
    pair = lambda lo, hi: (draw(st.integers(lo, hi)), draw(st.integers(lo, hi)))  # noqa: E731
    g = dict(N=draw(st.integers(1, 2)), groups=draw(st.integers(1, 2)),
             Cg=draw(st.integers(1, 2)), Og=draw(st.integers(1, 2)),
             size=pair(1, max_size), kernel=pair(1, 3), stride=pair(1, 3),
             padding=pair(0, 2), dilation=pair(1, 2))
    if transposed:
        g["output_padding"] = tuple(draw(st.integers(0, max(s, d) - 1))
                                    for s, d in zip(g["stride"], g["dilation"]))
        for n, k, s, p, d, op in zip(g["size"], g["kernel"], g["stride"], g["padding"],
                                     g["dilation"], g["output_padding"]):
            assume((n - 1) * s - 2 * p + d * (k - 1) + op + 1 >= 1)
    else:
        for n, k, s, p, d in zip(g["size"], g["kernel"], g["stride"], g["padding"],
                                 g["dilation"]):
            assume(out_size(n, k, s, p, d) >= 1)
    return g
