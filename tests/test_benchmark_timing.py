"""The benchmark harness's timing (not the benchmarks themselves, which are not tests),
its refusal of a missing GPU, and that each workload runs on the cuda device."""
import time

import pytest

import tinygen as tg
from benchmarks.__main__ import parse_args
from benchmarks.timing import blas_description, median_step_times, run_table
from benchmarks.workloads import WORKLOADS
from conftest import CUDA_SKIP_REASON


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


def test_cuda_without_cupy_is_refused_before_anything_is_built(monkeypatch, capsys):
    backend = tg.backend
    monkeypatch.setattr(backend, "_cupy", None)
    monkeypatch.setattr(backend, "_cupy_tried", True)
    monkeypatch.setattr(backend, "_cupy_error", ImportError("No module named 'cupy'"))
    assert run_table(parse_args(["mlp_vae", "--device", "cuda", "--no-torch"])) == 2
    out = capsys.readouterr().out
    assert "--device cuda: device 'cuda' needs CuPy" in out and "pip install" in out
    assert "workload" not in out  # no table was started


@pytest.mark.skipif(not tg.cuda_available(), reason=CUDA_SKIP_REASON)
@pytest.mark.parametrize("name", sorted(WORKLOADS))
def test_each_workload_takes_a_step_on_cuda(name):
    """The GPU benchmark path builds and runs (on the stand-in where CuPy is missing)."""
    WORKLOADS[name].tinygen_step("cuda")()
