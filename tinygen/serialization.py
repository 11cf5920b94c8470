"""Saving and loading checkpoints: ``save(obj, path)`` and ``load(path, device)``.

What can be stored
------------------
A nested structure of dicts, lists and tuples whose leaves are Tensors, NumPy or CuPy
arrays (numbers or booleans), NumPy scalars, Python ``bool``, ``int`` (of any size),
``float``, ``str`` and ``None``. That covers a model's ``state_dict()`` (name -> Tensor),
an optimizer's state (nested dicts of arrays and numbers), and a whole training
checkpoint (model, optimizer, EMA, step, ``tinygen.get_rng_state()``, config). Dict keys
are strings, or ints as in PyTorch-style optimizer state. Anything else is refused with a
TypeError that names where in the structure it sits.

The file format
---------------
One ordinary ``.npz`` file (a zip of ``.npy`` files, as written by ``numpy.savez``):

- every array leaf is a member named ``a0``, ``a1``, ... (GPU arrays are copied to the
  host first);
- the member ``__tinygen_manifest__`` is a 1-D uint8 array holding UTF-8 JSON that
  describes the structure. Each node is a small object tagged by ``"t"``::

      {"format": "tinygen-checkpoint", "version": 1,
       "root": {"t": "dict", "items": [["step", {"t": "int", "v": 1200}],
                                        ["w", {"t": "tensor", "key": "a0",
                                               "dtype": "<f4", "shape": [3, 4]}]]}}

  Tags: ``dict`` (an ordered list of [key, node] pairs), ``list``, ``tuple``, ``none``,
  ``bool``, ``int``, ``float``, ``str``, and, for arrays, ``tensor``, ``array`` and
  ``scalar`` (a NumPy scalar), which say which member holds the values, with its dtype
  (NumPy's dtype string: "<f4" is little-endian float32) and shape, checked again on load.

Nothing is pickled, so a checkpoint from someone else cannot run code when loaded, and
the file opens with ``np.load(path, allow_pickle=False)`` in any NumPy program. Every
Python number survives exactly: JSON integers have no size limit in Python (so the
128-bit integers in NumPy's generator state come back intact), floats are written with
``repr`` precision, and the non-finite ones as the strings "nan", "inf", "-inf" because
strict JSON has no spelling for them.

Why the write is atomic
-----------------------
A training run saves a checkpoint over the previous one every few minutes, and may be
killed at any moment (Ctrl-C, a time limit, a full disk). Writing straight into ``path``
would, if interrupted, leave a half-written file in place of the last good checkpoint.
So ``save`` writes to a temporary file in the same directory, flushes it to the disk, and
only then renames it onto ``path`` with ``os.replace``, which replaces the old file in one
step: ``path`` holds either the old checkpoint or the new one, never a mixture. On any
error the temporary file is removed and the old checkpoint is untouched.

Limitations: an object reachable twice (e.g. one array under two names) is stored twice
and loads as two separate copies; dict subclasses (OrderedDict) load as ``dict`` and
tuple subclasses (namedtuple) as ``tuple``; a Tensor loads with ``requires_grad=False``.
"""
from __future__ import annotations

import errno
import json
import math
import os

import numpy as np

from . import backend
from .files import atomic_write
from .autograd import Tensor

__all__ = ["save", "load"]

FORMAT_NAME = "tinygen-checkpoint"
FORMAT_VERSION = 1
MANIFEST_KEY = "__tinygen_manifest__"

# Array dtypes stored as they are: booleans and numbers. Object arrays would need pickle,
# and strings/structured/datetime arrays are nothing tinygen produces.
_ARRAY_KINDS = "biufc"
_NONFINITE = {"nan": math.nan, "inf": math.inf, "-inf": -math.inf}


# --------------------------------------------------------------------------- saving

def save(obj, path, compress: bool = False) -> None:
    """Write ``obj`` (a nested structure of dicts, lists, tuples, Tensors, arrays and
    Python scalars; see the module docstring) to ``path`` as one ``.npz`` file.

    The file is written to a temporary name in the same directory and renamed onto
    ``path`` only once complete, so an existing checkpoint is never left half-replaced.
    Missing parent directories are created. ``path`` is used exactly as given (no
    ``.npz`` is appended). ``compress=True`` deflates the arrays (smaller, slower).

    Raises:
        TypeError: an unsupported object, dict key or array dtype, naming where it is,
            e.g. ``save: cannot store object of type set at ['optimizer']['state'][0]``.
        ValueError: the structure contains itself.
    """
    path = os.fspath(path)
    # Encode everything before touching the disk, so bad input fails with nothing written.
    arrays = {}
    root = _encode(obj, (), arrays, set())
    manifest = {"format": FORMAT_NAME, "version": FORMAT_VERSION, "root": root}
    # allow_nan=False: strict JSON; non-finite floats were already turned into strings.
    text = json.dumps(manifest, allow_nan=False, separators=(",", ":"))
    arrays[MANIFEST_KEY] = np.frombuffer(text.encode("utf-8"), dtype=np.uint8)

    # A file object, not a name: given a name, np.savez would append ".npz" to it.
    with atomic_write(path) as f:
        (np.savez_compressed if compress else np.savez)(f, **arrays)


