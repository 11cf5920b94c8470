"""Pictures: image grids, training curves, 2-D samples, densities, energies and vector
fields, and sampling trajectories. Every function writes one PNG file and returns its path.

    save_image_grid     a batch of images (N, C, H, W) as one grid, optionally labelled rows
    plot_curves         the scalars of a log.jsonl against the step, raw and smoothed
    plot_2d_samples     a cloud of 2-D samples, optionally over the data
    plot_2d_density     p(x) = exp(log p(x)), an energy E(x), or a vector field on a grid
    plot_trajectory     a chain of snapshots (denoising, Langevin): one row per sample

Inputs may be Tensors on any device or arrays (NumPy or CuPy); they are copied to NumPy.
Images follow PyTorch's layout, (N, C, H, W) with C = 1 or 3, or (N, H, W) for grey.

How the files are made. Only matplotlib's object-oriented core is used: a
``matplotlib.figure.Figure`` drawn by the Agg canvas (``FigureCanvasAgg``), never
``pyplot``. So nothing here selects a backend (a notebook or an interactive session keeps
its own), no window opens, and no figure is registered with pyplot's global list, where
forgotten figures would pile up: each figure is cleared once written and then freed.
matplotlib is imported on first use, so ``import tinygen`` stays fast.

A file is written to a temporary name in the target folder and renamed onto the path once
complete (``os.replace``, atomic), so an interruption never leaves a half-written picture,
and a viewer watching the file never sees one. Missing parent folders are created.
"""
from __future__ import annotations

import json
import math
import os

import numpy as np

from . import backend
from .files import atomic_write
from .autograd import Tensor, enable_grad, no_grad

__all__ = ["make_grid", "save_image_grid", "plot_curves", "plot_2d_samples",
           "evaluate_on_grid", "plot_2d_density", "plot_trajectory",
           "new_figure", "save_figure", "check_png_path"]

# Image grids are drawn one array element per pixel. Their figures use a power-of-two dpi:
# then width_px / dpi * dpi is exact in floating point (with dpi = 100, 29 / 100 * 100 is
# 28.999999999999996), so the canvas, whose size Agg truncates to whole pixels, has
# exactly the grid's size without relying on matplotlib to round it back.
_GRID_DPI = 64
_DPI = 100  # ordinary plots (curves, scatter plots, densities)


# --------------------------------------------------------------------------- helpers

def _to_numpy(x) -> np.ndarray:
    """A NumPy copy or view of a Tensor (any device), a NumPy or CuPy array, or a list."""
    if isinstance(x, Tensor):
        return x.numpy()
    return backend.to_numpy(x)


def new_figure(figsize, dpi=_DPI, **kwargs):
    """A Figure with its own Agg canvas, outside pyplot (see the module docstring); draw
    on it with fig.add_subplot() and write it with save_figure. For models' own plots."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    fig = Figure(figsize=figsize, dpi=dpi, **kwargs)
    FigureCanvasAgg(fig)
    return fig


def check_png_path(path, name) -> str:
    """``path`` as a string, checked to end in .png (a clear error naming ``name``)."""
    path = os.fspath(path)
    if os.path.splitext(path)[1].lower() != ".png":
        raise ValueError(f"{name}: writes PNG files; give a path ending in .png, got {path!r}")
    return path


def save_figure(fig, path) -> str:
    """Write ``fig`` to ``path`` as a PNG at the figure's own dpi, atomically; free it."""
    from matplotlib import rc_context
    try:
        # A user's matplotlibrc may ask for tight cropping or transparency: not here,
        # where a grid must keep its exact pixel size.
        with atomic_write(path) as f, rc_context({"savefig.bbox": "standard",
                                                 "savefig.transparent": False}):
            fig.savefig(f, format="png", dpi=fig.dpi, facecolor="white")
    finally:
        fig.clear()  # drop the artists now; the figure itself is freed with its last reference
    return path


# --------------------------------------------------------------------------- image grids

