"""Paired comparison of two evaluations: planted differences caught, identical runs, refusals."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from scipy import stats as sps

from rlrobust.compare import compare_command, compare_run_dirs, compare_runs, load_evaluation
from rlrobust.config import load_config
from rlrobust.data import load_dataset
from rlrobust.errors import RLRobustError
from rlrobust.evaluation.protocol import evaluate
from rlrobust.evaluation.report import write_evaluation
from rlrobust.models import build_model

pytestmark = pytest.mark.usefixtures("one_torch_thread")

N = 500
CONFIG = {"data": {"name": "mnist", "test_subset": None}, "train": {"seed": 0}, "eval": {}}


def record(clean, attacks: dict, labels=None, config=None, settings=None) -> dict:
    """A record shaped like ``evaluate``'s output (per-sample flags inside)."""
    clean = [int(v) for v in clean]
    flags = {k: [int(c and v) for c, v in zip(clean, f, strict=True)] for k, f in attacks.items()}
    robust = list(clean)
    for f in flags.values():
        robust = [r & v for r, v in zip(robust, f, strict=True)]
    settings = settings or {}
    return {
        "n_examples": len(clean),
        "cascade": False,
        "clean_accuracy": float(np.mean(clean)),
        "robust_accuracy": float(np.mean(robust)),
        "attacks": [
            {
                "label": k,
                "attack": settings.get(k, {"name": k, "eps": 0.1}),
                "accuracy": float(np.mean(f)),
            }
            for k, f in flags.items()
        ],
        "config": json.loads(json.dumps(config or CONFIG)),
        "per_sample": {
            "labels": list(labels) if labels is not None else [i % 10 for i in range(len(clean))],
            "clean_correct": clean,
            **flags,
            "robust": robust,
        },
    }


@pytest.fixture
def pair():
    """B is A fooled by FGSM on 30 more of A's FGSM-robust points; clean verdicts identical."""
    rng = np.random.default_rng(0)
    clean = rng.random(N) < 0.9
    fgsm_a = rng.random(N) < 0.6
    fgsm_b = fgsm_a.copy()
    fgsm_b[np.flatnonzero(clean & fgsm_a)[:30]] = False
    return record(clean, {"fgsm": fgsm_a}), record(clean, {"fgsm": fgsm_b})


def _rows(result) -> dict:
    return {row["metric"]: row for row in result["rows"]}


def test_planted_difference_is_caught(pair):
    result = compare_runs(*pair, names=("ours", "theirs"))
    rows = _rows(result)
    assert list(rows) == ["clean", "worst case", "fgsm"]
    for metric in ("fgsm", "worst case"):
        row = rows[metric]
        assert row["difference"] == pytest.approx(30 / N)
        assert (row["mcnemar"]["a_only"], row["mcnemar"]["b_only"]) == (30, 0)
        assert row["mcnemar"]["p_value"] == pytest.approx(sps.binomtest(30, 30).pvalue)
        assert row["mcnemar"]["p_value"] < 0.05 and row["distinguishable"]
        low, high = row["difference_interval"]
        assert 0 < low < 30 / N < high
        assert "distinguishable from zero at the 0.05 level" in row["sentence"]
    sentence = rows["fgsm"]["sentence"]
    assert sentence.startswith("ours is more robust against fgsm than theirs by 6.00 points")
    assert "ours alone right on 30, theirs alone on 0 images" in sentence
    # Clean verdicts are identical: no difference, p = 1.
    clean = rows["clean"]
    assert clean["difference"] == 0.0 and clean["mcnemar"]["p_value"] == 1.0
    assert "equally accurate" in clean["sentence"]
    assert "not distinguishable from zero" in clean["sentence"]
    # Each side carries its Wilson interval over the test images.
    a = rows["fgsm"]["a"]
    ref = sps.binomtest(a["correct"], N).proportion_ci(method="wilson")
    assert a["interval"] == pytest.approx([ref.low, ref.high], abs=1e-12)


def test_a_worse_run_is_named_first_in_the_sentence(pair):
    result = compare_runs(pair[1], pair[0], names=("theirs", "ours"))
    row = _rows(result)["fgsm"]
    assert row["difference"] == pytest.approx(-30 / N)
    assert row["sentence"].startswith("ours is more robust against fgsm than theirs by 6.00")
    low, high = row["difference_interval"]
    assert f"[{-100 * high:.2f}, {-100 * low:.2f}]" in row["sentence"]


def test_a_small_difference_is_not_distinguishable():
    rng = np.random.default_rng(1)
    clean = rng.random(N) < 0.9
    fgsm_a = rng.random(N) < 0.6
    fgsm_b = fgsm_a.copy()
    fgsm_b[np.flatnonzero(clean & fgsm_a)[:3]] = False  # 3 points: p = 0.25
    row = _rows(compare_runs(record(clean, {"fgsm": fgsm_a}), record(clean, {"fgsm": fgsm_b})))
    assert row["fgsm"]["mcnemar"]["p_value"] == pytest.approx(0.25)
    assert not row["fgsm"]["distinguishable"]
    assert "not distinguishable from zero" in row["fgsm"]["sentence"]