def _where(keys) -> str:
    """A key path as Python indexing, e.g. ['optimizer']['state'][0]."""
    return "".join(f"[{k!r}]" for k in keys) if keys else "the top level"


def _encode(obj, keys, arrays, active):
    """The manifest node for ``obj`` at key path ``keys``; arrays are added to ``arrays``.

    ``active`` holds the ids of the containers being encoded above this one, to catch a
    structure that contains itself (which would otherwise recurse forever).
    """
    # Arrays first: NumPy's float64 scalar is also a Python float, and must stay NumPy.
    if isinstance(obj, Tensor):
        return _encode_array("tensor", obj.data, keys, arrays)
    if isinstance(obj, np.ndarray) or _is_cupy_array(obj):
        if isinstance(obj, np.ma.MaskedArray):  # np.asarray would silently drop the mask
            raise TypeError(f"save: cannot store a masked array at {_where(keys)}")
        return _encode_array("array", obj, keys, arrays)
    if isinstance(obj, np.generic):
        return _encode_array("scalar", np.asarray(obj), keys, arrays)
    if obj is None:
        return {"t": "none"}
    if isinstance(obj, bool):  # before int: bool is a subclass of int
        return {"t": "bool", "v": bool(obj)}
    if isinstance(obj, int):
        return {"t": "int", "v": int(obj)}
    if isinstance(obj, float):
        v = float(obj)
        return {"t": "float", "v": v if math.isfinite(v) else repr(v)}
    if isinstance(obj, str):
        return {"t": "str", "v": str(obj)}
    if isinstance(obj, (dict, list, tuple)):
        if id(obj) in active:
            raise ValueError(f"save: the structure contains itself at {_where(keys)}")
        active.add(id(obj))
        try:
            if isinstance(obj, dict):
                items = []
                for k, v in obj.items():
                    if not isinstance(k, (str, int)):
                        raise TypeError(
                            f"save: cannot store a dict key of type {type(k).__name__} "
                            f"({k!r:.40}) at {_where(keys)}; keys must be str or int")
                    items.append([k, _encode(v, keys + (k,), arrays, active)])
                return {"t": "dict", "items": items}
            tag = "list" if isinstance(obj, list) else "tuple"
            return {"t": tag, "items": [_encode(v, keys + (i,), arrays, active)
                                        for i, v in enumerate(obj)]}
        finally:
            active.discard(id(obj))
    raise TypeError(f"save: cannot store object of type {type(obj).__name__} at {_where(keys)}")


def _is_cupy_array(x) -> bool:
    # backend only recognises CuPy once tinygen itself has imported it; an array the user
    # made with CuPy directly must not be refused as an unknown type before that.
    if type(x).__module__.partition(".")[0] != "cupy":
        return False
    return backend._import_cupy() is not None and backend.is_cupy_array(x)


def _encode_array(tag, array, keys, arrays):
    if array.dtype.kind not in _ARRAY_KINDS:
        raise TypeError(f"save: cannot store an array of dtype {array.dtype} at {_where(keys)}; "
                        "only boolean and numeric arrays can be stored")
    name = f"a{len(arrays)}"
    arrays[name] = backend.to_numpy(array)  # GPU arrays are copied to the host
    return {"t": tag, "key": name, "dtype": array.dtype.str, "shape": list(array.shape)}


# --------------------------------------------------------------------------- loading

def load(path, device: str = "cpu"):
    """Read a checkpoint written by ``save`` and return the same structure.

    Tensors come back as Tensors on ``device`` (``requires_grad=False``), raw arrays as
    arrays of that device (NumPy on "cpu", CuPy on "cuda"), NumPy scalars as NumPy
    scalars, tuples as tuples, dicts in their original order, integers exactly.

    Raises:
        FileNotFoundError: nothing at ``path``.
        ValueError: the file is not a tinygen checkpoint, or is truncated or corrupt.
    """
    device = backend.check_device(device)  # a bad device fails before any reading
    path = os.fspath(path)
    try:
        f = open(path, "rb")
    except FileNotFoundError:
        raise FileNotFoundError(errno.ENOENT, "load: no checkpoint file at this path",
                                path) from None
    with f:
        manifest, arrays = _read(f, path)
    return _decode(manifest, arrays, path, device)


