"""tinygen.plot: the files are valid PNGs of the right size, the pictures put things where
they belong, writes are atomic, and no figure is left behind."""
import gc
import json
import os
import subprocess
import sys

import matplotlib.figure
import matplotlib.image as mpimg
import numpy as np
import pytest

import tinygen as tg
from tinygen import plot

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def read_png(path):
    """(H, W, 3) float in [0, 1], after checking the file is a PNG."""
    with open(path, "rb") as f:
        assert f.read(8) == PNG_SIGNATURE
    return mpimg.imread(path)[..., :3]


def one_hot_batch(n, hot, shape=(1, 4, 5)):
    """n images of zeros, image ``hot`` all ones."""
    x = np.zeros((n,) + shape, dtype=np.float32)
    x[hot] = 1.0
    return x


# --------------------------------------------------------------------------- make_grid

@pytest.mark.parametrize("shape, out", [
    ((5, 4, 6), (2 * 6 + 2, 3 * 8 + 2)),            # (N, H, W): grey
    ((5, 1, 4, 6), (2 * 6 + 2, 3 * 8 + 2)),         # (N, 1, H, W): grey
    ((5, 3, 4, 6), (2 * 6 + 2, 3 * 8 + 2, 3)),      # (N, 3, H, W): RGB
    ((2, 1, 4, 6), (1 * 6 + 2, 2 * 8 + 2)),         # fewer images than nrow: one short row
])
def test_make_grid_shape(shape, out):
    grid = plot.make_grid(np.random.rand(*shape), nrow=3, padding=2)
    assert grid.shape == out
    assert grid.min() >= 0 and grid.max() <= 1


def test_make_grid_puts_each_image_in_its_cell():
    n, nrow, pad, h, w = 7, 3, 2, 4, 5
    for hot in range(n):
        grid = plot.make_grid(one_hot_batch(n, hot), nrow=nrow, padding=pad, pad_value=0.5)
        r, c = divmod(hot, nrow)
        top, left = pad + r * (h + pad), pad + c * (w + pad)
        assert np.all(grid[top:top + h, left:left + w] == 1.0)
        # everything else is a zero image or padding
        rest = grid.copy()
        rest[top:top + h, left:left + w] = 0.0
        assert set(np.unique(rest)) <= {0.0, 0.5}
        assert np.count_nonzero(grid == 1.0) == h * w


def test_make_grid_padding_and_rgb_channels():
    x = np.zeros((2, 3, 3, 3))
    x[1, 0] = 1.0  # image 1 is pure red
    grid = plot.make_grid(x, nrow=2, padding=1, pad_value=0.25)
    assert grid.shape == (5, 9, 3)
    assert np.all(grid[0] == 0.25) and np.all(grid[:, 0] == 0.25) and np.all(grid[:, 4] == 0.25)
    np.testing.assert_array_equal(grid[1:4, 5:8], np.broadcast_to([1.0, 0, 0], (3, 3, 3)))
    np.testing.assert_array_equal(grid[1:4, 1:4], 0.0)


def test_value_range_inferred_and_clipped():
    signed = np.array([-1.0, 0.0, 1.0, 0.5]).reshape(1, 1, 4)   # has a negative: (-1, 1)
    np.testing.assert_allclose(plot.make_grid(signed, padding=0)[0], [0, 0.5, 1, 0.75])
    unit = np.array([0.0, 0.25, 1.0, 0.5]).reshape(1, 1, 4)     # non-negative: (0, 1)
    np.testing.assert_allclose(plot.make_grid(unit, padding=0)[0], [0, 0.25, 1, 0.5])
    wide = np.array([-3.0, 0.0, 3.0, 0.5]).reshape(1, 1, 4)     # clipped to (-1, 1)
    np.testing.assert_allclose(plot.make_grid(wide, padding=0)[0], [0, 0.5, 1, 0.75])
    u8 = np.array([0, 51, 255, 102], dtype=np.uint8).reshape(1, 1, 4)  # integers: (0, 255)
    np.testing.assert_allclose(plot.make_grid(u8, padding=0)[0], [0, 0.2, 1, 0.4])


def test_value_range_given():
    x = np.array([0.0, 5.0, 10.0, 20.0]).reshape(1, 1, 4)
    np.testing.assert_allclose(plot.make_grid(x, padding=0, value_range=(0, 10))[0],
                               [0, 0.5, 1, 1])
    with pytest.raises(ValueError, match="low < high"):
        plot.make_grid(x, value_range=(1, 1))


