"""python -m benchmarks: time one training step of each standard workload with tinygen
and, when PyTorch is installed, with PyTorch, in one run, and print a table.

    python -m benchmarks                      all workloads, CPU
    python -m benchmarks dcgan realnvp        some of them
    python -m benchmarks --device cuda        on the GPU (CuPy and CUDA PyTorch)
    python -m benchmarks --engine             the engine's own overhead figures

Both frameworks use the same number of threads (--threads, default: all cores); the
figure is the median of --repeat timed steps after --warmup untimed ones.
"""
import argparse
import os
import sys


def parse_args(argv=None):
    p = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.splitlines()[0])
    p.add_argument("names", nargs="*", help="workloads to run (default: all)")
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    p.add_argument("--repeat", type=int, default=10)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--threads", type=int, default=os.cpu_count())
    p.add_argument("--no-torch", action="store_true", help="time tinygen only")
    p.add_argument("--engine", action="store_true", help="also print the engine overheads")
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    # Thread counts must be fixed before NumPy's BLAS starts.
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(args.threads)
    from .timing import run_table
    return run_table(args)


if __name__ == "__main__":
    sys.exit(main())
