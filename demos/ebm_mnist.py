"""Train a convolutional energy-based model on MNIST with Langevin dynamics from a replay
buffer, top to bottom (what `tinygen train ebm --dataset mnist` does, with the pieces in
plain sight), then use the energy to draw digits from noise and to fill in half digits.

The model is p(x) = exp(-E(x)) / Z over images x in [-1, 1]^784, E a small
convolutional network. Training lowers E on the data x^+ and raises it on negative
samples x^-, the loss mean E(x^+) - mean E(x^-) + alpha (mean E(x^+)^2 + mean E(x^-)^2)
(the gradient of the log-likelihood when x^- ~ p; the regulariser keeps E near 0). The
negatives come from 20 steps of stochastic gradient Langevin dynamics in EBM practice's
form, x <- clip(x - 10 grad_x E(x) + 0.005 xi, -1, 1): a large step down the energy
and a tiny noise, so the chain is nearly a descent of E, a generator learned along with
E rather than a sampler of p (Nijkamp et al. 2019). The chains start from a replay buffer
of 10,000 past negatives, 5% restarted from uniform noise every time (Du & Mordatch
2019), so a chain runs on over many updates while each update pays for 20 steps.

Run:  TINYGEN_DATA=path/to/data python demos/ebm_mnist.py [--epochs 1] [--steps N]
          [--train-images 60000] [--test-images 1000] [--sample-steps 60]
          (a quick trial that only shows the pieces working: --steps 20 --width 8
          --langevin-steps 5 --sample-steps 10 --test-images 100, five seconds)
It is slow on a CPU: each update runs the network forward and backward 21 times on a
batch of 64, about 1 to 3 seconds a step on a 2-core laptop, so the default epoch (938
updates) takes about half an hour; on a GPU (--device cuda) it is far quicker. It prints
the mean energy of test digits, of samples from noise, of the buffer's samples and of
uniform noise (training should leave the digits and the samples low, the noise high),
and writes

    samples.png         64 chains of --sample-steps Langevin steps from uniform noise
    langevin_chain.png  8 of those chains at 10 moments, left to right: noise pulled
                        downhill on E into strokes
    buffer.png          64 samples from the replay buffer: chains that have run on
                        over many updates, 20 steps each (5% restarted every time)
    inpainting.png      the lower half of 8 test digits filled in by Langevin dynamics
                        with the upper half clamped: masked, completed, truth
"""
import argparse
import os

import numpy as np
from tqdm import tqdm

import tinygen as tg
from tinygen import data, optim
from tinygen.models.ebm import ConvEnergy, ReplayBuffer, contrastive_loss, langevin
from tinygen.plot import save_image_grid

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--epochs", type=float, default=1, help="passes over --train-images")
parser.add_argument("--steps", type=int, default=None, help="updates (instead of --epochs)")
parser.add_argument("--batch-size", type=int, default=64)
parser.add_argument("--lr", type=float, default=1e-4)
parser.add_argument("--width", type=int, default=32, help="channels of the first layer")
parser.add_argument("--langevin-steps", type=int, default=20, help="per update")
parser.add_argument("--step-size", type=float, default=20.0,
                    help="epsilon: the drift is (epsilon / 2) grad E")
parser.add_argument("--noise", type=float, default=0.005, help="the noise's sigma")
parser.add_argument("--alpha", type=float, default=0.1, help="energy regulariser")
parser.add_argument("--buffer-size", type=int, default=10000)
parser.add_argument("--reinit-prob", type=float, default=0.05)
parser.add_argument("--sample-steps", type=int, default=60,
                    help="Langevin steps of the samples and the inpainting from noise")
parser.add_argument("--train-images", type=int, default=60000, help="fewer for a quick trial")
parser.add_argument("--test-images", "--eval-n", type=int, default=1000,
                    help="test digits whose energy is printed; fewer for a quick trial")
parser.add_argument("--seed", type=int, default=0)
parser.add_argument("--device", default="cpu")
parser.add_argument("--out", default=os.path.join("runs", "ebm_mnist_demo"))
args = parser.parse_args()
tg.manual_seed(args.seed)
rng = np.random.default_rng(args.seed)

# The data: pixels in [-1, 1], the range of the chains (clipped to it) and of the noise
# they start from.
train_images, _ = data.load_dataset("mnist", "train")
test_images, _ = data.load_dataset("mnist", "test")
x_train = data.scale(train_images[:args.train_images], to=(-1, 1))[:, None]
x_test = data.scale(test_images[:args.test_images], to=(-1, 1))[:, None]
loader = data.DataLoader(x_train, batch_size=args.batch_size, shuffle=True, seed=args.seed,
                         device=args.device)
total = args.steps or max(1, round(args.epochs * len(loader)))


