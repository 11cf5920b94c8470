"""Learning the occasionally dishonest casino (Durbin, Eddy, Krogh & Mitchison 1998,
"Biological Sequence Analysis", section 3.2) back from its rolls by Baum-Welch, and
decoding which die was in play; the model is ``tinygen.models.classic.hmm``.

The data are sequences of rolls drawn from the true casino (``casino()``: fair die F,
loaded die L, P(F -> L) = 0.05, P(L -> F) = 0.1, the loaded die a six half the time):
``train_sequences`` of ``length`` rolls for training, ``eval_sequences`` others for the
evaluation, each set drawn from its own generator seeded by ``seed`` (the same rolls for
every run of a seed). The true hidden states are kept for the evaluation only.

Training is EM, not gradient descent: each training step is one Baum-Welch iteration,
the E-step (forward-backward's expected counts, eq. (9) of hmm.py) over every training
sequence and the M-step (10) that normalises them. So one step is one epoch, there is no
optimizer and no learning rate (``--lr`` and ``--batch-size`` are refused), and the
budget ``--epochs`` (or ``--steps``) is the number of EM iterations. The model is an
``nn.Module`` holding pi, A and B as buffers, so checkpoints and resuming work as for
every recipe. The log records train_nll_nats, -(1/N) sum_n log p(x^(n)) under the
parameters before the step; EM never lets it rise.

Defaults and where they come from:
    length 300                  Durbin et al.'s example sequence of 300 rolls
    train_sequences 100         30,000 rolls: the transition probabilities to within
                                about 0.02 (measured at the defaults: A within 0.017,
                                B within 0.008; pi within 0.06, learned from the 100
                                first rolls alone)
    epochs 500                  EM iterations. Measured from single random starts
                                (no restarts; seeds 0-3):
                                the training NLL changes by less than 1e-4 nats per
                                sequence per step after 210-320 iterations; before
                                that it can cross plateaus (seed 1: under 1e-3 per step
                                at iteration 41, still 3.6 nats above its end)
    restarts 10,                the first step picks the start: 10 random starts (pi
    restart_iterations 20       and each row of A and B from a flat Dirichlet,
                                init_concentration 1, ``HMM.random``, seeded by --seed)
                                run 20 EM iterations each and the most likely goes on
                                (``best_of_restarts``). Measured on the default data
                                (seed 0): of 30 single random starts, 10 still sat on
                                the plateau near 525.5 nats (both states emitting
                                alike) after 300 iterations, against 521.64 for the
                                others; of 12 best-of-10 starts (then 300 iterations),
                                none. The default run: 522.83 nats after the choice,
                                521.637 at the end (the true casino: 521.69)

Label switching: EM may find the loaded die as state 0 or state 1 (the likelihood is the
same either way). The evaluation renames the learned states to match the true ones
(``align_states``: the order closest in A and B) before comparing parameters and decoded
paths.

Evaluation (``tinygen eval``) on the eval_sequences held-out sequences:
    nll_nats, true_nll_nats     -log p(x) per sequence (nats, exact by the forward
                                algorithm) under the learned model and under the true
                                casino (what a perfect learner would score, on average)
    viterbi_accuracy,           the fraction of rolls whose die the learned model's
    posterior_accuracy          Viterbi path / posterior decoding (argmax gamma_t) gets
                                right, after renaming; true_* the same for the true model
    parameters                  learned (renamed) and true pi, A, B; parameter_error the
                                largest absolute difference of each
"""
from __future__ import annotations

import math
import os

import numpy as np

from ... import data
from ...models.classic.hmm import FAIR, LOADED, HMM, align_states, best_of_restarts, casino
from ...random import generator
from ..base import ConfigError, Experiment, non_negative, option_name, positive

FACES = 6
PICTURE_ROLLS = 300      # the casino picture: one sequence as long as Durbin et al.'s


