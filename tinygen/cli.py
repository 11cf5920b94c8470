"""The ``tinygen`` command.

    tinygen list                                   models and datasets
    tinygen train MODEL --dataset D [options]      train (rerun on the same --out resumes)
    tinygen sample RUN_DIR [--n 64] [--out F]      draw samples into an image grid
    tinygen eval RUN_DIR [--no-classifier]         metrics, also written to RUN_DIR/metrics.json
    tinygen info                                   versions and devices

``tinygen train MODEL --help`` lists the model's own options.
"""
from __future__ import annotations

import argparse
import os
import platform
import secrets
import sys

import numpy as np

from . import __version__, backend


class UsageError(Exception):
    """A mistake in the command line: printed as one line, exit status 2."""


def _option(name: str) -> str:
    return "--" + name.replace("_", "-")


def _add_model_options(parser, defaults: dict, rules: dict, meanings: dict) -> None:
    for key, value in defaults.items():
        meaning = f"{meanings[key]}; " if key in meanings else ""
        if key in ("epochs", "steps", "batch_size", "lr"):
            continue  # the common options, added once for every model
        if value is None:
            parser.add_argument(_option(key), dest=key, default=None,
                                help=meaning.rstrip("; ") or None)
        elif isinstance(value, bool):
            parser.add_argument(_option(key), dest=key, action=argparse.BooleanOptionalAction,
                                default=None, help=f"{meaning}default {value}")
        else:
            choices = getattr(rules.get(key), "choices", None)
            allowed = f"one of {', '.join(map(str, choices))}, " if choices else ""
            parser.add_argument(_option(key), dest=key, type=type(value), default=None,
                                help=f"{meaning}{allowed}default {value}")


def _train_parser(model_cls, entry) -> argparse.ArgumentParser:
    datasets = entry.datasets
    d = model_cls.defaults
    toy = getattr(model_cls, "toy_defaults", {})
    epilog = ("on the 2-D toy sets the defaults differ: " + ", ".join(
        f"{_option(k)} {v}" for k, v in toy.items())) if toy else None
    p = argparse.ArgumentParser(prog=f"tinygen train {model_cls.name}",
                                description=entry.description, epilog=epilog)
    # Defaults are None here and filled in later, so that what was given is known (a
    # resumed run refuses given settings that differ from its own).
    p.add_argument("--dataset", default=None,
                   help=f"one of {', '.join(datasets)} (default {datasets[0]})")
    budget = p.add_mutually_exclusive_group()
    budget.add_argument("--epochs", type=float, default=None,
                        help=f"passes over the data (default {d.get('epochs', 1)})")
    budget.add_argument("--steps", type=int, default=None, help="number of updates instead")
    # a recipe without batches or a learning rate (EM uses all the data in every step)
    # sets them to None and gets no such options
    if d.get("batch_size", 0) is not None:
        p.add_argument("--batch-size", dest="batch_size", type=int, default=None,
                       help=f"default {d.get('batch_size')}")
    if d.get("lr", 0) is not None:
        p.add_argument("--lr", type=float, default=None, help=f"default {d.get('lr')}")
    p.add_argument("--device", default=None, help="cpu or cuda (default cpu)")
    p.add_argument("--seed", type=int, default=None, help="default 0")
    p.add_argument("--out", default=None, help="run folder (default runs/MODEL-DATASET)")
    p.add_argument("--data-root", dest="data_root", default=None,
                   help="data folder (default: $TINYGEN_DATA, else the cache folder)")
    p.add_argument("--checkpoint-every", dest="checkpoint_every", type=int, default=None,
                   help="steps between checkpoints (default 500)")
    from .experiments.base import COMMON_RULES
    _add_model_options(p, d, {**COMMON_RULES, **model_cls.rules},
                       getattr(model_cls, "help", {}))
    return p


# Settings a resumed run may change: how long it trains, where, and how often it saves.
RESUMABLE_CHANGES = ("epochs", "steps", "device", "checkpoint_every", "data_root")


