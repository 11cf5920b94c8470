"""Train the LeNet-style classifier on MNIST, top to bottom (what
`tinygen train classifier --dataset mnist` does, with the pieces in plain sight).

Run:  TINYGEN_DATA=path/to/data python demos/classifier_mnist.py [--epochs 6] [--dataset mnist]
          [--train-images 60000] [--test-images 10000]   (fewer images: a quick trial)
It prints the test accuracy and writes two pictures: predictions.png, the first 64 test
digits in rows of 8, each row labelled with the 8 predicted classes and the misclassified
digits drawn in red; and mistakes.png, up to 32 misclassified test digits, each titled
"true -> predicted".
"""
import argparse
import os

import numpy as np
from tqdm import tqdm

import tinygen as tg
from tinygen import data, optim
from tinygen.experiments.classifier import images_to_input
from tinygen.models.classifier import LeNet
from tinygen.nn import functional as F
from tinygen.plot import new_figure, save_figure, save_image_grid

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--dataset", default="mnist", choices=data.DATASETS)
parser.add_argument("--epochs", type=int, default=6)
parser.add_argument("--batch-size", type=int, default=128)
parser.add_argument("--lr", type=float, default=1e-3)
parser.add_argument("--train-images", type=int, default=60000, help="fewer for a quick trial")
parser.add_argument("--test-images", type=int, default=10000, help="fewer for a quick trial")
parser.add_argument("--device", default="cpu")
parser.add_argument("--out", default=os.path.join("runs", "classifier_demo"))
args = parser.parse_args()
tg.manual_seed(0)

# The data: uint8 images (N, 28, 28) -> floats (N, 1, 28, 28) in [0, 1].
train_images, train_labels = data.load_dataset(args.dataset, "train")
test_images, test_labels = data.load_dataset(args.dataset, "test")
test_images, test_labels = test_images[:args.test_images], test_labels[:args.test_images]
x_test = images_to_input(test_images)
loader = data.DataLoader(images_to_input(train_images[:args.train_images]),
                         train_labels[:args.train_images],
                         batch_size=args.batch_size, shuffle=True, seed=0, device=args.device)

# The network and its optimizer.
net = LeNet().to(args.device)
opt = optim.Adam(net.parameters(), lr=args.lr)

# Training: minimise the cross-entropy -log softmax(f(x))[y] over mini-batches.
for epoch in range(args.epochs):
    net.train()
    progress = tqdm(loader, desc=f"epoch {epoch + 1}/{args.epochs}")
    for x, y in progress:
        loss = F.cross_entropy(net(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        progress.set_postfix(loss=f"{loss.item():.3f}")

# Evaluation on the test images, all 10,000 by default (dropout off, no graph).
net.eval()
with tg.no_grad():
    predictions = np.concatenate([net(tg.tensor(x_test[i:i + 1000], device=args.device))
                                  .numpy().argmax(1) for i in range(0, len(x_test), 1000)])
wrong = np.flatnonzero(predictions != test_labels)
print(f"test accuracy on {args.dataset}: {1 - len(wrong) / len(x_test):.2%} "
      f"({len(wrong)} of {len(x_test)} test images misclassified)")

# Picture 1: the first 64 test digits, white, the misclassified ones red (green and blue
# channels off); each row of 8 is labelled with its 8 predicted classes.
os.makedirs(args.out, exist_ok=True)
shown = np.repeat(x_test[:64], 3, axis=1)                     # grey -> RGB (N, 3, 28, 28)
shown[wrong[wrong < 64], 1:] = 0
rows = [" ".join(str(p) for p in predictions[i:i + 8]) for i in range(0, len(shown), 8)]
save_image_grid(shown, os.path.join(args.out, "predictions.png"), nrow=8, labels=rows)

# Picture 2: the first 32 misclassified test digits, each titled "true -> predicted".
first_wrong = wrong[:32]
grid_rows = max(1, -(-len(first_wrong) // 8))                 # ceil(n / 8), at least 1
fig = new_figure((8, 1.2 * grid_rows + 0.4), layout="constrained")
for k, i in enumerate(first_wrong):
    ax = fig.add_subplot(grid_rows, 8, k + 1)
    ax.imshow(x_test[i, 0], cmap="gray", vmin=0, vmax=1)
    ax.set_title(f"{test_labels[i]} -> {predictions[i]}", fontsize=10)
    ax.axis("off")
fig.suptitle(f"{len(first_wrong)} of the {len(wrong)} misclassified test digits "
             "(true -> predicted)")
save_figure(fig, os.path.join(args.out, "mistakes.png"))
print(f"wrote predictions.png (mistakes in red) and mistakes.png to {args.out}")
