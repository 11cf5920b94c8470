"""Train the original GAN (Goodfellow et al. 2014) on a 2-D mixture of Gaussians, top to
bottom: the loop of `tinygen train gan --dataset 8gaussians` in plain sight, with
settings for toy data (z of size 2, a smaller MLP, lr 1e-3, batch 128; --steps counts G
updates here, D updates in the command).

Run:  python demos/gan_toy.py [--dataset 8gaussians|25gaussians] [--steps 4000] [--k 1]
          [--generator-loss non_saturating|minimax]   (fewer --steps: a quick trial)
It needs no data files. It prints how many modes of the mixture G covers and the
fraction of its samples that are of high quality (within 3 standard deviations of a
mode), and writes samples.png (G's samples over the data, on the contours of D(x)) and
progress.png (the same z through G at moments of training).
"""
import argparse
import os

import numpy as np
from tqdm import tqdm

import tinygen as tg
from tinygen import data, optim
from tinygen.metrics import mode_coverage
from tinygen.models.gan import (Discriminator, Generator, discriminator_loss, frozen,
                                generator_loss)
from tinygen.plot import evaluate_on_grid, new_figure, save_figure

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--dataset", choices=["8gaussians", "25gaussians"], default="8gaussians")
parser.add_argument("--steps", type=int, default=4000,
                    help="updates of G (each after k updates of D); fewer for a quick trial")
parser.add_argument("--k", type=int, default=1, help="updates of D per update of G")
parser.add_argument("--generator-loss", choices=["non_saturating", "minimax"],
                    default="non_saturating")
parser.add_argument("--batch-size", type=int, default=128)
parser.add_argument("--latent-dim", type=int, default=2)
parser.add_argument("--hidden", type=int, default=128)
parser.add_argument("--lr", type=float, default=1e-3)
parser.add_argument("--eval-n", type=int, default=10000,
                    help="samples the modes are counted on; fewer for a quick trial")
parser.add_argument("--seed", type=int, default=0)
parser.add_argument("--device", default="cpu")
parser.add_argument("--out", default=os.path.join("runs", "gan_toy_demo"))
args = parser.parse_args()
tg.manual_seed(args.seed)
rng = np.random.default_rng(args.seed)

# The data: 100,000 points of the mixture; its modes' centres and standard deviation.
x_train = data.toy(args.dataset, 100_000, seed=args.seed)
centers, std = data.toy_modes(args.dataset)

# The players: G maps z ~ N(0, I) to a point of the plane (a linear output, not tanh),
# D maps a point to the logit of D(x). Two MLPs with LeakyReLU(0.2); Adam, beta1 = 0.5
# (Radford et al.: the default 0.9 makes the game oscillate more).
G = Generator(args.latent_dim, (2,), (args.hidden, args.hidden), output="linear").to(args.device)
D = Discriminator((2,), (args.hidden, args.hidden)).to(args.device)
opt_g = optim.Adam(G.parameters(), lr=args.lr, betas=(0.5, 0.999))
opt_d = optim.Adam(D.parameters(), lr=args.lr, betas=(0.5, 0.999))
m = args.batch_size

# Training: Goodfellow et al.'s Algorithm 1. k steps of D ascending
# V(D, G) = E log D(x) + E log(1 - D(G(z))) with G frozen, then one step of G on its
# loss with D frozen. The same z at every snapshot gives the progress strip.
z_fixed = tg.tensor(tg.random.generator(1234).standard_normal((1000, args.latent_dim))
                    .astype(np.float32), device=args.device)
snapshot_at = set(np.linspace(0, args.steps, 8).astype(int))
snapshots = {}
progress = tqdm(range(args.steps + 1), desc="GAN")
for step in progress:
    if step in snapshot_at:
        with tg.no_grad():
            snapshots[step] = G(z_fixed).numpy()
    if step == args.steps:
        break
    for _ in range(args.k):
        x = tg.tensor(x_train[rng.integers(0, len(x_train), m)], device=args.device)
        with frozen(G):                  # G's samples, with no graph back to G
            fake = G.sample(m)
        d_loss = discriminator_loss(D(x), D(fake))        # -V(D, G) on the batch
        opt_d.zero_grad()
        d_loss.backward()
        opt_d.step()
    with frozen(D):                      # the gradient flows through D into G, not D
        fake_logits = D(G.sample(m))
        g_loss = generator_loss(fake_logits, args.generator_loss)
        opt_g.zero_grad()
        g_loss.backward()
        opt_g.step()
    if step % 50 == 0:
        progress.set_postfix(d_loss=f"{d_loss.item():.3f}", g_loss=f"{g_loss.item():.3f}",
                             D_fake=f"{fake_logits.sigmoid().numpy().mean():.2f}")

