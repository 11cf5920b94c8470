"""Training NADE (Larochelle & Murray 2011) on binarised MNIST or Fashion-MNIST; the model
is ``tinygen.models.autoregressive.nade.NADE``, the recipe the one shared by the
autoregressive models (pixelcnn.py: -log p(x) on dynamically binarised batches, the exact
test NLL, completions and samples).

Defaults and where they come from:
    hidden 500                         Larochelle & Murray's MNIST model (88.86 nats on
                                       the statically binarised MNIST)
    batch 100, Adam(1e-3) with a cosine decay, epochs 4
                                       tinygen's choice (the paper: SGD with early
                                       stopping); about 2 s per batch on one core
    b = the pixels' log-odds           the marginals, so that the first steps fit
                                       structure

Sampling follows NADE's recurrence, O(D H) per image, so FID uses 1,000 samples. (The
published 88.86 nats is on the statically binarised MNIST.)
"""
from __future__ import annotations

import numpy as np

from ... import backend
from ...models.autoregressive import NADE
from ..base import non_negative
from .pixelcnn import COMMON_DEFAULTS, COMMON_HELP, AutoregressiveExperiment


class NADEExperiment(AutoregressiveExperiment):
    """NADE on dynamically binarised images; its exact test NLL."""

    name = "nade"
    defaults = {"hidden": 500, **COMMON_DEFAULTS, "batch_size": 100, "epochs": 4,
                "eval_fid_n": 1000}
    help = {"hidden": "H, the hidden units of every conditional", **COMMON_HELP}
    rules = {"eval_inpaint_n": non_negative}
    blas_threads = 1   # elementwise work on (N, D, H) arrays: BLAS threads do not help
    eval_batch = 100   # (100, 784, 500) float32 arrays of 157 MB in the NLL's pass

    def build_model(self):
        return NADE(28, hidden=self.config["hidden"])

    def train_loader(self):
        # b starts at the pixels' log-odds (a resumed run then loads its own)
        p = self.images("train")[0].reshape(-1, 784).mean(axis=0).clip(1e-3, 1 - 1e-3)
        self.model.b.data[...] = backend.to_device(np.log(p / (1 - p)).astype(np.float32),
                                                   self.device)
        return super().train_loader()
