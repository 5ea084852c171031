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


def shell_commands(text: str) -> list[list[str]]:
    """Every `rlrobust ...` command in the bash blocks of ``text`` (torchrun's too), as argv."""
    import shlex

    commands = []
    for block in re.findall(r"```bash\n(.*?)```", text, flags=re.S):
        joined = re.sub(r"\\\n\s*", " ", block)
        pending = ""
        for line in joined.splitlines():
            pending = f"{pending} {line.strip()}" if pending else line.strip()
            try:
                words = shlex.split(pending, comments=True)
            except ValueError:  # a quoted argument goes on on the next line
                continue
            pending = ""
            while "&&" in words:  # `pip install ... && rlrobust demo`
                words = words[words.index("&&") + 1 :]
            if words[:1] == ["rlrobust"]:
                commands.append(words[1:])
            elif words[:1] == ["torchrun"] and "rlrobust" in words:
                commands.append(words[words.index("rlrobust") + 1 :])
    return commands


def test_every_documented_command_line_parses():
    """The README's and docs' `rlrobust` commands use options that exist (docs true to code)."""
    from rlrobust.commands import _build_parsers

    parser, _ = _build_parsers()
    docs = [README, *sorted((README.parent / "docs").glob("*.md"))]
    checked = 0
    for path in docs:
        for argv in shell_commands(path.read_text()):
            if "..." in argv or any(a.isupper() and len(a) > 2 for a in argv[:2]):
                continue  # a placeholder such as `rlrobust train ...`
            try:
                parser.parse_args(argv)
            except SystemExit as error:
                raise AssertionError(f"{path.name}: `rlrobust {' '.join(argv)}` does not parse") from error
            checked += 1
    assert checked >= 20
