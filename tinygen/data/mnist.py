"""MNIST and Fashion-MNIST: find the IDX files, download them if missing, read them.

Both datasets have the same layout: 70,000 grey-scale 28 x 28 images with labels 0-9,
split into 60,000 for training and 10,000 for testing, in four IDX files (see
``tinygen.data.idx``)::

    train-images-idx3-ubyte.gz   train-labels-idx1-ubyte.gz
    t10k-images-idx3-ubyte.gz    t10k-labels-idx1-ubyte.gz

Each file may also be stored decompressed, without the ``.gz``. Where they are looked
for is explained in ``tinygen.data.paths``; missing files are downloaded into the cache
folder and verified against the published checksums (``tinygen.data.download``).
"""
from __future__ import annotations

import os

from . import download as _download
from . import paths
from .idx import read_images, read_labels

__all__ = ["DATASETS", "SPLITS", "DataNotFoundError", "load_mnist", "load_fashion_mnist",
           "load_dataset"]

DATASETS = ("mnist", "fashion-mnist")

# split -> (images file, labels file, number of examples), files without ".gz".
SPLITS = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", 60000),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte", 10000),
}

_TITLES = {"mnist": "MNIST", "fashion-mnist": "Fashion-MNIST"}
_ALL_FILES = ", ".join(f"{stem}.gz" for split in SPLITS.values() for stem in split[:2])


class DataNotFoundError(FileNotFoundError):
    """A dataset's files are in none of the folders searched and could not be downloaded.

    The message lists every folder searched and says how to provide the files."""


def _find(folder, stem):
    """The path of ``stem`` or ``stem.gz`` in ``folder``, or None."""
    for name in (stem + ".gz", stem):
        path = folder / name
        if path.is_file():
            return path
    return None


def _how_to_provide(name):
    lines = [
        "To provide the data, do one of:",
        f"  - set {paths.ENV_VAR} to a data folder that contains {name}/ with the four IDX "
        f"files ({_ALL_FILES}; gzip-compressed or not)",
        "  - give that data folder as --data-root FOLDER to the tinygen command (root=FOLDER "
        "in Python)",
        f"  - allow the download (download=True, the default) on a machine with network "
        f"access; the files go to {paths.cache_dir() / name}",
    ]
    if name == "fashion-mnist":
        lines.append(f"  - install Debian's package dataset-fashion-mnist "
                     f"(files in {paths.DEBIAN_FASHION_MNIST})")
    return "\n".join(lines)


def _not_found(name, split, searched, problem):
    title = _TITLES[name]
    images, labels, _ = SPLITS[split]
    lines = [f"{title} {split} split not found: looked for {images}[.gz] and {labels}[.gz] in"]
    for folder, source, note in searched:
        lines.append(f"  {folder}  ({source}): {note}")
    lines.append(problem)
    lines.append(_how_to_provide(name))
    return DataNotFoundError("\n".join(lines))


def _read_split(name, split, images_path, labels_path):
    """Read and cross-check one split's pair of files."""
    _, _, count = SPLITS[split]
    # The expected counts catch a folder holding another dataset's or split's files.
    try:
        images = read_images(images_path, count)
        labels = read_labels(labels_path, count)
    except ValueError as e:
        raise ValueError(f"{_TITLES[name]} {split} split: {e}") from None
    return images, labels


def load_dataset(name, split="train", root=None, download=True, progress=True):
    """Load the images and labels of one split of an MNIST-format dataset.

    Args:
        name: one of ``DATASETS``: "mnist" or "fashion-mnist".
        split: "train" (60,000 examples) or "test" (10,000).
        root: the data folder, containing ``name/`` with the IDX files. Default: the
            environment variable TINYGEN_DATA, else the per-user cache folder (see
            ``data_dirs``).
        download: whether to download missing files into the cache folder.
        progress: whether to show a progress bar while downloading.

    Returns:
        (images, labels): uint8 array (N, 28, 28) with 0 for the background, and int64
        array (N,) with values 0-9.

    Raises:
        DataNotFoundError: the files are nowhere and could not be downloaded; the
            message names every folder searched and how to provide the files.
        ValueError: a file is truncated or corrupt, or has the wrong header or count;
            the message names it.
        FileNotFoundError: ``root`` or TINYGEN_DATA names a folder that does not exist.
    """
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; known datasets: {', '.join(DATASETS)}")
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; expected one of {', '.join(SPLITS)}")
    images_stem, labels_stem, _ = SPLITS[split]

    searched = []
    for folder, source, user_supplied in paths.dataset_dirs(name, root):
        images, labels = _find(folder, images_stem), _find(folder, labels_stem)
        if images and labels:
            return _read_split(name, split, images, labels)
        if (images or labels) and user_supplied:
            # Half a pair in the user's folder is a mistake to point out, not a reason to
            # look elsewhere. (Half a pair in the cache is an interrupted download: the
            # rest is downloaded below.)
            have, lack = (images, labels_stem) if images else (labels, images_stem)
            searched.append((folder, source, f"has {have.name} but not {lack}[.gz]"))
            raise _not_found(name, split, searched,
                             f"The folder {folder} is incomplete: add {lack}.gz to it.")
        note = "no such folder" if not folder.is_dir() else "files not there"
        if user_supplied and source != paths.DEBIAN_SOURCE \
                and _find(folder.parent, images_stem):
            # The files were put directly in the data folder, not in its name/ subfolder.
            note += (f" (but {folder.parent} holds {images_stem} directly: move the files "
                     f"into {folder}{os.sep})")
        searched.append((folder, source, note))

    if not download:
        raise _not_found(name, split, searched, "Downloading is off (download=False).")
    cache = paths.cache_dir() / name
    try:
        got = {}
        for stem in (images_stem, labels_stem):
            # A file from an earlier, partly successful download is already verified.
            got[stem] = _find(cache, stem) or _download.fetch(name, stem + ".gz", cache,
                                                               progress=progress)
    except OSError as e:
        raise _not_found(name, split, searched,
                         f"Downloading into {cache} failed: {e}") from None
    return _read_split(name, split, got[images_stem], got[labels_stem])


def load_mnist(split="train", root=None, download=True, progress=True):
    """MNIST handwritten digits: (images uint8 (N, 28, 28), labels int64 (N,)), N =
    60,000 for "train" and 10,000 for "test". See ``load_dataset`` for the arguments."""
    return load_dataset("mnist", split, root=root, download=download, progress=progress)


def load_fashion_mnist(split="train", root=None, download=True, progress=True):
    """Fashion-MNIST (Zalando's clothing images, 10 classes, 0 = T-shirt/top ... 9 =
    ankle boot): (images uint8 (N, 28, 28), labels int64 (N,)), N = 60,000 for "train"
    and 10,000 for "test". See ``load_dataset`` for the arguments."""
    return load_dataset("fashion-mnist", split, root=root, download=download,
                        progress=progress)