class HMMExperiment(Experiment):
    """Learn the casino's HMM by Baum-Welch (one EM iteration per step) from sampled
    rolls; evaluate the test log-likelihood, decoding accuracy and parameters."""

    name = "hmm"
    defaults = {"train_sequences": 100, "length": 300, "eval_sequences": 200,
                "restarts": 10, "restart_iterations": 20, "init_concentration": 1.0,
                "epochs": 500, "batch_size": None, "lr": None}
    rules = {"init_concentration": positive, "restart_iterations": non_negative}
    help = {"train_sequences": "training sequences sampled from the true casino",
            "length": "rolls per sequence (training and evaluation)",
            "eval_sequences": "held-out sequences of the evaluation",
            "restarts": "random starts the first step chooses from (1: just one)",
            "restart_iterations": "EM iterations each start runs before the choice",
            "init_concentration": "Dirichlet concentration of the random initial pi, A, B"}
    blas_threads = 1   # (N, 2) x (2, 2) products: threads would only wait for each other

    def check_config(self):
        super().check_config()
        if self.config.get("dataset", "casino") != "casino":
            raise ConfigError(f"--dataset {self.config['dataset']!r}: the hmm recipe knows "
                              "only 'casino'")
        for key in ("batch_size", "lr"):
            if self.config.get(key) is not None:
                raise ConfigError(f"{option_name(key)} {self.config[key]!r}: Baum-Welch "
                                  "re-estimates the parameters in closed form from every "
                                  "training sequence at each step; it has no "
                                  f"{'batch size' if key == 'batch_size' else 'learning rate'}"
                                  " (the budget --epochs is the number of EM iterations)")

    def build_model(self):
        return HMM.random(2, FACES, concentration=self.config["init_concentration"])

    def build_optimizer(self):
        return None

    def optimizers(self):
        return {}

    # ---- data
    def sequences(self, split: str):
        """The true states z and rolls x (faces 0..5), int64 (N, length) each, of
        ``split``: "train" (train_sequences), "test" (eval_sequences) or "picture" (one
        sequence of 300 rolls); drawn from the true casino with a generator seeded by
        the split and ``seed``, once."""
        if split not in self._splits:
            c = self.config
            n, offset = {"train": (c["train_sequences"], 0), "test": (c["eval_sequences"], 1),
                         "picture": (1, 2)}[split]
            length = PICTURE_ROLLS if split == "picture" else c["length"]
            self._splits[split] = casino().sample(n, length,
                                                  generator(offset + 1000 * c.get("seed", 0)))
        return self._splits[split]

    def train_loader(self):
        """Every training sequence in one batch (Baum-Welch is a batch algorithm), in a
        fixed order: one batch per epoch."""
        _, x = self.sequences("train")
        return data.DataLoader(x, batch_size=len(x), shuffle=False, device=self.device)

    # ---- training
    def training_step(self, x):
        """One Baum-Welch iteration on every training sequence; logs train_nll_nats,
        -(1/N) sum_n log p(x^(n)) under the parameters before the step (nats). The first
        step first replaces the model by the best of ``restarts`` random starts after
        ``restart_iterations`` EM iterations each (``best_of_restarts``)."""
        c = self.config
        x = x.numpy()
        if self.step == 0 and c["restarts"] > 1:
            # drawn from the global generator that fit seeds: a rerun picks the same start
            best, _ = best_of_restarts(x, 2, FACES, c["restarts"], c["restart_iterations"],
                                       concentration=c["init_concentration"])
            self.model.set_parameters(*best.parameters_numpy())
        log_likelihood = self.model.baum_welch_step(x)
        return {"train_nll_nats": -log_likelihood / len(x)}

    def sample(self, n):
        raise NotImplementedError("'hmm' draws sequences of rolls, not images: use "
                                  "HMM.sample (see demos/hmm_casino.py)")

    # ---- evaluation
    def aligned(self) -> HMM:
        """The learned model with its states renamed to match the true casino's (state 0
        fair, 1 loaded): ``align_states``."""
        return self.model.permute(align_states(self.model, casino()))

    def evaluate(self):
        """nll_nats and true_nll_nats (per sequence, exact), decoding accuracies of the
        learned and the true model, and the learned parameters against the true ones, on
        the held-out sequences."""
        z, x = self.sequences("test")
        true, learned = casino(), self.aligned()
        metrics = {}
        for prefix, model in (("", learned), ("true_", true)):
            log_p = model.log_prob(x)
            metrics[f"{prefix}nll_nats"] = float(-log_p.mean())
            metrics[f"{prefix}nll_standard_error"] = float(log_p.std(ddof=1) /
                                                           math.sqrt(len(x)))
            metrics[f"{prefix}viterbi_accuracy"] = float((model.viterbi(x)[0] == z).mean())
            metrics[f"{prefix}posterior_accuracy"] = float(
                (model.posterior_decode(x) == z).mean())
        metrics["nll_estimator"] = "exact"
        metrics["nll_nats_per_roll"] = metrics["nll_nats"] / x.shape[1]
        metrics["eval_sequences"], metrics["sequence_length"] = int(len(x)), int(x.shape[1])
        names = ("pi", "A", "B")
        learned_p, true_p = learned.parameters_numpy(), true.parameters_numpy()
        metrics["parameters"] = {
            "learned": {k: np.round(v, 4).tolist() for k, v in zip(names, learned_p)},
            "true": {k: np.round(v, 4).tolist() for k, v in zip(names, true_p)}}
        metrics["parameter_error"] = {k: float(np.abs(a - b).max())
                                      for k, a, b in zip(names, learned_p, true_p)}
        metrics["state_order"] = align_states(self.model, true)
        return metrics

    # ---- pictures
    def save_pictures(self, run_dir):
        """casino.png: 300 held-out rolls with the true die shaded, and under them the
        posterior P(loaded | rolls) of the learned model (and of the true one) and the
        learned model's Viterbi path (``plot_casino``)."""
        z, x = self.sequences("picture")
        learned, true = self.aligned(), casino()
        plot_casino(x[0], z[0], learned.forward_backward(x[0]).gamma[:, LOADED],
                    learned.viterbi(x[0])[0], os.path.join(run_dir, "casino.png"),
                    true_posterior=true.forward_backward(x[0]).gamma[:, LOADED],
                    title=f"The occasionally dishonest casino: {len(x[0])} held-out rolls, "
                          f"decoded by the HMM learned from "
                          f"{self.config['train_sequences']} x {self.config['length']} "
                          f"rolls")


