"""The layout is the architecture: imports point one way, nothing imports in a circle, the kit never
imports the stand-ins, and every shared value has one owner.

Read from the source with `ast` (every import, also those inside functions), so a lazy import
cannot hide a cycle or a wrong-way dependency.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import nbformat
import pytest

from diversity_monitor import conventions
from helpers.paths import NOTEBOOKS, ROOT

PACKAGE = ROOT / "monitor_src" / "diversity_monitor"

# Lower layers first; a module may import its own package or a lower layer, never a higher one.
LAYERS = [
    {"conventions", "clock", "storage", "cli"},
    {"aws"},
    {"measures", "recommender"},
    {"capture"},
    {"job"},
    {"setup"},
    {"oncall"},
    {"local"},
    {"demo"},
]
RANK = {part: rank for rank, parts in enumerate(LAYERS) for part in parts}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(path): path for path in PACKAGE.rglob("*.py")}


def imports_of(path: Path) -> set[str]:
    """The package's modules that `path` imports, at any depth of its code."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("diversity_monitor"):
            for alias in node.names:
                candidate = f"{node.module}.{alias.name}"
                found.add(candidate if candidate in MODULES else node.module)
        elif isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names if alias.name.startswith("diversity_monitor")}
    return found


GRAPH = {name: imports_of(path) - {name} for name, path in MODULES.items()}


def part_of(module: str) -> str | None:
    """`diversity_monitor.job.replay` -> `job`; the package itself -> None."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else None


def test_every_part_of_the_package_has_a_layer():
    assert {part_of(name) for name in MODULES} - {None} == set(RANK)


def test_imports_point_down_the_layers():
    wrong = sorted(
        f"{source} imports {target}"
        for source, targets in GRAPH.items() for target in targets
        if part_of(source) and part_of(target) and part_of(source) != part_of(target)
        and RANK[part_of(target)] > RANK[part_of(source)]
    )
    assert not wrong, "\n".join(wrong)


def test_no_module_outside_local_and_the_demo_imports_the_stand_ins():
    reaching = sorted(source for source, targets in GRAPH.items()
                      if part_of(source) not in ("local", "demo") and any(part_of(t) == "local" for t in targets))
    assert not reaching


def test_no_import_cycles():
    # Tarjan's strongly connected components over the module graph.
    index, low, stack, on_stack, cycles, counter = {}, {}, [], set(), [], [0]

    def visit(node: str) -> None:
        index[node] = low[node] = counter[0]
        counter[0] += 1
        stack.append(node)
        on_stack.add(node)
        for target in GRAPH.get(node, ()):
            if target not in MODULES:
                continue
            if target not in index:
                visit(target)
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
                cycles.append(sorted(component))

    for name in sorted(MODULES):
        if name not in index:
            visit(name)
    assert not cycles


def test_the_layout_check_sees_a_wrong_way_import(tmp_path):
    """The checks read what is written: a setup module importing oncall would be caught."""
    probe = tmp_path / "probe.py"
    probe.write_text("def f():\n    from diversity_monitor.oncall import incident\n")
    assert "diversity_monitor.oncall.incident" in imports_of(probe)
    assert RANK["oncall"] > RANK["setup"]


# --- one owner for each shared value ---------------------------------------------------------

OWNED_LITERALS = {
    conventions.REPLAY_INFERENCE_PREFIX: "the replay InferenceId prefix",
    conventions.VIOLATIONS_FILE: "the violations file name",
    conventions.METRICS_NAMESPACE: "the metrics namespace",
    conventions.NO_CAPTURE_FAILURE: "the platform's no-capture FailureReason",
    "top10_category_diversity_mean": "a metric name (derive it: conventions.diversity_metric(k))",
}


def code_strings(path: Path) -> set[str]:
    """String constants in code (docstrings left out: prose may name a value it does not define)."""
    tree = ast.parse(path.read_text())
    docstrings = {id(node.body[0].value) for node in ast.walk(tree)
                  if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
                  and node.body and isinstance(node.body[0], ast.Expr) and isinstance(node.body[0].value, ast.Constant)}
    return {node.value for node in ast.walk(tree)
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings}


@pytest.mark.parametrize("literal, what", OWNED_LITERALS.items())
def test_shared_values_are_written_only_in_conventions(literal, what):
    writers = sorted(name for name, path in MODULES.items()
                     if name != "diversity_monitor.conventions" and literal in code_strings(path))
    assert not writers, f"{what} is written out in {writers}; import it from diversity_monitor.conventions"


def test_the_default_floor_is_written_only_in_conventions():
    floor = re.compile(r"(min_diversity[^=\n]*=\s*|--min-diversity.*default=)4(\.0)?\b")
    writers = sorted(name for name, path in MODULES.items()
                     if name != "diversity_monitor.conventions" and floor.search(path.read_text()))
    assert not writers


# Notebook parameter cells must hold literals (papermill), so they repeat the defaults: checked here.
NOTEBOOK_DEFAULTS = {
    "min_diversity": conventions.DEFAULT_MIN_DIVERSITY,
    "top_k": conventions.DEFAULT_TOP_K,
    "max_mean_drop": conventions.DEFAULT_MAX_MEAN_DROP,
    "mean_tolerance": conventions.DEFAULT_MEAN_TOLERANCE,
    "slot_margin": conventions.DEFAULT_SLOT_MARGIN,
}


@pytest.mark.parametrize("notebook", sorted(NOTEBOOKS.glob("*.ipynb")), ids=lambda path: path.name)
def test_notebook_parameter_defaults_are_the_kits_defaults(notebook):
    cells = [cell for cell in nbformat.read(notebook, as_version=4).cells if "parameters" in cell.metadata.get("tags", [])]
    assert len(cells) == 1
    values = {}
    for node in ast.parse(cells[0].source).body:
        if isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name):
            values[node.targets[0].id] = ast.literal_eval(node.value)
    drifted = {name: (values[name], default) for name, default in NOTEBOOK_DEFAULTS.items()
               if name in values and values[name] != default}
    assert not drifted, f"{notebook.name}: parameter defaults differ from diversity_monitor.conventions: {drifted}"


def test_every_registered_command_resolves_to_its_owner():
    from diversity_monitor import cli

    missing = []
    for name, (target, _) in cli.COMMANDS.items():
        module_name, function_name = target.split(":")
        if module_name not in MODULES or not callable(getattr(__import__(module_name, fromlist=["_"]), function_name, None)):
            missing.append(f"{name} -> {target}")
    assert not missing
