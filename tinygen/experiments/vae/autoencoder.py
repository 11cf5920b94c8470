"""Training the autoencoders (``ae``) and the denoising autoencoder (``dae``) on MNIST or
Fashion-MNIST; the models are in ``tinygen.models.vae.autoencoder``.

Defaults (tinygen's choices for MNIST): a 32-d code, the MLP networks (784-400-32 and
back), the Bernoulli reconstruction loss, Adam 1e-3, batch 128, 5 epochs; with a
penalty, lambda = 0.1; the DAE masks each pixel with probability 0.5. Evaluation: recon_mse and recon_bce per pixel on the
test set, and for the DAE the same for the denoised corrupted test set.
"""
from __future__ import annotations

import os

import numpy as np

from ... import no_grad, tensor
from ...models.vae.autoencoder import AutoEncoder, DenoisingAutoEncoder
from ...nn import functional as F
from ...plot import save_image_grid
from ..base import Experiment, non_negative, one_of


@no_grad()
def reconstruction_errors(model: AutoEncoder, x, x_tilde=None, batch_size: int = 1000,
                          device: str = "cpu") -> dict:
    """Per-pixel errors of g(f(x_tilde)) against x (x_tilde defaults to x), arrays
    (N, ...) in [0, 1] taken in batches:

        mse   mean over pixels of (x - x_hat)^2
        bce   mean over pixels of -[x log x_hat + (1 - x) log(1 - x_hat)], from the logits
              for a "bernoulli" model, from x_hat clipped to [0, 1] for an "mse" one.
              For grey pixels it is not 0 even for x_hat = x: its floor is the entropy.
    """
    model.eval()
    x_tilde = x if x_tilde is None else x_tilde
    sq = ce = 0.0
    for i in range(0, len(x), batch_size):
        xb = tensor(x[i:i + batch_size], device=device)
        eta = model.decoder(model.encode(tensor(x_tilde[i:i + batch_size], device=device)))
        if model.reconstruction == "bernoulli":
            x_hat = eta.sigmoid()
            ce += F.binary_cross_entropy_with_logits(eta, xb, reduction="sum").item()
        else:
            x_hat = eta
            ce += F.binary_cross_entropy(eta.clip(0.0, 1.0), xb, reduction="sum").item()
        sq += F.mse_loss(x_hat, xb, reduction="sum").item()
    n = np.asarray(x).size
    return {"mse": sq / n, "bce": ce / n}


class AutoEncoderExperiment(Experiment):
    """Train an AutoEncoder (optionally sparse) on MNIST or Fashion-MNIST with Adam."""

    name = "ae"
    defaults = {"latent_dim": 32, "network": "mlp", "reconstruction": "bernoulli",
                "penalty": "none", "penalty_weight": 0.1, "batch_size": 128, "lr": 1e-3,
                "epochs": 5}
    rules = {"network": one_of("mlp", "conv"), "reconstruction": one_of("bernoulli", "mse"),
             "penalty": one_of("none", "l1", "l2"), "penalty_weight": non_negative}

    @property
    def blas_threads(self):
        """One BLAS thread for the MLP's small products (see Experiment.blas_threads)."""
        return 1 if self.config["network"] == "mlp" else None

    def build_model(self) -> AutoEncoder:
        c = self.config
        return AutoEncoder(c["latent_dim"], c["network"], c["reconstruction"], c["penalty"],
                           c["penalty_weight"])

    def training_step(self, x):
        """One Adam step on L(x, g(f(x))) (+ lambda Omega(z))."""
        self.model.train()
        terms = self.model.losses(x)
        self.update(terms["loss"])
        return {k: v.item() for k, v in terms.items()}

    def sample(self, n):
        raise NotImplementedError(
            f"'{self.name}' is not a generative model: an autoencoder learns no prior p(z) "
            "over its codes, so there is no distribution to draw new codes z from (decoding "
            "arbitrary z gives no meaningful images); train a VAE (tinygen train vae), whose "
            "prior N(0, I) makes g a sampler")

    def test_set(self):
        """The test images as float32 (10000, 1, 28, 28) in [0, 1], and their labels."""
        return self.images("test")

    def evaluate(self):
        """Per-pixel reconstruction errors on the test set: recon_mse, and recon_bce, the
        binary cross-entropy per pixel."""
        x, _ = self.test_set()
        errors = reconstruction_errors(self.model, x, device=self.device)
        return {"recon_mse": errors["mse"], "recon_bce": errors["bce"],
                "eval_images": int(len(x))}

    @no_grad()
    def save_pictures(self, run_dir):
        """reconstructions.png: rows of test inputs, each above its reconstructions; for
        latent_dim 2 also codes.png, the codes z = f(x) of 5000 test images coloured by
        their label."""
        x, labels = self.test_set()
        self.model.eval()
        device = self.device
        inputs = x[:32]
        x_hat = self.model(tensor(inputs, device=device)).numpy()
        save_image_grid(_interleave(inputs, x_hat, per_row=16),
                        os.path.join(run_dir, "reconstructions.png"), nrow=16,
                        value_range=(0, 1), labels=["input", "reconstruction"] * 2)
        if self.config["latent_dim"] == 2:
            z = self.model.encode(tensor(x[:5000], device=device)).numpy()
            plot_codes(z, labels[:5000], os.path.join(run_dir, "codes.png"),
                       title=f"codes z = f(x) of {self.config['dataset']} test images")


