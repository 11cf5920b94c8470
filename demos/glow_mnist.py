"""Train Glow (Kingma & Dhariwal 2018) on dequantised MNIST by maximum likelihood, top
to bottom (what `tinygen train glow` does, with the pieces in plain sight): the exact
log-likelihood of every image, reported in bits per dimension, samples at a temperature,
and straight lines in the latent space.

Glow is a multi-scale flow. Each of L levels squeezes the image (every 2x2 block of
pixels becomes 4 channels: 1 x 28 x 28 -> 4 x 14 x 14 -> ...), runs K steps of flow
(ActNorm, an invertible 1x1 convolution that mixes the channels, an affine coupling),
and, but the last, factors half the channels out as final latents. An image and its
latent z = f(x) have the same 784 numbers; log p(x) = log N(z; 0, I) + log |det df/dx|.

Run:  TINYGEN_DATA=path/to/data python demos/glow_mnist.py [--epochs 1] [--levels 2]
          [--steps-per-level 8] [--hidden 32] [--train-images 60000] [--test-images 1000]
          (fewer images: a quick trial, e.g. --train-images 3000 --test-images 100,
          about 15 seconds)
At the defaults (one epoch) it takes about 4 minutes on a 2-core laptop (timed: 240 s
here, with both cores shared with other work; the recipe's --hidden 64 is about twice
as slow). It prints the test bits/dim: about 1.85 after the default epoch (Glow reaches
1.05 on MNIST after long training on a GPU), and writes

    samples.png         two rows of samples at each temperature T = 0.5, 0.7, 1.0
                        (z ~ N(0, T^2 I)). After a few minutes they are disappointing,
                        and instructive: at T = 0.5 and 0.7 nearly black squares, at
                        T = 1 scattered fragments of stroke. The model has learnt first
                        what most pixels are, background, and lowering T moves the
                        samples toward its densest images, empty ones; digits need far
                        longer training. A sample the inverse overflowed (inf/NaN,
                        counted in the output) is drawn plain grey.
    interpolations.png  each row decodes the straight line from z = f(x) of one test
                        digit (left) to that of another (right): the ends are the digits
                        themselves (a flow inverts exactly); the frames between fade
                        towards black in the middle, where the line passes closest to
                        z = 0, the model's densest and emptiest image
"""
import argparse
import os

import numpy as np
from tqdm import tqdm

import tinygen as tg
from tinygen import data, optim
from tinygen.metrics import bits_per_dim
from tinygen.models.flows import Glow
from tinygen.plot import save_image_grid

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--epochs", type=int, default=1)
parser.add_argument("--levels", type=int, default=2, help="L: 28 -> 14 -> 7 for 2")
parser.add_argument("--steps-per-level", type=int, default=8,
                    help="K: steps of flow per level")
parser.add_argument("--hidden", type=int, default=32, help="width of the coupling networks")
parser.add_argument("--logit-alpha", type=float, default=0.05,
                    help="the logit transform's alpha; 0: none (the paper's choice)")
parser.add_argument("--batch-size", type=int, default=64)
parser.add_argument("--lr", type=float, default=3e-3)
parser.add_argument("--train-images", type=int, default=60000, help="fewer for a quick trial")
parser.add_argument("--test-images", "--eval-n", type=int, default=1000,
                    help="test images of the bits/dim; fewer for a quick trial")
parser.add_argument("--seed", type=int, default=0)
parser.add_argument("--device", default="cpu")
parser.add_argument("--out", default=os.path.join("runs", "glow_demo"))
args = parser.parse_args()
tg.manual_seed(args.seed)
SHAPE = (1, 28, 28)
D = 784

# The data: 8-bit pixels k, dequantised afresh every batch to x = (k + u) / 256,
# u ~ U[0, 1): a continuous density on [0, 1)^784 cannot put mass on the 256 discrete
# values, so each value k is spread over its bin. -log p(x) + D ln 256 is then an upper
# bound on the discrete images' NLL, and bits/dim = that / (D ln 2)
# (tinygen.metrics.bits_per_dim(nll, shape, 8)). The test images are dequantised once,
# with a fixed seed.
train_images, _ = data.load_dataset("mnist", "train")
test_images, _ = data.load_dataset("mnist", "test")
x_train = train_images[:args.train_images].reshape(-1, *SHAPE)        # uint8
x_test = data.dequantize(test_images[:args.test_images].reshape(-1, *SHAPE),
                         tg.random.generator(2024))
loader = data.DataLoader(x_train, batch_size=args.batch_size, shuffle=True, seed=args.seed,
                         drop_last=True, device=args.device,
                         transform=data.dequantize)