def test_identical_runs(pair):
    result = compare_runs(pair[0], pair[0])
    for row in result["rows"]:
        assert row["difference"] == 0.0 and row["difference_interval"] == [0.0, 0.0]
        assert row["mcnemar"]["p_value"] == 1.0
        assert (row["mcnemar"]["a_only"], row["mcnemar"]["b_only"]) == (0, 0)
    assert not result["skipped"] and not result["notes"]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ("count", "evaluated on 500 test images and B on 499"),
        ("labels", "labels differ, first at position 0"),
        ("seed", "eval.seed 0 vs 1"),
        ("subset_seed", "train.seed 0 vs 1"),
        ("indices", "stored indices differ"),
    ],
)
def test_different_test_images_are_refused(pair, change, message):
    a, b = pair
    b = json.loads(json.dumps(b))
    if change == "count":
        for key, flags in b["per_sample"].items():
            b["per_sample"][key] = flags[:-1]
    elif change == "labels":
        b["per_sample"]["labels"][0] += 1
    elif change == "seed":
        a["config"]["eval"].update(n_examples=N, seed=0)
        b["config"]["eval"].update(n_examples=N, seed=1)
    elif change == "subset_seed":
        for rec, seed in ((a, 0), (b, 1)):  # a test subset is drawn with the training seed
            rec["config"]["data"]["test_subset"] = N
            rec["config"]["train"]["seed"] = seed
    else:
        a["per_sample"]["indices"] = list(range(N))
        b["per_sample"]["indices"] = list(range(1, N + 1))
    with pytest.raises(RLRobustError, match="same test images") as error:
        compare_runs(a, b)
    assert message in str(error.value)


def test_training_seed_alone_does_not_change_the_images(pair):
    a, b = pair
    b["config"]["train"]["seed"] = 7  # no data.test_subset: every run sees the whole test set
    assert compare_runs(a, b)["same_images_checked"] == [
        "count",
        "test selection in config",
        "labels",
    ]


def test_attacks_that_cannot_be_paired_are_skipped_with_a_reason():
    rng = np.random.default_rng(2)
    clean = rng.random(N) < 0.9
    f = rng.random(N) < 0.5
    a = record(clean, {"fgsm": f, "pgd": f, "square": f})
    b = record(
        clean,
        {"fgsm": f, "pgd": f, "mpgd": f},
        settings={"pgd": {"name": "pgd", "eps": 0.3}},
    )
    result = compare_runs(a, b)
    assert [row["metric"] for row in result["rows"]] == ["clean", "worst case", "fgsm"]
    reasons = {s["metric"]: s["reason"] for s in result["skipped"]}
    assert reasons["pgd"] == "different settings (eps 0.1 vs 0.3)"
    assert reasons["square"] == "only A ran it" and reasons["mpgd"] == "only B ran it"
    assert "worst case is over each run's own attacks" in result["notes"][0]


def test_a_record_without_per_sample_verdicts_is_refused(pair):
    bare = {k: v for k, v in pair[0].items() if k != "per_sample"}
    with pytest.raises(RLRobustError, match="no per_sample verdicts"):
        compare_runs(bare, pair[1])


# --- from files: the records `rlrobust evaluate` writes -----------------------------------------


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory):
    """Two untrained MLPs (different init seeds) evaluated with FGSM on 80 digits images, written
    by ``write_evaluation`` exactly as `rlrobust evaluate` does."""
    root = tmp_path_factory.mktemp("compare")
    data = load_dataset("digits", "test").take(80, seed=0)
    cfg = load_config(overrides={"data.name": "digits", "model.name": "mlp"})
    dirs = []
    for seed in (0, 1):
        torch.manual_seed(seed)
        model = build_model(
            "mlp", num_classes=10, in_channels=1, image_size=8, mean=data.mean, std=data.std
        )
        result = {"evaluation": evaluate(model, data, [{"name": "fgsm", "settings": {"eps": 0.1}}])}
        run = root / f"run{seed}"
        write_evaluation(run, "evaluation", result, cfg, title=run.name)
        dirs.append(run)
    return dirs


def test_compare_run_dirs_reads_the_written_files(two_runs, tmp_path):
    a, b = two_runs
    result = compare_run_dirs(a, b, n_resamples=500)
    assert (result["a"]["name"], result["b"]["name"]) == ("run0", "run1")
    assert result["n_examples"] == 80
    rows = _rows(result)
    assert list(rows) == ["clean", "worst case", "fgsm"]
    written = json.loads((a / "evaluation.json").read_text())
    assert rows["clean"]["a"]["accuracy"] == pytest.approx(written["clean_accuracy"])
    assert rows["clean"]["a"]["interval"] == pytest.approx(written["clean_accuracy_interval"])
    assert rows["fgsm"]["b"]["interval"] == pytest.approx(
        json.loads((b / "evaluation.json").read_text())["attacks"][0]["accuracy_interval"]
    )
    json.dumps(result)  # a JSON-serialisable record


def test_compare_command_prints_and_writes(two_runs, tmp_path):
    a, b = two_runs
    text = compare_command(a, b, out=tmp_path / "cmp", n_resamples=200)
    assert text.startswith("# run0 vs run1")
    assert "| fgsm |" in text and "McNemar p" in text
    assert (tmp_path / "cmp" / "compare.md").read_text() == text
    record = json.loads((tmp_path / "cmp" / "compare.json").read_text())
    assert json.loads(compare_command(a, b, json_output=True, n_resamples=200)) == record


def test_missing_files_are_named_with_the_fix(two_runs, tmp_path):
    a, _ = two_runs
    with pytest.raises(RLRobustError, match=r"it holds: evaluation; pick one with --name"):
        load_evaluation(a, "standard")
    lonely = tmp_path / "lonely.json"
    lonely.write_text((a / "evaluation.json").read_text())
    with pytest.raises(RLRobustError, match="needs every test image's verdict"):
        load_evaluation(lonely)


def test_the_compare_command_line(two_runs, tmp_path, capsys):
    from rlrobust.commands import main

    a, b = two_runs
    code = main(
        ["compare", str(a), str(b), "--json", "--resamples", "200", "--out", str(tmp_path / "c")]
    )
    assert code == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed == json.loads((tmp_path / "c" / "compare.json").read_text())
    assert main(["compare", str(a), str(tmp_path / "nowhere")]) == 2
    assert "error" in capsys.readouterr().err
