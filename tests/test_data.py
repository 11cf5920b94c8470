"""tinygen.data: IDX files, finding and downloading datasets, transforms, toy data, DataLoader.

Nothing here reaches the internet: every test runs with the cache folder in tmp_path and
the download mirrors pointed at a closed local port, except the download tests, which
serve files from a local HTTP server on 127.0.0.1. The tests of the real MNIST files
run when TINYGEN_DATA is set (CI sets it) and skip otherwise.
"""
import functools
import gzip
import hashlib
import http.server
import os
import socket
import struct
import threading

import numpy as np
import pytest

import tinygen as tg
from tinygen.autograd import Tensor
from tinygen.data import (DATASETS, TOY_DATASETS, DataLoader, DataNotFoundError, binarize,
                          cache_dir, data_dirs, dequantize, flatten, load_dataset,
                          load_fashion_mnist, load_mnist, read_idx, read_images, read_labels,
                          scale, toy, toy_modes)
from tinygen.data import download, paths

TEST_N = 10000  # the test split's size, which a data folder is checked against
# The real tables, before the autouse fixture below points the mirrors at a closed port.
PUBLISHED_MIRRORS = {name: list(urls) for name, urls in download.MIRRORS.items()}


# --------------------------------------------------------------------------- helpers

def idx_bytes(array, type_code=0x08):
    """An IDX file's bytes, written here independently of the reader under test."""
    dtypes = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
    header = bytes([0, 0, type_code, array.ndim]) + b"".join(
        struct.pack(">I", s) for s in array.shape)
    return header + np.ascontiguousarray(array, dtype=dtypes[type_code]).tobytes()


def write(path, data, gz):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(gzip.compress(data, compresslevel=1) if gz else data)
    return path


def write_split(folder, split="test", label=0, n=None, n_labels=None, gz=True):
    """Write a split's two IDX files into ``folder``: blank images, every label ``label``
    (so a test can tell which folder was read)."""
    stems = {"train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", 60000),
             "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte", TEST_N)}
    images_stem, labels_stem, count = stems[split]
    n = count if n is None else n
    n_labels = n if n_labels is None else n_labels
    suffix = ".gz" if gz else ""
    write(folder / (images_stem + suffix), idx_bytes(np.zeros((n, 28, 28), np.uint8)), gz)
    write(folder / (labels_stem + suffix), idx_bytes(np.full(n_labels, label, np.uint8)), gz)
    return folder


def closed_port_url():
    """An http URL on 127.0.0.1 where nothing listens: connecting is refused at once."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/"


@pytest.fixture(autouse=True)
def isolated(tmp_path, monkeypatch):
    """Cache in tmp_path, no Debian folder, mirrors that refuse at once: no test touches
    the user's cache or the network unless it says so."""
    monkeypatch.delenv("TINYGEN_DATA", raising=False)  # the real-data tests set it back
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg-cache"))
    monkeypatch.setattr(paths, "DEBIAN_FASHION_MNIST", tmp_path / "no-debian")
    for name in DATASETS:
        monkeypatch.setitem(download.MIRRORS, name, [closed_port_url()])
    monkeypatch.setattr(download, "TIMEOUT_S", 5)


def cache_of(tmp_path, name="mnist"):
    return tmp_path / "xdg-cache" / "tinygen" / name


# --------------------------------------------------------------------------- IDX files

@pytest.mark.parametrize("gz", [True, False], ids=["gzip", "raw"])
def test_idx_round_trip(tmp_path, gz):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (7, 28, 28), dtype=np.uint8)
    labels = rng.integers(0, 10, 7).astype(np.uint8)
    ip = write(tmp_path / "images", idx_bytes(images), gz)
    lp = write(tmp_path / "labels", idx_bytes(labels), gz)
    got_images, got_labels = read_images(ip), read_labels(lp)
    assert got_images.dtype == np.uint8 and got_images.shape == (7, 28, 28)
    assert got_labels.dtype == np.int64 and got_labels.shape == (7,)
    np.testing.assert_array_equal(got_images, images)
    np.testing.assert_array_equal(got_labels, labels)
    got_images[0, 0, 0] = 1  # writable, like any array the user makes


def test_gzip_is_detected_by_content_not_name(tmp_path):
    images = np.arange(2 * 28 * 28, dtype=np.uint32).reshape(2, 28, 28).astype(np.uint8)
    raw_named_gz = write(tmp_path / "a.gz", idx_bytes(images), gz=False)
    gz_named_raw = write(tmp_path / "b-idx3-ubyte", idx_bytes(images), gz=True)
    np.testing.assert_array_equal(read_images(raw_named_gz), images)
    np.testing.assert_array_equal(read_images(gz_named_raw), images)


@pytest.mark.parametrize("code, dtype", [(0x09, np.int8), (0x0B, np.int16), (0x0C, np.int32),
                                         (0x0D, np.float32), (0x0E, np.float64)])
