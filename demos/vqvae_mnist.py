"""Train a VQ-VAE on MNIST, top to bottom (what `tinygen train vqvae` does, with the
pieces in plain sight).

Run:  TINYGEN_DATA=path/to/data python demos/vqvae_mnist.py [--epochs 5] [--ema]
          [--train-images 60000] [--test-images 10000]   (fewer images: a quick trial)
It prints the test reconstruction error and how many of the K codes are used (and the
perplexity of their use), and writes reconstructions.png and codebook_usage.png.
"""
import argparse
import os

import numpy as np
from tqdm import tqdm

import tinygen as tg
from tinygen import data, optim
from tinygen.experiments.vae.vqvae import plot_codebook_usage
from tinygen.models.vae.quantizer import codebook_usage, perplexity
from tinygen.models.vae.vqvae import VQVAE
from tinygen.plot import save_image_grid

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--epochs", type=int, default=5)
parser.add_argument("--num-embeddings", type=int, default=64, help="K, the codebook size")
parser.add_argument("--ema", action="store_true", help="move the codes by moving averages")
parser.add_argument("--train-images", type=int, default=60000, help="fewer for a quick trial")
parser.add_argument("--test-images", type=int, default=10000,
                    help="fewer for a quick trial, at least the 32 the picture shows")
parser.add_argument("--device", default="cpu")
parser.add_argument("--out", default=os.path.join("runs", "vqvae_demo"))
args = parser.parse_args()
if args.test_images < 32:
    parser.error("--test-images must be at least 32, the digits reconstructions.png shows")
tg.manual_seed(0)

# The data: grey levels in [0, 1].
images, _ = data.load_dataset("mnist", "train")
test_images, _ = data.load_dataset("mnist", "test")
x_train = data.scale(images[:args.train_images]).reshape(-1, 1, 28, 28)
x_test = data.scale(test_images[:args.test_images]).reshape(-1, 1, 28, 28)
loader = data.DataLoader(x_train, batch_size=128, shuffle=True, seed=0, device=args.device)

# The model: a conv encoder to z_e (N, 16, 7, 7), each of the 49 vectors replaced by its
# nearest code e_k of the codebook (K x 16), and a conv decoder from those.
vqvae = VQVAE(num_embeddings=args.num_embeddings,
              codebook_update="ema" if args.ema else "loss").to(args.device)
opt = optim.Adam(vqvae.parameters(), lr=1e-3)

# Training: L = ||x - x_hat||^2 + ||sg[z_e] - e||^2 + beta ||z_e - sg[e]||^2; the
# decoder's gradient reaches the encoder straight through the quantiser.
for epoch in range(args.epochs):
    progress = tqdm(loader, desc=f"epoch {epoch + 1}/{args.epochs}")
    for x in progress:
        x_hat, z_e, q = vqvae(x)
        loss = vqvae.loss(vqvae.loss_terms(x, x_hat, z_e, q.z_q))
        opt.zero_grad()
        loss.backward()
        opt.step()
        vqvae.quantizer.ema_update(z_e, q.k)   # usage counts; with --ema also the codes
        progress.set_postfix(loss=f"{loss.item():.4f}")

# Evaluation on the test set: reconstruction error per pixel, and the use of the codes.
vqvae.eval()
x_hat, codes = [], []
with tg.no_grad():
    for i in range(0, len(x_test), 500):
        out, _, q = vqvae(tg.tensor(x_test[i:i + 500], device=args.device))
        x_hat.append(out.numpy())
        codes.append(tg.backend.to_numpy(q.k))
x_hat, counts = np.concatenate(x_hat), codebook_usage(np.concatenate(codes), args.num_embeddings)
print(f"{len(x_test)} test images: MSE per pixel {np.mean((x_hat - x_test) ** 2):.5f}; codes used "
      f"{int((counts > 0).sum())} of {args.num_embeddings}, perplexity {perplexity(counts):.1f}")

# Pictures: test inputs above their reconstructions, and how often each code is used.
pairs = np.stack([x_test[:32].reshape(4, 8, 1, 28, 28),
                  np.clip(x_hat[:32], 0, 1).reshape(4, 8, 1, 28, 28)], axis=1)
save_image_grid(pairs.reshape(64, 1, 28, 28), os.path.join(args.out, "reconstructions.png"),
                value_range=(0, 1), labels=["input", "reconstruction"] * 4)
plot_codebook_usage(counts, os.path.join(args.out, "codebook_usage.png"),
                    title=f"MNIST, {len(x_test)} test images")
print(f"wrote the pictures to {args.out}")
