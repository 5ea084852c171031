"""Is run A really more robust than run B? A paired comparison of two evaluations.

Two evaluations on *the same* test images can be compared image by image, which is far more
sensitive than comparing two accuracies with their own intervals: most images get the same
verdict from both models and only the discordant ones carry the difference. For clean accuracy,
worst-case (robust) accuracy and every attack the two runs share, ``compare_runs`` gives

- each run's accuracy with its 95 % Wilson interval over the test images,
- the paired difference A - B in percentage points with a paired bootstrap 95 % interval,
- McNemar's exact test (two-sided binomial test on the discordant images) with its counts,
- one sentence in words.

The test images must be the same: the per-sample verdicts are compared position by position, so
the function refuses two records whose images differ (their stored indices, their config's test
selection -- data set, ``data.test_subset`` with ``train.seed``, ``eval.n_examples`` with
``eval.seed`` -- or their labels).

``compare_command(run_a, run_b, name=..., json_output=..., out=...)`` is what the
``rlrobust compare`` command runs.
"""

from __future__ import annotations

import json
from pathlib import Path

from rlrobust.errors import RLRobustError, RunDirectoryError
from rlrobust.files import atomic_write_json, atomic_write_text
from rlrobust.stats import (
    DEFAULT_LEVEL,
    format_interval,
    mcnemar_exact,
    paired_bootstrap,
    wilson_interval,
)

CLEAN, WORST = "clean", "worst case"
#: per-sample keys that are not one attack's verdicts
NOT_ATTACKS = {"labels", "clean_correct", "robust", "indices"}


# --- reading ----------------------------------------------------------------------------------


def load_evaluation(source: str | Path, name: str = "evaluation") -> dict:
    """An evaluation record with its per-sample verdicts under ``per_sample``.

    ``source`` is a run directory (``NAME.json`` and ``NAME-per-sample.json`` inside it) or the
    path of an evaluation JSON file (its ``-per-sample.json`` twin beside it).
    """
    path = Path(source)
    record_path = path / f"{name}.json" if path.is_dir() else path
    if not record_path.is_file():
        found = (
            sorted(
                p.stem for p in path.glob("evaluation*.json") if not p.stem.endswith("-per-sample")
            )
            if path.is_dir()
            else []
        )
        hint = f" (it holds: {', '.join(found)}; pick one with --name)" if found else ""
        raise RunDirectoryError(
            f"{record_path} does not exist{hint}; evaluate the run first with "
            f"`rlrobust evaluate {path} --name {name}`, or give the evaluation's .json file"
        )
    record = json.loads(record_path.read_text())
    if "per_sample" not in record:
        twin = record_path.with_name(f"{record_path.stem}-per-sample.json")
        if not twin.is_file():
            raise RunDirectoryError(
                f"{twin} is missing: a paired comparison needs every test image's verdict; "
                f"re-run `rlrobust evaluate` to write it (it writes NAME-per-sample.json beside "
                "NAME.json)"
            )
        record["per_sample"] = json.loads(twin.read_text())
    if "clean_correct" not in record["per_sample"] or "robust" not in record["per_sample"]:
        raise RLRobustError(
            f"{record_path}: the per-sample verdicts lack clean_correct / robust; is it an "
            "evaluation record (written by `rlrobust evaluate`)?"
        )
    return record


# --- same test images? ------------------------------------------------------------------------


def image_selection(config: dict) -> dict:
    """Which test images an evaluation config selects (``load_test_split``'s inputs).

    ``data.test_subset`` is drawn with ``train.seed`` and ``eval.n_examples`` with ``eval.seed``,
    so two runs with different training seeds and a test subset see different images.
    """
    data, train, ev = config.get("data", {}), config.get("train", {}), config.get("eval", {})
    selection = {"data.name": data.get("name"), "data.test_subset": data.get("test_subset")}
    if selection["data.test_subset"] is not None:
        selection["train.seed"] = train.get("seed")
    selection["eval.n_examples"] = ev.get("n_examples")
    if selection["eval.n_examples"] is not None:
        selection["eval.seed"] = ev.get("seed")
    return selection


