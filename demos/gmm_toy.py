"""Fit a Gaussian mixture to a 2-D toy set by EM, top to bottom, and the same
log-likelihood by gradient ascent beside it.

The model (Bishop 2006, "Pattern Recognition and Machine Learning", section 9.2):

    p(x) = sum_k pi_k N(x | mu_k, Sigma_k),
    log p(X) = sum_n logsumexp_k [log pi_k + log N(x_n | mu_k, Sigma_k)]

EM (Dempster, Laird & Rubin 1977) alternates two closed-form steps:

    E-step   gamma_nk = pi_k N(x_n | mu_k, Sigma_k) / sum_j pi_j N(x_n | mu_j, Sigma_j) (9.23)
             how much component k is responsible for point n (Bayes' rule)
    M-step   N_k = sum_n gamma_nk,  mu_k = sum_n gamma_nk x_n / N_k,          (9.24)-(9.27)
             Sigma_k = sum_n gamma_nk (x_n - mu_k)(x_n - mu_k)^T / N_k,  pi_k = N_k / N
             a Gaussian fitted to each component's share of the points

and the log-likelihood (9.28) never goes down. Gradient ascent climbs the same
log-likelihood with Adam, through tinygen's autograd, from the same start.

Run:  python demos/gmm_toy.py [--dataset two_moons] [--components 8] [--covariance full|diag]
          [--init kmeans++|random] [--iterations 300] [--gradient-steps 500]
          [--out runs/gmm_toy_demo] [--quick]
--quick is a short trial (a few seconds: fewer points, EM iterations and Adam steps).
It needs no data files; any toy set of ``tinygen.data.TOY_DATASETS`` will do. On
two_moons the 8 Gaussians tile two curved moons and share the points where they meet:
EM climbs for a hundred iterations or so, slowly at the end. On 8gaussians, from k-means++
seeds, it is done in a handful; with --init random, some seeds leave two components in
one mode and one component across two (a local maximum, which neither EM nor gradient
ascent leaves). It prints
EM's log-likelihood as it climbs, then gradient ascent's, then both models' test NLL in
nats beside the data's entropy (the floor: no model's expected NLL is lower), and writes

    density.png            the EM mixture's p(x), test points on top in red
    responsibilities.png   test points coloured by their responsibilities gamma_nk (left:
                           the component with the largest; right: the components'
                           colours mixed in the proportions gamma_nk), each component's
                           1- and 2-standard-deviation ellipse, its mean and its weight
    em_vs_gradient.png     the mean log-likelihood of both against iterations and against
                           CPU seconds
    samples.png            samples of the EM mixture over the test points
"""
import argparse
import os
import time

import numpy as np

from tinygen import data
from tinygen.experiments.classic.gmm import plot_em_vs_gradient, plot_responsibilities
from tinygen.models.classic.gmm import GaussianMixture, fit_gradient
from tinygen.plot import plot_2d_density, plot_2d_samples

