"""Run the benchmarks and record every figure they emit in ``benchmarks/results.json`` (``make bench``).

::

    python benchmarks/run_all.py                      # every bench_*.py with --quick + multilabel, shift (`make bench`)
    python benchmarks/run_all.py bench_stack bench_scale   # only these
    python benchmarks/run_all.py --full stacking_report    # a full run; its figures are kept beside the quick ones
    python benchmarks/run_all.py --full --with-reports     # everything at full size (`make bench-full`; hours)
    python benchmarks/run_all.py --full --forget shift     # drop shift's full-run figures (its protocol changed)
    python scripts/update_figures.py                  # then rewrite the figure tables in README.md and docs/

Each script runs in its own process with ``--quick`` (unless ``--full``); its output is shown as it
comes. Lines emitted by ``benchmarks/results.py:emit`` are collected: ``results.json`` keeps, per
figure, the script, mode (quick/full), name, figure, unit, baseline, ratio, machine, date and git
commit. A rerun of a script replaces only that script's figures of that mode. A script that fails (or
overruns ``--timeout``) is reported with its exit code; the run then exits 1, after the others ran.
Scripts in :data:`NO_QUICK` have no reduced mode: they always run as they are and record "full".

Which figures only a full run gives (``update_figures`` shows the full figure when there is one,
else the quick one, and each table says which; quick figures of the model-training benchmarks are
smoke runs, not results):

- ``bench_stack``: the stack vs the plain loop on the full 31,072 + 11,702 rows x 10 sets;
- ``bench_scale``: every stage at competition size, 5/10/20 prediction sets;
- ``bench_variants``: the variants table of ``benchmarks/variants.md`` (1,200 images at 64 px, 3 folds,
  3 epochs, the 11 variants of :data:`FULL_ARGS`; about 15 min on 2 idle CPUs);
- ``bench_distill``: the distillation table of ``docs/scale_out.md`` (teachers regnetx_002 and resnet18,
  students mobilenetv3_small_100 and regnetx_002 with and without the teacher, 1,000 images at 64 px, 3 folds;
  about 10 min on 2 idle CPUs);
- ``bench_folds``: the strategy table of ``docs/folds_eda.md`` as a mean over 5 seeds (quick: 1 seed);
- ``bench_loader``: 48 images instead of 16, and the resnet18 forward + backward row;
- ``bench_cells``: 8 synthetic images and 4 real ones for the two watersheds (quick: 8 and 2);
- ``bench_dedup``: 112 planted base images instead of 56, pair search at 31,072 x 11,702;
- ``stacking_report``: the full HPA rows (a report: run only when named or with ``--with-reports``);
- ``shift_gates``: docs/thresholds.md's gate shapes, chosen on seeds 0..9 and checked on 10..19 (a report);
- ``baseline_synth``: the baseline of ``docs/synth.md`` on 2,500 + 1,000 images, raw pixels too (a report);
- ``bench_gpu``: needs a CUDA device (prints "no CUDA device" and emits nothing elsewhere).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
RESULTS = HERE / "results.json"
sys.path.insert(0, str(HERE))

from results import parse  # noqa: E402

#: Extra arguments a script needs to run from a fresh clone (see each entry's reason).
EXTRA_ARGS: dict[str, list[str]] = {}
#: Extra arguments of a full run (``--full``): the setting the docs' tables were measured in.
FULL_ARGS = {
    # benchmarks/variants.md: 3 epochs (the configs say 6) and the 11 variants of its table, ~15 min on 2 CPUs.
    "bench_variants": ["--epochs", "3", "--threads", "2", "--only", "plain", "cells_max", "cells_attention",
                       "tiles_max", "tiles_noisy_or", "single_label_first", "attention", "lovasz", "center_loss",
                       "reg_none", "reg_strong"],
    # docs/scale_out.md: both students of its table (mobilenetv3_small_100, regnetx_002), self-training on, and
    # each student's config trained without the teacher (alpha 0) beside it; about 10 min on 2 idle CPUs.
    "bench_distill": ["--self-train", "--plain-student", "--student", "base_models/configs/mobilenetv3_small_100.yaml",
                      "base_models/configs/regnetx_002.yaml"],
    # docs/thresholds.md: 20 seeds of shift.py's stacks (about 30 min from scratch); the cache folder is made if
    # missing and is keyed by the stack defaults, so a rerun takes about a minute.
    "shift_gates": ["--cache", "/tmp/hpa_shift_cache"],
}
#: Scripts run only when named or with --with-reports (long reports, not `bench_*.py`).
REPORTS = ("stacking_report", "baseline_synth", "shift_gates")
#: Scripts beside `bench_*.py` that `make bench` runs too (shift: the threshold-rule tables of README.md and
#: docs/thresholds.md, with --quick on 8,000 HPA rows).
ALSO = ("multilabel", "shift")
#: Scripts with no --quick: they always run as they are and are recorded as full runs.
NO_QUICK = {"multilabel": "three MULAN sets through every command line, about 60 s"}


def machine() -> str:
    """CPU model, usable CPUs and load: enough to tell two machines (and a busy one) apart."""
    model = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = os.cpu_count() or 1
    try:
        sys.path.insert(0, str(ROOT))
        from hpa_ens.cli import available_cpus

        usable = available_cpus()
    except Exception:  # noqa: BLE001 - the description must never stop a benchmark run
        pass
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return f"{model}; {usable} usable CPUs of {os.cpu_count()}; load {load:.1f} at start"


def git_commit() -> str:
    try:
        sha = subprocess.run(["git", "rev-parse", "--short=12", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                             check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT,
                               capture_output=True, text=True).stdout.strip()
        return sha + ("-dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def script_mode(script: Path, full: bool) -> str:
    return "full" if full or script.stem in NO_QUICK else "quick"


def script_args(script: Path, full: bool, extra: list[str]) -> list[str]:
    if script_mode(script, full) == "quick":
        return ["--quick", *EXTRA_ARGS.get(script.stem, []), *extra]
    return [*EXTRA_ARGS.get(script.stem, []), *(FULL_ARGS.get(script.stem, []) if full else []), *extra]


def run_script(script: Path, full: bool, timeout: float, env: dict, extra: list[str] = ()) -> tuple[int, float, str]:
    """Run one benchmark, echoing its output; returns (exit code, seconds, output)."""
    command = [sys.executable, str(script), *script_args(script, full, list(extra))]
    import threading

    start = time.perf_counter()
    proc = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    timer = threading.Timer(timeout, proc.kill)  # a silent script is stopped too
    timer.start()
    lines = []
    try:
        for line in proc.stdout:
            lines.append(line)
            print(line, end="", flush=True)
        code = proc.wait()
    finally:
        timer.cancel()
        proc.stdout.close()
    if time.perf_counter() - start >= timeout:
        lines.append(f"killed: over the {timeout:.0f} s timeout\n")
        code = 124
    return code, time.perf_counter() - start, "".join(lines)


def merge(results: dict, script: str, mode: str, figures: list[dict], run: dict) -> dict:
    """``results`` with ``script``'s figures of ``mode`` replaced by ``figures`` (others kept)."""
    kept = [f for f in results.get("figures", []) if not (f["script"] == script and f["mode"] == mode)]
    stamp = {k: run[k] for k in ("machine", "date", "commit")}
    new = [{**f, "script": script, "mode": mode, **stamp, "command": run["command"]} for f in figures]
    runs = dict(results.get("runs", {}))
    runs[f"{script} ({mode})"] = run
    ordered = sorted(kept + new, key=lambda f: (f["script"], f["mode"]))  # stable: emission order within a run
    return {"schema": 1, "runs": dict(sorted(runs.items())), "figures": ordered}


