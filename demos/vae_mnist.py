"""Train a VAE (or, with --k > 1, an IWAE) on dynamically binarised MNIST, top to bottom
(what `tinygen train vae` does, with the pieces in plain sight).

Run:  TINYGEN_DATA=path/to/data python demos/vae_mnist.py [--epochs 10] [--k 1] [--latent-dim 50]
          [--train-images 60000] [--test-images 1000]   (fewer images: a quick trial)
It prints the test ELBO and the test log-likelihood estimated with the IWAE bound, and
writes samples.png, reconstructions.png and, with --latent-dim 2, manifold.png.
"""
import argparse
import os
from statistics import NormalDist

import numpy as np
from tqdm import tqdm

import tinygen as tg
from tinygen import data, optim
from tinygen.models.vae.vae import VAE
from tinygen.plot import save_image_grid

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--epochs", type=int, default=10)
parser.add_argument("--k", type=int, default=1,
                    help="importance samples: 1 = ELBO (VAE), >1 = IWAE")
parser.add_argument("--latent-dim", type=int, default=50)
parser.add_argument("--eval-k", type=int, default=1000,
                    help="k of the test log-likelihood estimate")
parser.add_argument("--train-images", type=int, default=60000, help="fewer for a quick trial")
parser.add_argument("--test-images", "--eval-n", type=int, default=1000,
                    help="test images it is evaluated on; fewer for a quick trial")
parser.add_argument("--device", default="cpu")
parser.add_argument("--out", default=os.path.join("runs", "vae_demo"))
args = parser.parse_args()
tg.manual_seed(0)

# The data: grey levels in [0, 1]; every batch is binarised afresh, x ~ Bernoulli(grey).
train_images, _ = data.load_dataset("mnist", "train")
test_images, _ = data.load_dataset("mnist", "test")
x_train = data.scale(train_images[:args.train_images]).reshape(-1, 1, 28, 28)
x_test = data.binarize(data.scale(test_images[:args.test_images]).reshape(-1, 1, 28, 28),
                       tg.random.generator(1234))   # binarised once: a fixed test set
loader = data.DataLoader(x_train, batch_size=100, shuffle=True, seed=0, device=args.device,
                         transform=lambda x, g: data.binarize(x, g))

# The model: q(z|x) = N(mu, sigma^2) and p(x|z) = Bernoulli(sigmoid(logits)), MLPs
# 784-200-200-d with tanh (Burda et al.'s architecture); Adam.
vae = VAE(latent_dim=args.latent_dim).to(args.device)
opt = optim.Adam(vae.parameters(), lr=1e-3)

# Training: maximise the ELBO = E_q[log p(x|z)] - KL(q(z|x) || p(z)) (or, with k > 1,
# the importance-weighted bound L_k), i.e. minimise its negative, averaged over the batch.
for epoch in range(args.epochs):
    progress = tqdm(loader, desc=f"epoch {epoch + 1}/{args.epochs}")
    for x in progress:
        if args.k == 1:
            recon, kl = vae.elbo(x)
            loss = -(recon - kl).mean()
        else:
            loss = -vae.iwae_bound(x, args.k).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        progress.set_postfix(loss=f"{loss.item():.2f}")

# Evaluation: the test ELBO, and log p(x) estimated by L_k with a large k (k = 5000 in
# the paper; smaller here to be quick). Both in nats per image; NLL = -log p(x).
vae.eval()
elbos, bounds = [], []
with tg.no_grad():
    for i in tqdm(range(0, len(x_test), 10), desc=f"test NLL, k={args.eval_k}", leave=False):
        x = tg.tensor(x_test[i:i + 10], device=args.device)
        recon, kl = vae.elbo(x)
        elbos.append((recon - kl).numpy())
        bounds.append(vae.iwae_bound(x, args.eval_k).numpy())
print(f"test ELBO {np.concatenate(elbos).mean():.2f} nats; "
      f"test NLL (IWAE k={args.eval_k}) {-np.concatenate(bounds).mean():.2f} nats "
      f"on {len(x_test)} test images")

# Pictures: samples x ~ p(x|z) p(z) (drawn as the means of p(x|z)), reconstructions of
# test digits from mu(x), and for a 2-D latent space the decoded grid of z.
with tg.no_grad():
    save_image_grid(vae.sample(64), os.path.join(args.out, "samples.png"))
    x = tg.tensor(x_test[:32], device=args.device)
    recon = vae.mean(vae.decode(vae.encode(x)[0])).numpy()
    pairs = np.stack([x.numpy(), recon], axis=1).reshape(-1, 1, 28, 28)
    save_image_grid(pairs, os.path.join(args.out, "reconstructions.png"), nrow=16)
    if args.latent_dim == 2:  # z on a grid of quantiles of N(0, 1), decoded
        q = [NormalDist().inv_cdf(p) for p in np.linspace(0.05, 0.95, 15)]
        z = np.array([[a, b] for b in q[::-1] for a in q], np.float32)     # (225, 2)
        z = tg.tensor(z, device=args.device)
        save_image_grid(vae.mean(vae.decode(z)), os.path.join(args.out, "manifold.png"), nrow=15)
print(f"wrote the pictures to {args.out}")
