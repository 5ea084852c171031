"""Read ``results/``: each claim's collections and, in them, each run with its arm and seed.

``results/<claim>/<collection>/provenance.json`` marks a collection (``collect.py``). A run is a
folder under it with a ``config.json``; its arm is the variant its sweep manifest names
(``sweep.json`` of a sweep or reproduce folder), else the ``arm`` given to ``collect``; its seed
is the config's ``train.seed``. A run's ``diagnostics.json`` (what ``rlrobust diagnose`` writes
into each run folder it measures) is read with it, for the rules that answer from diagnostics;
so are its ``metrics.csv`` (one row per epoch: training cost for the ``cost`` rule) and the RLAB
records ``rlab.json`` of its subfolders (``rlab/`` and ``rlab-learned/`` of a reproduce run, or
any ``--out`` of ``rlrobust attack rlab`` inside the run folder, for the ``rlab`` rule), and its
``transfer.json`` (examples crafted on another arm's run: the reproduction's transfer step).
Everything is read in sorted order, so the document built from the same records is the same
byte for byte.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass, field
from pathlib import Path

from rlrobust.findings.collect import PROVENANCE

DIAGNOSTICS = "diagnostics.json"
METRICS = "metrics.csv"
RLAB = "rlab.json"
TRANSFER = "transfer.json"


@dataclass
class RunRecords:
    collection: str  # the collection's folder name under results/<claim>/
    path: str  # the run folder, relative to results/
    arm: str | None
    seed: int | None
    config: dict
    evaluation_name: str | None = None  # which evaluation record was read
    evaluation: dict | None = None  # with per_sample
    diagnostics: dict | None = None  # the run's diagnostics.json ({part: record}), if any
    metrics: list[dict] = field(default_factory=list)  # metrics.csv rows (numbers as floats)
    rlab: dict[str, dict] = field(default_factory=dict)  # subfolder -> its rlab.json record
    transfer: dict | None = None  # the run's transfer.json (attacks crafted on a source run)
    problems: list[str] = field(default_factory=list)


@dataclass
class Collection:
    name: str
    provenance: dict
    reproduce: dict | None  # reproduce.json when the collection is a reproduce folder
    runs: list[RunRecords]


def _sweep_arms(root: Path) -> dict[str, str | None]:
    """Run folder (relative to ``root``) -> variant, from every sweep manifest under ``root``."""
    arms: dict[str, str | None] = {}
    for manifest in sorted(root.rglob("sweep.json")):
        points = json.loads(manifest.read_text()).get("points", {})
        for slug, point in sorted(points.items()):
            run_dir = (manifest.parent / point.get("run_dir", f"runs/{slug}")).relative_to(root)
            arms[run_dir.as_posix()] = point.get("variant")
    return arms


def read_evaluation(run_dir: Path, names: tuple[str, ...]) -> tuple[str | None, dict | None]:
    """The first evaluation record of ``names`` that the run holds, with its per-sample
    verdicts (``compare.load_evaluation``), or (None, None)."""
    from rlrobust.compare import load_evaluation

    for name in names:
        if (run_dir / f"{name}.json").is_file():
            return name, load_evaluation(run_dir, name)
    return None, None


def read_diagnostics(run_dir: Path) -> dict | None:
    """The run's own ``diagnostics.json`` written by ``rlrobust diagnose`` (one record, not the
    combined one of its ``--out`` folder, which is keyed by run name), or None."""
    path = run_dir / DIAGNOSTICS
    return json.loads(path.read_text()) if path.is_file() else None


def _cell(text: str) -> float | str | None:
    """A metrics.csv cell: a number as float, an empty cell (a column the epoch did not write)
    as None, anything else (the stage name) as written."""
    if text == "":
        return None
    try:
        return float(text)
    except ValueError:
        return text


def read_metrics(run_dir: Path) -> list[dict]:
    """The rows of the run's ``metrics.csv`` (what training writes, one per epoch), or []."""
    path = run_dir / METRICS
    if not path.is_file():
        return []
    with path.open(newline="") as handle:
        return [{k: _cell(v) for k, v in row.items()} for row in csv.DictReader(handle)]


def read_transfer(run_dir: Path) -> dict | None:
    """The run's ``transfer.json`` (written by the reproduction's transfer step), or None."""
    path = run_dir / TRANSFER
    return json.loads(path.read_text()) if path.is_file() else None


def read_rlab(run_dir: Path) -> dict[str, dict]:
    """``{subfolder: rlab.json}`` of the RLAB attacks written inside the run folder (the record
    names its agent), in sorted order."""
    return {p.parent.name: json.loads(p.read_text()) for p in sorted(run_dir.glob(f"*/{RLAB}"))}


def read_collection(root: Path, results: Path, evaluations: tuple[str, ...]) -> Collection:
    provenance = json.loads((root / PROVENANCE).read_text())
    reproduce = root / "reproduce.json"
    arms = _sweep_arms(root)
    runs = []
    for config_path in sorted(root.rglob("config.json")):
        run_dir = config_path.parent
        rel = run_dir.relative_to(root).as_posix()
        config = json.loads(config_path.read_text())
        seed = config.get("train", {}).get("seed")
        arm = arms.get(rel, provenance.get("arm"))
        run = RunRecords(root.name, run_dir.relative_to(results).as_posix(), arm, seed, config)
        try:
            run.evaluation_name, run.evaluation = read_evaluation(run_dir, evaluations)
        except Exception as error:  # noqa: BLE001 - a broken record is reported, not fatal
            run.problems.append(f"{run.path}: {error}")
        try:
            run.diagnostics = read_diagnostics(run_dir)
        except ValueError as error:  # a broken record is reported, not fatal
            run.problems.append(f"{run.path}/{DIAGNOSTICS}: {error}")
        try:
            run.metrics = read_metrics(run_dir)
        except (csv.Error, UnicodeDecodeError) as error:  # reported, not fatal
            run.problems.append(f"{run.path}/{METRICS}: {error}")
        try:
            run.rlab = read_rlab(run_dir)
        except ValueError as error:  # reported, not fatal
            run.problems.append(f"{run.path}/*/{RLAB}: {error}")
        try:
            run.transfer = read_transfer(run_dir)
        except ValueError as error:  # reported, not fatal
            run.problems.append(f"{run.path}/{TRANSFER}: {error}")
        runs.append(run)
    return Collection(
        root.name,
        provenance,
        json.loads(reproduce.read_text()) if reproduce.is_file() else None,
        runs,
    )


def read_claim(results: Path, claim_id: str, evaluations: tuple[str, ...]) -> list[Collection]:
    """The collections of ``results/claim_id/`` (none when the folder does not exist)."""
    folder = results / claim_id
    if not folder.is_dir():
        return []
    return [
        read_collection(p, results, evaluations)
        for p in sorted(folder.iterdir())
        if p.is_dir() and (p / PROVENANCE).is_file()
    ]
