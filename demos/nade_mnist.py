"""Train NADE (Larochelle & Murray 2011) on dynamically binarised MNIST, top to bottom
(what `tinygen train nade` does, with the pieces in plain sight).

NADE writes p(x) = prod_d p(x_d | x_<d) with one small network per conditional,
h_d = sigm(c + W[:, <d] x_<d), p(x_d = 1 | x_<d) = sigm(b_d + V_d . h_d), all of them
sharing W. Because they share it, the hidden pre-activations obey a recurrence,
a_1 = c, a_(d+1) = a_d + W[:, d] x_d: all 784 networks cost about what one does, and a
sample costs the same, one pixel at a time along the recurrence.

Run:  TINYGEN_DATA=path/to/data python demos/nade_mnist.py [--epochs 1] [--hidden 500]
          [--train-images 60000] [--test-images 10000]   (a quick trial:
          --train-images 3000 --test-images 500, about a minute)
At the defaults it takes about 25 minutes on a 2-core laptop and prints the exact test NLL
in nats (Larochelle & Murray report 88.86 after long training, on the statically
binarised MNIST), and writes

    samples.png      64 samples, drawn by the recurrence
    conditionals.png top row: test digits; bottom row: p(x_d = 1 | x_<d) of every pixel
    filters.png      the first 64 rows of W as 28 x 28 images: each hidden unit's weights
                     from the 784 pixels (what pixel d adds to that unit's pre-activation
                     once x_d = 1 has been seen)
"""
import argparse
import os

import numpy as np
from tqdm import tqdm

import tinygen as tg
from tinygen import data, optim
from tinygen.models.autoregressive import NADE
from tinygen.plot import save_image_grid

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--epochs", type=int, default=1)
parser.add_argument("--hidden", type=int, default=500, help="H, hidden units")
parser.add_argument("--batch-size", type=int, default=100)
parser.add_argument("--lr", type=float, default=1e-3)
parser.add_argument("--train-images", type=int, default=60000, help="fewer for a quick trial")
parser.add_argument("--test-images", type=int, default=10000,
                    help="test images of the NLL; fewer for a quick trial")
parser.add_argument("--seed", type=int, default=0)
parser.add_argument("--device", default="cpu")
parser.add_argument("--out", default=os.path.join("runs", "nade_demo"))
args = parser.parse_args()
tg.manual_seed(args.seed)

# The data: grey levels in [0, 1]; every batch binarised afresh; the test images once.
train_images, _ = data.load_dataset("mnist", "train")
test_images, _ = data.load_dataset("mnist", "test")
x_train = data.scale(train_images[:args.train_images])[:, None]
x_test = data.binarize(data.scale(test_images[:args.test_images])[:, None],
                       tg.random.generator(1234))
loader = data.DataLoader(x_train, batch_size=args.batch_size, shuffle=True, seed=args.seed,
                         device=args.device, transform=data.binarize)

# The model: W, V ~ N(0, 0.01^2), c = 0, and b at the pixels' log-odds, so that the first
# steps learn the digits' structure rather than how often each pixel is on.
model = NADE(28, hidden=args.hidden)
p = x_train.reshape(-1, 784).mean(axis=0).clip(1e-3, 1 - 1e-3)
model.b.data[...] = np.log(p / (1 - p))
model = model.to(args.device)
opt = optim.Adam(model.parameters(), lr=args.lr)
schedule = optim.CosineAnnealingLR(opt, T_max=max(1, args.epochs * len(loader)),
                                   eta_min=args.lr / 100)

# Training: the mean -log p(x), nats per image; the forward pass computes all 784 hidden
# layers by one running sum (cumsum) of the terms W[:, d] x_d.
model.train()
for epoch in range(args.epochs):
    progress = tqdm(loader, desc=f"epoch {epoch + 1}/{args.epochs}")
    for x in progress:
        nll = -model.log_prob(x, check=False).mean()
        opt.zero_grad()
        nll.backward()
        opt.step()
        schedule.step()
        progress.set_postfix(nll=f"{nll.item():.2f}")

# Evaluation: the exact test NLL.
model.eval()
with tg.no_grad():
    log_p = np.concatenate([model.log_prob(tg.tensor(x_test[i:i + 200], device=args.device))
                            .numpy() for i in range(0, len(x_test), 200)])
print(f"test NLL {-log_p.mean():.2f} nats on {len(x_test)} test images")

with tg.no_grad():
    save_image_grid(model.sample(64).numpy(), os.path.join(args.out, "samples.png"), nrow=8)
    x = x_test[:8]
    probs = model(tg.tensor(x, device=args.device)).sigmoid().numpy()
    save_image_grid(np.concatenate([x, probs]), os.path.join(args.out, "conditionals.png"),
                    nrow=len(x), labels=["x", "p(x_d = 1 | x_<d)"])
    W = model.W.numpy()[:64].reshape(-1, 1, 28, 28)
    save_image_grid(W, os.path.join(args.out, "filters.png"), nrow=8)
print(f"wrote samples.png, conditionals.png and filters.png to {args.out}")
