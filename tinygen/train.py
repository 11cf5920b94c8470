"""The training loop every model family shares, and the run folder it works in.

An ``Experiment`` ties together what one model needs: its networks, their optimizers,
its data, and one training step. ``fit`` runs the steps with feedback and care:

- a progress bar with the current losses;
- every step's scalars appended to ``log.jsonl`` in the run folder;
- a checkpoint every ``checkpoint_every`` steps and at the end, holding the networks,
  optimizers, EMAs, step, data-loader position, random state and configuration,
  written to a temporary name and renamed (``tinygen.save``), so it is never half
  written;
- rerunning on the same run folder resumes from the checkpoint: same batches, same
  random numbers, hence (on the CPU) the same losses as a run never interrupted;
- Ctrl-C lets the current step finish, saves a checkpoint and stops cleanly (a second
  Ctrl-C stops at once, keeping the last checkpoint).

A run folder holds ``config.json``, ``log.jsonl``, ``checkpoint.npz``, ``curves.png``
and whatever pictures the experiment draws.
"""
from __future__ import annotations

import contextlib
import json
import os
import signal
import threading
import time

from tqdm import tqdm

from . import __version__, backend
from .files import atomic_write
from .random import get_rng_state, manual_seed, set_rng_state
from .serialization import load, save

CONFIG, LOG, CHECKPOINT = "config.json", "log.jsonl", "checkpoint.npz"


class Experiment:
    """One model with its data, optimizers and training step; subclass per model.

    Class attributes:
        name: the name it is registered and called by (``tinygen train NAME``).
        datasets: the datasets it can train on; the first is the default.
        defaults: its hyperparameters and their default values; each becomes a command
            line option (``batch_size`` -> ``--batch-size``) and an entry of ``config``.

    A subclass implements ``__init__(config)`` (build networks and optimizers on
    ``config["device"]``), ``train_loader()``, ``training_step(batch)``, and lists its
    networks and optimizers in ``modules()`` and ``optimizers()``. It may implement
    ``emas()``, ``sample(n)``, ``evaluate()`` and ``save_pictures(run_dir)``.

    During ``fit``, ``self.step`` (steps done before this one) and ``self.total_steps``
    (the run's length) are set before every training step, so a learning-rate
    schedule can be a plain function of them and needs no state of its own.
    """

    step: int = 0
    total_steps: int = 1

    name: str = ""
    datasets: tuple = ()
    defaults: dict = {}
    description: str = ""

    def __init__(self, config: dict):
        self.config = config

    def modules(self) -> dict:
        """Name -> nn.Module for every network whose weights a checkpoint keeps."""
        raise NotImplementedError

    def optimizers(self) -> dict:
        """Name -> optimizer."""
        raise NotImplementedError

    def emas(self) -> dict:
        """Name -> optim.EMA of weights kept for sampling (none by default)."""
        return {}

    def train_loader(self):
        """The DataLoader of training batches (with state_dict/load_state_dict)."""
        raise NotImplementedError

    def training_step(self, batch) -> dict:
        """One update from one batch; returns the scalars to log, e.g. {"loss": 0.3}."""
        raise NotImplementedError

    def sample(self, n: int):
        """n samples as images (n, C, H, W) in [0, 1] or [-1, 1], for ``tinygen sample``."""
        raise NotImplementedError(f"{type(self).__name__} does not generate samples")

    def evaluate(self) -> dict:
        """Metrics on held-out data, for ``tinygen eval``."""
        raise NotImplementedError(f"{type(self).__name__} has no evaluation")

    def save_pictures(self, run_dir: str) -> None:
        """Draw what the model has learned into the run folder (when training ends)."""

    # ---- what a checkpoint holds
    def state_dict(self) -> dict:
        return {"modules": {k: m.state_dict() for k, m in self.modules().items()},
                "optimizers": {k: o.state_dict() for k, o in self.optimizers().items()},
                "emas": {k: e.state_dict() for k, e in self.emas().items()}}

    def load_state_dict(self, state: dict) -> None:
        for kind, objects in (("modules", self.modules()), ("optimizers", self.optimizers()),
                              ("emas", self.emas())):
            saved = state.get(kind, {})
            missing = set(objects) - set(saved)
            if missing:
                raise ValueError(f"the checkpoint has no {kind} named {sorted(missing)}")
            for k, obj in objects.items():
                obj.load_state_dict(saved[k])


# --------------------------------------------------------------------------- run folders

def read_config(run_dir: str) -> dict:
    """The config.json of a run folder (a clear error if it is not one)."""
    path = os.path.join(run_dir, CONFIG)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{run_dir} is not a tinygen run folder: it has no {CONFIG}")
    with open(path) as f:
        return json.load(f)


def _plain(value):
    """NumPy numbers and arrays as the Python numbers and lists JSON can hold."""
    if hasattr(value, "tolist"):
        return value.tolist()
    raise TypeError(f"cannot write a {type(value).__name__} to JSON")


def write_json(path: str, obj) -> None:
    """Write obj as JSON, atomically (tinygen.files): never a half-written file."""
    text = json.dumps(obj, indent=2, sort_keys=True, default=_plain) + "\n"
    with atomic_write(path, "w") as f:
        f.write(text)


