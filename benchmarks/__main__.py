"""python -m benchmarks: time the engine and print a table."""
import os
import platform

import numpy as np

from . import engine


def main():
    print(f"tinygen engine benchmarks | numpy {np.__version__} | {platform.processor() or platform.machine()}"
          f" | {os.cpu_count()} cores")
    for name, value in engine.run().items():
        print(f"{name:<36} {value:10.2f}")


if __name__ == "__main__":
    main()