def _indices(record: dict):
    per_sample = record["per_sample"]
    return per_sample.get("indices", record.get("indices"))


def check_same_images(a: dict, b: dict, names: tuple[str, str] = ("A", "B")) -> list[str]:
    """Refuse two records that are not on the same test images; return what was checked."""
    fix = (
        "; a paired comparison needs both runs evaluated on the same test images: evaluate both "
        "with the same --eval.n_examples and --eval.seed (and the same data.test_subset and "
        "train.seed, or no data.test_subset)"
    )
    n_a, n_b = len(a["per_sample"]["clean_correct"]), len(b["per_sample"]["clean_correct"])
    if n_a != n_b:
        raise RLRobustError(
            f"{names[0]} was evaluated on {n_a} test images and {names[1]} on {n_b}{fix}"
        )
    if n_a == 0:
        raise RLRobustError("both evaluations hold no test image; there is nothing to compare")
    checked = ["count"]
    ia, ib = _indices(a), _indices(b)
    if ia is not None and ib is not None:
        if list(ia) != list(ib):
            first = next((i for i, (x, y) in enumerate(zip(ia, ib, strict=True)) if x != y), 0)
            raise RLRobustError(
                f"{names[0]} and {names[1]} are on different test images (their stored indices "
                f"differ, first at position {first}: {ia[first]} vs {ib[first]}){fix}"
            )
        checked.append("indices")
    if "config" in a and "config" in b:
        sa, sb = image_selection(a["config"]), image_selection(b["config"])
        if sa != sb:
            diff = ", ".join(
                f"{k} {sa.get(k)} vs {sb.get(k)}"
                for k in dict.fromkeys([*sa, *sb])
                if sa.get(k) != sb.get(k)
            )
            raise RLRobustError(
                f"{names[0]} and {names[1]} select different test images ({diff}){fix}"
            )
        checked.append("test selection in config")
    la, lb = a["per_sample"].get("labels"), b["per_sample"].get("labels")
    if la is not None and lb is not None:
        if list(la) != list(lb):
            first = next(i for i, (x, y) in enumerate(zip(la, lb, strict=True)) if x != y)
            raise RLRobustError(
                f"{names[0]} and {names[1]} are on different test images (labels differ, first at "
                f"position {first}: {la[first]} vs {lb[first]}){fix}"
            )
        checked.append("labels")
    return checked


# --- comparing --------------------------------------------------------------------------------


def _attack_settings(record: dict) -> dict[str, dict]:
    return {e["label"]: e.get("attack", {}) for e in record.get("attacks", [])}


def _format_p(p: float) -> str:
    if p >= 1.0:
        return "1"
    return f"{p:.2g}" if p < 1e-4 else f"{p:.4f}"


def _sentence(metric: str, row: dict, names: tuple[str, str], level: float, alpha: float) -> str:
    diff = 100 * row["difference"]
    low, high = (100 * v for v in row["difference_interval"])
    m = row["mcnemar"]
    if metric == CLEAN:
        what = "accurate on clean images"
    elif metric == WORST:
        what = "robust (worst case over its attacks)"
    else:
        what = f"robust against {metric}"
    ci = f"{100 * level:g} % CI"
    if diff > 0:
        head = f"{names[0]} is more {what} than {names[1]} by {diff:.2f} points"
        head += f" ({ci} [{low:.2f}, {high:.2f}])"
    elif diff < 0:  # said from the better run's side, with the interval turned round
        head = f"{names[1]} is more {what} than {names[0]} by {-diff:.2f} points"
        head += f" ({ci} [{-high:.2f}, {-low:.2f}])"
    else:
        head = f"{names[0]} and {names[1]} are equally {what}: difference 0.00 points"
        head += f" ({ci} [{low:.2f}, {high:.2f}])"
    verdict = (
        f"distinguishable from zero at the {alpha:g} level"
        if row["distinguishable"]
        else "not distinguishable from zero"
    )
    images = "image" if m["b_only"] == 1 else "images"
    counts = f"{names[0]} alone right on {m['a_only']}, {names[1]} alone on {m['b_only']} {images}"
    return f"{head}; McNemar p = {_format_p(m['p_value'])} ({counts}), {verdict}."


