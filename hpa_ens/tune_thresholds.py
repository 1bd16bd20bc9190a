"""``python -m hpa_ens.tune_thresholds``: per-class thresholds from a prediction set, written as thresholds.json.

Methods (docs/thresholds.md has the benchmark that ranks them):

- ``exact``: per class the OOF-F1-best cut over every distinct score (optionally ``--robust`` for rare classes);
- ``boot``: the median of the OOF-F1-best cut over bootstrap resamples (the default without a target);
- ``match``: the cut whose predicted share on the test rows meets the target share (needs no OOF rows: a
  test-only prediction set is accepted); ``--tolerance T``: the OOF-F1-best cut within ±T (relative) of it;
- ``blend``: per-class trust-weighted blend of the bootstrap OOF cut and the matched cut; ``gated``: the
  same blend opened per class only as far as the target share differs from train; ``directional``: ``gated``
  where the target share rises, the matched cut (weighted up with the size of the fall) where it falls (the
  default with ``--target-dist``);
- ``prior``, ``reweight``, ``plugin``: prior-shift corrections (known target, or an EM estimate without one);
- ``optuna``: TPE over what couples the classes (exact→matched mix, global logit offset, min/max labels,
  optional per-class offsets), on a journal file or an RDB storage URL.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

from . import shift as S
from . import thresholds as T
from .validation import ContractError, ParameterError
from .cli import add_task_argument, console, entry, parser
from .contract.thresholds import (ThresholdsRecord, check_share_estimable, prediction_set_hashes,
                                  read_target_shares, write_thresholds)
from .decision import RANK_RULES, default_rank_rule
from .io import sha256_file
from .report import save_figure
from .task import Task, load_task

PROG = "python -m hpa_ens.tune_thresholds"
METHOD_CHOICES = S.METHODS + ("optuna",)


def build_parser():
    p = parser(PROG, __doc__.splitlines()[0])
    add_task_argument(p)
    p.add_argument("--labels", default=None, help="train labels, Id,Target (required unless the method needs no OOF rows)")
    p.add_argument("--pred", "--models", required=True, help="prediction-set folder (test.csv, oof.csv, meta.json)")
    p.add_argument("--out", required=True, help="thresholds JSON to write")
    p.add_argument("--method", choices=METHOD_CHOICES, default=None,
                   help=f"rule; default {S.DEFAULT_WITH_TARGET} with --target-dist, {S.DEFAULT_WITHOUT_TARGET} without "
                        f"(match for a test-only set)")
    p.add_argument("--target-dist", default=None,
                   help="target class shares on test: 'train' (shares of --labels) or a CSV, one row per class "
                        "(class column optional, share column 'lb' or 'share')")
    p.add_argument("--target-column", default=None, help="share column of --target-dist (default: lb, else share)")
    p.add_argument("--tolerance", type=float, default=None,
                   help="match: relative band |test share - target| <= T*target; optuna: feasible when "
                        "sum|test share - target| / sum(target) <= T")
    p.add_argument("--min-labels", type=int, default=None, help="labels forced per row (default: the task's, else 1)")
    p.add_argument("--max-labels", type=int, default=None, help="cap on labels per row, 0 = no cap (default: the task's)")
    p.add_argument("--rank-by", choices=RANK_RULES, default=None,
                   help="how rows are topped up to --min-labels (default: posterior with OOF rows and --target-dist, "
                        "else ratio; docs/thresholds.md)")
    p.add_argument("--robust", choices=["none", "bootstrap", "shrink"], default="none",
                   help="exact: robust thresholds for rare classes (fewer than --rare-max positives)")
    p.add_argument("--rare-max", type=int, default=100, help="a class with fewer positives is rare")
    p.add_argument("--n-boot", type=int, default=50, help="bootstrap resamples (boot, blend, reweight, --robust bootstrap)")
    p.add_argument("--blend-floor", type=float, default=None,
                   help="blend rules: common logit spread floor (default: blend 0.25, gated and directional 1.0)")
    p.add_argument("--shrink-strength", type=float, default=50.0,
                   help="positives at which exact cut and F1*/2 weigh equally (--robust shrink)")
    p.add_argument("--storage", default=None,
                   help="optuna: a JournalStorage file, or an RDB URL (sqlite:///study.db, postgresql://…)")
    p.add_argument("--study-name", default=None, help="optuna: study name (default: derived from the inputs)")
    p.add_argument("--trials", type=int, default=100, help="optuna: trials run by this process")
    p.add_argument("--offset-range", type=float, default=1.0, help="optuna: global logit offset in ±this")
    p.add_argument("--class-offsets", type=float, default=0.0,
                   help="optuna: per-class logit offsets in ±this around each cut (0 = off)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--plots", default=None, help="folder for PNG plots (F1 curves, shares); paths go in the JSON")
    return p


# ------------------------------------------------------------------------------- checked inputs
def check_args(args, task: Task) -> None:
    """Every flag in range before anything is read or written ("Got … instead." messages)."""
    def bad(name, expected, value):
        raise ParameterError(f"The '--{name}' parameter of {PROG} must be {expected}. Got {value!r} instead.")

    K = task.n_classes
    if args.min_labels is None:
        args.min_labels = task.min_labels if task.min_labels is not None else 1
    if args.max_labels is None:
        args.max_labels = task.max_labels or 0
    if not 0 <= args.min_labels <= K:
        bad("min-labels", f"an int in [0, {K}]", args.min_labels)
    if args.max_labels < 0 or (args.max_labels and args.max_labels < max(1, args.min_labels)):
        bad("max-labels", "0 (no cap) or an int >= max(1, --min-labels)", args.max_labels)
    for name in ("tolerance", "offset_range", "class_offsets", "shrink_strength"):
        value = getattr(args, name)
        if value is not None and not (np.isfinite(value) and value >= 0):
            bad(name.replace("_", "-"), "a finite float >= 0", value)
    if args.blend_floor is not None and not (np.isfinite(args.blend_floor) and args.blend_floor > 0):
        bad("blend-floor", "a finite float > 0", args.blend_floor)
    for name, low in (("trials", 1), ("rare_max", 0), ("n_boot", 1)):
        if getattr(args, name) < low:
            bad(name.replace("_", "-"), f"an int >= {low}", getattr(args, name))
    if args.storage is not None and args.method != "optuna":
        bad("storage", "given only with --method optuna", args.storage)


@dataclass
class Inputs:
    """What the rules read, aligned by Id (``y``/``oof`` None for a test-only set)."""

    test: np.ndarray
    oof: np.ndarray | None
    y: np.ndarray | None
    target: np.ndarray | None
    pred_hashes: dict
    input_hashes: dict
    warnings: list = field(default_factory=list)


def read_labels_for_task(path, task: Task) -> tuple[list[str], np.ndarray, list[str]]:
    """``Id,Target`` through :func:`hpa_ens.labels.read_labels` for ``task``; its warnings (rows with no
    label) are returned to be printed and recorded.

    Returns
    -------
    ids : list of str
    y : ndarray of shape (n_rows, K), uint8
    warnings : list of str
    """
    import warnings

    from .labels import read_labels

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        labels = read_labels(path, task=task)
    return labels.index.tolist(), labels.to_numpy(dtype=np.uint8), [str(w.message) for w in caught]


def read_prediction_set_for(folder, train_ids, task: Task, need_oof: str | bool):
    """The contract's reader with the task and the test-only rule (``need_oof``: why OOF rows are needed)."""
    from .contract import read_prediction_set

    return read_prediction_set(folder, train_ids=train_ids, task=task, require_oof=need_oof)