# The model: a logit transform y = logit(0.05 + 0.9 x) first (its log-det counted, so
# p stays a density of x), then L levels of K steps; every 1x1 convolution starts as a
# random rotation, every coupling as the identity (its last layer zero). Adam with a
# cosine decay.
model = Glow(SHAPE, num_levels=args.levels, steps=args.steps_per_level, hidden=args.hidden,
             logit_alpha=args.logit_alpha or None, seed=args.seed).to(args.device)
print(f"Glow, L = {args.levels}, K = {args.steps_per_level}: "
      f"{sum(p.size for p in model.parameters()):,} parameters")
opt = optim.Adam(model.parameters(), lr=args.lr)
schedule = optim.CosineAnnealingLR(opt, T_max=max(1, args.epochs * len(loader)),
                                   eta_min=args.lr / 100)

# Training: one Adam step per batch on the mean -log p(x) in nats per image. The first
# batch also initialises every ActNorm (zero mean, unit variance per channel). The
# gradients are scaled down to a global norm of 100 in case of an unlucky batch.
model.train()
for epoch in range(args.epochs):
    progress = tqdm(loader, desc=f"epoch {epoch + 1}/{args.epochs}")
    for x in progress:
        nll = -model.log_prob(x).mean()
        opt.zero_grad()
        nll.backward()
        optim.clip_grad_norm_(model.parameters(), 100.0)
        opt.step()
        schedule.step()
        progress.set_postfix(bpd=f"{bits_per_dim(nll.item(), SHAPE, 8):.3f}")

# Evaluation: the exact -log p(x) of the dequantised test images, in bits/dim.
model.eval()
with tg.no_grad():
    log_p = np.concatenate([model.log_prob(tg.tensor(x_test[i:i + 100], device=args.device))
                            .numpy() for i in range(0, len(x_test), 100)]).astype(np.float64)
nll = -log_p.mean()
print(f"test NLL {nll:.1f} nats per image = {bits_per_dim(nll, SHAPE, 8):.3f} bits/dim "
      f"on {len(x_test)} test images")


def as_pictures(x, what):
    """Images for the grid: clipped to [0, 1] (the logit transform's inverse lands in
    (-0.06, 1.06)); an image that overflowed to inf or NaN drawn plain grey, and counted.

    The inverse can overflow: a coupling's inverse divides by its scale s in (0, 1), and
    a z unlike the latents of training images (most likely at T = 1) can meet a network
    that returns a tiny s; the next coupling then sees huge inputs, returns a tinier s,
    and within a few layers the values pass float32's 3e38. A longer-trained model does
    it less often."""
    x = x.reshape(-1, *SHAPE)
    bad = ~np.isfinite(x).reshape(len(x), -1).all(axis=1)
    if bad.any():
        print(f"{what}: {bad.sum()} of {len(x)} overflowed to inf/NaN in the inverse "
              "(drawn grey)")
    return np.where(bad[:, None, None, None], 0.5, np.clip(np.nan_to_num(x), 0, 1))


with tg.no_grad(), np.errstate(over="ignore", invalid="ignore"):   # counted instead
    # samples.png: x = f^{-1}(z), z ~ N(0, T^2 I), two rows of ten at each temperature.
    temperatures = (0.5, 0.7, 1.0)
    rows = [as_pictures(model.sample(20, temperature=t).numpy(), f"samples at T = {t}")
            for t in temperatures]
    save_image_grid(np.concatenate(rows), os.path.join(args.out, "samples.png"), nrow=10,
                    labels=[f"T = {t}" for t in temperatures for _ in range(2)])

    # interpolations.png: z = f(x) for 4 pairs of test digits (model(x) returns z and
    # the log-det), the straight line z_t = (1 - t) z_a + t z_b at ten t, decoded by the
    # flow's inverse. (In 784 dimensions two typical latents are nearly orthogonal, of
    # length about 28, so the middle of the line, of length about 20, lies nearer the
    # origin, where the density is higher: the middle frames are fainter, more "typical".)
    pairs = min(4, len(x_test) // 2)
    z, _ = model(tg.tensor(x_test[:2 * pairs], device=args.device))     # (2 pairs, 784)
    z = z.numpy()
    t = np.linspace(0, 1, 10, dtype=np.float32)[None, :, None]
    path = (1 - t) * z[0::2, None] + t * z[1::2, None]                    # (pairs, 10, 784)
    frames = model.flow.inverse(tg.tensor(path.reshape(-1, D), device=args.device)).numpy()
    save_image_grid(as_pictures(frames, "interpolation frames"),
                    os.path.join(args.out, "interpolations.png"), nrow=10)
print(f"wrote samples.png and interpolations.png to {args.out}")
