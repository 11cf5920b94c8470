"""Energy-based models: p_theta(x) = exp(-E_theta(x)) / Z(theta), trained without Z.

    energies.py        the energies E_theta(x): a Gaussian (quadratic) energy with its
                       exact partition function, log density and samples; a SiLU MLP for
                       the 2-D toy sets; the convolutional energy for 28x28 images
    langevin.py        maximum likelihood by sampling: Langevin dynamics (with the
                       decoupled noise of EBM practice), the contrastive loss, and the
                       replay buffer; CD-k, PCD and the buffer as the chains' starting
                       points
    score_matching.py  fitting the score s_theta = -grad_x E_theta instead: exact
                       (Hyvarinen 2005), sliced (Song et al. 2019) and denoising
                       (Vincent 2011) score matching
    rbm.py             the restricted Boltzmann machine: block Gibbs sampling, CD-k and
                       PCD, its exact and annealed-importance-sampled partition function
"""
from .energies import ConvEnergy, GaussianEnergy, MLPEnergy, quadratic_energy
from .langevin import ReplayBuffer, contrastive_loss, langevin
from .rbm import RBM, ais_log_partition, exact_log_partition
from .score_matching import (denoising_score_matching_loss, score, score_matching_loss,
                             sliced_score_matching_loss)

__all__ = ["ConvEnergy", "GaussianEnergy", "MLPEnergy", "quadratic_energy", "ReplayBuffer",
           "contrastive_loss", "langevin", "RBM", "ais_log_partition", "exact_log_partition",
           "denoising_score_matching_loss", "score", "score_matching_loss",
           "sliced_score_matching_loss"]
