"""Train a restricted Boltzmann machine on binarised MNIST by persistent contrastive
divergence, top to bottom (what `tinygen train rbm` does, with the pieces in plain
sight), and measure its test log-likelihood: exactly for a small hidden layer, by
annealed importance sampling for a large one.

The RBM's energy is E(v, h) = -a.v - b.h - v^T W h over binary pixels v and binary
hidden units h. Summing h out gives the free energy F(v) = -a.v - sum_j softplus(b_j +
(v^T W)_j), so p(v) = exp(-F(v)) / Z. Training follows the gradient of every
energy-based model, -grad F(data) + E_model[grad F(v^-)]: the negative samples v^- come
from Gibbs chains (h ~ p(h | v), v ~ p(v | h), both products of Bernoullis) kept from one
update to the next (PCD, Tieleman 2008).

Run:  TINYGEN_DATA=path/to/data python demos/rbm_mnist.py [--epochs 20] [--hidden 500]
          [--lr 0.001] [--train-images 60000] [--test-images 10000] [--ais-betas 14500]
          (a quick trial: --epochs 1 --hidden 10 --train-images 5000 --test-images 500,
          a few seconds; hidden <= 20 measures log Z exactly, which takes about ten
          seconds at 20)
At the defaults it takes about four minutes on a 2-core laptop (timed: 231 s here, with
the cores shared with other work): training, then a minute of AIS. It prints the test
log-likelihood in nats: -96.91 after the default 20 epochs (log Z by AIS in [339.63,
340.74]); `tinygen train rbm` trains the same model for 100 epochs to -88.06. It writes

    filters.png      100 columns of W as 28x28 images: what each hidden unit looks for
                     (strokes, blobs, pieces of digits; each scaled to its own range)
    gibbs_chain.png  8 Gibbs chains from random pixels: p(v | h) after 1, 2, 5, ...,
                     1000 steps, noise turning into digits
    inpainting.png   the lower half of 8 test digits filled in by Gibbs sampling with the
                     upper half clamped: masked, completed (mean of the last 50 steps),
                     truth
"""
import argparse
import os

import numpy as np
from tqdm import tqdm

import tinygen as tg
from tinygen import data, optim
from tinygen.models.ebm import RBM, ais_log_partition, exact_log_partition
from tinygen.models.ebm.rbm import ais_betas
from tinygen.plot import save_image_grid

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--epochs", type=int, default=20)
parser.add_argument("--hidden", type=int, default=500, help="hidden units H")
parser.add_argument("--batch-size", type=int, default=100, help="also the number of chains")
parser.add_argument("--lr", type=float, default=1e-3)
parser.add_argument("--gibbs-steps", type=int, default=1, help="per update (k of PCD-k)")
parser.add_argument("--ais-betas", type=int, default=14500,
                    help="AIS's intermediate distributions (hidden > 20)")
parser.add_argument("--train-images", type=int, default=60000, help="fewer for a quick trial")
parser.add_argument("--test-images", "--eval-n", type=int, default=10000,
                    help="test images of the log-likelihood; fewer for a quick trial")
parser.add_argument("--seed", type=int, default=0)
parser.add_argument("--device", default="cpu")
parser.add_argument("--out", default=os.path.join("runs", "rbm_demo"))
args = parser.parse_args()
tg.manual_seed(args.seed)

# The data: grey levels in [0, 1] as vectors of 784, every batch binarised afresh,
# v ~ Bernoulli(grey); the test images once, with a fixed seed.
train_images, _ = data.load_dataset("mnist", "train")
test_images, _ = data.load_dataset("mnist", "test")
x_train = data.scale(train_images[:args.train_images]).reshape(-1, 784)
x_test = data.scale(test_images[:args.test_images]).reshape(-1, 784)
v_test = data.binarize(x_test, tg.random.generator(1234))
loader = data.DataLoader(x_train, batch_size=args.batch_size, shuffle=True, seed=args.seed,
                         device=args.device, transform=data.binarize)

# The model: W ~ N(0, 0.01^2), hidden biases 0, visible biases at the pixels' log-odds
# (Hinton's practical guide), so that at the start p(v) is each pixel's own coin.
rbm = RBM(784, args.hidden)
p = x_train.mean(axis=0).clip(1e-3, 1 - 1e-3)
base_rates = np.log(p / (1 - p)).astype(np.float32)
rbm.a.data[...] = base_rates
rbm = rbm.to(args.device)
# Adam, weight decay on W only, the rate decayed on a cosine to lr/100 (the small steps
# at the end let the persistent chains keep up with the model)
opt = optim.Adam([{"params": [rbm.W], "weight_decay": 1e-4},
                  {"params": [rbm.a, rbm.b]}], lr=args.lr)
