"""The layers of docs/architecture.md, kept true: contract and utilities -> algorithms -> commands.

Read from the source (``ast``), so a lazy import inside a function counts as much as one at the top. A
main guard (``if __name__ == "__main__":``) is an entry point, not part of the library's import graph:
it may hand over to the command layer.
"""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("hpa_ens", "base_models")

#: The lowest layer: validation, files, the task and the metric (they import nothing above them).
CORE = ("hpa_ens", "hpa_ens.validation", "hpa_ens.utils", "hpa_ens.io", "hpa_ens.classes", "hpa_ens.task",
        "hpa_ens.labels", "hpa_ens.metrics")


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    found = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            found[_module_name(path)] = path
    return found


MODULES = _modules()


def _is_main_guard(node: ast.stmt) -> bool:
    test = getattr(node, "test", None)
    return (isinstance(node, ast.If) and isinstance(test, ast.Compare) and isinstance(test.left, ast.Name)
            and test.left.id == "__name__" and any(isinstance(c, ast.Constant) and c.value == "__main__"
                                                    for c in test.comparators))


def _walk_outside_main_guard(tree: ast.AST):
    stack = [tree]
    while stack:
        node = stack.pop()
        yield node
        for child in ast.iter_child_nodes(node):
            if not _is_main_guard(child):
                stack.append(child)


def _resolve(importer: str, is_package: bool, module: str | None, level: int) -> str:
    if level == 0:
        return module or ""
    base = importer.split(".") if is_package else importer.split(".")[:-1]
    base = base[: len(base) - (level - 1)]
    return ".".join(base + ([module] if module else []))


def imports_of(name: str) -> set[str]:
    """Every module ``name`` imports (project modules resolved to the deepest module that exists)."""
    path = MODULES[name]
    tree = ast.parse(path.read_text(encoding="utf-8"))
    is_package = path.name == "__init__.py"
    found: set[str] = set()
    for node in _walk_outside_main_guard(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            target = _resolve(name, is_package, node.module, node.level)
            for alias in node.names:
                sub = f"{target}.{alias.name}" if target else alias.name
                found.add(sub if sub in MODULES else target)
    return {m for m in found if m}


def _project(module: str) -> str | None:
    """The project module ``module`` names (itself, or the closest enclosing one), or None."""
    while module and module not in MODULES:
        module = module.rpartition(".")[0]
    return module or None


GRAPH = {name: {p for m in imports_of(name) if (p := _project(m)) and p != name} for name in MODULES}


def is_command(name: str) -> bool:
    return ".commands" in f".{name}" or name == "hpa_ens.__main__"


def layer(name: str) -> int:
    if is_command(name):
        return 3
    if name in CORE:
        return 0
    if name.startswith("hpa_ens.contract"):
        return 1
    return 2


def test_the_graph_sees_the_whole_project():
    assert {"hpa_ens.commands", "hpa_ens.contract.predictions", "hpa_ens.metrics"} <= set(MODULES)
    assert "hpa_ens.contract.predictions" in GRAPH["hpa_ens.contract"]


def test_no_library_module_imports_the_command_layer():
    bad = sorted(f"{name} -> {dep}" for name, deps in GRAPH.items() if not is_command(name) for dep in deps
                 if is_command(dep))
    assert not bad, f"library modules importing the command layer: {bad}"


def test_argparse_only_in_the_command_layer():
    bad = sorted(name for name in MODULES if "argparse" in imports_of(name) and not is_command(name))
    assert not bad, f"argparse outside the command layer: {bad}"


def test_layers_only_import_downwards():
    """core (0) <- contract (1) <- algorithms (2) <- commands (3): never an import from a higher layer."""
    bad = sorted(f"{name} (layer {layer(name)}) -> {dep} (layer {layer(dep)})" for name, deps in GRAPH.items()
                 if name != "hpa_ens" for dep in deps if layer(dep) > layer(name))
    assert not bad, f"imports against the layering: {bad}"


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index, low, on_stack, stack, out = {}, {}, set(), [], []
    counter = [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    sys.setrecursionlimit(10000)
    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_no_import_cycles():
    # A package's __init__ re-exporting its own submodules is how a package is built, not a cycle.
    graph = {name: {d for d in deps if not name.startswith(d + ".")} for name, deps in GRAPH.items()}
    assert not _cycles(graph), f"import cycles: {_cycles(graph)}"


#: The command layer's shared plumbing (parsers, consoles, progress bars): base_models' commands are part of
#: that layer and build on it like hpa_ens's own commands do; nothing else in base_models may.
COMMAND_PLUMBING = "hpa_ens.commands._cli"


def test_base_models_imports_no_private_hpa_ens_module():
    bad = sorted(f"{name} -> {dep}" for name, deps in GRAPH.items() if name.startswith("base_models")
                 for dep in deps if dep.startswith("hpa_ens") and any(p.startswith("_") and p != "__init__"
                                                                      for p in dep.split("."))
                 and not (is_command(name) and dep == COMMAND_PLUMBING))
    assert not bad, f"base_models importing private hpa_ens modules: {bad}"


def test_hpa_ens_library_never_imports_torch_or_base_models():
    heavy = ("torch", "timm", "torchvision", "base_models")
    bad = sorted(f"{name} -> {dep}" for name in MODULES if name.startswith("hpa_ens") and not is_command(name)
                 for dep in imports_of(name) if dep.split(".")[0] in heavy)
    assert not bad, f"torch-free library importing the [train] side: {bad}"


def _environ_changed_by(setup: str, imports: str) -> list[str]:
    """The ``os.environ`` keys a fresh interpreter changes while running ``imports`` (after ``setup``)."""
    code = (f"import os, json\n{setup}\nbefore = dict(os.environ)\n{imports}\nafter = dict(os.environ)\n"
            "print(json.dumps(sorted(k for k in set(before) | set(after) if before.get(k) != after.get(k))))")
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "HF_HUB_OFFLINE")}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def test_importing_the_library_leaves_the_environment_alone():
    # scikit-learn sets KMP_DUPLICATE_LIB_OK and KMP_INIT_AT_FORK when it is first imported (its own
    # doing, not the library's): it is imported before the snapshot, so only hpa_ens's writes count.
    changed = _environ_changed_by("import sklearn",
                                  "import hpa_ens, hpa_ens.stack, hpa_ens.blend, hpa_ens.ensemble, "
                                  "hpa_ens.tune_thresholds, hpa_ens.submit, hpa_ens.commands\n"
                                  "hpa_ens.Stacker, hpa_ens.Blender, hpa_ens.ThresholdTuner")
    assert changed == [], f"importing hpa_ens changed os.environ: {changed}"


def test_importing_base_models_leaves_the_environment_alone():
    pytest.importorskip("torch", reason="needs the [train] extra")
    changed = _environ_changed_by("", "import base_models, base_models.models, base_models.heads, base_models.mil, "
                                      "base_models.train")
    assert changed == [], f"importing base_models changed os.environ: {changed}"
