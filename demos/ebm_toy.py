"""Train an energy-based model on a 2-D toy set, top to bottom (what `tinygen train ebm
--dataset 8gaussians` does, with the pieces in plain sight): an MLP energy E(x), negative
samples by Langevin dynamics from a replay buffer, the contrastive loss; then the same
network fitted by denoising score matching instead, the link to diffusion models.

The model is p(x) = exp(-E(x)) / Z, Z the integral of exp(-E) over the plane. Its
log-likelihood has the gradient -grad E(data) + E_{x ~ p}[grad E(x)]: lower the energy
of the data, raise it where the model's own samples x^- are. The samples come from
Langevin dynamics, x <- x - (eps / 2) grad_x E(x) + sqrt(eps) xi, which needs only
grad_x E, never Z; each chain starts where an earlier one ended (a replay buffer, with 5%
restarted from noise; Du & Mordatch 2019), so 5 steps per update are enough. Denoising
score matching skips the sampling altogether: it fits -grad_x E to the score of the
data blurred by N(0, sigma^2 I), the loss a diffusion model minimises at one noise level.

Run:  python demos/ebm_toy.py [--dataset 8gaussians] [--steps 3000] [--dsm-steps 3000]
          [--eval-n 10000]   (a quick trial: --steps 300 --dsm-steps 300 --eval-n 1000
          --sample-steps 100, five seconds)
It needs no data files; any toy set of ``tinygen.data.TOY_DATASETS`` will do. At the
defaults it takes about a minute on a 2-core laptop. In 2-D, Z is one sum on a grid, so
for both models it prints the test NLL in nats beside the data's entropy (the floor of
any model's expected NLL) and, on the Gaussian mixtures, the modes that 500-step
Langevin chains from noise cover. On 8gaussians (55 s): the EBM 2.968 +- 0.013 nats,
DSM 2.940 +- 0.010, the entropy 2.833 (the blur costs DSM little: the blurred mixture
scores about 2.84 on the clean points); both cover 8 of 8 modes, 98% of samples near
one. It writes

    energy.png       E(x) (bright: low, likely) with 20 Langevin chains drawn on it from
                     their noise (open dots) to where they end (filled): each runs
                     downhill into a well, jittered by the noise
    density.png      the data beside exp(-E(x)) / Z: a peak on each mode, but not eight
                     alike: how the mass is shared between modes far apart is what an
                     EBM learns worst (chains seldom cross the empty gaps)
    samples.png      samples (500 Langevin steps from noise) over the data
    dsm_density.png  the same for the energy fitted by DSM, from the data alone with no
                     sampling: the data blurred by sigma (0.1); its peaks differ too,
                     for the score, a local quantity, says little about the weights of
                     separate modes (Song & Ermon 2019, section 3)
"""
import argparse
import math
import os

import numpy as np
from tqdm import tqdm

import tinygen as tg
from tinygen import data, optim
from tinygen.metrics import mode_coverage
from tinygen.models.ebm import (MLPEnergy, ReplayBuffer, contrastive_loss,
                                denoising_score_matching_loss, langevin)
from tinygen.plot import new_figure, plot_2d_samples, save_figure

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--dataset", choices=data.TOY_DATASETS, default="8gaussians")
parser.add_argument("--steps", type=int, default=3000, help="fewer for a quick trial")
parser.add_argument("--batch-size", type=int, default=128)
parser.add_argument("--lr", type=float, default=5e-3)
parser.add_argument("--langevin-steps", type=int, default=5, help="per update")
parser.add_argument("--step-size", type=float, default=0.02, help="Langevin's epsilon")
parser.add_argument("--alpha", type=float, default=0.01, help="energy regulariser")
parser.add_argument("--sample-steps", type=int, default=500,
                    help="Langevin steps of the sampling chains; fewer for a quick trial")
parser.add_argument("--dsm-steps", type=int, default=3000,
                    help="steps of denoising score matching (0: skip that part)")
parser.add_argument("--sigma", type=float, default=0.1, help="DSM's noise level")
parser.add_argument("--eval-n", type=int, default=10000,
                    help="test points of the NLL and samples drawn; fewer for a quick trial")
parser.add_argument("--seed", type=int, default=0)
parser.add_argument("--device", default="cpu")
parser.add_argument("--out", default=os.path.join("runs", "ebm_toy_demo"))
args = parser.parse_args()
tg.manual_seed(args.seed)
rng = np.random.default_rng(args.seed)