def _train(argv) -> int:
    from .experiments import REGISTRY, get_experiment
    from .experiments.base import ConfigError
    from .train import CHECKPOINT, CONFIG, fit, read_config, write_json
    if argv and argv[0] in ("-h", "--help"):
        print("usage: tinygen train MODEL [--dataset D] [options]\n\n"
              "models (tinygen train MODEL --help lists a model's options):")
        for key, entry in sorted(REGISTRY.items()):
            print(f"  {key:<14} {entry.description}")
        return 0
    if not argv or argv[0].startswith("-"):
        raise UsageError(f"which model? known models: {', '.join(sorted(REGISTRY))}")
    name, rest = argv[0], argv[1:]
    if name not in REGISTRY:
        raise UsageError(f"unknown model '{name}'; known models: {', '.join(sorted(REGISTRY))}")
    cls, entry = get_experiment(name), REGISTRY[name]
    args = _train_parser(cls, entry).parse_args(rest)
    given = {k: v for k, v in vars(args).items() if v is not None}
    dataset = given.get("dataset", entry.datasets[0])
    if dataset not in entry.datasets:
        raise UsageError(f"unknown dataset '{dataset}' for {name}; known: "
                         f"{', '.join(entry.datasets)}")
    for option, value in (("--steps", args.steps), ("--epochs", args.epochs),
                          ("--checkpoint-every", args.checkpoint_every)):
        if value is not None and not value > 0:
            raise UsageError(f"{option} {value}: must be positive")
    if args.out is not None and not args.out.strip():
        raise UsageError("--out '': give the run folder a name")
    try:
        device = backend.check_device(given.get("device", "cpu"))
    except (RuntimeError, ValueError) as e:
        raise UsageError(str(e)) from None
    out = args.out or os.path.join("runs", f"{name}-{dataset}")
    config = {**cls.defaults_for(dataset), "model": name, "dataset": dataset, "seed": 0,
              "checkpoint_every": 500, **given, "device": device}
    if os.path.isfile(os.path.join(out, CHECKPOINT)):
        saved = read_config(out)
        if saved.get("model") != name:
            raise UsageError(f"{out} holds a run of '{saved.get('model')}', not '{name}'; "
                             "choose another --out")
        changed = [f"{_option(k)} {v} (the run has {saved.get(k)})" for k, v in given.items()
                   if k not in RESUMABLE_CHANGES + ("out",) and saved.get(k) != v]
        if changed:
            raise UsageError(f"{out} was trained with other settings: {'; '.join(changed)}. "
                             "Leave them out to resume it, or choose another --out for a "
                             "new run")
        config = {**saved, **{k: v for k, v in given.items() if k in RESUMABLE_CHANGES},
                  "device": device}
        print(f"resuming {out}")
    # The budget given last wins, in either unit, and is kept for the next resume.
    if args.steps is not None or args.epochs is not None:
        steps, epochs = args.steps, args.epochs
        budget = {"steps": steps} if steps is not None else {"epochs": epochs}
        config = {**{k: v for k, v in config.items() if k not in ("steps", "epochs")},
                  **budget}
        if os.path.isfile(os.path.join(out, CHECKPOINT)):
            saved = {k: v for k, v in read_config(out).items() if k not in ("steps", "epochs")}
            write_json(os.path.join(out, CONFIG), {**saved, **budget})
    else:
        steps = config.get("steps")
        epochs = None if steps is not None else config.get("epochs", 1)
    try:
        experiment = cls(config)
    except ConfigError as e:
        raise UsageError(str(e)) from None
    result = fit(experiment, out, steps=steps, epochs=epochs,
                 checkpoint_every=config["checkpoint_every"])
    if result["interrupted"]:
        return 130
    print(f"trained {name} on {config['dataset']} for {result['step']} steps; run folder {out}")
    return 0


def _load_run(run_dir, device):
    from .experiments import REGISTRY, get_experiment
    from .train import load_experiment, read_config
    try:
        config = read_config(run_dir)
    except FileNotFoundError as e:
        raise UsageError(str(e)) from None
    if config.get("model") not in REGISTRY:
        raise UsageError(f"{run_dir} was made by unknown model '{config.get('model')}'")
    try:
        return load_experiment(run_dir, get_experiment, device)
    except FileNotFoundError as e:
        raise UsageError(str(e)) from None


SAMPLE_BATCH = 1000      # samples generated at a time: memory does not grow with --n
MAX_GRID = 10_000        # the most samples one picture holds (a 100 x 100 grid)


