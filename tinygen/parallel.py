"""Running array work on all CPU cores, in cache-sized blocks.

NumPy's element-wise functions run on one core, but they release Python's global
interpreter lock while they compute. Python threads that each take their own part of
the data therefore run them in parallel. That is all this module does: ``parallel_map``
runs a function over a list of work items on a small pool of threads.

Blocks matter as much as threads for memory-bound updates such as Adam's: a chain of
ten element-wise operations over a 100 MB array reads and writes 100 MB ten times,
while the same chain run block by block, each block small enough to stay in the CPU
cache, touches main memory only once per array.

Every use is a speed-only route: the plain form is the same work done whole, in one
call (with one thread, ``parallel_map`` runs the items in order in the calling thread),
and tests/test_fast_routes.py checks that each gives the same numbers with one thread
and with several. What each buys is measured at its use: optim.py's Adam, 1.4 to 2.1
times faster here, nearly all of it from the blocks, not the second core; ops/conv.py's
unfold and fold, split by channel, no figure recorded.

The pool has TINYGEN_NUM_THREADS threads (default: the number of cores). On the GPU
none of this is needed: one CuPy kernel already uses the whole device.
"""
from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor

BLOCK = 1 << 15  # elements per block: 128 KB of float32, a few arrays fit in L2

_pool = None


def num_threads() -> int:
    """How many threads parallel_map uses (TINYGEN_NUM_THREADS, default all cores)."""
    value = os.environ.get("TINYGEN_NUM_THREADS")
    return max(1, int(value)) if value else (os.cpu_count() or 1)


def _get_pool():
    global _pool
    if _pool is None:
        _pool = ThreadPoolExecutor(max_workers=num_threads(), thread_name_prefix="tinygen")
    return _pool


def parallel_map(fn, items) -> None:
    """Call fn(item) for every item, spread over the threads; returns when all are done
    and re-raises the first exception. Items are split into one contiguous run per
    thread, so the per-item overhead stays a plain function call."""
    items = list(items)
    threads = min(num_threads(), len(items))
    if threads <= 1:
        for item in items:
            fn(item)
        return

    def run(chunk):
        for item in chunk:
            fn(item)

    per = -(-len(items) // threads)
    futures = [_get_pool().submit(run, items[i:i + per]) for i in range(0, len(items), per)]
    for f in futures:
        f.result()


def blocks(n: int, size: int = BLOCK):
    """slice objects covering range(n) in pieces of at most ``size``."""
    return [slice(i, min(i + size, n)) for i in range(0, n, size)]
