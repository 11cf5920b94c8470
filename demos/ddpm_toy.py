"""Train a denoising diffusion model (Ho, Jain & Abbeel 2020) on a 2-D mixture of
Gaussians, top to bottom: the forward process, Algorithm 1 (training on L_simple),
Algorithm 2 (ancestral sampling) and DDIM, with the score field the network learns.

Run:  python demos/ddpm_toy.py [--dataset 8gaussians|25gaussians] [--steps 10000]
          [--timesteps 1000]   (fewer --steps: a quick trial)
It needs no data files. It prints how many modes the samples cover and the fraction of
high-quality samples (within 3 standard deviations of a mode) for ancestral sampling
(T steps) and DDIM (50 steps), and writes forward.png (the data diffused to noise),
reverse.png (noise denoised back to data by Algorithm 2), score.png (the learned
score s_theta(x, t) = -eps_theta(x, t) / sqrt(1 - alpha_bar_t) as arrows at three t),
ode.png (paths of the probability-flow ODE from noise to data) and density.png (the
model's density exp(log p(x)) by the ODE's instantaneous change of variables), and
prints the test points' NLL under that density beside the data's true NLL.
"""
import argparse
import math
import os

import numpy as np
from tqdm import tqdm

import tinygen as tg
from tinygen import data, optim
from tinygen.metrics import mode_coverage
from tinygen.models.diffusion import GaussianDiffusion, MLPDenoiser, NoiseSchedule
from tinygen.models.diffusion.ddim import ddim_sample
from tinygen.models.diffusion.sde import (VPSDE, ode_log_likelihood, odeint,
                                          probability_flow_drift, score_from_eps)
from tinygen.plot import new_figure, save_figure

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--dataset", choices=["8gaussians", "25gaussians"], default="25gaussians")
parser.add_argument("--steps", type=int, default=10000, help="fewer for a quick trial")
parser.add_argument("--timesteps", type=int, default=1000, help="T")
parser.add_argument("--schedule", choices=["linear", "cosine"], default="linear")
parser.add_argument("--batch-size", type=int, default=256)
parser.add_argument("--hidden", type=int, default=256)
parser.add_argument("--lr", type=float, default=1e-3)
parser.add_argument("--eval-n", type=int, default=5000, help="samples the modes are counted on")
parser.add_argument("--seed", type=int, default=0)
parser.add_argument("--device", default="cpu")
parser.add_argument("--out", default=os.path.join("runs", "ddpm_toy_demo"))
args = parser.parse_args()
tg.manual_seed(args.seed)
rng = np.random.default_rng(args.seed)

# The data: 100,000 points of the mixture, its modes' centres and standard deviation.
x_train = data.toy(args.dataset, 100_000, seed=args.seed).astype(np.float32)
centers, std = data.toy_modes(args.dataset)
lim = 5.0 if args.dataset == "25gaussians" else 4.5