class DenoisingAutoEncoderExperiment(AutoEncoderExperiment):
    """Train a DenoisingAutoEncoder on MNIST or Fashion-MNIST with Adam."""

    name = "dae"
    defaults = {**AutoEncoderExperiment.defaults, "noise": "masking", "noise_level": 0.5}
    rules = {**AutoEncoderExperiment.rules, "noise": one_of("gaussian", "masking"),
             "noise_level": non_negative}   # and below 1 for masking (the model checks)

    def build_model(self) -> DenoisingAutoEncoder:
        c = self.config
        return DenoisingAutoEncoder(c["latent_dim"], c["network"], c["reconstruction"],
                                    c["penalty"], c["penalty_weight"], c["noise"],
                                    c["noise_level"])

    @no_grad()
    def corrupted_test_set(self):
        """(x, x_tilde): the test images and one draw of their corruption, float32
        (10000, 1, 28, 28)."""
        x, _ = self.test_set()
        return x, self.model.corrupt(tensor(x)).numpy()

    def evaluate(self):
        """recon_mse, recon_bce (clean inputs reconstructed), denoised_mse and
        denoised_bce (g(f(x_tilde)) against the clean x), and, for comparison,
        corrupted_input_mse, the error of x_tilde itself: doing nothing."""
        metrics = super().evaluate()
        x, x_tilde = self.corrupted_test_set()
        denoised = reconstruction_errors(self.model, x, x_tilde, device=self.device)
        metrics.update({f"denoised_{k}": v for k, v in denoised.items()})
        metrics["corrupted_input_mse"] = float(np.mean((x_tilde - x) ** 2))
        return metrics

    @no_grad()
    def save_pictures(self, run_dir):
        """reconstructions.png as for the AE, and denoising.png: rows of clean test
        images, their corruption x_tilde, and the denoised g(f(x_tilde))."""
        super().save_pictures(run_dir)
        x, _ = self.test_set()
        clean = x[:32]
        x_tilde = self.model.corrupt(tensor(clean)).numpy()
        denoised = self.model(tensor(x_tilde, device=self.device)).numpy()
        # value_range fixed at (0, 1): Gaussian noise leaves [0, 1], and the grid would
        # otherwise switch to (-1, 1) and grey out the clean rows too.
        save_image_grid(_interleave(clean, x_tilde, denoised, per_row=16),
                        os.path.join(run_dir, "denoising.png"), nrow=16, value_range=(0, 1),
                        labels=["clean", "corrupted", "denoised"] * 2)


def _interleave(*batches, per_row):
    """Stack same-shaped batches (N, ...) row by row: per_row images of the first, the
    same per_row of the second, ..., then the next per_row of each. -> (k N, ...)."""
    rows = [b[i:i + per_row] for i in range(0, len(batches[0]), per_row) for b in batches]
    return np.concatenate(rows)


def plot_codes(z, labels, path, title=None) -> str:
    """Scatter plot of 2-D codes z (N, 2) coloured by their labels (N,), into a PNG."""
    # plot.py's own figure helpers: an Agg canvas outside pyplot, written atomically.
    from ...plot import new_figure, save_figure
    z, labels = np.asarray(z, dtype=np.float64), np.asarray(labels)
    if z.ndim != 2 or z.shape[1] != 2:
        raise ValueError(f"plot_codes: codes must have shape (N, 2); got {z.shape}")
    fig = new_figure((5.5, 5), layout="constrained")
    ax = fig.add_subplot()
    for k in np.unique(labels):
        at = labels == k
        ax.scatter(z[at, 0], z[at, 1], s=3, color=f"C{int(k) % 10}", alpha=0.7,
                   linewidths=0, label=str(k), rasterized=True)
    ax.legend(loc="center left", bbox_to_anchor=(1, 0.5), markerscale=4, fontsize=8,
              title="label")
    ax.set_xlabel("z_1")
    ax.set_ylabel("z_2")
    if title:
        ax.set_title(title)
    return save_figure(fig, path)
