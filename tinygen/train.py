"""The training loop every model family shares, and the run folder it works in.

An experiment (``tinygen.experiments.base.Experiment``) ties together what one model
needs: its networks, their optimizers, its data, and one training step. ``fit`` runs the
steps with feedback and care:

- a progress bar with the current losses;
- every step's scalars appended to ``log.jsonl`` in the run folder;
- a checkpoint every ``checkpoint_every`` steps and at the end, holding the networks,
  optimizers, EMAs, step, data-loader position, random state and configuration,
  written to a temporary name and renamed (``tinygen.save``), so it is never half
  written;
- rerunning on the same run folder resumes from the checkpoint: same batches, same
  random numbers, hence (on the CPU) the same losses as a run never interrupted;
- Ctrl-C (or SIGTERM, what ``kill`` and job schedulers send) lets the current step
  finish, saves a checkpoint and stops cleanly (a second one stops at once, keeping the
  last checkpoint);
- the log always agrees with the checkpoint: a resumed run first cuts it back to the
  checkpoint's step, a fresh start empties it, and temporary files left by a killed
  write are removed;
- a loss or logged scalar that is NaN or infinite (or a non-finite gradient, which the
  experiment's ``update`` refuses) stops training with an error naming the step and the
  quantity; nothing of that step is logged or saved, so the last good checkpoint stays.

A run folder holds ``config.json``, ``log.jsonl``, ``checkpoint.npz``, ``curves.png``
and whatever pictures the experiment draws.
"""
from __future__ import annotations

import contextlib
import json
import math
import os
import signal
import threading
import time

from threadpoolctl import threadpool_limits
from tqdm import tqdm

from . import __version__, backend
from .files import atomic_write
from .random import get_rng_state, manual_seed, set_rng_state
from .serialization import load, save

CONFIG, LOG, CHECKPOINT = "config.json", "log.jsonl", "checkpoint.npz"


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
    rows = []
    with open(path) as f:
        for line in f:
            try:
                rows.append(json.loads(line))
            except ValueError:  # a line cut short by a kill mid-write: not a step done
                continue
    return rows


def _truncate_log(run_dir: str, step: int) -> None:
    """Drop log rows after ``step``: a run killed after its last checkpoint logged steps
    that the resumed run will do again (step 0: a fresh start empties the log)."""
    rows = [r for r in read_log(run_dir) if r["step"] <= step]
    with atomic_write(os.path.join(run_dir, LOG), "w") as f:
        f.writelines(json.dumps(r) + "\n" for r in rows)


def save_checkpoint(experiment, loader, run_dir: str, step: int) -> str:
    """Write everything needed to resume at ``step`` into run_dir/checkpoint.npz."""
    state = experiment.state_dict()
    state.update(step=step, loader=loader.state_dict(), rng=get_rng_state(),
                 config=experiment.config, train_seconds=float(experiment.train_seconds))
    path = os.path.join(run_dir, CHECKPOINT)
    save(state, path)
    return path


def load_experiment(run_dir: str, get_class, device=None):
    """Rebuild the experiment of a run folder from its config and last checkpoint;
    ``get_class(name)`` gives the Experiment class of a model name."""
    config = read_config(run_dir)
    if device is not None:
        config = {**config, "device": backend.check_device(device)}
    experiment = get_class(config["model"])(config)
    path = os.path.join(run_dir, CHECKPOINT)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{run_dir} has no {CHECKPOINT} yet: train it first")
    state = load(path, device=config["device"])
    experiment.load_state_dict(state)
    experiment.train_seconds = float(state.get("train_seconds", 0.0))
    return experiment


# --------------------------------------------------------------------------- the loop