def _images_nhwc(images, name="make_grid") -> np.ndarray:
    """(N, H, W), (N, 1, H, W) or (N, 3, H, W) -> (N, H, W, C) with C = 1 or 3."""
    a = _to_numpy(images)
    if a.ndim == 3:
        a = a[:, None]
    if a.ndim != 4 or a.shape[1] not in (1, 3):
        raise ValueError(f"{name}: expected images of shape (N, H, W), (N, 1, H, W) or "
                         f"(N, 3, H, W); got {tuple(_to_numpy(images).shape)}")
    if a.size == 0:
        raise ValueError(f"{name}: no pixels to draw; images of shape {tuple(a.shape)}")
    return np.moveaxis(a, 1, -1)


def _infer_value_range(a: np.ndarray):
    if a.dtype == np.bool_:
        return (0.0, 1.0)
    if a.dtype.kind in "ui":  # 8-bit pixels, as read from the IDX files
        return (0.0, 255.0)
    return (-1.0, 1.0) if float(a.min()) < 0 else (0.0, 1.0)


def _normalise(a: np.ndarray, value_range, name) -> np.ndarray:
    """Map value_range linearly onto [0, 1] and clip; float64."""
    if value_range is None:
        value_range = _infer_value_range(a)
    lo, hi = (float(v) for v in value_range)
    if not hi > lo:
        raise ValueError(f"{name}: value_range must be (low, high) with low < high; "
                         f"got {tuple(value_range)}")
    a = a.astype(np.float64)
    if np.isnan(a).any():
        raise ValueError(f"{name}: the images contain {int(np.isnan(a).sum())} NaN values")
    return np.clip((a - lo) / (hi - lo), 0.0, 1.0)