def resolve_method(method: str | None, has_target: bool, has_oof: bool) -> str:
    """The rule to run: the given one, else the benchmark's default (``match`` for a test-only set)."""
    if method is not None:
        return method
    if not has_oof and has_target:
        return "match"
    return S.default_method(has_target)


def load_inputs(args, task: Task) -> Inputs:
    """Read labels, the prediction set and the target shares; check everything before any work."""
    pred = Path(args.pred)
    test_only = not any((pred / f"oof{ext}").is_file() for ext in (".csv", ".parquet"))
    args.method = resolve_method(args.method, args.target_dist is not None, not test_only)
    needs_oof = (args.method in S.NEEDS_OOF or args.method == "optuna" or args.target_dist == "train"
                 or (args.method == "match" and args.tolerance is not None))
    if needs_oof and args.labels is None:
        raise ParameterError(f"The '--labels' parameter of {PROG} must be given for --method {args.method}"
                             f"{' and --target-dist train' if args.target_dist == 'train' else ''}. Got None instead.")
    ids, y, notes = read_labels_for_task(args.labels, task) if args.labels else (None, None, [])
    why = f"--method {args.method}" + (" with --target-dist train" if args.target_dist == "train" else "") if needs_oof else False
    pset = read_prediction_set_for(pred, ids if not test_only else None, task, why)
    if pset.oof is None and needs_oof:
        raise ContractError(f"{pred}: a test-only prediction set (no oof.csv); {why} needs out-of-fold rows "
                            f"(--method match with a target file does not).")
    test = pset.test.to_numpy(dtype=np.float64)
    if test.shape[1] != task.n_classes:
        raise ContractError(f"{pred}: {test.shape[1]} class columns for the task {task.name!r} ({task.n_classes}).")
    target = None
    if args.target_dist == "train":
        target = np.clip(y.mean(axis=0), 0.5 / len(y), 1 - 0.5 / len(y))
    elif args.target_dist is not None:
        target = read_target_shares(args.target_dist, task, args.target_column)
    if target is not None and args.method not in ("exact", "boot"):
        notes += check_share_estimable(target, len(test), task)
    S.check_method_inputs({"optuna": "exact"}.get(args.method, args.method), pset.oof is not None, True,
                          target is not None)
    hashes = {"labels": sha256_file(args.labels) if args.labels else None, "pred": prediction_set_hashes(pred)}
    if args.target_dist not in (None, "train"):
        hashes["target_dist"] = sha256_file(args.target_dist)
    oof = None if pset.oof is None else pset.oof.to_numpy(dtype=np.float64)
    return Inputs(test, oof, y if oof is not None else None, target, prediction_set_hashes(pred), hashes, notes)


