"""ECG heartbeat benchmarks of the UCR archive, downloaded with checksum verification.

* ``ecg200`` (Olszewski 2001): 100 train / 100 test heartbeats of 96 samples, two classes
  (archive labels -1 and 1; the archive describes the classes as normal heartbeat and myocardial
  infarction but the files do not say which label is which, so ``class_names`` are the raw
  labels).
* ``ecg5000`` (Chen et al. 2015, from PhysioNet's BIDMC congestive heart failure record chf07):
  500 train / 4500 test heartbeats of 140 samples, five classes (archive labels 1..5; the
  archive's description page names them normal, R-on-T premature ventricular contraction,
  premature ventricular contraction, supraventricular premature beat, unclassified beat).

Files live in ``<root>/ucr/<Name>/`` (root: ``--data.data_dir``, else ``$RLROBUST_DATA``, else
``~/.cache/rlrobust/data``); ``download=True`` fetches ``<Name>.zip`` from
https://www.timeseriesclassification.com/aeon-toolkit/ and writes the two ``.ts`` members
beside it. Integrity, honestly stated:

* ECG200.zip is checked against a sha256 pinned in ``sources.py`` (the value two independent
  public projects check for this URL; this machine has no internet, so it was not recomputed
  here).
* ECG5000.zip has no checksum that could be verified: the first download's sha256 is printed
  and written beside it (``ECG5000.zip.sha256``) and every later load verifies against it
  (trust on first use: later corruption is caught, a bad first download is not). With
  ``--data.download`` an archive that fails its record is deleted, fetched again and the new
  copy recorded (and printed), so a changed upstream file is visible but not fatal.
* The extracted ``.ts`` files are recorded the same way (``<Name>_TRAIN.ts.sha256``), so an
  edited or truncated ``.ts`` file is refused even after the zip is deleted.

Scaling to [0, 1] uint8, label order and statistics are those of every UCR set (``ucr.py``).
"""

from __future__ import annotations

import os
from functools import partial
from pathlib import Path

from rlrobust.data.dataset import ImageData, check_split
from rlrobust.data.download import (
    download_file,
    extract_zip_members,
    file_digest,
    record_or_verify,
    record_path,
    verify_digest,
)
from rlrobust.data.paths import describe_source, resolve_data_dir
from rlrobust.data.sources import ECG200_ARCHIVE, ECG5000_ARCHIVE, UCRArchive
from rlrobust.data.ucr import UCR_SUBDIR, load_ucr_folder
from rlrobust.errors import DataError
from rlrobust.registry import DATASETS

ECG_ARCHIVES: dict[str, UCRArchive] = {"ecg200": ECG200_ARCHIVE, "ecg5000": ECG5000_ARCHIVE}


def _split_files(archive: UCRArchive) -> list[str]:
    return [f"{archive.problem}_TRAIN.ts", f"{archive.problem}_TEST.ts"]


def _check_archive(archive: UCRArchive, path: Path) -> None:
    """Pinned sha256 if there is one, else record-or-verify."""
    if archive.sha256 is not None:
        verify_digest(path, archive.sha256, "sha256")
    else:
        record_or_verify(path)


def prepare_archive(
    archive: UCRArchive, folder: str | os.PathLike, *, download: bool, timeout: float = 60.0
) -> Path:
    """Make sure ``folder`` holds verified ``<Name>_TRAIN.ts`` / ``_TEST.ts``; return ``folder``.

    Order: download the zip when asked and it is missing or fails its check; unpack it when the
    ``.ts`` files are missing; verify each ``.ts`` against its recorded sha256 (recording it the
    first time). Raises DataError naming the files and the fix when anything is missing or wrong.
    """
    folder = Path(folder)
    zip_path = folder / archive.filename
    members = _split_files(archive)
    have_ts = all((folder / m).is_file() for m in members)
    if download and (not have_ts or zip_path.is_file()):  # fetch if missing or failing
        _download(archive, zip_path, timeout)
    if zip_path.is_file():
        _check_archive(archive, zip_path)
        if not have_ts:
            for target in extract_zip_members(zip_path, folder, members):
                record_path(target).unlink(missing_ok=True)  # a fresh, verified copy
    missing = [m for m in members if not (folder / m).is_file()]
    if missing:
        raise DataError(
            f"{archive.problem}: {', '.join(missing)} not found in {folder}; run with "
            f"--data.download (fetches {archive.urls()[0]}), or unzip that archive into the folder"
        )
    for member in members:
        record_or_verify(folder / member)
    return folder


def _download(archive: UCRArchive, zip_path: Path, timeout: float) -> None:
    if zip_path.is_file():
        try:
            _check_archive(archive, zip_path)
            return
        except DataError:  # corrupted or changed: fetch a fresh copy
            zip_path.unlink()
            record_path(zip_path).unlink(missing_ok=True)
    download_file(archive.urls(), zip_path, None, timeout=timeout, sha256=archive.sha256)
    if archive.sha256 is None:
        record_or_verify(zip_path)
    else:
        print(f"downloaded {zip_path} (sha256 {file_digest(zip_path, 'sha256')}, as pinned)")


def load_ecg(
    registered: str,
    split: str,
    data_dir: str | os.PathLike | None = None,
    download: bool = False,
    *,
    margin: float = 0.0,
) -> ImageData:
    """Split ``split`` of the ECG set ``registered`` ("ecg200" or "ecg5000"), shape (N, 1, L)."""
    check_split(registered, split)
    archive = ECG_ARCHIVES[registered]
    folder = resolve_data_dir(data_dir) / UCR_SUBDIR / archive.problem
    try:
        prepare_archive(archive, folder, download=download)
    except DataError as error:
        raise DataError(f"{error} (data root {describe_source(data_dir)})") from error
    return load_ucr_folder(folder, archive.problem, split, name=registered, margin=margin)


for _registered in ECG_ARCHIVES:
    _loader = partial(load_ecg, _registered)
    _loader.__doc__ = f"UCR {ECG_ARCHIVES[_registered].problem}, downloaded and checksummed."
    DATASETS.register(_registered)(_loader)
