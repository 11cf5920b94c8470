"""Where a workload's time goes, op by op: python -m benchmarks.profile WORKLOAD.

Wraps every Function's forward and backward with a timer, runs a few training steps,
and prints the time per step spent in each op's forward and backward (exclusive: a
backward's time does not include the ops it calls), plus the optimizer step and what is
left over (Python and the graph walk). Cheaper and more honest than cProfile for this purpose.
"""
import argparse
import collections
import time

from tinygen import autograd, optim

from .workloads import WORKLOADS


def _wrap(cls, name, totals, stack):
    """Time cls.name exclusively: time spent in other wrapped calls nested inside it
    (a backward calling ops' forwards) is counted for those, not twice."""
    original = getattr(cls, name)
    key = f"{cls.__name__}.{name}"

    def timed(self, *args, **kwargs):
        stack.append(0.0)  # time of nested wrapped calls
        t0 = time.perf_counter()
        try:
            return original(self, *args, **kwargs)
        finally:
            elapsed = time.perf_counter() - t0
            nested = stack.pop()
            totals[key] += elapsed - nested
            if stack:
                stack[-1] += elapsed
    setattr(cls, name, timed)


def _all_functions():
    todo, seen = [autograd.Function], []
    while todo:
        cls = todo.pop()
        for sub in cls.__subclasses__():
            seen.append(sub)
            todo.append(sub)
    return seen


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m benchmarks.profile")
    p.add_argument("workload", choices=list(WORKLOADS))
    p.add_argument("--steps", type=int, default=3)
    p.add_argument("--device", default="cpu")
    args = p.parse_args(argv)
    step = WORKLOADS[args.workload].tinygen_step(args.device)
    step()  # warm up before wrapping
    totals, stack = collections.defaultdict(float), []
    for cls in _all_functions():
        for name in ("forward", "backward"):
            if name in vars(cls):
                _wrap(cls, name, totals, stack)
    for cls in (optim.Adam, optim.SGD):
        _wrap(cls, "step", totals, stack)
    t0 = time.perf_counter()
    for _ in range(args.steps):
        step()
    wall = (time.perf_counter() - t0) / args.steps
    exclusive = {k: v / args.steps for k, v in totals.items()}
    print(f"{args.workload}: {wall * 1e3:.1f} ms per step")
    for k, v in sorted(exclusive.items(), key=lambda kv: -kv[1])[:20]:
        print(f"  {k:<28}{v * 1e3:9.1f} ms  {v / wall:6.1%}")
    print(f"  {'(python, graph, other)':<28}{(wall - sum(exclusive.values())) * 1e3:9.1f} ms")


if __name__ == "__main__":
    main()
