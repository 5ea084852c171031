"""The README's Python example runs as written and does what it says."""

from __future__ import annotations

import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)


def test_readme_python_example_runs(capsys):
    blocks = python_blocks()
    assert blocks, "README.md has no python example"
    namespace: dict = {}
    exec(compile(blocks[0], str(README), "exec"), namespace)  # noqa: S102 - our own README
    record = namespace["record"]
    assert record["audit_passed"]
    assert 0.0 <= record["robust_accuracy"] <= record["clean_accuracy"] <= 1.0
    assert record["clean_accuracy"] > 0.5  # the example's training loop must actually train
    printed = capsys.readouterr().out.split()
    assert len(printed) == 3 and printed[2] == "True"


def test_readme_names_every_registered_model_and_objective():
    import rlrobust.models  # noqa: F401
    import rlrobust.objectives  # noqa: F401
    from rlrobust.registry import MODELS, OBJECTIVES

    text = README.read_text()
    missing = [name for name in [*MODELS.names(), *OBJECTIVES.names()] if f"`{name}`" not in text]
    assert missing == []