def _runs(mask):
    """(start, stop) of each run of True in a 1-D boolean array."""
    edges = np.diff(np.concatenate([[0], mask.astype(np.int8), [0]]))
    return list(zip(np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)))


def plot_casino(rolls, states, posterior_loaded, viterbi_path, path, true_posterior=None,
                title=None):
    """Draw Durbin et al.'s casino picture (1998, section 3.2) into the PNG ``path``.

    Top: the rolls (faces 1..6) against time, the stretches where the loaded die was
    truly in play shaded red. Bottom: the posterior P(z_t = loaded | x_{1:T}) (a line;
    ``true_posterior``, under the true model, dashed beside it), the Viterbi path (0 =
    fair, 1 = loaded, a step line), over the same shading.

    rolls: (T,) faces as symbols 0..5; states, viterbi_path: (T,) 0 = fair, 1 = loaded;
    posterior_loaded, true_posterior: (T,) probabilities. Returns the path.
    Raises ValueError for arrays of different lengths or a path not ending in .png.
    """
    from ...plot import check_png_path, new_figure, save_figure
    path = check_png_path(path, "plot_casino")
    arrays = [np.asarray(a) for a in (rolls, states, posterior_loaded, viterbi_path)]
    if true_posterior is not None:
        arrays.append(np.asarray(true_posterior))
    if len({a.shape for a in arrays}) != 1 or arrays[0].ndim != 1:
        raise ValueError(f"plot_casino: rolls, states, posteriors and the Viterbi path must "
                         f"be vectors of one length T; got shapes "
                         f"{[a.shape for a in arrays]}")
    rolls, states, posterior_loaded, viterbi_path = arrays[:4]
    t = np.arange(1, len(rolls) + 1)
    fig = new_figure((14, 5.2))
    top, bottom = fig.add_subplot(2, 1, 1), fig.add_subplot(2, 1, 2)
    for ax in (top, bottom):
        for start, stop in _runs(states == LOADED):
            ax.axvspan(start + 0.5, stop + 0.5, color="tab:red", alpha=0.15, lw=0)
        ax.set_xlim(0.5, len(rolls) + 0.5)
    fair = states == FAIR
    top.scatter(t[fair], rolls[fair] + 1, s=7, color="0.35", label="roll of the fair die")
    top.scatter(t[~fair], rolls[~fair] + 1, s=7, color="tab:red",
                label="roll of the loaded die (shaded)")
    top.set_yticks(range(1, 7))
    top.set_ylabel("roll")
    top.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, frameon=False)
    bottom.plot(t, posterior_loaded, color="tab:blue", lw=1.2,
                label="P(loaded | rolls), learned model")
    if true_posterior is not None:
        bottom.plot(t, arrays[4], color="black", lw=0.8, ls="--",
                    label="P(loaded | rolls), true model")
    bottom.step(t, viterbi_path, where="mid", color="tab:orange", lw=1.0,
                label="Viterbi path (1 = loaded)")
    bottom.set_ylim(-0.05, 1.05)
    bottom.set_xlabel("roll t")
    bottom.set_ylabel("loaded die")
    bottom.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, frameon=False)
    if title:
        top.set_title(title, fontsize=10)
    fig.tight_layout()
    return save_figure(fig, path)
