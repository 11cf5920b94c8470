"""Data flows one way: a lower layer of tinygen never imports a higher one.

Every module under tinygen/ is parsed (with ``ast``, not imported), and each of its
imports, at the top or inside a function, absolute or relative, is resolved to the
tinygen module it names: ``from . import x`` to the submodule x when there is one, and a
name the package's __init__ re-exports (``from .. import no_grad``) to the module it
comes from. A module may import its own layer and the layers below it, nothing above.

To add a module: place it in LAYERS below, in the lowest layer its imports allow and the
design (DESIGN.md, "Layers of the code") agrees with. A module the table does not know
fails the test until it is placed.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE_ROOT = Path(__file__).resolve().parents[1] / "tinygen"

# Lowest first. "pkg.*" covers the package pkg and every module below it; any other name
# is one module. The package itself ("tinygen", its __init__) sits at the bottom: what it
# defines (__version__) is a leaf, and its re-exports are the exception listed below.
LAYERS = [
    ("backend", ["tinygen", "tinygen.backend",
                 "tinygen.files",                   # atomic writes, a leaf utility
                 "tinygen.parallel"]),              # the thread pool, a leaf utility
    ("autograd", ["tinygen.autograd", "tinygen.random"]),
    ("ops", ["tinygen.ops.*", "tinygen.creation", "tinygen.gradcheck"]),
    ("nn", ["tinygen.nn.*"]),
    ("optim", ["tinygen.optim", "tinygen.serialization"]),
    ("distributions", ["tinygen.distributions", "tinygen.data.*"]),
    ("metrics", ["tinygen.metrics"]),
    ("models", ["tinygen.models.*"]),                # the math and the modules only
    ("plot", ["tinygen.plot"]),                      # pictures: drawn by the recipes, not
                                                     # by the models
    ("experiments", ["tinygen.experiments.*",        # the training recipes
                     "tinygen.train"]),              # the training loop
    ("cli", ["tinygen.cli"]),
]

# Upward imports, each with its reason: {(importer, imported module or "pkg.*"): reason}.
ALLOWED = {
    # Tensor's operators and methods (x + y, x.sum(), x.to(device)) and the engine's one
    # place of undoing broadcasting (sum_to) are ops, and the ops are Functions on
    # Tensors: one unit, split in two files for reading. autograd imports ops at its end
    # (after Tensor and Function exist) and inside the methods that need them.
    ("tinygen.autograd", "tinygen.ops.*"): "Tensor's operators and backward's sum_to are ops",
}
# The package's __init__ re-exports the names a user needs day to day, from every layer
# up to this one (`import tinygen as tg; tg.tensor, tg.nn, tg.optim.Adam`). It must not
# reach the models, the recipes or the command: `import tinygen` stays light.
INIT_REEXPORTS_UP_TO = "metrics"


# --------------------------------------------------------------------------- the checker

def _matches(module: str, pattern: str) -> bool:
    """Whether ``pattern`` (a module name, or "pkg.*") covers ``module``."""
    if pattern.endswith(".*"):
        return module == pattern[:-2] or module.startswith(pattern[:-1])
    return module == pattern


def layer_of(module: str):
    """(index, name) of the layer holding ``module``, or None when no layer does."""
    for index, (name, members) in enumerate(LAYERS):
        if any(_matches(module, m) for m in members):
            return index, name
    return None


def _allowed(importer: str, imported: str, imported_layer: int) -> bool:
    if importer == "tinygen":
        return imported_layer <= [name for name, _ in LAYERS].index(INIT_REEXPORTS_UP_TO)
    return any(importer == a and _matches(imported, b) for a, b in ALLOWED)


def module_name(path: Path, root: Path = PACKAGE_ROOT) -> str:
    """tinygen/ops/conv.py -> tinygen.ops.conv; tinygen/nn/__init__.py -> tinygen.nn."""
    parts = path.relative_to(root.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _module_file(module: str):
    """The source file of a tinygen module (a package's __init__ or a .py file), or None."""
    parts = module.split(".")[1:]
    base = PACKAGE_ROOT.joinpath(*parts)
    if (base / "__init__.py").is_file():
        return base / "__init__.py"
    if parts and base.with_suffix(".py").is_file():
        return base.with_suffix(".py")
    return None


def _reexport_source(package: str, name: str, seen=()):
    """The module a package's __init__ takes ``name`` from (followed through further
    __init__ re-exports), or the package itself when it defines the name."""
    path = _module_file(package)
    if path is None or path.name != "__init__.py" or package in seen:
        return package
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.ImportFrom):
            source = _resolve_from(package, True, node)
            for alias in node.names:
                if (alias.asname or alias.name) == name and source.startswith("tinygen"):
                    return _target(source, alias.name, seen + (package,))
    return package


def _target(source: str, name: str, seen=()):
    """What ``from source import name`` names: a submodule, or where the name lives."""
    if _module_file(f"{source}.{name}") is not None:
        return f"{source}.{name}"
    return _reexport_source(source, name, seen)


