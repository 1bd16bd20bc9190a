"""Run the benchmarks and record every figure they emit in ``benchmarks/results.json`` (``make bench``).

::

    python benchmarks/run_all.py                      # every bench_*.py with --quick + multilabel, shift (`make bench`)
    python benchmarks/run_all.py bench_stack bench_scale   # only these
    python benchmarks/run_all.py --full stacking_report    # a full run; its figures are kept beside the quick ones
    python benchmarks/run_all.py --full --with-reports     # everything at full size (`make bench-full`; hours)
    python benchmarks/run_all.py --full --forget shift     # drop shift's full-run figures (its protocol changed)
    python benchmarks/run_all.py --full --import-log shift.log shift   # record a run done by hand (nohup … > shift.log)
    python scripts/update_figures.py                  # then rewrite the figure tables in README.md and docs/

Each script runs in its own process with ``--quick`` (unless ``--full``); its output is shown as it
comes. Lines emitted by ``benchmarks/results.py:emit`` are collected: ``results.json`` keeps, per
figure, the script, mode (quick/full), name, figure, unit, baseline, ratio, what differs between the two
sides, and the run's own provenance: the commit, dirty flag, date, machine and load the script printed
at its start (``@@run``) and the fingerprint of the code it ran (``@@code``, printed at its exit; the run
record keeps the per-file hashes, which ``scripts/update_figures.py --check`` recomputes). A rerun of a
script replaces only that script's figures of that mode. A script that fails (or overruns ``--timeout``,
or prints no provenance) is reported with its exit code; the run then exits 1, after the others ran.
Scripts in :data:`NO_QUICK` have no reduced mode: they always run as they are and record "full".

Figures are recorded only from a clean tree (no tracked file differing from HEAD): with changes,
``run_all`` refuses, unless ``--allow-dirty``, which records the figures marked ``"dirty": true``; every
table showing one says so, and ``update_figures --check`` fails on it. ``--import-log`` takes commit,
dirty flag, date, machine and code from the log's own ``@@run``/``@@code`` lines and refuses a log without
them (or with another script's or mode's run in it).

Which figures only a full run gives (``update_figures`` shows the full figure when its code is current,
else the quick one when current, and each table says which; quick figures of the model-training benchmarks
are smoke runs, not results):

- ``bench_stack``: the stack (1 and every worker, --no-dynamic) vs the same-work and plain loops on the full
  31,072 + 11,702 rows x 4 and 10 sets;
- ``bench_scale``: every stage at competition size, 5/10/20 prediction sets;
- ``bench_variants``: the variants table of ``benchmarks/variants.md`` (1,200 images at 64 px, 3 folds,
  3 epochs, the 11 variants of :data:`FULL_ARGS`; about 15 min on 2 idle CPUs);
- ``bench_distill``: the distillation table of ``docs/scale_out.md`` (teacher: the demo's members features,
  regnetx_002 and resnet10t as their blend or stack, whichever has the higher OOF F1; students
  mobilenetv3_small_100 and lcnet_075 with and without the teacher, 1,000 images at 64 px, 3 folds);
- ``bench_folds``: the strategy table of ``docs/folds_eda.md`` as a mean over 5 seeds (quick: 1 seed);
- ``bench_loader``: 48 images instead of 16, and the resnet18 forward + backward row;
- ``bench_cells``: 8 synthetic images and 4 real ones for the two watersheds (quick: 8 and 2);
- ``bench_dedup``: 112 planted base images instead of 56, pair search at 31,072 x 11,702;
- ``stacking_report``: the full HPA rows (a report: run only when named or with ``--with-reports``);
- ``shift_gates``: docs/thresholds.md's gate shapes, chosen on seeds 0..9 and checked on 10..19 (a report);
- ``shift_candidate``: a candidate threshold rule, outside the library, on shift.py's shaping and held-out blocks
  (a report; every run is logged in ``benchmarks/shift_heldout_log.md``);
- ``baseline_synth``: the baseline of ``docs/synth.md`` on 2,500 + 1,000 images, raw pixels too (a report);
- ``bench_gpu``: needs a CUDA device (prints "no CUDA device" and emits nothing elsewhere).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
RESULTS = HERE / "results.json"
sys.path.insert(0, str(HERE))

from mulan_data import MULAN_DIR  # noqa: E402
from results import RUN_TAG, git_state, import_closure, parse, parse_code, parse_run  # noqa: E402

#: Extra arguments a script needs to run from a fresh clone (see each entry's reason).
EXTRA_ARGS: dict[str, list[str]] = {}
#: Extra arguments of a full run (``--full``): the setting the docs' tables were measured in.
FULL_ARGS = {
    # benchmarks/variants.md: 3 epochs (the configs say 6) and the 11 variants of its table, ~15 min on 2 CPUs.
    "bench_variants": ["--epochs", "3", "--threads", "2", "--only", "plain", "cells_max", "cells_attention",
                       "tiles_max", "tiles_noisy_or", "single_label_first", "attention", "lovasz", "center_loss",
                       "reg_none", "reg_strong"],
    # docs/scale_out.md: both students of its table (mobilenetv3_small_100, lcnet_075: smaller backbones than the
    # teacher's members), self-training on, and each student's config trained without the teacher (alpha 0).
    "bench_distill": ["--self-train", "--plain-student", "--student", "base_models/configs/mobilenetv3_small_100.yaml",
                      "base_models/configs/lcnet_075.yaml"],
    # docs/thresholds.md: 20 seeds of shift.py's stacks (about 30 min from scratch); the cache folder is made if
    # missing and its entries are keyed by the fingerprint of the code that made the stacks, so a rerun with the
    # same stack code takes about a minute.
    "shift_gates": ["--cache", "/tmp/hpa_shift_cache"],
    # benchmarks/shift_heldout_log.md: a candidate threshold rule on shift.py's shaping and held-out stacks (the
    # cache shift.py's held-out runs used; made if missing, about 30 min from scratch, 10 min when cached).
    "shift_candidate": ["--cache", "/tmp/t_shift_cache"],
}
#: Scripts run only when named or with --with-reports (long reports, not `bench_*.py`).
REPORTS = ("stacking_report", "baseline_synth", "shift_gates", "shift_candidate")
#: Scripts beside `bench_*.py` that `make bench` runs too (shift: the threshold-rule tables of README.md and
#: docs/thresholds.md, with --quick on 8,000 HPA rows).
ALSO = ("multilabel", "shift")
#: Scripts with no --quick: they always run as they are and are recorded as full runs.
NO_QUICK = {"multilabel": "three MULAN sets through every command line, about 60 s"}


def reads_mulan(script: Path) -> bool:
    """Whether ``script`` reads the MULAN sets of ``../shared/multilabel`` (data beside the repository, not in it):
    ``benchmarks/mulan_data.py`` is in its import closure. Where the folder is absent such a script is skipped with
    a line, not failed, and its recorded figures are kept."""
    return "benchmarks/mulan_data.py" in import_closure([script.stem])


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


#: results.json's layout: 2 adds each figure's ``fingerprint``, ``dirty`` and ``differs`` and each run's
#: ``code_files`` (records of schema 1 carry none of them and read as unverified).
SCHEMA = 2


def merge(results: dict, script: str, mode: str, figures: list[dict], run: dict) -> dict:
    """``results`` with ``script``'s figures of ``mode`` replaced by ``figures`` (others kept).

    Every figure is stamped with its run's machine, date, commit, dirty flag and code fingerprint.
    """
    kept = [f for f in results.get("figures", []) if not (f["script"] == script and f["mode"] == mode)]
    stamp = {k: run[k] for k in ("machine", "date", "commit")}
    stamp.update({k: run[k] for k in ("load", "dirty", "fingerprint") if k in run})
    new = [{**f, "script": script, "mode": mode, **stamp, "command": run["command"]} for f in figures]
    runs = dict(results.get("runs", {}))
    runs[f"{script} ({mode})"] = run
    ordered = sorted(kept + new, key=lambda f: (f["script"], f["mode"]))  # stable: emission order within a run
    failed = {k: v for k, v in results.get("failed", {}).items() if k != f"{script} ({mode})"}
    return {"schema": SCHEMA, "runs": dict(sorted(runs.items())), "figures": ordered,
            **({"failed": failed} if failed else {})}


def record_failure(results: dict, script: str, mode: str, run: dict) -> dict:
    """``results`` with a failed run of ``script`` noted under ``failed``; its recorded figures and run are kept.

    A killed, crashed or unprovable run measured nothing, so it must not erase what an earlier run measured (the
    earlier figures keep their own commit and fingerprint, and ``update_figures`` still says when they are stale).
    """
    failed = dict(results.get("failed", {}))
    failed[f"{script} ({mode})"] = run
    return {**results, "failed": dict(sorted(failed.items()))}


def forget(results: dict, script: str, mode: str) -> dict:
    """``results`` without ``script``'s figures and run record of ``mode`` (e.g. after its protocol changed)."""
    figures = [f for f in results.get("figures", []) if not (f["script"] == script and f["mode"] == mode)]
    runs = {k: v for k, v in results.get("runs", {}).items() if k != f"{script} ({mode})"}
    return {"schema": results.get("schema", SCHEMA), "runs": runs, "figures": figures}