def test_read_idx_other_types_big_endian(tmp_path, code, dtype):
    values = (np.arange(24).reshape(2, 3, 4) * 37 - 300).astype(dtype)
    if code == 0x09:
        values = (np.arange(24).reshape(2, 3, 4) - 12).astype(dtype)
    got = read_idx(write(tmp_path / "x", idx_bytes(values, code), gz=False))
    assert got.dtype == np.dtype(dtype).newbyteorder("=") and got.shape == (2, 3, 4)
    np.testing.assert_array_equal(got, values)


def test_bad_magic_names_the_file_and_both_kinds(tmp_path):
    labels = write(tmp_path / "labels.gz", idx_bytes(np.zeros(5, np.uint8)), gz=True)
    with pytest.raises(ValueError, match=r"labels\.gz.*0x00000801.*expected 0x00000803"):
        read_images(labels)
    images = write(tmp_path / "images", idx_bytes(np.zeros((5, 28, 28), np.uint8)), gz=False)
    with pytest.raises(ValueError, match=r"images.*0x00000803.*expected 0x00000801"):
        read_labels(images)
    junk = write(tmp_path / "junk.gz", b"<html>not found</html>", gz=False)
    with pytest.raises(ValueError, match=r"junk\.gz: not an IDX file"):
        read_images(junk)


def test_wrong_image_size(tmp_path):
    path = write(tmp_path / "small", idx_bytes(np.zeros((3, 27, 28), np.uint8)), gz=True)
    with pytest.raises(ValueError, match=r"small: the header says the array is 3 x 27 x 28; "
                                         r"expected N x 28 x 28"):
        read_images(path)
    path = write(tmp_path / "flat", idx_bytes(np.zeros((3, 784), np.uint8), 0x08), gz=True)
    with pytest.raises(ValueError, match="flat"):  # right magic for 2-D, not for images
        read_images(path)


@pytest.mark.parametrize("gz", [True, False], ids=["gzip", "raw"])
def test_truncated_payload(tmp_path, gz):
    data = idx_bytes(np.ones((4, 28, 28), np.uint8))
    path = write(tmp_path / "cut-images", data[:-10], gz)
    with pytest.raises(ValueError, match=r"cut-images: truncated: .* \(3136 bytes\) but only "
                                         r"3126 bytes"):
        read_images(path)
    path = write(tmp_path / "cut-header", data[:10], gz)
    with pytest.raises(ValueError, match="cut-header: truncated"):
        read_images(path)
    path = write(tmp_path / "long-images", data + b"\0", gz)
    with pytest.raises(ValueError, match="long-images: .* longer"):
        read_images(path)