# The data: 100,000 training points and --eval-n test points (another seed). The chains
# start from uniform noise on [-4.5, 4.5]^2, where every toy set lies.
x_train = data.toy(args.dataset, 100_000, seed=args.seed).astype(np.float32)
x_test = data.toy(args.dataset, args.eval_n, seed=args.seed + 1).astype(np.float32)
LIM = 4.5


def square(n):
    """An n x n grid over the pictures' square [-LIM, LIM]^2: (xs (n,), points (n^2, 2))."""
    xs = np.linspace(-LIM, LIM, n)
    return xs, np.stack(np.meshgrid(xs, xs), axis=-1).reshape(-1, 2).astype(np.float32)


def batches(steps, desc):
    """Random training batches on the device, with a progress bar."""
    for _ in tqdm(range(steps), desc=desc):
        yield tg.tensor(x_train[rng.integers(0, len(x_train), args.batch_size)],
                        device=args.device)


def trainer(model, steps):
    """Adam with the rate decayed on a cosine to lr/100: a large rate finds the wells,
    the small one at the end lets them settle."""
    opt = optim.Adam(model.parameters(), lr=args.lr)
    schedule = optim.CosineAnnealingLR(opt, T_max=max(1, steps), eta_min=args.lr / 100)

    def step(loss):
        opt.zero_grad()
        loss.backward()
        # a rare batch whose chains sit in a steep spot would otherwise jolt the energy
        optim.clip_grad_norm_(model.parameters(), 10.0)
        opt.step()
        schedule.step()
    return step


def sample(model, n, steps, return_chain=False):
    """Langevin chains of ``steps`` steps from uniform noise: the true sampler of
    exp(-E), noise sqrt(step_size) (noise=None)."""
    x0 = tg.tensor(rng.uniform(-LIM, LIM, (n, 2)).astype(np.float32), device=args.device)
    return langevin(model, x0, steps, args.step_size, return_chain=return_chain)


# The energy: an MLP 2 -> 128 -> 128 -> 1 with SiLU (smooth, so the Langevin drift
# -grad E is continuous), and the replay buffer of 10,000 chains.
model = MLPEnergy(2, 128, 3).to(args.device)
buffer = ReplayBuffer(10000, (2,), reinit_prob=0.05, low=-LIM, high=LIM, seed=args.seed)

# Training: x^- from 5 Langevin steps of chains taken from the buffer (5% of them
# restarted from noise), written back; one step on the contrastive loss
# mean E(x+) - mean E(x-) + alpha (mean E(x+)^2 + mean E(x-)^2), whose gradient is minus
# the estimate of grad log p; the regulariser keeps the energies near 0, which the
# loss alone leaves free (adding a constant to E changes nothing).
model.train()
step = trainer(model, args.steps)
for x_pos in batches(args.steps, f"EBM on {args.dataset}"):
    x_neg = langevin(model, buffer.sample(args.batch_size, device=args.device),
                     args.langevin_steps, args.step_size)
    buffer.push(x_neg)
    step(contrastive_loss(model, x_pos, x_neg, args.alpha))
model.eval()

# Evaluation. log Z = log of the integral of exp(-E) by the midpoint rule on 400 x 400
# cells over [-6, 6]^2 (in 2-D the intractable constant is one sum), so that
# -log p(x) = E(x) + log Z is exact up to the grid.
h = 12.0 / 400
centres = -6.0 + h * (np.arange(400) + 0.5)
grid = np.stack(np.meshgrid(centres, centres), axis=-1).reshape(-1, 2).astype(np.float32)


@tg.no_grad()
def energies(model, x):
    return np.concatenate([model(tg.tensor(x[i:i + 10000], device=args.device)).numpy()
                           for i in range(0, len(x), 10000)]).astype(np.float64)