def load_results(path: Path = RESULTS) -> dict:
    if not path.exists():
        return {"schema": SCHEMA, "runs": {}, "figures": []}
    return json.loads(path.read_text(encoding="utf-8"))


def run_record(output: str, script: str, allow_dirty: bool) -> tuple[dict, str | None]:
    """The provenance of the run whose output is ``output``: (record, None), or (partial record, why it cannot be
    recorded). The record holds the run's own commit, dirty flag, date, machine, load and code fingerprint."""
    started = parse_run(output)
    if started is None:
        return {}, (f"no @@run line: {script} did not import benchmarks/results.py at its start, so nothing says "
                    "which commit, machine and date made its figures")
    record = {k: started[k] for k in ("commit", "dirty", "date", "machine", "load") if k in started}
    pids = {json.loads(line[len(RUN_TAG):]).get("pid") for line in output.splitlines() if line.startswith(RUN_TAG)}
    if len(pids) > 1:
        return record, f"{len(pids)} runs in one output (@@run lines of processes {sorted(pids)}): record one run"
    ran = Path(started.get("argv", [""])[0]).stem
    if ran != script:
        return record, f"the @@run line is of {ran or 'an unknown script'}, not {script}"
    code = parse_code(output, started.get("pid"))
    if code is None:
        return record, "no @@code line: the run did not reach its exit, so its code fingerprint is unknown"
    if code.get("error"):
        return record, f"the run ended with an uncaught exception ({code['error']})"
    record.update(fingerprint=code["sha256"], code_files=code["files"])
    # Files are hashed at exit: a commit or an edit during the run means they may not be the code that ran.
    moved = code.get("dirty") or code.get("commit", started.get("commit")) != started.get("commit")
    record["dirty"] = bool(started.get("dirty") or moved)
    if record["dirty"] and not allow_dirty:
        why = ("the tree changed during the run" if moved and not started.get("dirty") else
               f"tracked files differed from {started.get('commit')}")
        return record, (f"recorded from a dirty tree ({why}): commit first, or pass --allow-dirty to record "
                        "figures marked dirty")
    return record, None


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
                         "by hand, e.g. with nohup) instead of running it; commit, date, machine and code "
                         "fingerprint come from the log's own @@run and @@code lines")
    ap.add_argument("--forget", action="store_true",
                    help="run nothing: drop the named scripts' recorded figures of this mode (quick, or --full)")
    ap.add_argument("--args", default="", help="extra arguments for the script(s), e.g. --args='--stages dedup'")
    ap.add_argument("--allow-dirty", action="store_true",
                    help="record even when tracked files differ from HEAD; the figures are marked dirty in "
                         "results.json and in every table that shows them")
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
    if args.import_log:
        return import_log(Path(args.import_log), chosen, args, path)
    commit, dirty = git_state()
    if dirty and not args.allow_dirty:
        print(f"refusing to run: tracked files differ from HEAD {commit} (git status), so no commit names the code "
              "the figures would come from; commit first, or pass --allow-dirty to record figures marked dirty")
        return 2
    failed, total = [], time.perf_counter()
    for script in chosen:
        mode = script_mode(script, args.full)
        print(f"\n=== {script.name} ({mode}) ===", flush=True)
        if not MULAN_DIR.is_dir() and reads_mulan(script):
            print(f"--- {script.name}: skipped: it reads the MULAN sets of {MULAN_DIR}, which is not here; the "
                  "figures recorded before are kept", flush=True)
            continue
        extra = args.args.split()
        code, seconds, output = run_script(script, args.full, args.timeout, env, extra)
        print(f"--- {script.name}: exit {code}, {seconds:.1f} s", flush=True)
        command = " ".join(["python", f"benchmarks/{script.name}", *script_args(script, args.full, extra)])
        record, refused = run_record(output, script.stem, args.allow_dirty)
        run = {"commit": commit, "dirty": dirty, **record, "exit": code, "seconds": round(seconds, 1),
               "command": command}
        run.setdefault("date", None)
        run.setdefault("machine", None)
        if code == 0 and refused:
            code = run["exit"] = 1
            run["error"] = refused
            print(f"--- {script.name}: not recorded: {refused}", flush=True)
        elif code:
            run["error"] = next((ln for ln in reversed(output.splitlines()) if ln.strip()), "")[:300]
        if code:
            failed.append(f"{script.name} (exit {code})")
            print(f"--- {script.name}: not recorded; the figures recorded before are kept", flush=True)
            save_results(record_failure(load_results(path), script.stem, mode, run), path)
        else:
            save_results(merge(load_results(path), script.stem, mode, parse(output), run), path)
    print(f"\n{len(chosen)} benchmark(s) in {time.perf_counter() - total:.0f} s; figures in {path}")
    if failed:
        print("failed: " + ", ".join(failed))
    return 1 if failed else 0


