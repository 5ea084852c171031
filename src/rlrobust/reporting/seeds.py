"""Runs that differ only by their training seed, summarised across seeds for ``rlrobust report``.

Two runs belong together when their saved configs are equal once ``train.seed`` is removed and
they hold an evaluation of the same name. For every such group of two or more runs, each accuracy
(clean, each attack, worst case) is shown as mean ± sample std with the 95 % Student-t interval
for the mean (``rlrobust.stats.seed_summary``), never as a bare mean.
"""

from __future__ import annotations

import json

from rlrobust.stats import format_seed_summary, seed_summary

#: What the cells of the across-seeds table are.
ACROSS_SEEDS_NOTE = (
    "Runs whose configs differ only in train.seed. Accuracy (%): mean ± sample std over the "
    "seeds, and in brackets the 95 % Student-t interval for the mean."
)


def _config_without_seed(config: dict) -> str | None:
    if "train" not in config or "seed" not in config["train"]:
        return None
    stripped = json.loads(json.dumps(config))
    stripped["train"].pop("seed")
    return json.dumps(stripped, sort_keys=True)


def seed_groups(runs) -> list[dict]:
    """``[{"runs": [names], "seeds": [...], "evaluation": stem, "records": [...]}]``, groups of
    two or more runs only, in the order their first run appears."""
    groups: dict[tuple[str, str], dict] = {}
    for run in runs:
        key = _config_without_seed(run.config)
        if key is None:
            continue
        for stem, record in run.evaluations.items():
            if "clean_accuracy" not in record:
                continue
            group = groups.setdefault(
                (key, stem), {"runs": [], "seeds": [], "evaluation": stem, "records": []}
            )
            group["runs"].append(run.name)
            group["seeds"].append(run.config["train"]["seed"])
            group["records"].append(record)
    return [g for g in groups.values() if len(g["records"]) >= 2]


def _accuracies(record: dict) -> dict[str, float]:
    values = {"clean": 100 * record["clean_accuracy"]}
    values.update({e["label"]: 100 * e["accuracy"] for e in record["attacks"]})
    if record["attacks"]:
        values["worst case"] = 100 * record["robust_accuracy"]
    return values


def across_seeds_table(runs) -> str | None:
    """Markdown: one row per seed group, ``mean ± std [95 % t interval]`` per accuracy."""
    groups = seed_groups(runs)
    if not groups:
        return None
    columns: list[str] = []
    for group in groups:
        for record in group["records"]:
            columns += [c for c in _accuracies(record) if c not in columns]
    if "worst case" in columns:  # last, as in the per-run table
        columns = [c for c in columns if c != "worst case"] + ["worst case"]
    header = ["runs", "evaluation", "seeds", *columns]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for group in groups:
        per_run = [_accuracies(r) for r in group["records"]]
        cells = [", ".join(group["runs"]), group["evaluation"], str(len(group["seeds"]))]
        for column in columns:
            values = [acc[column] for acc in per_run if column in acc]
            cells.append(format_seed_summary(seed_summary(values)) if values else "-")
        lines.append("| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |")
    return "\n".join(lines)