def test_truncated_or_corrupt_gzip_stream(tmp_path):
    packed = gzip.compress(idx_bytes(np.arange(50 * 784).reshape(50, 28, 28).astype(np.uint8)))
    cut = tmp_path / "cut.gz"
    cut.write_bytes(packed[: len(packed) // 2])
    with pytest.raises(ValueError, match=r"cut\.gz: corrupt or truncated gzip"):
        read_images(cut)
    flipped = bytearray(packed)
    flipped[-6] ^= 0xFF  # inside the CRC-32 trailer: the data decompress but do not check
    bad = tmp_path / "crc.gz"
    bad.write_bytes(bytes(flipped))
    with pytest.raises(ValueError, match=r"crc\.gz: corrupt or truncated gzip"):
        read_images(bad)


def test_header_claiming_a_huge_array_fails_fast(tmp_path):
    # A corrupt count of 2^31 - 1 images must give an error, not a 1.7 TB allocation.
    data = bytes([0, 0, 8, 3]) + struct.pack(">III", 2 ** 31 - 1, 28, 28) + bytes(784)
    path = write(tmp_path / "huge", data, gz=True)
    with pytest.raises(ValueError, match="huge: truncated"):
        read_images(path)
    with pytest.raises(ValueError, match=r"huge: the header says the array is 2147483647 x "
                                         r"28 x 28; expected 10000 x 28 x 28"):
        read_images(path, count=10000)


def test_label_values_and_counts(tmp_path):
    path = write(tmp_path / "labels", idx_bytes(np.array([1, 2, 10, 3], np.uint8)), gz=False)
    with pytest.raises(ValueError, match="labels: label 10 at index 2; labels must be 0 to 9"):
        read_labels(path)
    path = write(tmp_path / "nine", idx_bytes(np.zeros(9, np.uint8)), gz=False)
    with pytest.raises(ValueError, match="nine: .* 9; expected 10"):
        read_labels(path, count=10)


# --------------------------------------------------------------------------- folders

def test_cache_dir_follows_xdg_then_home(tmp_path, monkeypatch):
    assert cache_dir() == tmp_path / "xdg-cache" / "tinygen"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert cache_dir() == tmp_path / "home" / ".cache" / "tinygen"
    monkeypatch.setenv("XDG_CACHE_HOME", "relative/path")  # invalid per the XDG spec
    assert cache_dir() == tmp_path / "home" / ".cache" / "tinygen"


def test_resolution_order_root_then_env_then_cache(tmp_path, monkeypatch):
    root, env = tmp_path / "root", tmp_path / "env"
    write_split(root / "mnist", label=1)
    write_split(env / "mnist", label=2)
    write_split(cache_of(tmp_path), label=3)
    cache = cache_dir()

    monkeypatch.setenv("TINYGEN_DATA", str(env))
    assert data_dirs(root) == [root, cache]
    assert data_dirs() == [env, cache]
    assert set(load_mnist("test", root=root)[1]) == {1}
    assert set(load_mnist("test")[1]) == {2}
    assert set(load_dataset("mnist", "test", root=str(root))[1]) == {1}

    monkeypatch.delenv("TINYGEN_DATA")
    assert data_dirs() == [cache]
    assert set(load_mnist("test")[1]) == {3}

    # A user folder without the dataset falls through to the cache.
    monkeypatch.setenv("TINYGEN_DATA", str(tmp_path))
    assert set(load_mnist("test")[1]) == {3}
    (tmp_path / "empty").mkdir()
    assert set(load_mnist("test", root=tmp_path / "empty")[1]) == {3}


def test_debian_folder_for_fashion_mnist(tmp_path, monkeypatch):
    debian = write_split(tmp_path / "debian", label=4)  # the files directly in the folder
    monkeypatch.setattr(paths, "DEBIAN_FASHION_MNIST", debian)
    write_split(cache_of(tmp_path, "fashion-mnist"), label=5)
    assert set(load_fashion_mnist("test")[1]) == {4}        # Debian before the cache
    write_split(tmp_path / "env" / "fashion-mnist", label=6)
    monkeypatch.setenv("TINYGEN_DATA", str(tmp_path / "env"))
    assert set(load_fashion_mnist("test")[1]) == {6}        # the user's folder first
    with pytest.raises(DataNotFoundError):                  # and never for MNIST
        load_mnist("test", root=tmp_path / "debian", download=False)


def test_raw_files_in_a_folder(tmp_path):
    write_split(tmp_path / "d" / "mnist", label=7, gz=False)
    images, labels = load_mnist("test", root=tmp_path / "d")
    assert images.shape == (TEST_N, 28, 28) and set(labels) == {7}


def test_missing_data_error_lists_every_folder_and_what_to_do(tmp_path, monkeypatch):
    env = tmp_path / "env"
    env.mkdir()
    monkeypatch.setenv("TINYGEN_DATA", str(env))
    with pytest.raises(DataNotFoundError) as info:
        load_mnist("train", download=False)
    message = str(info.value)
    for expected in (str(env / "mnist"), str(cache_of(tmp_path)), "train-images-idx3-ubyte",
                     "set TINYGEN_DATA to a data folder that contains mnist/",
                     "--data-root FOLDER", "root=FOLDER", "download=True", "download=False"):
        assert expected in message, expected

    with pytest.raises(DataNotFoundError) as info:      # download on: every mirror fails
        load_fashion_mnist("test")
    message = str(info.value)
    for expected in (str(env / "fashion-mnist"), str(tmp_path / "no-debian"),
                     str(cache_of(tmp_path, "fashion-mnist")), "dataset-fashion-mnist",
                     download.MIRRORS["fashion-mnist"][0] + "t10k-images-idx3-ubyte.gz",
                     "refused"):
        assert expected in message, expected
    assert not list(cache_of(tmp_path, "fashion-mnist").glob("*"))  # nothing left behind


def test_user_folder_errors_are_early_and_name_the_problem(tmp_path):
    with pytest.raises(FileNotFoundError, match="does-not-exist.*not a folder"):
        load_mnist("test", root=tmp_path / "does-not-exist")
    # Files dropped into the data folder itself rather than its mnist/ subfolder.
    write_split(tmp_path / "flat", label=0)
    with pytest.raises(DataNotFoundError, match=r"holds t10k-images-idx3-ubyte directly: "
                                                r"move the files into"):
        load_mnist("test", root=tmp_path / "flat", download=False)
    # Half a pair: said at once, not silently replaced by another folder's files.
    half = tmp_path / "half" / "mnist"
    write_split(half)
    (half / "t10k-labels-idx1-ubyte.gz").unlink()
    write_split(cache_of(tmp_path))
    with pytest.raises(DataNotFoundError, match="incomplete: add t10k-labels-idx1-ubyte.gz"):
        load_mnist("test", root=tmp_path / "half")


@pytest.mark.parametrize("n, n_labels, match", [
    (TEST_N - 1, None, r"t10k-images-idx3-ubyte\.gz: .* 9999 x 28 x 28; expected 10000"),
    (TEST_N, TEST_N - 1, r"t10k-labels-idx1-ubyte\.gz: .* 9999; expected 10000"),
])
def test_user_folder_is_validated_by_counts(tmp_path, n, n_labels, match):
    write_split(tmp_path / "d" / "mnist", n=n, n_labels=n_labels)
    with pytest.raises(ValueError, match="MNIST test split: .*" + match):
        load_mnist("test", root=tmp_path / "d")


def test_swapped_files_in_user_folder(tmp_path):
    folder = write_split(tmp_path / "d" / "mnist")
    images, labels = folder / "t10k-images-idx3-ubyte.gz", folder / "t10k-labels-idx1-ubyte.gz"
    tmp = folder / "tmp"
    images.rename(tmp), labels.rename(images), tmp.rename(labels)
    with pytest.raises(ValueError, match="t10k-images-idx3-ubyte.gz: magic number 0x00000801"):
        load_mnist("test", root=tmp_path / "d")


def test_unknown_dataset_and_split():
    with pytest.raises(ValueError, match="known datasets: mnist, fashion-mnist"):
        load_dataset("cifar10", "train")
    with pytest.raises(ValueError, match="unknown split 'valid'.*train, test"):
        load_mnist("valid")


def test_published_checksums_table_is_complete():
    for name in DATASETS:
        assert len(PUBLISHED_MIRRORS[name]) >= 2
        assert sorted(download.FILES[name]) == sorted(
            ["train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
             "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"])
        for info in download.FILES[name].values():
            assert info.size > 0
            assert len(info.md5) == 32 and int(info.md5, 16) >= 0
            assert len(info.sha256) == 64 and int(info.sha256, 16) >= 0
    # The MD5s published for the original MNIST files (those torchvision checks).
    assert download.FILES["mnist"]["train-images-idx3-ubyte.gz"].md5 == \
        "f68b3c2dcbeaaa9fbdd348bbdeb94873"


# --------------------------------------------------------------------------- downloads

class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture
def server(tmp_path):
    """A local HTTP server over tmp_path/www, in a thread, shut down after the test."""
    www = tmp_path / "www"
    www.mkdir()
    httpd = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(_QuietHandler, directory=str(www)))
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05},
                              daemon=True)
    thread.start()
    try:
        yield www, f"http://127.0.0.1:{httpd.server_address[1]}/"
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)
        assert not thread.is_alive()