def import_log(log: Path, chosen: list[Path], args, path: Path) -> int:
    """Record the figures a run of one script printed to ``log`` (run by hand), with the log's own provenance."""
    if len(chosen) != 1:
        print("--import-log needs exactly one script name")
        return 2
    script = chosen[0]
    text = log.read_text(encoding="utf-8")
    record, refused = run_record(text, script.stem, args.allow_dirty)
    if refused:
        print(f"{log}: not recorded: {refused}")
        return 2
    argv = parse_run(text)["argv"]
    logged_mode = "full" if script.stem in NO_QUICK or "--quick" not in argv else "quick"
    mode = script_mode(script, args.full)
    if logged_mode != mode:
        given = " ".join(argv[1:]) or "no arguments"
        print(f"{log}: not recorded: the log is a {logged_mode} run of {script.name} ({given}); "
              f"{'pass --full' if logged_mode == 'full' else 'drop --full'} to record it as one")
        return 2
    command = " ".join(["python", f"benchmarks/{script.name}", *argv[1:]])
    figures = parse(text)
    run = {**record, "exit": 0, "seconds": None, "command": command, "imported_from": log.name}
    save_results(merge(load_results(path), script.stem, mode, figures, run), path)
    print(f"{len(figures)} figure(s) of {script.name} recorded in {path} (run of {record['date']}, commit "
          f"{record['commit']}{', dirty' if record.get('dirty') else ''})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
