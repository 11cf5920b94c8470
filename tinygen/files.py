"""Writing files so that an interruption never leaves a broken one.

Every file tinygen writes (checkpoints, pictures, logs' companions, downloads) goes
through ``atomic_write``: the bytes go to a temporary file beside the target, are
flushed to the disk, and only then is the temporary file renamed onto the target's
name. A rename within one folder is atomic, so the target is always either the old
complete file or the new complete one. If anything goes wrong before the rename,
Ctrl-C included, the temporary file is removed and the old file stays as it was.
"""
from __future__ import annotations

import contextlib
import os
import secrets


@contextlib.contextmanager
def atomic_write(path, mode: str = "wb", suffix: str = ".tmp"):
    """Open a temporary file beside ``path`` for writing; when the block ends normally,
    make it ``path``; when it raises, remove it and re-raise. Parent folders are made.

        with atomic_write("runs/x/checkpoint.npz") as f:
            np.savez(f, ...)

    The temporary name, ``.<name>.<random><suffix>``, is created exclusively (O_EXCL),
    with the usual permissions (unlike tempfile's 0600, which the result would keep).
    """
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    tmp = os.path.join(directory, f".{os.path.basename(path)}.{secrets.token_hex(6)}{suffix}")
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    fd = os.open(tmp, flags, 0o666)
    try:
        with os.fdopen(fd, mode) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())  # the bytes are on the disk before the rename makes them live
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    _fsync_directory(directory)


def _fsync_directory(directory) -> None:
    """Make the rename itself durable (POSIX); a best effort where it is not supported."""
    if os.name != "posix":
        return
    try:
        dfd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(dfd)
    except OSError:
        pass
    finally:
        os.close(dfd)
