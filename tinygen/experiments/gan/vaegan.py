"""Training a VAE-GAN (Larsen, Sønderby, Larochelle & Winther 2016) on MNIST or
Fashion-MNIST; the model is ``tinygen.models.gan.vaegan``: a VAE whose reconstruction is
scored in the features of a GAN discriminator, and whose decoder is that GAN's generator.

One step is Algorithm 1 of the paper: one forward pass of the three networks on a batch
(Enc on x; Dec on z ~ q(z|x) and z_p ~ p(z); Dis on x, x_tilde and x_p), then each network
steps on the gradient of its own loss, all taken at the same weights:

    Enc: L_prior + L_llike,    Dec: gamma L_llike + its GAN term,    Dis: -L_GAN.

Defaults and where they come from:
    latent_dim 16                   tinygen's choice, measured on MNIST: with Larsen et
                                    al.'s 128 (their CelebA setting) the KL grew to 110
                                    nats, the codes covered N(0, I) poorly (posterior
                                    means of sd 0.63 per dimension, each q of sd 0.44),
                                    and the prior's samples were stroke fragments at
                                    step 750; with 16 the KL stays near 40 nats and
                                    samples are digit-like by step 500 (reconstructions
                                    sharp in both)
    channels 64                     Dec and Dis are DCGAN's (``dcgan.py``), at its width;
                                    Enc is the VAE family's ConvEncoder (32 and 64
                                    channels, 256 hidden units)
    norm layer                      Dis normalises each image alone, so Dis_l(x) is a
                                    function of x as the likelihood (1) says; "batch" is
                                    DCGAN's (and the paper's) batch normalisation
    gamma 1e-2                      the default recon_vs_gan_weight of the authors'
                                    AEGAN model; their 64x64 runs used 1e-5 to 5e-5 on
                                    a deeper layer with more features
    generator_loss non_saturating   -log Dis(.) for Dec, as the GAN recipes here; "minimax"
                                    is log(1 - Dis(.)), the term of L_GAN itself (the
                                    authors' code)
    Adam(2e-4, betas (0.5, 0.999)), batch 64
                                    DCGAN's (Radford et al.); the paper's code used
                                    RMSProp with a decaying rate, batch 64
    epochs 3                        about 2,800 steps. A step costs about 2.5 DCGAN steps
                                    (three networks; Dis sees three batches and is
                                    differentiated three times): 0.57 against 0.23 CPU
                                    seconds, side by side. 3,000 steps took 48 minutes on
                                    2 cores shared with 3 to 5 other runs; fid_lenet 157,
                                    recon_mse 0.014, samples mostly digits

Evaluation: fid_lenet of 10,000 samples Dec(z), z ~ N(0, I) (as the GANs), and recon_mse,
the test images' reconstruction error Dec(mu(x)) per pixel in [0, 1].

Pictures: the GANs' samples.png, progress.png and interpolations.png, and
reconstructions.png: 32 test digits, each beside its reconstruction.
"""
from __future__ import annotations

import os

import numpy as np

from ... import no_grad, optim, tensor
from ...models.gan.dcgan import NORMS
from ...models.gan.gan import GENERATOR_LOSSES
from ...models.gan.vaegan import VAEGAN, backward, objectives
from ...train import NonFiniteError
from ..base import first_non_finite_gradient, fraction, non_negative, one_of
from .base import GANExperiment