def _resolve_from(module: str, is_package: bool, node: ast.ImportFrom) -> str:
    """The absolute module a ``from ... import`` statement reads from."""
    if not node.level:
        return node.module or ""
    base = module.split(".") if is_package else module.split(".")[:-1]
    base = base[:len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def imports_of(module: str, source: str, is_package: bool = False):
    """(line, imported tinygen module) for every import statement in ``source``."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names
                      if a.name.split(".")[0] == "tinygen"]
        elif isinstance(node, ast.ImportFrom):
            source_module = _resolve_from(module, is_package, node)
            if source_module.split(".")[0] == "tinygen":
                found += [(node.lineno, _target(source_module, a.name)) for a in node.names]
    return sorted(set(found))


def check_source(module: str, source: str, path: str, is_package: bool = False):
    """The layering violations of one module's source text, as messages."""
    own = layer_of(module)
    if own is None:
        return [f"{path}: module {module} is in no layer; place the module in a layer of "
                f"LAYERS in tests/test_layering.py (the lowest its imports and the design "
                f"allow)"]
    problems = []
    for line, imported in imports_of(module, source, is_package):
        theirs = layer_of(imported)
        if theirs is None:
            problems.append(f"{path}:{line}: imports {imported}, which is in no layer; place "
                            "the module in a layer of LAYERS in tests/test_layering.py")
        elif theirs[0] > own[0] and not _allowed(module, imported, theirs[0]):
            problems.append(f"{path}:{line}: {module} (layer '{own[1]}') imports {imported} "
                            f"(layer '{theirs[1]}', higher): a lower layer never imports a "
                            "higher one")
    return problems


def _source_files():
    return sorted(PACKAGE_ROOT.rglob("*.py"))


def _check_file(path: Path):
    return check_source(module_name(path), path.read_text(),
                        str(path.relative_to(PACKAGE_ROOT.parent)),
                        is_package=path.name == "__init__.py")


# --------------------------------------------------------------------------- the tests

@pytest.mark.parametrize("path", _source_files(),
                         ids=lambda p: str(p.relative_to(PACKAGE_ROOT.parent)))
def test_module_imports_no_higher_layer(path):
    problems = _check_file(path)
    assert not problems, "\n".join(problems)


def test_every_allowed_exception_is_still_used():
    """An exception nobody needs any more is removed, so the list stays the truth."""
    used = set()
    for path in _source_files():
        module = module_name(path)
        for _, imported in imports_of(module, path.read_text(), path.name == "__init__.py"):
            used |= {key for key in ALLOWED if module == key[0] and _matches(imported, key[1])}
    assert used == set(ALLOWED), f"unused exceptions: {sorted(set(ALLOWED) - used)}"


def test_the_checker_reports_an_upward_import():
    """Fed made-up sources, the checker finds what it must (so the test above can fail)."""
    src = "import numpy as np\n\n\ndef f():\n    from ..nn import functional as F\n"
    (problem,) = check_source("tinygen.ops.madeup", src, "tinygen/ops/madeup.py")
    assert problem.startswith("tinygen/ops/madeup.py:5: ")
    assert "tinygen.nn.functional" in problem
    assert "layer 'ops'" in problem and "layer 'nn'" in problem

    (problem,) = check_source("tinygen.backend", "import tinygen.cli\n", "tinygen/backend.py")
    assert "tinygen/backend.py:1:" in problem and "layer 'cli'" in problem

    # a name re-exported by the package's __init__ is traced to where it lives
    (problem,) = check_source("tinygen.random", "from . import no_grad, nn\n",
                              "tinygen/random.py")
    assert "imports tinygen.nn " in problem
    assert check_source("tinygen.random", "from . import no_grad, __version__\n",
                        "tinygen/random.py") == []

    # downward and same-layer imports pass, and so do the listed exceptions
    assert check_source("tinygen.nn.madeup", "from ..ops import conv\nfrom . import init\n",
                        "tinygen/nn/madeup.py") == []
    assert check_source("tinygen.autograd", "from .ops.shape import sum_to\n",
                        "tinygen/autograd.py") == []
    assert check_source("tinygen.models.madeup", "from ..train import fit\n",
                        "tinygen/models/madeup.py") != []
    # the package's __init__ re-exports up to INIT_REEXPORTS_UP_TO, not beyond
    assert check_source("tinygen", "from . import nn, metrics\n", "tinygen/__init__.py",
                        is_package=True) == []
    (problem,) = check_source("tinygen", "from . import models\n", "tinygen/__init__.py",
                              is_package=True)
    assert "tinygen/__init__.py:1:" in problem and "layer 'models'" in problem


def test_the_checker_asks_to_place_an_unknown_module():
    (problem,) = check_source("tinygen.madeup", "", "tinygen/madeup.py")
    assert "tinygen/madeup.py" in problem and "place the module in a layer" in problem
    (problem,) = check_source("tinygen.ops.madeup", "from ..madeup import thing\n",
                              "tinygen/ops/madeup.py")
    assert "imports tinygen.madeup," in problem and "place the module in a layer" in problem
