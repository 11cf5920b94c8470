"""Diffusion models.

    schedule.py     the noise schedules (linear, cosine) and the quantities derived from
                    beta_t: alpha_t, alpha_bar_t, the posterior's mean weights and beta~_t
    ddpm.py         the DDPM (Ho et al. 2020): q(x_t | x_0) in closed form, the posterior,
                    L_simple, ancestral sampling, the variational bound with its
                    discretised Gaussian decoder
    unet.py         eps_theta(x_t, t): a small U-Net for 28x28 images, an MLP for points;
                    the noisy-image classifier p_phi(c | x_t, t) of classifier guidance
    ddim.py         DDIM (Song et al. 2021): few-step, deterministic or stochastic sampling
    guidance.py     classifier guidance (Dhariwal & Nichol 2021) and classifier-free
                    guidance (Ho & Salimans 2022)
    applications.py inpainting (with RePaint's resampling) and denoising
    sde.py          the score-SDE view (Song et al. 2021): the VP SDE, the reverse SDE with
                    predictor-corrector sampling, the probability-flow ODE (RK4,
                    Dormand-Prince) and its exact likelihood, denoising score matching
"""
from .ddpm import GaussianDiffusion, discretized_gaussian_log_likelihood
from .schedule import NoiseSchedule
from .sde import (VPSDE, divergence, dsm_loss, dsm_target, langevin_step, ode_log_likelihood,
                  ode_sample, odeint, probability_flow_drift, reverse_sde_sample,
                  score_from_eps)
from .unet import (MLPDenoiser, NoisyClassifier, ResBlock, SelfAttention, UNet,
                   timestep_embedding)

__all__ = ["GaussianDiffusion", "discretized_gaussian_log_likelihood", "NoiseSchedule",
           "MLPDenoiser", "NoisyClassifier", "ResBlock", "SelfAttention", "UNet",
           "timestep_embedding", "VPSDE", "divergence", "dsm_loss", "dsm_target",
           "langevin_step", "ode_log_likelihood", "ode_sample", "odeint",
           "probability_flow_drift", "reverse_sde_sample", "score_from_eps"]
