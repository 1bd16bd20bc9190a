"""One source of truth for benchmark figures: scripts *emit* figures, ``run_all.py`` collects them
into ``benchmarks/results.json`` and ``scripts/update_figures.py`` writes them into the docs.

A benchmark script imports this module first and calls :func:`emit` once per figure. Its output then
carries three kinds of tagged lines, which ``run_all.py`` parses (a script run by hand just prints
them, and ``run_all.py --import-log`` reads them back from its log):

``@@run {…}``
    printed when the benchmark imports this module, i.e. at its start: git commit and whether tracked
    files differ from it (``dirty``), UTC date, machine (CPU model and usable CPUs), 1-minute load
    average, process id and command line.
``@@figure {…}``
    one per :func:`emit`. A figure with a baseline names it, measured in the same process, and says in
    ``differs`` what differs between the two sides, so a ratio is never read as "same work" when it is not.
``@@code {…}``
    printed at exit: the sha256 of every project file the run depends on (see :func:`code_files`) and
    one combined hash, the figures' *fingerprint*, with the commit and dirty flag at exit (a tree that
    moved during the run makes the run dirty). ``scripts/update_figures.py --check`` rehashes those
    files to tell whether a recorded figure still describes the code.

Only a benchmark's own process prints ``@@run``/``@@code`` (the script run is a file of this folder
other than ``run_all.py``): importing this module from a test, from ``run_all.py`` or from a worker
process prints nothing. :func:`time_same_way` is the one timing helper for figures that compare two
implementations on the same work.
"""

from __future__ import annotations

import ast
import atexit
import datetime as dt
import hashlib
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable, Iterable

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
TAG = "@@figure "
RUN_TAG = "@@run "
CODE_TAG = "@@code "
#: The project's packages (dotted names map to files under the repository root).
PACKAGES = ("hpa_ens", "base_models")


# ------------------------------------------------------------------------------------------------ figures
def _clean(value):
    if isinstance(value, float):
        return None if not math.isfinite(value) else float(f"{value:.6g}")
    if hasattr(value, "item"):  # numpy scalars
        return _clean(value.item())
    return value


def emit(name: str, figure: float, unit: str = "", baseline: float | None = None, baseline_name: str | None = None,
         ratio: float | None = None, note: str = "", differs: str | None = None, **extra) -> dict:
    """Print one figure for ``run_all.py`` to collect.

    Parameters
    ----------
    name : str
        Unique within the script, e.g. ``"stack vs plain LGBMClassifier loop (same parameters)"``.
    figure : float
        The measured value (seconds, images/s, macro F1, …) in ``unit``.
    baseline : float, optional
        The same quantity for the baseline, measured in the same process.
    baseline_name : str, optional
        What the baseline is.
    ratio : float, optional
        ``baseline / figure`` for times (a speed-up), ``figure / baseline`` for rates; default: the
        speed-up when ``unit == "s"``, else ``figure / baseline``.
    differs : str
        Required with a baseline: one short phrase naming what differs between the two sides, starting
        with its kind, e.g. ``"implementation only: same parameters, early stopping and fallbacks"`` or
        ``"configuration: 200 fixed trees, 255 bins, all features"``. The docs show it beside the ratio.

    Raises
    ------
    ValueError
        When a baseline is given without ``differs``.
    """
    if (baseline is not None or baseline_name is not None) and not (differs and differs.strip()):
        raise ValueError(f"emit({name!r}): a figure with a baseline needs differs=, one phrase naming what differs "
                         "between the two sides (e.g. 'implementation only: …' or 'configuration: …').")
    if ratio is None and baseline is not None and figure:
        ratio = baseline / figure if unit == "s" else figure / baseline if baseline else None
    record = {"name": name, "figure": _clean(figure), "unit": unit, "baseline": _clean(baseline),
              "baseline_name": baseline_name, "ratio": _clean(ratio), "note": note}
    if differs is not None:
        record["differs"] = differs
    record.update({k: _clean(v) for k, v in extra.items()})
    print(TAG + json.dumps(record, sort_keys=True), flush=True)
    return record


def parse(text: str) -> list[dict]:
    """The figures emitted in a script's output."""
    out = []
    for line in text.splitlines():
        if line.startswith(TAG):
            out.append(json.loads(line[len(TAG):]))
    return out


def parse_run(text: str) -> dict | None:
    """The provenance a run printed at its start (its first ``@@run`` line), or None when it printed none."""
    for line in text.splitlines():
        if line.startswith(RUN_TAG):
            return json.loads(line[len(RUN_TAG):])
    return None


