"""The overwrite rule every command that writes into an output folder follows.

One rule (``evaluate``, ``demo``, ``report``, ``diagnose``, ``compare --out``, ``attack rlab``):
a command refuses to write over the outputs of an earlier call unless ``--overwrite`` is given;
with ``--overwrite`` the earlier call's generated files are removed first, so no stale file
(a figure the new call does not draw, a retrained model it does not train) survives beside the
new ones. Only the files a command itself generates are touched, never anything else in the
folder: the patterns name them exactly.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable
from pathlib import Path

from rlrobust.errors import RLRobustError


class OutputExistsError(RLRobustError):
    """An output folder already holds the outputs of an earlier call; nothing was written."""


def check_output_folder(folder: str | Path, option: str = "--out") -> Path:
    """``folder`` as a Path; refuses a path that exists but is not a folder (before any work)."""
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise OutputExistsError(
            f"{option} {folder} is a file, not a folder; give a folder path for the outputs"
        )
    for parent in folder.parents:  # a file in the way makes the folder impossible to create
        if parent.exists():
            if not parent.is_dir():
                raise OutputExistsError(
                    f"{option} {folder} cannot be created: {parent} is a file, not a folder"
                )
            break
    return folder


def existing_outputs(folder: str | Path, patterns: Iterable[str]) -> list[Path]:
    """Files in ``folder`` matching any of ``patterns`` (names or globs such as
    ``figures/*.png``), sorted; [] when the folder does not exist."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    found = {path for pattern in patterns for path in folder.glob(pattern) if path.is_file()}
    return sorted(found)


def claim_outputs(
    folder: str | Path, patterns: Iterable[str], overwrite: bool, what: str
) -> list[Path]:
    """The generated files of an earlier ``what`` in ``folder``: raises ``OutputExistsError``
    when there are any and ``overwrite`` is false; returns them otherwise (for
    ``remove_outputs`` once the new outputs are ready to be written)."""
    folder = check_output_folder(folder)
    found = existing_outputs(folder, list(patterns))
    if found and not overwrite:
        shown = ", ".join(str(p.relative_to(folder)) for p in found[:6])
        more = f" and {len(found) - 6} more" if len(found) > 6 else ""
        raise OutputExistsError(
            f"{folder} already holds the outputs of an earlier {what} ({shown}{more}); pass "
            "--overwrite to replace them (the earlier files are removed first), or choose "
            "another --out"
        )
    return found


def remove_outputs(paths: Iterable[Path]) -> None:
    """Delete the given generated files, then any folder they leave empty (e.g. ``figures/``)."""
    folders = set()
    for path in paths:
        path.unlink(missing_ok=True)
        folders.add(path.parent)
    for folder in sorted(folders, key=lambda p: len(p.parts), reverse=True):
        with contextlib.suppress(OSError):  # only an empty folder goes (figures/)
            folder.rmdir()
