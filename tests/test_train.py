"""The shared training loop: logs, checkpoints, resuming exactly, Ctrl-C, seeds."""
import json
import os
import signal

import numpy as np
import pytest

import tinygen as tg
from tinygen import nn, optim
from tinygen.nn import functional as F
from tinygen.experiments.base import Experiment
from tinygen.train import CHECKPOINT, CONFIG, LOG, NonFiniteError, fit, read_log


class ShuffledLoader:
    """A minimal loader with the protocol fit needs: iteration that resumes mid-epoch,
    len, state_dict and load_state_dict; shuffled with its own seeded generator."""

    def __init__(self, x, y, batch_size, seed):
        self.x, self.y, self.batch_size, self.seed = x, y, batch_size, seed
        self.epoch = self.position = 0

    def __len__(self):
        return len(self.x) // self.batch_size

    def __iter__(self):
        order = tg.generator(self.seed + self.epoch).permutation(len(self.x))
        while self.position < len(self):
            idx = order[self.position * self.batch_size:(self.position + 1) * self.batch_size]
            self.position += 1
            yield tg.tensor(self.x[idx]), tg.tensor(self.y[idx])
        self.epoch, self.position = self.epoch + 1, 0

    def state_dict(self):
        return {"epoch": self.epoch, "position": self.position}

    def load_state_dict(self, state):
        self.epoch, self.position = int(state["epoch"]), int(state["position"])


class Regression(Experiment):
    """A small MLP with dropout (so the global random stream matters) on fixed data."""
    name = "regression"
    defaults = {"batch_size": 8, "lr": 0.01}

    def __init__(self, config, fail_at=None, signum=signal.SIGINT):
        super().__init__(config)
        self.signum = signum
        tg.manual_seed(config["seed"])
        self.net = nn.Sequential(nn.Linear(3, 16), nn.Tanh(), nn.Dropout(0.2), nn.Linear(16, 1))
        self.opt = optim.Adam(self.net.parameters(), lr=config["lr"])
        self.ema = optim.EMA(self.net.parameters(), decay=0.9)
        self.fail_at, self.calls = fail_at, 0

    def modules(self):
        return {"net": self.net}

    def optimizers(self):
        return {"opt": self.opt}

    def emas(self):
        return {"ema": self.ema}

    def train_loader(self):
        rng = np.random.default_rng(0)
        x = rng.standard_normal((40, 3)).astype(np.float32)
        y = (x @ np.array([[1.0], [-2.0], [0.5]], np.float32)).astype(np.float32)
        return ShuffledLoader(x, y, self.config["batch_size"], self.config["seed"])

    def training_step(self, batch):
        self.calls += 1
        if self.calls == self.fail_at:
            os.kill(os.getpid(), self.signum)  # Ctrl-C (or kill) in the middle of this step
        x, y = batch
        loss = F.mse_loss(self.net(x), y)
        self.opt.zero_grad()
        loss.backward()
        self.opt.step()
        self.ema.update()
        return {"loss": loss.item()}


def config(seed=0):
    return {"model": "regression", "seed": seed, "device": "cpu", "batch_size": 8, "lr": 0.01}


def run(run_dir, steps, fail_at=None, seed=0, signum=signal.SIGINT):
    exp = Regression(config(seed), fail_at=fail_at, signum=signum)
    result = fit(exp, str(run_dir), steps=steps, checkpoint_every=4, progress=False)
    return exp, result


def weights(exp):
    return np.concatenate([p.numpy().ravel() for p in exp.net.parameters()])


def test_a_run_writes_its_folder(tmp_path):
    exp, result = run(tmp_path, steps=12)
    assert result == {"step": 12, "interrupted": False, "seconds": result["seconds"]}
    rows = read_log(str(tmp_path))
    assert [r["step"] for r in rows] == list(range(1, 13))
    assert all(np.isfinite(r["loss"]) for r in rows)
    saved = json.loads((tmp_path / CONFIG).read_text())
    assert saved["model"] == "regression" and saved["seed"] == 0 and "tinygen_version" in saved
    state = tg.load(str(tmp_path / CHECKPOINT))
    assert state["step"] == 12 and set(state) >= {"modules", "optimizers", "emas", "loader",
                                                  "rng", "config"}
    assert (tmp_path / "curves.png").stat().st_size > 0
    assert rows[-1]["loss"] < rows[0]["loss"]


