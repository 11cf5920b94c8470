"""The Wasserstein GAN (Arjovsky, Chintala & Bottou 2017, "Wasserstein GAN") and its
gradient penalty (Gulrajani et al. 2017, "Improved Training of Wasserstein GANs").

Why. When p_data and p_g live on low-dimensional manifolds that do not meet, a perfect
discriminator exists, JSD(p_data || p_g) = log 2 whatever their distance, and the
original GAN's generator gets no useful gradient. The Earth Mover's (Wasserstein-1)
distance still measures how far apart they are:

    W(p_data, p_g) = inf_{gamma in Pi(p_data, p_g)} E_{(x, y) ~ gamma} ||x - y||.

By the Kantorovich-Rubinstein duality it is a supremum over 1-Lipschitz functions f:

    W(p_data, p_g) = sup_{||f||_L <= 1} E_{x ~ p_data}[f(x)] - E_{z ~ p_z}[f(G(z))].     (1)

The critic. A network f_w (D without a sigmoid: it scores, it does not classify) is
trained to maximise (1); the generator minimises -E[f_w(G(z))]. The critic is trained
n_critic = 5 times per generator step, so that its value stays close to the supremum and
estimates W (up to the Lipschitz constant K: it estimates K W). Log it: unlike the GAN's
losses it falls as the samples improve.

Keeping f Lipschitz, two ways:

- weight clipping (WGAN): after every critic step each weight is clipped to [-c, c]
  (c = 0.01), with RMSProp (lr 5e-5), since momentum made training unstable (Arjovsky
  et al., section 4);
- the gradient penalty (WGAN-GP): a 1-Lipschitz optimal critic has gradient norm 1
  on the lines between coupled points, so add to the critic's loss

      lambda E_{x_hat}[(||grad_{x_hat} f(x_hat)||_2 - 1)^2],
      x_hat = eps x + (1 - eps) G(z),   eps ~ U[0, 1],                                   (2)

  with lambda = 10, one eps per sample (the same for all its pixels: x_hat lies on the
  line between one real and one generated image) and Adam(1e-4, betas (0, 0.9))
  (Gulrajani et al., Algorithm 1), and no batch normalisation in the critic (section 4). The penalty's
  gradient with respect to w differentiates grad_x f: a second-order derivative, which
  the engine records with ``create_graph=True``.

Symbols and code:

    symbol                  code                                    shape
    f_w(x)                  critic(x)                               (m,) scores
    -(1), the critic's      critic_loss(f(x), f(G(z)))              scalar
      loss
    G's loss                generator_loss(f(G(z)))                 scalar
    W estimate              wasserstein_estimate(f(x), f(G(z)))     scalar
    clipping to [-c, c]     clip_weights_(critic, c)
    the penalty (2)         gradient_penalty(critic, x, G(z), lam)  scalar
"""
from __future__ import annotations

from ... import grad, rand
from ...autograd import mark_modified


def wasserstein_estimate(real_scores, fake_scores):
    """E[f(x)] - E[f(G(z))], the critic's estimate of W(p_data, p_g), eq. (1), in the
    units of the Euclidean distance between two samples (for images: between two
    vectors of pixels in [-1, 1]), times the critic's Lipschitz constant."""
    return real_scores.mean() - fake_scores.mean()


def critic_loss(real_scores, fake_scores):
    """The critic descends -(E[f(x)] - E[f(G(z))]) = E[f(G(z))] - E[f(x)]."""
    return fake_scores.mean() - real_scores.mean()


def generator_loss(fake_scores):
    """G descends -E[f(G(z))]: it moves its samples up the critic's slope."""
    return -fake_scores.mean()


def clip_weights_(critic, c: float = 0.01) -> None:
    """Clip every parameter of the critic to [-c, c], in place (Arjovsky et al.,
    Algorithm 1): a crude way of bounding its Lipschitz constant.

    Raises ValueError for c <= 0."""
    if not c > 0:
        raise ValueError(f"clip_weights_: c must be positive, got {c!r}")
    for p in critic.parameters():
        p.data.clip(-c, c, out=p.data)
        mark_modified(p)   # graphs that saved the old weights now refuse backward


def interpolate(real, fake, eps=None):
    """x_hat = eps x + (1 - eps) G(z), eq. (2), with one eps ~ U[0, 1] per sample, shared
    by all its features: ``eps`` has shape (m, 1, ..., 1) (drawn when not given)."""
    shape = (real.shape[0],) + (1,) * (real.ndim - 1)
    if eps is None:
        eps = rand(*shape, device=real.device)
    elif tuple(eps.shape) != shape:   # else it would broadcast over features: one per pixel
        raise ValueError(f"interpolate: eps must have shape {shape}, one weight per sample; "
                         f"got {tuple(eps.shape)}")
    return eps * real + (1 - eps) * fake


def gradient_penalty(critic, real, fake, lam: float = 10.0, eps=None):
    """lambda E[(||grad_{x_hat} f(x_hat)||_2 - 1)^2], eq. (2), on x_hat between each real
    sample and a generated one (``interpolate``). The gradient is taken with
    ``create_graph=True``, so the penalty can be differentiated with respect to the
    critic's weights. x_hat is a new leaf: no gradient of the penalty reaches G.

    Args:
        critic: the critic f, (m, ...) -> (m,) scores.
        real, fake: (m, ...) batches of the same shape.
        lam: lambda (10 in Gulrajani et al.).
        eps: optional (m, 1, ..., 1) interpolation weights.

    Returns a scalar Tensor.
    """
    if real.shape != fake.shape:
        raise ValueError(f"gradient_penalty: real {real.shape} and fake {fake.shape} "
                         "batches must have the same shape")
    x_hat = interpolate(real, fake, eps).detach()
    x_hat.requires_grad = True
    (g,) = grad(critic(x_hat).sum(), x_hat, create_graph=True)
    # ||grad||_2 per sample, its square root kept off 0 (the gradient of sqrt at 0 is
    # infinite; a critic whose gradient vanishes exactly is penalised as 1 all the same)
    norm = ((g * g).flatten(1).sum(axis=1) + 1e-12).sqrt()
    return lam * ((norm - 1) ** 2).mean()