def parse_code(text: str, pid: int | None = None) -> dict | None:
    """The code record the run printed at exit (the last ``@@code`` line of process ``pid``), or None."""
    found = None
    for line in text.splitlines():
        if line.startswith(CODE_TAG):
            record = json.loads(line[len(CODE_TAG):])
            if pid is None or record.get("pid") == pid:
                found = record
    return found


# ------------------------------------------------------------------------------------------------ timing
def time_same_way(calls: dict[str, Callable[[], object]], repeats: int, warmup: int = 1) -> dict[str, dict]:
    """Time every side of a comparison the same way: the same warm-up, repeats and statistic.

    Each call runs ``warmup`` times untimed (imports, allocator, caches), then the calls are timed in
    ``repeats`` interleaved rounds (a, b, a, b, …), so a change of the machine's load hits every side.

    Parameters
    ----------
    calls : dict of str to callable
        The sides, each a function of no argument.
    repeats, warmup : int
        Timed and untimed calls per side.

    Returns
    -------
    dict
        Per side: ``wall`` and ``cpu`` (median seconds of wall-clock and of this process's CPU time),
        ``best`` (fastest wall), ``repeats``, ``warmup`` and ``result`` (what the last call returned).
    """
    if repeats < 1 or warmup < 0:
        raise ValueError(f"time_same_way needs repeats >= 1 and warmup >= 0; got {repeats} and {warmup}.")
    results: dict[str, object] = {}
    for name, call in calls.items():
        for _ in range(warmup):
            results[name] = call()
    wall: dict[str, list[float]] = {name: [] for name in calls}
    cpu: dict[str, list[float]] = {name: [] for name in calls}
    for _ in range(repeats):
        for name, call in calls.items():
            start, start_cpu = time.perf_counter(), time.process_time()
            results[name] = call()
            wall[name].append(time.perf_counter() - start)
            cpu[name].append(time.process_time() - start_cpu)
    return {name: {"wall": statistics.median(wall[name]), "cpu": statistics.median(cpu[name]),
                   "best": min(wall[name]), "repeats": repeats, "warmup": warmup, "result": results[name]}
            for name in calls}


# ------------------------------------------------------------------------------------------------ provenance
#: Tracked files whose changes do not make a run dirty: the record ``run_all.py`` itself rewrites after each script.
NOT_CODE = ("benchmarks/results.json",)


def git_state(root: Path = ROOT) -> tuple[str, bool]:
    """(HEAD's commit, 12 hex digits, or "unknown"; whether tracked files other than :data:`NOT_CODE` differ)."""
    try:
        sha = subprocess.run(["git", "rev-parse", "--short=12", "HEAD"], cwd=root, capture_output=True, text=True,
                             check=True).stdout.strip()
        changes = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--", ".",
                                  *(f":(exclude){path}" for path in NOT_CODE)], cwd=root,
                                 capture_output=True, text=True, check=True).stdout.strip()
        return sha, bool(changes)
    except (OSError, subprocess.CalledProcessError):
        return "unknown", False


def machine_name() -> str:
    """CPU model and usable CPUs: enough to tell two machines apart."""
    model = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        if str(ROOT) not in sys.path:
            sys.path.insert(0, str(ROOT))
        from hpa_ens.utils import available_cpus

        usable = available_cpus()
    except Exception:  # noqa: BLE001 - the description must never stop a benchmark run
        try:
            usable = len(os.sched_getaffinity(0))
        except AttributeError:
            usable = os.cpu_count() or 1
    return f"{model}; {usable} usable CPUs of {os.cpu_count()}"


def provenance() -> dict:
    """What a run records about itself at its start (the ``@@run`` line)."""
    commit, dirty = git_state()
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return {"commit": commit, "dirty": dirty, "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
            "machine": machine_name(), "load": round(load, 1) if math.isfinite(load) else None, "pid": os.getpid(),
            "argv": list(sys.argv)}


# ------------------------------------------------------------------------------------------------ code
def module_file(name: str, root: Path = ROOT) -> Path | None:
    """The project file of the dotted module ``name`` (a package's ``__init__.py``), None when not the project's.

    ``hpa_ens.*`` and ``base_models.*`` live under ``root``; a bare name is a module of the benchmarks
    folder (they import each other as ``from results import emit``).
    """
    parts = name.split(".")
    if parts[0] in PACKAGES:
        base = root.joinpath(*parts)
    elif len(parts) == 1 and parts[0]:
        base = root / "benchmarks" / parts[0]
    else:
        return None
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def module_name(path: Path, root: Path = ROOT) -> str:
    """The dotted name of the project file ``path`` (inverse of :func:`module_file`)."""
    rel = Path(path).resolve().relative_to(root.resolve())
    parts = list(rel.with_suffix("").parts)
    if parts[0] == "benchmarks":
        return parts[-1]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _is_main_guard(node: ast.AST) -> bool:
    """``if __name__ == "__main__":`` (its body runs only when the module is the program)."""
    test = getattr(node, "test", None)
    return (isinstance(node, ast.If) and isinstance(test, ast.Compare) and isinstance(test.left, ast.Name)
            and test.left.id == "__name__" and len(test.comparators) == 1
            and isinstance(test.comparators[0], ast.Constant) and test.comparators[0].value == "__main__")


