"""The VAE-GAN (Larsen, Sønderby, Larochelle & Winther 2016, "Autoencoding beyond pixels
using a learned similarity metric"): the sharp samples of a GAN with the stable training
of a VAE, by using a GAN discriminator's features as the VAE's reconstruction loss.

Three networks. The encoder and the decoder are a VAE's; the decoder is also the GAN's
generator, and the discriminator learns the similarity the VAE is measured by:

    z ~ Enc(x) = q(z | x) = N(mu(x), diag sigma^2(x)),     p(z) = N(0, I),
    x_tilde = Dec(z),                                       Dis(x) in (0, 1).

The learned similarity. A pixel-wise likelihood scores a digit shifted by one pixel as
far from itself; the features Dis_l(x) of the l-th layer of Dis are trained to tell what
makes images look real, so the VAE's likelihood is a Gaussian in that feature space (here
Dis_l is the output of Dis's last convolution, after its norm and LeakyReLU, 2c x 7 x 7):

    p(Dis_l(x) | z) = N(Dis_l(x) | Dis_l(x_tilde), I),
    L_llike^Dis_l = -E_{q(z|x)}[log p(Dis_l(x) | z)]
                  = E_{q(z|x)}[1/2 ||Dis_l(x) - Dis_l(x_tilde)||^2] + F/2 log(2 pi),  (1)

F the number of features. The constant F/2 log(2 pi) (5,763 nats for F = 6272) has no
gradient and is dropped: ``feature_nll`` returns the squared-distance term alone.

The three losses, each per image in nats (the prior and the GAN term as in a VAE and a GAN):

    L_prior = KL(q(z|x) || p(z)) = 1/2 sum_j (mu_j^2 + sigma_j^2 - 1 - log sigma_j^2), (2)
    L_GAN   = log Dis(x) + log(1 - Dis(Dec(z))) + log(1 - Dis(Dec(Enc(x)))),  z ~ p(z). (3)

(3) is the GAN's value with two kinds of fakes: samples x_p = Dec(z_p) from the prior and
reconstructions x_tilde (the paper's "discriminating based on samples from p(z) and
q(z|x)": both, so that Dis judges what the VAE makes as well as what it draws).

The updates (Algorithm 1), one batch, every gradient taken at the same weights:

    theta_Enc  descends  L_prior + L_llike^Dis_l                  (the VAE's terms)
    theta_Dec  descends  gamma L_llike^Dis_l + L_GAN              (reconstruct; fool Dis)
    theta_Dis  ascends   L_GAN, i.e. descends -L_GAN, its cross-entropy.

The paper's "limiting error signals to relevant networks": L_llike reaches Dis through
Dis_l, but Dis does not learn from it (it would shrink its features towards 0, where
every reconstruction is perfect); L_GAN reaches Enc through x_tilde, but Enc learns only
the VAE's terms. gamma weights reconstructing against fooling Dis. (The paper's Algorithm
1 writes the Dec and Dis updates as descending gamma L_llike - L_GAN and L_GAN: there
L_GAN stands for the cross-entropy -(3), with which both signs agree; with (3) as written,
Dec must descend +L_GAN to fool Dis.) Dec's GAN term, ``generator_loss``, is the minimax
log(1 - Dis(.)) of (3) itself or its non-saturating stand-in -log Dis(.), as in ``gan.py``.

Symbols and code:

    symbol              code                                    shape
    x                   x                                       (m, 1, 28, 28) in [-1, 1]
    mu, log sigma^2     model.encode(x)                         (m, d) each
    q(z | x), p(z)      model.posterior(x), model.prior()       event (d,)
    x_tilde, x_p        model.losses(x)["x_tilde"], ["x_p"]     (m, 1, 28, 28)
    Dis_l(x)            model.discriminator.features(x)         (m, F), F = 2c*7*7
    logit Dis(x)        model.discriminator(x)                  (m,)
    (1) without const   feature_nll(h, h_tilde)                 (m,) nats
    (2)                 model.losses(x)["prior"]                (m,) nats
    (3)                 gan_value(l_x, l_tilde, l_p)            scalar, nats (<= 0)
    the three losses    objectives(losses, gamma, kind)         {"E", "G", "D"} scalars
    Algorithm 1's grads backward(model.networks(), objectives)  into each .grad
"""
from __future__ import annotations

