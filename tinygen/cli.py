"""The ``tinygen`` command.

    tinygen info        versions, and whether CUDA is usable
    tinygen --version

Training, sampling and evaluation commands arrive with the model families.
"""
from __future__ import annotations

import argparse
import platform
import sys

import numpy as np

from . import __version__, backend


def _info(args) -> int:
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


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog="tinygen", description="Deep generative models from scratch.")
    parser.add_argument("--version", action="version", version=f"tinygen {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.add_parser("info", help="show versions and available devices").set_defaults(func=_info)
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
