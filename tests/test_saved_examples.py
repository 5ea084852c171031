"""Saved adversarial examples: written by the protocol, replayed by the `saved` attack on any
model, audited against eps and [0, 1], and checked against a plain classification loop."""

from __future__ import annotations

import json

import pytest
import torch

from rlrobust.attacks import FGSM, PGD, SavedExamples, audit_examples, load_examples
from rlrobust.attacks.saved import ExampleSet, save_examples
from rlrobust.data import load_dataset
from rlrobust.errors import ConfigError, DataError
from rlrobust.evaluation.protocol import WORST_CASE_FILE, evaluate


@pytest.fixture(scope="module")
def models(digits_mlp):
    return digits_mlp(0), digits_mlp(1)


@pytest.fixture(scope="module")
def data():
    return load_dataset("digits", "test").take(96, seed=0)


ATTACKS = [
    {"name": "fgsm", "label": "fgsm", "settings": {"eps": 0.1}},
    {"name": "pgd", "label": "pgd", "settings": {"eps": 0.1, "steps": 10, "step_size": 0.025}},
]


@pytest.fixture(scope="module")
def saved(models, data, tmp_path_factory):
    folder = tmp_path_factory.mktemp("examples")
    record = evaluate(models[0], data, ATTACKS, batch_size=40, save_examples=folder)
    return record, folder


def test_files_hold_exactly_the_fooled_points(saved, data):
    record, folder = saved
    per_sample = record["per_sample"]
    assert set(record["saved_examples"]["files"]) == {"fgsm", "pgd"}
    for label, name in record["saved_examples"]["files"].items():
        examples = load_examples(folder / name)
        fooled = [
            i
            for i, (ok, kept) in enumerate(
                zip(per_sample["clean_correct"], per_sample[label], strict=True)
            )
            if ok and not kept
        ]
        assert examples.index.tolist() == fooled
        assert torch.equal(examples.x, data.images[fooled].float() / 255)
        assert torch.equal(examples.y, data.labels[fooled])
        assert examples.meta["attack"]["name"] == label and examples.eps == 0.1
        assert audit_examples(examples)["passed"]
    worst = load_examples(folder / WORST_CASE_FILE)
    robust = per_sample["robust"]
    clean = per_sample["clean_correct"]
    assert worst.index.tolist() == [i for i in range(len(data)) if clean[i] and not robust[i]]
    # The worst case of a point is the first attack in the list that fooled it.
    first = [0 if not per_sample["fgsm"][i] else 1 for i in worst.index.tolist()]
    assert worst.attack_id.tolist() == first and worst.kind == "worst-case"


def test_replay_gives_the_same_verdicts_on_the_same_model(saved, models, data):
    record, folder = saved
    files = record["saved_examples"]["files"]
    replay_specs = [
        {"name": "saved", "label": label, "settings": {"path": str(folder / name)}}
        for label, name in files.items()
    ]
    replay = evaluate(models[0], data, replay_specs, batch_size=17)  # another batch size
    for label in files:
        assert replay["per_sample"][label] == record["per_sample"][label]
    assert replay["audit_passed"]
    worst = evaluate(models[0], data, [SavedExamples(folder / WORST_CASE_FILE)], batch_size=96)
    assert worst["per_sample"]["robust"] == record["per_sample"]["robust"]


def test_replay_matches_points_by_content_in_any_order(saved, models, data):
    record, folder = saved
    order = list(reversed(range(len(data))))
    replay = evaluate(
        models[0], data.subset(order), [SavedExamples(folder / WORST_CASE_FILE)], batch_size=30
    )
    assert replay["per_sample"]["robust"] == [record["per_sample"]["robust"][i] for i in order]


def test_transfer_to_another_model_agrees_with_a_plain_classification(saved, models, data):
    """Cross-check with another tool: torch alone, on the file's own tensors."""
    record, folder = saved
    other = models[1]
    examples = load_examples(folder / WORST_CASE_FILE)
    replay = evaluate(other, data, [SavedExamples(folder / WORST_CASE_FILE)], batch_size=50)
    with torch.no_grad():
        clean_ok = other(data.images.float() / 255).argmax(1) == data.labels
        adv_ok = other(examples.x_adv).argmax(1) == examples.y
    expected = clean_ok.clone()
    expected[examples.index] &= adv_ok
    assert replay["per_sample"]["robust"] == expected.int().tolist()
    # Transferred examples fool the second model less often than the model they were made on.
    assert replay["robust_accuracy"] > record["robust_accuracy"]


