"""Train a masked autoregressive flow (Papamakarios, Pavlakou & Murray 2017) on
dequantised MNIST in logit space, top to bottom (what `tinygen train maf` does, with the
pieces in plain sight): density in one pass, sampling in 784.

A MAF layer is a Gaussian MADE read as a change of variables: each pixel is
x_d = u_d exp(alpha_d) + mu_d with mu_d, alpha_d functions of x_<d only, so the noise
u_d = (x_d - mu_d) exp(-alpha_d) comes back from x in one pass of the masked network, and
log |det du/dx| = -sum_d alpha_d (a triangular Jacobian). The model stacks K such layers,
the pixel order reversed between them, with batch norm after each; in front, a logit
transform maps [0, 1] onto the real line (its log-det counted, so p stays a density of
the image).

Run:  TINYGEN_DATA=path/to/data python demos/maf_mnist.py [--epochs 1] [--num-mades 5]
          [--hidden 512] [--num-layers 1] [--samples 16] [--train-images 60000]
          [--test-images 1000]   (fewer images: a quick trial, e.g. --train-images 3000
          --test-images 200 --samples 4, under a minute)
At the defaults (one epoch) it takes about 2 minutes on a 2-core laptop (timed: 128 s
here, the 16 samples about 20 s of it, with both cores shared with other work;
Papamakarios et al.'s MNIST model, --hidden 1024 --num-layers 2, is about three times
slower). It prints the test bits/dim, the mean of -log p(x) over the test images, and,
where a few test images ruin the mean, their number and the median: after the default
epoch the median is about 2.9 bits/dim, while 2 of the first 1000 test images get
-log p(x) of 1e12 nats and more (see the comment at the evaluation). It writes

    samples.png   --samples samples x = f^{-1}(u), u ~ N(0, I): smudged, speckled digit
                  shapes, now and then a square of pure noise (MAF's samples on MNIST
                  stay poor even after long training, though its likelihood is good:
                  likelihood and sample quality are different things)
"""
import argparse
import os

import numpy as np
from tqdm import tqdm

import tinygen as tg
from tinygen import data, optim
from tinygen.metrics import bits_per_dim
from tinygen.models.flows import Flatten, LogitTransform, NormalizingFlow, SequentialFlow
from tinygen.models.flows.maf import MAF
from tinygen.plot import save_image_grid

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--epochs", type=int, default=1)
parser.add_argument("--num-mades", type=int, default=5, help="K, MAF layers")
parser.add_argument("--hidden", type=int, default=512,
                    help="width of each MADE's hidden layers")
parser.add_argument("--num-layers", type=int, default=1, help="hidden layers per MADE")
parser.add_argument("--logit-alpha", type=float, default=0.05,
                    help="the logit transform's alpha (Papamakarios et al.: 1e-6)")
parser.add_argument("--samples", type=int, default=16,
                    help="samples drawn (each costs 784 passes of every MADE)")
parser.add_argument("--batch-size", type=int, default=64)
parser.add_argument("--lr", type=float, default=1e-3)
parser.add_argument("--train-images", type=int, default=60000, help="fewer for a quick trial")
parser.add_argument("--test-images", "--eval-n", type=int, default=1000,
                    help="test images of the bits/dim; fewer for a quick trial")
parser.add_argument("--seed", type=int, default=0)
parser.add_argument("--device", default="cpu")
parser.add_argument("--out", default=os.path.join("runs", "maf_demo"))
args = parser.parse_args()
tg.manual_seed(args.seed)
SHAPE = (1, 28, 28)
D = 784

# The data: 8-bit pixels k, dequantised afresh every batch to x = (k + u) / 256,
# u ~ U[0, 1), so that a continuous density makes sense; -log p(x) + D ln 256 bounds the
# discrete images' NLL from above, and bits/dim = that / (D ln 2)
# (tinygen.metrics.bits_per_dim(nll, shape, 8)). The test images are dequantised once.
train_images, _ = data.load_dataset("mnist", "train")
test_images, _ = data.load_dataset("mnist", "test")
x_train = train_images[:args.train_images].reshape(-1, *SHAPE)        # uint8
x_test = data.dequantize(test_images[:args.test_images].reshape(-1, *SHAPE),
                         tg.random.generator(2024))
