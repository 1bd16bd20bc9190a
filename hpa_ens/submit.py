"""The Kaggle submission: probabilities -> labels, then duplicates and leaks, with a change log.

Steps, in this order (the order the winners used):

1. test<->test duplicates: the probabilities of each group of duplicate test images are averaged;
2. thresholds, then the min/max-labels rule (:func:`hpa_ens.decision.apply_thresholds`, the same code
   that tuned them);
3. train<->test duplicates: the test image takes its train twin's labels (the nearest twin; ties: union);
4. leak files, last.

Every row a step changes is logged to ``<out stem>.changes.csv`` (``Id,before,after,source``); a summary
(rows changed per step, predicted class shares against a target) is printed and written to
``<out stem>.summary.json``. ``--check`` validates any submission file against the sample submission.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from ._validation import ContractError, check_param, check_thresholds, read_csv_strings
from .classes import N_CLASSES
from .decision import apply_thresholds
from .labels import matrix_to_targets
from ._validation import ContractError, ParameterError

CHANGE_COLUMNS = ["Id", "before", "after", "source"]


# ------------------------------------------------------------------------------------- pure core
def duplicate_groups(ids: Sequence[str], pairs: Sequence[tuple[str, str]]) -> np.ndarray:
    """Connected components of the duplicate graph over ``ids`` (union-find).

    Parameters
    ----------
    ids : sequence of str, length n
    pairs : sequence of (Id, Id); pairs naming an Id outside ``ids`` are ignored

    Returns
    -------
    groups : ndarray of shape (n,), int64; equal values = one group, numbered by first member
    """
    from .groups import group_codes, merge_pairs

    ids = list(ids)
    known = set(ids)
    inside = [(a, b) for a, b in pairs if a in known and b in known]
    return group_codes(merge_pairs(inside, ids=ids), ids)


def average_groups(probs: np.ndarray, groups: np.ndarray) -> np.ndarray:
    """Replace each row by the mean of its group's rows.

    Parameters
    ----------
    probs : ndarray of shape (n_samples, n_classes)
    groups : ndarray of shape (n_samples,), int

    Returns
    -------
    averaged : ndarray of shape (n_samples, n_classes), float64
    """
    probs = np.asarray(probs, dtype=np.float64)
    n_groups = int(groups.max()) + 1 if len(groups) else 0
    sums = np.zeros((n_groups, probs.shape[1]))
    np.add.at(sums, groups, probs)
    counts = np.bincount(groups, minlength=n_groups).astype(np.float64)
    return sums[groups] / counts[groups, None]


def train_twin_labels(
    pairs: pd.DataFrame, train_labels: pd.DataFrame, test_ids: Sequence[str]
) -> tuple[pd.DataFrame, pd.Series, dict]:
    """Labels each test image takes from its train duplicates.

    Parameters
    ----------
    pairs : DataFrame with Id_a (train), Id_b (test) and optionally distance
    train_labels : DataFrame indexed by train Id, columns 0..27
    test_ids : the test Ids

    Returns
    -------
    labels : DataFrame indexed by test Id, columns 0..27, uint8 (union of the nearest twins' labels)
    sources : Series indexed by test Id, "train-test:<train Id>[+<train Id>] d=<distance>"
    info : dict, ``skipped_not_test``/``skipped_not_train``: pairs whose Id was unknown
    """
    test_set = set(test_ids)
    known_test = pairs["Id_b"].isin(test_set)
    known_train = pairs["Id_a"].isin(train_labels.index)
    info = {"skipped_not_test": int((~known_test).sum()), "skipped_not_train": int((known_test & ~known_train).sum())}
    use = pairs.loc[known_test & known_train]
    distance = pd.to_numeric(use["distance"], errors="coerce") if "distance" in use.columns else pd.Series(0, index=use.index)
    use = use.assign(distance=distance.fillna(0).to_numpy())
    nearest = use.loc[use["distance"] == use.groupby("Id_b")["distance"].transform("min")]
    Y = train_labels.loc[nearest["Id_a"]].to_numpy(np.uint8)
    frame = pd.DataFrame(Y, columns=range(N_CLASSES))
    frame.insert(0, "Id", nearest["Id_b"].to_numpy())
    labels = frame.groupby("Id", sort=False).max().astype(np.uint8)
    where = nearest.assign(d=nearest["distance"].map(lambda d: f"{d:g}"))
    sources = where.groupby("Id_b", sort=False).agg(a=("Id_a", "+".join), d=("d", "first"))
    sources = ("train-test:" + sources["a"] + " d=" + sources["d"]).rename("source")
    sources.index.name = labels.index.name = "Id"
    return labels, sources.loc[labels.index], info


def _log_changes(ids: np.ndarray, before: np.ndarray, after: np.ndarray, sources) -> pd.DataFrame:
    changed = np.flatnonzero((before != after).any(axis=1))
    src = np.asarray(sources, dtype=object)
    return pd.DataFrame({
        "Id": ids[changed],
        "before": matrix_to_targets(before[changed]),
        "after": matrix_to_targets(after[changed]),
        "source": src[changed] if src.ndim else [str(sources)] * len(changed),
    })


def build_submission(
    ids: Sequence[str],
    probs: np.ndarray,
    thresholds,
    min_labels: int = 1,
    max_labels: int | None = None,
    test_pairs: pd.DataFrame | None = None,
    train_pairs: pd.DataFrame | None = None,
    train_labels: pd.DataFrame | None = None,
    leak: tuple[pd.DataFrame, pd.Series] | None = None,
) -> tuple[np.ndarray, pd.DataFrame, dict]:
    """Apply the four steps; return the label matrix, the change log and per-step counts.

    Parameters
    ----------
    ids : sequence of str, length n (the sample submission's order)
    probs : ndarray of shape (n, 28), aligned to ``ids``
    thresholds : float or array-like of shape (28,)
    test_pairs : DataFrame Id_a, Id_b (test-test duplicates), optional
    train_pairs : DataFrame Id_a (train), Id_b (test), distance, optional; needs ``train_labels``
    leak : (labels DataFrame indexed by Id, sources Series) from :func:`hpa_ens.leak.leak_labels`

    Returns
    -------
    y_pred : ndarray of shape (n, 28), bool
    changes : DataFrame Id,before,after,source
    steps : dict step name -> number of rows changed (plus skip counts)
    """
    ids_arr = np.asarray(list(ids), dtype=object)
    probs = np.asarray(probs, dtype=np.float64)
    thr = check_thresholds(thresholds, probs.shape[1])
    steps: dict[str, int] = {}
    logs = []

    base = apply_thresholds(probs, thr, min_labels, max_labels)
    used = probs
    # 1. test-test duplicates: average, then threshold the averaged probabilities.
    if test_pairs is not None and len(test_pairs):
        groups = duplicate_groups(ids_arr.tolist(), zip(test_pairs["Id_a"], test_pairs["Id_b"]))
        averaged = used = average_groups(probs, groups)
        y_pred = apply_thresholds(averaged, thr, min_labels, max_labels)
        members = pd.Series(ids_arr).groupby(groups).agg("+".join).to_numpy()
        sources = np.array(["test-test:" + m for m in members[groups]], dtype=object)
        in_pair = set(test_pairs["Id_a"]) | set(test_pairs["Id_b"])
        steps["1. test-test Ids skipped (not in test)"] = int(len(in_pair - set(ids_arr.tolist())))
        steps["1. test-test images in groups"] = int((np.bincount(groups)[groups] > 1).sum())
        logs.append(_log_changes(ids_arr, base, y_pred, sources))
        steps["1. test-test average"] = int(len(logs[-1]))
    else:
        y_pred = base
        steps["1. test-test average"] = 0
    steps["2. min/max labels rule (rows topped up or trimmed)"] = int(((used > thr) != y_pred).any(axis=1).sum())

    # 3. train-test duplicates: the train twin's labels.
    row_of = {image_id: k for k, image_id in enumerate(ids_arr)}
    if train_pairs is not None and len(train_pairs):
        if train_labels is None:
            raise ParameterError("The 'train_labels' parameter must be given when there are train-test duplicates "
                             "(--train-labels). Got None instead.")
        twin, twin_src, info = train_twin_labels(train_pairs, train_labels, ids_arr.tolist())
        steps["3. train-test skipped (Id unknown)"] = info["skipped_not_test"] + info["skipped_not_train"]
        y_pred, n = _override(ids_arr, y_pred, twin, twin_src, row_of, logs)
        steps["3. train-test labels"] = n
    else:
        steps["3. train-test labels"] = 0

    # 4. leaks, last.
    if leak is not None:
        leak_y, leak_src = leak
        y_pred, n = _override(ids_arr, y_pred, leak_y, "leak:" + leak_src.astype(str), row_of, logs)
        steps["4. leak labels"] = n
    else:
        steps["4. leak labels"] = 0
    changes = pd.concat(logs, ignore_index=True) if logs else pd.DataFrame({c: pd.Series(dtype=object) for c in CHANGE_COLUMNS})
    return y_pred, changes[CHANGE_COLUMNS], steps


def _override(ids_arr, y_pred, labels: pd.DataFrame, sources: pd.Series, row_of, logs) -> tuple[np.ndarray, int]:
    """Set rows of ``y_pred`` to ``labels`` (by Id), log what changed; returns (new y_pred, n changed)."""
    rows = np.array([row_of[i] for i in labels.index if i in row_of], dtype=np.int64)
    keep = [i for i in labels.index if i in row_of]
    after = y_pred.copy()
    after[rows] = labels.loc[keep].to_numpy().astype(bool)
    src = np.full(len(ids_arr), "", dtype=object)
    src[rows] = sources.loc[keep].to_numpy()
    logs.append(_log_changes(ids_arr, y_pred, after, src))
    return after, int(len(logs[-1]))


# ------------------------------------------------------------------------------------------ check
def check_submission_frame(df: pd.DataFrame, sample_ids: Sequence[str], source: str) -> dict:
    """Validate a submission read as strings; raise ContractError (one line) or return a report.

    Errors: header other than ``Id,Predicted``; a missing, extra or repeated Id; Ids in another order
    than the sample submission; a token that is not a class id 0..27; a class repeated in a row.
    Warnings (counted, not refused; Kaggle accepts them): empty rows, labels not sorted ascending,
    extra spaces.

    Returns
    -------
    report : dict with n_rows, n_empty, n_unsorted, n_spacing, mean_labels, shares (28 floats)
    """
    if list(df.columns) != ["Id", "Predicted"]:
        raise ContractError(f"{source}: the header must be exactly Id,Predicted. Got {','.join(map(str, df.columns))} instead.")
    ids = df["Id"].tolist()
    sample_ids = list(sample_ids)
    seen: dict[str, int] = {}
    for row, image_id in enumerate(ids, start=1):
        if image_id in seen:
            raise ContractError(f"{source}, row {row}: Id {image_id!r} appears again (first at row {seen[image_id]}). "
                                f"Got a repeated Id instead of each Id once.")
        seen[image_id] = row
    sample_set = set(sample_ids)
    extra = [i for i in ids if i not in sample_set]
    if extra:
        raise ContractError(f"{source}, row {seen[extra[0]]}: {len(extra)} Ids are not in the sample submission; "
                            f"first {extra[0]!r}.")
    missing = [i for i in sample_ids if i not in seen]
    if missing:
        raise ContractError(f"{source}: {len(missing)} Ids of the sample submission are missing (got {len(ids)} rows, "
                            f"expected {len(sample_ids)}); first {missing[0]!r}.")
    for row, (got, want) in enumerate(zip(ids, sample_ids), start=1):
        if got != want:
            raise ContractError(f"{source}, row {row}: Ids must follow the sample submission's order; expected "
                                f"{want!r}. Got {got!r} instead.")
    Y = np.zeros((len(df), N_CLASSES), dtype=bool)
    n_empty = n_unsorted = n_spacing = 0
    for row, text in enumerate(df["Predicted"].tolist(), start=1):
        text = str(text)
        tokens = text.split()
        if not tokens:
            n_empty += 1
            continue
        if " ".join(tokens) != text:
            n_spacing += 1
        values = []
        for tok in tokens:
            if not tok.isdigit() or int(tok) >= N_CLASSES:
                raise ContractError(f"{source}, row {row}: Predicted must hold class ids 0..{N_CLASSES - 1} separated "
                                    f"by spaces. Got {text!r} instead.")
            values.append(int(tok))
        if len(set(values)) != len(values):
            raise ContractError(f"{source}, row {row}: a class id is repeated in Predicted. Got {text!r} instead.")
        if values != sorted(values):
            n_unsorted += 1
        Y[row - 1, values] = True
    return {"n_rows": int(len(df)), "n_empty": n_empty, "n_unsorted": n_unsorted, "n_spacing": n_spacing,
            "mean_labels": float(Y.sum(axis=1).mean()), "shares": Y.mean(axis=0).tolist()}


def check_submission(path, sample_submission) -> dict:
    """Validate the submission file at ``path`` against the sample submission file."""
    from .labels import read_sample_submission

    df = read_csv_strings(path, "a header Id,Predicted and one row per test Id")
    return check_submission_frame(df, read_sample_submission(sample_submission), str(path))


# -------------------------------------------------------------------------------------------- I/O
def read_thresholds(path) -> dict:
    """Read the thresholds JSON: ``thresholds`` (28 floats), optional ``min_labels``/``max_labels``."""
    path = Path(path)
    if not path.exists():
        raise ContractError(f"{path}: file not found.")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise ContractError(f"{path}: not valid JSON ({err.msg} at line {err.lineno}).") from None
    if not isinstance(data, dict) or "thresholds" not in data:
        raise ContractError(f"{path}: expected a JSON object with a 'thresholds' list of {N_CLASSES} floats.")
    try:
        thr = check_thresholds(data["thresholds"])
    except ValueError:
        raise ContractError(f"{path}: 'thresholds' must be a list of {N_CLASSES} finite floats. "
                            f"Got {str(data['thresholds'])[:60]} instead.") from None
    if data["thresholds"] is None or np.ndim(data["thresholds"]) == 0:
        raise ContractError(f"{path}: 'thresholds' must be a list of {N_CLASSES} floats. Got {data['thresholds']!r} instead.")
    out = {"thresholds": thr}
    for key in ("min_labels", "max_labels"):
        value = data.get(key)
        if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 0):
            raise ContractError(f"{path}: '{key}' must be a non-negative int or null. Got {value!r} instead.")
        out[key] = value
    return out


def read_test_probs(pred, ids: Sequence[str]) -> pd.DataFrame:
    """Test probabilities from a prediction-set folder (its ``test.csv``, checked against meta.json) or a CSV."""
    from .io import sha256_file
    from .contract import TEST_FILE, read_meta, read_probs

    pred = Path(pred)
    if pred.is_dir():
        meta = read_meta(pred)
        target = pred / TEST_FILE
        if not target.exists() and target.with_suffix(".parquet").exists():
            target = target.with_suffix(".parquet")
        digest = meta.get("outputs", {}).get(target.name)
        if digest and target.exists() and sha256_file(target) != digest:
            raise ContractError(f"{target}: sha256 differs from the one in {pred / 'meta.json'}; the set was "
                                f"half-written or edited.")
        return read_probs(target, ids, "the sample submission")
    return read_probs(pred, ids, "the sample submission")


def share_table(y_pred: np.ndarray, target: np.ndarray | None) -> pd.DataFrame:
    """Predicted positive share per class beside the target share (28 rows)."""
    from .classes import CLASS_NAMES

    frame = pd.DataFrame({"class": range(N_CLASSES), "name": CLASS_NAMES,
                          "predicted": np.asarray(y_pred, dtype=np.float64).mean(axis=0)})
    if target is not None:
        frame["target"] = np.asarray(target, dtype=np.float64)
        frame["ratio"] = frame["predicted"] / np.maximum(frame["target"], 1e-12)
    return frame


def _print_summary(steps: dict, shares: pd.DataFrame, out: Path) -> None:
    from rich.table import Table

    from .cli import console

    table = Table(title=f"submission steps -> {out}")
    table.add_column("step")
    table.add_column("rows", justify="right")
    for name, n in steps.items():
        table.add_row(name, str(n))
    console.print(table)
    share = Table(title="predicted class shares")
    for col in shares.columns:
        share.add_column(str(col), justify="right" if col not in ("name",) else "left")
    for rec in shares.itertuples(index=False):
        share.add_row(*[f"{v:.4f}" if isinstance(v, float) else str(v) for v in rec])
    console.print(share)


def main(argv: Sequence[str] | None = None) -> int:
    from .cli import console, parser
    from .io import atomic_open, atomic_write_json
    from .labels import labels_frame, read_labels, read_sample_submission, read_target_distribution

    ap = parser("python -m hpa_ens.submit", "Write the Kaggle submission (duplicates and leaks applied), or --check one.")
    ap.add_argument("--check", default=None, metavar="SUBMISSION", help="only validate this submission file")
    ap.add_argument("--pred", default=None, help="prediction-set folder (its test.csv) or an Id,0..27 CSV")
    ap.add_argument("--thresholds", default=None, help="thresholds JSON ('thresholds': 28 floats)")
    ap.add_argument("--sample-submission", required=True, help="sample_submission.csv (Id order)")
    ap.add_argument("--out", default=None, help="submission CSV to write")
    ap.add_argument("--duplicates", default=None, help="Id_a,Id_b,distance,kind from hpa_ens.dedup")
    ap.add_argument("--max-distance", type=float, default=None, help="use only duplicate pairs within this distance")
    ap.add_argument("--train-labels", default=None, help="train.csv (for train-test duplicates, or --target-dist train)")
    ap.add_argument("--leak", nargs="+", default=[], help="leak files (Id,Target or Extra,Test,...,Target)")
    ap.add_argument("--leak-conflict", choices=["union", "first", "error"], default="union",
                    help="an Id with different leak labels: union of them, the first row, or refuse")
    ap.add_argument("--min-labels", type=int, default=None, help="overrides the thresholds file (default 1)")
    ap.add_argument("--max-labels", type=int, default=None, help="overrides the thresholds file (default none)")
    ap.add_argument("--target-dist", default=None, help="CSV of per-class target shares (e.g. lb column), or 'train'")
    ap.add_argument("--strict", action="store_true", help="with --check: warnings (empty, unsorted rows) are errors")
    args = ap.parse_args(argv)

    if args.check:
        report = check_submission(args.check, args.sample_submission)
        warnings = {k: report[k] for k in ("n_empty", "n_unsorted", "n_spacing") if report[k]}
        if warnings and args.strict:
            raise ContractError(f"{args.check}: {', '.join(f'{v} rows {k[2:]}' for k, v in warnings.items())} (--strict).")
        note = ("; warnings: " + ", ".join(f"{v} rows {k[2:]}" for k, v in warnings.items())) if warnings else ""
        console.print(f"{args.check}: OK, {report['n_rows']} rows, {report['mean_labels']:.3f} labels per image{note}",
                      soft_wrap=True)
        return 0

    for name in ("pred", "thresholds", "out"):
        if getattr(args, name) is None:
            raise ParameterError(f"The '--{name.replace('_', '-')}' option of hpa_ens.submit is required unless --check is given. Got None instead.")
    ids = read_sample_submission(args.sample_submission)
    probs = read_test_probs(args.pred, ids)
    thr = read_thresholds(args.thresholds)
    min_labels = args.min_labels if args.min_labels is not None else (thr["min_labels"] if thr["min_labels"] is not None else 1)
    max_labels = args.max_labels if args.max_labels is not None else thr["max_labels"]
    check_param("min_labels", min_labels, f"an int in [0, {N_CLASSES}]", 0 <= min_labels <= N_CLASSES, "hpa_ens.submit")
    if max_labels is not None:
        check_param("max_labels", max_labels, "an int >= max(1, min_labels)", max_labels >= max(1, min_labels), "hpa_ens.submit")

    train_labels = read_labels(args.train_labels) if args.train_labels else None
    test_pairs = train_pairs = None
    if args.duplicates:
        from .dedup import read_duplicates

        dupes = read_duplicates(args.duplicates)
        if args.max_distance is not None and "distance" in dupes.columns:
            dupes = dupes.loc[pd.to_numeric(dupes["distance"], errors="coerce") <= args.max_distance]
        test_pairs = dupes.loc[dupes["kind"] == "test-test"]
        train_pairs = dupes.loc[dupes["kind"] == "train-test"]
        if len(train_pairs) and train_labels is None:
            raise ParameterError(f"The '--train-labels' option of hpa_ens.submit is required: {args.duplicates} has "
                             f"{len(train_pairs)} train-test pairs. Got None instead.")
    leak = None
    leak_info = {}
    if args.leak:
        from .leak import leak_labels

        leak_y, leak_src, leak_info = leak_labels(args.leak, ids, args.leak_conflict)
        leak = (leak_y, leak_src)

    y_pred, changes, steps = build_submission(
        ids, probs.to_numpy(), thr["thresholds"], min_labels, max_labels,
        test_pairs=test_pairs, train_pairs=train_pairs, train_labels=train_labels, leak=leak)
    if leak_info:
        steps["4. leak rows skipped (Id not in test)"] = int(sum(leak_info["skipped_not_test"].values()))
        steps["4. leak Ids with conflicting labels"] = int(leak_info["conflicts"])
    empty = int((~y_pred.any(axis=1)).sum())
    if empty and min_labels > 0:  # an override gave an empty label set: never silently
        raise ContractError(f"{empty} rows would be empty although min_labels is {min_labels}.")

    out = Path(args.out)
    frame = labels_frame(list(ids), y_pred, column="Predicted")
    check_submission_frame(frame, ids, str(out))  # refuse before writing, never after
    with atomic_open(out, "w", encoding="utf-8", newline="") as handle:
        frame.to_csv(handle, index=False, lineterminator="\n")
    changes_path = out.parent / f"{out.stem}.changes.csv"
    with atomic_open(changes_path, "w", encoding="utf-8", newline="") as handle:
        changes.to_csv(handle, index=False, lineterminator="\n")

    target = None
    if args.target_dist == "train":
        if train_labels is None:
            raise ParameterError("The '--train-labels' option of hpa_ens.submit is required with --target-dist train. Got None instead.")
        target = read_target_distribution("train", labels=train_labels)
    elif args.target_dist:
        target = read_target_distribution(args.target_dist)
    shares = share_table(y_pred, target)
    atomic_write_json(out.parent / f"{out.stem}.summary.json", {
        "submission": str(out), "changes": str(changes_path), "steps": steps,
        "min_labels": min_labels, "max_labels": max_labels, "leak": leak_info,
        "n_empty": empty, "mean_labels": float(y_pred.sum(axis=1).mean()),
        "shares": shares.to_dict(orient="list"),
    })
    _print_summary(steps, shares, out)
    console.print(f"wrote {out} ({len(frame)} rows, {y_pred.sum(axis=1).mean():.3f} labels per image) and {changes_path} "
                  f"({len(changes)} changes)", soft_wrap=True)
    return 0


if __name__ == "__main__":
    from .cli import entry

    entry(main)