def _sample(argv) -> int:
    p = argparse.ArgumentParser(
        prog="tinygen sample",
        description="Draw samples from a trained run: an image grid (.png, up to "
                    f"{MAX_GRID}; a scatter plot over the data for 2-D points), or all of "
                    "them as a float32 array (.npy, any number, "
                    f"written {SAMPLE_BATCH} at a time).")
    p.add_argument("run_dir")
    p.add_argument("--n", type=int, default=64, help="how many samples (default 64)")
    p.add_argument("--out", default=None,
                   help="a .png picture or a .npy array (default RUN_DIR/samples.png)")
    p.add_argument("--device", default=None, help="cpu or cuda (default: the run's)")
    p.add_argument("--label", type=int, default=None,
                   help="draw only this class (class-conditional models: cgan, cvae, "
                        "ddpm-cfg, ddpm-cg, naive-bayes); default: the classes in turn")
    args = p.parse_args(argv)
    out = args.out or os.path.join(args.run_dir, "samples.png")
    if args.n < 1:
        raise UsageError(f"--n {args.n}: the number of samples must be at least 1")
    if not out.endswith((".png", ".npy")):
        raise UsageError(f"--out {out!r}: give a .png picture or a .npy array")
    if out.endswith(".png") and args.n > MAX_GRID:
        raise UsageError(f"--n {args.n}: a picture holds at most {MAX_GRID} samples; write "
                         "them to a .npy file instead (--out samples.npy)")
    if args.device is not None:
        try:
            backend.check_device(args.device)
        except (RuntimeError, ValueError) as e:
            raise UsageError(str(e)) from None
    experiment = _load_run(args.run_dir, args.device)
    if args.label is not None:
        classes = getattr(experiment, "num_classes", None)
        if not classes:
            raise UsageError(f"--label {args.label}: {experiment.name} is not class-"
                             "conditional (cgan, cvae, ddpm-cfg, ddpm-cg and naive-bayes "
                             "are)")
        if not 0 <= args.label < classes:
            raise UsageError(f"--label {args.label}: choose a class in 0..{classes - 1}")
        label = args.label
        sample = experiment.sample
        experiment.sample = lambda n: sample(n, np.full(n, label))
    batches = ((i, min(SAMPLE_BATCH, args.n - i)) for i in range(0, args.n, SAMPLE_BATCH))
    try:
        first = experiment.sample(min(SAMPLE_BATCH, args.n))
    except NotImplementedError as e:
        raise UsageError(str(e)) from None
    next(batches)
    if out.endswith(".npy"):
        _write_samples_npy(experiment, first, batches, args.n, out)
        print(f"wrote {out}: {args.n} samples, float32 {(args.n,) + tuple(first.shape[1:])}")
        return 0
    from .plot import plot_2d_samples, save_image_grid
    samples = np.concatenate([first] + [experiment.sample(size) for _, size in batches])
    if samples.ndim == 2:   # points of a 2-D toy set: a scatter plot over the data
        data = experiment.images("test")[0][:2000] if getattr(experiment, "toy", False) \
            else None
        path = plot_2d_samples(samples, data=data, path=out,
                               title=f"{args.n} samples of {experiment.name}")
    else:
        path = save_image_grid(samples, out, nrow=int(np.ceil(np.sqrt(args.n))))
    print(f"wrote {path}")
    return 0


