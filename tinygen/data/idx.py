"""Reading IDX files, the format MNIST and Fashion-MNIST are published in.

An IDX file is a tiny header followed by the raw values of one n-dimensional array,
stored row-major (C order), all integers big-endian:

    offset  bytes  meaning
    0       2      zero
    2       1      value type: 0x08 uint8, 0x09 int8, 0x0B int16, 0x0C int32,
                   0x0D float32, 0x0E float64
    3       1      number of dimensions n
    4       4 * n  the size of each dimension, as big-endian uint32
    4 + 4n  ...    the values, prod(sizes) of them, nothing after

The first four bytes read as one big-endian integer are the file's "magic number".
MNIST uses two kinds of file:

    images   magic 0x00000803  (uint8, 3 dimensions)  N x 28 x 28 pixels, 0 = background
    labels   magic 0x00000801  (uint8, 1 dimension)   N digits 0-9

The files are usually distributed gzip-compressed (``*.gz``). Whether a file is
compressed is decided by its first two bytes (the gzip magic 1f 8b), not by its name,
so a decompressed file that kept its ``.gz`` name still reads.

Every check here exists so that a damaged or wrong file gives an error that names it,
instead of an array of garbage: the magic number (an images file given as labels), the
dimensions, the count a caller expects, and that the payload is exactly as long as the
header says (a truncated download).
"""
from __future__ import annotations

import gzip
import os
import zlib

import numpy as np

__all__ = ["read_idx", "read_images", "read_labels", "IMAGES_MAGIC", "LABELS_MAGIC"]

IMAGES_MAGIC = 0x00000803
LABELS_MAGIC = 0x00000801
IMAGE_SIZE = (28, 28)

GZIP_MAGIC = b"\x1f\x8b"

# IDX type code -> NumPy dtype (big-endian, as stored).
_DTYPES = {0x08: np.dtype(">u1"), 0x09: np.dtype(">i1"), 0x0B: np.dtype(">i2"),
           0x0C: np.dtype(">i4"), 0x0D: np.dtype(">f4"), 0x0E: np.dtype(">f8")}

_CHUNK = 1 << 20


def _open(path):
    """Open ``path`` for reading bytes, through gzip when its first bytes say so."""
    with open(path, "rb") as f:
        head = f.read(2)
    return gzip.open(path, "rb") if head == GZIP_MAGIC else open(path, "rb")


def _read_exactly(f, n):
    """Up to ``n`` bytes from ``f``; fewer only at the end of the file."""
    buf = bytearray()
    while len(buf) < n:
        # Read in chunks rather than f.read(n): a corrupt header can claim terabytes, and
        # the buffer should only ever be as large as the data actually there.
        chunk = f.read(min(_CHUNK, n - len(buf)))
        if not chunk:
            break
        buf += chunk
    return buf


def _magic_name(magic):
    return {IMAGES_MAGIC: "IDX images: uint8, 3 dimensions",
            LABELS_MAGIC: "IDX labels: uint8, 1 dimension"}.get(magic, "not MNIST's")


def read_idx(path, expected_magic=None, expected_shape=None):
    """Read one IDX file (gzip-compressed or not) into a NumPy array.

    Args:
        path: the file.
        expected_magic: when given, the magic number the file must have, e.g.
            ``IMAGES_MAGIC``.
        expected_shape: when given, a tuple of sizes the array must have; ``None`` in
            a position accepts any size there, e.g. ``(None, 28, 28)``. It is checked
            against the header before the payload is read.

    Returns:
        An array of the header's shape, in native byte order (uint8 for MNIST).

    Raises:
        ValueError: naming the file, when the header is malformed or unexpected, the
            payload is shorter or longer than the header says, or the gzip stream is
            corrupt.
    """
    path = os.fspath(path)
    try:
        with _open(path) as f:
            head = _read_exactly(f, 4)
            if len(head) < 4:
                raise ValueError(f"{path}: not an IDX file: only {len(head)} bytes, "
                                 "shorter than the 4-byte magic number")
            magic = int.from_bytes(head, "big")
            if head[0] != 0 or head[1] != 0 or head[2] not in _DTYPES:
                raise ValueError(f"{path}: not an IDX file: magic number 0x{magic:08X} "
                                 "(an IDX file starts with two zero bytes and a type code)")
            if expected_magic is not None and magic != expected_magic:
                raise ValueError(
                    f"{path}: magic number 0x{magic:08X} ({_magic_name(magic)}); expected "
                    f"0x{expected_magic:08X} ({_magic_name(expected_magic)})")
            dtype, ndim = _DTYPES[head[2]], head[3]
            dims_bytes = _read_exactly(f, 4 * ndim)
            if len(dims_bytes) < 4 * ndim:
                raise ValueError(f"{path}: truncated: the header promises {ndim} dimension "
                                 f"sizes but the file ends after {4 + len(dims_bytes)} bytes")
            shape = tuple(int.from_bytes(dims_bytes[4 * i:4 * i + 4], "big") for i in range(ndim))
            if expected_shape is not None and (
                    len(shape) != len(expected_shape)
                    or any(e is not None and e != s for s, e in zip(shape, expected_shape))):
                want = " x ".join("N" if e is None else str(e) for e in expected_shape)
                raise ValueError(f"{path}: the header says the array is "
                                 f"{' x '.join(map(str, shape)) or 'a scalar'}; expected {want}")
            nbytes = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
            payload = _read_exactly(f, nbytes)
            if len(payload) < nbytes:
                raise ValueError(
                    f"{path}: truncated: the header says {' x '.join(map(str, shape))} values "
                    f"({nbytes} bytes) but only {len(payload)} bytes follow it; "
                    "delete the file and get it again")
            # Reading one byte more also makes gzip verify its CRC at the end of the stream.
            if f.read(1):
                raise ValueError(f"{path}: {nbytes} bytes of values expected after the header "
                                 "but the file is longer: not a valid IDX file")
    except (EOFError, zlib.error, gzip.BadGzipFile) as e:
        raise ValueError(f"{path}: corrupt or truncated gzip data ({e}); "
                         "delete the file and get it again") from None
    # A bytearray is writable, so the array is too (np.frombuffer over bytes is read-only).
    array = np.frombuffer(payload, dtype=dtype).reshape(shape)
    return array if dtype.itemsize == 1 else array.astype(dtype.newbyteorder("="))


def read_images(path, count=None):
    """Read an IDX images file: uint8 array (N, 28, 28).

    ``count``, when given, is the number of images the file must hold (checked from the
    header, before the pixels are read).
    """
    return read_idx(path, IMAGES_MAGIC, (count, *IMAGE_SIZE))


def read_labels(path, count=None, num_classes=10):
    """Read an IDX labels file: int64 array (N,) with values in [0, num_classes).

    ``count``, when given, is the number of labels the file must hold.
    """
    labels = read_idx(path, LABELS_MAGIC, (count,))
    if labels.size and labels.max() >= num_classes:
        bad = int(np.argmax(labels >= num_classes))
        raise ValueError(f"{path}: label {int(labels[bad])} at index {bad}; labels must be "
                         f"0 to {num_classes - 1}")
    return labels.astype(np.int64)