from ... import grad, nn
from ...distributions import Independent, kl_divergence
from ...nn import functional as F
from ...ops import cat
from ..networks import ConvEncoder
from ..vae.common import (diagonal_normal, module_device, split_gaussian_params,
                          standard_normal)
from .dcgan import NORMS, DCGANDiscriminator, DCGANGenerator
from .gan import GENERATOR_LOSSES, generator_loss, sample_noise


# --------------------------------------------------------------------------- the losses

def feature_nll(h, h_tilde):
    """-log N(h | h_tilde, I) + F/2 log(2 pi) = 1/2 ||h - h_tilde||^2 per row, eq. (1)
    without its constant: features h, h_tilde (m, F) -> (m,) nats.

    Raises ValueError for shapes that differ."""
    if h.shape != h_tilde.shape:
        raise ValueError(f"feature_nll: features of x {h.shape} and of x_tilde "
                         f"{h_tilde.shape} must have the same shape")
    diff = h - h_tilde
    return 0.5 * (diff * diff).sum(axis=1)


def gan_value(l_x, l_tilde, l_p):
    """L_GAN, eq. (3), from Dis's logits on data x (m,), reconstructions x_tilde (m,) and
    prior samples x_p (m',): mean log Dis(x) + mean log(1 - Dis(x_tilde)) + mean
    log(1 - Dis(x_p)), a scalar in nats (<= 0), each log a softplus of the logit."""
    return (F.logsigmoid(l_x).mean() + F.logsigmoid(-l_tilde).mean()
            + F.logsigmoid(-l_p).mean())


def objectives(losses: dict, gamma: float = 1e-2, kind: str = "non_saturating") -> dict:
    """The loss each network descends in Algorithm 1, scalars (batch means, nats):

        "E": L_prior + L_llike,   "G": gamma L_llike + Dec's GAN term,   "D": -L_GAN,

    where Dec's GAN term is ``gan.generator_loss`` on x_tilde plus on x_p ("minimax":
    the terms of L_GAN itself; "non_saturating": -log Dis instead).

    Args:
        losses: ``VAEGAN.losses(x)``.
        gamma: the weight of reconstruction against fooling Dis (>= 0).
        kind: "non_saturating" or "minimax".

    Raises ValueError for a negative gamma or another kind.
    """
    if not gamma >= 0:
        raise ValueError(f"gamma weighs L_llike in the decoder's loss: must be 0 or more, "
                         f"got {gamma!r}")
    if kind not in GENERATOR_LOSSES:
        raise ValueError(f"generator loss {kind!r}: choose one of "
                         f"{', '.join(GENERATOR_LOSSES)}")
    llike = losses["llike"].mean()
    fool = generator_loss(losses["l_tilde"], kind) + generator_loss(losses["l_p"], kind)
    return {"E": losses["prior"].mean() + llike, "G": gamma * llike + fool,
            "D": -losses["gan"]}


def backward(networks: dict, objectives: dict) -> None:
    """Algorithm 1's routing: each network's parameters get, in ``.grad``, the gradient of
    its own objective alone (``grad`` of it with respect to them), though every objective
    is a function of all three networks. ``networks`` and ``objectives`` share keys
    (``VAEGAN.networks()`` and ``objectives(...)``); a parameter an objective does not
    reach gets ``.grad`` None.

    Raises ValueError when the keys differ."""
    if set(networks) != set(objectives):
        raise ValueError(f"backward: networks {sorted(networks)} and objectives "
                         f"{sorted(objectives)} must name the same networks")
    names = list(networks)
    for i, name in enumerate(names):
        params = [p for p in networks[name].parameters() if p.requires_grad]
        grads = grad(objectives[name], params, retain_graph=i < len(names) - 1,
                     allow_unused=True)
        for p, g in zip(params, grads):
            p.grad = g


# --------------------------------------------------------------------------- the model

