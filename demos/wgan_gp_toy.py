"""Train a WGAN-GP (Gulrajani et al. 2017) with an MLP critic on the grid of 25 Gaussians,
top to bottom: the loop of `tinygen train wgan-gp --dataset 25gaussians` in plain sight,
with settings for toy data (z of size 2, lambda 1, Adam 5e-4 with betas (0.5, 0.9),
batch 128; --steps counts G updates here, critic updates in the command).

Run:  python demos/wgan_gp_toy.py [--dataset 25gaussians|8gaussians] [--steps 3000]
          [--n-critic 5] [--gp-weight 1]   (fewer --steps: a quick trial)
It needs no data files. It prints the critic's estimate of the Wasserstein-1 distance
as training goes, the modes covered and the high-quality fraction (samples within
3 standard deviations of a mode), and writes samples.png: G's samples over the data on
the contours of the critic f(x), beside the curve of the W estimate, which, unlike a
GAN's losses, falls as G improves.

What to expect with the defaults (about 3 minutes on 2 cores): the estimate falls fast
while G spreads over the grid, then levels off; the critic grows a peak on every one of
the 25 modes, but G follows slowly, so its samples cover every mode while most still
lie between them (a low high-quality fraction). Sharp modes take far longer runs.
"""
import argparse
import os

import numpy as np
from tqdm import tqdm

import tinygen as tg
from tinygen import data, optim
from tinygen.metrics import mode_coverage
from tinygen.models.gan import Discriminator, Generator, frozen, gradient_penalty
from tinygen.models.gan.wgan import critic_loss, generator_loss, wasserstein_estimate
from tinygen.plot import ema_smooth, evaluate_on_grid, new_figure, save_figure

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--dataset", choices=["8gaussians", "25gaussians"], default="25gaussians")
parser.add_argument("--steps", type=int, default=3000,
                    help="updates of G (each after n_critic updates of the critic)")
parser.add_argument("--n-critic", type=int, default=5)
parser.add_argument("--gp-weight", type=float, default=1.0,
                    help="lambda of the gradient penalty (10 in the paper's image models)")
parser.add_argument("--batch-size", type=int, default=128)
parser.add_argument("--latent-dim", type=int, default=2)
parser.add_argument("--hidden", type=int, default=256)
parser.add_argument("--lr", type=float, default=5e-4)
parser.add_argument("--eval-n", type=int, default=10000,
                    help="samples the modes are counted on; fewer for a quick trial")
parser.add_argument("--seed", type=int, default=0)
parser.add_argument("--device", default="cpu")
parser.add_argument("--out", default=os.path.join("runs", "wgan_gp_toy_demo"))
args = parser.parse_args()
tg.manual_seed(args.seed)
rng = np.random.default_rng(args.seed)

# The data: 100,000 points of the mixture; its modes' centres and standard deviation.
x_train = data.toy(args.dataset, 100_000, seed=args.seed)
centers, std = data.toy_modes(args.dataset)

# The players: G as in a GAN; the critic f is an MLP with one unbounded output, a score,
# not a probability (no sigmoid anywhere), and no batch normalisation: the penalty
# below is per sample. Adam with beta1 = 0.5, beta2 = 0.9 (Gulrajani et al.'s toy runs).
G = Generator(args.latent_dim, (2,), (args.hidden, args.hidden), output="linear").to(args.device)
f = Discriminator((2,), (args.hidden, args.hidden)).to(args.device)
opt_g = optim.Adam(G.parameters(), lr=args.lr, betas=(0.5, 0.9))
opt_f = optim.Adam(f.parameters(), lr=args.lr, betas=(0.5, 0.9))
m = args.batch_size