# ------------------------------------------------------------------------------------- the rules
def no_positive_rule(thresholds, n_pos, target, class_names, matched=None, source: str = "the labels"):
    """Classes with no OOF positive: never predict, unless a target share says the class occurs.

    Parameters
    ----------
    thresholds : ndarray of shape (K,), changed in place
    n_pos : array-like of shape (K,)
    target : ndarray of shape (K,) or None
    class_names : sequence of str
    matched : ndarray of shape (K,), optional, the matched cut (used where a target is given)

    Returns
    -------
    warnings : list of str, one per class without positives
    """
    notes = []
    for k in np.flatnonzero(np.asarray(n_pos) == 0):
        follow = target is not None and matched is not None
        thresholds[k] = matched[k] if follow else T.NEVER
        notes.append(f"class {k} ({class_names[k]}) has no positives in {source}; threshold "
                     + (f"matched to target share {target[k]:.4g}." if follow else "set to never predict (1.0)."))
    return notes


def study_name_for(hashes: dict, args) -> str:
    """One study for every process given the same inputs and search space (never the seed)."""
    key = {"inputs": hashes, "target_column": args.target_column, "tolerance": args.tolerance,
           "min": args.min_labels, "max": args.max_labels, "robust": args.robust, "rare_max": args.rare_max,
           "n_boot": args.n_boot, "strength": args.shrink_strength, "offset_range": args.offset_range,
           "class_offsets": args.class_offsets}
    return "thresholds-" + hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]


def journal_storage(path: str):
    """An Optuna JournalStorage on a file: safe for several processes appending to one study."""
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    Path(path).parent.mkdir(parents=True, exist_ok=True)
    return JournalStorage(JournalFileBackend(str(path)))


