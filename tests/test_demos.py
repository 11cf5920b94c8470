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
    # 300 images are four batches of 64: four steps of D and of G
    ("dcgan_mnist.py", ["--test-images", "64", "--channels", "16"],
     ["samples.png", "progress.png", "interpolations.png"]),
    ("cgan_mnist.py", ["--test-images", "64", "--channels", "16"], ["class_rows.png"]),
    ("cgan_mnist.py", ["--test-images", "64", "--channels", "16",
                       "--conditioning", "projection"], ["class_rows.png"]),
    # T = 50 and width 8: the bound and Algorithm 2 take 50 network evaluations each
    ("ddpm_mnist.py", ["--test-images", "4", "--timesteps", "50", "--channels", "8"],
     ["forward.png", "samples.png", "reverse.png"]),
    # small flows: L = 2 levels of K = 2 steps, width 16; MAF: 2 MADEs of 64, 4 samples
    ("glow_mnist.py", ["--test-images", "20", "--steps-per-level", "2", "--hidden", "16"],
     ["samples.png", "interpolations.png"]),
    ("made_mnist.py", ["--test-images", "100", "--hidden", "100", "--num-masks", "2"],
     ["samples.png", "conditionals.png"]),
    ("maf_mnist.py", ["--test-images", "20", "--num-mades", "2", "--hidden", "64",
                      "--samples", "4"], ["samples.png"]),
    # 10 hidden units: log Z exact over 2^10 states (2^20 alone take about 9 s)
    ("rbm_mnist.py", ["--hidden", "10", "--test-images", "50"],
     ["filters.png", "gibbs_chain.png", "inpainting.png"]),
    # 300 images are five batches of 64; a tiny energy and short chains
    ("ebm_mnist.py", ["--width", "4", "--langevin-steps", "2", "--sample-steps", "3",
                      "--test-images", "20", "--buffer-size", "100"],
     ["samples.png", "langevin_chain.png", "buffer.png", "inpainting.png"]),
    # one gated layer of 8 and 4 samples: sampling is 784 passes
    ("pixelcnn_mnist.py", ["--channels", "8", "--layers", "1", "--test-images", "20",
                           "--samples", "4"],
     ["receptive_field.png", "samples.png", "completions.png"]),
    ("pixelcnn_mnist.py", ["--model", "pixelcnn", "--channels", "8", "--layers", "1",
                           "--test-images", "20", "--samples", "4"], ["samples.png"]),
    ("nade_mnist.py", ["--hidden", "20", "--test-images", "20"],
     ["samples.png", "conditionals.png", "filters.png"]),
    # 300 images: subsets of 3, 30 and 300; one epoch is three Adam steps per regression
    ("naive_bayes_mnist.py", ["--test-images", "200"],
     ["accuracy_curves.png", "class_means.png", "samples.png"]),
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


# The toy GAN demos need no data files: a few dozen steps each, the same pictures.
@pytest.mark.parametrize("demo, extra, pictures", [
    ("gan_toy.py", ["--steps", "60", "--eval-n", "1000"], ["samples.png", "progress.png"]),
    ("gan_toy.py", ["--dataset", "25gaussians", "--generator-loss", "minimax", "--k", "2",
                    "--steps", "30", "--eval-n", "500"], ["samples.png", "progress.png"]),
    ("wgan_gp_toy.py", ["--steps", "20", "--eval-n", "1000"], ["samples.png"]),
    ("ddpm_toy.py", ["--steps", "100", "--timesteps", "100", "--eval-n", "500"],
     ["forward.png", "reverse.png", "score.png", "ode.png", "density.png"]),
    ("flow_toy.py", ["--steps", "40", "--eval-n", "500"],
     ["density.png", "layers.png", "samples.png"]),
    ("flow_toy.py", ["--model", "glow", "--dataset", "8gaussians", "--steps", "40",
                     "--eval-n", "500"], ["density.png", "layers.png", "samples.png"]),
    # MAF (batch norm between its MADEs) on a set without a known entropy
    ("flow_toy.py", ["--model", "maf", "--dataset", "pinwheel", "--steps", "40",
                     "--eval-n", "500"], ["density.png", "layers.png", "samples.png"]),
    ("flow_toy.py", ["--model", "nice", "--dataset", "circles", "--steps", "40",
                     "--eval-n", "500", "--hidden", "64"],
     ["density.png", "layers.png", "samples.png"]),
    ("ebm_toy.py", ["--steps", "30", "--dsm-steps", "30", "--eval-n", "300",
                    "--sample-steps", "20"],
     ["energy.png", "density.png", "samples.png", "dsm_density.png"]),
    ("gan_problems.py", ["--quick"],
     ["vanishing_gradients.png", "mode_collapse.png", "dirac_gan.png",
      "low_dimensional_support.png"]),
    ("bayesnet_inference.py", ["--quick"], ["sprinkler.png", "asia.png"]),
    ("hmm_casino.py", ["--quick"], ["casino.png"]),
    ("gmm_toy.py", ["--quick"],
     ["density.png", "responsibilities.png", "em_vs_gradient.png", "samples.png"]),
])
def test_toy_gan_demo_runs_and_writes_its_pictures(demo, extra, pictures, tmp_path):
    out = tmp_path / "run"
    result = subprocess.run([sys.executable, os.path.join(DEMOS, demo), "--out", str(out),
                             *extra], capture_output=True, text=True, timeout=600,
                            env={**os.environ, "MPLBACKEND": "Agg"})
    assert result.returncode == 0, result.stderr[-2000:]
    for name in pictures:
        assert (out / name).stat().st_size > 1000, name
        assert (out / name).read_bytes()[:8] == PNG_SIGNATURE, name


def test_gan_problems_runs_one_problem_and_rejects_unknown_ones(tmp_path):
    out = tmp_path / "run"
    script = os.path.join(DEMOS, "gan_problems.py")
    env = {**os.environ, "MPLBACKEND": "Agg"}
    result = subprocess.run([sys.executable, script, "dirac", "--quick", "--out", str(out)],
                            capture_output=True, text=True, timeout=600, env=env)
    assert result.returncode == 0, result.stderr[-2000:]
    assert sorted(os.listdir(out)) == ["dirac_gan.png"]
    assert "simultaneous" in result.stdout and "alternating" in result.stdout
    result = subprocess.run([sys.executable, script, "nonsense", "--out", str(out)],
                            capture_output=True, text=True, timeout=600, env=env)
    assert result.returncode == 2 and "unknown problem" in result.stderr
