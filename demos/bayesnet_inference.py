"""Bayesian networks: one question answered four ways -- enumeration, variable
elimination, rejection sampling and likelihood weighting -- on the sprinkler network and
on the Asia network, with the answers, their errors and their times side by side.

A Bayesian network is a DAG with a table p(x_i | pa(x_i)) at each variable, and its joint
is the product of the tables, p(x) = prod_i p(x_i | pa(x_i)). A question P(Q | e) is
the joint summed over the hidden variables and normalised:

    enumeration            lists every assignment of every variable: exact, exponential
    variable elimination   pushes each sum inside the product (factors: reduce by the
                           evidence, multiply, sum out), in a min-degree order: exact
    rejection sampling     ancestral samples, those that disagree with e thrown away:
                           only about N p(e) of N samples count
    likelihood weighting   the evidence clamped, each sample weighted by p(e | its
                           parents): all N samples count, worth N_eff of exact ones

(tinygen/models/classic/bayesnet.py has the equations; Russell & Norvig, "AIMA", chapter
14, and Koller & Friedman 2009, chapters 3, 9 and 12, the background.)

Run:  python demos/bayesnet_inference.py [--samples 100000] [--seed 0]
          [--out runs/bayesnet_demo]
      python demos/bayesnet_inference.py --quick      (2,000 samples: about 3 seconds)
Nothing to download and nothing to train: the networks are the textbooks' tables. At the
defaults it takes about 6 seconds (5.5 s timed here, on 2 shared cores). It
prints, for each network, the ancestral samples' frequencies against the exact marginals,
then a table per question (the estimate, its error against enumeration, the time, and how
many samples counted), and writes

    sprinkler.png   the sprinkler network drawn with P(x = true) in every box: the prior
                    marginals (left), and the posterior given wet grass (right, a black
                    tick on each bar where the prior stood)
    asia.png        the Asia network the same way: prior, and posterior given dyspnoea
"""
import argparse
import os
import time

import numpy as np

from tinygen.models.classic.bayesnet import (asia_network, enumerate_query,
                                             likelihood_weighting, marginals,
                                             rejection_sampling, sprinkler_network,
                                             variable_elimination)
from tinygen.plot import new_figure, save_figure

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--samples", type=int, default=100_000,
                    help="N of the ancestral samples, rejection sampling and likelihood "
                         "weighting")
parser.add_argument("--quick", action="store_true", help="2,000 samples (a quick trial)")
parser.add_argument("--seed", type=int, default=0)
parser.add_argument("--out", default=os.path.join("runs", "bayesnet_demo"))

# Where the boxes go (axes coordinates in [0, 1]), chosen by hand: parents above children.
SPRINKLER_LAYOUT = {"cloudy": (0.5, 0.86), "sprinkler": (0.2, 0.5), "rain": (0.8, 0.5),
                    "wet_grass": (0.5, 0.14)}
ASIA_LAYOUT = {"asia": (0.14, 0.88), "smoke": (0.7, 0.88), "tub": (0.14, 0.63),
               "lung": (0.47, 0.63), "bronc": (0.86, 0.5), "either": (0.3, 0.38),
               "xray": (0.14, 0.12), "dysp": (0.62, 0.12)}
ASIA_LABELS = {"asia": "visit to Asia", "smoke": "smoker", "tub": "tuberculosis",
               "lung": "lung cancer", "bronc": "bronchitis", "either": "tub or lung",
               "xray": "positive X-ray", "dysp": "dyspnoea"}


def p_true(net, name, probs):
    """P(name = "true") from a marginal (the last state when there is no "true")."""
    states = net[name].states
    return float(probs[states.index("true") if "true" in states else -1])


