"""The post-processing chain at competition scale: time and peak memory of every stage vs the number of models.

Data: the real HPA label matrix (``../shared/hpa/train.csv``: 31,072 OOF rows; independent labels at
HPA-like rates if absent, and then every figure's name says "(random labels)"), 11,702 test rows drawn from it with replacement, and 5, 10 and 20 prediction
sets from ``hpa_ens.testing.label_noise``; 5 folds. Stages, each in its own forked process so its peak
memory is its own (peak RSS includes the inputs it inherits):

- ``stack``: ``hpa_ens.ensemble.Stacker(keep_models=False).fit(oof, Y, folds, X_test=test)`` at its defaults
  (dynamic; every CPU as workers, one LightGBM thread per (fold, class) model; OOF and test in one pass,
  as ``hpa-ens stack`` runs it);
- ``blend-mean|rank|weighted|caruana``: ``hpa_ens.ensemble.Blender(method).fit(oof, Y, folds).predict(test)``;
- ``thresholds-exact|match|bootstrap|coupled``: ``hpa_ens.thresholds`` on the mean blend
  (``exact_thresholds``, ``match_thresholds`` to the train shares, ``robust_thresholds(method="bootstrap")``,
  ``tune_coupled`` with 50 TPE trials);
- ``dedup``: ``hpa_ens.dedup.duplicate_frame`` over random 2 x 64-bit hashes of every train and test
  image (train<->test and test<->test pairs, 8 dihedral transforms, distance <= 6);
- ``submit``: ``hpa_ens.submit.build_submission`` with thresholds, min 1 label, 300 test-test pairs,
  300 train-test pairs and their train labels.

Targets on 2 cores (issue 20): 20 models stacked in <= 5 min and <= 2 GB; every other stage <= 30 s.

    .venv/bin/python benchmarks/bench_scale.py                 # full size, 5/10/20 models (long)
    .venv/bin/python benchmarks/bench_scale.py --quick         # 2,000 + 800 rows, 2 and 4 models
    .venv/bin/python benchmarks/bench_scale.py --models 20 --stages stack
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import resource
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from results import emit  # noqa: E402

PER_MODEL = ("stack", "blend-mean", "blend-rank", "blend-weighted", "blend-caruana")
ONCE = ("thresholds-exact", "thresholds-match", "thresholds-bootstrap", "thresholds-coupled", "dedup", "submit")
STAGES = PER_MODEL + ONCE
TARGET_S = {"stack": 300.0}


def _rss_mb() -> float:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


def run_stage(stage: str, data: dict, n_models: int, folds: np.ndarray, seed: int):
    """Do one stage's work on the first ``n_models`` sets (called in a forked child)."""
    from hpa_ens.ensemble import Blender, mean_blend

    oof, test, Y = data["oof"][:n_models], data["test"][:n_models], data["Y"]
    if stage == "stack":
        from hpa_ens.commands.stack import prefer_passive_omp_wait
        from hpa_ens.ensemble import Stacker

        prefer_passive_omp_wait()  # as hpa-ens stack runs it, before lightgbm loads
        return Stacker(seed=seed, keep_models=False).fit(oof, Y, folds, X_test=test).result_.test.shape
    if stage.startswith("blend-"):
        blender = Blender(stage.split("-")[1], n_iter=25).fit(oof, Y, folds)
        return blender.predict(test).shape
    from hpa_ens import thresholds as T

    blend_oof, blend_test = mean_blend(oof), mean_blend(test)
    if stage == "thresholds-exact":
        return T.exact_thresholds(Y, blend_oof)[0].shape
    if stage == "thresholds-match":
        return T.match_thresholds(blend_test, Y.mean(axis=0)).shape
    if stage == "thresholds-bootstrap":
        return T.robust_thresholds(blend_oof, Y, method="bootstrap", seed=seed)[0].shape
    if stage == "thresholds-coupled":
        base = T.exact_thresholds(Y, blend_oof)[0]
        matched = T.match_thresholds(blend_test, Y.mean(axis=0))
        return len(T.tune_coupled(blend_oof, Y, blend_test, base, matched, Y.mean(axis=0), n_trials=50, seed=seed))
    if stage == "dedup":
        from hpa_ens import dedup

        rng = np.random.default_rng(seed)
        n_train, n_test = len(Y), len(test[0])
        tr = rng.integers(0, 2**63, size=(n_train, 2, 8), dtype=np.uint64)
        te = rng.integers(0, 2**63, size=(n_test, 2, 8), dtype=np.uint64)
        return len(dedup.duplicate_frame(data["train_ids"], tr, data["test_ids"], te, 6))
    if stage == "submit":
        import pandas as pd

        from hpa_ens.submit import build_submission

        rng = np.random.default_rng(seed)
        test_ids, train_ids = data["test_ids"], data["train_ids"]
        a, b = rng.choice(len(test_ids), 300, replace=False), rng.choice(len(test_ids), 300, replace=False)
        test_pairs = pd.DataFrame({"Id_a": [test_ids[i] for i in a], "Id_b": [test_ids[i] for i in b]})
        test_pairs = test_pairs[test_pairs.Id_a != test_pairs.Id_b]
        t = rng.choice(len(train_ids), 300, replace=False)
        train_pairs = pd.DataFrame({"Id_a": [train_ids[i] for i in t], "Id_b": [test_ids[i] for i in b]})
        train_labels = pd.DataFrame(Y[t], index=pd.Index([train_ids[i] for i in t], name="Id"))
        thr = T.exact_thresholds(Y, blend_oof)[0]
        y_pred, _, counts = build_submission(test_ids, blend_test, thr, min_labels=1, test_pairs=test_pairs,
                                             train_pairs=train_pairs, train_labels=train_labels)
        return y_pred.shape
    raise ValueError(f"The 'stage' parameter must be one of {STAGES}. Got {stage!r} instead.")