def test_make_grid_errors():
    with pytest.raises(ValueError, match=r"\(N, 3, H, W\); got \(2, 2, 4, 4\)"):
        plot.make_grid(np.zeros((2, 2, 4, 4)))
    with pytest.raises(ValueError, match="got \\(4, 4\\)"):
        plot.make_grid(np.zeros((4, 4)))
    x = np.zeros((2, 1, 3, 3))
    x[1, 0, 1, 1] = np.nan
    with pytest.raises(ValueError, match="1 NaN"):
        plot.make_grid(x)


def test_make_grid_takes_tensors_on_any_device(device):
    x = np.random.rand(6, 1, 3, 4).astype(np.float32)
    np.testing.assert_array_equal(plot.make_grid(tg.tensor(x, device=device), nrow=4),
                                  plot.make_grid(x, nrow=4))


# --------------------------------------------------------------------------- save_image_grid

def test_save_image_grid_png_has_the_grid_pixels(tmp_path):
    n, nrow, hot = 7, 3, 4
    x = one_hot_batch(n, hot)
    path = str(tmp_path / "a" / "b" / "grid.png")  # parent folders are created
    assert plot.save_image_grid(x, path, nrow=nrow, padding=2, pad_value=0.0) == path
    img = read_png(path)
    grid = plot.make_grid(x, nrow=nrow, padding=2, pad_value=0.0)
    assert img.shape[:2] == grid.shape
    # grey drawn as grey: every channel equals the grid, to 8-bit precision
    np.testing.assert_allclose(img, np.repeat(grid[..., None], 3, -1), atol=0.5 / 255 + 1e-6)


def test_save_image_grid_rgb_and_tensor(tmp_path, device):
    x = np.random.rand(5, 3, 6, 7).astype(np.float32) * 2 - 1
    path = plot.save_image_grid(tg.tensor(x, device=device), tmp_path / "rgb.png", nrow=2)
    grid = plot.make_grid(x, nrow=2)
    np.testing.assert_allclose(read_png(path), grid, atol=0.5 / 255 + 1e-6)


def test_save_image_grid_labels_add_a_left_margin(tmp_path):
    x = one_hot_batch(6, 5, shape=(1, 20, 20))
    grid = plot.make_grid(x, nrow=3, pad_value=0.0)
    path = plot.save_image_grid(x, tmp_path / "lab.png", nrow=3, pad_value=0.0,
                                labels=["zero", "one"])
    img = read_png(path)
    assert img.shape[0] == grid.shape[0] and img.shape[1] > grid.shape[1]
    margin = img.shape[1] - grid.shape[1]
    # the grid sits unchanged at the right; the margin holds dark text on white
    np.testing.assert_allclose(img[:, margin:, 0], grid, atol=0.5 / 255 + 1e-6)
    left = img[:, :margin, 0]
    assert left.max() == 1.0 and left.min() < 0.5
    with pytest.raises(ValueError, match="3 labels for a grid of 2 rows"):
        plot.save_image_grid(x, tmp_path / "bad.png", nrow=3, labels=["a", "b", "c"])


def test_only_png_paths(tmp_path):
    with pytest.raises(ValueError, match="ending in .png"):
        plot.save_image_grid(np.zeros((1, 2, 2)), tmp_path / "grid.jpg")
    assert os.listdir(tmp_path) == []


def test_write_is_atomic_and_leaves_no_temporary_file(tmp_path, monkeypatch):
    path = tmp_path / "grid.png"
    plot.save_image_grid(np.zeros((2, 1, 4, 4)), path)
    assert os.listdir(tmp_path) == ["grid.png"]
    before = path.read_bytes()

    def broken_savefig(self, f, **kwargs):
        f.write(b"\x89PNG half a file")
        raise KeyboardInterrupt  # interrupted mid-write

    monkeypatch.setattr(matplotlib.figure.Figure, "savefig", broken_savefig)
    with pytest.raises(KeyboardInterrupt):
        plot.save_image_grid(np.ones((2, 1, 4, 4)), path)
    assert os.listdir(tmp_path) == ["grid.png"]     # no temporary file left
    assert path.read_bytes() == before              # the old picture intact


# --------------------------------------------------------------------------- curves