def _read(f, path):
    """The parsed manifest and every array member of the open file ``f``."""
    try:
        npz = np.load(f, allow_pickle=False)
    except Exception as e:
        raise _corrupt(path, e) from e
    if not isinstance(npz, np.lib.npyio.NpzFile):  # a valid .npy file: an array, not a zip
        raise ValueError(f"load: {path!r} is not a tinygen checkpoint "
                         "(it is a single .npy array, not an .npz archive)")
    with npz:
        if MANIFEST_KEY not in npz.files:
            raise ValueError(f"load: {path!r} is an .npz file but not a tinygen checkpoint "
                             f"(it has no '{MANIFEST_KEY}' member)")
        # Everything below parses bytes from the file; whatever goes wrong here (a bad
        # CRC, a cut-off member, a garbled header, undecodable JSON, even a header that
        # claims an absurd size) means the file is damaged, and is reported as that.
        try:
            raw = npz[MANIFEST_KEY]
            manifest = json.loads(raw.tobytes().decode("utf-8"))
            arrays = {name: npz[name] for name in npz.files if name != MANIFEST_KEY}
        except Exception as e:
            raise _corrupt(path, e) from e
    if not (isinstance(manifest, dict) and manifest.get("format") == FORMAT_NAME):
        raise ValueError(f"load: {path!r} is not a tinygen checkpoint "
                         "(its manifest does not name the format)")
    version = manifest.get("version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise ValueError(f"load: {path!r}: malformed manifest (version {version!r})")
    if version > FORMAT_VERSION:
        raise ValueError(f"load: {path!r} has checkpoint format version {version}, newer than "
                         f"the {FORMAT_VERSION} this tinygen reads; upgrade tinygen")
    return manifest, arrays


def _corrupt(path, error):
    return ValueError(f"load: {path!r} is not a readable tinygen checkpoint: the file is "
                      f"truncated or corrupt ({type(error).__name__}: {error})")


class _Malformed(Exception):
    """A manifest node that does not describe a valid value (internal)."""


def _decode(manifest, arrays, path, device):
    try:
        return _decode_node(manifest.get("root"), arrays, device)
    except _Malformed as e:
        raise ValueError(f"load: {path!r}: malformed tinygen manifest: {e}") from None


def _decode_node(node, arrays, device):
    if not isinstance(node, dict):
        raise _Malformed(f"expected a node object, found {node!r:.60}")
    t = node.get("t")
    if t in ("tensor", "array", "scalar"):
        array = _member(node, arrays)
        if t == "scalar":
            if array.ndim != 0:
                raise _Malformed(f"a scalar node refers to an array of shape {array.shape}")
            return array[()]  # a 0-d array indexed by () is the NumPy scalar
        if t == "tensor":
            return Tensor(backend.to_device(array, device))
        return backend.to_device(array, device)
    if t == "none":
        return None
    if t in ("bool", "int", "float", "str"):
        v = node.get("v")
        if t == "float" and isinstance(v, str) and v in _NONFINITE:
            return _NONFINITE[v]
        expected = {"bool": (bool,), "int": (int,), "float": (float, int), "str": (str,)}[t]
        if not isinstance(v, expected) or (t != "bool" and isinstance(v, bool)):
            raise _Malformed(f"a {t} node holds {v!r:.60}")
        return float(v) if t == "float" else v
    if t in ("list", "tuple", "dict"):
        items = node.get("items")
        if not isinstance(items, list):
            raise _Malformed(f"a {t} node without a list of items")
        if t == "dict":
            out = {}
            for pair in items:
                if not (isinstance(pair, list) and len(pair) == 2
                        and isinstance(pair[0], (str, int))):
                    raise _Malformed(f"a dict item is not a [key, node] pair: {pair!r:.60}")
                out[pair[0]] = _decode_node(pair[1], arrays, device)
            return out
        values = [_decode_node(item, arrays, device) for item in items]
        return values if t == "list" else tuple(values)
    raise _Malformed(f"unknown node type {t!r}")


def _member(node, arrays):
    """The array a node points to, checked against the dtype and shape it records."""
    name = node.get("key")
    if not isinstance(name, str) or name not in arrays:
        raise _Malformed(f"the array {name!r} it refers to is missing from the file")
    array = arrays[name]
    if array.dtype.str != node.get("dtype") or list(array.shape) != node.get("shape"):
        raise _Malformed(f"array {name!r} has dtype {array.dtype.str} and shape "
                         f"{list(array.shape)}, but the manifest says {node.get('dtype')} "
                         f"and {node.get('shape')}")
    return array
