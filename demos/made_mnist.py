"""Train MADE (Germain, Gregor, Murray & Larochelle 2015) on dynamically binarised MNIST,
top to bottom (what `tinygen train made` does, with the pieces in plain sight): an
autoregressive model whose exact log-likelihood costs one pass of a masked MLP.

MADE writes p(x) = prod_d p(x_d | x_<d), each conditional a Bernoulli whose logit an
ordinary MLP computes for all 784 pixels at once; masks on its weights cut every path
from x_e to the output of x_d unless e comes before d in the ordering, so the output
for pixel d sees only the pixels before it. With --num-masks K > 1 the network is
trained on K mask sets in turn (the hidden units' connectivity, and with --ordering
random also the ordering, change every batch), and tested as the ensemble
p(x) = 1/K sum_k p_k(x) (the paper, sections 4.3-4.4).

Run:  TINYGEN_DATA=path/to/data python demos/made_mnist.py [--epochs 10] [--hidden 500]
          [--num-masks 1] [--ordering natural|random] [--train-images 60000]
          [--test-images 10000]   (fewer images: a quick trial, e.g. --epochs 1
          --train-images 5000 --test-images 500, about ten seconds)
At the defaults it takes about a minute and a half on a 2-core laptop (timed: 72 s
here, with both cores shared with other work). It prints the exact test NLL in nats:
about 103 after the default 10 epochs (Germain et al. report 88.40 for this
one-hidden-layer model with one mask set and 86.64 with an ensemble of 32, after long
training), and writes

    samples.png        64 samples, each drawn pixel by pixel in 784 passes of the
                       network (pass d draws x_d given the pixels drawn before it):
                       digit-like shapes, many recognisable, speckled and with broken
                       strokes, for every pixel is a fresh coin flip
    conditionals.png   top row: test digits; bottom row: p(x_d = 1 | x_<d) of every
                       pixel, what the model predicts each pixel to be from the pixels
                       before it (in the default raster order: the rows above it and
                       the pixels to its left): close to the digit itself, since once
                       the top of a stroke has been seen its continuation is easy to
                       predict; the blur is where a stroke could go either way
"""
import argparse
import os

import numpy as np
from tqdm import tqdm

import tinygen as tg
from tinygen import data, optim
from tinygen.models.flows import MADE
from tinygen.plot import save_image_grid

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--epochs", type=int, default=10)
parser.add_argument("--hidden", type=int, default=500, help="units per hidden layer")
parser.add_argument("--num-layers", type=int, default=1, help="hidden layers")
parser.add_argument("--num-masks", type=int, default=1,
                    help="mask sets cycled through in training, averaged at test time")
parser.add_argument("--ordering", choices=["natural", "random"], default="natural",
                    help="of the pixels: raster order, or a permutation per mask set")
parser.add_argument("--batch-size", type=int, default=100)
parser.add_argument("--lr", type=float, default=1e-3)
parser.add_argument("--train-images", type=int, default=60000, help="fewer for a quick trial")
parser.add_argument("--test-images", "--eval-n", type=int, default=10000,
                    help="test images of the NLL; fewer for a quick trial")
parser.add_argument("--seed", type=int, default=0)
parser.add_argument("--device", default="cpu")
parser.add_argument("--out", default=os.path.join("runs", "made_demo"))
args = parser.parse_args()
tg.manual_seed(args.seed)

# The data: grey levels in [0, 1], as vectors of 784; every batch is binarised afresh,
# x ~ Bernoulli(grey) (dynamic binarisation); the test images once, with a fixed seed.
train_images, _ = data.load_dataset("mnist", "train")
test_images, _ = data.load_dataset("mnist", "test")
x_train = data.scale(train_images[:args.train_images]).reshape(-1, 784)
x_test = data.binarize(data.scale(test_images[:args.test_images]).reshape(-1, 784),
                       tg.random.generator(1234))
loader = data.DataLoader(x_train, batch_size=args.batch_size, shuffle=True, seed=args.seed,
                         device=args.device, transform=data.binarize)

# The model: 784 -> hidden (ReLU) -> 784 logits, the weights masked. The output biases
# start at the pixels' log-odds, so that the first steps fit the digits' structure
# rather than how often each pixel is on. Adam with a cosine decay.
model = MADE(784, (args.hidden,) * args.num_layers, ordering=args.ordering,
             num_masks=args.num_masks, seed=args.seed)
p = x_train.mean(axis=0).clip(1e-3, 1 - 1e-3)
model.layers[-1].bias.data[...] = np.log(p / (1 - p))
model = model.to(args.device)
opt = optim.Adam(model.parameters(), lr=args.lr)
schedule = optim.CosineAnnealingLR(opt, T_max=max(1, args.epochs * len(loader)),
                                   eta_min=args.lr / 100)

# Training: one Adam step per batch on the mean -log p(x) = -sum_d [x_d l_d -
# softplus(l_d)] in nats per image, under the current mask set; then the next one.
model.train()
for epoch in range(args.epochs):
    progress = tqdm(loader, desc=f"epoch {epoch + 1}/{args.epochs}")
    for x in progress:
        nll = -model.log_prob(x).mean()
        opt.zero_grad()
        nll.backward()
        opt.step()
        schedule.step()
        model.update_masks()                 # cycles through the K mask sets (K = 1: none)
        progress.set_postfix(nll=f"{nll.item():.2f}")

# Evaluation: the exact -log p(x) of the test images, one pass per mask set. With K > 1
# also the ensemble, the average of the K probabilities (log_prob_ensemble: a
# logsumexp of the K log-probabilities minus log K, never an average of logits).
model.eval()
model.set_mask_index(0)
single, ensemble = [], []
with tg.no_grad():
    for i in tqdm(range(0, len(x_test), 500), desc="test NLL", leave=False):
        x = tg.tensor(x_test[i:i + 500], device=args.device)
        single.append(model.log_prob(x).numpy())
        if args.num_masks > 1:
            ensemble.append(model.log_prob_ensemble(x).numpy())
line = f"test NLL {-np.concatenate(single).mean():.2f} nats (mask set 0)"
if args.num_masks > 1:
    line += f", {-np.concatenate(ensemble).mean():.2f} nats (ensemble of {args.num_masks})"
print(line + f" on {len(x_test)} test images")

with tg.no_grad():
    # samples.png: 64 samples of mask set 0, pixel by pixel in the ordering (784 passes;
    # pass i draws the i-th pixel from its Bernoulli, given the pixels drawn before it).
    save_image_grid(model.sample(64).numpy().reshape(-1, 1, 28, 28),
                    os.path.join(args.out, "samples.png"), nrow=8)

    # conditionals.png: one pass gives p(x_d = 1 | x_<d) of every pixel of a test digit.
    x = x_test[:8]
    probs = model(tg.tensor(x, device=args.device)).sigmoid().numpy()
    save_image_grid(np.concatenate([x, probs]).reshape(-1, 1, 28, 28),
                    os.path.join(args.out, "conditionals.png"), nrow=len(x),
                    labels=["x", "p(x_d = 1 | x_<d)"])
print(f"wrote samples.png and conditionals.png to {args.out}")
