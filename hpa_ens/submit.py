"""The Kaggle submission: probabilities -> labels, then duplicates and leaks, with a change log.

Steps, in this order (the order the winners used):

1. test<->test duplicates: the probabilities of each group of duplicate test images are averaged;
2. thresholds, then the min/max-labels rule (:func:`hpa_ens.thresholds.apply_thresholds`, the same code
   that tuned them);
3. train<->test duplicates: the test image takes its train twin's labels (the nearest twin; ties: union);
4. leak files, last.

Every row a step changes is logged to ``<out stem>.changes.csv`` (``Id,before,after,source``); a summary
(rows changed per step, predicted class shares against a target, where each input came from) is printed
and written to ``<out stem>.summary.json``. ``--check`` validates any submission file against the sample
submission.

Any task (``--task``, K classes) and any prediction set, test-only ones included. Thresholds are bound to
the predictions they were tuned on: a ``thresholds.json`` that records another prediction set (or none)
is refused unless ``--allow-other-pred``, and the summary then says so. The per-row label rule comes
from, in rising precedence: the task's default, the thresholds file, the ``--min-labels``/``--max-labels``
flags (:func:`hpa_ens.commands.submit.resolve_label_bounds`).

This module holds the steps (:func:`build_submission`), the plan they run on (:class:`SubmitPlan`,
:func:`make_submission`), the typed inputs and outputs and the ``--check`` validation; the command
(``python -m hpa_ens.submit``, ``hpa-ens submit``: :mod:`hpa_ens.commands.submit`) reads the flags'
inputs into a plan, prints the summary and writes through :func:`write_submission`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from .validation import ContractError, ParameterError, check_thresholds, read_csv_strings
from .thresholds import DEFAULT_RANK_RULE, apply_thresholds
from .labels import matrix_to_targets
from .task import Task, load_task

CHANGE_COLUMNS = ["Id", "before", "after", "source"]


# ------------------------------------------------------------------------------------- pure core
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
    pairs : DataFrame with Id_a (train), Id_b (test) and optionally distance (ints, as
        :func:`hpa_ens.contract.read_duplicates` gives them; without it every twin is equally near)
    train_labels : DataFrame indexed by train Id, columns 0..K-1
    test_ids : the test Ids

    Returns
    -------
    labels : DataFrame indexed by test Id, columns 0..K-1, uint8 (union of the nearest twins' labels)
    sources : Series indexed by test Id, "train-test:<train Id>[+<train Id>] d=<distance>"
    info : dict, ``skipped_not_test``/``skipped_not_train``: pairs whose Id was unknown
    """
    test_set = set(test_ids)
    known_test = pairs["Id_b"].isin(test_set)
    known_train = pairs["Id_a"].isin(train_labels.index)
    info = {"skipped_not_test": int((~known_test).sum()), "skipped_not_train": int((known_test & ~known_train).sum())}
    use = pairs.loc[known_test & known_train]
    if "distance" in use.columns:  # integers 0..64, checked by the duplicates contract (never coerced)
        use = use.assign(distance=use["distance"].astype(np.int64).to_numpy())
    else:  # a hand-made pair file without distances: every twin is equally near, their labels are united
        use = use.assign(distance=np.zeros(len(use), dtype=np.int64))
    nearest = use.loc[use["distance"] == use.groupby("Id_b")["distance"].transform("min")]
    Y = train_labels.loc[nearest["Id_a"]].to_numpy(np.uint8)
    frame = pd.DataFrame(Y, columns=range(train_labels.shape[1]))
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
    rank_by: str = DEFAULT_RANK_RULE,
    posterior=None,
) -> tuple[np.ndarray, pd.DataFrame, dict]:
    """Apply the four steps; return the label matrix, the change log and per-step counts.

    Parameters
    ----------
    ids : sequence of str, length n (the sample submission's order)
    probs : ndarray of shape (n, K), aligned to ``ids``
    thresholds : float or array-like of shape (K,)
    test_pairs : DataFrame Id_a, Id_b (test-test duplicates), optional
    train_pairs : DataFrame Id_a (train), Id_b (test), distance, optional; needs ``train_labels``
    leak : (labels DataFrame indexed by Id, sources Series) from :func:`hpa_ens.leak.leak_labels`
    rank_by : how the label rule tops up or trims a row (see :data:`hpa_ens.thresholds.RANK_RULES`); the
        thresholds file records the one it was tuned with
    posterior : hpa_ens.thresholds.Posterior, required for ``rank_by="posterior"`` (also from the thresholds file)

    Returns
    -------
    y_pred : ndarray of shape (n, K), bool
    changes : DataFrame Id,before,after,source
    steps : dict step name -> number of rows changed (plus skip counts)
    """
    ids_arr = np.asarray(list(ids), dtype=object)
    probs = np.asarray(probs, dtype=np.float64)
    thr = check_thresholds(thresholds, probs.shape[1])
    steps: dict[str, int] = {}
    logs = []

    base = apply_thresholds(probs, thr, min_labels, max_labels, rank_by, posterior)
    used = probs
    # 1. test-test duplicates: average, then threshold the averaged probabilities. Only test Ids join a
    # group here (a pair naming an Id outside the submission is skipped and counted).
    if test_pairs is not None and len(test_pairs):
        from .groups import duplicate_groups  # the project's one grouping rule (folds use it too)

        groups = duplicate_groups(ids_arr.tolist(), zip(test_pairs["Id_a"], test_pairs["Id_b"]),
                                  through_outside=False)
        averaged = used = average_groups(probs, groups)
        y_pred = apply_thresholds(averaged, thr, min_labels, max_labels, rank_by, posterior)
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
            raise ParameterError("The 'train_labels' parameter of build_submission must be given when there are "
                                 "train-test duplicates. Got None instead.")
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
def check_submission_frame(df: pd.DataFrame, sample_ids: Sequence[str], source: str, n_classes: int | None = None) -> dict:
    """Validate a submission read as strings; raise ContractError (one line) or return a report.

    Errors: header other than ``Id,Predicted``; a missing, extra or repeated Id; Ids in another order
    than the sample submission; a token that is not a class id 0..K-1 (K = ``n_classes``, default the
    default task's); a class repeated in a row.
    Warnings (counted, not refused; Kaggle accepts them): empty rows, labels not sorted ascending,
    extra spaces.

    Returns
    -------
    report : dict with n_rows, n_empty, n_unsorted, n_spacing, mean_labels, shares (K floats)
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
    K = load_task(None).n_classes if n_classes is None else int(n_classes)
    Y = np.zeros((len(df), K), dtype=bool)
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
            if not tok.isdigit() or int(tok) >= K:
                raise ContractError(f"{source}, row {row}: Predicted must hold class ids 0..{K - 1} separated "
                                    f"by spaces. Got {text!r} instead.")
            values.append(int(tok))
        if len(set(values)) != len(values):
            raise ContractError(f"{source}, row {row}: a class id is repeated in Predicted. Got {text!r} instead.")
        if values != sorted(values):
            n_unsorted += 1
        Y[row - 1, values] = True
    return {"n_rows": int(len(df)), "n_empty": n_empty, "n_unsorted": n_unsorted, "n_spacing": n_spacing,
            "mean_labels": float(Y.sum(axis=1).mean()), "shares": Y.mean(axis=0).tolist()}


def check_submission(path, sample_submission, task: Task | str | None = None) -> dict:
    """Validate the submission file at ``path`` against the sample submission file (class ids of ``task``)."""
    from .labels import read_sample_submission

    df = read_csv_strings(path, "a header Id,Predicted and one row per test Id")
    return check_submission_frame(df, read_sample_submission(sample_submission), str(path), load_task(task).n_classes)


# -------------------------------------------------------------------------------------------- I/O
def load_test_probs(pred, ids: Sequence[str], task: Task) -> tuple[pd.DataFrame, dict]:
    """Test probabilities of a prediction set (test-only sets too) or of an ``Id,0..K-1`` CSV, aligned to ``ids``.

    A set is read through the contract (its seal checked, its task compared with ``task``).

    Returns
    -------
    probs : DataFrame of shape (n_test, K) indexed by Id, in the order of ``ids``
    record : dict with ``path``, ``test.csv`` and ``oof.csv`` (their sha256: what thresholds are bound to),
        in the shape :func:`hpa_ens.contract.thresholds.check_thresholds_match` takes (a set's meta)
    """
    from .contract import read_prediction_set, read_probs
    from .io import sha256_file

    pred = Path(pred)
    if pred.is_dir():
        pset = read_prediction_set(pred, test_ids=ids, task=task)
        outputs = pset.meta.get("outputs") or {}
        hashes = {"test.csv": outputs.get("test.csv") or outputs.get("test.parquet"),
                  "oof.csv": outputs.get("oof.csv") or outputs.get("oof.parquet")}
        return pset.test, {"path": str(pred), **hashes}
    return read_probs(pred, ids, "the sample submission", task), {"path": str(pred), "test.csv": sha256_file(pred),
                                                                  "oof.csv": None}


def thresholds_problem(record, pred_record: dict, source: str) -> str | None:
    """Why the thresholds of ``source`` may not be applied to this prediction set (None: tuned on it).

    Parameters
    ----------
    record : hpa_ens.contract.thresholds.ThresholdsRecord
    pred_record : dict from :func:`load_test_probs` (the set's path and file hashes)
    source : the thresholds file, for the message
    """
    from .contract import check_thresholds_match

    meta = {"name": pred_record["path"], "outputs": {k: v for k, v in pred_record.items() if k != "path" and v}}
    try:
        check_thresholds_match(record, meta)
    except ContractError as err:
        return f"{source}: {err}"
    return None


def load_duplicates(path, max_distance: int | None = None) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    """test-test and train-test pairs of a duplicates file (through the contract), and its provenance.

    The contract refuses an unparseable distance, ``max_distance`` on a file without distances, and a
    file edited after ``hpa_ens.dedup`` wrote its sidecar (``<stem>.meta.json``); the sidecar (image
    folders' listing hashes) is recorded in the summary. Other kinds (train-train, external-…) are not
    used here. Train-test pairs need the train labels (:func:`build_submission` refuses them without).

    Returns
    -------
    test_pairs, train_pairs : DataFrame Id_a, Id_b, distance, kind
    record : dict with ``path``, ``sha256``, ``max_distance`` and ``sidecar`` (for the summary)
    """
    from .contract import read_duplicates, read_duplicates_meta
    from .io import sha256_file

    dupes = read_duplicates(path, max_distance=max_distance, kinds=["test-test", "train-test"])
    sidecar = read_duplicates_meta(path)
    test_pairs = dupes.loc[dupes["kind"] == "test-test"]
    train_pairs = dupes.loc[dupes["kind"] == "train-test"]
    return test_pairs, train_pairs, {"path": str(path), "sha256": sha256_file(path), "max_distance": max_distance,
                                     "sidecar": sidecar}


def share_table(y_pred: np.ndarray, target: np.ndarray | None, names: Sequence[str] | None = None) -> pd.DataFrame:
    """Predicted positive share per class beside the target share (K rows)."""
    y_pred = np.asarray(y_pred, dtype=np.float64)
    K = y_pred.shape[1]
    names = list(names) if names is not None else list(load_task(None).class_names)
    frame = pd.DataFrame({"class": range(K), "name": [names[k] if k < len(names) else str(k) for k in range(K)],
                          "predicted": y_pred.mean(axis=0)})
    if target is not None:
        frame["target"] = np.asarray(target, dtype=np.float64)
        frame["ratio"] = frame["predicted"] / np.maximum(frame["target"], 1e-12)
    return frame


# ------------------------------------------------------------------------------------ the stage
@dataclass
class SubmitPlan:
    """Everything a submission needs, read and validated before anything is written."""

    task: Task
    ids: pd.Index
    probs: pd.DataFrame
    thresholds: np.ndarray
    min_labels: int
    max_labels: int | None
    test_pairs: pd.DataFrame | None = None
    train_pairs: pd.DataFrame | None = None
    train_labels: pd.DataFrame | None = None
    leak: tuple | None = None
    target: np.ndarray | None = None
    rank_by: str = DEFAULT_RANK_RULE
    posterior: object = None
    provenance: dict = field(default_factory=dict)


def make_submission(plan: SubmitPlan) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    """The four steps on a validated plan: the submission frame, the change log and the summary record."""
    y_pred, changes, steps = build_submission(
        plan.ids, plan.probs.to_numpy(), plan.thresholds, plan.min_labels, plan.max_labels,
        test_pairs=plan.test_pairs, train_pairs=plan.train_pairs, train_labels=plan.train_labels, leak=plan.leak,
        rank_by=plan.rank_by, posterior=plan.posterior)
    leak_info = plan.provenance.get("leak") or {}
    if leak_info:
        steps["4. leak rows skipped (Id not in test)"] = int(sum(leak_info["skipped_not_test"].values()))
        steps["4. leak Ids with conflicting labels"] = int(leak_info["conflicts"])
    empty = int((~y_pred.any(axis=1)).sum())
    if empty and plan.min_labels > 0:  # an override gave an empty label set: never silently
        raise ContractError(f"{empty} rows would be empty although min_labels is {plan.min_labels}.")
    from .labels import labels_frame

    frame = labels_frame(list(plan.ids), y_pred, column="Predicted")
    check_submission_frame(frame, plan.ids, "the submission", plan.task.n_classes)  # refuse before writing
    shares = share_table(y_pred, plan.target, plan.task.class_names)
    summary = {"steps": steps, "min_labels": plan.min_labels, "max_labels": plan.max_labels, "leak": leak_info,
               "n_empty": empty, "mean_labels": float(y_pred.sum(axis=1).mean()),
               "shares": shares.to_dict(orient="list"), "provenance": plan.provenance}
    return frame, changes, summary


def write_submission(out, frame: pd.DataFrame, changes: pd.DataFrame, summary: dict) -> dict:
    """Write the submission, ``<stem>.changes.csv`` and ``<stem>.summary.json`` (atomically, summary last)."""
    from .io import atomic_open, atomic_write_json

    out = Path(out)
    changes_path = out.parent / f"{out.stem}.changes.csv"
    for path, table in ((out, frame), (changes_path, changes)):
        with atomic_open(path, "w", encoding="utf-8", newline="") as handle:
            table.to_csv(handle, index=False, lineterminator="\n")
    summary = {"submission": str(out), "changes": str(changes_path), **summary}
    atomic_write_json(out.parent / f"{out.stem}.summary.json", summary)
    return summary


if __name__ == "__main__":  # python -m hpa_ens.submit: the command lives in hpa_ens.commands.submit
    from hpa_ens.commands import launch

    launch("submit", __spec__.name)