def open_storage(spec: str):
    """An Optuna storage from ``--storage``: an RDB URL (``sqlite:///f.db``, ``postgresql://…``) or a journal file.

    Raises
    ------
    ContractError
        When the URL cannot be opened (one line naming it).
    """
    if "://" not in spec:
        return journal_storage(spec)
    import optuna

    # SQLite lets one writer in at a time; its default 5 s lock wait fails workers on a busy machine.
    engine_kwargs = {"connect_args": {"timeout": 120}} if spec.startswith("sqlite") else None
    try:
        return optuna.storages.RDBStorage(spec, heartbeat_interval=None, engine_kwargs=engine_kwargs)
    except Exception as err:  # noqa: BLE001 - SQLAlchemy/driver errors of every kind: one line naming the URL
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ContractError(f"{spec}: cannot open the Optuna storage ({type(err).__name__}: {reason[:200]}).") from None


def _run_optuna(inp: Inputs, args, base, matched, target, max_labels, K: int):
    storage = open_storage(args.storage) if args.storage else None
    study_name = args.study_name or study_name_for(inp.input_hashes, args)
    console.print(f"optuna: {args.trials} trials in study {study_name}" + (f" ({args.storage})" if args.storage else ""))
    result = T.tune_coupled(
        inp.oof, inp.y, inp.test, base, matched, target, n_trials=args.trials, seed=args.seed,
        tolerance=args.tolerance, min_labels_range=(0, args.min_labels),
        max_labels_range=(max(1, args.min_labels), max_labels or K), offset_range=args.offset_range,
        class_offset_range=args.class_offsets, storage=storage, study_name=study_name,
        show_progress=os.environ.get("HPA_ENS_NO_PROGRESS") != "1")
    params = {"trials": args.trials, "seed": args.seed, "storage": args.storage, "study_name": study_name,
              "offset_range": args.offset_range, "class_offsets": args.class_offsets,
              "best_params": result["params"], "best_trial": result["best_trial"],
              "n_trials_total": result["n_trials_total"], "feasible": result["feasible"],
              "distribution_gap": result["distribution_gap"]}
    notes = [] if result["feasible"] or args.tolerance is None else [
        f"no trial met the distribution constraint (gap <= {args.tolerance}); the best infeasible trial was kept."]
    return result["thresholds"], result["min_labels"], result["max_labels"], params, notes


def choose(inp: Inputs, args, task: Task) -> ThresholdsRecord:
    """Run the rule and build the record (thresholds, provenance, report)."""
    K, method, max_labels, min_labels = task.n_classes, args.method, args.max_labels or None, args.min_labels
    notes = list(inp.warnings)
    params: dict = {"target_dist": args.target_dist, "target_column": args.target_column, "tolerance": args.tolerance}
    target_or_train = inp.target if inp.target is not None else (None if inp.y is None else
                                                                  np.clip(inp.y.mean(0), 0.5 / len(inp.y), 1 - 0.5 / len(inp.y)))
    matched = T.match_thresholds(inp.test, target_or_train) if target_or_train is not None else None
    if method == "match" and args.tolerance is not None and inp.oof is not None:
        thresholds = T.match_thresholds_within(T.f1_curves(inp.oof, inp.y), inp.test, inp.target, args.tolerance)
    elif method in ("exact", "optuna"):
        thresholds, rare = T.robust_thresholds(inp.oof, inp.y, args.robust, args.rare_max, args.n_boot,
                                               args.shrink_strength, args.seed)
        params |= {"robust": args.robust, "rare_classes": [int(k) for k in np.flatnonzero(rare)]}
    else:
        thresholds, info = S.tune_thresholds(method, inp.oof, inp.y, inp.test, inp.target, n_boot=args.n_boot,
                                             floor=args.blend_floor, seed=args.seed)
        params |= {"n_boot": args.n_boot, "seed": args.seed, "blend_floor": args.blend_floor}
        params |= {k: [float(x) for x in v] for k, v in info.items()}
    if inp.y is not None and method != "match":
        notes += no_positive_rule(thresholds, inp.y.sum(axis=0), inp.target, task.class_names, matched, "--labels")
    if method == "optuna":
        thresholds, min_labels, max_labels, extra, more = _run_optuna(inp, args, thresholds, matched,
                                                                      target_or_train, max_labels, K)
        params |= extra
        notes += more
    rank_by, posterior = resolve_fill_rule(args.rank_by, inp.oof, inp.y, inp.target)
    report = _report(inp, thresholds, min_labels, max_labels, rank_by, notes, posterior)
    return ThresholdsRecord(thresholds=[float(t) for t in thresholds], method=method,
                            class_names=list(task.class_names), task_name=task.name, min_labels=int(min_labels),
                            max_labels=None if max_labels is None else int(max_labels), rank_by=rank_by,
                            posterior=None if posterior is None else posterior.to_json(),
                            prediction_set=inp.pred_hashes, params=params, report=report)


