"""``python -m hpa_ens.tune_thresholds``: per-class thresholds from a prediction set, written as thresholds.json.

``hpa-ens thresholds`` runs the same command. Rules (:data:`hpa_ens.thresholds.RULES`; docs/thresholds.md has the
benchmark that ranks them and says when to pick each):

- ``exact``: per class the OOF-F1-best cut over every distinct score (optionally ``--robust`` for rare classes);
- ``boot``: the median of the OOF-F1-best cut over bootstrap resamples (the default without a target);
- ``match``: the cut whose predicted share on the test rows meets the target share (needs no OOF rows: a
  test-only prediction set is accepted); ``--tolerance T``: the OOF-F1-best cut within ±T (relative) of it;
- ``directional``: a blend of the bootstrap OOF cut and the matched cut where the target share rises, the matched
  cut (weighted up with the size of the fall) where it falls;
- ``trusted``: ``directional`` with the matched cut trusted less where the OOF rows' F1-best count under the target
  disagrees with the announced count, and by the announced shares' sampling error (``--target-n``, a
  leaderboard probe's row count) (the default with ``--target-dist`` before ``simulated``);
- ``simulated``: one weight between the OOF-F1-best cut and the matched cut for the whole set, chosen by
  simulating label shifts toward the target on the OOF rows (with ``--target-n``, through a probe of that many
  rows) (the default with ``--target-dist`` before ``checked``);
- ``checked``: ``simulated``, except that a class whose test scores disagree with the announced share under a
  label shift (their mean more than two standard errors from what the OOF rows and the share predict) keeps the
  OOF-F1-best cut (the default with ``--target-dist``);
- ``plugin``: the expected-F1 cut of the calibrated, prior-corrected test rows (known target, or an EM estimate);
- ``optuna``: TPE over what couples the classes (exact→matched mix, global logit offset, min/max labels,
  optional per-class offsets), on a journal file or an RDB storage URL.

The legacy rules ``blend``, ``gated``, ``prior`` and ``reweight`` still run under their names.
"""

from __future__ import annotations

import argparse
import warnings
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from ..contract.inputs import StageInputs, has_oof, read_stage_inputs
from ..contract.thresholds import (BUILTIN_TARGETS, ThresholdsRecord, check_share_estimable, prediction_set_hashes,
                                   read_target_shares, target_shares_path, write_thresholds)
from ..io import sha256_file
from ..metrics import per_class_f1
from ..task import Task, load_task
from ..thresholds import (DEFAULT_WITH_TARGET, DEFAULT_WITHOUT_TARGET, RANK_RULES, apply_thresholds, available_rules,
                          check_rule_inputs, choose, cross_fitted_predictions, distribution_gap, f1_curves, fold_parts,
                          get_rule, oof_predictions, open_storage, resolve_fill_rule, resolve_method,
                          save_threshold_plots, study_name_for)
from ..thresholds import EMConvergenceWarning
from ..validation import ParameterError
from ._cli import add_deprecated_pred_alias, add_task_argument, parser, progress, prog, say, warn

NAME = "thresholds"

#: Interleaved parts of the OOF rows the reported OOF score is cross-fitted over when no --folds is given.
OOF_SCORE_PARTS = 5

#: Command-line flag (argparse dest) -> the rule parameter it sets; a rule gets the flags it takes.
FLAG_PARAMS = {"robust": "robust", "rare_max": "rare_max", "n_boot": "n_boot", "shrink_strength": "strength",
               "seed": "seed", "blend_floor": "floor", "tolerance": "tolerance", "trials": "n_trials",
               "offset_range": "offset_range", "class_offsets": "class_offsets", "storage": "storage",
               "min_labels": "min_labels", "max_labels": "max_labels", "target_n": "target_n"}