def fit(experiment, run_dir: str, *, steps: int | None = None,
        epochs: float | None = None, checkpoint_every: int = 1000, progress: bool = True) -> dict:
    """Train ``experiment`` for ``steps`` updates (or ``epochs`` passes over its data),
    resuming from ``run_dir`` when it holds a checkpoint of the same model.

    Returns {"step": the last step, "interrupted": whether Ctrl-C or SIGTERM stopped it,
    "seconds": this call's wall-clock time}.

    Raises NonFiniteError at the first non-finite loss, logged scalar or gradient, and
    ValueError for a loader that gives no batch or a checkpoint_every below 1.
    """
    config = experiment.config
    if (steps is None) == (epochs is None):
        raise ValueError("fit: give exactly one of steps and epochs")
    if not (steps if steps is not None else epochs) > 0:
        raise ValueError(f"fit: the budget must be positive, got steps={steps}, "
                         f"epochs={epochs}")
    if int(checkpoint_every) < 1:
        raise ValueError(f"fit: checkpoint_every must be a positive number of steps, got "
                         f"{checkpoint_every!r}")
    os.makedirs(run_dir, exist_ok=True)
    _remove_leftover_temporaries(run_dir)
    loader = experiment.train_loader()
    if len(loader) == 0:  # else the loop below would spin for ever on empty epochs
        raise ValueError("the training data gives no batch: fewer examples than one batch "
                         "(with drop_last); use a smaller --batch-size")
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
        experiment.train_seconds = float(state.get("train_seconds", 0.0))
        _truncate_log(run_dir, step)
    else:  # a fresh start: a log left by a run killed before its first checkpoint goes
        manual_seed(config.get("seed", 0))
        _truncate_log(run_dir, 0)
        write_json(os.path.join(run_dir, CONFIG), {**config, "tinygen_version": __version__})

    experiment.configure_schedules(total, step)
    blas = getattr(experiment, "blas_threads", None)   # e.g. 1 for small matrix products
    limit = (threadpool_limits(limits=blas, user_api="blas") if blas
             else contextlib.nullcontext())
    bar = tqdm(total=total, initial=step, desc=config.get("model", "train"), unit="step",
               disable=not progress, dynamic_ncols=True)
    started = time.perf_counter()
    seconds_before = experiment.train_seconds
    with limit, _stop_on_ctrl_c(bar) as stop, open(os.path.join(run_dir, LOG), "a") as log:
        try:
            while step < total and not stop.requested:
                for batch in loader:
                    experiment.step, experiment.total_steps = step, total
                    try:
                        scalars = experiment.training_step(batch)
                        row = {"step": step + 1, **{k: float(v) for k, v in scalars.items()}}
                        _check_finite(row)
                    except NonFiniteError as e:
                        log.flush()
                        kept = (f"The run folder {run_dir} keeps its last checkpoint"
                                if os.path.exists(os.path.join(run_dir, CHECKPOINT))
                                else "No checkpoint was written yet")
                        raise NonFiniteError(f"training diverged at step {step + 1}: {e}. "
                                             f"{kept}; try a smaller --lr") from None
                    experiment.end_step()
                    step += 1
                    experiment.train_seconds = seconds_before + time.perf_counter() - started
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
        print(f"stopped at step {step} ({stop.signal_name}): checkpoint saved in {run_dir}; "
              "run the same command again to resume")
    else:
        experiment.save_pictures(run_dir)
        _plot_curves(run_dir)
    return {"step": step, "interrupted": interrupted,
            "seconds": time.perf_counter() - started}


class NonFiniteError(FloatingPointError):
    """Training produced a NaN or an infinity (a loss, a gradient): it has diverged."""


def _check_finite(row: dict) -> None:
    """Raise NonFiniteError naming the first logged quantity that is NaN or infinite."""
    for name, value in row.items():
        if not math.isfinite(value):
            raise NonFiniteError(f"the {name} is {value}")


class _StopRequest:
    requested = False
    signal_name = ""


@contextlib.contextmanager
def _stop_on_ctrl_c(bar):
    """While training, the first Ctrl-C (SIGINT) or SIGTERM (what ``kill`` and job
    schedulers send) asks the loop to stop after the current step, so the checkpoint is
    consistent: no half-applied update, no batch lost. A second one stops at once
    (KeyboardInterrupt), keeping the last checkpoint. Outside the main thread signals
    cannot be caught, and they behave as usual."""
    stop = _StopRequest()
    if threading.current_thread() is not threading.main_thread():
        yield stop
        return

    def handler(signum, frame):
        if stop.requested:
            raise KeyboardInterrupt
        stop.requested, stop.signal_name = True, signal.Signals(signum).name
        bar.write(f"{stop.signal_name}: finishing this step and saving a checkpoint "
                  "(send it again to quit at once)")

    previous = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield stop
    finally:
        for s, h in previous.items():
            signal.signal(s, h)


def _remove_leftover_temporaries(run_dir: str) -> None:
    """Remove the hidden temporary files (``.NAME.<random>.tmp``, see files.atomic_write)
    that a run killed while writing a checkpoint or picture left behind."""
    for name in os.listdir(run_dir):
        if name.startswith(".") and name.endswith(".tmp"):
            with contextlib.suppress(OSError):
                os.remove(os.path.join(run_dir, name))


def _plot_curves(run_dir: str) -> None:
    rows = read_log(run_dir)
    if rows:
        from .plot import plot_curves
        plot_curves(rows, os.path.join(run_dir, "curves.png"))