def test_same_seed_same_losses(tmp_path):
    a, _ = run(tmp_path / "a", steps=10)
    b, _ = run(tmp_path / "b", steps=10)
    c, _ = run(tmp_path / "c", steps=10, seed=1)
    loss = lambda d: [r["loss"] for r in read_log(str(d))]  # noqa: E731
    assert loss(tmp_path / "a") == loss(tmp_path / "b")
    assert loss(tmp_path / "a") != loss(tmp_path / "c")
    np.testing.assert_array_equal(weights(a), weights(b))


def test_resuming_equals_an_uninterrupted_run(tmp_path):
    straight, _ = run(tmp_path / "straight", steps=14)
    run(tmp_path / "resumed", steps=6)         # stops at step 6 (a checkpoint at the end)
    resumed, result = run(tmp_path / "resumed", steps=14)
    assert result["step"] == 14
    assert read_log(str(tmp_path / "resumed")) == read_log(str(tmp_path / "straight"))
    np.testing.assert_array_equal(weights(resumed), weights(straight))
    for a, b in zip(resumed.ema.state_dict()["shadow_params"],
                    straight.ema.state_dict()["shadow_params"]):
        np.testing.assert_array_equal(a, b)


def test_ctrl_c_saves_and_the_run_resumes(tmp_path):
    straight, _ = run(tmp_path / "straight", steps=14)
    # the handler before fit: Python's default, or SIG_IGN under nohup or a background job
    before = signal.getsignal(signal.SIGINT)
    _, result = run(tmp_path / "stopped", steps=14, fail_at=8)    # Ctrl-C in step 8
    assert result["interrupted"] and result["step"] == 8              # step 8 completes
    assert tg.load(str(tmp_path / "stopped" / CHECKPOINT))["step"] == 8
    assert signal.getsignal(signal.SIGINT) is before                  # handler restored
    resumed, _ = run(tmp_path / "stopped", steps=14)
    assert read_log(str(tmp_path / "stopped")) == read_log(str(tmp_path / "straight"))
    np.testing.assert_array_equal(weights(resumed), weights(straight))


def test_sigterm_saves_like_ctrl_c(tmp_path):
    straight, _ = run(tmp_path / "straight", steps=14)
    before = signal.getsignal(signal.SIGTERM)
    _, result = run(tmp_path / "killed", steps=14, fail_at=5, signum=signal.SIGTERM)
    assert result["interrupted"] and result["step"] == 5
    assert tg.load(str(tmp_path / "killed" / CHECKPOINT))["step"] == 5
    assert signal.getsignal(signal.SIGTERM) is before
    resumed, _ = run(tmp_path / "killed", steps=14)
    assert read_log(str(tmp_path / "killed")) == read_log(str(tmp_path / "straight"))
    np.testing.assert_array_equal(weights(resumed), weights(straight))


def test_a_run_killed_before_its_first_checkpoint_starts_over_with_a_clean_log(tmp_path):
    straight, _ = run(tmp_path / "straight", steps=10)
    (tmp_path / "killed").mkdir()
    with open(tmp_path / "killed" / LOG, "w") as f:    # 3 steps logged, then killed, and
        for step in (1, 2, 3):                          # a row cut short mid-write
            f.write(json.dumps({"step": step, "loss": 9.0}) + "\n")
        f.write('{"step": 4, "lo')
    leftover = tmp_path / "killed" / ".checkpoint.npz.0123456789ab.tmp"
    leftover.write_bytes(b"\0" * 1000)                 # a checkpoint write that was killed
    run(tmp_path / "killed", steps=10)
    assert read_log(str(tmp_path / "killed")) == read_log(str(tmp_path / "straight"))
    assert not leftover.exists()


def test_a_loader_without_batches_is_an_error_not_a_hang(tmp_path):
    exp = Regression({**config(), "batch_size": 41})  # 40 examples, whole batches only
    with pytest.raises(ValueError, match="gives no batch.*smaller --batch-size"):
        fit(exp, str(tmp_path), steps=3, progress=False)


def test_steps_logged_after_the_last_checkpoint_are_redone(tmp_path):
    """A run killed between checkpoints logged steps that the resumed run repeats; the
    log must not hold them twice."""
    straight, _ = run(tmp_path / "straight", steps=10)
    run(tmp_path / "killed", steps=8)
    with open(tmp_path / "killed" / LOG, "a") as f:   # steps 9, 10 logged, never saved
        f.write(json.dumps({"step": 9, "loss": 123.0}) + "\n")
        f.write(json.dumps({"step": 10, "loss": 456.0}) + "\n")
    run(tmp_path / "killed", steps=10)
    assert read_log(str(tmp_path / "killed")) == read_log(str(tmp_path / "straight"))