def build_parser() -> argparse.ArgumentParser:
    p = parser(NAME, __doc__.splitlines()[0])
    add_task_argument(p)
    p.add_argument("--labels", default=None, help="train labels, Id,Target (required unless the method needs no OOF rows)")
    p.add_argument("--pred", help="prediction-set folder (test.csv, oof.csv, meta.json) (required)")
    add_deprecated_pred_alias(p, nargs=None)
    p.add_argument("--out", required=True, help="thresholds JSON to write")
    # Every registered name is accepted (legacy rules too); the usage line shows the documented ones.
    p.add_argument("--method", choices=available_rules(include_legacy=True), default=None,
                   metavar="{" + ",".join(available_rules()) + "}",
                   help=f"rule; default {DEFAULT_WITH_TARGET} with --target-dist, {DEFAULT_WITHOUT_TARGET} without "
                        f"(match for a test-only set)")
    p.add_argument("--target-dist", default=None,
                   help=f"target class shares on test: a built-in name ({', '.join(BUILTIN_TARGETS)}), 'train' "
                        f"(shares of --labels) or a CSV, one row per class (class column optional, share column "
                        f"'lb' or 'share')")
    p.add_argument("--target-column", default=None, help="share column of --target-dist (default: lb, else share)")
    p.add_argument("--target-n", type=int, default=None,
                   help="rows behind the --target-dist shares (a leaderboard probe's row count): the rules that take "
                        "it trust a share only as far as its sampling error sqrt(p(1-p)/N) allows (default: exact shares)")
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
    p.add_argument("--folds", default=None,
                   help=f"folds.csv (Id,fold): the reported OOF F1 tunes the rule on the other folds for each fold "
                        f"(default: {OOF_SCORE_PARTS} interleaved parts of the OOF rows)")
    return p


# ------------------------------------------------------------------------------- checked inputs
def check_args(args, task: Task) -> None:
    """Every flag in range before anything is read or written ("Got … instead." messages)."""
    def bad(name, expected, value):
        raise ParameterError(f"The '--{name}' parameter of {prog(NAME)} must be {expected}. Got {value!r} instead.")

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
    if args.pred is None:
        raise ParameterError(f"The '--pred' parameter of {prog(NAME)} is required: a prediction-set folder. Got None "
                             f"instead.")
    if args.target_n is not None and (args.target_n < 1 or args.target_dist in (None, "train")):
        bad("target-n", "an int >= 1, given only with a --target-dist file or built-in name", args.target_n)


def rule_params(args, rule) -> dict:
    """The flags the rule takes, as its parameters (``--max-labels 0``, no cap, is None)."""
    values = {flag: getattr(args, flag) for flag in FLAG_PARAMS}
    values["max_labels"] = args.max_labels or None
    return {FLAG_PARAMS[flag]: value for flag, value in values.items() if FLAG_PARAMS[flag] in rule.params}


@dataclass
class TuningInputs:
    """What the rules read: the stage's inputs (one prediction set and its labels) plus the target shares.

    ``oof``/``y`` are None for a test-only set; ``hashes`` is what an Optuna study is keyed on.
    """

    stage: StageInputs
    target: np.ndarray | None
    hashes: dict

    @property
    def test(self) -> np.ndarray:
        return np.asarray(self.stage.test_list[0], dtype=np.float64)

    @property
    def oof(self) -> np.ndarray | None:
        return None if self.stage.oof_list is None else np.asarray(self.stage.oof_list[0], dtype=np.float64)

    @property
    def y(self) -> np.ndarray | None:
        return None if self.stage.oof_list is None else np.asarray(self.stage.Y, dtype=np.uint8)


def load_inputs(args, task: Task) -> TuningInputs:
    """Read labels, the prediction set and the target shares; check everything before any work."""
    pred = Path(args.pred)
    test_only = not has_oof(pred)
    args.method = resolve_method(args.method, args.target_dist is not None, not test_only)
    rule = get_rule(args.method)
    if args.target_n is not None and "target_n" not in rule.params:
        raise ParameterError(f"The '--target-n' parameter of {prog(NAME)} must be given only with a rule that takes it "
                             f"({', '.join(r for r in available_rules() if 'target_n' in get_rule(r).params)}): "
                             f"{args.method} reads no sampling error. Got {args.target_n!r} instead.")
    needs_oof = rule.reads_oof(rule_params(args, rule)) or args.target_dist == "train"
    if needs_oof and args.labels is None:
        raise ParameterError(f"The '--labels' parameter of {prog(NAME)} must be given for --method {args.method}"
                             f"{' and --target-dist train' if args.target_dist == 'train' else ''}. Got None instead.")
    why = f"--method {args.method}" + (" with --target-dist train" if args.target_dist == "train" else "")
    stage = read_stage_inputs([pred], args.labels, args.folds, task=task, needs_oof=why if needs_oof else None,
                              hint="--method match with a target file does not.")
    if args.folds is not None and stage.oof_list is None:
        raise ParameterError(f"The '--folds' parameter of {prog(NAME)} cross-fits the OOF score, which needs OOF rows "
                             f"and --labels; {'the set is test-only' if test_only else 'no --labels was given'}. "
                             f"Got {args.folds!r} instead.")
    test = stage.test_list[0]
    target = None
    if args.target_dist == "train":
        y = stage.Y
        target = np.clip(y.mean(axis=0), 0.5 / len(y), 1 - 0.5 / len(y))
    elif args.target_dist is not None:
        target = read_target_shares(args.target_dist, task, args.target_column)
    if target is not None and rule.reads_target:
        stage.warnings += check_share_estimable(target, len(test), task)
    check_rule_inputs(rule, stage.oof_list is not None, True, target is not None, rule_params(args, rule))
    hashes = {"labels": sha256_file(args.labels) if args.labels else None, "pred": prediction_set_hashes(pred)}
    if args.target_dist not in (None, "train"):
        hashes["target_dist"] = sha256_file(target_shares_path(args.target_dist))
    return TuningInputs(stage, target, hashes)


