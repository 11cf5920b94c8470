"""Shared test setup: hypothesis profiles and the devices every test runs on.

Profiles, chosen with the environment variable HYPOTHESIS_PROFILE:
  ci        few examples, derandomized (reproducible); the default when CI is set
  dev       more examples, random each run; the default otherwise
  thorough  many examples, for a long hunt for counterexamples

The "cuda" cases: on a machine where CuPy cannot be imported they run on a NumPy stand-in
for CuPy (tests/fakecupy), which refuses implicit conversion to NumPy and mixing NumPy
arrays with device arrays, so the CUDA code paths are exercised on the CPU. With the real
CuPy on a GPU they use it. TINYGEN_TEST_FAKE_CUPY=0 never uses the stand-in (the cuda
cases then skip without a GPU); =1 uses it even where CuPy is installed.
"""
import importlib
import os
import sys

import pytest
from hypothesis import HealthCheck, settings

import tinygen

FAKE_CUPY_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fakecupy")


def _install_fake_cupy() -> bool:
    """Put the NumPy stand-in first on sys.path as "cupy" (see the docstring above);
    True if it is in use. Runs before anything asks tinygen about CUDA."""
    setting = os.environ.get("TINYGEN_TEST_FAKE_CUPY", "auto").strip().lower()
    if setting in ("0", "no", "false", "off"):
        return False
    if setting not in ("1", "yes", "true", "on"):  # auto: only where CuPy is missing
        try:
            import cupy  # noqa: F401
            return False
        except Exception:  # ImportError, or a broken CUDA install: as backend treats it
            pass
    for name in [m for m in sys.modules if m.split(".")[0] in ("cupy", "cupyx")]:
        del sys.modules[name]
    sys.path.insert(0, FAKE_CUPY_DIR)
    importlib.invalidate_caches()
    tinygen.backend._cupy, tinygen.backend._cupy_tried = None, False  # import it afresh
    import cupy
    assert getattr(cupy, "IS_STAND_IN", False), f"{cupy.__file__} is not the stand-in"
    return True


FAKE_CUPY = _install_fake_cupy()


def pytest_report_header(config):
    if FAKE_CUPY:
        return ["cuda cases run on the NumPy stand-in for CuPy (tests/fakecupy), "
                "not on a GPU"]
    return [f"cuda cases: {'on the GPU with CuPy' if tinygen.cuda_available() else 'skipped'}"]


_common = dict(deadline=None, print_blob=True,
               suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                      HealthCheck.filter_too_much])
settings.register_profile("ci", max_examples=12, derandomize=True, **_common)
settings.register_profile("dev", max_examples=40, **_common)
settings.register_profile("thorough", max_examples=500, **_common)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci" if os.environ.get("CI") else "dev"))

CUDA_SKIP_REASON = "needs CuPy and a CUDA GPU (pip install 'tinygen[gpu]' on a GPU machine)"

# Parametrize over this to run a test on every backend; the CUDA case skips without a GPU,
# and runs on the stand-in (with the id "cuda-fakecupy") where CuPy is missing.
DEVICES = [
    pytest.param("cpu", id="cpu"),
    pytest.param("cuda", id="cuda-fakecupy" if FAKE_CUPY else "cuda",
                 marks=pytest.mark.skipif(not tinygen.cuda_available(), reason=CUDA_SKIP_REASON)),
]


@pytest.fixture(params=DEVICES)
def device(request):
    """The device string of the backend under test ("cpu", or "cuda" where available)."""
    return request.param


@pytest.fixture(autouse=True)
def _seed():
    tinygen.manual_seed(0)


@pytest.fixture(scope="session")
def small_classifier(tmp_path_factory):
    """The LeNet classifier trained for 150 steps on the first 4000 MNIST training images
    only (fast; about 97% test accuracy): an instrument for tests of FID and class
    accuracy. Needs TINYGEN_DATA."""
    from tinygen import data
    from tinygen.experiments.classifier import ClassifierExperiment, images_to_input
    from tinygen.train import fit

    class SmallClassifier(ClassifierExperiment):
        def train_loader(self):
            images, labels = data.load_mnist("train")
            return data.DataLoader(images_to_input(images[:4000]), labels[:4000],
                                   batch_size=64, shuffle=True, seed=0)

    config = {**ClassifierExperiment.defaults, "model": "classifier", "dataset": "mnist",
              "device": "cpu", "seed": 0}
    clf = SmallClassifier(config)
    fit(clf, str(tmp_path_factory.mktemp("clf")), steps=150, progress=False)
    return clf