def read_log(run_dir: str) -> list:
    """The rows of a run's log.jsonl (an empty list if there is none)."""
    path = os.path.join(run_dir, LOG)
    if not os.path.isfile(path):
        return []
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def _truncate_log(run_dir: str, step: int) -> None:
    """Drop log rows after ``step``: a run killed after its last checkpoint logged steps
    that the resumed run will do again."""
    rows = [r for r in read_log(run_dir) if r["step"] <= step]
    with atomic_write(os.path.join(run_dir, LOG), "w") as f:
        f.writelines(json.dumps(r) + "\n" for r in rows)


def save_checkpoint(experiment: Experiment, loader, run_dir: str, step: int) -> str:
    """Write everything needed to resume at ``step`` into run_dir/checkpoint.npz."""
    state = experiment.state_dict()
    state.update(step=step, loader=loader.state_dict(), rng=get_rng_state(),
                 config=experiment.config)
    path = os.path.join(run_dir, CHECKPOINT)
    save(state, path)
    return path


def load_experiment(run_dir: str, registry, device=None) -> Experiment:
    """Rebuild the experiment of a run folder from its config and last checkpoint."""
    config = read_config(run_dir)
    if device is not None:
        config = {**config, "device": backend.check_device(device)}
    cls = registry[config["model"]]
    experiment = cls(config)
    path = os.path.join(run_dir, CHECKPOINT)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{run_dir} has no {CHECKPOINT} yet: train it first")
    experiment.load_state_dict(load(path, device=config["device"]))
    return experiment


# --------------------------------------------------------------------------- the loop

def fit(experiment: Experiment, run_dir: str, *, steps: int | None = None,
        epochs: float | None = None, checkpoint_every: int = 1000, progress: bool = True) -> dict:
    """Train ``experiment`` for ``steps`` updates (or ``epochs`` passes over its data),
    resuming from ``run_dir`` when it holds a checkpoint of the same model.

    Returns {"step": the last step, "interrupted": whether Ctrl-C stopped it}.
    """
    config = experiment.config
    os.makedirs(run_dir, exist_ok=True)
    loader = experiment.train_loader()
    if (steps is None) == (epochs is None):
        raise ValueError("fit: give exactly one of steps and epochs")
    total = int(steps) if steps is not None else max(1, round(epochs * len(loader)))

    step = 0
    checkpoint = os.path.join(run_dir, CHECKPOINT)
    if os.path.isfile(checkpoint):  # resume: weights, optimizers, batches, random state
        saved_config = read_config(run_dir)
        if saved_config.get("model") != config.get("model"):
            raise ValueError(f"{run_dir} holds a run of '{saved_config.get('model')}', not "
                             f"'{config.get('model')}'; choose another --out folder")
        state = load(checkpoint, device=config["device"])
        experiment.load_state_dict(state)
        loader.load_state_dict(state["loader"])
        set_rng_state(state["rng"])
        step = int(state["step"])
        _truncate_log(run_dir, step)
    else:
        manual_seed(config.get("seed", 0))
        write_json(os.path.join(run_dir, CONFIG), {**config, "tinygen_version": __version__})

    bar = tqdm(total=total, initial=step, desc=config.get("model", "train"), unit="step",
               disable=not progress, dynamic_ncols=True)
    started = time.perf_counter()
    with _stop_on_ctrl_c(bar) as stop, open(os.path.join(run_dir, LOG), "a") as log:
        try:
            while step < total and not stop.requested:
                for batch in loader:
                    experiment.step, experiment.total_steps = step, total
                    scalars = experiment.training_step(batch)
                    step += 1
                    row = {"step": step, **{k: float(v) for k, v in scalars.items()}}
                    log.write(json.dumps(row) + "\n")
                    bar.update(1)
                    bar.set_postfix({k: f"{v:.4g}" for k, v in scalars.items()}, refresh=False)
                    if step % checkpoint_every == 0 or step == total or stop.requested:
                        log.flush()
                        save_checkpoint(experiment, loader, run_dir, step)
                    if step >= total or stop.requested:
                        break
        finally:
            bar.close()
    interrupted = stop.requested
    if interrupted:
        print(f"stopped at step {step}: checkpoint saved in {run_dir}; run the same command "
              "again to resume")
    else:
        experiment.save_pictures(run_dir)
        _plot_curves(run_dir)
    return {"step": step, "interrupted": interrupted,
            "seconds": time.perf_counter() - started}


class _StopRequest:
    requested = False


@contextlib.contextmanager
def _stop_on_ctrl_c(bar):
    """While training, the first Ctrl-C asks the loop to stop after the current step
    (so the checkpoint is consistent: no half-applied update, no batch lost); a second
    one stops at once. Outside the main thread signals cannot be caught, and Ctrl-C
    behaves as usual."""
    stop = _StopRequest()
    if threading.current_thread() is not threading.main_thread():
        yield stop
        return

    def handler(signum, frame):
        if stop.requested:
            raise KeyboardInterrupt
        stop.requested = True
        bar.write("Ctrl-C: finishing this step and saving a checkpoint "
                  "(press Ctrl-C again to quit at once)")

    previous = signal.signal(signal.SIGINT, handler)
    try:
        yield stop
    finally:
        signal.signal(signal.SIGINT, previous)


def _plot_curves(run_dir: str) -> None:
    rows = read_log(run_dir)
    if rows:
        from .plot import plot_curves
        plot_curves(rows, os.path.join(run_dir, "curves.png"))