def resolve_fill_rule(rank_by: str | None, oof=None, y=None, target=None):
    """``--rank-by`` (None: :func:`hpa_ens.decision.default_rank_rule`) and, for ``posterior``, the calibration
    fitted on the OOF rows ``oof``/``y`` ``(n, K)`` toward ``target`` ``(K,)`` (train shares without a target)."""
    from .calibration import Posterior

    rank_by = rank_by or default_rank_rule(oof is not None, target is not None)
    if rank_by != "posterior":
        return rank_by, None
    if oof is None:
        raise ParameterError(f"The '--rank-by' parameter of {PROG} must name a rule other than posterior for a test-only "
                             f"prediction set: posterior calibrates on OOF rows. Got 'posterior' instead.")
    return rank_by, Posterior.fit(oof, y, target)


def _floats(values) -> list:
    return [float(v) for v in np.asarray(values, dtype=np.float64)]


def oof_predictions(oof, y, target, thresholds, min_labels, max_labels, rank_by, n_splits: int = 5) -> np.ndarray:
    """OOF label sets ``(n, K)`` under the thresholds and the fill rule, for reports.

    A ``posterior`` fill is cross-fitted: each of ``n_splits`` interleaved parts of the OOF rows is filled by
    a calibration fitted on the other parts, so the reported OOF F1 is not flattered by a calibration that
    saw the very rows it fills (rows are independent under the rule, so the parts simply concatenate).
    """
    from .calibration import Posterior
    from .decision import apply_thresholds

    if rank_by != "posterior":
        return apply_thresholds(oof, thresholds, min_labels, max_labels, rank_by=rank_by)
    out = np.zeros(oof.shape, dtype=bool)
    part = np.arange(len(oof)) % n_splits
    for j in range(min(n_splits, len(oof))):
        rows = part == j
        posterior = Posterior.fit(oof[~rows], y[~rows], target) if (~rows).any() else None
        out[rows] = apply_thresholds(oof[rows], thresholds, min_labels, max_labels, rank_by, posterior)
    return out


def _report(inp: Inputs, thresholds, min_labels, max_labels, rank_by, notes, posterior=None) -> dict:
    from .decision import apply_thresholds
    from .metrics import per_class_f1

    test_pred = apply_thresholds(inp.test, thresholds, min_labels, max_labels, rank_by=rank_by, posterior=posterior)
    out = {"test_share": _floats(test_pred.mean(axis=0)),
           "test_labels_per_image": float(test_pred.sum(axis=1).mean()),
           "target_share": None if inp.target is None else _floats(inp.target),
           "test_distribution_gap": None if inp.target is None else T.distribution_gap(test_pred.mean(axis=0), inp.target),
           "n_test": int(len(inp.test)), "n_oof": 0 if inp.oof is None else int(len(inp.oof)),
           "inputs": inp.input_hashes, "warnings": list(notes)}
    if inp.oof is not None:
        f1 = per_class_f1(inp.y, oof_predictions(inp.oof, inp.y, inp.target, thresholds, min_labels,
                                                          max_labels, rank_by))
        out |= {"oof_macro_f1": float(f1.mean()), "oof_per_class_f1": _floats(f1),
                "oof_macro_f1_no_rule": float(per_class_f1(inp.y, inp.oof > np.asarray(thresholds)).mean()),
                "n_positives": [int(v) for v in inp.y.sum(axis=0)]}
    return out