def sgld(x, steps):
    """``steps`` Langevin steps x <- clip(x - (eps / 2) grad E(x) + sigma xi, -1, 1)."""
    return langevin(energy, x, steps, args.step_size, noise=args.noise, clip=(-1, 1))


def noise(n):
    return tg.tensor(rng.uniform(-1, 1, (n, 1, 28, 28)).astype(np.float32),
                     device=args.device)


# The energy: Conv(1, w, 3) -> Conv(w, 2w, 4, stride 2) -> Conv(2w, 2w, 4, stride 2) ->
# Linear(2w 7 7, 1), SiLU between (smooth, so grad_x E, the chains' drift, is
# continuous); no normalisation layer, so each image's energy is its own.
energy = ConvEnergy(1, args.width).to(args.device)
opt = optim.Adam(energy.parameters(), lr=args.lr)
buffer = ReplayBuffer(args.buffer_size, (1, 28, 28), reinit_prob=args.reinit_prob,
                      low=-1.0, high=1.0, seed=args.seed)

# Training: chains from the buffer, 20 steps on the current energy (its weights frozen
# meanwhile), written back; then one Adam step on the contrastive loss. The gradients
# are scaled down to a norm of 10: an early update whose negatives sit on a cliff of E
# would otherwise throw the weights far.
energy.train()
progress = tqdm(total=total, desc="EBM on MNIST")
step = 0
while step < total:
    for x_pos in loader:
        x_neg = sgld(buffer.sample(len(x_pos), device=args.device), args.langevin_steps)
        buffer.push(x_neg)
        loss, e = contrastive_loss(energy, x_pos, x_neg, args.alpha, return_energies=True)
        opt.zero_grad()
        loss.backward()
        optim.clip_grad_norm_(energy.parameters(), 10.0)
        opt.step()
        step += 1
        progress.update(1)
        progress.set_postfix(E_data=f"{e['energy_pos'].item():.3f}",
                             E_samples=f"{e['energy_neg'].item():.3f}")
        if step == total:
            break
progress.close()
energy.eval()


@tg.no_grad()
def mean_energy(x):
    """The mean E over the images x (n, 1, 28, 28), a NumPy array or Tensor, in batches."""
    x = x.numpy() if isinstance(x, tg.Tensor) else x
    return float(np.mean(np.concatenate([
        energy(tg.tensor(x[i:i + 500], device=args.device)).numpy()
        for i in range(0, len(x), 500)])))


# Samples: chains of --sample-steps from uniform noise, the first 8 kept step by step.
samples, chain = langevin(energy, noise(64), args.sample_steps, args.step_size,
                          noise=args.noise, clip=(-1, 1), return_chain=True)
print(f"mean energy: test digits {mean_energy(x_test):.4f}, samples from noise "
      f"{mean_energy(samples):.4f}, the replay buffer "
      f"{mean_energy(buffer.buffer[:1000]):.4f}, uniform noise "
      f"{mean_energy(noise(64)):.4f}")

os.makedirs(args.out, exist_ok=True)
save_image_grid(samples, os.path.join(args.out, "samples.png"), nrow=8, value_range=(-1, 1))
at = np.unique(np.linspace(0, args.sample_steps, 10).round().astype(int))
frames = np.stack([chain[t].numpy()[:8] for t in at], axis=1)        # (8, len(at), ...)
save_image_grid(frames.reshape(-1, 1, 28, 28), os.path.join(args.out, "langevin_chain.png"),
                nrow=len(at), value_range=(-1, 1))
save_image_grid(buffer.buffer[rng.choice(args.buffer_size, 64, replace=False)],
                os.path.join(args.out, "buffer.png"), nrow=8, value_range=(-1, 1))

# inpainting.png: the upper half known. The lower half starts as noise and follows the
# chain; after every step the known pixels are put back, so the energy's gradient on the
# lower half is taken beside the true upper half: a sample of the missing pixels given
# the known ones (as far as these short chains sample anything).
known = np.zeros((1, 28, 28), np.float32)
known[:, :14] = 1
k = tg.tensor(known, device=args.device)
truth = tg.tensor(x_test[:8], device=args.device)
x = truth * k + noise(8) * (1 - k)
for _ in range(args.sample_steps):
    x = truth * k + sgld(x, 1) * (1 - k)
masked = np.where(known == 1, x_test[:8], 0.0)     # the missing half grey (0 in [-1, 1])
save_image_grid(np.concatenate([masked, x.numpy(), x_test[:8]]),
                os.path.join(args.out, "inpainting.png"), nrow=8, value_range=(-1, 1),
                labels=["masked", "completed", "truth"])
print(f"wrote samples.png, langevin_chain.png, buffer.png and inpainting.png to {args.out}")
