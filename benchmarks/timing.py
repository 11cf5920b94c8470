"""Timing the workloads and printing the comparison table."""
import os
import platform
import statistics
import time

import numpy as np

from .workloads import WORKLOADS


def _synchronizer(framework, device):
    if device != "cuda":
        return lambda: None
    if framework == "torch":
        import torch
        return torch.cuda.synchronize
    import cupy
    return cupy.cuda.Device().synchronize


def median_step_times(steps, syncs, repeat, warmup, rounds=3, pause=0.5):
    """The median wall time of one step of each of ``steps``, in seconds.

    The frameworks take turns in ``rounds`` blocks (a a a, b b b, a a a, ...), each block
    starting with ``warmup`` untimed steps, so a machine that slows down or speeds up
    during the run (a shared host) moves both figures alike. Blocks, not single steps:
    right after one framework's step its idle threads still spin on the cores for a
    moment (OpenBLAS's for about 0.1 s) and would slow the other's next step, so each
    block also starts after ``pause`` seconds that let them fall asleep.
    """
    times = [[] for _ in steps]
    for r in range(rounds):
        n = repeat // rounds + (r < repeat % rounds)
        for step, sync, t in zip(steps, syncs, times):
            time.sleep(pause)
            for _ in range(warmup):
                step()
            sync()
            for _ in range(n):
                t0 = time.perf_counter()
                step()
                sync()
                t.append(time.perf_counter() - t0)
    return [statistics.median(t) for t in times]


def _torch(threads):
    try:
        import torch
    except (ImportError, OSError):  # OSError: an install missing its CUDA libraries
        return None
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    return torch


def blas_description():
    """NumPy's BLAS and which kernels it runs. OpenBLAS picks kernels for the CPU it finds
    unless OPENBLAS_CORETYPE pins them: on an AVX-512 CPU a pin to Haswell (AVX2) halves
    the float32 matrix product, and with it every convolution, while PyTorch's oneDNN
    is not affected, so the ratios depend on it."""
    try:
        blas = np.show_config(mode="dicts")["Build Dependencies"]["blas"]
        name = f"{blas['name']} {blas.get('version', '')}".strip()
    except Exception:  # an older NumPy or an unusual build: say what we know
        name = "unknown"
    pin = os.environ.get("OPENBLAS_CORETYPE")
    kernels = (f"kernels pinned by OPENBLAS_CORETYPE={pin}" if pin
               else "kernels chosen for this CPU")
    return f"{name}, {kernels}" if "openblas" in name.lower() else name


def run_table(args):
    import tinygen as tg
    names = args.names or list(WORKLOADS)
    unknown = [n for n in names if n not in WORKLOADS]
    if unknown:
        print(f"unknown workload(s) {unknown}; choose from {list(WORKLOADS)}")
        return 2
    if args.device == "cuda":
        try:  # before building anything: say what is missing instead of a traceback
            tg.backend.check_device("cuda")
        except RuntimeError as e:
            print(f"python -m benchmarks --device cuda: {e}")
            return 2
    torch = None if args.no_torch else _torch(args.threads)
    if torch is not None and args.device == "cuda" and not torch.cuda.is_available():
        print(f"torch {torch.__version__} has no CUDA here: timing tinygen only")
        torch = None
    tg.manual_seed(0)
    print(f"tinygen {tg.__version__}, numpy {np.__version__}"
          + (f", torch {torch.__version__}" if torch else ", torch not installed")
          + f" | {platform.machine()}, {args.threads} threads, device {args.device}"
          + f" | median of {args.repeat} steps")
    print(f"NumPy's BLAS: {blas_description()}")
    print(f"{'workload':<12}{'tinygen ms':>12}{'torch ms':>12}{'ratio':>8}")
    results = {}
    for name in names:
        module = WORKLOADS[name]
        steps = [module.tinygen_step(args.device)]
        syncs = [_synchronizer("tinygen", args.device)]
        if torch is not None:
            steps.append(module.torch_step(args.device))
            syncs.append(_synchronizer("torch", args.device))
        times = median_step_times(steps, syncs, args.repeat, args.warmup)
        t_tg, t_torch = times[0], (times[1] if torch is not None else None)
        results[name] = (t_tg, t_torch)
        ratio = f"{t_tg / t_torch:8.2f}" if t_torch else f"{'-':>8}"
        torch_ms = f"{t_torch * 1e3:12.1f}" if t_torch else f"{'-':>12}"
        print(f"{name:<12}{t_tg * 1e3:12.1f}{torch_ms}{ratio}", flush=True)
    if args.engine:
        from . import engine
        for k, v in engine.run().items():
            print(f"{k:<36} {v:10.2f}")
    return 0
