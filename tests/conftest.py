"""Shared test setup: hypothesis profiles and the devices every test runs on.

Profiles, chosen with the environment variable HYPOTHESIS_PROFILE:
  ci        few examples, derandomized (reproducible); the default when CI is set
  dev       more examples, random each run; the default otherwise
  thorough  many examples, for a long hunt for counterexamples
"""
import os

import pytest
from hypothesis import HealthCheck, settings

import tinygen

_common = dict(deadline=None, print_blob=True,
               suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                      HealthCheck.filter_too_much])
settings.register_profile("ci", max_examples=12, derandomize=True, **_common)
settings.register_profile("dev", max_examples=40, **_common)
settings.register_profile("thorough", max_examples=500, **_common)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci" if os.environ.get("CI") else "dev"))

CUDA_SKIP_REASON = "needs CuPy and a CUDA GPU (pip install 'tinygen[gpu]' on a GPU machine)"

# Parametrize over this to run a test on every backend; the CUDA case skips without a GPU.
DEVICES = [
    pytest.param("cpu", id="cpu"),
    pytest.param("cuda", id="cuda",
                 marks=pytest.mark.skipif(not tinygen.cuda_available(), reason=CUDA_SKIP_REASON)),
]


@pytest.fixture(params=DEVICES)
def device(request):
    """The device string of the backend under test ("cpu", or "cuda" where available)."""
    return request.param


@pytest.fixture(autouse=True)
def _seed():
    tinygen.manual_seed(0)