class VAEGAN(nn.Module):
    """Enc, Dec and Dis of a VAE-GAN on 28x28 images in [-1, 1].

    Enc is the VAE family's ``ConvEncoder`` (two stride-2 convolutions, a hidden layer,
    then [mu, log sigma^2]); Dec is DCGAN's generator (tanh output); Dis is DCGAN's
    discriminator, whose ``features`` (m, 2c*7*7) are Dis_l.

    Args:
        latent_dim: d, the size of z.
        channels: c of Dec and Dis (DCGAN's width).
        norm: Dis's normalisation, "layer" (each image alone: Dis_l(x) is a function of
            x, as in eq. (1)), "batch" (statistics of the batch of x, x_tilde and x_p
            together) or "none".
        encoder_channels, encoder_hidden: the width of Enc's convolutions and hidden layer.

    Raises ValueError for an unknown norm or a size below 1.
    """

    def __init__(self, latent_dim: int = 16, channels: int = 64, norm: str = "layer",
                 encoder_channels: int = 32, encoder_hidden: int = 256):
        super().__init__()
        if norm not in NORMS:
            raise ValueError(f"norm {norm!r}: choose one of {', '.join(NORMS)}")
        if min(latent_dim, channels, encoder_channels, encoder_hidden) < 1:
            raise ValueError("VAEGAN: latent_dim, channels, encoder_channels and "
                             "encoder_hidden must be at least 1")
        self.latent_dim = latent_dim
        self.encoder = ConvEncoder(2 * latent_dim, encoder_hidden, encoder_channels)
        self.decoder = DCGANGenerator(latent_dim, channels)
        self.discriminator = DCGANDiscriminator(channels, norm=norm)

    def networks(self) -> dict:
        """{"E": Enc, "G": Dec, "D": Dis}, the keys of ``objectives``."""
        return {"E": self.encoder, "G": self.decoder, "D": self.discriminator}

    # ---- q(z | x) and p(z)
    def encode(self, x):
        """x (m, 1, 28, 28) -> mu, log sigma^2, each (m, d).

        Raises ValueError for another shape of x."""
        if x.ndim != 4 or tuple(x.shape[1:]) != (1, 28, 28):
            raise ValueError(f"VAEGAN: images must have shape (m, 1, 28, 28), got "
                             f"{x.shape}")
        return split_gaussian_params(self.encoder(x), self.latent_dim)

    def posterior(self, x) -> Independent:
        """q(z | x) = N(mu, diag sigma^2): batch shape (m,), event shape (d,)."""
        return diagonal_normal(*self.encode(x))

    def prior(self) -> Independent:
        """p(z) = N(0, I) over R^d."""
        return standard_normal(self.latent_dim, device=module_device(self))

    # ---- one forward pass of Algorithm 1
    def losses(self, x, z_p=None) -> dict:
        """Everything Algorithm 1 computes on a batch x (m, 1, 28, 28) in [-1, 1]:

            "prior"  (m,)   L_prior, eq. (2), nats, in closed form
            "llike"  (m,)   L_llike^Dis_l, eq. (1) without its constant, nats, one z ~ q
            "gan"    ()     L_GAN, eq. (3), nats
            "l_x", "l_tilde", "l_p"   (m,) Dis's logits on x, x_tilde and x_p
            "x_tilde", "x_p"          (m, 1, 28, 28) Dec(z), z ~ q(z|x), and Dec(z_p)

        z_p (m', d) defaults to m fresh draws from p(z). Dec sees z and z_p in one batch,
        Dis sees x, x_tilde and x_p in one batch (one pass of each network).
        """
        m = x.shape[0]
        q = self.posterior(x)
        z = q.rsample()                                                     # (m, d)
        if z_p is None:
            z_p = sample_noise(m, self.latent_dim, x.device)
        fakes = self.decoder(cat([z, z_p], axis=0))
        x_tilde, x_p = fakes[:m], fakes[m:]
        h = self.discriminator.features(cat([x, fakes], axis=0))          # (2m + m', F)
        logits = self.discriminator.head(h).reshape(-1)
        l_x, l_tilde, l_p = logits[:m], logits[m:2 * m], logits[2 * m:]
        return {"prior": kl_divergence(q, self.prior()),
                "llike": feature_nll(h[:m], h[m:2 * m]),
                "gan": gan_value(l_x, l_tilde, l_p),
                "l_x": l_x, "l_tilde": l_tilde, "l_p": l_p, "x_tilde": x_tilde, "x_p": x_p}

    def reconstruct(self, x):
        """Dec(mu(x)), the reconstruction at the posterior mean: (m, 1, 28, 28) in
        [-1, 1]."""
        mu, _ = self.encode(x)
        return self.decoder(mu)
