"""Out-of-distribution detection by a model's score of each image, the same for every
family that has one: a flow's -log p(x), an RBM's free energy F(v) (-log p(v) - log Z),
an energy-based model's E(x) (for a model sampled at temperature 1, -log p(x) - log Z;
trained with the decoupled noise of EBM practice, E is at best T (-log p) + const with
an unknown temperature T, see models/ebm/langevin.py).

``tinygen eval RUN --ood DATASET`` scores the test images of the run's own dataset (in
distribution) and of DATASET (out of distribution, OOD) and reports, for three scores,
the AUROC: the probability that an OOD image scores higher than an in-distribution one
(1 separates them, 0.5 is chance, below 0.5 the score ranks them the wrong way round):

    auroc             the score s(x) itself: low likelihood (high energy) flags an
                      anomaly (the notes' idea)
    auroc_typicality  | s(x) - H |, H the mean score of training images: far from the
                      typical set on either side (Nalisnick et al. 2019, "Detecting
                      out-of-distribution inputs to deep generative models using
                      typicality", with one input at a time)
    auroc_complexity  s(x) / ln 2 - L(x), L(x) the bits of x compressed by zlib: the
                      likelihood corrected for the input's complexity (Serra et al.
                      2020, eq. 2), the published remedy for simple OOD inputs that a
                      model finds more likely than its own data

A score that is -log p(x) up to a constant leaves all three AUROCs unchanged (the
constant shifts every image's score and H alike). The first two are unchanged by any
increasing affine map of the score, too; the third is not: it adds nats to bits of
zlib, so it needs a score in nats of a normalised-up-to-a-constant density, and is
left out (``complexity=False``) for an energy of unknown temperature.
"""
from __future__ import annotations

import math

import numpy as np

from ..metrics import auroc, compression_bits


def ood_metrics(score_in, score_out, score_train, images_in, images_out, dataset,
                score_name="-log p(x)", complexity: bool = True) -> dict:
    """The three AUROCs of the module docstring, and the mean scores.

    Args:
        score_in, score_out, score_train: the scores in nats (n,), of the run's test
            images, of the OOD test images and of training images (for H).
        images_in, images_out: those test images (n, 1, 28, 28) in [0, 1], for their
            compressed size L(x).
        dataset: the OOD dataset's name, recorded in the result.
        score_name: what the score is, recorded in the result.
        complexity: compute auroc_complexity (the score must be in nats of a density).

    Returns {"dataset", "score", "auroc", "auroc_typicality", "auroc_complexity" (with
    complexity), "score_in", "score_out", "score_train"} (the last three mean nats).
    """
    s_in, s_out = np.asarray(score_in, np.float64), np.asarray(score_out, np.float64)
    h = float(np.mean(score_train))
    metrics = {"dataset": dataset, "score": score_name,
               "auroc": float(auroc(s_in, s_out)),
               "auroc_typicality": float(auroc(np.abs(s_in - h), np.abs(s_out - h)))}
    if complexity:
        bits_in = s_in / math.log(2) - compression_bits(images_in)
        bits_out = s_out / math.log(2) - compression_bits(images_out)
        metrics["auroc_complexity"] = float(auroc(bits_in, bits_out))
    metrics.update(score_in=float(s_in.mean()), score_out=float(s_out.mean()),
                   score_train=h)
    return metrics


def save_ood_histogram(score_in, score_out, name_in, name_out, path, xlabel) -> str:
    """Histograms of the scores of both test sets, in one picture at ``path`` (.png).
    The range is that of the middle 99% of the scores: a few outliers far out would
    squash every other image into one bar (they are drawn at the edges)."""
    from ..plot import new_figure, save_figure
    fig = new_figure((5, 3.2), layout="constrained")
    ax = fig.add_subplot(1, 1, 1)
    both = np.concatenate([score_in, score_out])
    lo, hi = np.percentile(both, [0.5, 99.5])
    bins = np.linspace(lo, hi, 80)
    ax.hist(np.clip(score_in, lo, hi), bins=bins, alpha=0.6, label=f"{name_in} (its own data)")
    ax.hist(np.clip(score_out, lo, hi), bins=bins, alpha=0.6, label=name_out)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("test images")
    ax.legend(fontsize=8)
    return save_figure(fig, path)