def _row(
    metric: str,
    flags_a: list[int],
    flags_b: list[int],
    *,
    names: tuple[str, str],
    level: float,
    alpha: float,
    n_resamples: int,
    seed: int,
) -> dict:
    n = len(flags_a)
    sides = {}
    for side, flags in (("a", flags_a), ("b", flags_b)):
        correct = sum(int(bool(f)) for f in flags)
        sides[side] = {
            "accuracy": correct / n,
            "correct": correct,
            "n": n,
            "interval": list(wilson_interval(correct, n, level)),
        }
    boot = paired_bootstrap(flags_a, flags_b, n_resamples=n_resamples, level=level, seed=seed)
    test = mcnemar_exact(flags_a, flags_b)
    row = {
        "metric": metric,
        **sides,
        "difference": boot["difference"],
        "difference_interval": boot["interval"],
        "mcnemar": test,
        "distinguishable": test["p_value"] < alpha,
    }
    row["sentence"] = _sentence(metric, row, names, level, alpha)
    return row


def compare_runs(
    record_a: dict,
    record_b: dict,
    *,
    names: tuple[str, str] = ("A", "B"),
    level: float = DEFAULT_LEVEL,
    alpha: float = 0.05,
    n_resamples: int = 10_000,
    seed: int = 0,
) -> dict:
    """Paired comparison of two evaluation records (each with its ``per_sample`` verdicts).

    Rows: clean, worst case, then every attack label both records hold with the same settings
    (and the same ``cascade`` order, since cascade accuracies are cumulative); attacks that
    cannot be paired are listed under ``skipped`` with the reason. Differences are A - B.
    ``n_resamples`` and ``seed`` set the bootstrap; ``alpha`` the McNemar verdict.
    """
    names = (str(names[0]), str(names[1]))
    for record, name in ((record_a, names[0]), (record_b, names[1])):
        if "per_sample" not in record:
            raise RLRobustError(
                f"{name}'s record has no per_sample verdicts; pass the record that `evaluate` "
                "returns, or use compare_run_dirs / load_evaluation to read NAME-per-sample.json"
            )
    checked = check_same_images(record_a, record_b, names)
    pa, pb = record_a["per_sample"], record_b["per_sample"]
    settings = dict(level=level, alpha=alpha, n_resamples=n_resamples, seed=seed, names=names)
    rows = [_row(CLEAN, pa["clean_correct"], pb["clean_correct"], **settings)]
    rows.append(_row(WORST, pa["robust"], pb["robust"], **settings))
    skipped, notes = [], []
    attacks_a, attacks_b = _attack_settings(record_a), _attack_settings(record_b)
    same_order = bool(record_a.get("cascade")) == bool(record_b.get("cascade"))
    for label, spec in attacks_a.items():
        if label not in attacks_b:
            skipped.append({"metric": label, "reason": f"only {names[0]} ran it"})
        elif label not in pa or label not in pb:
            skipped.append({"metric": label, "reason": "no per-sample verdicts stored"})
        elif spec != attacks_b[label]:
            keys = [
                k
                for k in dict.fromkeys([*spec, *attacks_b[label]])
                if spec.get(k) != attacks_b[label].get(k)
            ]
            diff = ", ".join(f"{k} {spec.get(k)} vs {attacks_b[label].get(k)}" for k in keys)
            skipped.append({"metric": label, "reason": f"different settings ({diff})"})
        elif not same_order:
            skipped.append(
                {"metric": label, "reason": "one run used cascade order (cumulative accuracies)"}
            )
        else:
            rows.append(_row(label, pa[label], pb[label], **settings))
    skipped += [
        {"metric": label, "reason": f"only {names[1]} ran it"}
        for label in attacks_b
        if label not in attacks_a
    ]
    if set(attacks_a) != set(attacks_b):
        notes.append(
            "the worst case is over each run's own attacks, which differ: "
            f"{names[0]} {sorted(attacks_a)}, {names[1]} {sorted(attacks_b)}"
        )
    return {
        "a": {"name": names[0], "source": record_a.get("source")},
        "b": {"name": names[1], "source": record_b.get("source")},
        "n_examples": len(pa["clean_correct"]),
        "same_images_checked": checked,
        "level": level,
        "alpha": alpha,
        "bootstrap": {"n_resamples": int(n_resamples), "seed": seed, "method": "paired percentile"},
        "rows": rows,
        "skipped": skipped,
        "notes": notes,
    }