def _publish(monkeypatch, folder, label=8):
    """Put a test split into ``folder`` and make its checksums the 'published' ones."""
    write_split(folder, label=label)
    files = {}
    for path in folder.iterdir():
        data = path.read_bytes()
        files[path.name] = download.FileInfo(len(data), hashlib.md5(data).hexdigest(),
                                             hashlib.sha256(data).hexdigest())
    monkeypatch.setitem(download.FILES, "mnist", files)
    return files


def _leftovers(folder):
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def test_download_verifies_and_writes_only_to_the_cache(tmp_path, monkeypatch, server):
    www, url = server
    files = _publish(monkeypatch, www / "good")
    monkeypatch.setitem(download.MIRRORS, "mnist", [url + "good/"])
    env = tmp_path / "env"
    env.mkdir()
    monkeypatch.setenv("TINYGEN_DATA", str(env))  # a user folder without the data

    images, labels = load_mnist("test", progress=False)
    assert images.shape == (TEST_N, 28, 28) and set(labels) == {8}
    assert _leftovers(cache_of(tmp_path)) == sorted(files)       # no temporary files
    for name in files:
        assert (cache_of(tmp_path) / name).read_bytes() == (www / "good" / name).read_bytes()
    assert _leftovers(env) == []                                 # never written into

    # Second time: found in the cache, no server needed.
    monkeypatch.setitem(download.MIRRORS, "mnist", [closed_port_url()])
    assert set(load_mnist("test")[1]) == {8}


def test_download_moves_on_from_failing_mirrors(tmp_path, monkeypatch, server):
    www, url = server
    _publish(monkeypatch, www / "good")
    bad = write_split(www / "bad", label=9)  # valid IDX files, but not the published ones
    monkeypatch.setitem(download.MIRRORS, "mnist",
                        [closed_port_url(), url + "missing/", url + "bad/", url + "good/"])
    assert set(load_mnist("test", progress=False)[1]) == {8}
    assert bad.exists()


def test_download_with_bad_checksum_leaves_nothing(tmp_path, monkeypatch, server):
    www, url = server
    files = _publish(monkeypatch, www / "good")
    name = "t10k-images-idx3-ubyte.gz"
    data = bytearray((www / "good" / name).read_bytes())
    data[100] ^= 1  # same size, one bit different
    write(www / "flipped" / name, bytes(data), gz=False)
    write(www / "short" / name, bytes(data[:-1]), gz=False)
    write(www / "long" / name, bytes(data) + b"more", gz=False)
    monkeypatch.setitem(download.MIRRORS, "mnist",
                        [url + "flipped/", url + "short/", url + "long/"])
    with pytest.raises(DataNotFoundError) as info:
        load_mnist("test", progress=False)
    message = str(info.value)
    assert f"flipped/{name}: MD5" in message and files[name].md5 in message
    assert f"short/{name}: {files[name].size - 1} bytes" in message
    assert f"long/{name}: more than {files[name].size} bytes" in message
    assert _leftovers(cache_of(tmp_path)) == []  # neither the final name nor a temporary