# drop_last: batch norm needs every training batch to have more than one image
loader = data.DataLoader(x_train, batch_size=args.batch_size, shuffle=True, seed=args.seed,
                         drop_last=True, device=args.device, transform=data.dequantize)

# The model, x -> u: logit transform y = logit(alpha + (1 - 2 alpha) x), flatten to 784,
# then K MADE layers (each 784 -> hidden ... -> 2 x 784: mu and alpha of every pixel),
# the ordering reversed between them and a batch-norm layer after each. Adam with a
# cosine decay.
flow = SequentialFlow(LogitTransform(args.logit_alpha), Flatten(SHAPE),
                      MAF(D, (args.hidden,) * args.num_layers, args.num_mades,
                          batch_norm=True, seed=args.seed))
model = NormalizingFlow(flow, SHAPE, latent_shape=(D,)).to(args.device)
print(f"MAF, {args.num_mades} MADEs of {args.num_layers} x {args.hidden}: "
      f"{sum(p.size for p in model.parameters()):,} parameters")
opt = optim.Adam(model.parameters(), lr=args.lr)
schedule = optim.CosineAnnealingLR(opt, T_max=max(1, args.epochs * len(loader)),
                                   eta_min=args.lr / 100)

# Training: one Adam step per batch on the mean -log p(x) in nats per image (one pass
# of each MADE). Batch norm uses the batch's statistics here and updates its running
# averages; the gradients are scaled down to a global norm of 100 if a batch is unlucky.
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

# Evaluation: the exact -log p(x) of the dequantised test images, in bits/dim. In
# evaluation mode batch norm is a fixed affine map (its running averages), so log p(x)
# of an image does not depend on the others in its batch.
model.eval()
with tg.no_grad():
    log_p = np.concatenate([model.log_prob(tg.tensor(x_test[i:i + 100], device=args.device))
                            .numpy() for i in range(0, len(x_test), 100)]).astype(np.float64)
nll = -log_p.mean()
print(f"test NLL {nll:.1f} nats per image = {bits_per_dim(nll, SHAPE, 8):.3f} bits/dim "
      f"on {len(x_test)} test images")
# The mean can be ruled by a few test images unlike any training image. A pixel the
# first MADE is sure of (an edge pixel, almost always 0 in training) but that is on in a test
# digit comes out as u_d ~ 100 standard deviations; the next MADEs, fed a value far
# outside anything they were trained on, compute mu and alpha from it (ReLU networks
# grow linearly far out) and multiply the error again, layer after layer, up to 1e10
# and more: -log p(x) ~ u^2 / 2. Those images score worse than the uniform density on
# [0, 1]^784 (log p < 0, above 8 bits/dim): count them, and give the median, which
# they do not move.
worse = int((log_p < 0).sum())
if worse:
    print(f"{worse} of {len(log_p)} test images score worse than the uniform density "
          f"(8 bits/dim); the median is {bits_per_dim(-np.median(log_p), SHAPE, 8):.3f} "
          "bits/dim")

# samples.png: u ~ N(0, I) through the inverse. Density evaluation was one pass per
# MADE, but the inverse x_d = u_d exp(alpha_d) + mu_d needs x_<d before it can compute
# pixel d: 784 passes of each MADE, one pixel per pass (K x 784 passes in all). That is
# why only a few samples are drawn (--samples); MAF trades fast density for slow
# sampling, the inverse autoregressive flow the other way round.
with tg.no_grad():
    samples = model.sample(args.samples).numpy()
save_image_grid(np.clip(samples, 0, 1), os.path.join(args.out, "samples.png"),
                nrow=min(8, args.samples))
print(f"wrote samples.png to {args.out}")
