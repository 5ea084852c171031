"""Config: typed fields, dotted overrides, JSON/TOML files, and clear errors for bad keys."""

from __future__ import annotations

import json

import pytest

from rlrobust.config import RunConfig, from_dict, iter_fields, load_config, set_by_path
from rlrobust.errors import ConfigError


def test_json_round_trip_gives_equal_config():
    cfg = load_config(overrides={"train.epochs": "7", "objective.options": '{"lam": 1.5}'})
    again = from_dict(RunConfig, json.loads(cfg.to_json()))
    assert again == cfg
    assert again.train.epochs == 7 and again.objective.options == {"lam": 1.5}


def test_overrides_are_converted_to_the_field_types():
    cfg = RunConfig()
    set_by_path(cfg, "optim.lr", "0.01")
    set_by_path(cfg, "two_stage.enabled", "true")
    set_by_path(cfg, "data.train_subset", "none")
    set_by_path(cfg, "optim.milestones", "[50, 150]")
    assert cfg.optim.lr == 0.01 and cfg.two_stage.enabled is True
    assert cfg.data.train_subset is None and cfg.optim.milestones == [50, 150]


@pytest.mark.parametrize(
    ("key", "value", "fragment"),
    [
        ("train.epoch", "3", "unknown config key 'train.epoch'"),
        ("nonsense", "3", "unknown config key 'nonsense'"),
        ("train.epochs", "three", "expects int"),
        ("objective.options", "{lam: 1}", "write it as JSON"),
        ("train", "3", "is a section"),
        ("train.epochs.x", "3", "goes too deep"),
    ],
)
def test_bad_override_names_the_problem(key, value, fragment):
    with pytest.raises(ConfigError) as caught:
        set_by_path(RunConfig(), key, value)
    assert fragment in str(caught.value)


def test_unknown_key_in_file_lists_valid_keys(tmp_path):
    path = tmp_path / "cfg.json"
    path.write_text(json.dumps({"train": {"epochs": 2, "learning_rate": 0.1}}))
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert "learning_rate" in str(caught.value) and "epochs" in str(caught.value)


def test_toml_file_and_command_line_override(tmp_path):
    path = tmp_path / "cfg.toml"
    path.write_text('[train]\nepochs = 4\nseed = 3\n[data]\nname = "digits"\n')
    cfg = load_config(path, {"train.seed": "5"})
    assert (cfg.train.epochs, cfg.train.seed, cfg.data.name) == (4, 5, "digits")


@pytest.mark.parametrize(
    "overrides",
    [
        {"train.epochs": 0},
        {"optim.schedule": "linear"},
        {"two_stage.switch_accuracy": 80},
        {"eval.attacks": '[{"settings": {}}]'},
        {"data.validation_fraction": 1.0},
    ],
)
def test_out_of_range_values_are_refused(overrides):
    with pytest.raises(ConfigError):
        load_config(overrides=overrides)


def test_missing_config_file_says_so(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "nope.json")


def test_every_field_has_help_text():
    missing = [key for key, _, _, help_text in iter_fields() if not help_text]
    assert missing == []
