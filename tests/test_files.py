"""atomic_write: the target is the old file or the new one, never a broken one."""
import os

import pytest

from tinygen.files import atomic_write


def test_a_completed_write_replaces_the_file(tmp_path):
    path = tmp_path / "sub" / "out.txt"             # parent folders are made
    with atomic_write(path, "w") as f:
        f.write("new")
    assert path.read_text() == "new"
    assert os.listdir(path.parent) == ["out.txt"]    # no temporary file left


@pytest.mark.parametrize("error", [RuntimeError, KeyboardInterrupt])
def test_a_failed_write_keeps_the_old_file(tmp_path, error):
    path = tmp_path / "out.bin"
    path.write_bytes(b"old")
    with pytest.raises(error):
        with atomic_write(path) as f:
            f.write(b"half of the new")
            raise error
    assert path.read_bytes() == b"old"
    assert os.listdir(tmp_path) == ["out.bin"]
