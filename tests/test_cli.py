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


@pytest.mark.skipif(tg.cuda_available(), reason="CUDA is available here")
def test_asking_for_cuda_without_it(capsys):
    assert main(["train", "classifier", "--device", "cuda"]) == 2
    assert "cuda" in capsys.readouterr().err


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
