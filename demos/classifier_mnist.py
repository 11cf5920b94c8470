"""Train the LeNet-style classifier on MNIST, top to bottom (what
`tinygen train classifier --dataset mnist` does, with the pieces in plain sight).

Run:  TINYGEN_DATA=path/to/data python demos/classifier_mnist.py [--epochs 6] [--dataset mnist]
It prints the test accuracy and writes predictions.png: test digits with the labels
the network gives them, mistakes marked.
"""
import argparse
import os

import numpy as np
from tqdm import tqdm

import tinygen as tg
from tinygen import data, optim
from tinygen.models.classifier import LeNet, images_to_input
from tinygen.nn import functional as F
from tinygen.plot import save_image_grid

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--dataset", default="mnist", choices=data.DATASETS)
parser.add_argument("--epochs", type=int, default=6)
parser.add_argument("--batch-size", type=int, default=128)
parser.add_argument("--lr", type=float, default=1e-3)
parser.add_argument("--device", default="cpu")
parser.add_argument("--out", default=os.path.join("runs", "classifier_demo"))
args = parser.parse_args()
tg.manual_seed(0)

# The data: uint8 images (N, 28, 28) -> floats (N, 1, 28, 28) in [0, 1].
train_images, train_labels = data.load_dataset(args.dataset, "train")
test_images, test_labels = data.load_dataset(args.dataset, "test")
loader = data.DataLoader(images_to_input(train_images), train_labels,
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

# Evaluation on the 10,000 test images (dropout off, no graph).
net.eval()
x_test = images_to_input(test_images)
with tg.no_grad():
    predictions = np.concatenate([net(tg.tensor(x_test[i:i + 1000], device=args.device))
                                  .numpy().argmax(1) for i in range(0, len(x_test), 1000)])
accuracy = (predictions == test_labels).mean()
print(f"test accuracy on {args.dataset}: {accuracy:.2%}")

# A picture: the first 64 test images, each row labelled with the predictions; the
# mistakes among them listed.
os.makedirs(args.out, exist_ok=True)
first = slice(0, 64)
rows = [" ".join(str(p) for p in predictions[i:i + 8]) for i in range(0, 64, 8)]
path = save_image_grid(x_test[first], os.path.join(args.out, "predictions.png"), nrow=8,
                       labels=rows)
wrong = np.flatnonzero(predictions[first] != test_labels[first])
print(f"wrote {path}; mistakes among them at positions {wrong.tolist()}")
