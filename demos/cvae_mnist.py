"""Train a conditional VAE on MNIST and draw the digit you ask for, top to bottom (what
`tinygen train cvae` does, with the pieces in plain sight).

Run:  TINYGEN_DATA=path/to/data python demos/cvae_mnist.py [--epochs 10]
          [--train-images 60000] [--test-images 10000]   (fewer images: a quick trial)
It prints the test ELBO and writes class_rows.png: row c holds digits of class c, and
each column shares one z, which carries the style (slant, thickness), not the class.
"""
import argparse
import os

import numpy as np
from tqdm import tqdm

import tinygen as tg
from tinygen import data, optim
from tinygen.models.vae.cvae import ConditionalVAE
from tinygen.plot import save_image_grid

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--epochs", type=int, default=10)
parser.add_argument("--latent-dim", type=int, default=20)
parser.add_argument("--train-images", type=int, default=60000, help="fewer for a quick trial")
parser.add_argument("--test-images", type=int, default=10000, help="fewer for a quick trial")
parser.add_argument("--device", default="cpu")
parser.add_argument("--out", default=os.path.join("runs", "cvae_demo"))
args = parser.parse_args()
tg.manual_seed(0)

# The data: images binarised afresh every batch, with their labels y.
images, labels = data.load_dataset("mnist", "train")
test_images, test_labels = data.load_dataset("mnist", "test")
test_images, test_labels = test_images[:args.test_images], test_labels[:args.test_images]
x_train = data.scale(images[:args.train_images]).reshape(-1, 1, 28, 28)
loader = data.DataLoader(x_train, labels[:args.train_images], batch_size=100, shuffle=True,
                         seed=0, device=args.device,
                         transform=lambda batch, g: (data.binarize(batch[0], g), batch[1]))

# The model: q(z | x, y) and p(x | z, y), the label entering both as a one-hot vector.
cvae = ConditionalVAE(latent_dim=args.latent_dim).to(args.device)
opt = optim.Adam(cvae.parameters(), lr=1e-3)

# Training: maximise E_q[log p(x | z, y)] - KL(q(z | x, y) || p(z)).
for epoch in range(args.epochs):
    progress = tqdm(loader, desc=f"epoch {epoch + 1}/{args.epochs}")
    for x, y in progress:
        recon, kl = cvae.elbo(x, y)
        loss = -(recon - kl).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        progress.set_postfix(loss=f"{loss.item():.2f}")

# The test ELBO, a lower bound on log p(x | y), on the test set binarised once.
cvae.eval()
x_test = data.binarize(data.scale(test_images).reshape(-1, 1, 28, 28), tg.random.generator(1234))
elbos = []
with tg.no_grad():
    for i in range(0, len(x_test), 500):
        recon, kl = cvae.elbo(tg.tensor(x_test[i:i + 500], device=args.device),
                              test_labels[i:i + 500])
        elbos.append((recon - kl).numpy())
print(f"test ELBO {np.concatenate(elbos).mean():.2f} nats on {len(x_test)} test images")

# Class-conditional rows: ten z ~ N(0, I), each decoded with every label y = 0..9.
with tg.no_grad():
    z = tg.randn(10, args.latent_dim, device=args.device)
    rows = [cvae.decode(z, np.full(10, c)).sigmoid().numpy() for c in range(10)]
path = save_image_grid(np.concatenate(rows).reshape(-1, 1, 28, 28),
                       os.path.join(args.out, "class_rows.png"), nrow=10,
                       labels=[str(c) for c in range(10)])
print(f"wrote {path}")