def _write_samples_npy(experiment, first, batches, n, out) -> None:
    """Fill a memory-mapped .npy under a temporary name batch by batch, and give it its
    name only when complete: never a half-written file under the final name."""
    folder = os.path.dirname(os.path.abspath(out))
    os.makedirs(folder, exist_ok=True)
    tmp = os.path.join(folder, f".{os.path.basename(out)}.{secrets.token_hex(6)}.tmp")
    try:
        array = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.float32,
                                          shape=(n,) + tuple(first.shape[1:]))
        array[:len(first)] = first
        for i, size in batches:
            array[i:i + size] = experiment.sample(size)
        array.flush()
        del array
        os.replace(tmp, out)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def _eval(argv) -> int:
    from .train import write_json
    p = argparse.ArgumentParser(prog="tinygen eval")
    p.add_argument("run_dir")
    p.add_argument("--device", default=None)
    p.add_argument("--data-root", dest="data_root", default=None,
                   help="data folder (default: the run's, else $TINYGEN_DATA, else the cache)")
    p.add_argument("--no-classifier", dest="classifier", action="store_false",
                   help="skip the measures that need the LeNet classifier (FID, class "
                        "accuracy), which is trained once (a few minutes) when not cached")
    p.add_argument("--ood", default=None, metavar="DATASET",
                   help="also score DATASET's test images and report how well -log p(x) "
                        "or the energy tells them from the run's own (AUROC; flows and "
                        "energy-based models)")
    args = p.parse_args(argv)
    if args.device is not None:
        try:
            backend.check_device(args.device)
        except (RuntimeError, ValueError) as e:
            raise UsageError(str(e)) from None
    experiment = _load_run(args.run_dir, args.device)
    if args.ood is not None:
        from .data import DATASETS
        if not getattr(experiment, "supports_ood", False):
            raise UsageError(f"--ood: implemented for the continuous flows (nice, realnvp, "
                             f"glow, maf) and the energy-based models, not for "
                             f"{experiment.name}")
        if args.ood == experiment.config["dataset"]:
            raise UsageError(f"--ood {args.ood}: that is the run's own dataset; name the "
                             "other one")
        if experiment.config["dataset"] not in DATASETS or args.ood not in DATASETS:
            raise UsageError(f"--ood {args.ood}: needs a run on images and one of "
                             f"{', '.join(DATASETS)} (the run's data: "
                             f"{experiment.config['dataset']})")
        experiment.config["eval_ood"] = args.ood
    if not args.classifier:
        experiment.config["eval_fid"] = False
    if args.data_root is not None:
        experiment.config["data_root"] = args.data_root
    try:
        metrics = experiment.evaluate()
    except NotImplementedError as e:
        raise UsageError(str(e)) from None
    if not metrics:
        print(f"no measure applies to {experiment.name} on {experiment.config['dataset']}"
              + (" without the classifier" if not args.classifier else ""))
    metrics.update(train_seconds=round(experiment.train_seconds, 3), device=experiment.device)
    path = os.path.join(args.run_dir, "metrics.json")
    write_json(path, metrics)
    experiment.save_evaluation_pictures(args.run_dir)
    def show(key, value, indent=""):
        if isinstance(value, dict):   # a group of measures, e.g. one per guidance weight
            print(f"{indent}{key}")
            for k, v in value.items():
                show(k, v, indent + "  ")
        else:
            width = 24 - len(indent)
            print(f"{indent}{key:<{width}} {value:.6g}" if isinstance(value, float)
                  else f"{indent}{key:<{width}} {value}")
    for k, v in metrics.items():
        show(k, v)
    print(f"wrote {path}")
    return 0


def _list(argv) -> int:
    from .data import DATASETS, TOY_DATASETS
    from .experiments import REGISTRY
    print("models:")
    for name, entry in sorted(REGISTRY.items()):
        print(f"  {name:<14} {entry.description}  (datasets: {', '.join(entry.datasets)})")
    print("datasets:")
    print(f"  images: {', '.join(DATASETS)}")
    print(f"  toy 2-D: {', '.join(TOY_DATASETS)}")
    return 0


def _info(argv) -> int:
    print(f"tinygen {__version__}")
    print(f"python  {platform.python_version()} ({sys.executable})")
    print(f"numpy   {np.__version__}")
    cp = backend._import_cupy()
    if cp is None:
        print(f"cupy    not installed ({backend._cupy_error}); CPU only")
    else:
        print(f"cupy    {cp.__version__}")
    print(f"devices cpu{', cuda' if backend.cuda_available() else ''}")
    return 0


COMMANDS = {"train": _train, "sample": _sample, "eval": _eval, "list": _list, "info": _info}


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(__doc__.strip())
        return 0 if argv else 2
    if argv[0] == "--version":
        print(f"tinygen {__version__}")
        return 0
    command = COMMANDS.get(argv[0])
    if command is None:
        print(f"tinygen: unknown command '{argv[0]}'; commands: {', '.join(COMMANDS)}",
              file=sys.stderr)
        return 2
    try:
        return command(argv[1:])
    except KeyboardInterrupt:  # a second Ctrl-C: the last checkpoint stays as it was
        print(f"\ntinygen {argv[0]}: interrupted", file=sys.stderr)
        return 130
    except UsageError as e:
        print(f"tinygen {argv[0]}: {e}", file=sys.stderr)
        return 2
    except (FileNotFoundError, ValueError, FloatingPointError) as e:  # e.g. the data is
        print(f"tinygen {argv[0]}: {e}", file=sys.stderr)       # missing, or a divergence
        return 1


if __name__ == "__main__":
    sys.exit(main())