def compare_run_dirs(
    run_a: str | Path, run_b: str | Path, *, name: str = "evaluation", **options
) -> dict:
    """``compare_runs`` on the evaluation ``name`` of two run directories (or two JSON files).

    ``options`` go to ``compare_runs`` (``level``, ``alpha``, ``n_resamples``, ``seed``,
    ``names``; the names default to the folders' names).
    """
    record_a, record_b = load_evaluation(run_a, name), load_evaluation(run_b, name)
    label_a, label_b = (Path(p).name if Path(p).is_dir() else Path(p).stem for p in (run_a, run_b))
    if label_a == label_b:  # two folders of one name: the full paths tell them apart
        label_a, label_b = str(run_a), str(run_b)
    options.setdefault("names", (label_a, label_b))
    record_a["source"], record_b["source"] = str(run_a), str(run_b)
    return compare_runs(record_a, record_b, **options)


# --- output -----------------------------------------------------------------------------------


def comparison_markdown(result: dict) -> str:
    """The comparison as markdown: one table row per metric, then the sentences."""
    a, b = result["a"]["name"], result["b"]["name"]
    level = f"{100 * result['level']:g} %"
    lines = [
        f"# {a} vs {b}",
        "",
        f"Paired comparison on the same {result['n_examples']} test images (checked: "
        f"{', '.join(result['same_images_checked'])}). Accuracies in % with their {level} Wilson "
        f"interval; {a} - {b} in percentage points with a {level} paired bootstrap interval "
        f"({result['bootstrap']['n_resamples']} resamples, seed {result['bootstrap']['seed']}); "
        "McNemar's exact test on the images only one run gets right.",
        "",
        f"| metric | {a} | {b} | {a} - {b} (points) | right only for {a} / {b} | McNemar p |",
        "|---|---|---|---|---|---|",
    ]
    for row in result["rows"]:
        m = row["mcnemar"]
        cells = [
            row["metric"],
            f"{100 * row['a']['accuracy']:.2f} {format_interval(row['a']['interval'])}",
            f"{100 * row['b']['accuracy']:.2f} {format_interval(row['b']['interval'])}",
            f"{100 * row['difference']:+.2f} {format_interval(row['difference_interval'], 100, 2)}",
            f"{m['a_only']} / {m['b_only']}",
            _format_p(m["p_value"]) + (" *" if row["distinguishable"] else ""),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", f"\\* p < {result['alpha']:g}.", ""]
    lines += [f"- {row['sentence']}" for row in result["rows"]]
    if result["skipped"]:
        lines += ["", "Not compared:"]
        lines += [f"- `{s['metric']}`: {s['reason']}" for s in result["skipped"]]
    if result["notes"]:
        lines += ["", "Notes:", *[f"- {note}" for note in result["notes"]]]
    return "\n".join(lines) + "\n"


def write_comparison(result: dict, out: str | Path) -> dict[str, Path]:
    """``compare.json`` and ``compare.md`` in the folder ``out``."""
    out = Path(out)
    return {
        "json": atomic_write_json(out / "compare.json", result),
        "markdown": atomic_write_text(out / "compare.md", comparison_markdown(result)),
    }


def compare_command(
    run_a: str | Path,
    run_b: str | Path,
    *,
    name: str = "evaluation",
    json_output: bool = False,
    out: str | Path | None = None,
    n_resamples: int = 10_000,
    seed: int = 0,
) -> str:
    """``rlrobust compare RUN_A RUN_B [--name NAME] [--json] [--out DIR]``: compare, write
    ``DIR/compare.{json,md}`` when ``out`` is given, and return the text to print (the JSON
    record with ``json_output``, else the markdown)."""
    result = compare_run_dirs(run_a, run_b, name=name, n_resamples=n_resamples, seed=seed)
    if out is not None:
        write_comparison(result, out)
    return json.dumps(result, indent=2) if json_output else comparison_markdown(result)