def forget(results: dict, script: str, mode: str) -> dict:
    """``results`` without ``script``'s figures and run record of ``mode`` (e.g. after its protocol changed)."""
    figures = [f for f in results.get("figures", []) if not (f["script"] == script and f["mode"] == mode)]
    runs = {k: v for k, v in results.get("runs", {}).items() if k != f"{script} ({mode})"}
    return {"schema": 1, "runs": runs, "figures": figures}


def load_results(path: Path = RESULTS) -> dict:
    if not path.exists():
        return {"schema": 1, "runs": {}, "figures": []}
    return json.loads(path.read_text(encoding="utf-8"))


def save_results(results: dict, path: Path = RESULTS) -> None:
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(results, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("only", nargs="*", help="script names (default: every bench_*.py)")
    ap.add_argument("--full", action="store_true", help="run without --quick (long)")
    ap.add_argument("--with-reports", action="store_true",
                    help=f"also run the reports ({', '.join(REPORTS)}) when no name is given")
    ap.add_argument("--timeout", type=float, default=600.0, help="seconds one script may run")
    ap.add_argument("--results", default=str(RESULTS), help="the JSON file figures are merged into")
    ap.add_argument("--import-log", default=None, metavar="LOG",
                    help="record the figures a run of the one named script already printed to LOG (a long run done "
                         "by hand, e.g. with nohup) instead of running it; date = the log's time")
    ap.add_argument("--forget", action="store_true",
                    help="run nothing: drop the named scripts' recorded figures of this mode (quick, or --full)")
    ap.add_argument("--args", default="", help="extra arguments for the script(s), e.g. --args='--stages dedup'")
    args = ap.parse_args(argv)
    scripts = sorted(HERE.glob("bench_*.py")) + [HERE / f"{name}.py" for name in (*ALSO, *REPORTS)]
    skipped = () if args.with_reports else REPORTS
    chosen = [s for s in scripts if (s.stem in args.only if args.only else s.stem not in skipped)]
    unknown = sorted(set(args.only) - {s.stem for s in scripts})
    if unknown:
        print(f"unknown benchmark(s): {', '.join(unknown)}")
        return 2
    env = dict(os.environ, HF_HUB_OFFLINE="1", MPLBACKEND="Agg", HPA_ENS_NO_PROGRESS="1")
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    path = Path(args.results)
    if args.forget:
        if not args.only:
            print("--forget needs script names")
            return 2
        results = load_results(path)
        for script in chosen:
            results = forget(results, script.stem, script_mode(script, args.full))
        save_results(results, path)
        print(f"forgot {', '.join(f'{s.stem} ({script_mode(s, args.full)})' for s in chosen)} in {path}")
        return 0
    common = {"machine": machine(), "commit": git_commit()}
    if args.import_log:
        if len(chosen) != 1:
            print("--import-log needs exactly one script name")
            return 2
        log = Path(args.import_log)
        date = dt.datetime.fromtimestamp(log.stat().st_mtime, dt.timezone.utc).isoformat(timespec="seconds")
        command = " ".join(["python", f"benchmarks/{chosen[0].name}", *script_args(chosen[0], args.full,
                                                                                     args.args.split())])
        figures = parse(log.read_text(encoding="utf-8"))
        run = {**common, "date": date, "exit": 0, "seconds": None, "command": command, "imported_from": log.name}
        save_results(merge(load_results(path), chosen[0].stem, script_mode(chosen[0], args.full), figures, run), path)
        print(f"{len(figures)} figure(s) of {chosen[0].name} recorded in {path}")
        return 0
    failed, total = [], time.perf_counter()
    for script in chosen:
        mode = script_mode(script, args.full)
        print(f"\n=== {script.name} ({mode}) ===", flush=True)
        date = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
        extra = args.args.split()
        code, seconds, output = run_script(script, args.full, args.timeout, env, extra)
        print(f"--- {script.name}: exit {code}, {seconds:.1f} s", flush=True)
        command = " ".join(["python", f"benchmarks/{script.name}", *script_args(script, args.full, extra)])
        run = {**common, "date": date, "exit": code, "seconds": round(seconds, 1), "command": command}
        if code:
            failed.append(f"{script.name} (exit {code})")
            run["error"] = next((ln for ln in reversed(output.splitlines()) if ln.strip()), "")[:300]
        save_results(merge(load_results(path), script.stem, mode, parse(output) if code == 0 else [], run), path)
    print(f"\n{len(chosen)} benchmark(s) in {time.perf_counter() - total:.0f} s; figures in {path}")
    if failed:
        print("failed: " + ", ".join(failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
