"""Data for tinygen's models: MNIST-format datasets, 2-D toy distributions, batching.

    load_mnist, load_fashion_mnist, load_dataset   the IDX files, found or downloaded
    cache_dir, data_dirs                           where they are looked for
    scale, flatten, binarize, dequantize           uint8 images -> model inputs
    toy, toy_modes                                 2-D toy distributions, in code
    toy_log_prob, toy_entropy                      their exact log-densities and
                                                   entropies (the floor of a test NLL)
    DataLoader                                     mini-batches as Tensors, resumable

Modules, one job each: ``idx`` (the file format), ``paths`` (where data lives),
``download`` (mirrors and checksums), ``mnist`` (finding and loading a dataset),
``transforms``, ``toy``, ``loader``.

A typical start::

    from tinygen.data import DataLoader, binarize, load_mnist, scale

    images, labels = load_mnist("train")                  # uint8 (60000, 28, 28), int64
    loader = DataLoader(images, batch_size=128, shuffle=True, seed=0,
                        transform=lambda x, g: binarize(scale(x), g))
    for x in loader:                                      # Tensor (128, 28, 28), 0/1
        ...
"""
from .idx import read_idx, read_images, read_labels
from .loader import DataLoader
from .mnist import (DATASETS, DataNotFoundError, load_dataset, load_fashion_mnist,
                    load_mnist)
from .paths import cache_dir, data_dirs
from .toy import TOY_DATASETS, toy, toy_entropy, toy_log_prob, toy_modes
from .transforms import binarize, dequantize, flatten, scale

__all__ = ["DATASETS", "TOY_DATASETS", "DataLoader", "DataNotFoundError", "binarize",
           "cache_dir", "data_dirs", "dequantize", "flatten", "load_dataset",
           "load_fashion_mnist", "load_mnist", "read_idx", "read_images", "read_labels",
           "scale", "toy", "toy_entropy", "toy_log_prob", "toy_modes"]
