"""Fetch data files over HTTP(S), verify their md5, and unpack CIFAR tarballs safely.

A download goes to ``<file>.part``; only after its md5 matches is it renamed over ``<file>``
(``os.replace`` is atomic on one file system), so an interrupted or corrupted download never
leaves a file that looks finished. Tarballs are unpacked into a temporary folder beside the
target and moved into place at the end, and members that would land outside that folder
(absolute paths, ``..``, links, devices) are refused.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import shutil
import tarfile
import tempfile
import urllib.request
from collections.abc import Sequence
from pathlib import Path, PurePosixPath

from rlrobust.data.sources import (  # noqa: F401  (re-exported: the catalogue of URLs and sums)
    CIFAR10_TARBALL,
    CIFAR100_TARBALL,
    FASHION_MNIST_FILES,
    MNIST_FILES,
    RemoteFile,
)
from rlrobust.errors import DataError

_CHUNK = 1 << 20
_USER_AGENT = "rlrobust (+https://pypi.org/project/rlrobust)"


def md5sum(path: str | os.PathLike) -> str:
    """Hex md5 of a file, read in 1 MiB chunks."""
    digest = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def verify_md5(path: str | os.PathLike, expected: str) -> None:
    """Raise DataError unless the file at ``path`` has md5 ``expected``."""
    actual = md5sum(path)
    if actual != expected.lower():
        raise DataError(
            f"{path} is corrupted (md5 {actual}, expected {expected}): delete it and run with "
            "--download, or copy a good file"
        )


def download_file(
    urls: Sequence[str], dest: str | os.PathLike, md5: str, *, timeout: float = 60.0
) -> Path:
    """Fetch the first URL that yields a file with the right md5 and move it to ``dest``.

    Mirrors are tried in order; a network error or an md5 mismatch moves on to the next one.
    Whatever happens, no ``.part`` file is left behind, and ``dest`` is only ever the full,
    verified file.
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    failures: list[str] = []
    for url in urls:
        try:
            _fetch(url, part, timeout)
            verify_md5(part, md5)
        except (OSError, http.client.HTTPException, DataError, ValueError) as error:
            failures.append(f"{url}: {error}")
            part.unlink(missing_ok=True)
            continue
        except BaseException:
            part.unlink(missing_ok=True)
            raise
        os.replace(part, dest)
        return dest
    raise DataError(
        f"could not download {dest.name} (md5 {md5}); tried:\n  "
        + "\n  ".join(failures)
        + f"\nCheck the network, or copy the file by hand to {dest}"
    )


def _fetch(url: str, part: Path, timeout: float) -> None:
    """Stream ``url`` into ``part`` and flush it to disk."""
    request = urllib.request.Request(url, headers={"User-Agent": _USER_AGENT})
    with urllib.request.urlopen(request, timeout=timeout) as response, open(part, "wb") as out:
        shutil.copyfileobj(response, out, _CHUNK)
        out.flush()
        os.fsync(out.fileno())


def ensure_file(remote: RemoteFile, folder: str | os.PathLike, *, download: bool) -> Path:
    """The path of ``remote`` inside ``folder``, fetched first when asked and needed.

    With ``download=True`` a missing file, or one whose md5 is wrong, is (re-)downloaded.
    Without it, the path is returned as is and the caller reports a missing file.
    """
    path = Path(folder) / remote.filename
    if download and (not path.is_file() or md5sum(path) != remote.md5):
        download_file(remote.urls(), path, remote.md5)
    return path


def safe_extract_tar(archive: str | os.PathLike, dest: str | os.PathLike) -> list[str]:
    """Unpack ``archive`` into ``dest``, refusing anything that could escape ``dest``.

    Only regular files and folders with relative paths free of ``..`` are allowed; links,
    devices and absolute paths raise DataError before anything is written. Returns the top-level
    names that were moved into ``dest``.
    """
    archive, dest = Path(archive), Path(dest)
    try:
        with tarfile.open(archive, "r:*") as tar:
            members = tar.getmembers()
            for member in members:
                _check_member(member, archive)
            dest.mkdir(parents=True, exist_ok=True)
            staging = Path(tempfile.mkdtemp(prefix=".extract-", dir=dest))
            try:
                for member in members:
                    target = staging / member.name
                    if member.isdir():
                        target.mkdir(parents=True, exist_ok=True)
                        continue
                    target.parent.mkdir(parents=True, exist_ok=True)
                    source = tar.extractfile(member)
                    if source is None:  # pragma: no cover - regular files always have data
                        raise DataError(f"{archive}: member {member.name!r} has no data")
                    with source, open(target, "wb") as out:
                        shutil.copyfileobj(source, out, _CHUNK)
                parts = [PurePosixPath(m.name).parts for m in members]
                tops = sorted({p[0] for p in parts if p})
                for top in tops:
                    final = dest / top
                    if final.is_dir():
                        shutil.rmtree(final)
                    os.replace(staging / top, final)
            finally:
                shutil.rmtree(staging, ignore_errors=True)
    except (tarfile.TarError, EOFError, OSError) as error:
        raise DataError(
            f"{archive} could not be unpacked ({error}); delete it and run with --download"
        ) from error
    return tops


def _check_member(member: tarfile.TarInfo, archive: Path) -> None:
    name = PurePosixPath(member.name)
    if name.is_absolute() or member.name.startswith(("/", "\\")) or ".." in name.parts:
        raise DataError(
            f"{archive}: refusing member {member.name!r} (absolute path or '..'); the archive is "
            "not a genuine data set tarball: delete it and download it again"
        )
    if not (member.isfile() or member.isdir()):
        raise DataError(
            f"{archive}: refusing member {member.name!r} (a link or special file); the archive "
            "is not a genuine data set tarball: delete it and download it again"
        )