class VAEGANExperiment(GANExperiment):
    """Train a VAE-GAN: encoder E, decoder/generator G, discriminator D (images in
    [-1, 1]); ``sample`` decodes z ~ N(0, I)."""

    name = "vaegan"
    defaults = {"latent_dim": 16, "channels": 64, "norm": "layer", "gamma": 1e-2,
                "generator_loss": "non_saturating", "batch_size": 64, "lr": 2e-4,
                "beta1": 0.5, "beta2": 0.999, "lr_schedule": "constant", "ema_decay": 0.0,
                "epochs": 3, "eval_n": 10000, "eval_fid": True}
    rules = {"norm": one_of(*NORMS), "gamma": non_negative,
             "generator_loss": one_of(*GENERATOR_LOSSES), "beta1": fraction,
             "beta2": fraction}
    blas_threads = None   # convolutions: large products, both cores

    def __init__(self, config):
        super().__init__(config)      # builds G and D (``build_players``) and their Adams
        c = self.config
        self.E = self.vaegan.encoder.to(self.device)
        self.opt_e = optim.Adam(self.E.parameters(), lr=c["lr"],
                                betas=(c.get("beta1", 0.5), c.get("beta2", 0.999)))

    def build_players(self):
        if self.toy:
            raise ValueError("vaegan reads 28x28 images; choose mnist or fashion-mnist")
        c = self.config
        self.vaegan = VAEGAN(c["latent_dim"], c["channels"], c["norm"])
        return self.vaegan.decoder, self.vaegan.discriminator

    def modules(self):
        return {"E": self.E, "G": self.G, "D": self.D}

    def optimizers(self):
        return {"E": self.opt_e, "G": self.opt_g, "D": self.opt_d}

    # ---- one step of Algorithm 1
    def training_step(self, x):
        """One forward pass, each network's gradient of its own loss, three Adam steps.

        Raises NonFiniteError, naming the parameter, when a gradient holds NaN or inf;
        then no network has stepped."""
        self.vaegan.train()
        losses = self.vaegan.losses(x)
        objs = objectives(losses, self.config["gamma"], self.config["generator_loss"])
        backward(self.vaegan.networks(), objs)
        optimizers = self.optimizers()
        for name, opt in optimizers.items():   # every gradient checked before any step
            bad = first_non_finite_gradient(opt)
            if bad is not None:
                p, total = bad
                names = {id(q): f"{name}.{n}"
                         for n, q in self.modules()[name].named_parameters()}
                raise NonFiniteError(f"the gradient of {names.get(id(p), 'a parameter')} "
                                     f"(shape {p.shape}) holds {total}")
        for opt in optimizers.values():
            opt.step()
        if self.ema_g is not None:
            self.ema_g.update()
        self.take_snapshot()
        sig = {k: losses[k].sigmoid().mean().item() for k in ("l_x", "l_tilde", "l_p")}
        return {"kl": losses["prior"].mean().item(), "llike": losses["llike"].mean().item(),
                "d_loss": objs["D"].item(), "g_gan": (objs["G"] - self.config["gamma"]
                                                      * losses["llike"].mean()).item(),
                "d_real": sig["l_x"], "d_recon": sig["l_tilde"], "d_sample": sig["l_p"],
                "train_recon_mse": (((losses["x_tilde"] - x) ** 2).mean() / 4).item()}

    # ---- reconstructions
    @no_grad()
    def reconstruct(self, x):
        """Dec(mu(x)) for images x (n, 1, 28, 28) in [-1, 1], a NumPy array in [-1, 1]
        (eval mode; G's EMA weights when kept)."""
        self.vaegan.eval()
        x = tensor(np.asarray(x, np.float32), device=self.device)
        if self.ema_g is not None:
            with self.ema_g.average_parameters():
                return self.vaegan.reconstruct(x).numpy()
        return self.vaegan.reconstruct(x).numpy()

    @no_grad()
    def evaluate(self):
        """fid_lenet of eval_n samples (unless eval_fid is off) and recon_mse: the mean
        squared error per pixel, in [0, 1], of the first eval_n test images' Dec(mu(x))."""
        metrics = super().evaluate()
        x = self.images("test")[0][:self.config.get("eval_n", 10000)]
        sq = [((self.reconstruct(x[i:i + 500]) - x[i:i + 500]) ** 2 / 4).sum()
              for i in range(0, len(x), 500)]
        metrics["recon_mse"] = float(sum(sq) / x.size)
        return metrics

    @no_grad()
    def save_pictures(self, run_dir):
        """The GANs' pictures (samples.png, progress.png, interpolations.png) and
        reconstructions.png: 32 test images, each followed by Dec(mu(x))."""
        super().save_pictures(run_dir)
        from ...plot import save_image_grid
        x = self.images("test")[0][:32]
        pairs = np.stack([x, self.reconstruct(x)], axis=1).reshape(-1, 1, 28, 28)
        save_image_grid((pairs + 1) / 2, os.path.join(run_dir, "reconstructions.png"),
                        nrow=16)
