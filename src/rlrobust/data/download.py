"""Fetch data files over HTTP(S), verify their md5 (or sha256), and unpack archives safely.

A download goes to ``<file>.part``; only after its md5 matches is it renamed over ``<file>``
(``os.replace`` is atomic on one file system), so an interrupted or corrupted download never
leaves a file that looks finished. Tarballs are unpacked into a temporary folder beside the
target and moved into place at the end, and members that would land outside that folder
(absolute paths, ``..``, links, devices) are refused. Zip archives (the UCR time-series archive)
are read member by member: only the named members are written, each through a ``.part`` file.

Files without a published checksum are *recorded and verified*: ``record_or_verify`` writes the
sha256 of the first copy beside it (``<name>.sha256``, in ``sha256sum`` format) and prints it;
every later load checks the file against that record. This catches later corruption or a
silently changed upstream file, but it cannot prove the first download was genuine.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import shutil
import tarfile
import tempfile
import urllib.request
import zipfile
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


def file_digest(path: str | os.PathLike, algorithm: str = "md5") -> str:
    """Hex digest (``"md5"`` or ``"sha256"``) of a file, read in 1 MiB chunks."""
    if algorithm not in ("md5", "sha256"):
        raise ValueError(f"unsupported digest {algorithm!r}; use md5 or sha256")
    digest = hashlib.new(algorithm, usedforsecurity=False)
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def md5sum(path: str | os.PathLike) -> str:
    """Hex md5 of a file, read in 1 MiB chunks."""
    return file_digest(path, "md5")


def verify_digest(path: str | os.PathLike, expected: str, algorithm: str = "md5") -> None:
    """Raise DataError unless the file at ``path`` has the ``algorithm`` digest ``expected``."""
    actual = file_digest(path, algorithm)
    if actual != expected.lower():
        raise DataError(
            f"{path} is corrupted ({algorithm} {actual}, expected {expected}): delete it and run "
            "with --data.download, or copy a good file"
        )


def verify_md5(path: str | os.PathLike, expected: str) -> None:
    """Raise DataError unless the file at ``path`` has md5 ``expected``."""
    verify_digest(path, expected, "md5")


def download_file(
    urls: Sequence[str],
    dest: str | os.PathLike,
    md5: str | None,
    *,
    timeout: float = 60.0,
    sha256: str | None = None,
) -> Path:
    """Fetch the first URL that yields a file with the right md5 and move it to ``dest``.

    Mirrors are tried in order; a network error or a checksum mismatch moves on to the next one.
    Whatever happens, no ``.part`` file is left behind, and ``dest`` is only ever the full,
    verified file. ``sha256`` is checked as well when given; with neither checksum the file is
    taken as downloaded (the caller then records its digest with ``record_or_verify``).
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    failures: list[str] = []
    for url in urls:
        try:
            _fetch(url, part, timeout)
            if md5 is not None:
                verify_md5(part, md5)
            if sha256 is not None:
                verify_digest(part, sha256, "sha256")
        except (OSError, http.client.HTTPException, DataError, ValueError) as error:
            failures.append(f"{url}: {error}")
            part.unlink(missing_ok=True)
            continue
        except BaseException:
            part.unlink(missing_ok=True)
            raise
        os.replace(part, dest)
        return dest
    pinned = f"md5 {md5}" if md5 is not None else f"sha256 {sha256}"
    raise DataError(
        f"could not download {dest.name} ({pinned}); tried:\n  "
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
            f"{archive} could not be unpacked ({error}); delete it and run with --data.download"
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


def record_path(path: str | os.PathLike) -> Path:
    """Where ``record_or_verify`` keeps the sha256 of ``path``: ``<path>.sha256``."""
    path = Path(path)
    return path.with_name(path.name + ".sha256")


def record_or_verify(path: str | os.PathLike) -> str:
    """Verify ``path`` against its recorded sha256, or record it if there is no record yet.

    For files without a published checksum (trust on first use). The record is one
    ``sha256sum``-format line, so ``sha256sum -c <path>.sha256`` checks it by hand too. Returns
    the file's sha256.
    """
    path = Path(path)
    record = record_path(path)
    actual = file_digest(path, "sha256")
    if record.is_file():
        expected = record.read_text(encoding="utf-8").split()[0] if record.stat().st_size else ""
        if actual != expected.lower():
            raise DataError(
                f"{path} changed since its sha256 was recorded in {record} (now {actual}, "
                f"recorded {expected or 'nothing'}): delete both files and run with --data.download, "
                "or copy a good file"
            )
        return actual
    record.write_text(f"{actual}  {path.name}\n", encoding="utf-8")
    print(
        f"note: no published checksum for {path.name}; recorded its sha256 {actual} in {record}; "
        "later loads verify against it"
    )
    return actual


def extract_zip_members(
    archive: str | os.PathLike, dest: str | os.PathLike, members: Sequence[str]
) -> list[Path]:
    """Write the named ``members`` of a zip ``archive`` into folder ``dest``.

    ``members`` are plain file names (no folders, no ``..``); a member stored inside one folder
    of the archive (``ECG5000/ECG5000_TRAIN.ts``) is found by its name when exactly one entry
    has it. Each is written as ``dest / name`` whatever its path in the archive, so nothing can
    land outside ``dest``; each goes through a ``.part`` file and ``os.replace``. Raises
    DataError for a missing or ambiguous member or an archive that is not a readable zip.
    """
    archive, dest = Path(archive), Path(dest)
    for member in members:
        if PurePosixPath(member).name != member or member in ("", ".", ".."):
            raise DataError(f"refusing zip member name {member!r}: only plain file names")
    written: list[Path] = []
    try:
        with zipfile.ZipFile(archive) as zipped:
            names = [n for n in zipped.namelist() if not n.endswith("/")]
            found = {m: _zip_entry(m, names, archive) for m in members}
            dest.mkdir(parents=True, exist_ok=True)
            for member, entry in found.items():
                target = dest / member
                part = target.with_name(target.name + ".part")
                try:
                    with zipped.open(entry) as source, open(part, "wb") as out:
                        shutil.copyfileobj(source, out, _CHUNK)
                    os.replace(part, target)
                finally:
                    part.unlink(missing_ok=True)
                written.append(target)
    except (zipfile.BadZipFile, OSError, EOFError) as error:
        raise DataError(
            f"{archive} could not be unpacked ({error}); delete it and run with --data.download"
        ) from error
    return written


def _zip_entry(member: str, names: list[str], archive: Path) -> str:
    """The archive entry for the plain file name ``member``: itself, or the one entry whose
    last path component is ``member``."""
    if member in names:
        return member
    matches = [n for n in names if PurePosixPath(n).name == member]
    if len(matches) != 1:
        problem = "no member" if not matches else f"{len(matches)} members named"
        raise DataError(
            f"{archive} has {problem} {member} (it holds {', '.join(sorted(names)[:8])}); "
            "delete it and run with --data.download"
        )
    return matches[0]
