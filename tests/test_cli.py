"""The tinygen command: listing, training, resuming, evaluating, and its error messages."""
import json
import os
import subprocess
import sys

import pytest

import tinygen as tg
from tinygen.cli import main

needs_mnist = pytest.mark.skipif(not os.environ.get("TINYGEN_DATA"),
                                 reason="needs MNIST: set TINYGEN_DATA to the data folder")


def test_list_names_models_and_datasets(capsys):
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    assert "fashion-mnist" in out and "8gaussians" in out
    for name in ("classifier", "vae", "cvae", "hvae", "ae", "dae", "vqvae"):
        assert f"  {name} " in out


def test_the_console_script_runs():
    out = subprocess.run([sys.executable, "-m", "tinygen.cli", "info"], capture_output=True,
                         text=True, check=True).stdout
    assert out.startswith(f"tinygen {tg.__version__}")


@pytest.mark.parametrize("argv, message", [
    (["bogus"], "unknown command 'bogus'"),
    (["train"], "which model? known models:"),
    (["train", "nope"], "unknown model 'nope'; known models:"),
    (["train", "classifier", "--dataset", "cifar"], "unknown dataset 'cifar' for classifier"),
    (["train", "classifier", "--device", "tpu"], "unknown device 'tpu'"),
])
def test_mistakes_get_a_message_and_exit_status_2(argv, message, capsys):
    assert main(argv) == 2
    assert message in capsys.readouterr().err


def test_eval_of_a_folder_that_is_not_a_run(tmp_path, capsys):
    assert main(["eval", str(tmp_path)]) == 2
    assert "is not a tinygen run folder" in capsys.readouterr().err


@needs_mnist
def test_train_resume_eval(tmp_path, capsys):
    out = str(tmp_path / "run")
    assert main(["train", "classifier", "--steps", "3", "--batch-size", "16", "--out", out]) == 0
    assert {"config.json", "log.jsonl", "checkpoint.npz", "curves.png"} <= set(os.listdir(out))
    assert main(["train", "classifier", "--steps", "5", "--out", out]) == 0   # resumes
    assert "resuming" in capsys.readouterr().out
    assert len(open(os.path.join(out, "log.jsonl")).readlines()) == 5
    assert json.load(open(os.path.join(out, "config.json")))["batch_size"] == 16  # kept

    assert main(["sample", out]) == 2
    assert "does not generate samples" in capsys.readouterr().err

    assert main(["eval", out]) == 0
    metrics = json.load(open(os.path.join(out, "metrics.json")))
    assert set(metrics) == {"test_accuracy", "fid_train_vs_test", "fid_noise_vs_test",
                            "eval_images", "train_seconds", "device"}
    assert 0 <= metrics["test_accuracy"] <= 1

    config = json.load(open(os.path.join(out, "config.json")))
    json.dump({**config, "model": "vae"}, open(os.path.join(out, "config.json"), "w"))
    assert main(["train", "classifier", "--out", out]) == 2
    assert "holds a run of 'vae'" in capsys.readouterr().err


# --------------------------------------------------------------------------- every mistake