def make_grid(images, nrow: int = 8, padding: int = 2, value_range=None,
              pad_value: float = 1.0) -> np.ndarray:
    """Tile a batch of images into one array, like ``torchvision.utils.make_grid``.

    Args:
        images: (N, H, W) or (N, 1, H, W) grey, or (N, 3, H, W) RGB; Tensor or array.
        nrow: images per row of the grid (torchvision's name); the grid has
            min(nrow, N) columns and ceil(N / nrow) rows.
        padding: pixels of ``pad_value`` between the images and around the grid.
        value_range: (low, high) mapped to black and white; values outside are clipped.
            None infers it: (-1, 1) if the smallest value is negative, else (0, 1)
            ((0, 255) for integer images).
        pad_value: the colour of the padding, 0 (black) to 1 (white).

    Returns:
        float64 array in [0, 1] of shape (H', W') for grey images, (H', W', 3) for RGB,
        with H' = rows (H + padding) + padding and W' = cols (W + padding) + padding.
        Image i sits in row i // nrow, column i % nrow, its top-left pixel at
        (padding + row (H + padding), padding + col (W + padding)).

    Example: ``grid = make_grid(x[:64], nrow=8)   # x: (64, 1, 28, 28) -> (242, 242)``
    """
    a = _images_nhwc(images)
    nrow, padding = int(nrow), int(padding)
    if nrow < 1 or padding < 0:
        raise ValueError(f"make_grid: need nrow >= 1 and padding >= 0; got nrow={nrow}, "
                         f"padding={padding}")
    a = _normalise(a, value_range, "make_grid")
    n, h, w, c = a.shape
    cols = min(nrow, n)
    rows = -(-n // cols)
    grid = np.full((rows * (h + padding) + padding, cols * (w + padding) + padding, c),
                   float(pad_value))
    # One strided view of all the cells, filled in one assignment: no loop over images.
    cells = np.full((rows * cols, h, w, c), float(pad_value))
    cells[:n] = a
    inner = grid[padding:, padding:].reshape(rows, h + padding, cols, w + padding, c)
    inner[:, :h, :, :w] = cells.reshape(rows, cols, h, w, c).transpose(0, 2, 1, 3, 4)
    return grid[..., 0] if c == 1 else grid


def _grid_figure(grid: np.ndarray, labels=None, rows: int = 1, padding: int = 0):
    """A figure showing ``grid`` (from make_grid) one pixel per element, with optional
    labels at the left of each row of images."""
    rgb = grid if grid.ndim == 3 else np.repeat(grid[..., None], 3, axis=-1)  # grey colormap
    rgb8 = np.round(rgb * 255).astype(np.uint8)  # exact colours: no colormap lookup table
    height, width = rgb8.shape[:2]
    fig = new_figure((width / _GRID_DPI, height / _GRID_DPI), dpi=_GRID_DPI)
    margin = 0
    if labels is not None:
        from matplotlib.transforms import IdentityTransform
        cell = (height - padding) / rows
        size_px = max(6.0, min(14.0, 0.6 * cell))
        gap = 4
        texts = []
        for r, label in enumerate(labels):
            y = height - (padding + (r + 0.5) * cell - padding / 2)  # from the bottom
            texts.append(fig.text(0, y, str(label), transform=IdentityTransform(),
                                  ha="right", va="center", fontsize=size_px * 72 / _GRID_DPI))
        renderer = fig.canvas.get_renderer()
        margin = int(math.ceil(max(t.get_window_extent(renderer).width for t in texts))) + 2 * gap
        for t in texts:
            t.set_x(margin - gap)
        fig.set_size_inches((width + margin) / _GRID_DPI, height / _GRID_DPI)
    fig.figimage(rgb8, xo=margin, yo=0, origin="upper")
    return fig


def save_image_grid(images, path, nrow: int = 8, value_range=None, padding: int = 2,
                    labels=None, pad_value: float = 1.0) -> str:
    """Save a batch of images as one grid in a PNG file.

    Args:
        images: (N, H, W), (N, 1, H, W) or (N, 3, H, W); Tensor (any device) or array.
            Grey images are drawn with the grey colormap (black = low, white = high).
        path: the .png file to write; parent folders are created.
        nrow: images per row (as in torchvision); the grid has ceil(N / nrow) rows.
        value_range: (low, high) shown as black and white, values clipped; None infers
            (-1, 1) if any value is negative, else (0, 1) (see ``make_grid``).
        padding, pad_value: see ``make_grid``.
        labels: optional, one label per row of the grid (e.g. class names), drawn at
            the left of the row.

    Returns:
        ``path``. Without labels the PNG is exactly make_grid's array, one pixel per
        element (H' x W'); labels add a margin at the left, the height stays H'.

    Example: ``save_image_grid(model.sample(64), "runs/vae/samples.png", nrow=8)``
    """
    path = check_png_path(path, "save_image_grid")
    images = _to_numpy(images)
    grid = make_grid(images, nrow=nrow, padding=padding, value_range=value_range,
                     pad_value=pad_value)
    rows = -(-images.shape[0] // int(nrow))
    if labels is not None:
        labels = list(labels)
        if len(labels) != rows:
            raise ValueError(f"save_image_grid: {len(labels)} labels for a grid of {rows} rows "
                             "(one label per row)")
    return save_figure(_grid_figure(grid, labels, rows, int(padding)), path)


# --------------------------------------------------------------------------- curves

def _read_log(log, name="plot_curves") -> list:
    """The rows of a log: a list of dicts as is, or a .jsonl file read line by line.

    A last line without its newline that is not valid JSON is ignored: it is a row
    still being written by a running training loop. Any other bad line is an error.
    """
    if not isinstance(log, (str, os.PathLike)):
        rows = list(log)
        for i, row in enumerate(rows):
            if not isinstance(row, dict):
                raise TypeError(f"{name}: row {i} of the log is a {type(row).__name__}, "
                                "not a dict")
        return rows
    path = os.fspath(log)
    with open(path, encoding="utf-8") as f:
        lines = f.read().split("\n")
    rows = []
    for i, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as e:
            if i == len(lines) - 1:  # no newline after it: a row still being written
                break
            raise ValueError(f"{name}: {path}, line {i + 1} is not valid JSON ({e.msg})") from None
        if not isinstance(row, dict):
            raise ValueError(f"{name}: {path}, line {i + 1} is not a JSON object")
        rows.append(row)
    return rows


def _is_scalar(v) -> bool:
    """A number in a log row (True / False are not curves)."""
    return (isinstance(v, (int, float, np.integer, np.floating))
            and not isinstance(v, (bool, np.bool_)))


def ema_smooth(values, smooth: float) -> np.ndarray:
    """Debiased exponential moving average (TensorBoard's smoothing), for curves.

        s_t = smooth s_{t-1} + (1 - smooth) x_t,   w_t = smooth w_{t-1} + (1 - smooth),
        shown: s_t / w_t                             (s_0 = w_0 = 0)

    Dividing by w_t = 1 - smooth^t removes the pull towards the zero start. Non-finite
    values are skipped (their output is NaN, the average carries on). (T,) -> (T,).
    """
    x = np.asarray(values, dtype=np.float64)
    out = np.full_like(x, np.nan)
    s = w = 0.0
    for t, v in enumerate(x):  # a log has thousands of rows, not millions: a loop is fine
        if np.isfinite(v):
            s = smooth * s + (1 - smooth) * v
            w = smooth * w + (1 - smooth)
            out[t] = s / w
    return out


def _curves_figure(log, keys=None, smooth=0.9, log_scale="auto", title=None):
    rows = _read_log(log)
    if not rows:
        raise ValueError("plot_curves: the log has no rows")
    available = []
    for row in rows:
        for k, v in row.items():
            if k != "step" and _is_scalar(v) and k not in available:
                available.append(k)
    if keys is None:
        keys = available
        if not keys:
            raise ValueError("plot_curves: the log has no numeric values besides 'step'")
    else:
        keys = [keys] if isinstance(keys, str) else list(keys)
        missing = [k for k in keys if k not in available]
        if missing:
            raise ValueError(f"plot_curves: no numeric values for {missing} in the log; "
                             f"it has {available}")
    if smooth is not None and not 0 <= smooth < 1:
        raise ValueError(f"plot_curves: smooth is an EMA weight in [0, 1); got {smooth}")

    n = len(keys)
    cols = min(n, 3)
    nrows = -(-n // cols)
    fig = new_figure((4.2 * cols, 3.0 * nrows), layout="constrained")
    for i, key in enumerate(keys):
        ax = fig.add_subplot(nrows, cols, i + 1)
        pts = [(row.get("step", j), row[key]) for j, row in enumerate(rows)
               if _is_scalar(row.get(key))]
        step = np.array([p[0] for p in pts], dtype=np.float64)
        value = np.array([p[1] for p in pts], dtype=np.float64)
        finite = value[np.isfinite(value)]
        if log_scale == "auto":
            use_log = "loss" in key.lower() and finite.size > 0 and bool((finite > 0).all())
        elif isinstance(log_scale, bool):
            use_log = log_scale and finite.size > 0 and bool((finite > 0).all())
        else:
            use_log = key in ([log_scale] if isinstance(log_scale, str) else log_scale)
        if smooth:
            ax.plot(step, value, color="C0", alpha=0.3, linewidth=0.8, label="raw")
            ax.plot(step, ema_smooth(value, smooth), color="C0", linewidth=1.6,
                    label=f"EMA {smooth:g}")
        else:
            ax.plot(step, value, color="C0", linewidth=1.2)
        if use_log:
            ax.set_yscale("log")
        ax.set_title(key)
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
        if finite.size < value.size:
            ax.text(0.99, 0.98, f"{value.size - finite.size} non-finite", ha="right",
                    va="top", transform=ax.transAxes, fontsize=8, color="C3")
    if title:
        fig.suptitle(title)
    return fig


def plot_curves(log, path, keys=None, smooth: float = 0.9, log_scale="auto",
                title=None) -> str:
    """Plot the scalars of a training log against the step, one panel per key.

    Args:
        log: a list of dicts, the rows of a log ({"step": 100, "loss": 0.3, ...}), or the
            path of a .jsonl file holding one such JSON object per line. Rows without
            "step" use their index; a key missing from a row is skipped for that row.
        path: the .png file to write.
        keys: the keys to draw (a name or a list); None: every numeric key but "step".
        smooth: each panel shows the raw values as a light line and their debiased EMA
            with this weight (``ema_smooth``) as a solid one; 0 or None: the raw line only.
        log_scale: "auto" puts a key on a log y-axis when its name contains "loss" and
            all its values are positive; True / False for every key (True only where
            positive); or a collection of key names.
        title: an optional title over all panels.

    Example: ``plot_curves("runs/vae/log.jsonl", "runs/vae/curves.png")``
    """
    path = check_png_path(path, "plot_curves")
    return save_figure(_curves_figure(log, keys, smooth, log_scale, title), path)


# --------------------------------------------------------------------------- 2-D points

def _points(x, name, what="samples") -> np.ndarray:
    a = _to_numpy(x).astype(np.float64)
    if a.ndim != 2 or a.shape[1] != 2:
        raise ValueError(f"{name}: {what} must have shape (N, 2); got {tuple(a.shape)}")
    return a


def _limits(lim, *clouds):
    """((x0, x1), (y0, y1)) from lim (a number L, (lo, hi), or a pair of those), else a
    square view around the first cloud (0.5% trimmed on each side, plus 10%)."""
    if lim is not None:
        if np.isscalar(lim):
            lim = (-abs(float(lim)), abs(float(lim)))
        lim = tuple(lim)
        if len(lim) == 2 and np.isscalar(lim[0]):
            lim = (lim, lim)
        (x0, x1), (y0, y1) = lim
        if not (x1 > x0 and y1 > y0):
            raise ValueError(f"lim must run from low to high; got {lim}")
        return (float(x0), float(x1)), (float(y0), float(y1))
    pts = clouds[0]
    pts = pts[np.isfinite(pts).all(axis=1)]
    if pts.shape[0] == 0:
        return (-1.0, 1.0), (-1.0, 1.0)
    lo, hi = np.quantile(pts, [0.005, 0.995], axis=0) if pts.shape[0] > 200 else \
        (pts.min(axis=0), pts.max(axis=0))
    centre, half = (lo + hi) / 2, max(float((hi - lo).max()) / 2 * 1.1, 1e-3)
    return (centre[0] - half, centre[0] + half), (centre[1] - half, centre[1] + half)


def _outside(pts, xlim, ylim) -> int:
    return int((~((pts[:, 0] >= xlim[0]) & (pts[:, 0] <= xlim[1]) &
                  (pts[:, 1] >= ylim[0]) & (pts[:, 1] <= ylim[1]))).sum())


def _samples_figure(samples, data=None, title=None, lim=None):
    s = _points(samples, "plot_2d_samples")
    d = None if data is None else _points(data, "plot_2d_samples", "data")
    xlim, ylim = _limits(lim, d if d is not None else s)
    fig = new_figure((5, 5), layout="constrained")
    ax = fig.add_subplot()
    if d is not None:
        ax.scatter(d[:, 0], d[:, 1], s=3, c="0.65", alpha=0.5, linewidths=0, label="data",
                   rasterized=True)
    ax.scatter(s[:, 0], s[:, 1], s=3, c="C0", alpha=0.7, linewidths=0, label="samples",
               rasterized=True)
    ax.set_xlim(*xlim)
    ax.set_ylim(*ylim)
    ax.set_aspect("equal")
    if d is not None:
        ax.legend(loc="upper right", markerscale=3, fontsize=8)
    n_out = _outside(s, xlim, ylim)
    if n_out:  # say so rather than silently hide divergent samples
        ax.text(0.01, 0.01, f"{n_out} of {len(s)} samples outside the view", fontsize=8,
                color="C3", transform=ax.transAxes)
    if title:
        ax.set_title(title)
    return fig


def plot_2d_samples(samples, data=None, path=None, title=None, lim=None) -> str:
    """Scatter plot of 2-D samples, optionally over the data (in grey).

    Args:
        samples: (N, 2), Tensor or array.
        data: optional (M, 2) drawn beneath the samples. If a path is given here and
            ``path`` is None, it is taken as the path: ``plot_2d_samples(x, "s.png")``.
        path: the .png file to write (required).
        title: optional title.
        lim: the view: a number L for [-L, L]^2, (lo, hi) for both axes, or
            ((x0, x1), (y0, y1)); None: a square around the data (or the samples when no
            data is given). Samples outside the view are counted in a note.

    Example: ``plot_2d_samples(gan.sample(2000), data=x_train, path="runs/gan/2d.png")``
    """
    if path is None and isinstance(data, (str, os.PathLike)):
        data, path = None, data
    if path is None:
        raise TypeError("plot_2d_samples: missing the path of the .png file to write")
    path = check_png_path(path, "plot_2d_samples")
    return save_figure(_samples_figure(samples, data, title, lim), path)


def plot_2d_panels(panels, data, path, lim, color="C0") -> str:
    """A strip of scatter plots, one per (title, points (N, 2)) of ``panels``, each over
    the data (M, 2) in grey, on the square view [lim[0], lim[1]]^2: samples at moments
    of training, or a process at moments of its time. Returns the path written."""
    path = check_png_path(path, "plot_2d_panels")
    fig = new_figure((2.2 * len(panels), 2.4), layout="constrained")
    data = _to_numpy(data)
    for i, (title, points) in enumerate(panels):
        points = _to_numpy(points)
        ax = fig.add_subplot(1, len(panels), i + 1)
        ax.scatter(data[:, 0], data[:, 1], s=1, c="0.7", linewidths=0)
        ax.scatter(points[:, 0], points[:, 1], s=1, c=color, linewidths=0)
        ax.set_xlim(*lim)
        ax.set_ylim(*lim)
        ax.set_aspect("equal")
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_title(title, fontsize=8)
    return save_figure(fig, path)


# --------------------------------------------------------------------------- 2-D fields

def evaluate_on_grid(fn, lim=(-4, 4), resolution: int = 200, *, vector: bool = False,
                     as_tensor: bool = True, device: str = "cpu"):
    """Evaluate ``fn`` at every point of a regular 2-D grid, in one batched call.

    The grid points are xs[j] = x0 + j (x1 - x0) / (R - 1) and the same for ys; they are
    passed to ``fn`` as one (G, 2) float32 batch (G = R^2, x varying fastest): a Tensor
    on ``device`` (or a NumPy array with ``as_tensor=False``).

    For scalar functions (a log-density, an energy) ``fn`` runs under ``no_grad``. With
    ``vector=True`` it runs with gradients enabled and the grid Tensor requires grad, so
    a score can be computed by autograd:
    ``lambda x: tg.grad(model.log_prob(x).sum(), x)[0]``.

    Args:
        fn: (G, 2) -> (G,) or (G, 1) values, or (G, 2) vectors with ``vector=True``;
            may return a Tensor (any device) or an array.
        lim: a number L for [-L, L]^2, (lo, hi) for both axes, or ((x0, x1), (y0, y1)).
        resolution: R, the number of grid points along each axis.

    Returns:
        (xs (R,), ys (R,), values), float64, values of shape (R, R) or (R, R, 2) with
        values[i, j] = fn at (xs[j], ys[i]) (row i is y, as in an image drawn with
        origin="lower"). For a density, values.sum() * dx * dy approximates its integral.

    Example: ``xs, ys, logp = evaluate_on_grid(lambda x: normal.log_prob(x).sum(1))``
    """
    resolution = int(resolution)
    if resolution < 2:
        raise ValueError(f"evaluate_on_grid: resolution must be at least 2; got {resolution}")
    if lim is None:
        raise ValueError("evaluate_on_grid: lim is required, e.g. (-4, 4)")
    (x0, x1), (y0, y1) = _limits(lim)
    xs, ys = np.linspace(x0, x1, resolution), np.linspace(y0, y1, resolution)
    gx, gy = np.meshgrid(xs, ys)  # gx[i, j] = xs[j], gy[i, j] = ys[i]
    grid = np.stack([gx.ravel(), gy.ravel()], axis=1).astype(np.float32)
    g = grid.shape[0]
    if as_tensor:
        x = Tensor(backend.to_device(grid, device), requires_grad=vector)
    else:
        x = grid
    with (enable_grad() if vector else no_grad()):
        out = fn(x)
    out = _to_numpy(out).astype(np.float64)
    if vector:
        if out.shape != (g, 2):
            raise ValueError(f"evaluate_on_grid: the vector field must return shape ({g}, 2) "
                             f"for the ({g}, 2) grid; got {tuple(out.shape)}")
        values = out.reshape(resolution, resolution, 2)
    else:
        if out.size != g or out.shape[0] != g:
            raise ValueError(f"evaluate_on_grid: fn must return ({g},) or ({g}, 1) values for "
                             f"the ({g}, 2) grid; got {tuple(out.shape)}")
        values = out.reshape(resolution, resolution)
    nan = np.isnan(values)
    if nan.any():
        i = np.argwhere(nan)[0]
        raise ValueError(f"evaluate_on_grid: fn returned NaN at {int(nan.sum())} grid points, "
                         f"e.g. at x = ({xs[i[1]]:.4g}, {ys[i[0]]:.4g})")
    return xs, ys, values


def _density_figure(fn, lim=(-4, 4), resolution=None, kind="density", data=None,
                    title=None, as_tensor=True, device="cpu"):
    if kind not in ("density", "energy", "vector"):
        raise ValueError(f"plot_2d_density: kind must be 'density', 'energy' or 'vector'; "
                         f"got {kind!r}")
    if resolution is None:
        resolution = 21 if kind == "vector" else 200
    xs, ys, v = evaluate_on_grid(fn, lim, resolution, vector=kind == "vector",
                                 as_tensor=as_tensor, device=device)
    fig = new_figure((5.6, 4.6), layout="constrained")
    ax = fig.add_subplot()
    if kind == "density":
        if (v == np.inf).any():
            raise ValueError("plot_2d_density: the log-density is +inf somewhere on the grid")
        top = v.max()
        # exp of an unnormalised log-density (an EBM's -E) can overflow: show it relative
        # to its maximum then; a normalised density is shown as is.
        shift = top if top > 700 else 0.0
        dens = np.exp(v - shift)
        dx, dy = xs[1] - xs[0], ys[1] - ys[0]
        # The extent puts each pixel's centre on its grid point.
        im = ax.imshow(dens, origin="lower", cmap="viridis", interpolation="nearest",
                       extent=(xs[0] - dx / 2, xs[-1] + dx / 2, ys[0] - dy / 2, ys[-1] + dy / 2))
        fig.colorbar(im, ax=ax, label="p(x) / max p(x)" if shift else "p(x)")
    elif kind == "energy":
        finite = v[np.isfinite(v)]
        if finite.size == 0:
            raise ValueError("plot_2d_density: the energy is infinite everywhere on the grid")
        # Resolve the low-energy (likely) region; the highest 5% share the top colour.
        lo, hi = float(finite.min()), float(np.quantile(finite, 0.95))
        if not hi > lo:
            hi = lo + 1.0
        from matplotlib.ticker import MaxNLocator
        levels = MaxNLocator(24).tick_values(lo, hi)  # round numbers on the colour bar
        e = np.where(np.isfinite(v), v, levels[-1])
        cs = ax.contourf(xs, ys, e, levels=levels, cmap="viridis_r", extend="max")
        # Lines at every third level, not the lowest: it would mark the minimum as a dot.
        ax.contour(xs, ys, e, levels=levels[3::3], colors="k", linewidths=0.4, alpha=0.5)
        fig.colorbar(cs, ax=ax, label="E(x)")
    else:
        norm = np.sqrt((v ** 2).sum(-1))
        q = ax.quiver(xs, ys, v[..., 0], v[..., 1], norm, cmap="viridis", pivot="mid")
        fig.colorbar(q, ax=ax, label="|v(x)|")
    if data is not None:
        d = _points(data, "plot_2d_density", "data")
        ax.scatter(d[:, 0], d[:, 1], s=4, c="C3", alpha=0.6, linewidths=0, rasterized=True)
    ax.set_xlim(xs[0], xs[-1])
    ax.set_ylim(ys[0], ys[-1])
    ax.set_aspect("equal")
    if title:
        ax.set_title(title)
    return fig


def plot_2d_density(log_density_fn, path, lim=(-4, 4), resolution=None, kind="density",
                    data=None, title=None, *, as_tensor: bool = True,
                    device: str = "cpu") -> str:
    """Draw a function of 2-D points on a grid: a density, an energy or a vector field.

    The function is evaluated once on all grid points (``evaluate_on_grid``):

    - kind="density": fn(x) = log p(x), shown as the image exp(log p(x)) (relative to
      its maximum when that would overflow, for unnormalised models);
    - kind="energy": fn(x) = E(x), shown as filled contours (low energy = bright);
    - kind="vector": fn(x) = v(x) of shape (G, 2), e.g. a score grad_x log p(x), shown as
      arrows coloured by their length. fn runs with gradients enabled and x requires
      grad, so the score may come from autograd.

    Args:
        log_density_fn: (G, 2) Tensor (or array with ``as_tensor=False``) -> (G,) or
            (G, 1), or (G, 2) for "vector"; may return a Tensor or an array.
        path: the .png file to write.
        lim: the square [lo, hi]^2 as (lo, hi), a number L, or ((x0, x1), (y0, y1)).
        resolution: grid points per axis; None: 200, or 21 arrows for "vector".
        data: optional (M, 2) points drawn on top (red dots).
        title: optional title.
        device: where the grid Tensor is put (the model's device).

    Example: ``plot_2d_density(lambda x: flow.log_prob(x), "runs/flow/density.png")``
    """
    path = check_png_path(path, "plot_2d_density")
    return save_figure(_density_figure(log_density_fn, lim, resolution, kind, data, title,
                                        as_tensor, device), path)


# --------------------------------------------------------------------------- trajectories

def trajectory_indices(num_snapshots: int, nsteps: int) -> np.ndarray:
    """The snapshots shown: ``nsteps`` indices spread evenly from the first (0) to the
    last (T - 1), all T when T <= nsteps, the last one alone when nsteps == 1."""
    if num_snapshots < 1 or nsteps < 1:
        raise ValueError(f"plot_trajectory: need at least one snapshot and nsteps >= 1; got "
                         f"{num_snapshots} snapshots, nsteps={nsteps}")
    if nsteps == 1:
        return np.array([num_snapshots - 1])
    n = min(nsteps, num_snapshots)
    return np.unique(np.round(np.linspace(0, num_snapshots - 1, n)).astype(int))


def _trajectory_figure(chain, nsteps=8, nrow=None, value_range=None):
    """(figure, is_image_grid, rows, padding)."""
    t = chain.shape[0] if hasattr(chain, "shape") else len(chain)
    idx = trajectory_indices(t, int(nsteps))
    # Only the chosen snapshots are copied: a 1000-step chain stays where it is.
    snaps = np.stack([_to_numpy(chain[int(i)]) for i in idx])
    if snaps.ndim == 3 and snaps.shape[-1] == 2:  # (n, B, 2): point clouds
        clouds = snaps.astype(np.float64)
        xlim, ylim = _limits(None, clouds.reshape(-1, 2))
        n = len(idx)
        fig = new_figure((2.6 * n, 2.8), layout="constrained")
        for k, (i, pts) in enumerate(zip(idx, clouds)):
            ax = fig.add_subplot(1, n, k + 1)
            ax.scatter(pts[:, 0], pts[:, 1], s=2, c="C0", alpha=0.6, linewidths=0,
                       rasterized=True)
            ax.set_xlim(*xlim)
            ax.set_ylim(*ylim)
            ax.set_aspect("equal")
            ax.set_title(f"step {int(i)}", fontsize=9)
            ax.tick_params(labelsize=7)
        return fig
    if snaps.ndim not in (4, 5):
        raise ValueError("plot_trajectory: each snapshot must be a batch of images (B, C, H, W) "
                         f"or (B, H, W), or of 2-D points (B, 2); got {tuple(snaps.shape[1:])}")
    b = snaps.shape[1]
    rows = min(b, 16) if nrow is None else min(int(nrow), b)
    # (n, B, ...) -> (rows, n, ...): row r holds sample r at every chosen step.
    images = np.swapaxes(snaps[:, :rows], 0, 1).reshape(rows * len(idx), *snaps.shape[2:])
    grid = make_grid(images, nrow=len(idx), padding=2, value_range=value_range)
    return _grid_figure(grid)


def plot_trajectory(chain, path, nsteps: int = 8, nrow=None, value_range=None) -> str:
    """Draw a sampling chain (denoising, Langevin) at ``nsteps`` evenly spaced steps.

    Args:
        chain: T snapshots, as a list of Tensors/arrays or one (T, ...) Tensor/array; each
            snapshot is a batch of images (B, C, H, W) or (B, H, W), or of 2-D points (B, 2).
        path: the .png file to write.
        nsteps: how many snapshots to show, from the first to the last
            (``trajectory_indices``).
        nrow: images: how many samples (rows) to show; None: min(B, 16).
        value_range: images: as in ``make_grid``, inferred over all the shown snapshots.

    Images give a grid with one row per sample and one column per chosen step (the PNG is
    make_grid's array: rows (H + 2) + 2 by nsteps (W + 2) + 2 pixels). Points give one
    panel per chosen step, all with the same view.

    Example: ``plot_trajectory(ddpm.sample(16, return_chain=True), "runs/ddpm/chain.png")``
    """
    path = check_png_path(path, "plot_trajectory")
    return save_figure(_trajectory_figure(chain, nsteps, nrow, value_range), path)