def _child(queue, stage, data, n_models, folds, seed):
    start_rss = _rss_mb()
    t0 = time.perf_counter()
    try:
        run_stage(stage, data, n_models, folds, seed)
        error = None
    except Exception as err:  # noqa: BLE001 - reported in the table, the other stages still run
        error = f"{type(err).__name__}: {str(err).splitlines()[0][:200]}"
    seconds = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    queue.put((seconds, peak, peak - start_rss, error))


def measure(stage: str, data: dict, n_models: int, folds, seed: int) -> tuple[float, float, float, str | None]:
    """(seconds, peak RSS MB, MB added by the stage, error) of one stage in a forked child."""
    ctx = mp.get_context("fork")
    queue = ctx.Queue()
    proc = ctx.Process(target=_child, args=(queue, stage, data, n_models, folds, seed))
    proc.start()
    result = queue.get()
    proc.join()
    return result


def make_data(n_rows: int, n_test: int, n_models: int, seed: int) -> dict:
    from bench_stack import load_labels

    from hpa_ens.testing.label_noise import simulate_label_noise_models

    Y_all = load_labels(seed)
    rng = np.random.default_rng(seed)
    rows = np.sort(rng.choice(len(Y_all), n_rows, replace=False)) if n_rows < len(Y_all) else np.arange(len(Y_all))
    Y, Y_test = Y_all[rows], Y_all[rng.choice(len(Y_all), n_test, replace=True)]
    probs = simulate_label_noise_models(np.vstack([Y, Y_test]), n_models, seed=seed)
    return {"oof": [np.ascontiguousarray(p[: len(Y)]) for p in probs],
            "test": [np.ascontiguousarray(p[len(Y):]) for p in probs], "Y": Y,
            "train_ids": [f"tr{i:06d}" for i in range(len(Y))], "test_ids": [f"te{i:06d}" for i in range(n_test)]}


def growth(ns, seconds) -> float | None:
    """Exponent b of seconds ~ n_models^b (least squares on logs), None with fewer than 2 points."""
    ok = [(n, s) for n, s in zip(ns, seconds) if s and s > 0]
    if len(ok) < 2:
        return None
    x, y = np.log([n for n, _ in ok]), np.log([s for _, s in ok])
    return float(np.polyfit(x, y, 1)[0])


def main(argv=None) -> int:
    from hpa_ens.utils import available_cpus
    from hpa_ens.testing.simulate import simple_folds

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="2,000 + 800 rows, 2 and 4 models, 3 folds")
    p.add_argument("--rows", type=int, default=31072)
    p.add_argument("--test-rows", type=int, default=11702)
    p.add_argument("--models", type=int, nargs="+", default=[5, 10, 20])
    p.add_argument("--folds", type=int, default=5)
    p.add_argument("--stages", nargs="+", choices=STAGES, default=list(STAGES))
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    if args.quick:
        args.rows, args.test_rows, args.models, args.folds = 2000, 800, [2, 4], 3
    data = make_data(args.rows, args.test_rows, max(args.models), args.seed)
    from bench_stack import data_suffix

    suffix = data_suffix()  # " (random labels)" in every name when ../shared is absent
    folds = simple_folds(len(data["Y"]), args.folds, args.seed)
    print(f"{len(data['Y'])} OOF + {args.test_rows} test rows, K={data['Y'].shape[1]}, models {args.models}, "
          f"{args.folds} folds; {available_cpus()} CPUs available, load {os.getloadavg()[0]:.1f}; inputs "
          f"{sum(a.nbytes for a in data['oof'] + data['test']) / 2**20:.0f} MB in the parent ({_rss_mb():.0f} MB RSS)")
    print(f"{'stage':22s} {'models':>6s} {'seconds':>9s} {'peak MB':>8s} {'added MB':>9s}")
    table: dict[str, list] = {}
    for stage in args.stages:
        for n in (args.models if stage in PER_MODEL else [max(args.models)]):
            seconds, peak, added, error = measure(stage, data, n, folds, args.seed)
            table.setdefault(stage, []).append((n, seconds))
            flag = f"  FAILED {error}" if error else ""
            target = TARGET_S.get(stage, 30.0)
            over = "" if error or seconds <= target else f"  (over the {target:.0f} s target)"
            print(f"{stage:22s} {n:6d} {seconds:9.2f} {peak:8.0f} {added:9.0f}{flag}{over}", flush=True)
            if not error:
                emit(f"{stage}, {n} models{suffix}", seconds, "s", note=f"peak RSS {peak:.0f} MB (+{added:.0f} MB); "
                     f"{len(data['Y'])}+{args.test_rows} rows; target <= {target:.0f} s", peak_mb=peak, added_mb=added,
                     models=n, rows=len(data["Y"]), test_rows=args.test_rows)
    for stage, points in table.items():
        b = growth([n for n, _ in points], [s for _, s in points])
        if b is not None:
            print(f"{stage}: time grows as n_models^{b:.2f}")
    return 0


if __name__ == "__main__":
    os.environ.setdefault("HPA_ENS_NO_PROGRESS", "1")
    sys.exit(main())