def test_download_completes_a_half_finished_cache(tmp_path, monkeypatch, server):
    www, url = server
    _publish(monkeypatch, www / "good")
    cache = cache_of(tmp_path)
    cache.mkdir(parents=True)
    images = "t10k-images-idx3-ubyte.gz"
    (cache / images).write_bytes((www / "good" / images).read_bytes())
    (www / "good" / images).unlink()  # only the labels can still be downloaded
    monkeypatch.setitem(download.MIRRORS, "mnist", [url + "good/"])
    assert set(load_mnist("test", progress=False)[1]) == {8}


def test_interrupted_download_leaves_no_partial_file(tmp_path, monkeypatch):
    dest = tmp_path / "dl" / "file.gz"
    during = {}

    class Response:
        headers = {"Content-Length": "1000"}
        calls = 0

        def read(self, n):
            Response.calls += 1
            if Response.calls > 1:
                # Mid-file: the bytes so far are under a temporary name, not the final one.
                during["files"] = _leftovers(dest.parent)
                raise KeyboardInterrupt  # the user presses Ctrl-C
            return b"x" * min(n, 500)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

    monkeypatch.setattr(download.urllib.request, "urlopen", lambda *a, **k: Response())
    with pytest.raises(KeyboardInterrupt):
        download.download_file("http://example.invalid/file.gz", dest,
                               download.FileInfo(1000, "0" * 32, "0" * 64), progress=False)
    assert len(during["files"]) == 1 and during["files"][0] != dest.name
    assert during["files"][0].endswith(".part")
    assert _leftovers(dest.parent) == []


# --------------------------------------------------------------------------- real data

REAL = os.environ.get("TINYGEN_DATA")
needs_real_data = pytest.mark.skipif(
    not REAL, reason="set TINYGEN_DATA to the data folder (e.g. ../shared/data) to test the "
                     "real files")
MNIST_TRAIN_COUNTS = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
MNIST_TEST_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


@pytest.fixture(scope="module")
def mnist_train():
    return load_mnist("train", root=REAL, download=False)  # once per module: ~0.2 s


@needs_real_data
def test_real_mnist_train(mnist_train):
    images, labels = mnist_train
    assert images.shape == (60000, 28, 28) and images.dtype == np.uint8
    assert labels.shape == (60000,) and labels.dtype == np.int64
    assert np.bincount(labels).tolist() == MNIST_TRAIN_COUNTS
    x = scale(images)
    assert x.mean() == pytest.approx(0.1307, abs=5e-4)
    assert x.std() == pytest.approx(0.3081, abs=5e-4)


@needs_real_data
def test_real_mnist_test_and_fashion_mnist(monkeypatch):
    monkeypatch.setenv("TINYGEN_DATA", REAL)  # found the way CI finds it
    images, labels = load_mnist("test", download=False)
    assert images.shape == (10000, 28, 28) and images.dtype == np.uint8
    assert labels.shape == (10000,) and labels.dtype == np.int64
    assert np.bincount(labels).tolist() == MNIST_TEST_COUNTS
    assert scale(images).mean() == pytest.approx(0.1325, abs=5e-4)
    images, labels = load_fashion_mnist("test", download=False)
    assert images.shape == (10000, 28, 28) and np.bincount(labels).tolist() == [1000] * 10
    assert scale(images).mean() == pytest.approx(0.2868, abs=5e-4)


# --------------------------------------------------------------------------- transforms

def test_scale_and_flatten():
    images = np.array([[[0, 128], [255, 51]]], np.uint8)
    x = scale(images)
    assert x.dtype == np.float32 and x.shape == images.shape
    np.testing.assert_array_equal(x, np.array([[[0, 128 / 255], [1, 0.2]]], np.float32))
    y = scale(images, to=(-1, 1))
    assert y.dtype == np.float32
    np.testing.assert_allclose(y, images / 127.5 - 1, rtol=0, atol=1e-7)
    assert y.min() == -1 and y.max() == 1
    with pytest.raises(ValueError, match=r"\(0, 1\) or \(-1, 1\)"):
        scale(images, to=(0, 255))
    with pytest.raises(TypeError, match="uint8"):
        scale(x)
    many = np.arange(3 * 4 * 5).reshape(3, 4, 5)
    np.testing.assert_array_equal(flatten(many), np.arange(60).reshape(3, 20))


