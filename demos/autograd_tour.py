"""A tour of tinygen's autograd engine, top to bottom.

1. The derivative and second derivative of f(x) = x^3 at x = 2 (12 and 12).
2. A two-layer network fitted to y = sin(x) by gradient descent with momentum,
   every gradient from backward().
3. The derivative of the fitted network with respect to its input, from grad():
   it should come out close to cos(x), though the network never saw a derivative.

Run:  python demos/autograd_tour.py [--steps 4000] [--device cpu|cuda] [--out runs/autograd_tour]
It writes fit.png (the data, the fit, and both derivatives) into --out.
"""
import argparse
import os

import matplotlib
matplotlib.use("Agg")  # write files; no window needed
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from tqdm import trange  # noqa: E402

import tinygen as tg  # noqa: E402

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--steps", type=int, default=4000)
parser.add_argument("--lr", type=float, default=0.05)
parser.add_argument("--momentum", type=float, default=0.9)
parser.add_argument("--device", default="cpu")
parser.add_argument("--out", default=os.path.join("runs", "autograd_tour"))
args = parser.parse_args()
tg.manual_seed(0)

# 1. Derivatives of a scalar function. create_graph=True records the backward pass,
#    so its result can be differentiated once more.
x = tg.tensor(2.0, requires_grad=True)
y = x ** 3
(dy_dx,) = tg.grad(y, x, create_graph=True)
(d2y_dx2,) = tg.grad(dy_dx, x)
print(f"f(x) = x^3 at x = 2:  f' = {dy_dx.item():.1f} (3x^2 = 12),  "
      f"f'' = {d2y_dx2.item():.1f} (6x = 12)")

# 2. Fit y = sin(x) on [-pi, pi] with a network h = tanh(x W1 + b1), y_hat = h W2 + b2.
x_train = tg.tensor(np.linspace(-np.pi, np.pi, 256, dtype=np.float32)[:, None], device=args.device)
y_train = tg.sin(x_train)
hidden = 32
W1 = (tg.randn(1, hidden, device=args.device) * 0.5).detach().requires_grad_()
b1 = tg.zeros(hidden, device=args.device, requires_grad=True)
W2 = (tg.randn(hidden, 1, device=args.device) * (1 / hidden ** 0.5)).detach().requires_grad_()
b2 = tg.zeros(1, device=args.device, requires_grad=True)
params = [W1, b1, W2, b2]


def net(x):
    return tg.tanh(x @ W1 + b1) @ W2 + b2


# Momentum keeps a running direction v <- m v + grad and steps along it, which crosses
# the long flat valleys of this loss far faster than the plain gradient does.
velocity = [tg.zeros_like(p).data for p in params]
progress = trange(args.steps, desc="fitting sin(x)")
for step in progress:
    loss = ((net(x_train) - y_train) ** 2).mean()
    for p in params:
        p.grad = None
    loss.backward()
    for p, v in zip(params, velocity):   # updates in place on the raw arrays
        v *= args.momentum
        v += p.grad.data
        p.data -= args.lr * v
    if step % 100 == 0:
        progress.set_postfix(mse=f"{loss.item():.2e}")
print(f"final mean squared error: {loss.item():.2e}")

# 3. d y_hat / d x through the trained network: one backward pass gives the derivative
#    at all 256 points at once, as each output depends only on its own input.
x_query = x_train.detach().requires_grad_()
(dnet_dx,) = tg.grad(net(x_query).sum(), x_query)
err = np.abs(dnet_dx.numpy() - np.cos(x_train.numpy())).max()
print(f"max |d net/dx - cos x| over the interval: {err:.3f}")

os.makedirs(args.out, exist_ok=True)
xs = x_train.numpy()[:, 0]
fig, ax = plt.subplots(figsize=(7, 4))
ax.plot(xs, np.sin(xs), "k", lw=3, alpha=0.3, label="sin x (data)")
ax.plot(xs, net(x_train).numpy()[:, 0], "C0", label="network")
ax.plot(xs, np.cos(xs), "k--", lw=3, alpha=0.3, label="cos x")
ax.plot(xs, dnet_dx.numpy()[:, 0], "C1", label="d network / dx (autograd)")
ax.set_xlabel("x")
ax.legend(loc="lower right")
ax.set_title("A network fitted to sin x, and its derivative from tinygen.grad")
fig.tight_layout()
path = os.path.join(args.out, "fit.png")
fig.savefig(path, dpi=100)
print(f"wrote {path}")