def draw_network(ax, net, layout, probs, evidence=None, prior=None, labels=None, title="",
                 box=(0.3, 0.16)):
    """The network on ``ax``: a box per variable at ``layout[name]`` holding its name, a bar
    filled to P(x = true) and the number (with the prior's beside it, and a black tick on
    the bar where the prior stood, when ``prior`` is given), an arrow per edge; observed
    variables shaded and marked."""
    from matplotlib.patches import FancyArrowPatch, FancyBboxPatch, Rectangle
    evidence = evidence or {}
    labels = labels or {}
    w, h = box
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_axis_off()
    ax.set_title(title, fontsize=11)
    patches = {}
    for name in net.names:
        x, y = layout[name]
        observed = name in evidence
        patch = FancyBboxPatch((x - w / 2, y - h / 2), w, h,
                               boxstyle="round,pad=0.005,rounding_size=0.015",
                               facecolor="#fff2b3" if observed else "white",
                               edgecolor="black", linewidth=2.0 if observed else 1.0)
        ax.add_patch(patch)
        patches[name] = patch
        title_text = name + (f"\n({labels[name]})" if name in labels else "")
        ax.text(x, y + h * 0.2, title_text, ha="center", va="center", fontsize=8.5,
                fontweight="bold", linespacing=1.1)
        p = p_true(net, name, probs[name])
        bar_x, bar_y, bar_w, bar_h = x - w * 0.42, y - h * 0.2, w * 0.84, h * 0.14
        ax.add_patch(Rectangle((bar_x, bar_y), bar_w, bar_h, facecolor="#e6e6e6",
                               edgecolor="none"))
        ax.add_patch(Rectangle((bar_x, bar_y), bar_w * p, bar_h,
                               facecolor="#e69f00" if observed else "#0072b2",
                               edgecolor="none"))
        if prior is not None and not observed:    # where the bar stood before the evidence
            q = p_true(net, name, prior[name])
            ax.plot([bar_x + bar_w * q] * 2, [bar_y - bar_h * 0.35, bar_y + bar_h * 1.35],
                    color="black", linewidth=1.5)
        if observed:
            text = f"observed: {net[name].states[net.value_index(name, evidence[name])]}"
        else:
            text = f"P(true) = {p:.3f}"
            if prior is not None:
                text += f"  (prior {p_true(net, name, prior[name]):.3f})"
        ax.text(x, y - h * 0.38, text, ha="center", va="center", fontsize=7.5)
    for child, node in zip(net.names, net.nodes):
        for parent in node.parents:
            ax.add_patch(FancyArrowPatch(layout[parent], layout[child],
                                         patchA=patches[parent], patchB=patches[child],
                                         arrowstyle="-|>", mutation_scale=14, color="0.25",
                                         shrinkA=1, shrinkB=1, linewidth=1.2))


def save_network_picture(net, layout, evidence, path, labels=None, box=(0.3, 0.16),
                         figsize=(11, 5)):
    """Two panels: the prior marginals, and the posterior marginals given ``evidence``
    (both by variable elimination)."""
    prior, posterior = marginals(net), marginals(net, evidence)
    shown = ", ".join(f"{k} = {v}" for k, v in evidence.items())
    fig = new_figure(figsize)
    draw_network(fig.add_subplot(1, 2, 1), net, layout, prior, labels=labels, box=box,
                 title="prior marginals P(x = true)")
    draw_network(fig.add_subplot(1, 2, 2), net, layout, posterior, evidence, prior=prior,
                 labels=labels, box=box,
                 title=f"posterior marginals given {shown} (black tick: the prior)")
    fig.tight_layout()
    return save_figure(fig, path)


def compare_samples_with_marginals(net, num_samples, seed):
    """Ancestral sampling: each variable's frequency of true against the exact P(true),
    with the standard error sqrt(p (1 - p) / N) the gap should be of the order of."""
    t = time.perf_counter()
    x = net.sample(num_samples, rng=seed)
    seconds = time.perf_counter() - t
    exact = marginals(net)
    print(f"  {num_samples:,} ancestral samples in {seconds * 1e3:.1f} ms")
    print(f"  {'variable':<12}{'exact P(true)':>14}{'sampled':>10}{'std. error':>12}")
    for i, name in enumerate(net.names):
        p = p_true(net, name, exact[name])
        print(f"  {name:<12}{p:>14.5f}{x[:, i].mean():>10.5f}"
              f"{np.sqrt(p * (1 - p) / num_samples):>12.5f}")


