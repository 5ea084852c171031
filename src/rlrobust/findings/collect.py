"""File a finished run (or a sweep / reproduce folder) under ``results/<claim>/<run-name>/``.

Only the small records travel: JSON, CSV, markdown and text files up to ``MAX_BYTES`` each,
outside checkpoint, partial-state and saved-example folders. Weights (``.safetensors``,
``.pt``), data and figures never do, whatever their size: the repository keeps what a reader
needs to recompute every number of ``docs/findings.md``, not what is needed to rerun it.

Beside the copies goes ``provenance.json``: the claim, the exact command that produced the run,
the git commit of the code that ran it (``git rev-parse HEAD`` where git answers), the date, the
machine, the wall time and a note on the load (a busy machine's times are upper bounds).
"""

from __future__ import annotations

import datetime as _dt
import os
import platform
import re
import shutil
import subprocess
from pathlib import Path

from rlrobust.errors import RLRobustError
from rlrobust.files import atomic_write_json

PROVENANCE = "provenance.json"
#: the extensions of small records; everything else (weights, arrays, images, logs) stays out
KEEP_SUFFIXES = {".json", ".csv", ".md", ".txt"}
#: folders whose content is never a record: checkpoints, partial evaluation state, saved
#: adversarial examples (arrays), TensorBoard events, figures
SKIP_DIRS = {"checkpoints", "checkpoint", "tensorboard", "figures", "__pycache__"}
SKIP_DIR_SUFFIXES = (".partial", "-examples")
#: a record above this size is not small (a per-sample file of 10 000 images with ten attacks
#: is about 300 kB); larger files are listed in provenance.json as left out, never copied
MAX_BYTES = 2_000_000
NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


def _skipped_dir(part: str) -> bool:
    return part in SKIP_DIRS or part.endswith(SKIP_DIR_SUFFIXES) or part.startswith(".")


def small_records(source: Path) -> tuple[list[Path], list[dict]]:
    """The files of ``source`` to copy (relative paths, sorted) and those left out with why."""
    keep, left_out = [], []
    for path in sorted(source.rglob("*")):
        if not path.is_file() or path.is_symlink():
            continue
        rel = path.relative_to(source)
        if any(_skipped_dir(part) for part in rel.parts[:-1]):
            continue
        if path.suffix.lower() not in KEEP_SUFFIXES:
            continue  # weights, arrays, figures: silently, they are never records
        size = path.stat().st_size
        if size > MAX_BYTES:
            left_out.append({"path": rel.as_posix(), "bytes": size, "why": f"over {MAX_BYTES} B"})
            continue
        keep.append(rel)
    return keep, left_out


def git_commit(where: Path) -> str | None:
    """``git rev-parse HEAD`` of the checkout holding ``where`` (None without git)."""
    try:
        done = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=where,
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    commit = done.stdout.strip()
    return commit if done.returncode == 0 and re.fullmatch(r"[0-9a-f]{40}", commit) else None


