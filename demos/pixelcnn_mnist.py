"""Train a PixelCNN (van den Oord, Kalchbrenner & Kavukcuoglu 2016) or a gated PixelCNN
(van den Oord et al. 2016b) on dynamically binarised MNIST, top to bottom (what
`tinygen train pixelcnn` and `tinygen train gated-pixelcnn` do, with the pieces in plain
sight).

A PixelCNN writes p(x) = prod_i p(x_i | x_<i) in raster order (row by row, left to right)
and computes every conditional's logit at once with convolutions whose kernels are
masked: the taps at and after the centre are zero (type A in the first layer, which may
not see the pixel itself; type B after it). The log-likelihood of an image is one pass;
a sample is 784 passes, one pixel each. The plain network has a blind spot (pixels to
the upper right that never reach the output); the gated one splits into a vertical
stack (rows above) and a horizontal stack (the row so far) and sees them all.

Run:  TINYGEN_DATA=path/to/data python demos/pixelcnn_mnist.py [--model pixelcnn|gated]
          [--epochs 1] [--channels 32] [--layers 6] [--train-images 60000]
          [--test-images 10000] [--samples 16]   (a quick trial: --train-images 3000
          --test-images 500, about a minute)
At the defaults (one epoch of a small network) it takes about 10 minutes on a 2-core
laptop and prints the exact test NLL in nats (about 95; `tinygen train pixelcnn` trains a
larger network for longer, see docs/autoregressive.md), and writes

    receptive_field.png  which input pixels reach the output at the centre pixel (the
                         gradient of its logit with respect to the input, untrained
                         networks of the same depth): the plain PixelCNN's blind spot
                         to the upper right beside the gated PixelCNN's full view
    samples.png          samples, drawn pixel by pixel
    completions.png      test digits with the lower half hidden, and the lower half
                         drawn by the model given the upper half
"""
import argparse
import os

import numpy as np
from tqdm import tqdm

import tinygen as tg
from tinygen import data, optim
from tinygen.models.autoregressive import GatedPixelCNN, PixelCNN
from tinygen.plot import new_figure, save_figure, save_image_grid

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--model", choices=["pixelcnn", "gated"], default="gated")
parser.add_argument("--epochs", type=int, default=1)
parser.add_argument("--channels", type=int, default=32,
                    help="2h of the PixelCNN's residual stack; p of each gated stack")
parser.add_argument("--layers", type=int, default=6,
                    help="residual blocks (PixelCNN) or gated layers")
parser.add_argument("--batch-size", type=int, default=64)
parser.add_argument("--lr", type=float, default=1e-3)
parser.add_argument("--train-images", type=int, default=60000, help="fewer for a quick trial")
parser.add_argument("--test-images", type=int, default=10000,
                    help="test images of the NLL; fewer for a quick trial")
parser.add_argument("--samples", type=int, default=16, help="samples and completions drawn")
parser.add_argument("--seed", type=int, default=0)
parser.add_argument("--device", default="cpu")
parser.add_argument("--out", default=os.path.join("runs", "pixelcnn_demo"))
args = parser.parse_args()
tg.manual_seed(args.seed)


def build(model, size=28):
    if model == "pixelcnn":
        return PixelCNN(size, channels=args.channels, num_blocks=args.layers)
    return GatedPixelCNN(size, channels=args.channels, num_layers=args.layers)


# The receptive field: the gradient of the logit at the centre of a 15 x 15 image with
# respect to every input pixel, for both networks with 3 layers (untrained: which pixels
# can reach the output is a property of the masks, not of the weights).
fig = new_figure((6, 3))
for k, name in enumerate(["pixelcnn", "gated"]):
    net = PixelCNN(15, channels=8, num_blocks=3, first_kernel_size=3) if name == "pixelcnn" \
        else GatedPixelCNN(15, channels=8, num_layers=3)
    x = tg.tensor(np.random.default_rng(0).random((1, 1, 15, 15)).astype(np.float32),
                  requires_grad=True)
    net(x)[0, 0, 7, 7].backward()
    seen = (np.abs(x.grad.numpy()[0, 0]) > 0).astype(float)
    seen[7, 7] = 0.5                                   # the output pixel, in grey
    ax = fig.add_subplot(1, 2, k + 1)
    ax.imshow(seen, cmap="gray_r", vmin=0, vmax=1)
    ax.set_title("PixelCNN: blind spot" if name == "pixelcnn" else "gated PixelCNN")
    ax.set_xticks([])
    ax.set_yticks([])
save_figure(fig, os.path.join(args.out, "receptive_field.png"))

# The data: grey levels in [0, 1]; every batch binarised afresh, x ~ Bernoulli(grey);
# the test images once, with a fixed seed.
train_images, _ = data.load_dataset("mnist", "train")
test_images, _ = data.load_dataset("mnist", "test")
x_train = data.scale(train_images[:args.train_images])[:, None]
x_test = data.binarize(data.scale(test_images[:args.test_images])[:, None],
                       tg.random.generator(1234))
loader = data.DataLoader(x_train, batch_size=args.batch_size, shuffle=True, seed=args.seed,
                         device=args.device, transform=data.binarize)

# The model and Adam with a cosine decay.
model = build(args.model).to(args.device)
opt = optim.Adam(model.parameters(), lr=args.lr)
schedule = optim.CosineAnnealingLR(opt, T_max=max(1, args.epochs * len(loader)),
                                   eta_min=args.lr / 100)

# Training: the mean -log p(x) = -sum_i [x_i l_i - softplus(l_i)], nats per image, one
# pass of the network for all 784 conditionals (every pixel sees the true pixels before
# it: "teacher forcing").
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
    log_p = np.concatenate([model.log_prob(tg.tensor(x_test[i:i + 500], device=args.device))
                            .numpy() for i in range(0, len(x_test), 500)])
print(f"test NLL {-log_p.mean():.2f} nats on {len(x_test)} test images")

with tg.no_grad():
    # samples.png: 784 passes, pass i draws pixel i given the pixels drawn before it.
    save_image_grid(model.sample(args.samples).numpy(), os.path.join(args.out, "samples.png"),
                    nrow=8)
    # completions.png: the upper 14 rows kept (observed), the rest drawn in raster order:
    # an exact draw from p(lower half | upper half), as the upper half comes first.
    x = x_test[:args.samples]
    observed = np.zeros((1, 1, 28, 28), dtype=bool)
    observed[..., :14, :] = True
    filled = model.sample(len(x), x=tg.tensor(x, device=args.device), observed=observed).numpy()
    hidden = np.where(observed, x, 0.5)
    save_image_grid(np.concatenate([hidden, filled]), os.path.join(args.out, "completions.png"),
                    nrow=len(x))
print(f"wrote receptive_field.png, samples.png and completions.png to {args.out}")
