"""The models: the math and the modules of each family, one file per model (or per close
group), each reading like its paper.

    vae/            autoencoders and variational autoencoders (AE, DAE, VAE, IWAE,
                    two-layer VAE, conditional VAE, VQ-VAE)
    gan/            generative adversarial networks (GAN, DCGAN, conditional GAN, WGAN,
                    WGAN-GP, VAE-GAN)
    diffusion/      diffusion models (DDPM with its variational bound, DDIM; the U-Net)
    networks.py     the networks the families share (MLPs, small convolutional encoders
                    and decoders for 28x28 images, Glorot initialisation)
    classifier.py   LeNet, the classifier that measures samples

How a model is trained (its defaults, data, training step, evaluation and pictures)
lives apart, in ``tinygen.experiments``. Nothing here imports it.
"""
