"""The four problems of GAN training the lecture names, each computed and drawn.

Run:  python demos/gan_problems.py [vanishing collapse dirac support]   (default: all four)
          [--quick]   (small budgets: a quick trial, the same pictures)
Nothing here needs MNIST: every problem shows itself on 1-D or 2-D toy data, where it can
be measured exactly. Each subcommand prints its numbers and writes one picture to --out.

1. vanishing_gradients.png -- "if the discriminator is too good, the generator gets no
   feedback". An MLP GAN on the ring of 8 Gaussians. First D is trained alone for a
   while against G at its initialisation, so that it becomes confident, D(G(z)) -> 0;
   then the two play the ordinary alternating game (non-saturating loss). At every
   checkpoint the same batch of z is pushed through both generator losses,
       minimax          log(1 - D(G(z)))    (the term of V itself)
       non-saturating   -log D(G(z))        (Goodfellow et al.'s fix)
   and the norm of the gradient of each with respect to G's weights is measured.
   With D's logit l, d/dl log(1 - sigmoid(l)) = -sigmoid(l) = -D: the minimax gradient
   is proportional to D(G(z)) and dies with it, while d/dl [-log sigmoid(l)] = D - 1
   stays near -1. The right panel draws exactly these two derivatives (by autograd).

2. mode_collapse.png -- "G produces a limited variety". The grid of 25 Gaussians
   (std 0.05): a plain GAN (k = 1, non-saturating loss) against WGAN-GP, the same
   networks and batches and about the same time (WGAN-GP makes a third as many G
   updates, each after 5 critic updates). Titles give the modes covered (of 25) and the
   high-quality fraction (samples within 3 std of a mode,
   ``tinygen.metrics.mode_coverage``); below, a map of the high-quality samples each
   mode receives (a perfect G gives each about 100 of 2500). With the default budget
   the plain GAN's samples are sharper, but it piles them onto a few modes (the
   corners) and misses or starves the others; WGAN-GP spreads its mass over all the
   modes but is still blurry: at this budget it trades sharpness for coverage. Whatever
   happens is shown, not chosen: a plain GAN does not collapse every time, and another
   seed or budget may draw a different picture.

3. dirac_gan.png -- "the two-player dynamic may not converge" (Mescheder, Geiger &
   Nowozin 2018, "Which Training Methods for GANs do actually Converge?", section 2.2).
   The smallest GAN: the data is a point, p_data = delta_0; G puts its only sample at
   theta, p_g = delta_theta; D(x) = sigmoid(psi x). The game
       V(theta, psi) = log D(0) + log(1 - D(theta)) = log sigmoid(0) + log sigmoid(-psi theta)
   has its unique equilibrium at (theta, psi) = (0, 0). Gradient steps, G descending V
   in theta and D ascending it in psi, taken
       simultaneously:  both from the same point -> they circle and spiral outwards;
       alternately:     G first, then D at G's new theta -> a closed, bounded orbit,
                        which never reaches (0, 0) either;
       with R1 (gamma/2 E_pdata ||grad_x logit D(x)||^2 subtracted from D's objective,
                Mescheder et al.'s fix) -> spirals in to the equilibrium.
   Every gradient is taken by the engine's autograd (``tinygen.grad`` on
   ``gan.value``; the R1 term by a gradient of a gradient), drawn over the vector field
   (-dV/dtheta, dV/dpsi).

4. low_dimensional_support.png -- "the distributions may live on manifolds that do not
   meet" (Arjovsky, Chintala & Bottou 2017, Example 1). p_data is uniform on the segment
   {0} x [0, 1], p_g on {theta} x [0, 1]. For theta != 0 the supports are disjoint:
   JSD(p_data || p_g) = log 2 whatever theta (computed by ``gan.jensen_shannon`` on a
   grid), while W1(p_data, p_g) = |theta| shrinks as G approaches. Then, for several
   theta, a discriminator and a WGAN-GP critic are trained to (near) optimality and the
   generator's gradient d/dtheta at its own samples is measured: the discriminator
   separates the lines perfectly, saturates, and hands G a gradient that vanishes; the
   critic's slope stays about 1, pointing G at the data from any distance.
"""
import argparse
import os
import time

import numpy as np
from matplotlib.lines import Line2D
from tqdm import tqdm

