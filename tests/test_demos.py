"""The model demos run from start to finish (one short epoch on a few hundred images,
evaluated on a few dozen test images) and write the pictures they promise."""
import os
import subprocess
import sys

import pytest

needs_mnist = pytest.mark.skipif(not os.environ.get("TINYGEN_DATA"),
                                 reason="needs MNIST: set TINYGEN_DATA to the data folder")
DEMOS = os.path.join(os.path.dirname(__file__), os.pardir, "demos")
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@needs_mnist
@pytest.mark.parametrize("demo, extra, pictures", [
    ("vae_mnist.py", ["--latent-dim", "2", "--test-images", "10", "--eval-k", "50"],
     ["samples.png", "reconstructions.png", "manifold.png"]),
    ("vae_mnist.py", ["--k", "5", "--test-images", "10", "--eval-k", "50"], ["samples.png"]),
    ("cvae_mnist.py", ["--test-images", "100"], ["class_rows.png"]),
    ("dae_mnist.py", ["--noise", "gaussian", "--noise-level", "0.3", "--test-images", "32"],
     ["denoising.png"]),
    ("vqvae_mnist.py", ["--ema", "--test-images", "32"],
     ["reconstructions.png", "codebook_usage.png"]),
    # LeNet's steps are the slowest: one batch of 128 (a later --train-images wins).
    ("classifier_mnist.py", ["--train-images", "128", "--test-images", "64"],
     ["predictions.png", "mistakes.png"]),
])
def test_demo_runs_and_writes_its_pictures(demo, extra, pictures, tmp_path):
    out = tmp_path / "run"
    result = subprocess.run([sys.executable, os.path.join(DEMOS, demo), "--epochs", "1",
                             "--train-images", "300", "--out", str(out), *extra],
                            capture_output=True, text=True, timeout=600,
                            env={**os.environ, "MPLBACKEND": "Agg"})
    assert result.returncode == 0, result.stderr[-2000:]
    for name in pictures:
        assert (out / name).stat().st_size > 1000, name
        assert (out / name).read_bytes()[:8] == PNG_SIGNATURE, name