def test_plot_curves_from_jsonl(tmp_path):
    log = tmp_path / "log.jsonl"
    with open(log, "w") as f:
        for step in range(0, 500, 10):
            f.write(json.dumps({"step": step, "loss": 2.0 * np.exp(-step / 100) + 0.01,
                                "elbo": -100.0 + step / 10, "note": "text"}) + "\n")
        f.write('{"step": 500, "lo')   # a row still being written: ignored
    path = plot.plot_curves(str(log), tmp_path / "curves.png")
    assert read_png(path).shape[0] > 100
    fig = plot._curves_figure(str(log))
    axes = fig.axes
    assert [ax.get_title() for ax in axes] == ["loss", "elbo"]  # strings are not curves
    assert axes[0].get_yscale() == "log" and axes[1].get_yscale() == "linear"
    raw, smooth = axes[0].get_lines()
    np.testing.assert_array_equal(raw.get_xdata(), np.arange(0, 500, 10))


def test_plot_curves_list_keys_and_errors(tmp_path):
    rows = [{"step": i, "loss": 1.0 / (i + 1), "acc": i / 10} for i in range(10)]
    fig = plot._curves_figure(rows, keys=["acc"], smooth=0)
    assert len(fig.axes) == 1 and len(fig.axes[0].get_lines()) == 1
    assert plot._curves_figure(rows, log_scale=False).axes[0].get_yscale() == "linear"
    with pytest.raises(ValueError, match="no numeric values for \\['lr'\\]"):
        plot.plot_curves(rows, tmp_path / "c.png", keys=["lr"])
    with pytest.raises(ValueError, match="no rows"):
        plot.plot_curves([], tmp_path / "c.png")
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"step": 0, "loss": 1}\nnot json\n{"step": 1, "loss": 2}\n')
    with pytest.raises(ValueError, match="line 2"):
        plot.plot_curves(bad, tmp_path / "c.png")


def test_ema_smooth_is_debiased():
    np.testing.assert_allclose(plot.ema_smooth(np.full(5, 3.0), 0.9), 3.0)
    x = np.array([1.0, np.nan, 3.0])
    out = plot.ema_smooth(x, 0.5)
    # s1 = 0.5, w1 = 0.5 -> 1;  s3 = 0.25 + 1.5 = 1.75, w3 = 0.75 -> 7/3
    np.testing.assert_allclose(out[[0, 2]], [1.0, 7 / 3])
    assert np.isnan(out[1])


# --------------------------------------------------------------------------- 2-D pictures

def test_plot_2d_samples(tmp_path, device):
    data = np.random.randn(300, 2)
    samples = tg.tensor(np.random.randn(200, 2).astype(np.float32), device=device)
    path = plot.plot_2d_samples(samples, data, tmp_path / "s.png", title="samples")
    assert read_png(path).shape[0] > 100
    assert os.path.exists(plot.plot_2d_samples(samples, tmp_path / "t.png"))  # path 2nd
    with pytest.raises(ValueError, match=r"\(N, 2\); got \(4, 3\)"):
        plot.plot_2d_samples(np.zeros((4, 3)), path=tmp_path / "u.png")


def log_normal(x):
    """Standard normal log-density of (G, 2) points."""
    return -0.5 * (x * x).sum(1) - np.log(2 * np.pi)


def test_evaluate_on_grid_standard_normal_peaks_at_the_centre():
    xs, ys, logp = plot.evaluate_on_grid(log_normal, lim=(-4, 4), resolution=201)
    assert logp.shape == (201, 201)
    assert np.unravel_index(logp.argmax(), logp.shape) == (100, 100)
    assert xs[100] == 0 and ys[100] == 0
    # the grid spacing is right: the density integrates to ~1 over [-4, 4]^2
    dx = xs[1] - xs[0]
    assert abs(np.exp(logp).sum() * dx * dx - 1) < 1e-3