schedule = optim.CosineAnnealingLR(opt, T_max=max(1, args.epochs * len(loader)),
                                   eta_min=args.lr / 100)

# Training: the persistent chains start at the base rates; each update runs them
# gibbs_steps further and takes one step on mean F(v+) - mean F(v-), whose negative
# gradient is the estimate of grad log p(v).
chains = RBM.bernoulli(tg.tensor(np.tile(p, (args.batch_size, 1)).astype(np.float32),
                                 device=args.device))
for epoch in range(args.epochs):
    progress = tqdm(loader, desc=f"epoch {epoch + 1}/{args.epochs}")
    for v in progress:
        if len(v) != len(chains):
            continue   # the last, smaller batch: keep one chain per example
        chains = rbm.gibbs(chains, args.gibbs_steps)
        loss = rbm.free_energy(v).mean() - rbm.free_energy(chains).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        schedule.step()
        progress.set_postfix(free_energy_gap=f"{loss.item():.2f}")

# Evaluation: log p(v) = -F(v) - log Z. log Z sums 2^H hidden states exactly when H is
# small; otherwise AIS anneals from the base-rate model (W = 0) to the RBM through
# 14,500 distributions and reports the estimate with a 3-standard-error interval.
if args.hidden <= 20:
    log_Z, how = exact_log_partition(rbm), "exact"
else:
    est = ais_log_partition(rbm, num_runs=100, betas=ais_betas(args.ais_betas),
                            base_visible_bias=base_rates, progress=True)
    log_Z = est.log_Z
    how = f"AIS, log Z in [{est.log_Z_low:.2f}, {est.log_Z_high:.2f}]"
with tg.no_grad():
    F = np.concatenate([rbm.free_energy(tg.tensor(v_test[i:i + 1000], device=args.device))
                        .numpy() for i in range(0, len(v_test), 1000)])
print(f"test log-likelihood {-F.mean() - log_Z:.2f} nats ({how}, log Z = {log_Z:.2f}) "
      f"on {len(v_test)} test images")

with tg.no_grad():
    os.makedirs(args.out, exist_ok=True)
    W = rbm.W.numpy()[:, :100].T
    W = (W - W.min(axis=1, keepdims=True)) / np.ptp(W, axis=1, keepdims=True).clip(1e-8)
    save_image_grid(W.reshape(-1, 1, 28, 28), os.path.join(args.out, "filters.png"),
                    nrow=10)

    # gibbs_chain.png: 8 chains from random pixels, shown as p(v | h) at a few steps
    v = RBM.bernoulli(tg.full((8, 784), 0.5, device=args.device))
    _, chain = rbm.gibbs(v, 1000, return_chain=True)
    at = [0, 1, 4, 9, 29, 99, 299, 999]
    frames = np.stack([chain[t].numpy() for t in at], axis=1)        # (8, len(at), 784)
    save_image_grid(frames.reshape(-1, 1, 28, 28), os.path.join(args.out, "gibbs_chain.png"),
                    nrow=len(at))

    # inpainting.png: the upper half known and clamped; Gibbs sampling fills in the
    # rest (h ~ p(h | v), then only the missing pixels from p(v | h)); the picture shows
    # the mean p(v | h) over the last 50 of 200 steps
    known = np.zeros(784, np.float32)
    known[:392] = 1
    v_known = tg.tensor(v_test[:8], device=args.device)
    k = tg.tensor(known, device=args.device)
    v = v_known * k + RBM.bernoulli(tg.full((8, 784), 0.5, device=args.device)) * (1 - k)
    mean = 0
    for step in range(200):
        p_v = rbm.p_v_given_h(rbm.sample_h(v))
        v = v_known * k + RBM.bernoulli(p_v) * (1 - k)
        if step >= 150:
            mean = mean + p_v / 50
    filled = (v_known * k + mean * (1 - k)).numpy()
    masked = np.where(known == 1, v_test[:8], 0.5)
    save_image_grid(np.concatenate([masked, filled, x_test[:8]]).reshape(-1, 1, 28, 28),
                    os.path.join(args.out, "inpainting.png"), nrow=8,
                    labels=["masked", "completed", "truth"])
print(f"wrote filters.png, gibbs_chain.png and inpainting.png to {args.out}")