def test_binarize_is_a_fresh_bernoulli_draw():
    g = tg.random.generator(0)
    p = np.linspace(0, 1, 101, dtype=np.float32)
    x = np.broadcast_to(p, (4000, 101))
    b = binarize(x, g)
    assert b.dtype == np.float32 and b.shape == x.shape
    assert set(np.unique(b)) <= {0.0, 1.0}
    assert b[:, 0].max() == 0 and b[:, -1].min() == 1          # p = 0 and p = 1 exactly
    # Per-probability means within 5 standard errors of p.
    se = np.sqrt(p * (1 - p) / 4000) + 1e-9
    assert np.all(np.abs(b.mean(axis=0) - p) <= 5 * se)
    assert abs(b.mean() - x.mean()) < 0.003
    assert not np.array_equal(binarize(x, g), b)              # a new draw each call
    np.testing.assert_array_equal(binarize(x, tg.random.generator(0)), b)  # reproducible
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        binarize(np.array([0.5, 1.5], np.float32), g)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        binarize(np.array([0.5, np.nan], np.float32), g)
    with pytest.raises(TypeError, match="numpy.random.Generator"):
        binarize(p, np.random)


def test_dequantize_stays_in_each_pixels_bin():
    g = tg.random.generator(1)
    x = np.tile(np.arange(256, dtype=np.uint8), 2000)
    y = dequantize(x, g)
    assert y.dtype == np.float32 and y.shape == x.shape
    assert np.all(np.floor(y.astype(np.float64) * 256) == x)   # x/256 <= y < (x+1)/256
    noise = y.astype(np.float64) * 256 - x                     # u ~ U[0, 1)
    assert noise.mean() == pytest.approx(0.5, abs=0.005)
    assert noise.std() == pytest.approx(np.sqrt(1 / 12), abs=0.005)
    # At x = 255, float32 rounding of x + u would reach 1.0 a few times in a million.
    top = dequantize(np.full(1_000_000, 255, np.uint8), g)
    assert top.max() < 1 and top.min() >= 255 / 256
    with pytest.raises(TypeError, match="uint8"):
        dequantize(x.astype(np.float32), g)


# --------------------------------------------------------------------------- toy data

def _nearest(points, centers):
    d = np.linalg.norm(points[:, None, :] - centers[None], axis=-1)
    return d.argmin(axis=1), d.min(axis=1)


def _distance_to_curve(points, curve):
    out = np.full(len(points), np.inf)
    for start in range(0, len(curve), 1000):
        d = np.linalg.norm(points[:, None, :] - curve[None, start:start + 1000], axis=-1)
        out = np.minimum(out, d.min(axis=1))
    return out


@pytest.mark.parametrize("name", TOY_DATASETS)
def test_toy_shape_dtype_and_seed(name):
    x = toy(name, 1000, seed=3)
    assert x.shape == (1000, 2) and x.dtype == np.float32 and np.isfinite(x).all()
    assert np.abs(x).max() < 6 and np.abs(x).max() > 2       # roughly [-4, 4]
    np.testing.assert_array_equal(toy(name, 1000, seed=3), x)
    assert not np.array_equal(toy(name, 1000, seed=4), x)
    tg.manual_seed(5)
    a = toy(name, 10)
    tg.manual_seed(5)
    np.testing.assert_array_equal(toy(name, 10), a)           # seed=None follows manual_seed
    assert toy(name, 0).shape == (0, 2)


@pytest.mark.parametrize("name, k, radius", [("8gaussians", 8, 2 * np.sqrt(2)),
                                             ("25gaussians", 25, None)])
def test_gaussian_mixtures_lie_around_their_modes(name, k, radius):
    centers, std = toy_modes(name)
    assert centers.shape == (k, 2) and centers.dtype == np.float32
    if radius is not None:
        np.testing.assert_allclose(np.linalg.norm(centers, axis=1), radius, rtol=1e-6)
    else:
        assert sorted(set(centers.ravel().tolist())) == [-4, -2, 0, 2, 4]
    x = toy(name, 20000, seed=0).astype(np.float64)
    mode, dist = _nearest(x, centers)
    assert dist.max() < 5.5 * std                               # every point near a mode
    counts = np.bincount(mode, minlength=k)
    assert counts.min() > 0.8 * 20000 / k and counts.max() < 1.2 * 20000 / k
    assert (x - centers[mode]).std(axis=0) == pytest.approx([std, std], rel=0.05)


def test_two_moons_and_circles():
    x = toy("two_moons", 4000, seed=0).astype(np.float64)
    s = (x - np.array([-1, -0.2])) / 2                         # back to make_moons' frame
    t = np.linspace(0, np.pi, 2000)
    upper = np.stack([np.cos(t), np.sin(t)], 1)
    lower = np.stack([1 - np.cos(t), 0.5 - np.sin(t)], 1)
    d_up, d_low = _distance_to_curve(s, upper), _distance_to_curve(s, lower)
    assert np.minimum(d_up, d_low).mean() < 0.1                # noise 0.1 per coordinate
    assert 0.45 < np.mean(d_up < d_low) < 0.55                 # half on each moon

    r = np.linalg.norm(toy("circles", 4000, seed=0), axis=1)
    outer = np.abs(r - 3) < np.abs(r - 1.5)
    assert 0.45 < outer.mean() < 0.55
    assert np.minimum(np.abs(r - 3), np.abs(r - 1.5)).mean() < 0.25  # noise std 0.24