def test_evaluate_on_grid_orientation_and_one_batched_call():
    calls = []

    def fn(x):  # a bump at (2, -1), returned as a (G, 1) array
        calls.append(x)
        a = x.numpy()
        return -((a[:, :1] - 2) ** 2) - 4 * (a[:, 1:] + 1) ** 2

    xs, ys, v = plot.evaluate_on_grid(fn, lim=((-4, 4), (-3, 3)), resolution=61)
    assert len(calls) == 1 and isinstance(calls[0], tg.Tensor)
    assert calls[0].shape == (61 * 61, 2) and calls[0].dtype == np.float32
    i, j = np.unravel_index(v.argmax(), v.shape)   # row i is y, column j is x
    assert abs(xs[j] - 2) < 0.07 and abs(ys[i] + 1) < 0.07
    with pytest.raises(ValueError, match="NaN at 1 grid points"):
        plot.evaluate_on_grid(lambda x: np.where(np.arange(25) == 3, np.nan, 0.0),
                              resolution=5, as_tensor=False)
    with pytest.raises(ValueError, match=r"\(25,\) or \(25, 1\)"):
        plot.evaluate_on_grid(lambda x: np.zeros(24), resolution=5, as_tensor=False)


def test_density_png_has_its_bright_spot_where_the_mode_is(tmp_path):
    # A bump at (2, -1.2), a grid point, must be brightest at that point of the saved
    # picture: checks the image orientation (origin, extent), not just the numbers.
    def fn(x):
        return -((x[:, 0] - 2) ** 2) * 2 - ((x[:, 1] + 1.2) ** 2) * 2

    fig = plot._density_figure(fn, lim=(-4, 4), resolution=101)
    ax = fig.axes[0]
    fig.canvas.draw()
    height = fig.canvas.get_width_height()[1]
    bbox = ax.get_window_extent()
    px, py = ax.transData.transform((2.0, -1.2))
    path = plot.save_figure(fig, str(tmp_path / "d.png"))
    img = read_png(path)
    lum = img @ np.array([0.299, 0.587, 0.114])  # viridis: brightness grows with density
    r0, r1 = int(height - bbox.y1) + 2, int(height - bbox.y0) - 2
    c0, c1 = int(bbox.x0) + 2, int(bbox.x1) - 2
    inside = lum[r0:r1, c0:c1]
    rows, cols = np.nonzero(inside >= inside.max() - 1e-6)  # the brightest cell's pixels
    assert abs(rows.mean() + r0 - (height - py)) <= 1.5
    assert abs(cols.mean() + c0 - px) <= 1.5


def test_plot_2d_density_kinds(tmp_path):
    data = np.random.randn(50, 2)
    p = plot.plot_2d_density(log_normal, tmp_path / "density.png", data=data, title="N(0, I)")
    assert read_png(p).shape[0] > 100
    p = plot.plot_2d_density(lambda x: 0.5 * (x * x).sum(1), tmp_path / "energy.png",
                             kind="energy")
    assert read_png(p).shape[0] > 100

    def score(x):  # grad_x log p by autograd: x requires grad for kind="vector"
        return tg.grad(log_normal(x).sum(), x)[0]

    xs, ys, v = plot.evaluate_on_grid(score, lim=(-2, 2), resolution=5, vector=True)
    gx, gy = np.meshgrid(xs, ys)
    np.testing.assert_allclose(v, -np.stack([gx, gy], -1), atol=1e-6)  # score of N(0, I) = -x
    p = plot.plot_2d_density(score, tmp_path / "vector.png", kind="vector")
    assert read_png(p).shape[0] > 100
    with pytest.raises(ValueError, match="kind must be"):
        plot.plot_2d_density(log_normal, tmp_path / "x.png", kind="contour")


def test_unnormalised_density_does_not_overflow(tmp_path):
    fig = plot._density_figure(lambda x: 1000.0 - (x * x).sum(1), resolution=21)
    shown = fig.axes[0].images[0].get_array()
    assert np.isfinite(shown).all() and abs(shown.max() - 1) < 1e-12


# --------------------------------------------------------------------------- trajectories

def test_trajectory_indices():
    np.testing.assert_array_equal(plot.trajectory_indices(10, 4), [0, 3, 6, 9])
    np.testing.assert_array_equal(plot.trajectory_indices(3, 8), [0, 1, 2])
    np.testing.assert_array_equal(plot.trajectory_indices(1000, 2), [0, 999])
    np.testing.assert_array_equal(plot.trajectory_indices(5, 1), [4])


