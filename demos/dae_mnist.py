"""Train a denoising autoencoder on MNIST, top to bottom (what `tinygen train dae` does,
with the pieces in plain sight).

Run:  TINYGEN_DATA=path/to/data python demos/dae_mnist.py [--epochs 5]
          [--noise masking|gaussian] [--noise-level 0.5]
          [--train-images 60000] [--test-images 10000]   (fewer images: a quick trial)
It prints the reconstruction error of corrupted test images against the clean ones,
next to that of the corrupted images themselves, and writes denoising.png.
"""
import argparse
import os

import numpy as np
from tqdm import tqdm

import tinygen as tg
from tinygen import data, optim
from tinygen.models.vae.autoencoder import DenoisingAutoEncoder
from tinygen.plot import save_image_grid

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--epochs", type=int, default=5)
parser.add_argument("--noise", default="masking", choices=["masking", "gaussian"])
parser.add_argument("--noise-level", type=float, default=0.5,
                    help="masking: probability a pixel is zeroed; gaussian: sigma")
parser.add_argument("--train-images", type=int, default=60000, help="fewer for a quick trial")
parser.add_argument("--test-images", type=int, default=10000,
                    help="fewer for a quick trial, at least the 32 the picture shows")
parser.add_argument("--device", default="cpu")
parser.add_argument("--out", default=os.path.join("runs", "dae_demo"))
args = parser.parse_args()
if args.test_images < 32:
    parser.error("--test-images must be at least 32, the digits denoising.png shows")
tg.manual_seed(0)

# The data: grey levels x in [0, 1], the clean targets.
images, _ = data.load_dataset("mnist", "train")
test_images, _ = data.load_dataset("mnist", "test")
x_train = data.scale(images[:args.train_images]).reshape(-1, 1, 28, 28)
x_test = data.scale(test_images[:args.test_images]).reshape(-1, 1, 28, 28)
loader = data.DataLoader(x_train, batch_size=128, shuffle=True, seed=0, device=args.device)

# The model: encoder f and decoder g (MLPs, a 32-d code), and the corruption
# C(x_tilde | x): each pixel zeroed with probability p, or Gaussian noise added.
dae = DenoisingAutoEncoder(latent_dim=32, noise=args.noise, noise_level=args.noise_level)
dae = dae.to(args.device)
opt = optim.Adam(dae.parameters(), lr=1e-3)

# Training: a fresh x_tilde ~ C(x_tilde | x) every step; the loss compares g(f(x_tilde))
# with the clean x (binary cross-entropy), never with x_tilde.
for epoch in range(args.epochs):
    progress = tqdm(loader, desc=f"epoch {epoch + 1}/{args.epochs}")
    for x in progress:
        x_tilde = dae.corrupt(x)
        loss = dae.losses(x, x_tilde)["loss"]
        opt.zero_grad()
        loss.backward()
        opt.step()
        progress.set_postfix(loss=f"{loss.item():.2f}")

# Evaluation: the mean squared error per pixel of the denoised test images against the
# clean ones, and of the corrupted images themselves (what doing nothing scores).
dae.eval()
with tg.no_grad():
    x_tilde = dae.corrupt(tg.tensor(x_test, device=args.device)).numpy()
    denoised = np.concatenate([dae(tg.tensor(x_tilde[i:i + 1000], device=args.device)).numpy()
                               for i in range(0, len(x_tilde), 1000)])
print(f"test MSE per pixel ({len(x_test)} images): denoised "
      f"{np.mean((denoised - x_test) ** 2):.4f}, "
      f"corrupted input {np.mean((x_tilde - x_test) ** 2):.4f}")

# The picture: rows of clean test digits, their corruption, and the denoised result.
rows = [a[i:i + 16] for i in (0, 16) for a in (x_test, x_tilde, denoised)]
path = save_image_grid(np.concatenate(rows), os.path.join(args.out, "denoising.png"), nrow=16,
                       value_range=(0, 1), labels=["clean", "corrupted", "denoised"] * 2)
print(f"wrote {path}")
