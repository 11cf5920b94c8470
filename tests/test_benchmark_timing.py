"""The benchmark harness's timing (not the benchmarks themselves, which are not tests)."""
import time

import pytest

from benchmarks.timing import blas_description, median_step_times


def test_frameworks_take_turns_in_blocks_with_warmup():
    calls = []

    def step(name, seconds):
        def run():
            calls.append(name)
            time.sleep(seconds)
        return run

    a, b = median_step_times([step("a", 0.002), step("b", 0.004)], [lambda: None] * 2,
                             repeat=7, warmup=1, rounds=3, pause=0.0)
    # 7 timed steps split 3, 2, 2 over the rounds, each block after 1 warm-up step
    assert "".join(calls) == "aaaa" "bbbb" "aaa" "bbb" "aaa" "bbb"
    assert 0.002 <= a < b and b >= 0.004


def test_the_table_says_whether_openblas_kernels_are_pinned(monkeypatch):
    """A pin to older kernels halves NumPy's matrix product on a newer CPU, so the
    table's header must say which kernels ran."""
    monkeypatch.setenv("OPENBLAS_CORETYPE", "Haswell")
    pinned = blas_description()
    if "openblas" not in pinned.lower():
        pytest.skip(f"NumPy is built with {pinned}, not OpenBLAS")
    monkeypatch.delenv("OPENBLAS_CORETYPE")
    assert "pinned by OPENBLAS_CORETYPE=Haswell" in pinned
    assert "chosen for this CPU" in blas_description()
