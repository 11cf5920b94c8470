"""DataLoader: mini-batches of in-memory arrays as Tensors, reproducible and resumable.

One pass over the data is an epoch. With ``shuffle=True`` each epoch visits the samples
in a new random order, drawn from the loader's own generator, so the same seed gives
the same sequence of epochs whatever else the program draws.

Resuming. ``state_dict()`` records the epoch, how many of its batches were handed out,
the shuffle generator's state when the epoch began (from which its order is drawn
again) and the transform generator's current state. A run restarted from a checkpoint
that calls ``load_state_dict`` continues with exactly the batches, and the same random
transform draws, that the uninterrupted run would have seen. The state holds only
numbers and strings, so ``tinygen.save`` can store it.
"""
from __future__ import annotations

import copy

import numpy as np

from .. import backend
from .. import random as _random
from ..autograd import Tensor, tensor

__all__ = ["DataLoader"]


def _is_array(x):
    return hasattr(x, "shape") and hasattr(x, "dtype") and not isinstance(x, Tensor)


def _describe(x):
    if isinstance(x, (tuple, list)):
        return f"a {type(x).__name__} of {len(x)}: " + ", ".join(type(a).__name__ for a in x)
    return type(x).__name__


class DataLoader:
    """Iterate over mini-batches of arrays that share their first axis.

    Args:
        *arrays: NumPy arrays (or Tensors and CuPy arrays, copied to NumPy) of the same
            length N, e.g. images (N, 28, 28) and labels (N,).
        batch_size: samples per batch.
        shuffle: visit the samples in a new random order each epoch.
        seed: seed of the loader's generators (shuffling and the transform's draws);
            None seeds them from tinygen's global generator (``tinygen.manual_seed``).
        drop_last: drop the last batch when it is smaller than batch_size.
        device: "cpu" or "cuda", where the yielded Tensors live.
        transform: ``transform(batch, generator) -> batch`` applied to each batch
            before it becomes Tensors. ``batch`` has the form the loader yields (one
            NumPy array, or a tuple of them), ``generator`` is the loader's
            ``numpy.random.Generator`` for random transforms. E.g. dynamic binarisation:
            ``transform=lambda x, g: binarize(scale(x), g)``.

    Yields:
        One Tensor per array, as a tuple; a loader of a single array yields a Tensor.
        Batches keep their arrays' dtypes (uint8 stays uint8): cast in ``transform``.

    ``len(loader)`` is the number of batches in an epoch. Each ``iter()`` begins a new
    epoch, except the first one after ``load_state_dict`` of a state taken
    mid-epoch, which finishes that epoch.
    """

    def __init__(self, *arrays, batch_size, shuffle=False, seed=None, drop_last=False,
                 device="cpu", transform=None):
        if not arrays:
            raise TypeError("DataLoader needs at least one array")
        self.arrays = tuple(a.numpy() if isinstance(a, Tensor) else backend.to_numpy(a)
                            for a in arrays)
        for i, a in enumerate(self.arrays):
            if a.ndim == 0:
                raise ValueError(f"DataLoader: array {i} is a scalar; arrays are batched "
                                 "along their first axis")
        lengths = [len(a) for a in self.arrays]
        if len(set(lengths)) > 1:
            shapes = ", ".join(str(a.shape) for a in self.arrays)
            raise ValueError(f"DataLoader: the arrays have different lengths {lengths} "
                             f"(shapes {shapes}); they must share their first axis")
        if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) \
                or batch_size < 1:
            raise ValueError(f"DataLoader: batch_size must be a positive integer; "
                             f"got {batch_size!r}")
        if transform is not None and not callable(transform):
            raise TypeError(f"DataLoader: transform must be callable; got "
                            f"{type(transform).__name__}")
        self.num_samples = lengths[0]
        self.batch_size = int(batch_size)
        self.shuffle = bool(shuffle)
        self.drop_last = bool(drop_last)
        self.device = backend.check_device(device)  # a missing GPU is reported now
        self.transform = transform

        # Two independent generators: drawing the transform's noise must not shift the
        # shuffle order (and vice versa), or a resumed run would diverge.
        seeds = _random.generator(seed).integers(0, 2 ** 63 - 1, size=2)
        self._shuffle_rng = _random.generator(int(seeds[0]))
        self.generator = _random.generator(int(seeds[1]))  # passed to transform

        self._epoch = 0
        self._position = 0  # batches of the current epoch handed out so far
        self._epoch_start = self._shuffle_rng.bit_generator.state
        self._order = None  # this epoch's sample order, drawn on first use
        self._resume = False
        self._pass = 0      # which iter() is current; an older iterator stops working

    def __len__(self):
        """Batches per epoch."""
        n, b = self.num_samples, self.batch_size
        return n // b if self.drop_last else -(-n // b)

    @property
    def epoch(self) -> int:
        """The current epoch, counted from 0."""
        return self._epoch

    def _epoch_order(self):
        """The current epoch's order of sample indices (None: in order), drawn from the
        shuffle generator as it stood when the epoch began; afterwards the generator
        stands just past that draw, where the next epoch begins."""
        if self.shuffle and self._order is None:
            self._shuffle_rng.bit_generator.state = self._epoch_start
            self._order = self._shuffle_rng.permutation(self.num_samples)
        return self._order

    def _next_epoch(self):
        self._epoch_order()  # moves the generator past this epoch's draw
        self._epoch += 1
        self._position = 0
        self._epoch_start = self._shuffle_rng.bit_generator.state
        self._order = None

    def __iter__(self):
        if self._resume:
            self._resume = False
        elif self._position > 0:  # the last epoch was finished or abandoned
            self._next_epoch()
        self._pass += 1
        return self._batches(self._pass, self._epoch_order())

    def _batches(self, this_pass, order):
        n, b = self.num_samples, self.batch_size
        single = len(self.arrays) == 1
        for i in range(self._position, len(self)):
            if this_pass != self._pass:
                raise RuntimeError("DataLoader: this iterator is stale: a newer iteration "
                                   "began, or load_state_dict was called, since it started")
            lo, hi = i * b, min((i + 1) * b, n)
            # In order: a slice (a view, no copy). Shuffled: fancy indexing gathers the
            # batch in one vectorised copy.
            index = slice(lo, hi) if order is None else order[lo:hi]
            batch = tuple(a[index] for a in self.arrays)
            batch = batch[0] if single else batch
            if self.transform is not None:
                batch = self._apply_transform(batch, single)
            self._position = i + 1  # counted before the yield: the caller now holds it
            if single:
                yield tensor(batch, device=self.device)
            else:
                yield tuple(tensor(a, device=self.device) for a in batch)

    def _apply_transform(self, batch, single):
        out = self.transform(batch, self.generator)
        if single:
            ok = _is_array(out)
        else:
            ok = isinstance(out, (tuple, list)) and len(out) == len(batch) \
                and all(_is_array(a) for a in out)
        if not ok:
            want = "one array" if single else f"a tuple of {len(batch)} arrays"
            raise TypeError(f"DataLoader: transform must return {want}, the form it was "
                            f"given; got {_describe(out)}")
        return out

    def state_dict(self) -> dict:
        """Where the loader stands: epoch, batches handed out in it, and generator states.

        Call it between batches; ``load_state_dict`` on a loader over the same data
        continues from here.
        """
        return {
            "epoch": self._epoch,
            "position": self._position,
            "epoch_start_shuffle_state": copy.deepcopy(self._epoch_start),
            "transform_state": self.generator.bit_generator.state,
            "num_samples": self.num_samples,
            "batch_size": self.batch_size,
            "shuffle": self.shuffle,
            "drop_last": self.drop_last,
        }

    def load_state_dict(self, state: dict) -> None:
        """Continue from a state returned by ``state_dict``: the next ``iter()`` yields
        the rest of that epoch (or, if it was complete, the next epoch)."""
        missing = [k for k in self.state_dict() if k not in state]
        if missing:
            raise ValueError(f"DataLoader.load_state_dict: not a DataLoader state: it lacks "
                             f"{', '.join(missing)}")
        for key in ("num_samples", "batch_size", "shuffle", "drop_last"):
            if state[key] != getattr(self, key):
                raise ValueError(
                    f"DataLoader.load_state_dict: the state is for {key}={state[key]!r} but "
                    f"this loader has {key}={getattr(self, key)!r}; batches would differ")
        position = int(state["position"])
        if not 0 <= position <= len(self):
            raise ValueError(f"DataLoader.load_state_dict: position {position} is outside "
                             f"an epoch of {len(self)} batches")
        self._epoch = int(state["epoch"])
        self._position = position
        self._epoch_start = copy.deepcopy(state["epoch_start_shuffle_state"])
        self._shuffle_rng.bit_generator.state = self._epoch_start
        self._order = None
        self.generator.bit_generator.state = state["transform_state"]
        # Mid-epoch: the next iter() finishes this epoch. At a boundary (0 or all
        # batches) the usual rule gives the right epoch.
        self._resume = 0 < position < len(self)
        self._pass += 1

    def __repr__(self):
        shapes = ", ".join(str(a.shape) for a in self.arrays)
        return (f"DataLoader({shapes}, batch_size={self.batch_size}, shuffle={self.shuffle}, "
                f"drop_last={self.drop_last}, device='{self.device}')")