import tinygen as tg
from tinygen import data, optim
from tinygen.metrics import mode_coverage
from tinygen.models.gan import (Discriminator, Generator, discriminator_loss, frozen,
                                generator_loss, gradient_penalty, jensen_shannon, value)
from tinygen.models.gan import wgan
from tinygen.plot import new_figure, save_figure

PROBLEMS = ("vanishing", "collapse", "dirac", "support")
parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("problems", nargs="*", metavar="PROBLEM",
                    help=f"any of {', '.join(PROBLEMS)} (default: all four)")
parser.add_argument("--collapse-steps", type=int, default=None,
                    help="G updates of the plain GAN in the mode-collapse race "
                         "(WGAN-GP makes a third as many)")
parser.add_argument("--vanishing-steps", type=int, default=None,
                    help="D's steps alone, and then the alternating steps, for problem 1")
parser.add_argument("--fit-steps", type=int, default=None,
                    help="steps training D and the critic at each theta, problem 4")
parser.add_argument("--quick", action="store_true", help="small budgets: a quick trial")
parser.add_argument("--out", default=os.path.join("runs", "gan_problems_demo"))
args = parser.parse_args()
args.problems = args.problems or list(PROBLEMS)
for name in args.problems:
    if name not in PROBLEMS:
        parser.error(f"unknown problem {name!r}: choose from {', '.join(PROBLEMS)}")
BUDGET = {"collapse": 30 if args.quick else 10000, "vanishing": 60 if args.quick else 600,
          "fit": 40 if args.quick else 600}
for key, given in (("collapse", args.collapse_steps), ("vanishing", args.vanishing_steps),
                   ("fit", args.fit_steps)):
    if given is not None:
        BUDGET[key] = given


def adam(module, lr, betas=(0.5, 0.999)):
    return optim.Adam(module.parameters(), lr=lr, betas=betas)


def batch_of(points, m, rng):
    """m points drawn with replacement, as a Tensor."""
    return tg.tensor(points[rng.integers(0, len(points), m)])


def grad_norm(loss, module):
    """||d loss / d (module's weights)||_2, all weights as one vector."""
    grads = tg.grad(loss, list(module.parameters()), allow_unused=True)
    return float(np.sqrt(sum(float((g.numpy().astype(np.float64) ** 2).sum())
                             for g in grads if g is not None)))