# ------------------------------------------------------------------------------------- the rule
def _study_key(hashes: dict, args) -> dict:
    """What one shared study is keyed on: the inputs and the search space (never the seed)."""
    return {"inputs": hashes, "target_column": args.target_column, "tolerance": args.tolerance,
            "min": args.min_labels, "max": args.max_labels, "robust": args.robust, "rare_max": args.rare_max,
            "n_boot": args.n_boot, "strength": args.shrink_strength, "offset_range": args.offset_range,
            "class_offsets": args.class_offsets}


def _jsonable(value):
    return [float(x) for x in value] if isinstance(value, np.ndarray) else value


def tune(inp: TuningInputs, args, task: Task) -> ThresholdsRecord:
    """Run the rule and build the record (thresholds, provenance, report)."""
    rule = get_rule(args.method)
    params = rule_params(args, rule)
    if "study_name" in rule.params:  # a search shared through a storage: one study for the same inputs
        if args.storage:
            open_storage(args.storage)  # a URL that cannot be opened fails here, before any work
        params["study_name"] = args.study_name or study_name_for(_study_key(inp.hashes, args))
        say(f"{rule.name}: {args.trials} trials in study {params['study_name']}"
            + (f" ({args.storage})" if args.storage else ""))
    with progress() if "progress" in rule.params else nullcontext() as bar:
        if bar is not None:  # a search reports each trial
            job = bar.add_task(f"{rule.name} trials", total=args.trials)
            params["progress"] = lambda done, total: bar.update(job, completed=done)
        # An unconverged test-share estimate becomes one warning line (and a note in thresholds.json).
        with _em_warnings_as_notes() as em_notes:
            thresholds, report = choose(args.method, inp.oof, inp.y, inp.test, inp.target,
                                        class_names=task.class_names, labels_name="--labels", **params)
    settings = {"n_boot": args.n_boot, "seed": args.seed, "blend_floor": args.blend_floor, "robust": args.robust,
                "target_n": args.target_n}
    recorded = {"target_dist": args.target_dist, "target_column": args.target_column, "tolerance": args.tolerance}
    recorded |= {key: settings[key] for key in rule.recorded(params)}
    recorded |= {key: _jsonable(value) for key, value in report["info"].items()}
    min_labels = int(report.get("min_labels", args.min_labels))
    max_labels = report.get("max_labels", args.max_labels or None)
    if inp.oof is None and args.rank_by == "posterior":
        raise ParameterError(f"The '--rank-by' parameter of {prog(NAME)} must name a rule other than posterior for a "
                             f"test-only prediction set: posterior calibrates on OOF rows. Got 'posterior' instead.")
    rank_by, posterior = resolve_fill_rule(args.rank_by, inp.oof, inp.y, inp.target)
    crossfit = {}
    if inp.oof is not None:
        with _em_warnings_as_notes() as fold_notes:
            crossfit = _cross_fitted_report(inp, args, rule, rank_by)
        unconverged = len(fold_notes)
        if unconverged and not em_notes:  # the fit itself converged: say so once for the folds' refits
            em_notes.append(f"the cross-fitted OOF score's per-fold refits: em_priors did not converge "
                            f"{unconverged} time(s); that score may be a little off")
    notes = list(inp.stage.warnings) + report["warnings"] + em_notes
    out = _report(inp, thresholds, min_labels, max_labels, rank_by, notes, posterior) | crossfit
    return ThresholdsRecord(thresholds=[float(t) for t in thresholds], method=args.method,
                            class_names=list(task.class_names), task_name=task.name, min_labels=min_labels,
                            max_labels=None if max_labels is None else int(max_labels), rank_by=rank_by,
                            posterior=None if posterior is None else posterior.to_json(),
                            prediction_set=inp.hashes["pred"], params=recorded, report=out)


