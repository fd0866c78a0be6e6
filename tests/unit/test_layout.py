"""The package layout: the pipeline's stages import one way, with no cycles, also not inside functions.

Every ``import memadvise.x`` / ``from memadvise.x import y`` anywhere in a module (top level, inside a
function, under ``TYPE_CHECKING``) is an edge. Stages are the subpackages (``model``, ``capture``,
``analyzer``, ``planner``, ``check``, ``reporters``, ``cli``) and the top-level modules (``errors``,
``api``, …); dependencies point one way: cli → planner/reporters/check → analyzer/capture → model → errors.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "memadvise"

#: What each stage may import (besides itself). ``memadvise`` is the package's own ``__init__``: the
#: public facade, which nothing inside the package imports.
ALLOWED: dict[str, set[str]] = {
    "errors": set(),
    "_version": set(),
    "model": {"errors"},
    "capture": {"model", "errors"},
    "analyzer": {"model", "errors"},
    "api": {"capture", "model", "errors"},
    "planner": {"analyzer", "model", "errors"},
    "check": {"api", "capture", "model", "errors"},
    "reporters": {"planner", "check", "analyzer", "model", "errors", "_version"},
    "cli": {"reporters", "planner", "check", "api", "analyzer", "capture", "model", "errors", "_version"},
    "pytest_plugin": {"check"},
    "integrations": {"api", "errors", "model"},
    "__main__": {"cli"},
    "memadvise": {"api", "analyzer", "reporters", "model", "errors", "_version"},
}


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def imported(path: Path, name: str, known: Mapping[str, Path]) -> set[str]:
    """The memadvise modules ``path`` imports anywhere in it (a ``from`` import of a submodule counts
    as the submodule)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.split(".")[0] == "memadvise")
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                source = ".".join(base + ([node.module] if node.module else []))
            else:
                source = node.module or ""
            if source.split(".")[0] != "memadvise":
                continue
            subs = {f"{source}.{a.name}" for a in node.names} & set(known)
            found.update(subs or {source})
            if len(subs) < len(node.names):
                found.add(source)
    return found - {name}


def module_graph() -> dict[str, set[str]]:
    known = modules()
    return {name: imported(path, name, known) for name, path in known.items()}


def stage(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "memadvise"


def stage_graph(graph: Mapping[str, set[str]]) -> dict[str, set[str]]:
    stages: dict[str, set[str]] = {}
    for module, targets in graph.items():
        edges = stages.setdefault(stage(module), set())
        edges.update(stage(t) for t in targets if stage(t) != stage(module))
    return stages


def find_cycle(graph: Mapping[str, set[str]]) -> list[str]:
    """One cycle of ``graph`` as ``[a, b, …, a]``, or ``[]`` when there is none."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str]:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return path[path.index(nxt) :] + [nxt]
            if nxt not in state:
                cycle = visit(nxt)
                if cycle:
                    return cycle
        path.pop()
        state[node] = 2
        return []

    for start in sorted(graph):
        if start not in state:
            cycle = visit(start)
            if cycle:
                return cycle
    return []


def test_the_cycle_finder_finds_cycles() -> None:
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b", "c"}, "b": {"c"}, "c": set()}) == []


def test_function_level_imports_are_edges(tmp_path: Path) -> None:
    source = tmp_path / "program.py"
    source.write_text(
        "def build():\n    from memadvise.model.profile import CATEGORIES\n    return CATEGORIES\n"
    )
    known = {"memadvise.model.profile": source}
    assert imported(source, "memadvise.model.program", known) == {"memadvise.model.profile"}


def test_no_module_imports_itself_back() -> None:
    cycle = find_cycle(module_graph())
    assert not cycle, "import cycle: " + " → ".join(cycle)


def test_stages_import_one_way() -> None:
    stages = stage_graph(module_graph())
    assert set(stages) == set(ALLOWED), "a stage without a rule in ALLOWED (or a rule without a stage)"
    wrong = {s: sorted(targets - ALLOWED[s]) for s, targets in stages.items() if targets - ALLOWED[s]}
    assert not wrong, f"stages importing against the pipeline's direction: {wrong}"
    cycle = find_cycle(stages)
    assert not cycle, "stage cycle: " + " → ".join(cycle)


def test_stages_are_folders() -> None:
    top = sorted(p.name for p in PACKAGE.iterdir() if p.suffix == ".py")
    assert top == ["__init__.py", "__main__.py", "_version.py", "api.py", "errors.py", "pytest_plugin.py"]


@pytest.mark.parametrize("module", ["memadvise.model", "memadvise", "memadvise.pytest_plugin"])
def test_import_does_not_import_torch(module: str) -> None:
    code = f"import sys, {module}; print(sorted(m for m in ('torch', 'typer') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


COMMANDS_ON_A_SAVED_PROFILE = [
    ["report", "{profile}"],
    ["report", "{profile}", "--format", "html", "--output", "{folder}/report.html"],
    ["estimate", "{profile}", "--batch-size", "8", "--precision", "bf16-mixed"],
    ["plan", "{profile}", "--gpu", "24GB", "--format", "json"],
    ["plan", "{profile}", "--list-gpus"],
    ["estimate", "{profile}", "--gpus", "8", "--strategy", "zero3", "--offload", "optimizer"],
    ["plan", "{profile}", "--list-gpus", "--goal", "cheapest"],
]


@pytest.mark.parametrize("args", COMMANDS_ON_A_SAVED_PROFILE, ids=lambda a: " ".join(a[:1] + a[2:]))
def test_commands_on_a_saved_profile_do_not_import_torch(args: list[str], tmp_path: Path) -> None:
    from hand_built import hand_built_profile  # tests/ is on sys.path (tests/conftest.py)

    hand_built_profile().save(tmp_path / "profile.json")
    argv = [a.format(profile=tmp_path / "profile.json", folder=tmp_path) for a in args]
    code = (
        "import sys\nfrom memadvise.cli import main\n"
        f"sys.argv = ['memadvise', *{argv!r}]\n"
        "try:\n    main()\nexcept SystemExit as exit:\n    assert not exit.code, exit.code\n"
        "print('torch' in sys.modules, file=sys.stderr)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stderr.strip().splitlines()[-1] == "False"
