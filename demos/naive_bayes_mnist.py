"""Naive Bayes against logistic regression on binarised MNIST, top to bottom (what
`tinygen train naive-bayes` does, with the pieces in plain sight): the comparison of Ng &
Jordan (2002), with test images that lose some of their pixels.

Naive Bayes is generative: it models p(x, y) = p(y) prod_d p(x_d | y), each pixel a coin
whose bias depends on the class, fitted by counting. Bayes' rule turns it into a
classifier, and a missing pixel simply drops out (its factor sums to 1 over its two
values). Logistic regression is discriminative: it models p(y | x) = softmax(W x + b)
alone, fitted by gradient steps on the cross-entropy, and has to be told what a missing
pixel is (here: 0, "no ink"; --imputation mean gives it the pixel's training mean, which
biases every image towards the classes the average digit looks like). Both are linear
classifiers; they differ in what they maximise, p(x, y) or p(y | x).

Run:  TINYGEN_DATA=path/to/data python demos/naive_bayes_mnist.py [--epochs 5]
          [--fractions 0.01,0.1,1] [--missing 0,0.25,0.5] [--out runs/naive_bayes_demo]
      a quick trial: --quick (6,000 training and 1,000 test images, one epoch; seconds)
At the defaults it takes about 15 seconds of one core (timed: 14 s of CPU, 47 s of wall
clock with the cores shared with other work). It prints the table of test accuracies
(rows: model and training images; columns: fraction of test pixels missing), measured at
the defaults:

    model                  train      0%     25%     50%
    naive Bayes              600  0.8064  0.8022  0.7881
    naive Bayes             6000  0.8332  0.8317  0.8205
    naive Bayes            60000  0.8427  0.8388  0.8315
    logistic regression      600  0.8397  0.8073  0.7327
    logistic regression     6000  0.9016  0.8657  0.8007
    logistic regression    60000  0.9187  0.8945  0.8433

Logistic regression is the better classifier of complete images at every size here: Ng &
Jordan's regime where naive Bayes leads does not show on binarised MNIST (`tinygen train
naive-bayes --fractions 0.0005,0.001,0.002,0.005,0.01 --epochs 500`: 30, 60, 120, 300
images give naive Bayes 27.5, 57.2, 72.6, 77.9%, logistic regression 43.8, 68.8, 76.0,
82.0%). With half the pixels missing, naive Bayes, which sums them out, leads up to
6,000 training images. The recipe gives the same table up to the shuffling of the
batches. It writes to --out

    accuracy_curves.png  the table as curves against the training set's size (log x)
    class_means.png      theta_k = p(x_d = 1 | y = k) of each class, a row per fraction
    samples.png          10 samples x ~ p(x | y = k) of each class: naive Bayes generates
"""
import argparse
import os
import time

import numpy as np
from tqdm import tqdm

import tinygen as tg
from tinygen import data, optim
from tinygen.experiments.classic.naive_bayes import percent, save_accuracy_curves
from tinygen.models.classic.naive_bayes import (BernoulliNaiveBayes, LogisticRegression,
                                                missing_at_random)
from tinygen.plot import save_image_grid