# Evaluation: assign each sample to its nearest mode; it is of high quality within
# 3 std of it, and a mode is covered when it gets at least one such sample.
with tg.no_grad():
    samples = np.concatenate([G.sample(1000).numpy() for _ in range(0, args.eval_n, 1000)])
    samples = samples[:args.eval_n]
cover = mode_coverage(samples, centers, std)
print(f"{args.dataset}, {args.generator_loss} loss, k={args.k}, {args.steps} G steps: "
      f"{cover['modes_covered']}/{len(centers)} modes covered, high-quality fraction "
      f"{cover['high_quality_fraction']:.3f} of {len(samples)} samples")

# Pictures. samples.png: the data (grey) and G's samples (green) over D's belief
# D(x) = sigmoid(logit): near the end of a good run D is about 1/2 wherever G matches
# the data, and the contours show where it can still tell them apart.
lim = 5.0 if args.dataset == "25gaussians" else 4.5
D.eval()
xs, ys, field = evaluate_on_grid(lambda p: D(p).sigmoid(), lim=lim, resolution=150,
                                 device=args.device)
fig = new_figure((6, 5.2), layout="constrained")
ax = fig.add_subplot()
spread = max(0.05, float(np.abs(field - 0.5).max()))   # colours centred on 1/2
cs = ax.contourf(xs, ys, field, levels=np.linspace(0.5 - spread, 0.5 + spread, 21),
                 cmap="coolwarm", alpha=0.7, extend="both")
fig.colorbar(cs, ax=ax, label="D(x): the probability D gives that x is data", format="%.2f")
shown = samples[:2000]
ax.scatter(x_train[:2000, 0], x_train[:2000, 1], s=3, c="k", alpha=0.5, linewidths=0,
           label="data", rasterized=True)
ax.scatter(shown[:, 0], shown[:, 1], s=3, c="lime", alpha=0.8, linewidths=0, label="G(z)",
           rasterized=True)
ax.set_xlim(-lim, lim)
ax.set_ylim(-lim, lim)
ax.set_aspect("equal")
ax.set_xlabel("x1")
ax.set_ylabel("x2")
ax.legend(loc="upper right", markerscale=3, fontsize=8)
loss_name = args.generator_loss.replace("_", "-")
ax.set_title(f"GAN on {args.dataset}, {loss_name} loss, k = {args.k}, {args.steps} G steps\n"
             f"{cover['modes_covered']}/{len(centers)} modes covered, "
             f"{cover['high_quality_fraction']:.0%} of samples high quality", fontsize=10)
save_figure(fig, os.path.join(args.out, "samples.png"))

# progress.png: the same 1000 z through G at eight moments of training.
steps = sorted(snapshots)
fig = new_figure((2.1 * len(steps), 2.5), layout="constrained")
for i, s in enumerate(steps):
    ax = fig.add_subplot(1, len(steps), i + 1)
    ax.scatter(x_train[:2000, 0], x_train[:2000, 1], s=1, c="0.7", linewidths=0,
               rasterized=True)
    ax.scatter(snapshots[s][:, 0], snapshots[s][:, 1], s=1, c="C2", linewidths=0,
               rasterized=True)
    ax.set_xlim(-lim, lim)
    ax.set_ylim(-lim, lim)
    ax.set_aspect("equal")
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title(f"G step {s}", fontsize=9)
fig.suptitle("G(z) for the same 1000 z during training (grey: data)", fontsize=10)
save_figure(fig, os.path.join(args.out, "progress.png"))
print(f"wrote samples.png and progress.png to {args.out}")
