"""Training a restricted Boltzmann machine on binarised MNIST or Fashion-MNIST by
contrastive divergence, and measuring its test log-likelihood exactly (small hidden
layers) or by annealed importance sampling; the model is ``tinygen.models.ebm.rbm``.

A training step lowers the free energy of a batch of data v^+ and raises it at negative
samples v^- from the model's Gibbs chains,

    loss = mean F(v^+) - mean F(v^-),      -grad loss = the estimate of grad log p(v)

(eq. (4) of rbm.py), with v^- after cd_k Gibbs steps from the data (CD-k, Hinton 2002)
or, with ``persistent``, from the chains of the previous step (PCD, Tieleman 2008).
Images are binarised afresh every batch (v ~ Bernoulli(grey level)).

Defaults and where they come from:
    hidden 500                         Salakhutdinov & Murray 2008 (their MNIST RBMs:
                                       20, 25 and 500 hidden units)
    persistent, cd_k 1, 100 chains     PCD (Tieleman 2008: one Gibbs step per update,
                                       as many chains as the batch)
    batch 100, weight decay 1e-4 on W only
                                       Hinton's "A Practical Guide to Training RBMs"
                                       (sections 4 and 10)
    Adam(1e-3) with a cosine decay to 1e-5, 100 epochs
                                       tinygen's choice, measured: 88.06 nats after 100
                                       epochs (docs/ebm.md). After 10 epochs Adam gave
                                       106.6 nats, SGD(0.01) with the momentum 0.5 then
                                       0.9 after 5 epochs (the Guide's section 9, the
                                       switch as in Hinton & Salakhutdinov's rbm.m)
                                       110.3; SGD(0.05) jumped when the momentum rose
                                       and did not recover while its rate stayed high
    W ~ N(0, 0.01^2), a = the pixels' log-odds, b = 0         the Guide, section 8
    ais_runs 100, ais_betas 14,500     Salakhutdinov & Murray 2008, section 4.1

Evaluation (``tinygen eval``): nll_nats on the eval_n test images, binarised once (seed
1234): exactly (eq. (5)) when hidden <= exact_max_hidden, else with log Z from AIS, its
3-standard-error interval beside it; inpainting_mse and inpainting_class_accuracy of
test digits whose lower half is filled in by Gibbs sampling with the upper half clamped;
fid_lenet of samples (the mean p(v | h) after sample_steps Gibbs steps of chains started
at the data's base rates); with ``--ood DATASET`` the AUROCs of the free energy.
"""
from __future__ import annotations

import math
import os

import numpy as np
from tqdm import tqdm

from ... import data, no_grad, optim, tensor
from ...metrics import bits_per_dim
from ...models.ebm.rbm import RBM, ais_betas, ais_log_partition, exact_log_partition
from ...random import generator
from ..base import Experiment, non_negative, one_of
from ..vae.vae import binarize_batch

EVAL_BATCH = 1000


