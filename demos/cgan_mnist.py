"""Train a conditional DCGAN (Mirza & Osindero 2014) on MNIST and draw the digit you ask
for, top to bottom (what `tinygen train cgan` does, with the pieces in plain sight).

Run:  TINYGEN_DATA=path/to/data python demos/cgan_mnist.py [--epochs 5]
          [--conditioning concat|projection] [--train-images 60000] [--test-images 10000]
          [--accuracy]   (fewer images: a quick trial)
It prints D's mean belief on test digits with their true labels and on G's samples, and
with --accuracy how often the cached LeNet classifier reads the requested digit in
--test-images class-conditional samples (trained once, a few minutes, if missing). It
writes class_rows.png: row c holds G(z_j | y = c), and each column shares one z_j, which
carries the style (slant, thickness), while the label carries the class.
"""
import argparse
import os

import numpy as np
from tqdm import tqdm

import tinygen as tg
from tinygen import data, optim
from tinygen.models.gan import (ConditionalDiscriminator, ConditionalGenerator,
                                discriminator_loss, frozen, generator_loss)
from tinygen.plot import save_image_grid

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--epochs", type=int, default=5)
parser.add_argument("--latent-dim", type=int, default=100)
parser.add_argument("--channels", type=int, default=64, help="feature maps at 14x14")
parser.add_argument("--conditioning", choices=["concat", "projection"], default="concat",
                    help="how D reads the label: as input planes, or a projection")
parser.add_argument("--train-images", type=int, default=60000, help="fewer for a quick trial")
parser.add_argument("--test-images", type=int, default=10000,
                    help="test digits D is shown, and samples the accuracy is measured on")
parser.add_argument("--accuracy", action="store_true",
                    help="measure class_accuracy (trains the cached LeNet once if missing)")
parser.add_argument("--device", default="cpu")
parser.add_argument("--out", default=os.path.join("runs", "cgan_demo"))
args = parser.parse_args()
tg.manual_seed(0)
rng = np.random.default_rng(0)

# The data: grey levels in [-1, 1] with their labels y.
images, labels = data.load_dataset("mnist", "train")
test_images, test_labels = data.load_dataset("mnist", "test")
x_train = data.scale(images[:args.train_images], to=(-1, 1)).reshape(-1, 1, 28, 28)
x_test = data.scale(test_images[:args.test_images], to=(-1, 1)).reshape(-1, 1, 28, 28)
y_test = test_labels[:args.test_images]
loader = data.DataLoader(x_train, labels[:args.train_images], batch_size=64, shuffle=True,
                         seed=0, drop_last=True, device=args.device)

# The players (``tinygen.models.gan.cgan``): DCGAN's networks, G reading [z, onehot(y)],
# D reading the label as ten extra input planes (or by projection).
G = ConditionalGenerator(args.latent_dim, 10, args.channels).to(args.device)
D = ConditionalDiscriminator(10, args.channels, args.conditioning).to(args.device)
opt_g = optim.Adam(G.parameters(), lr=2e-4, betas=(0.5, 0.999))
opt_d = optim.Adam(D.parameters(), lr=2e-4, betas=(0.5, 0.999))

# Training: the GAN's game with every term conditioned on y. D sees real pairs (x, y)
# and G's pairs (G(z | y'), y') for labels y' drawn uniformly; G must make D accept its
# sample *as a y'*.
for epoch in range(args.epochs):
    progress = tqdm(loader, desc=f"epoch {epoch + 1}/{args.epochs}")
    for x, y in progress:
        m = x.shape[0]
        y_fake = rng.integers(0, 10, size=m)
        with frozen(G):
            fake = G.sample(y_fake)
        d_loss = discriminator_loss(D(x, y), D(fake, y_fake))
        opt_d.zero_grad()
        d_loss.backward()
        opt_d.step()
        y_fake = rng.integers(0, 10, size=m)
        with frozen(D):
            g_loss = generator_loss(D(G.sample(y_fake), y_fake), "non_saturating")
            opt_g.zero_grad()
            g_loss.backward()
            opt_g.step()
        progress.set_postfix(d_loss=f"{d_loss.item():.3f}", g_loss=f"{g_loss.item():.3f}")

# Evaluation: D's mean belief on test pairs and on samples asked for the same labels;
# with --accuracy, does LeNet see the digit that was asked for?
G.eval()
D.eval()
n = len(x_test)
with tg.no_grad():
    d_real = np.concatenate([D(tg.tensor(x_test[i:i + 500], device=args.device),
                               y_test[i:i + 500]).sigmoid().numpy() for i in range(0, n, 500)])
    fakes = np.concatenate([G.sample(y_test[i:i + 500]).numpy() for i in range(0, n, 500)])
    d_fake = np.concatenate([D(tg.tensor(fakes[i:i + 500], device=args.device),
                               y_test[i:i + 500]).sigmoid().numpy() for i in range(0, n, 500)])
print(f"mean D(x | y) on {n} test digits {d_real.mean():.3f}, mean D(G(z | y) | y) on "
      f"{n} samples {d_fake.mean():.3f}")
if args.accuracy:
    from tinygen.experiments.classifier import class_accuracy
    acc = class_accuracy((fakes + 1) / 2, y_test, "mnist", device=args.device)
    print(f"class_accuracy {acc:.3f} on {n} samples (chance 0.1)")

# class_rows.png: ten z, each decoded with every label y = 0..9.
with tg.no_grad():
    z = tg.tensor(tg.random.generator(1234).standard_normal((10, args.latent_dim))
                  .astype(np.float32), device=args.device)
    rows = [(G(z, np.full(10, c)).numpy() + 1) / 2 for c in range(10)]
path = save_image_grid(np.concatenate(rows), os.path.join(args.out, "class_rows.png"),
                       nrow=10, labels=[str(c) for c in range(10)])
print(f"wrote {path}")
