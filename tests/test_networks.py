"""The shared networks: shapes both ways, and a clear error for an unknown kind."""
import numpy as np
import pytest

import tinygen as tg
from tinygen.models import networks


def test_mlp_layers():
    net = networks.mlp([784, 400, 20])
    assert [type(m).__name__ for m in net] == ["Linear", "ReLU", "Linear"]
    assert net(tg.randn(3, 784)).shape == (3, 20)
    with pytest.raises(ValueError):
        networks.mlp([5])


@pytest.mark.parametrize("kind", ["mlp", "conv"])
def test_encoders_and_decoders_map_images_and_codes(kind, device):
    enc = networks.encoder(kind, 16).to(device)
    dec = networks.decoder(kind, 8).to(device)
    x = tg.randn(4, 1, 28, 28, device=device, requires_grad=True)
    h = enc(x)
    assert h.shape == (4, 16)
    out = dec(h[:, :8])
    assert out.shape == (4, 1, 28, 28)
    out.sum().backward()
    assert x.grad.shape == x.shape
    with pytest.raises(ValueError, match="'mlp' or 'conv'"):
        networks.encoder("resnet", 4)


def test_glorot_init_draws_within_its_bound_and_zeroes_biases():
    tg.manual_seed(0)
    net = networks.glorot_init_(networks.mlp([784, 200, 50]))
    for layer in (net[0], net[2]):
        w = layer.weight.numpy()
        bound = np.sqrt(6 / sum(w.shape))
        assert np.abs(w).max() <= bound
        # uniform on (-a, a): standard deviation a / sqrt(3), not PyTorch's narrower one
        np.testing.assert_allclose(w.std(), bound / np.sqrt(3), rtol=0.02)
        assert not layer.bias.numpy().any()