# Training: n_critic steps of the critic on E f(G(z)) - E f(x) + lambda (||grad f|| - 1)^2
# (the penalty on points between real and generated ones), G frozen; then one step of G
# on -E f(G(z)), f frozen. E f(x) - E f(G(z)) estimates W1(p_data, p_g) (a little above
# it: the soft penalty lets the slope exceed 1 by about W / (2 lambda)).
w_log = []
progress = tqdm(range(args.steps), desc="WGAN-GP")
for step in progress:
    for _ in range(args.n_critic):
        x = tg.tensor(x_train[rng.integers(0, len(x_train), m)], device=args.device)
        with frozen(G):
            fake = G.sample(m)
        real_scores, fake_scores = f(x), f(fake)
        loss = critic_loss(real_scores, fake_scores) + gradient_penalty(f, x, fake,
                                                                        args.gp_weight)
        opt_f.zero_grad()
        loss.backward()
        opt_f.step()
    w_log.append(wasserstein_estimate(real_scores, fake_scores).item())   # the last batch
    with frozen(f):
        g_loss = generator_loss(f(G.sample(m)))
        opt_g.zero_grad()
        g_loss.backward()
        opt_g.step()
    if step % 50 == 0:
        progress.set_postfix(W=f"{np.mean(w_log[-50:]):.3f}")
    if (step + 1) % max(1, args.steps // 5) == 0:
        tqdm.write(f"G step {step + 1}: W estimate {np.mean(w_log[-50:]):.3f} "
                   "(mean of the last 50 batches)")

# Evaluation: each sample to its nearest mode; of high quality within 3 std of it; a
# mode is covered when it gets at least one such sample.
with tg.no_grad():
    samples = np.concatenate([G.sample(1000).numpy() for _ in range(0, args.eval_n, 1000)])
    samples = samples[:args.eval_n]
cover = mode_coverage(samples, centers, std)
smooth = ema_smooth(w_log, 0.98)
print(f"{args.dataset}, WGAN-GP, {args.steps} G steps: W estimate (smoothed) at its peak "
      f"{smooth.max():.3f} (G step {smooth.argmax() + 1}), {smooth[-1]:.3f} at the end; "
      f"{cover['modes_covered']}/{len(centers)} "
      f"modes covered, high-quality fraction {cover['high_quality_fraction']:.3f} of "
      f"{len(samples)} samples")

# samples.png. Left: the critic's scores f(x) with the data (black) and G's samples
# (green): G moves its samples up f's slope. Right: the W estimate over training.
lim = 5.0 if args.dataset == "25gaussians" else 4.5
xs, ys, field = evaluate_on_grid(lambda p: f(p), lim=lim, resolution=150, device=args.device)
fig = new_figure((11.5, 5), layout="constrained")
ax = fig.add_subplot(1, 2, 1)
cs = ax.contourf(xs, ys, field, levels=20, cmap="viridis", alpha=0.8)
fig.colorbar(cs, ax=ax, label="f(x), the critic's score")
shown = samples[:2000]
ax.scatter(x_train[:2000, 0], x_train[:2000, 1], s=3, c="k", alpha=0.6, linewidths=0,
           label="data", rasterized=True)
ax.scatter(shown[:, 0], shown[:, 1], s=3, c="lime", alpha=0.8, linewidths=0, label="G(z)",
           rasterized=True)
ax.set_xlim(-lim, lim)
ax.set_ylim(-lim, lim)
ax.set_aspect("equal")
ax.set_xlabel("x1")
ax.set_ylabel("x2")
ax.legend(loc="upper right", markerscale=3, fontsize=8)
ax.set_title(f"WGAN-GP on {args.dataset}, {args.steps} G steps\n"
             f"{cover['modes_covered']}/{len(centers)} modes covered, "
             f"{cover['high_quality_fraction']:.0%} of samples high quality", fontsize=10)
ax = fig.add_subplot(1, 2, 2)
steps = np.arange(1, len(w_log) + 1)
ax.plot(steps, w_log, color="C0", alpha=0.25, lw=0.8, label="one batch")
ax.plot(steps, smooth, color="C0", lw=2, label="smoothed")
ax.set_yscale("log")   # batches whose estimate is <= 0 (early, noisy) fall off this scale
ax.set_ylim(bottom=0.3 * max(smooth.min(), 1e-3))
ax.set_xlabel("G step")
ax.set_ylabel("E f(x) - E f(G(z))")
ax.set_title("The critic's estimate of W1(p_data, p_g)", fontsize=10)
ax.grid(alpha=0.3, which="both")
ax.legend(fontsize=9)
save_figure(fig, os.path.join(args.out, "samples.png"))
print(f"wrote samples.png to {args.out}")