LIM = (-4.5, 4.5)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", choices=data.TOY_DATASETS, default="two_moons")
    parser.add_argument("--components", type=int, default=8, help="K")
    parser.add_argument("--covariance", choices=["full", "diag"], default="full")
    parser.add_argument("--init", choices=["kmeans++", "random"], default="kmeans++",
                        help="how the K seeds are chosen")
    parser.add_argument("--iterations", type=int, default=300,
                        help="most EM iterations (it stops when a step gains < 1e-7 nats)")
    parser.add_argument("--gradient-steps", type=int, default=500,
                        help="full-batch Adam steps of gradient ascent")
    parser.add_argument("--lr", type=float, default=0.05, help="Adam's learning rate")
    parser.add_argument("--train-n", type=int, default=20000, help="training points")
    parser.add_argument("--eval-n", type=int, default=10000, help="test points")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=os.path.join("runs", "gmm_toy_demo"))
    parser.add_argument("--quick", action="store_true",
                        help="a short trial: 2,000 points, 30 EM iterations, 100 Adam steps")
    args = parser.parse_args(argv)
    if args.quick:
        args.train_n, args.eval_n = 2000, 1000
        args.iterations, args.gradient_steps = 30, 100

    # The data: training and test points of a toy set (different seeds).
    x_train = data.toy(args.dataset, args.train_n, seed=args.seed).astype(np.float64)
    x_test = data.toy(args.dataset, args.eval_n, seed=args.seed + 1).astype(np.float64)

    # The start, shared by EM and gradient ascent: K seeds ((greedy) k-means++ or random
    # points), every point given to its nearest seed, and each component the Gaussian of
    # its cluster.
    start = GaussianMixture(args.components, 2, args.covariance)
    start.initialize(x_train, args.init, seed=args.seed)
    print(f"{args.dataset}: {len(x_train)} training points, K = {args.components} "
          f"{args.covariance}-covariance components; start: "
          f"{start.log_likelihood(x_train):.4f} nats per point")

    # EM, written out. Each iteration: the E-step computes the responsibilities gamma
    # (N, K) and, on the way, log p(x_n) of the current parameters; the M-step refits
    # pi, mu, Sigma to them. em_ll[t] is the mean log-likelihood after t iterations.
    # Time is measured as this process's CPU time (time.process_time): on one thread it
    # is the wall-clock time of an idle machine, and other programs do not inflate it.
    gmm = start.copy()
    em_ll, em_seconds = [], []
    began = time.process_time()
    for t in range(args.iterations):
        gamma, log_px = gmm.e_step(x_train)          # E-step, eq. (9.23); log p(x_n), (9.28)
        em_ll.append(log_px.mean())
        em_seconds.append(time.process_time() - began)
        if t % 10 == 0 or t < 5:
            print(f"  EM iteration {t:3d}: log-likelihood {em_ll[-1]:.6f} nats per point")
        if t > 0 and em_ll[-1] - em_ll[-2] < 1e-7:   # EM has converged (never negative)
            break
        gmm.m_step(x_train, gamma)                   # M-step, eqs. (9.24)-(9.27)
    else:
        em_ll.append(gmm.log_likelihood(x_train))
        em_seconds.append(time.process_time() - began)
    print(f"EM: {len(em_ll) - 1} iterations, {em_seconds[-1]:.2f} s of CPU, log-likelihood "
          f"{em_ll[-1]:.6f} nats per point")

    # Gradient ascent on the same log-likelihood: pi = softmax(a), Sigma_k^{-1} = U_k U_k^T
    # (U_k lower triangular, positive diagonal), Adam on -mean log p(x) over all points.
    def report(step, ll):
        if step % 100 == 0:
            print(f"  Adam step {step:4d}: log-likelihood {ll:.6f} nats per point")
    gradient = fit_gradient(x_train, start, steps=args.gradient_steps, lr=args.lr,
                            callback=report, clock=time.process_time)
    print(f"gradient ascent: {args.gradient_steps} steps, {gradient.seconds[-1]:.2f} s of CPU, "
          f"log-likelihood {gradient.log_likelihood[-1]:.6f} nats per point")

    # The test NLL of both, beside the data's entropy H = -E[log p_data(x)].
    for name, model in (("EM", gmm), ("gradient ascent", gradient.model)):
        log_p = model.log_prob(x_test)
        print(f"{name:>16}: test NLL {-log_p.mean():.4f} +- "
              f"{log_p.std(ddof=1) / np.sqrt(len(log_p)):.4f} nats per point")
    try:
        h = data.toy_entropy(args.dataset)
        print(f"{'the data':>16}: entropy {h.entropy:.4f} +- {h.standard_error:.4f} nats "
              f"(the floor)")
    except ValueError:
        print(f"(the entropy of {args.dataset} is not known)")

    # Pictures.
    os.makedirs(args.out, exist_ok=True)
    shown = x_test[:2000]
    plot_2d_density(gmm.log_prob, os.path.join(args.out, "density.png"), lim=LIM,
                    data=shown, as_tensor=False,
                    title=f"EM, K = {args.components}: p(x) (red: test points)")
    plot_responsibilities(gmm, shown, os.path.join(args.out, "responsibilities.png"), lim=LIM)
    plot_em_vs_gradient((np.array(em_ll), np.array(em_seconds)),
                        (gradient.log_likelihood, gradient.seconds),
                        os.path.join(args.out, "em_vs_gradient.png"),
                        time_label="CPU seconds",
                        title=f"{args.dataset}, {len(x_train)} points, K = "
                              f"{args.components} ({args.covariance}); the same start")
    samples, _ = gmm.sample(2000, np.random.default_rng(args.seed))
    plot_2d_samples(samples, data=shown, lim=LIM, path=os.path.join(args.out, "samples.png"),
                    title="samples of the EM mixture over the test points")
    print(f"wrote density.png, responsibilities.png, em_vs_gradient.png and samples.png "
          f"to {args.out}")


if __name__ == "__main__":
    main()
