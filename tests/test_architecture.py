"""The house rules of the import graph: no circles, and layers that only import downward.

Every ``import`` in ``src/rlrobust`` counts, including the ones inside functions (a lazy import
still ties two modules together); only imports under ``if TYPE_CHECKING:`` are left out.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"
PACKAGE = "rlrobust"

# Lower layers never import higher ones (DESIGN principle 9: attacks and evaluation never import
# training). Each entry lists the top-level parts of rlrobust it must not import.
FORBIDDEN = {
    "attacks": {"training", "evaluation", "diagnostics", "experiments", "reporting", "commands"},
    "evaluation": {"training", "experiments", "commands"},
    "runs": {"training", "attacks", "evaluation", "diagnostics", "experiments", "reporting"},
    "devices": {"training", "attacks", "evaluation", "runs", "models", "data"},
    "weights": {"training", "attacks", "evaluation", "runs"},
    "data": {"training", "attacks", "evaluation", "models", "runs"},
    "models": {"training", "attacks", "evaluation", "runs"},
    "objectives": {"training", "attacks", "evaluation", "runs"},
    "training": {"experiments", "reporting", "commands"},
    "diagnostics": {"training", "experiments", "commands"},
}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def all_modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted((SRC / PACKAGE).rglob("*.py"))}


def _type_checking_block(node: ast.AST) -> bool:
    test = getattr(node, "test", None)
    return isinstance(node, ast.If) and (
        (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING")
        or (isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")
    )


def imported_modules(name: str, path: Path, known: set[str]) -> set[str]:
    """The rlrobust modules that ``name`` imports: ``from a.b import c`` counts a.b (whose
    ``__init__`` runs first) and also a.b.c when that is a module."""
    is_package = path.name == "__init__.py"
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        if _type_checking_block(node):
            return
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = name.split(".")
                anchor = anchor if is_package else anchor[:-1]
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            found.add(base)
            for alias in node.names:
                candidate = f"{base}.{alias.name}"
                if candidate in known:
                    found.add(candidate)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(ast.parse(path.read_text(), filename=str(path)))
    return {m for m in found if m in known and m != name}


def import_graph() -> dict[str, set[str]]:
    modules = all_modules()
    known = set(modules)
    return {name: imported_modules(name, path, known) for name, path in modules.items()}


def strongly_connected(graph: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's algorithm: the components with more than one module (the import circles)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    circles: list[list[str]] = []

    def connect(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph[node]):
            if target not in index:
                connect(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                circles.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            connect(node)
    return circles


def top_part(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def test_the_walker_sees_lazy_and_relative_imports(tmp_path):
    """A planted circle through a function-level import is found (the check can fail)."""
    package = tmp_path / "pkg"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "a.py").write_text("def f():\n    from pkg.b import g\n    return g\n")
    (package / "b.py").write_text("from . import a\n\ndef g():\n    return a\n")
    (package / "c.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from pkg import a\n"
    )
    paths = {f"pkg.{p.stem}" if p.stem != "__init__" else "pkg": p for p in package.glob("*.py")}
    graph = {name: imported_modules(name, path, set(paths)) for name, path in paths.items()}
    assert graph["pkg.a"] == {"pkg.b"}
    assert graph["pkg.b"] == {"pkg", "pkg.a"}  # `from . import a` runs pkg's __init__ too
    assert graph["pkg.c"] == set()
    assert strongly_connected(graph) == [["pkg.a", "pkg.b"]]
    # A package whose __init__ imports a module that imports the package back is a circle too.
    (package / "__init__.py").write_text("from pkg import d\n")
    (package / "d.py").write_text("from pkg import a\n")  # pkg's __init__ runs first
    paths["pkg.d"] = package / "d.py"
    graph = {name: imported_modules(name, path, set(paths)) for name, path in paths.items()}
    assert any({"pkg", "pkg.d"} <= set(c) for c in strongly_connected(graph))


def test_no_import_circles_in_src():
    circles = strongly_connected(import_graph())
    assert not circles, "import circles (break each by moving the shared code down a layer):\n" + (
        "\n".join(" <-> ".join(c) for c in circles)
    )


@pytest.mark.parametrize("part", sorted(FORBIDDEN))
def test_layers_import_only_downward(part):
    graph = import_graph()
    offending = sorted(
        f"{source} imports {target}"
        for source, targets in graph.items()
        if top_part(source) == part
        for target in targets
        if top_part(target) in FORBIDDEN[part]
    )
    assert not offending, f"{part} must not import {sorted(FORBIDDEN[part])}:\n" + "\n".join(
        offending
    )


def test_every_module_is_seen():
    """The walker finds the whole package (a broken glob would make the checks above vacuous)."""
    modules = all_modules()
    assert {"rlrobust.runs", "rlrobust.attacks.transfer", "rlrobust.training.run"} <= set(modules)
    assert len(modules) > 80