class RBMExperiment(Experiment):
    """Train a binary RBM by CD-k or PCD on dynamically binarised images; evaluate its
    test log-likelihood."""

    name = "rbm"
    defaults = {"hidden": 500, "cd_k": 1, "persistent": True, "batch_size": 100,
                "optimizer": "adam", "lr": 1e-3, "momentum": 0.9, "weight_decay": 1e-4,
                "lr_schedule": "cosine", "epochs": 100, "init_std": 0.01,
                "exact_max_hidden": 20, "ais_runs": 100, "ais_betas": 14500,
                "eval_n": 10000, "sample_steps": 1000, "eval_inpainting_n": 1000,
                "eval_fid": True, "eval_fid_n": 10000}
    rules = {"optimizer": one_of("sgd", "adam"), "momentum": non_negative,
             "weight_decay": non_negative, "init_std": non_negative,
             "exact_max_hidden": non_negative, "eval_inpainting_n": non_negative}
    help = {"hidden": "hidden units H", "cd_k": "Gibbs steps per update (k of CD-k)",
            "persistent": "keep the negative chains between updates (PCD) instead of "
                          "starting them at the data (CD)",
            "optimizer": "sgd (with momentum) or adam",
            "momentum": "with --optimizer sgd: the momentum (0.5 for the first 5 epochs)",
            "weight_decay": "L2 penalty on W",
            "init_std": "standard deviation of W's initial values",
            "exact_max_hidden": "largest H whose log Z is summed exactly (else AIS)",
            "ais_runs": "AIS runs M", "ais_betas": "AIS intermediate distributions K",
            "eval_n": "test images in the NLL",
            "sample_steps": "Gibbs steps of the chains that draw samples",
            "eval_inpainting_n": "test digits completed by Gibbs sampling (0: skip)",
            "eval_fid": "measure FID and class accuracy with LeNet",
            "eval_fid_n": "samples FID uses"}
    transform = staticmethod(binarize_batch)
    blas_threads = 1   # (100, 784) x (784, 500) products (Experiment.blas_threads)
    supports_ood = True

    def build_model(self):
        c = self.config
        return RBM(784, c["hidden"], init_std=c["init_std"])

    def build_optimizer(self):
        """SGD with momentum, or Adam; the weight decay on W only (a penalty on the
        biases would pull the visible ones off the pixels' log-odds)."""
        c = self.config
        groups = [{"params": [self.model.W], "weight_decay": c["weight_decay"]},
                  {"params": [self.model.a, self.model.b], "weight_decay": 0.0}]
        if c["optimizer"] == "adam":
            return optim.Adam(groups, lr=c["lr"])
        return optim.SGD(groups, lr=c["lr"], momentum=c["momentum"])

    # ---- data
    def base_rates(self):
        """The training images' pixel means p (784,), clipped to [1e-3, 1 - 1e-3]."""
        return self.images("train")[0].reshape(-1, 784).mean(axis=0).clip(1e-3, 1 - 1e-3)

    def train_loader(self):
        # the visible biases start at the pixels' log-odds (a resumed run loads its own)
        p = self.base_rates()
        self.model.a.data[...] = tensor(np.log(p / (1 - p)).astype(np.float32),
                                        device=self.device).data
        return super().train_loader()

    def test_images(self, dataset=None, n=None):
        """The first n (default eval_n) test images of ``dataset`` (default the run's),
        binarised once with a fixed seed: float32 (n, 784) of 0.0 and 1.0."""
        n = n or self.config["eval_n"]
        if dataset is None or dataset == self.config["dataset"]:
            x = self.images("test")[0][:n]
        else:
            images, _ = data.load_dataset(dataset, "test", self.config.get("data_root"))
            x = data.scale(images, to=(0, 1))[:n]
        return data.binarize(x.reshape(len(x), 784), generator(1234))

    # ---- training
    @property
    def chains(self):
        """The persistent chains v^- (batch_size, 784), started at the base rates."""
        if getattr(self, "_chains", None) is None:
            p = tensor(np.broadcast_to(self.base_rates(), (self.config["batch_size"], 784))
                       .astype(np.float32), device=self.device)
            self._chains = RBM.bernoulli(p)
        return self._chains

    def training_step(self, v):
        """One step on mean F(v^+) - mean F(v^-) (nats), v^- from cd_k Gibbs steps of the
        persistent chains or of the data."""
        c = self.config
        v_pos = v.reshape(v.shape[0], 784)
        start = self.chains if c["persistent"] else v_pos
        v_neg = self.model.gibbs(start, c["cd_k"])
        if c["persistent"]:
            self._chains = v_neg
        if c["optimizer"] == "sgd":
            # the Guide's momentum schedule: 0.5 while the weights are far from anywhere,
            # then 0.9 (5 epochs at the default batch of 100)
            early = self.step < 5 * len(self.images("train")[0]) // c["batch_size"]
            for group in self.optimizer.param_groups:
                group["momentum"] = min(0.5, c["momentum"]) if early else c["momentum"]
        loss = self.model.free_energy(v_pos).mean() - self.model.free_energy(v_neg).mean()
        self.update(loss)
        with no_grad():
            # the reconstruction error: a cheap sign of life, not the objective
            recon = self.model.p_v_given_h(self.model.p_h_given_v(v_pos))
            recon_error = ((recon - v_pos) ** 2).mean().item()
        return {"free_energy_gap": loss.item(), "recon_error": recon_error}

    def state_dict(self):
        state = super().state_dict()
        if self.config["persistent"]:
            # (CD has no chains to keep: making them here would draw from the generator
            # whose state the checkpoint saves, and a resumed run would differ)
            state["chains"] = self.chains.numpy()
        return state

    def load_state_dict(self, state):
        super().load_state_dict(state)
        if "chains" in state:
            self._chains = tensor(np.asarray(state["chains"], np.float32), device=self.device)

    # ---- evaluation
    def log_partition(self):
        """log Z: exact when hidden <= exact_max_hidden, else AIS from the base-rate
        model. Returns (log Z, (low, high) or None, the estimator's name)."""
        c = self.config
        if c["hidden"] <= c["exact_max_hidden"]:
            return exact_log_partition(self.model), None, "exact"
        p = self.base_rates()
        est = ais_log_partition(self.model, num_runs=c["ais_runs"],
                                betas=ais_betas(c["ais_betas"]),
                                base_visible_bias=np.log(p / (1 - p)), progress=True)
        return est.log_Z, (est.log_Z_low, est.log_Z_high), \
            f"ais_{est.num_betas}x{est.num_runs}"

    @no_grad()
    def free_energy(self, v, desc="free energy"):
        """F(v) in nats of each row of the NumPy array v (n, 784), in batches: (n,)."""
        out = []
        for i in tqdm(range(0, len(v), EVAL_BATCH), desc=desc, leave=False, unit="batch"):
            out.append(self.model.free_energy(tensor(v[i:i + EVAL_BATCH], device=self.device)).numpy())
        return np.concatenate(out).astype(np.float64)

    def evaluate(self):
        """nll_nats (exact or AIS; with log_Z and its interval), the inpainting figures,
        fid_lenet, and the OOD AUROCs with --ood."""
        self.model.eval()
        log_Z, interval, estimator = self.log_partition()
        F = self.free_energy(self.test_images())
        nll = F.mean() + log_Z
        metrics = {"nll_nats": float(nll), "nll_estimator": estimator,
                   "nll_standard_error": float(F.std(ddof=1) / math.sqrt(len(F))),
                   "bits_per_dim": float(bits_per_dim(nll, 784)),
                   "log_Z": float(log_Z), "data_variant": "dynamic_binarized",
                   "eval_images": len(F)}
        if interval is not None:
            # NLL = mean F + log Z: the interval of log Z shifted by mean F. An interval
            # reaching 0 for Z has no low end (None: -inf is not JSON)
            low, high = (float(e) if math.isfinite(e) else None for e in interval)
            metrics["log_Z_interval"] = [low, high]
            metrics["nll_interval"] = [None if low is None else float(F.mean() + low),
                                       float(F.mean() + high)]
        if self.config["eval_inpainting_n"]:
            metrics.update(self.inpainting(self.config["eval_inpainting_n"]))
        ood = self.config.get("eval_ood")
        if ood:
            from ..ood import ood_metrics
            x_out = self.test_images(ood, len(F))
            F_out = self.free_energy(x_out, f"free energy, {ood}")
            train = data.binarize(self.images("train")[0][:len(F)].reshape(-1, 784),
                                  generator(2025))
            metrics["ood"] = ood_metrics(
                F, F_out, self.free_energy(train),
                self.test_images(n=len(F)).reshape(-1, 1, 28, 28),
                x_out.reshape(-1, 1, 28, 28), dataset=ood, score_name="free energy F(v)")
            self._ood = (F, F_out, self.config["dataset"], ood)
        if self.config.get("eval_fid", True):
            from ..classifier import fid
            samples = self.sample(self.config["eval_fid_n"])
            metrics["fid_lenet"] = fid(samples, self.config["dataset"], device=self.device,
                                       data_root=self.config.get("data_root"))
            metrics["fid_samples"] = int(len(samples))
            metrics["sampler"] = f"gibbs-{self.config['sample_steps']}"
        return metrics

    @no_grad()
    def inpaint(self, v, mask, steps=200, average=50):
        """Fill in the pixels of v (n, 784) where mask (784,) is 0 by Gibbs sampling with
        the pixels where it is 1 clamped to v's: each step draws h ~ p(h | v) and the
        missing pixels from p(v | h); returns the mean p(v | h) over the last ``average``
        steps, which estimates P(v_i = 1 | the known pixels), in [0, 1] (n, 784)."""
        known = tensor(mask.astype(np.float32), device=self.device)
        v = tensor(v, device=self.device)
        x = v * known + RBM.bernoulli(v * 0 + 0.5) * (1 - known)
        total = 0
        for step in range(steps):
            p = self.model.p_v_given_h(self.model.sample_h(x))
            x = v * known + RBM.bernoulli(p) * (1 - known)
            if step >= steps - average:
                total = total + p
        return (v * known + total / average * (1 - known)).numpy()

    def inpainting(self, n):
        """The lower half of n test digits filled in (``inpaint``): inpainting_mse, the mean
        squared error per missing pixel against the grey-level digit (pixels in [0, 1]),
        and, with the classifier (eval_fid), the class accuracy of the completions."""
        x, labels = self.images("test")
        x, labels = x[:n].reshape(n, 784), labels[:n]
        mask = np.ones((28, 28), np.float32)
        mask[14:] = 0
        mask = mask.reshape(784)
        v = data.binarize(x, generator(1234))
        filled = np.concatenate([self.inpaint(v[i:i + EVAL_BATCH], mask)
                                 for i in tqdm(range(0, n, EVAL_BATCH), desc="inpainting",
                                               leave=False)])
        self._inpainted = (np.where(mask == 1, v, 0.5)[:8], filled[:8], x[:8])
        return self.inpainting_metrics(filled, x, mask == 0, labels)

    # ---- samples and pictures
    @no_grad()
    def sample(self, n, steps=None, return_chain=False):
        """n samples (n, 1, 28, 28) in [0, 1]: the mean p(v | h) after ``steps`` (default
        sample_steps) Gibbs steps of chains started at the base rates, 1000 at a time."""
        steps = self.config["sample_steps"] if steps is None else steps
        self.model.eval()
        out, chain = [], None
        for i in tqdm(range(0, n, EVAL_BATCH), desc="Gibbs sampling", leave=False):
            m = min(EVAL_BATCH, n - i)
            p = tensor(np.broadcast_to(self.base_rates(), (m, 784)).astype(np.float32),
                       device=self.device)
            v, means = self.model.gibbs(RBM.bernoulli(p), steps, return_chain=True)
            out.append(means[-1].numpy() if means else p.numpy())
            if chain is None:
                chain = means
        samples = np.concatenate(out).reshape(n, 1, 28, 28)
        return (samples, chain) if return_chain else samples

    @no_grad()
    def save_pictures(self, run_dir):
        """filters.png: 100 columns of W as 28x28 images; samples.png: 64 samples;
        gibbs_chain.png: 8 chains from the base rates, p(v | h) at 10 steps spaced
        logarithmically up to sample_steps."""
        from ...plot import save_image_grid
        W = self.model.W.numpy()[:, :100].T.reshape(-1, 1, 28, 28)
        # each filter scaled to its own range: their weights differ in size
        lo = W.min(axis=(1, 2, 3), keepdims=True)
        hi = W.max(axis=(1, 2, 3), keepdims=True)
        save_image_grid((W - lo) / np.maximum(hi - lo, 1e-8),
                        os.path.join(run_dir, "filters.png"), nrow=10)
        steps = self.config["sample_steps"]
        samples, chain = self.sample(64, steps, return_chain=True)
        save_image_grid(samples, os.path.join(run_dir, "samples.png"), nrow=8)
        at = np.unique(np.geomspace(1, steps, 10).round().astype(int)) - 1
        frames = np.stack([chain[t].numpy()[:8] for t in at], axis=1)   # (8, T, 784)
        save_image_grid(frames.reshape(-1, 1, 28, 28), os.path.join(run_dir, "gibbs_chain.png"),
                        nrow=len(at))

    def save_evaluation_pictures(self, run_dir):
        """After ``tinygen eval``: inpainting.png (masked, completed, truth for 8 digits);
        with --ood, ood_histogram.png of the free energies."""
        from ...plot import save_image_grid
        if getattr(self, "_inpainted", None) is not None:
            rows = np.stack(self._inpainted, axis=0).reshape(-1, 1, 28, 28)
            save_image_grid(rows, os.path.join(run_dir, "inpainting.png"), nrow=8)
        if getattr(self, "_ood", None) is not None:
            from ..ood import save_ood_histogram
            F_in, F_out, name_in, name_out = self._ood
            save_ood_histogram(F_in, F_out, name_in, name_out,
                               os.path.join(run_dir, "ood_histogram.png"),
                               xlabel=f"free energy F(v) under the RBM trained on {name_in}")