def test_audit_catches_tampered_examples(saved, models, data, tmp_path):
    _, folder = saved
    examples = load_examples(folder / "attack-pgd.safetensors")
    far = ExampleSet(**{**examples.__dict__, "x_adv": (examples.x + 0.3).clamp(0, 1)})
    out_of_range = ExampleSet(**{**examples.__dict__, "x_adv": examples.x_adv + 2.0})
    save_examples(tmp_path / "far.safetensors", far)
    save_examples(tmp_path / "range.safetensors", out_of_range)
    assert not audit_examples(tmp_path / "far.safetensors")["passed"]
    assert "leave the linf ball" in audit_examples(far)["problems"][0]
    assert "outside [0, 1]" in " ".join(audit_examples(out_of_range)["problems"])
    # Replayed through the protocol, the audit fails too (the replay never projects).
    record = evaluate(models[0], data, [SavedExamples(tmp_path / "far.safetensors")])
    assert not record["audit_passed"]
    # A smaller eps than the examples were made for is an audit failure as well.
    assert not audit_examples(examples, eps=0.05)["passed"]


def test_bad_files_and_settings_are_refused(saved, tmp_path, models, data):
    from safetensors.torch import save_file

    _, folder = saved
    with pytest.raises(DataError, match="no saved examples"):
        load_examples(tmp_path / "missing.safetensors")
    save_file({"w": torch.zeros(2)}, str(tmp_path / "weights.safetensors"))
    with pytest.raises(DataError, match="not a file of saved adversarial examples"):
        load_examples(tmp_path / "weights.safetensors")
    (tmp_path / "junk.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(DataError, match="not a readable safetensors file"):
        load_examples(tmp_path / "junk.safetensors")
    with pytest.raises(ConfigError, match="exactly one of path"):
        SavedExamples()
    attack = SavedExamples(folder / "attack-pgd.safetensors")
    x = attack.examples.x[:3]
    with pytest.raises(DataError, match="not its labels"):
        attack(models[0], x, (attack.examples.y[:3] + 1) % 10)


def test_cascade_with_batches_an_attack_never_runs_on(models, data, tmp_path):
    # PGD at eps 0.3 fools (nearly) every point, so FGSM has no points left in most batches.
    attacks = [PGD(eps=0.3, steps=10, step_size=0.075), FGSM(eps=0.1)]
    record = evaluate(models[0], data, attacks, batch_size=4, cascade=True, save_examples=tmp_path)
    fgsm = load_examples(tmp_path / "attack-fgsm.safetensors")
    assert len(fgsm) == record["per_sample"]["pgd"].count(1) - record["per_sample"]["fgsm"].count(1)
    replay = evaluate(models[0], data, [SavedExamples(tmp_path / WORST_CASE_FILE)], batch_size=96)
    assert replay["per_sample"]["robust"] == record["per_sample"]["robust"]


def test_record_lists_the_files_and_is_json(saved):
    record, folder = saved
    listed = json.loads(json.dumps(record["saved_examples"]))
    assert listed["worst_case"] == WORST_CASE_FILE
    assert sorted(p.name for p in folder.iterdir()) == sorted(
        [*listed["files"].values(), WORST_CASE_FILE]
    )


def test_saved_attack_object_in_a_protocol_call_without_files(models, data):
    """Attacks given as objects work too, and a points-free replay changes nothing."""
    empty = ExampleSet(
        x_adv=torch.empty(0, 1, 8, 8),
        x=torch.empty(0, 1, 8, 8),
        y=torch.empty(0, dtype=torch.int64),
        index=torch.empty(0, dtype=torch.int64),
        eps=0.1,
        norm="linf",
    )
    record = evaluate(models[0], data, [SavedExamples(examples=empty), FGSM(eps=0.0)])
    assert record["robust_accuracy"] == record["clean_accuracy"]
    assert PGD(eps=0.1).name == "pgd"