def answer_four_ways(net, query, evidence, num_samples, seed):
    """P(query = true | evidence) by the four methods: a table of the estimate, its error
    against enumeration, the time (the best of three runs, all with the same seed: the
    first call of anything pays for warming up), and the samples that counted."""
    shown = ", ".join(f"{k} = {v}" for k, v in evidence.items())
    print(f"\n  P({query} = true" + (f" | {shown})" if shown else ")"))
    methods = [
        ("enumeration", lambda: enumerate_query(net, query, evidence)),
        ("variable elimination", lambda: variable_elimination(net, query, evidence)),
        ("rejection sampling",
         lambda: rejection_sampling(net, query, evidence, num_samples, rng=seed)),
        ("likelihood weighting",
         lambda: likelihood_weighting(net, query, evidence, num_samples, rng=seed)),
    ]
    print(f"  {'method':<22}{'estimate':>10}{'|error|':>10}{'time':>11}   samples that count")
    exact = None
    for name, run in methods:
        try:
            result = run()
        except ValueError as e:          # rejection sampling with no sample accepted
            print(f"  {name:<22}{'-':>10}{'-':>10}{'':>11}   none: {str(e).split(':')[1]}")
            continue
        ms = []
        for _ in range(3):
            t = time.perf_counter()
            run()
            ms.append((time.perf_counter() - t) * 1e3)
        ms = min(ms)
        if hasattr(result, "probs"):
            p, counted = result.probs, result.effective_samples
            counted = (f"{counted:,} of {num_samples:,} accepted" if name.startswith("rej")
                       else f"N_eff = {counted:,.0f} of {num_samples:,}")
        else:
            p, counted = result, "(exact)"
        p = p_true(net, query, p)
        exact = p if exact is None else exact
        print(f"  {name:<22}{p:>10.5f}{abs(p - exact):>10.1e}{ms:>8.2f} ms   {counted}")


def main(argv=None):
    args = parser.parse_args(argv)
    num_samples = 2000 if args.quick else args.samples
    os.makedirs(args.out, exist_ok=True)

    # The sprinkler network (Russell & Norvig, figure 14.12; Murphy's BNT tutorial):
    # cloudy -> sprinkler, cloudy -> rain, both -> wet grass. Wet grass makes both causes
    # more likely; once the sprinkler is known to be on, rain is "explained away".
    sprinkler = sprinkler_network()
    print(f"The sprinkler network: {sprinkler}")
    compare_samples_with_marginals(sprinkler, num_samples, args.seed)
    for query, evidence in [("wet_grass", {}),
                            ("sprinkler", {"wet_grass": "true"}),
                            ("rain", {"wet_grass": "true"}),
                            ("rain", {"wet_grass": "true", "sprinkler": "true"})]:
        answer_four_ways(sprinkler, query, evidence, num_samples, args.seed)

    # The Asia network (Lauritzen & Spiegelhalter 1988): a patient with dyspnoea; which
    # disease? The last question's evidence has probability 0.00046: rejection sampling
    # keeps a handful of samples (or none), likelihood weighting keeps them all, weighted.
    asia = asia_network()
    print(f"\nThe Asia network: {asia}")
    compare_samples_with_marginals(asia, num_samples, args.seed)
    for query, evidence in [("dysp", {}),
                            ("lung", {"dysp": "true"}),
                            ("bronc", {"dysp": "true"}),
                            ("lung", {"dysp": "true", "smoke": "true", "xray": "true"}),
                            ("tub", {"asia": "true", "xray": "true", "dysp": "true"})]:
        answer_four_ways(asia, query, evidence, num_samples, args.seed)

    save_network_picture(sprinkler, SPRINKLER_LAYOUT, {"wet_grass": "true"},
                         os.path.join(args.out, "sprinkler.png"))
    save_network_picture(asia, ASIA_LAYOUT, {"dysp": "true"},
                         os.path.join(args.out, "asia.png"), labels=ASIA_LABELS,
                         box=(0.25, 0.16), figsize=(13, 6))
    print(f"\nwrote sprinkler.png and asia.png to {args.out}")


if __name__ == "__main__":
    main()
