"""A 95 % Wilson interval over test images on every accuracy of an evaluation record.

An accuracy measured on n test images is a binomial proportion; its Wilson interval
(``rlrobust.stats.wilson_interval``) says how far it could move on another n images from the
same distribution. The record keeps its old keys and gains, beside each accuracy:

    clean_accuracy_interval, robust_accuracy_interval, attacks[i]["accuracy_interval"]

as ``[low, high]`` fractions (None on an empty test set), plus ``interval_level`` and
``interval_method``. Counts come from the per-sample flags when the record holds them, else from
``round(accuracy * n_examples)`` (records written before the intervals existed).
"""

from __future__ import annotations

from rlrobust.stats import DEFAULT_LEVEL, wilson_interval


def _count(record: dict, key: str | None, accuracy: float) -> int:
    flags = record.get("per_sample", {}).get(key) if key else None
    if flags is not None and len(flags) == record["n_examples"]:
        return int(sum(int(bool(f)) for f in flags))
    return int(round(accuracy * record["n_examples"]))


def accuracy_interval(
    record: dict, accuracy: float, key: str | None = None, level: float = DEFAULT_LEVEL
) -> list[float] | None:
    """Wilson interval of one accuracy of ``record`` (``key``: its per-sample flag list)."""
    n = int(record.get("n_examples", 0))
    if n <= 0:
        return None
    return list(wilson_interval(_count(record, key, accuracy), n, level))


def add_accuracy_intervals(record: dict, level: float = DEFAULT_LEVEL) -> dict:
    """Add the interval keys to ``record`` (in place) and return it."""
    record["clean_accuracy_interval"] = accuracy_interval(
        record, record["clean_accuracy"], "clean_correct", level
    )
    for entry in record["attacks"]:
        entry["accuracy_interval"] = accuracy_interval(
            record, entry["accuracy"], entry["label"], level
        )
    record["robust_accuracy_interval"] = accuracy_interval(
        record, record["robust_accuracy"], "robust", level
    )
    record["interval_level"] = level
    record["interval_method"] = "wilson"
    return record


def interval_of(record: dict, which: str, level: float = DEFAULT_LEVEL) -> list[float] | None:
    """The stored interval of ``which`` (``"clean"``, ``"worst case"`` or an attack label), or one
    computed from the accuracy for a record without it."""
    if which == "clean":
        key, accuracy, flags = "clean_accuracy_interval", record["clean_accuracy"], "clean_correct"
        stored = record.get(key)
    elif which == "worst case":
        key, accuracy, flags = "robust_accuracy_interval", record["robust_accuracy"], "robust"
        stored = record.get(key)
    else:
        entry = next(e for e in record["attacks"] if e["label"] == which)
        accuracy, flags, stored = entry["accuracy"], which, entry.get("accuracy_interval")
    if stored is not None or "n_examples" not in record:
        return stored
    return accuracy_interval(record, accuracy, flags, level)