def numbers(text):
    return [float(v) for v in text.split(",")]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fractions", type=numbers, default=[0.01, 0.1, 1.0],
                        help="training fractions, comma-separated (nested subsets)")
    parser.add_argument("--missing", type=numbers, default=[0.0, 0.25, 0.5],
                        help="fractions of test pixels missing, comma-separated")
    parser.add_argument("--epochs", type=float, default=None,
                        help="passes over the largest subset (default 5; --quick 1)")
    parser.add_argument("--batch-size", type=int, default=100)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--alpha", type=float, default=1.0,
                        help="naive Bayes's pseudo-count (1: Laplace)")
    parser.add_argument("--prior-precision", type=float, default=6.0,
                        help="logistic regression's L2 penalty is this / n")
    parser.add_argument("--imputation", choices=("zero", "mean"), default="zero",
                        help="what logistic regression reads for a missing pixel")
    parser.add_argument("--train-images", type=int, default=None,
                        help="the largest subset (default 60000; --quick 6000)")
    parser.add_argument("--test-images", type=int, default=None,
                        help="default 10000; --quick 1000")
    parser.add_argument("--quick", action="store_true", help="a short trial")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--out", default=os.path.join("runs", "naive_bayes_demo"))
    args = parser.parse_args(argv)
    quick = {"epochs": 1, "train_images": 6000, "test_images": 1000}
    full = {"epochs": 5, "train_images": 60000, "test_images": 10000}
    for key in quick:   # what was given wins over both
        if getattr(args, key) is None:
            setattr(args, key, (quick if args.quick else full)[key])
    tg.manual_seed(args.seed)
    started = time.perf_counter()

    # The data: grey levels in [0, 1] binarised by a threshold, x_d = 1 above 0.5, as
    # vectors of 784. The training subsets are nested: the first n of one permutation.
    train_images, train_labels = data.load_dataset("mnist", "train")
    test_images, y_test = data.load_dataset("mnist", "test")
    x_all = (data.scale(train_images).reshape(-1, 784) > 0.5).astype(np.float32)
    x_test = (data.scale(test_images[:args.test_images]).reshape(-1, 784) > 0.5)
    x_test, y_test = x_test.astype(np.float32), y_test[:args.test_images]
    order = tg.random.generator(args.seed).permutation(len(x_all))[:args.train_images]
    sizes = {f: max(1, round(f * len(order))) for f in sorted(args.fractions)}

    # Missing pixels: each test image loses a random round(q 784) of its pixels (the same
    # masks for both models; one seed, so the 50% mask contains the 25% one).
    observed = {q: missing_at_random(len(x_test), 784, q, tg.random.generator(1234))
                for q in sorted(args.missing)}

    steps = int(round(args.epochs * -(-len(order) // args.batch_size)))
    table = {"naive_bayes": {}, "logistic_regression": {}}
    means = []
    for f, n in sizes.items():
        x, y = x_all[order[:n]], train_labels[order[:n]]

        # Naive Bayes: counting. pi_k = (N_k + alpha) / (N + 10 alpha) and theta_kd =
        # (N_kd + alpha) / (N_k + 2 alpha), with N_kd the images of class k whose pixel d
        # is on: one pass over the data, no iterations.
        nb = BernoulliNaiveBayes(784, 10, alpha=args.alpha).fit(x, y)
        means.append(nb.theta.numpy())

        # Logistic regression: Adam on the mean cross-entropy -log softmax(W x + b)_y,
        # with an L2 penalty (prior_precision / n) ||W||^2 / 2 on the weights (a Gaussian
        # prior, the same for every n, as naive Bayes's alpha is). Every subset gets the
        # same number of steps; a small one is cycled through many times.
        lr = LogisticRegression(784, 10).to(args.device)
        if args.imputation == "mean":
            lr.set_fill(x)   # a missing pixel reads as its training mean (else as 0)
        opt = optim.Adam([{"params": [lr.linear.weight],
                           "weight_decay": args.prior_precision / n},
                          {"params": [lr.linear.bias]}], lr=args.lr)
        loader = data.DataLoader(x, y, batch_size=args.batch_size, shuffle=True,
                                 seed=args.seed, device=args.device)
        progress = tqdm(total=steps, desc=f"logistic regression, {n} images")
        while progress.n < steps:
            for xb, yb in loader:
                loss = lr.loss(xb, yb)
                opt.zero_grad()
                loss.backward()
                opt.step()
                progress.update(1)
                progress.set_postfix(loss=f"{loss.item():.3f}", refresh=False)
                if progress.n >= steps:
                    break
        progress.close()

        # The test: naive Bayes sums the missing pixels out, logistic regression reads
        # the filled-in image.
        for name, model in (("naive_bayes", nb), ("logistic_regression", lr)):
            table[name][percent(f)] = {percent(q): float((model.predict(x_test, m) ==
                                                          y_test).mean())
                                       for q, m in observed.items()}

    print(f"\n{'model':<20} {'train':>7}" + "".join(f"{percent(q):>8}" for q in observed))
    for name, label in (("naive_bayes", "naive Bayes"),
                        ("logistic_regression", "logistic regression")):
        for f, n in sizes.items():
            row = table[name][percent(f)]
            print(f"{label:<20} {n:>7}"
                  + "".join(f"{row[percent(q)]:>8.4f}" for q in observed))
    print(f"({len(x_test)} test images; {time.perf_counter() - started:.0f} s)")

    # The pictures: the curves, the class means theta_k, and samples of the last naive
    # Bayes: y chosen, then every pixel x_d ~ Bernoulli(theta_yd) on its own.
    os.makedirs(args.out, exist_ok=True)
    save_accuracy_curves(table, sizes, os.path.join(args.out, "accuracy_curves.png"),
                         title="MNIST: naive Bayes vs logistic regression")
    save_image_grid(np.concatenate(means).reshape(-1, 1, 28, 28),
                    os.path.join(args.out, "class_means.png"), nrow=10,
                    labels=[percent(f) for f in sizes])
    samples, _ = nb.sample(y=np.repeat(np.arange(10), 10),
                           generator=tg.random.generator(args.seed))
    save_image_grid(samples.reshape(-1, 1, 28, 28), os.path.join(args.out, "samples.png"),
                    nrow=10, labels=[str(k) for k in range(10)])
    print(f"wrote accuracy_curves.png, class_means.png and samples.png to {args.out}")
    return table


if __name__ == "__main__":
    main()