def _launched_command(node: ast.AST) -> str | None:
    """The command name of a main guard's ``launch("name", …)`` call (hpa_ens.commands), else None."""
    if isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant):
        func = node.func
        called = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
        if called == "launch" and isinstance(node.args[0].value, str):
            return node.args[0].value
    return None


def imported_modules(path: Path, as_main: bool = False, root: Path = ROOT) -> set[str]:
    """Every module the file ``path`` may import: module-level and function-level imports, resolved.

    The body of ``if __name__ == "__main__":`` counts only with ``as_main`` (the file run as the program);
    there a ``launch("name", …)`` call adds the command's module from ``hpa_ens.commands.COMMANDS``.
    """
    tree = ast.parse(Path(path).read_text(encoding="utf-8"), filename=str(path))
    name = module_name(path, root)
    package = name if Path(path).name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        if _is_main_guard(node) and not as_main:
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".") if package else []
                base = base[: len(base) - (node.level - 1)] if node.level > 1 else base
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target:
                found.add(target)
                found.update(f"{target}.{alias.name}" for alias in node.names if alias.name != "*")
        elif as_main and (command := _launched_command(node)) is not None:
            found.add(_command_module(command, root) or "hpa_ens.commands")
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return found


def _command_module(command: str, root: Path) -> str | None:
    """The module ``hpa-ens COMMAND`` runs, read from the registry's source (nothing is imported)."""
    registry = module_file("hpa_ens.commands", root)
    if registry is None:
        return None
    for node in ast.walk(ast.parse(registry.read_text(encoding="utf-8"))):
        if isinstance(node, (ast.Assign, ast.AnnAssign)) and isinstance(node.value, ast.Dict):
            for key, value in zip(node.value.keys, node.value.values):
                if isinstance(key, ast.Constant) and key.value == command and isinstance(value, ast.Tuple) \
                        and value.elts and isinstance(value.elts[0], ast.Constant):
                    return value.elts[0].value
    return None


def import_closure(modules: Iterable[str], as_main: Iterable[str] = (), root: Path = ROOT) -> dict[str, Path]:
    """Project files reachable from ``modules`` by imports: ``{path relative to root: file}``.

    Each module brings its parent packages' ``__init__.py`` (Python runs them first) and everything it
    may import, at module level or inside functions, transitively. ``as_main`` lists modules run as a
    program (``python -m``), whose main guard counts too. A superset of what a run executes, never less:
    a child process (a fork, ``python -m``) runs code its parent never imported.
    """
    main = set(as_main)
    todo = list(dict.fromkeys([*modules, *main]))
    seen: set[str] = set()
    files: dict[str, Path] = {}
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        parts = name.split(".")
        todo += [".".join(parts[:i]) for i in range(1, len(parts))]  # parent packages run first
        path = module_file(name, root)
        if path is None:
            continue
        files[path.relative_to(root).as_posix()] = path
        todo += [m for m in imported_modules(path, as_main=name in main, root=root) if m not in seen]
    return dict(sorted(files.items()))


def loaded_modules(root: Path = ROOT) -> dict[str, Path]:
    """``{dotted name: file}`` of the project modules this process has imported (the script run included)."""
    out: dict[str, Path] = {}
    for name, module in list(sys.modules.items()):
        file = getattr(module, "__file__", None)
        if not file or not file.endswith(".py"):
            continue
        path = Path(file).resolve()
        if name.split(".")[0] in PACKAGES:
            out[name] = path
        elif path.parent == (root / "benchmarks").resolve():
            out[path.stem] = path
    return out


