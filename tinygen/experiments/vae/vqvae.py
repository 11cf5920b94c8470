"""Training the VQ-VAE (van den Oord, Vinyals & Kavukcuoglu 2017) on MNIST or
Fashion-MNIST; the model is ``tinygen.models.vae.vqvae.VQVAE``.

Defaults and where they come from: beta = 0.25, batch 128 and decay 0.99 for the
"ema" codebook (Appendix A.1) are the paper's; K = 64 codes of D = 16, 32 channels,
Adam at 1e-3 (the paper: 2e-4) and 5 epochs are tinygen's, sized for MNIST on a CPU
(the paper: K = 512 and 256 channels, for ImageNet and CIFAR-10). The codebook is
trained by its loss term by default; dead-code restarts are off. Evaluation: recon_mse per pixel on the test set, the
perplexity of the code assignments and the number of codes used.
"""
from __future__ import annotations

import os

import numpy as np

from ... import backend, no_grad, tensor
from ...models.vae.quantizer import codebook_usage, perplexity
from ...models.vae.vqvae import VQVAE
from ..base import Experiment, fraction, non_negative, one_of


class VQVAEExperiment(Experiment):
    """Train a VQ-VAE on MNIST or Fashion-MNIST (images in [0, 1]) with Adam."""

    name = "vqvae"
    defaults = {"batch_size": 128, "lr": 1e-3, "epochs": 5, "num_embeddings": 64,
                "embedding_dim": 16, "beta": 0.25, "codebook_update": "loss",
                "decay": 0.99, "dead_code_threshold": 0.0, "channels": 32}
    rules = {"beta": non_negative, "codebook_update": one_of("loss", "ema"),
             "decay": fraction, "dead_code_threshold": non_negative}

    def build_model(self):
        c = self.config
        return VQVAE(c["num_embeddings"], c["embedding_dim"], c["beta"], c["codebook_update"],
                     c["decay"], c["dead_code_threshold"], c["channels"])

    def test_images(self) -> np.ndarray:
        """The test set as float32 (10000, 1, 28, 28) in [0, 1], loaded once."""
        return self.images("test")[0]

    def training_step(self, x):
        """One Adam step on L; then the moving averages (and restarts, if on).

        Logs L, its three terms (unweighted), the batch's perplexity and codes used, and
        with restarts on how many codes were restarted. The codebook and commitment terms
        have the same value, mean ||z_e - e||^2: they differ only in where their gradients
        go (and L takes beta times the second)."""
        self.model.train()
        x_hat, z_e, q = self.model(x)
        terms = self.model.loss_terms(x, x_hat, z_e, q.z_q)
        loss = self.model.loss(terms)
        self.update(loss)
        vq = self.model.quantizer
        # z_e of this batch (before the step) feeds the averages, as in the paper.
        vq.ema_update(z_e, q.k)
        restarted = vq.restart_dead_codes(z_e)
        counts = codebook_usage(q.k, vq.num_embeddings)
        scalars = {"loss": loss.item(), **{name: t.item() for name, t in terms.items()},
                   "perplexity": perplexity(counts), "codes_used": int((counts > 0).sum())}
        if vq.dead_code_threshold > 0:
            scalars["restarted"] = restarted
        return scalars

    @no_grad()
    def reconstruct(self, x, batch_size: int = 500):
        """x float (N, 1, 28, 28) NumPy in [0, 1] -> (x_hat (N, 1, 28, 28) NumPy, codes
        k (N, 7, 7) NumPy), in batches."""
        self.model.eval()
        x_hats, ks = [], []
        for i in range(0, len(x), batch_size):
            x_hat, _, q = self.model(tensor(x[i:i + batch_size], device=self.device))
            x_hats.append(x_hat.numpy())
            ks.append(backend.to_numpy(q.k))
        return np.concatenate(x_hats), np.concatenate(ks)

    def evaluate(self, limit: int | None = None):
        """On the test set (its first ``limit`` images if given): the reconstruction MSE
        per pixel, the perplexity of the code assignments and the number of codes used."""
        x = self.test_images()[:limit]
        x_hat, k = self.reconstruct(x)
        counts = codebook_usage(k, self.model.quantizer.num_embeddings)
        return {"recon_mse": float(((x_hat - x) ** 2).mean()),
                "perplexity": perplexity(counts), "codes_used": int((counts > 0).sum()),
                "eval_images": int(len(x))}

    def sample(self, n: int):
        """n images (n, 1, 28, 28) in [0, 1] from the uniform prior over codes (no prior
        is learned yet: the paper fits a PixelCNN over the grids)."""
        self.model.eval()
        return self.model.sample(n).numpy()

    def save_pictures(self, run_dir: str, count: int = 1000) -> None:
        """reconstructions.png (rows of test inputs, each above its reconstruction),
        codebook_usage.png (a bar chart of how often each code appears in the codes of
        the first ``count`` test images) and samples.png (uniform prior)."""
        from ...plot import save_image_grid
        x = self.test_images()[:count]
        x_hat, k = self.reconstruct(x)
        pairs = np.stack([x[:32].reshape(4, 8, 1, 28, 28),
                          np.clip(x_hat[:32], 0, 1).reshape(4, 8, 1, 28, 28)], axis=1)
        save_image_grid(pairs.reshape(64, 1, 28, 28), os.path.join(run_dir, "reconstructions.png"),
                        nrow=8, value_range=(0, 1), labels=["input", "reconstruction"] * 4)
        plot_codebook_usage(codebook_usage(k, self.model.quantizer.num_embeddings),
                            os.path.join(run_dir, "codebook_usage.png"),
                            title=f"{self.config['dataset']}, {len(x)} test images")
        save_image_grid(self.sample(64), os.path.join(run_dir, "samples.png"), nrow=8,
                        value_range=(0, 1))


def plot_codebook_usage(counts, path, title: str = "") -> str:
    """A bar chart of p_k = n_k / sum_j n_j against k for counts (K,), with the
    perplexity and the number of codes used; written atomically to the PNG ``path``."""
    from ...plot import check_png_path, new_figure, save_figure
    path = check_png_path(path, "plot_codebook_usage")
    counts = np.asarray(counts, dtype=np.float64)
    p = counts / counts.sum()
    K = len(counts)
    fig = new_figure((max(5.0, 0.09 * K + 2.0), 3.2), layout="constrained")
    ax = fig.add_subplot()
    ax.bar(np.arange(K), p, width=0.8, color="C0")
    ax.axhline(1.0 / K, color="C3", lw=0.8, ls="--", label="uniform 1/K")
    ax.set_xlim(-0.5, K - 0.5)
    ax.set_xlabel("code k")
    ax.set_ylabel("fraction of grid vectors p_k")
    ax.legend(loc="upper right", fontsize=8)
    where = f" ({title})" if title else ""
    ax.set_title(f"codebook usage{where}: perplexity {perplexity(counts):.1f} of K = {K}, "
                 f"{int((counts > 0).sum())} codes used", fontsize=9)
    return save_figure(fig, path)
