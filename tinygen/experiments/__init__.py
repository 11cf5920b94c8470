"""The training recipes, one per model, and the registry the ``tinygen`` command reads.

The registry is lazy: each entry names the module and class of a recipe, with the line
``tinygen list`` prints, so listing the models imports none of them. ``get_experiment``
imports the one asked for. (tests/test_registry.py checks that every entry agrees with
its class.)
"""
from __future__ import annotations

import importlib
from typing import NamedTuple

from ..data import DATASETS, TOY_DATASETS


class Entry(NamedTuple):
    """Where a recipe lives and what ``tinygen list`` says of it."""
    module: str
    cls: str
    datasets: tuple
    description: str


REGISTRY = {
    "classifier": Entry("tinygen.experiments.classifier", "ClassifierExperiment", DATASETS,
                        "LeNet-style classifier; measures samples (accuracy, FID on its "
                        "features)"),
    "vae": Entry("tinygen.experiments.vae.vae", "VAEExperiment", DATASETS,
                 "variational autoencoder; k > 1 trains the IWAE bound"),
    "hvae": Entry("tinygen.experiments.vae.hvae", "HierarchicalVAEExperiment", DATASETS,
                  "VAE with two stochastic layers (Burda et al.); k > 1 trains the IWAE "
                  "bound"),
    "cvae": Entry("tinygen.experiments.vae.cvae", "ConditionalVAEExperiment", DATASETS,
                  "conditional VAE: draws a chosen class"),
    "ae": Entry("tinygen.experiments.vae.autoencoder", "AutoEncoderExperiment", DATASETS,
                "autoencoder z = f(x), x_hat = g(z); --penalty l1 makes it sparse (not "
                "generative: no sampling)"),
    "dae": Entry("tinygen.experiments.vae.autoencoder", "DenoisingAutoEncoderExperiment",
                 DATASETS, "denoising autoencoder: reconstructs x from a corrupted x_tilde "
                           "(--noise masking|gaussian, --noise-level p|sigma)"),
    "vqvae": Entry("tinygen.experiments.vae.vqvae", "VQVAEExperiment", DATASETS,
                   "VQ-VAE: discrete 7x7 codes from a learned codebook (van den Oord et al. "
                   "2017)"),
    "gan": Entry("tinygen.experiments.gan.gan", "VanillaGANExperiment",
                 DATASETS + TOY_DATASETS,
                 "GAN with MLP players (Goodfellow et al. 2014); --generator-loss minimax|"
                 "non_saturating, --k D steps per G step"),
    "dcgan": Entry("tinygen.experiments.gan.dcgan", "DCGANExperiment", DATASETS,
                   "deep convolutional GAN (Radford et al. 2016)"),
    "cgan": Entry("tinygen.experiments.gan.cgan", "ConditionalGANExperiment", DATASETS,
                  "conditional DCGAN (Mirza & Osindero 2014): draws a chosen class; "
                  "--conditioning concat|projection"),
    "wgan": Entry("tinygen.experiments.gan.wgan", "WGANExperiment", DATASETS + TOY_DATASETS,
                  "Wasserstein GAN with weight clipping and RMSprop (Arjovsky et al. 2017)"),
    "wgan-gp": Entry("tinygen.experiments.gan.wgan", "WGANGPExperiment",
                     DATASETS + TOY_DATASETS,
                     "Wasserstein GAN with the gradient penalty (Gulrajani et al. 2017)"),
    "vaegan": Entry("tinygen.experiments.gan.vaegan", "VAEGANExperiment", DATASETS,
                    "VAE-GAN (Larsen et al. 2016): a VAE whose reconstruction is scored in a "
                    "GAN discriminator's features; --gamma"),
    "ddpm": Entry("tinygen.experiments.diffusion.ddpm", "DDPMExperiment",
                  DATASETS + TOY_DATASETS,
                  "denoising diffusion (Ho et al. 2020), sampled by DDIM (--sampler "
                  "ddim|ancestral, --sample-steps S)"),
    "ddpm-cfg": Entry("tinygen.experiments.diffusion.cfg",
                      "ClassifierFreeGuidanceExperiment", DATASETS,
                      "class-conditional DDPM with classifier-free guidance (Ho & Salimans "
                      "2022); --guidance omega, --p-uncond"),
    "ddpm-cg": Entry("tinygen.experiments.diffusion.classifier_guidance",
                     "ClassifierGuidanceExperiment", DATASETS,
                     "classifier guidance (Dhariwal & Nichol 2021): trains a noisy-image "
                     "classifier for a ddpm run (--ddpm-run) and samples it guided (--scale)"),
    "ldm": Entry("tinygen.experiments.diffusion.latent", "LatentDiffusionExperiment",
                 DATASETS, "latent diffusion (Rombach et al. 2022): a DDPM in the latent "
                           "space of a trained VAE run (--autoencoder-run)"),
    "nice": Entry("tinygen.experiments.flows.flow", "NICEExperiment", DATASETS + TOY_DATASETS,
                  "NICE (Dinh et al. 2015): additive couplings, exact likelihood"),
    "realnvp": Entry("tinygen.experiments.flows.flow", "RealNVPExperiment",
                     DATASETS + TOY_DATASETS,
                     "RealNVP (Dinh et al. 2017): affine couplings, checkerboard and channel "
                     "masks, multi-scale"),
    "glow": Entry("tinygen.experiments.flows.flow", "GlowExperiment", DATASETS + TOY_DATASETS,
                  "Glow (Kingma & Dhariwal 2018): ActNorm, invertible 1x1 convolutions, "
                  "sampling at a temperature"),
    "maf": Entry("tinygen.experiments.flows.flow", "MAFExperiment", DATASETS + TOY_DATASETS,
                 "masked autoregressive flow (Papamakarios et al. 2017): stacked MADEs, "
                 "density in one pass, sampling in D"),
    "made": Entry("tinygen.experiments.flows.made", "MADEExperiment", DATASETS,
                  "MADE (Germain et al. 2015): masked autoencoder, exact likelihood of "
                  "binarised images; --num-masks for the order-agnostic ensemble"),
    "ebm": Entry("tinygen.experiments.ebm.ebm", "EBMExperiment", DATASETS + TOY_DATASETS,
                 "energy-based model trained with Langevin negative samples (--chains "
                 "replay|short_run|pcd|cd; Du & Mordatch 2019, Nijkamp et al. 2019)"),
    "rbm": Entry("tinygen.experiments.ebm.rbm", "RBMExperiment", DATASETS,
                 "restricted Boltzmann machine trained by CD-k or PCD (--persistent); test "
                 "log-likelihood exact or by AIS"),
    "nade": Entry("tinygen.experiments.autoregressive.nade", "NADEExperiment", DATASETS,
                  "NADE (Larochelle & Murray 2011): shared-weight autoregressive network, "
                  "exact likelihood of binarised images"),
    "pixelcnn": Entry("tinygen.experiments.autoregressive.pixelcnn", "PixelCNNExperiment",
                      DATASETS, "PixelCNN (van den Oord et al. 2016): masked convolutions, "
                                "exact likelihood of binarised images"),
    "gated-pixelcnn": Entry("tinygen.experiments.autoregressive.pixelcnn",
                            "GatedPixelCNNExperiment", DATASETS,
                            "gated PixelCNN (van den Oord et al. 2016b): vertical and "
                            "horizontal stacks, no blind spot"),
    "gmm": Entry("tinygen.experiments.classic.gmm", "GMMExperiment", TOY_DATASETS + DATASETS,
                 "Gaussian mixture fitted by EM (images: in a PCA space); --covariance "
                 "full|diag"),
    "hmm": Entry("tinygen.experiments.classic.hmm", "HMMExperiment", ("casino",),
                 "hidden Markov model learned by Baum-Welch; the occasionally dishonest "
                 "casino (Durbin et al. 1998)"),
    "naive-bayes": Entry("tinygen.experiments.classic.naive_bayes", "NaiveBayesExperiment",
                         DATASETS, "naive Bayes against logistic regression on binarised "
                                   "images, with missing pixels (Ng & Jordan 2002)"),
}


def get_experiment(name: str):
    """The Experiment class registered as ``name``, imported now.

    Raises KeyError naming the known models for an unknown name."""
    if name not in REGISTRY:
        raise KeyError(f"unknown model '{name}'; known models: {', '.join(sorted(REGISTRY))}")
    entry = REGISTRY[name]
    return getattr(importlib.import_module(entry.module), entry.cls)