@contextmanager
def _em_warnings_as_notes():
    """Collect the messages of EMConvergenceWarning raised inside (the list is filled on exit); pass others on."""
    notes: list[str] = []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", EMConvergenceWarning)
        yield notes
    for w in caught:
        if issubclass(w.category, EMConvergenceWarning):
            notes.append(str(w.message))
        else:
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno, source=w.source)


def _floats(values) -> list:
    return [float(v) for v in np.asarray(values, dtype=np.float64)]


def _report(inp: TuningInputs, thresholds, min_labels, max_labels, rank_by, notes, posterior=None) -> dict:
    test_pred = apply_thresholds(inp.test, thresholds, min_labels, max_labels, rank_by=rank_by, posterior=posterior)
    out = {"test_share": _floats(test_pred.mean(axis=0)),
           "test_labels_per_image": float(test_pred.sum(axis=1).mean()),
           "target_share": None if inp.target is None else _floats(inp.target),
           "test_distribution_gap": None if inp.target is None else distribution_gap(test_pred.mean(axis=0), inp.target),
           "n_test": int(len(inp.test)), "n_oof": 0 if inp.oof is None else int(len(inp.oof)),
           "inputs": inp.hashes, "warnings": list(notes)}
    if inp.oof is not None:
        # In sample: the cuts were tuned on these very rows (the posterior fill is cross-fitted), so this flatters
        # the rule; the reported oof_macro_f1 is the cross-fitted one (_cross_fitted_report).
        f1 = per_class_f1(inp.y, oof_predictions(inp.oof, inp.y, inp.target, thresholds, min_labels, max_labels,
                                                 rank_by))
        out |= {"oof_macro_f1_in_sample": float(f1.mean()), "oof_per_class_f1_in_sample": _floats(f1),
                "n_positives": [int(v) for v in inp.y.sum(axis=0)]}
    return out


def _cross_fitted_report(inp: TuningInputs, args, rule, rank_by: str) -> dict:
    """The OOF score of the rule on rows its cuts were not tuned on: per fold, the rule tuned on the other folds
    (``--folds``, else interleaved parts) and applied to the fold with the same label and fill rules."""
    folds = inp.stage.folds if inp.stage.folds is not None else OOF_SCORE_PARTS
    params = {k: v for k, v in rule_params(args, rule).items() if k not in ("min_labels", "max_labels")}
    pred, cuts = cross_fitted_predictions(rule.name, inp.oof, inp.y, folds, inp.test, inp.target,
                                          min_labels=args.min_labels, max_labels=args.max_labels or None,
                                          rank_by=rank_by, return_thresholds=True, **params)
    parts = fold_parts(len(inp.oof), folds)
    row_cuts = cuts[np.searchsorted(np.unique(parts), parts)]
    f1 = per_class_f1(inp.y, pred)
    return {"oof_macro_f1": float(f1.mean()), "oof_per_class_f1": _floats(f1),
            "oof_macro_f1_no_rule": float(per_class_f1(inp.y, inp.oof > row_cuts).mean()),
            "oof_score_folds": args.folds if args.folds is not None else f"{OOF_SCORE_PARTS} interleaved parts"}


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    task = load_task(args.task)
    check_args(args, task)
    inputs = load_inputs(args, task)
    record = tune(inputs, args, task)
    if args.plots:
        curves = None if inputs.oof is None else f1_curves(inputs.oof, inputs.y)
        record.plots = save_threshold_plots(args.plots, curves, record.thresholds, record.report["test_share"],
                                            record.report["target_share"], record.class_names, record.method)
    write_thresholds(args.out, record)
    for message in record.report["warnings"]:
        warn(message)
    oof = record.report.get("oof_macro_f1")
    gap = record.report["test_distribution_gap"]
    scored = (f"OOF macro F1 {oof:.4f} (cross-fitted over {record.report['oof_score_folds']}; in sample "
              f"{record.report['oof_macro_f1_in_sample']:.4f}) " if oof is not None else "")
    say(f"{record.method}: " + scored
        + f"(min {record.min_labels}, max {record.max_labels})"
        + (f"; test distribution gap {gap:.3f}" if gap is not None else "") + f"; wrote {args.out}")
    return 0
