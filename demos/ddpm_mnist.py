"""Train a DDPM (Ho, Jain & Abbeel 2020) on MNIST, top to bottom (what `tinygen train
ddpm` does, with the pieces in plain sight), then sample it with DDIM.

Run:  TINYGEN_DATA=path/to/data python demos/ddpm_mnist.py [--epochs 5]
          [--train-images 60000] [--test-images 100] [--fid]   (fewer images: a quick trial)
It prints the held-out L_simple, the variational bound on the NLL of --test-images test
digits in bits/dim (T network evaluations per digit), and with --fid the LeNet FID of
1,000 DDIM-50 samples (it needs the cached LeNet classifier, trained once if missing).
It writes forward.png (test digits diffused to noise), samples.png (64 DDIM-50 samples)
and reverse.png (Algorithm 2 from noise to digits, one row per t).
"""
import argparse
import math
import os

import numpy as np
from tqdm import tqdm

import tinygen as tg
from tinygen import data, optim
from tinygen.models.diffusion import GaussianDiffusion, NoiseSchedule, UNet
from tinygen.models.diffusion.ddim import ddim_sample
from tinygen.plot import save_image_grid

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--epochs", type=int, default=5)
parser.add_argument("--timesteps", type=int, default=1000, help="T")
parser.add_argument("--channels", type=int, default=32, help="U-Net width at 28x28")
parser.add_argument("--train-images", type=int, default=60000, help="fewer for a quick trial")
parser.add_argument("--test-images", type=int, default=100,
                    help="test digits in the held-out loss and the variational bound")
parser.add_argument("--fid", action="store_true",
                    help="fid_lenet of 1,000 samples (trains the cached LeNet once if missing)")
parser.add_argument("--device", default="cpu")
parser.add_argument("--out", default=os.path.join("runs", "ddpm_demo"))
args = parser.parse_args()
tg.manual_seed(0)

# The data: 8-bit grey levels scaled to [-1, 1], the range the forward process assumes
# (alpha_bar_T x_0 is then negligible next to the unit noise).
images, _ = data.load_dataset("mnist", "train")
test_images, _ = data.load_dataset("mnist", "test")
x_train = data.scale(images[:args.train_images], to=(-1, 1)).reshape(-1, 1, 28, 28)
x_test = data.scale(test_images[:args.test_images], to=(-1, 1)).reshape(-1, 1, 28, 28)
loader = data.DataLoader(x_train, batch_size=64, shuffle=True, seed=0, device=args.device)

# The model: the linear schedule of Ho et al. (T = 1000, 1e-4 to 0.02), a small U-Net for
# eps_theta, Adam(2e-4), and an EMA of the weights for sampling.
diffusion = GaussianDiffusion(NoiseSchedule.linear(args.timesteps))
model = UNet(args.channels).to(args.device)
opt = optim.Adam(model.parameters(), lr=2e-4)
ema = optim.EMA(model.parameters(), decay=0.999)
T = diffusion.T

# Algorithm 1, batch after batch: t ~ U{1..T}, eps ~ N(0, I), one step on L_simple.
for epoch in range(args.epochs):
    progress = tqdm(loader, desc=f"epoch {epoch + 1}/{args.epochs}")
    for x_0 in progress:
        loss = diffusion.loss_simple(model, x_0)
        opt.zero_grad()
        loss.backward()
        opt.step()
        ema.update()
        progress.set_postfix(loss=f"{loss.item():.4f}")

# Evaluation with the EMA weights. The held-out L_simple at t spread over 1..T with fixed
# noise; then the variational bound L = L_T + sum L_{t-1} + L_0 on the test digits'
# 256 grey levels (a true upper bound on their NLL), in bits per pixel.
model.eval()
with ema.average_parameters(), tg.no_grad():
    x = tg.tensor(x_test, device=args.device)
    t = np.linspace(1, T, len(x_test)).round().astype(np.int64)
    eps = tg.tensor(np.random.default_rng(0).standard_normal(x.shape).astype(np.float32),
                    device=args.device)
    print(f"held-out L_simple {diffusion.loss_simple(model, x, t, eps).item():.4f} "
          f"on {len(x_test)} test digits")
    eight_bit = tg.tensor((np.round((x_test + 1) * 127.5) / 127.5 - 1).astype(np.float32),
                          device=args.device)
    bound = diffusion.variational_bound(
        model, eight_bit, progress=lambda it: tqdm(it, desc="variational bound", total=T))
    nll = bound["total"].mean()
    print(f"variational bound on the NLL: {nll:.1f} nats = "
          f"{nll / (784 * math.log(2)):.3f} bits/dim on {len(x_test)} test digits "
          f"(L_T {bound['prior'].mean():.3f}, L_0 {bound['decoder'].mean():.1f} nats)")

    # DDIM with 50 steps: deterministic, 1/20 of the network evaluations of Algorithm 2.
    def samples(n):
        x = ddim_sample(diffusion, model, (n, 1, 28, 28), min(50, T), device=args.device,
                        clip_x0=(-1.0, 1.0))
        return np.clip((x.numpy() + 1) / 2, 0, 1)
    save_image_grid(samples(64), os.path.join(args.out, "samples.png"), nrow=8)
    if args.fid:
        from tinygen.experiments.classifier import fid
        many = np.concatenate([samples(250) for _ in tqdm(range(4), desc="samples for FID")])
        print(f"fid_lenet {fid(many, 'mnist', device=args.device):.2f} on 1,000 DDIM-50 samples")

    # Pictures of the two processes, one row per t.
    moments = [T, 4 * T // 5, 3 * T // 5, 2 * T // 5, T // 4, T // 10, T // 20, 0]
    k = min(8, len(x_test))
    rows = [x_test[:k] if t == 0 else diffusion.q_sample(
        x[:k], t, tg.randn(k, 1, 28, 28, device=args.device)).numpy() for t in moments[::-1]]
    save_image_grid(np.clip((np.concatenate(rows) + 1) / 2, 0, 1),
                    os.path.join(args.out, "forward.png"), nrow=k,
                    labels=[f"t={t}" for t in moments[::-1]])
    _, trajectory = diffusion.sample(model, (8, 1, 28, 28), args.device, clip_x0=(-1.0, 1.0),
                                     trajectory_at=set(moments),
                                     progress=lambda it: tqdm(it, desc="Algorithm 2", total=T))
    save_image_grid(np.clip((np.concatenate([trajectory[t] for t in moments]) + 1) / 2, 0, 1),
                    os.path.join(args.out, "reverse.png"), nrow=8,
                    labels=[f"t={t}" for t in moments])
print(f"wrote forward.png, samples.png and reverse.png to {args.out}")