def sha256_file(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def combined_hash(files: dict[str, str]) -> str:
    """One sha256 over ``{relative path: file sha256}`` (order-free)."""
    text = "".join(f"{rel}\t{sha}\n" for rel, sha in sorted(files.items()))
    return hashlib.sha256(text.encode()).hexdigest()


def code_files(script: Path | None = None, extra: Iterable[str] = (), root: Path = ROOT) -> dict[str, str]:
    """``{relative path: sha256}`` of the code this run depends on.

    The benchmark ``script`` run (default: ``sys.argv[0]``; Python drops ``__main__.__file__`` before
    exit handlers run) and the project files of every module loaded by now (``hpa_ens``,
    ``base_models``, this folder), closed over their imports (:func:`import_closure`, so the code a
    forked child imports counts), plus the modules declared with :func:`uses` and ``extra`` (run in
    child processes as ``python -m``). A file loaded from outside ``root`` (another checkout) is hashed
    as loaded: it then differs from ``root``'s file and the figure reads as stale, as it should.
    """
    loaded = loaded_modules(root)
    script = Path(script or sys.argv[0]).resolve()
    main = []
    if script.suffix == ".py" and script.parent == (root / "benchmarks").resolve() and script.is_file():
        loaded[script.stem] = script
        main.append(script.stem)
    files = import_closure(loaded, as_main=[*main, *_USED, *extra], root=root)
    for name, path in loaded.items():  # what actually ran wins over the file of the same name under root
        files[_relative(name, path)] = path
    return {rel: sha256_file(path) for rel, path in sorted(files.items())}


def _relative(name: str, path: Path) -> str:
    """Where the loaded module ``name`` (from the file ``path``) lives relative to the repository root."""
    if name.split(".")[0] in PACKAGES:
        return "/".join(name.split(".")) + ("/__init__.py" if path.name == "__init__.py" else ".py")
    return f"benchmarks/{path.name}"


def current_hashes(files: Iterable[str], root: Path = ROOT) -> dict[str, str | None]:
    """``{relative path: sha256 now}`` (None for a file that is gone)."""
    return {rel: sha256_file(root / rel) if (root / rel).is_file() else None for rel in files}


def code_fingerprint(modules: Iterable[str], sources: Iterable[str] = (), root: Path = ROOT) -> str:
    """A short key for a cache of what ``modules`` (and the source texts ``sources``) compute.

    The combined hash of the import closure of ``modules`` and of ``sources`` (e.g. ``inspect.getsource``
    of the benchmark functions that feed the computation), 16 hex digits: a cache keyed by it is
    rebuilt when any of that code changes.
    """
    files = {rel: sha256_file(path) for rel, path in import_closure(modules, root=root).items()}
    files.update({f"<source {i}>": hashlib.sha256(text.encode()).hexdigest() for i, text in enumerate(sources)})
    return combined_hash(files)[:16]


_USED: list[str] = []


def uses(*modules: str) -> None:
    """Declare project modules this run executes in child processes as ``python -m MODULE``.

    They and their imports join the run's code fingerprint (the child's own imports are not seen here).
    """
    _USED.extend(m for m in modules if m not in _USED)


# ------------------------------------------------------------------------------------------------ start/exit
def _is_benchmark_process() -> bool:
    """True in a benchmark script's own process (not in tests, ``run_all.py`` or worker processes)."""
    import multiprocessing

    try:
        script = Path(sys.argv[0]).resolve() if sys.argv and sys.argv[0] else None
    except OSError:
        return False
    return (script is not None and script.parent == HERE and script.suffix == ".py"
            and script.stem not in ("run_all", "results") and multiprocessing.parent_process() is None)


RUN: dict | None = None
_CRASH: list[str] = []


def _print_code() -> None:
    if RUN is None or os.getpid() != RUN["pid"]:
        return
    files = code_files(Path(RUN["argv"][0]))
    commit, dirty = git_state()  # the files are hashed now: they describe the run only if the tree did not move
    record = {"pid": RUN["pid"], "sha256": combined_hash(files), "files": files, "commit": commit, "dirty": dirty}
    if _CRASH:
        record["error"] = _CRASH[-1]
    print(CODE_TAG + json.dumps(record, sort_keys=True), flush=True)


def start_run() -> dict:
    """Print this run's ``@@run`` line now and its ``@@code`` line at exit (once per process).

    An uncaught exception is noted in ``@@code`` (``error``), so that a log of a crashed run is not
    imported as a finished one.
    """
    global RUN
    if RUN is None:
        RUN = provenance()
        print(RUN_TAG + json.dumps(RUN, sort_keys=True), flush=True)
        atexit.register(_print_code)
        previous = sys.excepthook

        def note_crash(kind, value, traceback):
            _CRASH.append(f"{kind.__name__}: {value}"[:300])
            previous(kind, value, traceback)

        sys.excepthook = note_crash
    return RUN


if _is_benchmark_process():
    start_run()