# The forward process: beta_1..beta_T and alpha_bar_t (linear 1e-4..0.02 by default);
# q(x_t | x_0) = N(sqrt(alpha_bar_t) x_0, (1 - alpha_bar_t) I) in one step.
diffusion = GaussianDiffusion(NoiseSchedule.named(args.schedule, args.timesteps))
T, alpha_bar = diffusion.T, diffusion.schedule.alpha_bars
moments = [0, T // 20, T // 10, T // 5, 2 * T // 5, T]

# eps_theta(x_t, t): an MLP on [x_t, embedding of t]; Adam with a cosine decay, and an
# EMA of the weights to sample with.
model = MLPDenoiser(2, args.hidden).to(args.device)
opt = optim.Adam(model.parameters(), lr=args.lr)
schedule = optim.CosineAnnealingLR(opt, T_max=args.steps, eta_min=args.lr / 100)
ema = optim.EMA(model.parameters(), decay=0.999)

# Algorithm 1: x_0 from the data, t ~ U{1..T}, eps ~ N(0, I); regress eps from
# x_t = sqrt(alpha_bar_t) x_0 + sqrt(1 - alpha_bar_t) eps.
progress = tqdm(range(args.steps), desc="DDPM")
for step in progress:
    x_0 = tg.tensor(x_train[rng.integers(0, len(x_train), args.batch_size)], device=args.device)
    t = rng.integers(1, T + 1, size=args.batch_size)
    eps = tg.randn(*x_0.shape, device=args.device)
    x_t = diffusion.q_sample(x_0, t, eps)
    loss = ((eps - model(x_t, t)) ** 2).mean()          # L_simple
    opt.zero_grad()
    loss.backward()
    opt.step()
    schedule.step()
    ema.update()
    if step % 100 == 0:
        progress.set_postfix(loss=f"{loss.item():.4f}")

# Algorithm 2 (ancestral sampling, T steps) and DDIM (50 deterministic steps), with the
# EMA weights; count the modes each covers.
model.eval()
with ema.average_parameters(), tg.no_grad():
    _, trajectory = diffusion.sample(model, (args.eval_n, 2), args.device,
                                     trajectory_at=set(moments),
                                     progress=lambda it: tqdm(it, desc="ancestral", total=T))
    ddim = ddim_sample(diffusion, model, (args.eval_n, 2), min(50, T), device=args.device).numpy()
    for name, samples in (("ancestral", trajectory[0]), ("DDIM-50", ddim)):
        cover = mode_coverage(samples, centers, std)
        print(f"{args.dataset}, {args.steps} steps, {name}: {cover['modes_covered']}/"
              f"{len(centers)} modes covered, high-quality fraction "
              f"{cover['high_quality_fraction']:.3f} of {len(samples)} samples")


def clouds(path, title, snapshots):
    """One panel per t: the data in grey, the points at that t in colour."""
    fig = new_figure((2.3 * len(snapshots), 2.6), layout="constrained")
    for i, (label, pts) in enumerate(snapshots):
        ax = fig.add_subplot(1, len(snapshots), i + 1)
        ax.scatter(x_train[:2000, 0], x_train[:2000, 1], s=1, c="0.75", linewidths=0,
                   rasterized=True)
        ax.scatter(pts[:2000, 0], pts[:2000, 1], s=1, c="C0", linewidths=0, rasterized=True)
        ax.set_xlim(-lim, lim)
        ax.set_ylim(-lim, lim)
        ax.set_aspect("equal")
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_title(label, fontsize=9)
    fig.suptitle(title, fontsize=10)
    save_figure(fig, os.path.join(args.out, path))


# forward.png: q(x_t | x_0) applied to data at the moments; reverse.png: Algorithm 2's x_t.
x0 = tg.tensor(x_train[:2000], device=args.device)
forward = [(f"t = {t}", x_train[:2000] if t == 0 else diffusion.q_sample(
    x0, t, tg.randn(2000, 2, device=args.device)).numpy()) for t in moments]
clouds("forward.png", "the forward process: data to noise, x_t ~ q(x_t | x_0)", forward)
clouds("reverse.png", "the reverse process: noise to data, Algorithm 2",
       [(f"t = {t}", trajectory[t]) for t in moments[::-1]])

# score.png: the score of q(x_t) the network has learned, s = -eps_theta / sqrt(1 -
# alpha_bar_t), as arrows on a grid: near t = 0 they point at the modes, at large t
# toward the centre of the mass.
grid = np.linspace(-lim, lim, 21, dtype=np.float32)
points = np.stack(np.meshgrid(grid, grid), axis=-1).reshape(-1, 2)
fig = new_figure((11, 3.9), layout="constrained")
with ema.average_parameters(), tg.no_grad():
    for i, t in enumerate([T // 100 + 1, T // 10, T // 2]):
        eps = model(tg.tensor(points, device=args.device), np.full(len(points), t)).numpy()
        score = -eps / math.sqrt(1 - alpha_bar[t])
        ax = fig.add_subplot(1, 3, i + 1)
        ax.scatter(x_train[:2000, 0], x_train[:2000, 1], s=1, c="0.6", linewidths=0)
        length = np.linalg.norm(score, axis=1, keepdims=True) + 1e-8
        ax.quiver(points[:, 0], points[:, 1], *(score / length).T, np.log(length.ravel()),
                  cmap="viridis", scale=30, width=0.004)
        ax.set_xlim(-lim, lim)
        ax.set_ylim(-lim, lim)
        ax.set_aspect("equal")
        ax.set_title(f"s_theta(x, t) at t = {t} (colour: log length)", fontsize=9)
save_figure(fig, os.path.join(args.out, "score.png"))

# The SDE view (Song et al. 2021): the same network gives the score of the VP SDE's
# marginals, s(x, t) = -eps_theta / sigma(t), and the probability-flow ODE
# dx/dt = -1/2 beta(t) (x + s(x, t)) carries N(0, I) at t = 1 to the data at t = 0
# deterministically. ode.png: 300 of its paths, integrated by RK4 over ten stretches.
sde = VPSDE.from_schedule(diffusion.schedule)
# start at the noise level of the DDPM's first step, the smallest the network saw:
# beta_min t + (beta_max - beta_min) t^2 / 2 = -log alpha_bar_1
half = (sde.beta_max - sde.beta_min) / 2
c = -math.log(alpha_bar[1])
t_start = (-sde.beta_min + math.sqrt(sde.beta_min ** 2 + 4 * half * c)) / (2 * half)
with ema.average_parameters():
    score = score_from_eps(model, sde, T, schedule=diffusion.schedule)
    F = probability_flow_drift(score, sde)
    times = np.linspace(1.0, t_start, 11)
    path = [tg.randn(300, 2, device=args.device)]
    with tg.no_grad():
        for t0, t1 in zip(times[:-1], times[1:]):
            path.append(odeint(lambda t, x: F(x, t), path[-1], t0, t1, method="rk4",
                               steps=10)[0])
    path = np.stack([p.numpy() for p in path])                     # (11, 300, 2)
    fig = new_figure((5.5, 5.5), layout="constrained")
    ax = fig.add_subplot()
    ax.scatter(x_train[:2000, 0], x_train[:2000, 1], s=1, c="0.7", linewidths=0)
    ax.plot(path[:, :, 0], path[:, :, 1], lw=0.5, alpha=0.6, c="C0")
    ax.scatter(path[-1, :, 0], path[-1, :, 1], s=4, c="C3", zorder=3, label="x at t = 0")
    ax.set_xlim(-lim, lim)
    ax.set_ylim(-lim, lim)
    ax.set_aspect("equal")
    ax.legend(loc="upper right", fontsize=8)
    ax.set_title("probability-flow ODE paths from N(0, I) at t = 1", fontsize=10)
    save_figure(fig, os.path.join(args.out, "ode.png"))

    # The exact likelihood: log p(x) = log N(x_1; 0, I) + int div F dt along the ODE
    # (the divergence exactly in 2-D). density.png on a grid; the NLL of test points.
    n_grid = 60
    g = np.linspace(-lim, lim, n_grid, dtype=np.float32)
    grid_points = np.stack(np.meshgrid(g, g), axis=-1).reshape(-1, 2)
    log_p = np.concatenate([ode_log_likelihood(score, sde, tg.tensor(grid_points[i:i + 900],
                                                                      device=args.device),
                                               eps_t=t_start)
                            for i in tqdm(range(0, len(grid_points), 900), desc="density")])
    fig = new_figure((5.5, 5), layout="constrained")
    ax = fig.add_subplot()
    mesh = ax.pcolormesh(g, g, np.exp(log_p).reshape(n_grid, n_grid), cmap="magma",
                         shading="auto")
    fig.colorbar(mesh, ax=ax, label="p(x)")
    ax.set_aspect("equal")
    ax.set_title("the model's density by the probability-flow ODE", fontsize=10)
    save_figure(fig, os.path.join(args.out, "density.png"))
    x_test = data.toy(args.dataset, 500, seed=args.seed + 1).astype(np.float32)
    nll = -ode_log_likelihood(score, sde, tg.tensor(x_test, device=args.device),
                              eps_t=t_start).mean()
d2 = ((x_test[:, None, :].astype(np.float64) - centers[None]) ** 2).sum(axis=2)
true_nll = -(np.log(np.exp(-d2 / (2 * std ** 2)).mean(axis=1))
             - math.log(2 * math.pi * std ** 2)).mean()
print(f"NLL of 500 test points by the probability-flow ODE: {nll:.3f} nats "
      f"(under the true mixture: {true_nll:.3f})")
print(f"wrote forward.png, reverse.png, score.png, ode.png and density.png to {args.out}")
