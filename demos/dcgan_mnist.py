"""Train a DCGAN (Radford, Metz & Chintala 2016) on MNIST, top to bottom (what
`tinygen train dcgan` does, with the pieces in plain sight).

Run:  TINYGEN_DATA=path/to/data python demos/dcgan_mnist.py [--epochs 5]
          [--train-images 60000] [--test-images 10000] [--fid]   (fewer images: a quick trial)
It prints D's mean belief D(x) on test digits and on G's samples, and with --fid the
FID of LeNet features between --test-images samples and the test set (it needs the
cached LeNet classifier, which it trains once, a few minutes, if missing). It writes
samples.png (64 samples), progress.png (the same ten z through G at moments of
training, one row per moment) and interpolations.png (G along straight lines in z).
"""
import argparse
import os

import numpy as np
from tqdm import tqdm

import tinygen as tg
from tinygen import data, optim
from tinygen.models.gan import (DCGANDiscriminator, DCGANGenerator, discriminator_loss,
                                frozen, generator_loss)
from tinygen.plot import save_image_grid

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--epochs", type=int, default=5)
parser.add_argument("--latent-dim", type=int, default=100)
parser.add_argument("--channels", type=int, default=64, help="feature maps at 14x14")
parser.add_argument("--generator-loss", choices=["non_saturating", "minimax"],
                    default="non_saturating")
parser.add_argument("--train-images", type=int, default=60000, help="fewer for a quick trial")
parser.add_argument("--test-images", type=int, default=10000,
                    help="test images D is shown, and samples the FID is computed on")
parser.add_argument("--fid", action="store_true",
                    help="compute fid_lenet (trains the cached LeNet once if missing)")
parser.add_argument("--device", default="cpu")
parser.add_argument("--out", default=os.path.join("runs", "dcgan_demo"))
args = parser.parse_args()
tg.manual_seed(0)

# The data: grey levels scaled to [-1, 1], the range of G's tanh output.
images, _ = data.load_dataset("mnist", "train")
test_images, _ = data.load_dataset("mnist", "test")
x_train = data.scale(images[:args.train_images], to=(-1, 1)).reshape(-1, 1, 28, 28)
x_test = data.scale(test_images[:args.test_images], to=(-1, 1)).reshape(-1, 1, 28, 28)
loader = data.DataLoader(x_train, batch_size=64, shuffle=True, seed=0, drop_last=True,
                         device=args.device)

# The players (``tinygen.models.gan.dcgan``): G projects z to 128 maps of 7x7 and
# upsamples with transposed convolutions to 28x28; D mirrors it with strided
# convolutions. Batch norm in both, weights N(0, 0.02), Adam(2e-4, beta1 = 0.5).
G = DCGANGenerator(args.latent_dim, args.channels).to(args.device)
D = DCGANDiscriminator(args.channels, norm="batch").to(args.device)
opt_g = optim.Adam(G.parameters(), lr=2e-4, betas=(0.5, 0.999))
opt_d = optim.Adam(D.parameters(), lr=2e-4, betas=(0.5, 0.999))


def generate(z):
    """G(z) in eval mode (batch norm on its running statistics), pixels in [0, 1]."""
    G.eval()
    with tg.no_grad():
        out = (G(z).numpy() + 1) / 2
    G.train()
    return out


# Training: one update of D (G frozen), then one of G (D frozen) per batch: k = 1.
# Ten moments of training keep G's output at the same ten z: progress.png.
z_fixed = tg.tensor(tg.random.generator(1234).standard_normal((12, args.latent_dim))
                    .astype(np.float32), device=args.device)
total = args.epochs * len(loader)
snapshot_at = set(np.linspace(0, total, 10).astype(int))
snapshots, step = [], 0
for epoch in range(args.epochs):
    progress = tqdm(loader, desc=f"epoch {epoch + 1}/{args.epochs}")
    for x in progress:
        if step in snapshot_at:
            snapshots.append((step, generate(z_fixed[:10])))
        m = x.shape[0]
        with frozen(G):
            fake = G.sample(m)
        d_loss = discriminator_loss(D(x), D(fake))
        opt_d.zero_grad()
        d_loss.backward()
        opt_d.step()
        with frozen(D):
            g_loss = generator_loss(D(G.sample(m)), args.generator_loss)
            opt_g.zero_grad()
            g_loss.backward()
            opt_g.step()
        step += 1
        progress.set_postfix(d_loss=f"{d_loss.item():.3f}", g_loss=f"{g_loss.item():.3f}")
snapshots.append((step, generate(z_fixed[:10])))

# Evaluation. D's mean belief on held-out digits and on fresh samples: at the game's
# equilibrium both would be 1/2; a D that still tells them apart says how.
G.eval()
D.eval()
with tg.no_grad():
    d_real = np.concatenate([D(tg.tensor(x_test[i:i + 500], device=args.device)).sigmoid()
                             .numpy() for i in range(0, len(x_test), 500)])
    n = len(x_test)
    fakes = np.concatenate([G.sample(min(500, n - i)).numpy() for i in range(0, n, 500)])
    d_fake = np.concatenate([D(tg.tensor(fakes[i:i + 500], device=args.device)).sigmoid()
                             .numpy() for i in range(0, n, 500)])
print(f"after {step} steps: mean D(x) on {n} test digits {d_real.mean():.3f}, "
      f"mean D(G(z)) on {n} samples {d_fake.mean():.3f}")
if args.fid:
    # FID between Gaussians fitted to LeNet's 128-d features of the samples and of the
    # 10,000 test digits (lower is better; the test set against the training set: ~1).
    from tinygen.experiments.classifier import fid
    print(f"fid_lenet {fid((fakes + 1) / 2, 'mnist', device=args.device):.2f} "
          f"on {n} samples")

# Pictures.
save_image_grid(generate(tg.randn(64, args.latent_dim, device=args.device)),
                os.path.join(args.out, "samples.png"), nrow=8)
save_image_grid(np.concatenate([s for _, s in snapshots]),
                os.path.join(args.out, "progress.png"), nrow=10,
                labels=[f"step {s}" for s, _ in snapshots])
# Straight lines in z between six pairs of the fixed z, ten frames each: a smooth
# morph says G has learnt a continuous map, not a lookup table of training digits.
t = np.linspace(0, 1, 10, dtype=np.float32).reshape(1, 10, 1)
z = z_fixed.numpy()
path = ((1 - t) * z[0::2, None] + t * z[1::2, None]).reshape(-1, args.latent_dim)
save_image_grid(generate(tg.tensor(path, device=args.device)),
                os.path.join(args.out, "interpolations.png"), nrow=10)
print(f"wrote samples.png, progress.png and interpolations.png to {args.out}")