def evaluate(model, name):
    """Print the test NLL beside the data's entropy, and the modes covered; returns
    log Z."""
    e = -energies(model, grid)
    log_Z = e.max() + math.log(np.exp(e - e.max()).sum() * h * h)
    nll = energies(model, x_test) + log_Z
    line = f"{name}: test NLL {nll.mean():.3f} +- {nll.std() / math.sqrt(len(nll)):.3f} nats"
    try:
        line += f" (the data's entropy: {data.toy_entropy(args.dataset).entropy:.3f})"
    except ValueError:
        pass   # swiss_roll, pinwheel, two_spirals: no known density
    try:
        centers, std = data.toy_modes(args.dataset)
        cover = mode_coverage(sample(model, args.eval_n, args.sample_steps).numpy(),
                              centers, std)
        line += (f"; modes covered {cover['modes_covered']} of {len(centers)}, "
                 f"{cover['high_quality_fraction']:.0%} of samples near a mode")
    except ValueError:
        pass   # not a Gaussian mixture
    print(line)
    return log_Z


def draw_density(model, log_Z, path, title):
    """The test points beside exp(-E(x) - log Z) on the picture's square."""
    p = np.exp(-energies(model, square(200)[1]) - log_Z).reshape(200, 200)
    fig = new_figure((9, 4.4), layout="constrained")
    left, right = fig.add_subplot(1, 2, 1), fig.add_subplot(1, 2, 2)
    left.scatter(x_test[:2000, 0], x_test[:2000, 1], s=2, c="C0", linewidths=0)
    left.set_title("data (test points)")
    im = right.imshow(p, origin="lower", extent=(-LIM, LIM, -LIM, LIM), cmap="viridis")
    fig.colorbar(im, ax=right, label="p(x)")
    right.set_title(title)
    for ax in (left, right):
        ax.set(xlim=(-LIM, LIM), ylim=(-LIM, LIM), aspect="equal")
    save_figure(fig, path)


log_Z = evaluate(model, "EBM (Langevin, replay buffer)")
os.makedirs(args.out, exist_ok=True)
draw_density(model, log_Z, os.path.join(args.out, "density.png"), "EBM: exp(-E(x)) / Z")
samples, chain = sample(model, min(args.eval_n, 2000), args.sample_steps, return_chain=True)
plot_2d_samples(samples.numpy(), data=x_test[:2000], lim=LIM,
                path=os.path.join(args.out, "samples.png"),
                title=f"samples: {args.sample_steps} Langevin steps from noise")

# energy.png: the landscape, and 20 of those chains from their noise to where they end.
xs, points = square(150)
e = energies(model, points).reshape(150, 150)
fig = new_figure((5.6, 4.6), layout="constrained")
ax = fig.add_subplot()
levels = np.linspace(e.min(), np.quantile(e, 0.95), 25)   # the top 5% share a colour
cs = ax.contourf(xs, xs, np.minimum(e, levels[-1]), levels=levels, cmap="viridis_r")
fig.colorbar(cs, ax=ax, label="E(x)")
paths = np.stack([x.numpy()[:20] for x in chain], axis=1)          # (20, K + 1, 2)
for p in paths:
    ax.plot(p[:, 0], p[:, 1], color="C3", lw=0.6, alpha=0.8)
    ax.plot(*p[0], "o", color="white", ms=2.5, mec="C3", mew=0.5)
    ax.plot(*p[-1], "o", color="C3", ms=2.5)
ax.set(xlim=(-LIM, LIM), ylim=(-LIM, LIM), aspect="equal")
ax.set_title("E(x) and Langevin chains (open: start, filled: end)", fontsize=9)
save_figure(fig, os.path.join(args.out, "energy.png"))
print(f"wrote energy.png, density.png and samples.png to {args.out}")

# Part two: the same network fitted by denoising score matching. With x~ = x + sigma
# eps, the loss 1/2 || -grad E(x~) + eps / sigma ||^2 is least when -grad E is the score
# of the blurred data p_data * N(0, sigma^2 I); sigma^2 times it is a diffusion model's
# epsilon-prediction loss at the one noise level sigma, with eps_theta = sigma grad E.
if args.dsm_steps > 0:
    dsm = MLPEnergy(2, 128, 3).to(args.device)
    step = trainer(dsm, args.dsm_steps)
    for x in batches(args.dsm_steps, f"DSM on {args.dataset}"):
        step(denoising_score_matching_loss(dsm, x, args.sigma))
    log_Z = evaluate(dsm, f"denoising score matching (sigma {args.sigma})")
    draw_density(dsm, log_Z, os.path.join(args.out, "dsm_density.png"),
                 f"DSM (sigma {args.sigma}): exp(-E(x)) / Z")
    print(f"wrote dsm_density.png to {args.out}")
