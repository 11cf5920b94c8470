"""The lazy registry of training recipes: listing imports no model, and every entry
agrees with the class it names."""
import subprocess
import sys

import pytest

from tinygen.experiments import REGISTRY, get_experiment
from tinygen.experiments.base import Experiment


@pytest.mark.parametrize("name", sorted(REGISTRY))
def test_every_entry_names_its_recipe(name):
    cls = get_experiment(name)
    assert issubclass(cls, Experiment) and cls.name == name
    entry = REGISTRY[name]
    assert entry.description and entry.datasets
    for key in ("batch_size", "lr", "epochs"):
        assert key in cls.defaults, (name, key)


def test_listing_the_models_imports_none_of_them():
    code = ("import sys; from tinygen.cli import main; main(['list']); "
            "loaded = [m for m in sys.modules if m.startswith(('tinygen.models', "
            "'tinygen.experiments.')) and m != 'tinygen.experiments.base']; "
            "print('LOADED', loaded)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert "vae" in out and "LOADED []" in out, out


def test_an_unknown_name_lists_the_known_ones():
    with pytest.raises(KeyError, match="unknown model 'stylegan'; known models: ae, cgan, "
                                       "classifier"):
        get_experiment("stylegan")