def test_a_run_folder_of_another_model_is_refused(tmp_path):
    run(tmp_path, steps=2)
    other = Regression({**config(), "model": "other"})
    with pytest.raises(ValueError, match="holds a run of 'regression'"):
        fit(other, str(tmp_path), steps=4, progress=False)


def test_budget_is_steps_or_epochs(tmp_path):
    exp = Regression(config())
    with pytest.raises(ValueError, match="exactly one"):
        fit(exp, str(tmp_path), progress=False)
    exp = Regression(config())
    result = fit(exp, str(tmp_path / "epochs"), epochs=2, progress=False)
    assert result["step"] == 2 * 5  # 40 samples / batch 8 = 5 steps per epoch
    assert os.path.isfile(tmp_path / "epochs" / CHECKPOINT)


# --------------------------------------------------------------------------- divergence

class Diverging(Regression):
    """Regression at a learning rate that blows it up within a few steps."""


def test_divergence_stops_at_the_first_non_finite_loss_and_keeps_the_checkpoint(tmp_path):
    exp = Diverging({**config(), "lr": 1e30})    # finite at step 1, inf from step 2 on
    with pytest.raises(NonFiniteError, match=r"training diverged at step 2: the loss is inf"):
        fit(exp, str(tmp_path), steps=400, checkpoint_every=1, progress=False)
    assert tg.load(str(tmp_path / CHECKPOINT))["step"] == 1    # the last good one
    def refuse(token):
        raise ValueError(f"{token} in log.jsonl")
    with open(tmp_path / LOG) as f:                     # still valid JSON: no NaN tokens
        rows = [json.loads(line, parse_constant=refuse) for line in f]
    assert all(np.isfinite(r["loss"]) for r in rows)
    assert [r["step"] for r in rows] == list(range(1, len(rows) + 1))


class Tiny(Experiment):
    """The base's own model, optimizer and update: loss = sum sqrt(w * scale)."""
    defaults = {"lr": 0.1, "scale": 1.0}

    def build_model(self):
        return nn.Linear(2, 1)

    def train_loader(self):
        return ShuffledLoader(np.ones((8, 2), np.float32), np.ones((8, 1), np.float32), 4, 0)

    def training_step(self, batch):
        loss = (self.model.weight * self.config["scale"]).sqrt().sum()
        self.update(loss)
        return {"loss": loss.item()}


def test_a_non_finite_gradient_is_refused_before_the_step(tmp_path):
    exp = Tiny({"model": "tiny", "device": "cpu", "seed": 0})
    exp.model.weight.data[...] = 0.0            # sqrt is 0 there, its derivative inf
    w = exp.model.weight.numpy().copy()
    with pytest.raises(NonFiniteError, match=r"step 1: the gradient of model.weight "
                                             r"\(shape \(1, 2\)\) holds inf"):
        fit(exp, str(tmp_path), steps=3, progress=False)
    np.testing.assert_array_equal(exp.model.weight.numpy(), w)   # not updated
    assert not (tmp_path / CHECKPOINT).exists() and read_log(str(tmp_path)) == []


def test_the_cli_says_divergence_in_one_line(tmp_path, capsys):
    from tinygen.cli import main
    from tinygen.experiments import REGISTRY
    if "TINYGEN_DATA" not in os.environ:
        pytest.skip("needs MNIST: set TINYGEN_DATA to the data folder")
    assert "vae" in REGISTRY
    out = str(tmp_path / "run")
    assert main(["train", "vae", "--steps", "50", "--lr", "1e6", "--hidden", "16",
                 "--latent-dim", "2", "--out", out]) == 1
    err = capsys.readouterr().err
    said = [line for line in err.splitlines() if line.startswith("tinygen train:")]
    assert len(said) == 1 and "training diverged at step" in said[0], err
    assert "Traceback" not in err


def test_a_recipe_chooses_its_blas_threads_for_training_only(tmp_path):
    from threadpoolctl import threadpool_info

    def blas_threads():
        return [pool["num_threads"] for pool in threadpool_info()
                if pool["user_api"] == "blas"]

    class OneThread(Regression):
        blas_threads = 1

        def training_step(self, batch):
            self.seen = blas_threads()
            return super().training_step(batch)

    before = blas_threads()
    exp = OneThread(config())
    fit(exp, str(tmp_path), steps=2, progress=False)
    assert exp.seen and set(exp.seen) == {1}
    assert blas_threads() == before                    # given back after training