def test_swiss_roll_and_spirals_follow_their_curves():
    t = np.linspace(1.5 * np.pi, 4.5 * np.pi, 4000)
    roll = np.stack([t * np.cos(t), t * np.sin(t)], 1) / 5
    d = _distance_to_curve(toy("swiss_roll", 2000, seed=0).astype(np.float64), roll)
    assert d.mean() < 0.25    # uniform points on the same box: about 0.5

    t = np.linspace(0, 3 * np.pi, 4000)
    arm = (np.stack([-np.cos(t) * t, np.sin(t) * t], 1) + 0.25) / 3
    d = _distance_to_curve(toy("two_spirals", 2000, seed=0).astype(np.float64),
                           np.concatenate([arm, -arm]))
    assert d.mean() < 0.15    # uniform points: about 0.44


def test_checkerboard_and_pinwheel():
    x = toy("checkerboard", 8000, seed=0).astype(np.float64)
    assert np.all(np.abs(x) <= 4)
    col, row = np.floor(x[:, 0] / 2), np.floor(x[:, 1] / 2)
    assert np.all((col + row) % 2 == 0)                        # only the black squares
    cells = np.bincount(((col + 2) * 4 + row + 2).astype(int), minlength=16)
    black = cells[cells > 0]
    assert len(black) == 8 and black.min() > 0.8 * 1000

    x = toy("pinwheel", 8000, seed=0).astype(np.float64)
    r, theta = np.linalg.norm(x, axis=1) / 2, np.arctan2(x[:, 1], x[:, 0])
    # A point at radius r on an arm sits at angle -(2 pi k/5 + 0.25 exp(r)).
    residual = (-theta - 0.25 * np.exp(r)) % (2 * np.pi / 5)
    residual = np.minimum(residual, 2 * np.pi / 5 - residual)
    assert np.mean(residual < 0.25) > 0.9                      # uniform points: 0.4


def test_toy_errors():
    with pytest.raises(ValueError, match="two_moons, circles, 8gaussians, .*two_spirals"):
        toy("moons", 10)
    with pytest.raises(ValueError, match="not a Gaussian mixture"):
        toy_modes("circles")
    with pytest.raises(ValueError, match="non-negative integer"):
        toy("circles", -1)


# --------------------------------------------------------------------------- DataLoader

def test_loader_batches_in_order(device):
    x = np.arange(30, dtype=np.float32).reshape(10, 3)
    y = np.arange(10)
    loader = DataLoader(x, y, batch_size=4, device=device)
    assert len(loader) == 3
    batches = list(loader)
    assert [tuple(b[0].shape) for b in batches] == [(4, 3), (4, 3), (2, 3)]
    for bx, by in batches:
        assert isinstance(bx, Tensor) and bx.device == device and bx.dtype == np.float32
        assert by.dtype == np.int64 and not bx.requires_grad
    np.testing.assert_array_equal(np.concatenate([b[0].numpy() for b in batches]), x)
    np.testing.assert_array_equal(np.concatenate([b[1].numpy() for b in batches]), y)

    dropped = DataLoader(x, y, batch_size=4, drop_last=True, device=device)
    assert len(dropped) == 2 and [len(b[0]) for b in dropped] == [4, 4]
    single = list(DataLoader(y, batch_size=5, device=device))
    assert len(single) == 2 and isinstance(single[0], Tensor)   # not a 1-tuple
    np.testing.assert_array_equal(single[1].numpy(), [5, 6, 7, 8, 9])


def test_loader_takes_arrays_and_tensors_of_any_device(device):
    x = np.arange(12, dtype=np.float32).reshape(6, 2)
    for source in (tg.tensor(x, device=device), tg.tensor(x, device=device).data):
        (batch,) = list(DataLoader(source, batch_size=6, device=device))
        assert batch.device == device
        np.testing.assert_array_equal(batch.numpy(), x)


def test_loader_does_not_alias_the_data():
    x = np.zeros((4, 2), np.float32)
    (batch,) = list(DataLoader(x, batch_size=4))
    batch.data[...] = 1
    assert x.max() == 0


def test_loader_rejects_bad_arguments():
    with pytest.raises(ValueError, match=r"different lengths \[10, 9\]"):
        DataLoader(np.zeros((10, 2)), np.zeros(9), batch_size=2)
    with pytest.raises(ValueError, match="batch_size"):
        DataLoader(np.zeros(10), batch_size=0)
    with pytest.raises(TypeError, match="at least one array"):
        DataLoader(batch_size=2)
    with pytest.raises(ValueError, match="unknown device"):
        DataLoader(np.zeros(10), batch_size=2, device="tpu")


def _epoch_orders(loader, epochs):
    return [np.concatenate([b.numpy() for b in loader]) for _ in range(epochs)]