# ------------------------------------------------------------------------------------------ plots
def save_plots(folder: Path, inp: Inputs, record: ThresholdsRecord) -> list[str]:
    """``f1_curves.png`` (OOF F1 vs threshold per class, chosen cut marked; needs OOF rows) and ``shares.png``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    folder.mkdir(parents=True, exist_ok=True)
    names, thresholds = record.class_names, np.asarray(record.thresholds)
    figures = []
    if inp.oof is not None:
        figures.append(("f1_curves.png", _curves_figure(plt, T.f1_curves(inp.oof, inp.y), thresholds, names, record.method)))
    figures.append(("shares.png", _shares_figure(plt, record.report["test_share"], record.report["target_share"],
                                                 names, record.method)))
    return [str(save_figure(fig, folder / name, dpi=80)) for name, fig in figures]


def _curves_figure(plt, curves: T.CutCurves, thresholds, names, title):
    K = len(names)
    cols = min(7, K)
    rows = -(-K // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3 * cols, 2.75 * rows), sharey=True, squeeze=False)
    f1_at = curves.f1_at(thresholds)
    for k, ax in enumerate(axes.ravel()):
        if k >= K:
            ax.axis("off")
            continue
        ok = np.flatnonzero(curves.f1[k] >= 0)
        ok = ok[curves.thresholds[k, ok] < T.NEVER]
        if len(ok) > 2000:
            # 31k cuts add nothing visible: keep cuts evenly spread in rank and in threshold.
            by_rank = ok[np.linspace(0, len(ok) - 1, 1000).astype(int)]
            by_value = ok[np.minimum(np.searchsorted(-curves.thresholds[k, ok], -np.linspace(1, 0, 1000)), len(ok) - 1)]
            ok = np.union1d(by_rank, by_value)
        ax.plot(curves.thresholds[k, ok], curves.f1[k, ok], lw=1)
        ax.axvline(min(float(thresholds[k]), 1.0), color="red", lw=1, ls="--")
        ax.set_title(f"{k} {names[k][:18]} (n={int(curves.n_pos[k])})\nF1 {f1_at[k]:.3f} at {thresholds[k]:.3f}",
                     fontsize=8)
        ax.set_xlim(0, 1)
        ax.tick_params(labelsize=7)
    fig.suptitle(f"OOF F1 vs threshold per class ({title}); red: chosen cut")
    fig.tight_layout()
    return fig


def _shares_figure(plt, test_share, target_share, names, title):
    fig, ax = plt.subplots(figsize=(max(6, 0.5 * len(names)), 5))
    x = np.arange(len(names))
    if target_share is not None:
        ax.bar(x - 0.2, target_share, width=0.4, label="target share")
    ax.bar(x + 0.2, test_share, width=0.4, label="predicted test share")
    ax.set_yscale("log")
    ax.set_xticks(x, [f"{k} {names[k][:14]}" for k in x], rotation=70, fontsize=7)
    ax.set_ylabel("share of rows (log)")
    ax.set_title(f"Predicted test share vs target per class ({title})")
    ax.legend()
    fig.tight_layout()
    return fig


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    task = load_task(args.task)
    check_args(args, task)
    inputs = load_inputs(args, task)
    record = choose(inputs, args, task)
    if args.plots:
        record.plots = save_plots(Path(args.plots), inputs, record)
    write_thresholds(args.out, record)
    for message in record.report["warnings"]:
        console.print(f"[yellow]warning:[/yellow] {message}", soft_wrap=True)
    oof = record.report.get("oof_macro_f1")
    gap = record.report["test_distribution_gap"]
    console.print(f"{record.method}: " + (f"OOF macro F1 {oof:.4f} " if oof is not None else "")
                  + f"(min {record.min_labels}, max {record.max_labels})"
                  + (f"; test distribution gap {gap:.3f}" if gap is not None else "") + f"; wrote {args.out}")
    return 0


if __name__ == "__main__":
    entry(main)