@pytest.mark.parametrize("argv, message", [
    (["train", "vae", "--latent-dim", "0"], "--latent-dim 0: must be positive"),
    (["train", "vae", "--hidden", "0"], "--hidden 0: must be positive"),
    (["train", "vae", "--activation", "foo"],
     "--activation 'foo': choose one of tanh, relu, softplus"),
    (["train", "vae", "--lr-schedule", "foo"], "--lr-schedule 'foo': choose one of constant, "
                                                "cosine"),
    (["train", "vae", "--eval-n", "0"], "--eval-n 0: must be positive"),
    (["train", "vae", "--lr", "nan"], "--lr nan: must be a number"),
    (["train", "vae", "--beta", "-1"], "--beta -1.0: must be 0 or more"),
    (["train", "vae", "--checkpoint-every", "0"], "--checkpoint-every 0: must be positive"),
    (["train", "vae", "--steps", "0"], "--steps 0: must be positive"),
    (["train", "vae", "--out", ""], "--out '': give the run folder a name"),
    (["train", "dae", "--noise-level", "1.5"], "noise_level must be"),
    (["train", "vqvae", "--decay", "1"], "--decay 1.0: must lie in [0, 1)"),
    (["train", "vqvae", "--codebook-update", "kmeans"], "choose one of loss, ema"),
    (["train", "classifier", "--dropout", "1"], "--dropout 1.0: must lie in [0, 1)"),
    (["sample", "x", "--n", "0"], "--n 0: the number of samples must be at least 1"),
    (["sample", "x", "--n", "20000"], "a picture holds at most 10000 samples"),
    (["sample", "x", "--out", "s.jpg"], "give a .png picture or a .npy array"),
])
def test_every_option_is_checked_before_any_work(argv, message, capsys, tmp_path,
                                                 monkeypatch):
    monkeypatch.chdir(tmp_path)           # nothing may be written, not even runs/
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1, err
    assert not os.path.exists(tmp_path / "runs")


def test_train_help_lists_the_models(capsys):
    assert main(["train", "--help"]) == 0
    out = capsys.readouterr().out
    assert "usage: tinygen train MODEL" in out and "  vqvae " in out


def test_cuda_without_cupy_is_one_line_for_every_command(capsys, monkeypatch):
    from tinygen import backend
    monkeypatch.setattr(backend, "_import_cupy", lambda: None)
    monkeypatch.setattr(backend, "_cupy_error", ImportError("No module named 'cupy'"))
    for argv in (["train", "vae", "--device", "cuda"], ["sample", "x", "--device", "cuda"],
                 ["eval", "x", "--device", "cuda"]):
        assert main(argv) == 2, argv
        err = capsys.readouterr().err
        assert "needs CuPy" in err and len(err.strip().splitlines()) == 1, err


def test_a_second_ctrl_c_is_one_line(capsys, monkeypatch):
    from tinygen import cli

    def interrupted(argv):
        raise KeyboardInterrupt
    monkeypatch.setitem(cli.COMMANDS, "train", interrupted)
    assert main(["train", "vae"]) == 130
    assert capsys.readouterr().err.strip() == "tinygen train: interrupted"


@needs_mnist
def test_resuming_refuses_other_settings_and_takes_the_last_budget(tmp_path, capsys):
    out = str(tmp_path / "run")
    small = ["--hidden", "16", "--latent-dim", "4", "--no-eval-fid", "--out", out]
    assert main(["train", "vae", "--steps", "3"] + small) == 0
    assert main(["train", "vae", "--latent-dim", "2", "--out", out]) == 2
    err = capsys.readouterr().err
    assert "--latent-dim 2 (the run has 4)" in err and "another --out" in err
    assert main(["train", "vae", "--epochs", "0.01", "--out", out]) == 0   # 6 steps
    assert len(open(os.path.join(out, "log.jsonl")).readlines()) == 6
    assert main(["train", "vae", "--out", out]) == 0       # the last budget is kept
    assert len(open(os.path.join(out, "log.jsonl")).readlines()) == 6
    assert main(["train", "vae", "--steps", "8", "--out", out]) == 0
    assert len(open(os.path.join(out, "log.jsonl")).readlines()) == 8

    # samples, in batches: a .npy of any size, and a picture
    from tinygen import cli
    cli.SAMPLE_BATCH = 7
    try:
        assert main(["sample", out, "--n", "30", "--out", str(tmp_path / "s.npy")]) == 0
    finally:
        cli.SAMPLE_BATCH = 1000
    import numpy as np
    samples = np.load(tmp_path / "s.npy")
    assert samples.shape == (30, 1, 28, 28) and samples.dtype == np.float32
    assert 0 <= samples.min() and samples.max() <= 1 and not np.allclose(samples[0], samples[29])
    assert [f for f in os.listdir(tmp_path) if f.endswith(".tmp")] == []