# =========================================================================== 1. vanishing
def vanishing_gradients(path):
    steps = BUDGET["vanishing"]
    tg.manual_seed(0)
    rng = np.random.default_rng(0)
    x_data = data.toy("8gaussians", 50_000, seed=0)
    G = Generator(2, (2,), (128, 128), output="linear")
    D = Discriminator((2,), (128, 128))
    opt_g, opt_d = adam(G, 2e-4), adam(D, 1e-3)
    z_fixed = tg.randn(512, 2)          # the same batch of z at every checkpoint

    def measure():
        # Both losses on the same samples, D frozen: gradients reach G's weights only.
        with frozen(D):
            logits = D(G(z_fixed))
            g_mm = grad_norm(generator_loss(logits, "minimax"), G)
            # a fresh forward pass: grad() has freed the first graph
            g_ns = grad_norm(generator_loss(D(G(z_fixed)), "non_saturating"), G)
        return g_mm, g_ns, float(logits.sigmoid().numpy().mean())

    def d_step():
        """One update of D on a batch of data and a batch of G's samples, G frozen."""
        with frozen(G):
            fake = G.sample(128)
        loss = discriminator_loss(D(batch_of(x_data, 128, rng)), D(fake))
        opt_d.zero_grad()
        loss.backward()
        opt_d.step()

    log = []   # (step, |grad| minimax, |grad| non-saturating, mean D(G(z)))
    every = max(1, steps // 40)
    # Phase 1: D alone, G frozen at its initialisation: D learns to reject G's samples.
    for step in tqdm(range(steps), desc="1. D trained alone"):
        if step % every == 0:
            log.append((step, *measure()))
        d_step()
    # Phase 2: the ordinary game, k = 1, G on the non-saturating loss.
    for step in tqdm(range(steps, 2 * steps + 1), desc="1. alternating training"):
        if step % every == 0:
            log.append((step, *measure()))
        d_step()
        with frozen(D):
            g_loss = generator_loss(D(G.sample(128)), "non_saturating")
            opt_g.zero_grad()
            g_loss.backward()
            opt_g.step()
    log = np.array(log)
    i_conf = np.argmin(np.abs(log[:, 0] - steps))   # the end of phase 1
    print(f"1. vanishing gradients: after {steps} steps of D alone, mean D(G(z)) = "
          f"{log[i_conf, 3]:.2e}, |grad_G| minimax {log[i_conf, 1]:.2e} vs non-saturating "
          f"{log[i_conf, 2]:.2e} (ratio {log[i_conf, 2] / log[i_conf, 1]:.0f}); at the end "
          f"D(G(z)) = {log[-1, 3]:.2f}, ratio {log[-1, 2] / log[-1, 1]:.1f}")

    # The per-sample derivative with respect to D's logit, by autograd, as a function of D.
    logit = tg.tensor(np.linspace(-12, 6, 400), requires_grad=True)
    n = logit.shape[0]   # the losses average over the batch: times n, each point's own
    (d_mm,) = tg.grad(generator_loss(logit, "minimax") * n, logit)
    (d_ns,) = tg.grad(generator_loss(logit, "non_saturating") * n, logit)
    d_of_logit = logit.sigmoid().numpy()

    fig = new_figure((12, 5.2), layout="constrained")
    gs = fig.add_gridspec(2, 2, width_ratios=(2.1, 1), height_ratios=(2.2, 1))
    ax = fig.add_subplot(gs[0, 0])
    ax.axvspan(0, steps, color="0.92", zorder=0)
    ax.semilogy(log[:, 0], log[:, 1], "C3-", label="minimax  log(1 - D(G(z)))")
    ax.semilogy(log[:, 0], log[:, 2], "C0-", label="non-saturating  -log D(G(z))")
    ax.set_ylabel("||grad of G's loss w.r.t. G's weights||")
    ax.set_title("Vanishing gradients: the same batch of z through both generator losses")
    ax.text(steps * 0.5, 0.97, "D trained alone (G fixed):\nD grows confident",
            transform=ax.get_xaxis_transform(), ha="center", va="top", fontsize=9)
    ax.text(steps * 1.5, 0.97, "alternating training (G on the\nnon-saturating loss)",
            transform=ax.get_xaxis_transform(), ha="center", va="top", fontsize=9)
    ax.legend(loc="lower right", fontsize=9)
    ax.tick_params(labelbottom=False)
    ax.grid(alpha=0.3, which="both")
    ax2 = fig.add_subplot(gs[1, 0], sharex=ax)
    ax2.axvspan(0, steps, color="0.92", zorder=0)
    ax2.semilogy(log[:, 0], log[:, 3], "k-")
    ax2.set_ylabel("mean D(G(z))")
    ax2.set_xlabel("step (updates of D)")
    ax2.grid(alpha=0.3, which="both")
    ax3 = fig.add_subplot(gs[:, 1])
    ax3.loglog(d_of_logit, np.abs(d_mm.numpy()), "C3-", label="minimax: |dL/dl| = D")
    ax3.loglog(d_of_logit, np.abs(d_ns.numpy()), "C0-", label="non-saturating: |dL/dl| = 1 - D")
    ax3.set_xlabel("D(G(z)) = sigmoid(l)")
    ax3.set_ylabel("|d loss / d logit l| for one sample")
    ax3.set_title("Why: the loss's slope in D's logit")
    ax3.legend(fontsize=9, loc="lower right")
    ax3.grid(alpha=0.3, which="both")
    save_figure(fig, path)


# =========================================================================== 2. collapse
def mode_collapse(path):
    # WGAN-GP gets a third as many G updates: each follows 5 critic updates whose
    # penalty needs a double backward, so the two runs take about the same time.
    updates = {"gan": BUDGET["collapse"], "wgan-gp": max(1, BUDGET["collapse"] // 3)}
    centers, std = data.toy_modes("25gaussians")
    x_data = data.toy("25gaussians", 100_000, seed=0)
    samples, metrics = {}, {}
    for kind in ("gan", "wgan-gp"):
        # The same networks and batch size for both.
        tg.manual_seed(0)
        rng = np.random.default_rng(0)
        G = Generator(2, (2,), (256, 256), output="linear")
        D = Discriminator((2,), (256, 256))
        m = 128
        if kind == "gan":   # Goodfellow et al.'s Algorithm 1, k = 1, non-saturating loss
            opt_g, opt_d, k = adam(G, 1e-3), adam(D, 1e-3), 1
        else:               # Gulrajani et al.'s Algorithm 1, n_critic = 5
            opt_g, opt_d, k = adam(G, 5e-4, (0.5, 0.9)), adam(D, 5e-4, (0.5, 0.9)), 5
        for _ in tqdm(range(updates[kind]), desc=f"2. {kind}"):
            for _ in range(k):
                x = batch_of(x_data, m, rng)
                with frozen(G):
                    fake = G.sample(m)
                if kind == "gan":
                    loss = discriminator_loss(D(x), D(fake))
                else:   # lambda = 1: on this toy set 10 only slows the critic down
                    loss = wgan.critic_loss(D(x), D(fake)) + gradient_penalty(D, x, fake, 1.0)
                opt_d.zero_grad()
                loss.backward()
                opt_d.step()
            with frozen(D):
                scores = D(G.sample(m))
                g_loss = (generator_loss(scores, "non_saturating") if kind == "gan"
                          else wgan.generator_loss(scores))
                opt_g.zero_grad()
                g_loss.backward()
                opt_g.step()
        with tg.no_grad():
            samples[kind] = G.sample(2500).numpy()
        metrics[kind] = mode_coverage(samples[kind], centers, std)
        counts = metrics[kind]["counts"]
        print(f"2. mode collapse: {kind} after {updates[kind]} G updates: "
              f"{metrics[kind]['modes_covered']}/25 modes covered, high-quality fraction "
              f"{metrics[kind]['high_quality_fraction']:.3f}; high-quality samples per mode "
              f"min {counts.min()}, median {int(np.median(counts))}, max {counts.max()} "
              f"(of 2500 samples; a perfect G gives each mode about 100)")

    fig = new_figure((10, 9.4), layout="constrained")
    gs = fig.add_gridspec(2, 2, height_ratios=(1.25, 1))
    names = {"gan": f"plain GAN: {updates['gan']} G updates (k = 1)",
             "wgan-gp": f"WGAN-GP: {updates['wgan-gp']} G updates (n_critic = 5)"}
    vmax = max(int(metrics[k]["counts"].max()) for k in metrics)
    for i, kind in enumerate(("gan", "wgan-gp")):
        ax = fig.add_subplot(gs[0, i])
        s, c = samples[kind], metrics[kind]
        ax.scatter(x_data[:2500, 0], x_data[:2500, 1], s=3, c="0.5", linewidths=0,
                   label="data", rasterized=True)
        ax.scatter(s[:, 0], s[:, 1], s=3, c="C0" if kind == "gan" else "C2", alpha=0.6,
                   linewidths=0, label="G(z)", rasterized=True)
        missed = np.flatnonzero(c["counts"] == 0)
        ax.scatter(centers[missed, 0], centers[missed, 1], s=160, facecolors="none",
                   edgecolors="C3", linewidths=1.5, label="mode missed")
        ax.set_xlim(-5.5, 5.5)
        ax.set_ylim(-5.5, 5.5)
        ax.set_aspect("equal")
        ax.set_title(f"{names[kind]}\n{c['modes_covered']}/25 modes covered, "
                     f"{c['high_quality_fraction']:.0%} of samples high quality", fontsize=10)
        ax.legend(handles=[Line2D([], [], ls="", marker="o", ms=4, color="0.5", label="data"),
                           Line2D([], [], ls="", marker="o", ms=4, label="G(z)",
                                  color="C0" if kind == "gan" else "C2"),
                           Line2D([], [], ls="", marker="o", ms=9, mfc="none", mew=1.5,
                                  color="C3", label="mode missed")],
                  loc="upper right", fontsize=8, framealpha=0.9)
        # Where the good samples go: a 5 x 5 map of the high-quality samples per mode.
        ax = fig.add_subplot(gs[1, i])
        grid = np.zeros((5, 5), int)
        for (cx, cy), n in zip(centers, c["counts"]):
            grid[int(round(cy / 2)) + 2, int(round(cx / 2)) + 2] = n
        im = ax.imshow(grid, origin="lower", cmap="Blues", vmin=0, vmax=vmax,
                       extent=(-5, 5, -5, 5))
        for (cx, cy), n in zip(centers, c["counts"]):
            ax.text(cx, cy, str(n), ha="center", va="center", fontsize=9,
                    color="C3" if n == 0 else ("w" if n > vmax / 2 else "k"))
        ax.set_xticks([-4, -2, 0, 2, 4])
        ax.set_yticks([-4, -2, 0, 2, 4])
        ax.set_title("high-quality samples per mode (within 3 std; of 2500,\n"
                     "a perfect G puts about 100 on each)", fontsize=9)
    fig.colorbar(im, ax=fig.axes[-1], shrink=0.8, label="samples")
    fig.suptitle("Mode collapse on 25 Gaussians: the same networks and batches, about the "
                 "same time each\n(a mode is covered by at least one high-quality sample; "
                 "all numbers measured, not chosen)", fontsize=11)
    save_figure(fig, path)


# =========================================================================== 3. Dirac GAN
def dirac_gan(path, h=0.1, gamma=0.6):
    """Trajectories of gradient steps of the Dirac GAN in the (theta, psi) plane."""
    n_steps = 400 if args.quick else 1200
    zero = tg.tensor(np.zeros(1))

    def V(theta, psi):
        """V(theta, psi) = log D(0) + log(1 - D(theta)), D's logit at x is psi x."""
        return value(psi * zero, psi * theta)

    def gradients(theta, psi, r1=0.0):
        """(dV/dtheta, dV/dpsi) at a point, and D's ascent direction with R1 when r1 > 0:
        R1 = gamma/2 ||d logit D(x) / dx||^2 at the data x = 0, a gradient of a gradient."""
        t = tg.tensor([theta], requires_grad=True)
        p = tg.tensor([psi], requires_grad=True)
        v = V(t, p)
        g_t, g_p = tg.grad(v, [t, p], create_graph=r1 > 0)
        if r1 > 0:
            x = tg.tensor(np.zeros(1), requires_grad=True)       # the data point
            (dlogit_dx,) = tg.grad((p * x).sum(), x, create_graph=True)
            (g_r1,) = tg.grad(r1 / 2 * (dlogit_dx ** 2).sum(), p)
            g_p = g_p - g_r1
        return g_t.item(), g_p.item()

    def trajectory(mode, start=(1.0, 1.0)):
        theta, psi = start
        path_ = [(theta, psi)]
        for _ in range(n_steps):
            if mode == "alternating":      # G moves, then D answers G's new theta
                g_t, _ = gradients(theta, psi)
                theta = theta - h * g_t
                _, g_p = gradients(theta, psi)
                psi = psi + h * g_p
            else:                          # both from the same point
                g_t, g_p = gradients(theta, psi, gamma if mode == "r1" else 0.0)
                theta, psi = theta - h * g_t, psi + h * g_p
            path_.append((theta, psi))
        return np.array(path_)

    paths = {mode: trajectory(mode) for mode in
             tqdm(("simultaneous", "alternating", "r1"), desc="3. Dirac GAN")}
    for mode, p in paths.items():
        r = np.hypot(p[:, 0], p[:, 1])
        print(f"3. Dirac GAN, {mode}: distance to (0, 0) from {r[0]:.2f} to {r[-1]:.2f} "
              f"after {n_steps} steps of size {h} (max {r.max():.2f})")

    # The vector field (-dV/dtheta, dV/dpsi) on a grid, by autograd in one batch: V sums
    # over independent points, so d(sum)/d theta_i is point i's own dV/dtheta.
    lim = 1.1 * max(np.abs(q).max() for q in paths.values())
    g = np.linspace(-lim, lim, 21)
    tt, pp = np.meshgrid(g, g)
    t = tg.tensor(tt.ravel(), requires_grad=True)
    p = tg.tensor(pp.ravel(), requires_grad=True)
    n = t.shape[0]
    real, fake = p * tg.tensor(np.zeros(n)), p * t
    g_t, g_p = tg.grad(value(real, fake) * n, [t, p])   # value averages: times n
    u, w = -g_t.numpy().reshape(tt.shape), g_p.numpy().reshape(tt.shape)

    fig = new_figure((6.4, 7.2), layout="constrained")
    gs = fig.add_gridspec(2, 1, height_ratios=(6.2, 1))
    ax = fig.add_subplot(gs[0])
    ax.quiver(tt, pp, u, w, color="0.65", angles="xy", width=0.003)
    styles = {"simultaneous": ("C3", "simultaneous updates: spiral out"),
              "alternating": ("C0", "alternating updates: bounded orbit"),
              "r1": ("C2", f"simultaneous + R1 penalty (gamma = {gamma}): converges")}
    for mode, (color, label) in styles.items():
        q = paths[mode]
        ax.plot(q[:, 0], q[:, 1], "-", color=color, lw=1.2, label=label)
        ax.plot(*q[-1], "o", color=color, ms=5)
    ax.plot(*paths["r1"][0], "ks", ms=6, label="start (1, 1)")
    ax.plot(0, 0, "k*", ms=12, label="equilibrium (0, 0)")
    ax.set_xlim(-lim, lim)
    ax.set_ylim(-lim, lim)
    ax.set_aspect("equal")
    ax.set_xlabel("theta  (G's sample: p_g = delta_theta)")
    ax.set_ylabel("psi  (D(x) = sigmoid(psi x))")
    ax.set_title(f"Dirac GAN: gradient steps of size {h}, {n_steps} steps\n"
                 "arrows: (-dV/dtheta, dV/dpsi), G descends V, D ascends it", fontsize=10)
    legend_ax = fig.add_subplot(gs[1])     # the legend below the plane, off the spirals
    legend_ax.axis("off")
    legend_ax.legend(*ax.get_legend_handles_labels(), loc="center", ncol=2, fontsize=8)
    save_figure(fig, path)


# =========================================================================== 4. support
def low_dimensional_support(path):
    steps = BUDGET["fit"]
    # (a) JSD on a grid of cell width dx, p and q the densities of the two segments.
    dx = 0.01
    xs = np.arange(-3, 3 + dx / 2, dx)
    ys = np.arange(dx / 2, 1, dx)                       # the segment's y in [0, 1]

    def segment_density(at):
        column = np.zeros(len(xs))
        column[np.argmin(np.abs(xs - at))] = 1 / dx      # all the mass in one column
        return np.outer(np.ones(len(ys)), column)       # uniform in y: density 1 on [0, 1]

    thetas = np.round(np.linspace(-2, 2, 161), 6)
    p_data = segment_density(0.0)
    jsd = [jensen_shannon(p_data, segment_density(t), dx * dx) for t in thetas]

    # (b) a discriminator and a WGAN-GP critic trained at several theta
    fit_thetas = np.array([-2, -1, -0.5, -0.25, 0.25, 0.5, 1, 1.5, 2])
    rng = np.random.default_rng(0)

    def segment(at, m):
        return tg.tensor(np.stack([np.full(m, at), rng.random(m)], 1).astype(np.float32))

    def g_samples(theta_t, m):
        """G's samples (theta, z), z ~ U[0, 1], differentiable in theta_t (a (1,) Tensor)."""
        z = tg.tensor(rng.random((m, 1)).astype(np.float32))
        return tg.cat([theta_t * tg.ones(m, 1), z], axis=1)

    fits = []
    for theta in tqdm(fit_thetas, desc="4. D and critic at each theta"):
        tg.manual_seed(0)
        D, f = Discriminator((2,), (64, 64)), Discriminator((2,), (64, 64))
        opt_d, opt_f = adam(D, 1e-3), adam(f, 1e-3, (0.5, 0.9))
        for _ in range(steps):
            x, fake = segment(0.0, 128), segment(theta, 128)
            loss = discriminator_loss(D(x), D(fake))
            opt_d.zero_grad()
            loss.backward()
            opt_d.step()
            loss = wgan.critic_loss(f(x), f(fake)) + gradient_penalty(f, x, fake, 10.0)
            opt_f.zero_grad()
            loss.backward()
            opt_f.step()
        # G's gradient d/dtheta at its own samples, each player frozen
        theta_t = tg.tensor(np.array([theta], np.float32), requires_grad=True)
        with frozen(D, f):
            (d_mm,) = tg.grad(generator_loss(D(g_samples(theta_t, 1000)), "minimax"), theta_t)
            (d_w,) = tg.grad(wgan.generator_loss(f(g_samples(theta_t, 1000))), theta_t)
        with tg.no_grad():
            x, fake = segment(0.0, 5000), segment(theta, 5000)
            jsd_hat = (value(D(x), D(fake)).item() + np.log(4)) / 2   # V(D, G) = -log 4 + 2 JSD
            w_hat = wgan.wasserstein_estimate(f(x), f(fake)).item()
            line = tg.tensor(np.stack([np.linspace(-3, 3, 301), np.full(301, 0.5)], 1)
                             .astype(np.float32))
            d_line, f_line = D(line).sigmoid().numpy(), f(line).numpy()
        fits.append(dict(theta=theta, d_grad=abs(d_mm.item()), w_grad=abs(d_w.item()),
                         jsd=jsd_hat, w=w_hat, d_line=d_line, f_line=f_line))
        tqdm.write(f"4. theta = {theta:+.2f}: JSD estimate from D {jsd_hat:.3f} (log 2 = "
                   f"{np.log(2):.3f}), critic's W estimate {w_hat:.2f} (|theta| = "
                   f"{abs(theta):.2f}); |dloss_G/dtheta|: D (minimax) "
                   f"{abs(d_mm.item()):.1e}, critic {abs(d_w.item()):.2f}")

    fig = new_figure((15, 4.6), layout="constrained")
    ax = fig.add_subplot(1, 3, 1)
    ax.plot(thetas, jsd, "C3-", label="JSD(p_data || p_theta)  (jensen_shannon on a grid)")
    ax.plot(thetas, np.abs(thetas), "C0-", label="W1(p_data, p_theta) = |theta|")
    ft = np.array([r["theta"] for r in fits])
    ax.plot(ft, [r["jsd"] for r in fits], "C3o", mfc="none",
            label="(V(D, G) + log 4) / 2 of a trained D")
    ax.plot(ft, [r["w"] for r in fits], "C0s", mfc="none",
            label="E f(x) - E f(G(z)) of a trained critic")
    ax.axhline(np.log(2), color="C3", ls=":", lw=1)
    ax.text(-2, np.log(2) + 0.03, "log 2", color="C3", fontsize=9)
    ax.set_xlabel("theta  (p_theta on the line x = theta)")
    ax.set_ylabel("nats (JSD) / distance (W1)")
    ax.set_title("The divergence as G's line moves to the data's")
    ax.legend(fontsize=8, loc="upper center")
    ax.set_ylim(-0.05, 2.6)

    ax = fig.add_subplot(1, 3, 2)
    pos = ft > 0
    ax.semilogy(np.abs(ft[pos]), [r["d_grad"] for r, k in zip(fits, pos) if k], "C3o-",
                label="D (minimax loss log(1 - D))")
    ax.semilogy(np.abs(ft[pos]), [r["w_grad"] for r, k in zip(fits, pos) if k], "C0s-",
                label="WGAN-GP critic (loss -f)")
    ax.set_xlabel("theta")
    ax.set_ylabel("|d G's loss / d theta| at G's samples")
    ax.set_title(f"G's gradient after {steps} steps of D / of the critic")
    ax.legend(fontsize=9)
    ax.grid(alpha=0.3, which="both")

    ax = fig.add_subplot(1, 3, 3)
    one = fits[list(ft).index(1.0)]
    xl = np.linspace(-3, 3, 301)
    ax.plot(xl, one["d_line"], "C3-", label="D(x), a trained discriminator")
    ax.plot(xl, one["f_line"] - one["f_line"][150], "C0-",
            label="f(x) - f(0), a trained critic")
    ax.axvline(0, color="k", lw=2, alpha=0.4)
    ax.axvline(1, color="C2", lw=2, alpha=0.6)
    top = max(one["d_line"].max(), (one["f_line"] - one["f_line"][150]).max())
    ax.text(-0.05, top, "data\nx = 0", fontsize=9, ha="right", va="top")
    ax.text(1.05, top, "G\nx = theta = 1", fontsize=9, color="C2", va="top")
    ax.set_xlabel("x  (along the line y = 0.5)")
    ax.set_title("What G sees at theta = 1: D is flat there, f slopes")
    ax.legend(fontsize=9, loc="lower left")
    save_figure(fig, path)


RUNNERS = {"vanishing": (vanishing_gradients, "vanishing_gradients.png"),
           "collapse": (mode_collapse, "mode_collapse.png"),
           "dirac": (dirac_gan, "dirac_gan.png"),
           "support": (low_dimensional_support, "low_dimensional_support.png")}
for name in PROBLEMS:
    if name in args.problems:
        fn, filename = RUNNERS[name]
        start = time.perf_counter()
        fn(os.path.join(args.out, filename))
        print(f"wrote {os.path.join(args.out, filename)} ({time.perf_counter() - start:.0f} s)")