def test_plot_trajectory_images_one_row_per_sample(tmp_path):
    t, b, h, w = 10, 5, 4, 6
    # snapshot k is the constant k / 9, sample s adds nothing: each column one grey
    chain = [tg.tensor(np.full((b, 1, h, w), k / 9, dtype=np.float32)) for k in range(t)]
    path = plot.plot_trajectory(chain, tmp_path / "traj.png", nsteps=4, nrow=3)
    img = read_png(path)[..., 0]
    assert img.shape == (3 * (h + 2) + 2, 4 * (w + 2) + 2)
    for col, k in enumerate([0, 3, 6, 9]):
        for row in range(3):
            top, left = 2 + row * (h + 2), 2 + col * (w + 2)
            np.testing.assert_allclose(img[top:top + h, left:left + w], k / 9,
                                       atol=0.5 / 255 + 1e-6)


def test_plot_trajectory_rows_are_samples(tmp_path):
    # (T, B, H, W) array: sample s is the constant s / 3 at every step
    chain = np.broadcast_to((np.arange(4) / 3)[None, :, None, None], (6, 4, 3, 3))
    img = read_png(plot.plot_trajectory(chain, tmp_path / "t.png", nsteps=3,
                                        value_range=(0, 1)))[..., 0]
    assert img.shape == (4 * 5 + 2, 3 * 5 + 2)
    for s in range(4):
        for c in range(3):
            np.testing.assert_allclose(img[2 + 5 * s:5 + 5 * s, 2 + 5 * c:5 + 5 * c], s / 3,
                                       atol=0.5 / 255 + 1e-6)


def test_plot_trajectory_points(tmp_path):
    chain = np.random.randn(20, 100, 2) * np.linspace(3, 0.5, 20)[:, None, None]
    path = plot.plot_trajectory(chain, tmp_path / "p.png", nsteps=5)
    assert read_png(path).shape[1] > read_png(path).shape[0]
    fig = plot._trajectory_figure(chain, nsteps=5)
    assert [ax.get_title() for ax in fig.axes] == ["step 0", "step 5", "step 10",
                                                   "step 14", "step 19"]
    assert len({ax.get_xlim() for ax in fig.axes}) == 1  # one view for all panels


# --------------------------------------------------------------------------- figures

def live_figures():
    gc.collect()
    return sum(isinstance(o, matplotlib.figure.Figure) for o in gc.get_objects())


def test_no_figure_is_left_open(tmp_path):
    import matplotlib.pyplot as plt
    x = np.random.rand(4, 1, 5, 5)
    rows = [{"step": i, "loss": 1.0 + i} for i in range(5)]

    def draw_everything(k):
        plot.save_image_grid(x, tmp_path / f"g{k}.png", labels=["a"], nrow=4)
        plot.plot_curves(rows, tmp_path / f"c{k}.png")
        plot.plot_2d_samples(np.random.randn(10, 2), path=tmp_path / f"s{k}.png")
        plot.plot_2d_density(log_normal, tmp_path / f"d{k}.png", resolution=10)
        plot.plot_trajectory(np.random.randn(3, 2, 2), tmp_path / f"t{k}.png")

    draw_everything(0)
    figures, pyplot_figures = live_figures(), plt.get_fignums()
    for k in range(1, 4):
        draw_everything(k)
    assert live_figures() == figures
    assert plt.get_fignums() == pyplot_figures


def test_backend_of_the_user_is_left_alone(tmp_path):
    # A fresh interpreter that chose its own backend keeps it, and pyplot is never loaded.
    code = (
        "import sys, matplotlib\n"
        "matplotlib.use('svg')\n"
        "import numpy as np\n"
        "from tinygen import plot\n"
        f"plot.save_image_grid(np.zeros((2, 1, 3, 3)), {str(tmp_path / 'g.png')!r})\n"
        "assert matplotlib.get_backend() == 'svg', matplotlib.get_backend()\n"
        "assert 'matplotlib.pyplot' not in sys.modules\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert read_png(tmp_path / "g.png").shape[:2] == (7, 12)


def test_plot_2d_panels_draws_one_panel_per_moment(tmp_path):
    from tinygen.plot import plot_2d_panels
    rng = np.random.default_rng(0)
    data = rng.standard_normal((300, 2))
    panels = [(f"t={t}", rng.standard_normal((100, 2)) * t) for t in (1, 2, 3)]
    path = plot_2d_panels(panels, data, str(tmp_path / "p.png"), (-4, 4))
    assert (tmp_path / "p.png").read_bytes()[:4] == b"\x89PNG" and path.endswith("p.png")
    with pytest.raises(ValueError):
        plot_2d_panels(panels, data, str(tmp_path / "p.jpg"), (-4, 4))