def test_shuffle_is_reproducible_and_new_each_epoch():
    n = 100
    orders = _epoch_orders(DataLoader(np.arange(n), batch_size=7, shuffle=True, seed=1), 3)
    for order in orders:
        assert sorted(order.tolist()) == list(range(n))        # each sample once per epoch
    assert not np.array_equal(orders[0], orders[1])
    assert not np.array_equal(orders[1], orders[2])
    assert not np.array_equal(orders[0], np.arange(n))
    again = _epoch_orders(DataLoader(np.arange(n), batch_size=7, shuffle=True, seed=1), 3)
    for a, b in zip(orders, again):
        np.testing.assert_array_equal(a, b)
    other = _epoch_orders(DataLoader(np.arange(n), batch_size=7, shuffle=True, seed=2), 1)
    assert not np.array_equal(other[0], orders[0])
    # seed=None: drawn from the global generator, so manual_seed makes it reproducible.
    tg.manual_seed(9)
    a = _epoch_orders(DataLoader(np.arange(n), batch_size=7, shuffle=True), 2)
    tg.manual_seed(9)
    b = _epoch_orders(DataLoader(np.arange(n), batch_size=7, shuffle=True), 2)
    np.testing.assert_array_equal(np.concatenate(a), np.concatenate(b))


def test_shuffled_pairs_stay_together():
    x = np.arange(50) * 10
    for bx, by in DataLoader(x, np.arange(50), batch_size=8, shuffle=True, seed=0):
        np.testing.assert_array_equal(bx.numpy(), by.numpy() * 10)


def test_transform_draws_fresh_noise_per_batch():
    images = np.full((64, 28, 28), 128, np.uint8)
    loader = DataLoader(images, batch_size=32, seed=0,
                        transform=lambda x, g: binarize(scale(x), g))
    first, second = [b.numpy() for b in loader], [b.numpy() for b in loader]
    assert first[0].dtype == np.float32 and set(np.unique(first[0])) == {0.0, 1.0}
    assert not np.array_equal(first[0], first[1])
    assert not np.array_equal(first[0], second[0])              # dynamic: new bits per epoch
    assert np.concatenate(first).mean() == pytest.approx(128 / 255, abs=0.01)

    pairs = DataLoader(images, np.arange(64), batch_size=32,
                       transform=lambda b, g: (scale(b[0]), b[1] * 2))
    bx, by = next(iter(pairs))
    assert bx.dtype == np.float32 and by.numpy().tolist() == list(range(0, 64, 2))
    bad = DataLoader(images, np.arange(64), batch_size=32, transform=lambda b, g: b[0])
    with pytest.raises(TypeError, match="transform must return a tuple of 2 arrays"):
        next(iter(bad))


def _stream(loader, epochs):
    """All batches of ``epochs`` epochs as NumPy arrays, in order."""
    return [tuple(t.numpy() for t in batch) for _ in range(epochs) for batch in loader]


@pytest.mark.parametrize("stop_after", [0, 3, 13, 14, 20])
def test_resume_mid_epoch_equals_uninterrupted(tmp_path, stop_after):
    rng = np.random.default_rng(0)
    x, y = rng.random((100, 5)).astype(np.float32), np.arange(100)

    def make(seed):
        return DataLoader(x, y, batch_size=8, shuffle=True, seed=seed,
                          transform=lambda b, g: (binarize(b[0], g), b[1]))
    assert len(make(0)) == 13
    expected = _stream(make(0), 3)

    interrupted, seen = make(0), []
    it = iter(interrupted)
    for _ in range(stop_after):
        try:
            seen.append(tuple(t.numpy() for t in next(it)))
        except StopIteration:  # the end of an epoch: the training loop starts the next
            it = iter(interrupted)
            seen.append(tuple(t.numpy() for t in next(it)))
    tg.save({"loader": interrupted.state_dict()}, tmp_path / "ckpt.npz")

    resumed = make(seed=123)  # a restarted process; the state overrides the seed
    resumed.load_state_dict(tg.load(tmp_path / "ckpt.npz")["loader"])
    while len(seen) < len(expected):
        seen.extend(tuple(t.numpy() for t in b) for b in resumed)
    assert len(seen) == len(expected)
    for (ex, ey), (sx, sy) in zip(expected, seen):
        np.testing.assert_array_equal(sy, ey)
        np.testing.assert_array_equal(sx, ex)  # the same binarisation draws too


def test_state_dict_checks_and_stale_iterators():
    loader = DataLoader(np.arange(10), batch_size=2, shuffle=True, seed=0)
    other = DataLoader(np.arange(10), batch_size=3, shuffle=True, seed=0)
    with pytest.raises(ValueError, match="batch_size=2 but this loader has batch_size=3"):
        other.load_state_dict(loader.state_dict())
    with pytest.raises(ValueError, match="not a DataLoader state"):
        loader.load_state_dict({"epoch": 0})
    it = iter(loader)
    next(it)
    assert loader.state_dict()["position"] == 1 and loader.epoch == 0
    iter(loader)  # a new epoch begins; the old iterator must not go on
    assert loader.epoch == 1
    with pytest.raises(RuntimeError, match="stale"):
        next(it)
