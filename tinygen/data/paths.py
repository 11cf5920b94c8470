"""Where datasets are looked for, and where downloads go.

The data folder holds one subfolder per dataset (``mnist/``, ``fashion-mnist/``), each
with that dataset's IDX files. It is, in order of precedence:

1. the ``root`` argument, when given;
2. else the environment variable ``TINYGEN_DATA``, when set;
3. the per-user cache folder, ``$XDG_CACHE_HOME/tinygen`` or ``~/.cache/tinygen``,
   searched last in every case because that is where downloads are written.

Fashion-MNIST is also found where Debian's package ``dataset-fashion-mnist`` installs it
(``/usr/share/datasets/fashion-mnist``, the files directly in that folder), searched after
the user's folder and before the cache.

Folders the user chose (1, 2 and Debian's) are only ever read: tinygen never writes
into them. Downloads go into the cache folder alone.
"""
from __future__ import annotations

import os
from pathlib import Path

__all__ = ["ENV_VAR", "DEBIAN_FASHION_MNIST", "cache_dir", "data_dirs", "dataset_dirs"]

ENV_VAR = "TINYGEN_DATA"

# Debian's package dataset-fashion-mnist puts the four files directly in this folder.
DEBIAN_FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")
DEBIAN_SOURCE = "Debian package dataset-fashion-mnist"


def cache_dir() -> Path:
    """The per-user cache folder: ``$XDG_CACHE_HOME/tinygen``, else ``~/.cache/tinygen``.

    Downloads are written here (into one subfolder per dataset). It need not exist yet.
    """
    xdg = os.environ.get("XDG_CACHE_HOME", "")
    # The XDG spec says a relative XDG_CACHE_HOME is invalid and must be ignored.
    base = Path(xdg) if xdg and os.path.isabs(xdg) else Path.home() / ".cache"
    return base / "tinygen"


def _user_dir(root):
    """The folder the user supplied, with where it came from, or None."""
    if root is not None:
        return Path(os.path.abspath(os.path.expanduser(os.fspath(root)))), "root="
    env = os.environ.get(ENV_VAR, "")
    if env:
        return Path(os.path.abspath(os.path.expanduser(env))), f"{ENV_VAR}"
    return None


def data_dirs(root=None) -> list:
    """The data folders searched, in order: ``root`` if given, else ``$TINYGEN_DATA`` if
    set; then always ``cache_dir()``. Each holds one subfolder per dataset."""
    user = _user_dir(root)
    return ([user[0]] if user else []) + [cache_dir()]


def dataset_dirs(name, root=None) -> list:
    """The folders searched for dataset ``name``, in order, each as a tuple
    (folder, where it comes from, whether the user supplied it).

    E.g. for "fashion-mnist" with TINYGEN_DATA=/data:
    [(/data/fashion-mnist, "TINYGEN_DATA", True),
     (/usr/share/datasets/fashion-mnist, "Debian package dataset-fashion-mnist", True),
     (~/.cache/tinygen/fashion-mnist, "cache", False)].

    Raises:
        FileNotFoundError: ``root`` or ``$TINYGEN_DATA`` names a folder that does not
            exist (a typo should not silently fall through to the cache).
    """
    out = []
    user = _user_dir(root)
    if user is not None:
        folder, source = user
        if not folder.is_dir():
            what = f"root={os.fspath(root)!r}" if source == "root=" else \
                f"{ENV_VAR}={os.environ[ENV_VAR]!r}"
            raise FileNotFoundError(
                f"{what} is not a folder ({folder} does not exist). Point it at the data "
                f"folder, the one that contains {name}/ with the IDX files.")
        out.append((folder / name, source, True))
    if name == "fashion-mnist":
        out.append((Path(DEBIAN_FASHION_MNIST), DEBIAN_SOURCE, True))
    out.append((cache_dir() / name, "cache", False))
    return out
