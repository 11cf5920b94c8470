"""Downloading the original MNIST and Fashion-MNIST files, verified by checksum.

Each file is fetched from a list of public mirrors, tried in turn: a mirror that cannot
be reached, answers with an error, or serves bytes whose size, MD5 or SHA-256 differ
from the published ones is skipped for the next. The published checksums are those of
the original gzip files: for MNIST as distributed by Yann LeCun (the MD5s are the ones
torchvision checks), for Fashion-MNIST as in Zalando Research's repository.

A download is written to a temporary file in the destination folder and renamed to its
final name only after every check has passed, so an interrupted or bad download never
remains under the final name (``os.replace`` within one folder is atomic).

Files the user supplies are not checked against these checksums, only by their IDX
headers and counts: re-compressed or re-ordered copies (Debian's Fashion-MNIST package
strips the file name from the gzip header, for example) are just as good as data.
"""
from __future__ import annotations

import hashlib
import http.client
import urllib.error
import urllib.request
from collections import namedtuple
from pathlib import Path

from ..files import atomic_write

__all__ = ["MIRRORS", "FILES", "FileInfo", "ChecksumError", "download_file", "fetch"]

FileInfo = namedtuple("FileInfo", ["size", "md5", "sha256"])
FileInfo.__doc__ = "The published size in bytes, MD5 and SHA-256 of an original file."

MIRRORS = {
    "mnist": [
        "https://ossci-datasets.s3.amazonaws.com/mnist/",
        "https://storage.googleapis.com/cvdf-datasets/mnist/",
    ],
    "fashion-mnist": [
        # Zalando's own host (plain http: S3 website endpoints have no https; the
        # checksums, not the transport, are what guarantee the bytes).
        "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
        "https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/master/data/fashion/",
    ],
}

FILES = {
    "mnist": {
        "train-images-idx3-ubyte.gz": FileInfo(
            9912422, "f68b3c2dcbeaaa9fbdd348bbdeb94873",
            "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609"),
        "train-labels-idx1-ubyte.gz": FileInfo(
            28881, "d53e105ee54ea40749a09fcbcd1e9432",
            "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c"),
        "t10k-images-idx3-ubyte.gz": FileInfo(
            1648877, "9fb629c4189551a2d022fa330f9573f3",
            "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6"),
        "t10k-labels-idx1-ubyte.gz": FileInfo(
            4542, "ec29112dd5afa0611ce80d1b7f02629c",
            "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6"),
    },
    "fashion-mnist": {
        "train-images-idx3-ubyte.gz": FileInfo(
            26421880, "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
            "3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84"),
        "train-labels-idx1-ubyte.gz": FileInfo(
            29515, "25c81989df183df01b3e8a0aad5dffbe",
            "a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845"),
        "t10k-images-idx3-ubyte.gz": FileInfo(
            4422102, "bef4ecab320f06d8554ea6380940ec79",
            "346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073"),
        "t10k-labels-idx1-ubyte.gz": FileInfo(
            5148, "bb300cfdad3c16e7a12a480ee83cd310",
            "67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5"),
    },
}

TIMEOUT_S = 30
_CHUNK = 1 << 16


class ChecksumError(ValueError):
    """Downloaded bytes differ from the published size or checksums."""


def download_file(url, dest, expected: FileInfo, progress=True, timeout=None) -> Path:
    """Download ``url`` to ``dest``, verified against ``expected``; return ``dest``.

    The bytes go to a temporary file beside ``dest``, renamed onto ``dest`` only after
    the size, MD5 and SHA-256 all match; on any failure the temporary file is removed
    and ``dest`` is left as it was.

    Raises:
        ChecksumError: the bytes are not the published file.
        OSError: the server cannot be reached or answers with an error
            (urllib.error.URLError and HTTPError are OSErrors).
        http.client.HTTPException: the connection broke off mid-file.
    """
    dest = Path(dest)
    timeout = TIMEOUT_S if timeout is None else timeout  # seconds without data before giving up
    md5, sha256, size = hashlib.md5(), hashlib.sha256(), 0
    request = urllib.request.Request(url, headers={"User-Agent": "tinygen"})
    # The file becomes `dest` only if the block ends without an error: a partial or
    # wrong download (a ChecksumError below) leaves nothing under the final name.
    with atomic_write(dest, suffix=".part") as out:
        with urllib.request.urlopen(request, timeout=timeout) as r:
            from tqdm.auto import tqdm  # here, not at the top: most runs never download
            total = r.headers.get("Content-Length")
            with tqdm(total=int(total) if total and total.isdigit() else expected.size,
                      unit="B", unit_scale=True, unit_divisor=1024, disable=not progress,
                      desc=f"{dest.parent.name}/{dest.name}") as bar:
                while True:
                    # Never read past one byte more than expected: a wrong answer (an
                    # endless or huge error page) is refused without filling the disk.
                    chunk = r.read(min(_CHUNK, expected.size + 1 - size))
                    if not chunk:
                        break
                    out.write(chunk)
                    md5.update(chunk)
                    sha256.update(chunk)
                    size += len(chunk)
                    bar.update(len(chunk))
                    if size > expected.size:
                        break
        if size > expected.size:
            raise ChecksumError(f"{url}: more than {expected.size} bytes, the size of the "
                                "published file")
        if size < expected.size:
            raise ChecksumError(f"{url}: {size} bytes, the published file has {expected.size}")
        for name, digest, want in (("MD5", md5, expected.md5),
                                   ("SHA-256", sha256, expected.sha256)):
            if digest.hexdigest() != want:
                raise ChecksumError(f"{url}: {name} {digest.hexdigest()} differs from the "
                                    f"published {want}")
    return dest


def fetch(name, filename, folder, progress=True) -> Path:
    """Download ``filename`` of dataset ``name`` into ``folder``, trying each mirror
    in ``MIRRORS[name]`` in turn; return the path of the verified file.

    Raises:
        OSError: no mirror served the published file; the message lists each mirror's
            failure.
    """
    expected = FILES[name][filename]
    failures = []
    for base in MIRRORS[name]:
        url = base + filename
        try:
            return download_file(url, Path(folder) / filename, expected, progress=progress)
        # Unreachable, an HTTP error, a connection cut short, or the wrong bytes.
        except (OSError, http.client.HTTPException, ChecksumError) as e:
            reason = getattr(e, "reason", None) if isinstance(e, urllib.error.URLError) \
                and not isinstance(e, urllib.error.HTTPError) else None
            failures.append(f"{url}: {reason if reason is not None else e}")
    raise OSError("could not download " + filename + " from any mirror:\n    "
                  + "\n    ".join(failures))