def machine() -> dict:
    """What ran it: enough to judge a wall time (CPU count, torch threads, accelerator)."""
    import torch

    out = {
        "platform": platform.platform(),
        "python": platform.python_version(),
        "processor": platform.processor() or platform.machine(),
        "cpus": os.cpu_count(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
    }
    return out


def load_note(note: str | None) -> dict:
    """The 1/5/15-minute load averages now, with the caller's note (e.g. "shared machine, other
    jobs running: times are upper bounds")."""
    try:
        averages = [round(v, 2) for v in os.getloadavg()]
    except OSError:
        averages = None
    return {"load_average_at_collect": averages, "note": note or ""}


def _wall_seconds(source: Path) -> float | None:
    """The run's wall time from its own records when they hold it (a sweep's manifest sums its
    points' seconds; a demo's report.json has ``seconds``)."""
    import json

    for name in ("sweep.json", "report.json"):
        path = source / name
        if path.is_file():
            record = json.loads(path.read_text())
            if name == "sweep.json":
                seconds = [p.get("seconds") for p in record.get("points", {}).values()]
                if seconds and all(isinstance(s, int | float) for s in seconds):
                    return float(sum(seconds))
            elif isinstance(record.get("seconds"), int | float):
                return float(record["seconds"])
    return None


def collect(
    source: str | Path,
    claim: str,
    *,
    command: str,
    results: str | Path = "results",
    name: str | None = None,
    arm: str | None = None,
    preset: str | None = None,
    scale: str | None = None,
    wall_seconds: float | None = None,
    note: str | None = None,
    overwrite: bool = False,
    now: _dt.datetime | None = None,
) -> Path:
    """Copy the small records of ``source`` to ``results/claim/name/`` with provenance.json.

    ``arm`` names the comparison arm of a single run (a sweep's manifest names its own);
    ``preset`` / ``scale``: the reproduction preset the run followed, whose computed protocol
    differences the findings list (a reproduce folder's reproduce.json names them itself).
    """
    import rlrobust
    from rlrobust.findings.claims import claim_ids, get_claim

    source = Path(source)
    if not source.is_dir():
        raise RLRobustError(f"{source} is not a folder; give a run, sweep or reproduce folder")
    if claim not in claim_ids():
        raise RLRobustError(
            f"unknown claim {claim!r}; choose one of: {', '.join(claim_ids())} "
            "(rlrobust findings claims lists them)"
        )
    shared = get_claim(claim).records_of
    if shared is not None:
        raise RLRobustError(
            f"claim {claim!r} reads the records of claim {shared!r} (the same runs answer "
            f"both): collect with --claim {shared}"
        )
    if (preset is None) != (scale is None):
        raise RLRobustError(
            "give --preset and --scale together (the preset's scale the run followed)"
        )
    if preset is not None:
        from rlrobust.experiments.presets import get_preset

        if scale not in get_preset(preset).scales:  # get_preset names the presets if unknown
            raise RLRobustError(
                f"preset {preset!r} has no scale {scale!r}; choose one of: "
                f"{', '.join(get_preset(preset).scales)}"
            )
    name = name or source.resolve().name
    if not NAME_PATTERN.match(name):
        raise RLRobustError(
            f"run name {name!r} must be letters, digits, '.', '_' or '-'; give --name NAME"
        )
    if not command.strip():
        raise RLRobustError("--command must give the exact command line that produced the run")
    keep, left_out = small_records(source)
    if not any(p.name == "config.json" for p in keep):
        hint = ""
        if (source / "diagnostics.md").is_file():  # what `rlrobust diagnose --out` writes
            hint = (
                "; it looks like a `rlrobust diagnose --out` folder, whose combined record has no "
                "run configs: collect the diagnosed run (or reproduce) folders instead, each run "
                "holds its own diagnostics.json"
            )
        raise RLRobustError(
            f"{source} holds no config.json: it is not a finished run, sweep or reproduce folder"
            + hint
        )
    target = Path(results) / claim / name
    if target.exists():
        if not overwrite:
            raise RLRobustError(f"{target} exists; pass --overwrite to replace it or --name NEW")
        shutil.rmtree(target)
    for rel in keep:
        (target / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source / rel, target / rel)
    when = now or _dt.datetime.now(_dt.timezone.utc)
    provenance = {
        "claim": claim,
        "name": name,
        "command": command,
        # runs record no commit themselves: the commit of the rlrobust checkout that collects
        # them (collect right after the run, from the checkout that ran it)
        "git_commit": git_commit(Path(rlrobust.__file__).resolve().parent),
        "date": when.isoformat(timespec="seconds"),
        "source": str(source.resolve()),
        "machine": machine(),
        "wall_seconds": wall_seconds if wall_seconds is not None else _wall_seconds(source),
        "load": load_note(note),
        "arm": arm,
        "preset": preset,
        "scale": scale,
        "files": [rel.as_posix() for rel in keep],
        "left_out": left_out,
    }
    atomic_write_json(target / PROVENANCE, provenance)
    return target
