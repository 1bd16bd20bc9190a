"""The thresholds contract: ``thresholds.json`` and target-share files, read and written with validation.

``thresholds.json`` (written by ``tune_thresholds``, applied by ``submit``) records

- ``thresholds``: one float per class, class k predicted where ``prob > thresholds[k]``;
- ``method``, ``min_labels``, ``max_labels``, ``rank_by`` (how rows are topped up to ``min_labels``);
- ``posterior`` (with ``rank_by: posterior`` only): the OOF isotonic breakpoints per class and the train and
  target shares of :class:`hpa_ens.thresholds.Posterior`, so ``submit`` ranks exactly as tuned (checked here by
  :func:`read_posterior`, which returns plain arrays; ``Posterior.from_record`` builds the calibration);
- ``task``: the task's name and class list (the thresholds mean nothing for another class list);
- ``prediction_set``: the folder and sha256 of the ``test.csv`` (and ``oof.csv`` when it had one) the
  thresholds were tuned on, so that :func:`check_thresholds_match` can refuse applying them to another set;
- ``plots``: the paths of the plots written beside it (``--plots``), and free-form ``params``/``report``.

A *target-share file* (``--target-dist``) is a CSV with one row per class and a share column. With a class
column (``class``, ``class_id``, ``id`` or ``name``: ids 0..K-1 or the task's class names) rows are matched
by class; without one, rows are taken in class order and their count must equal K. A built-in name
(:data:`BUILTIN_TARGETS`, e.g. ``hpa2018-lb``) stands for a share file shipped with the package.

The vocabulary the file uses (:data:`RANK_RULES`, the fill rules ``rank_by`` may name) is defined here, in the
contract, and imported by :mod:`hpa_ens.thresholds`, which implements the rules.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Mapping

import numpy as np

from ..validation import ContractError, ParameterError, read_json_object
from ..io import atomic_write_json, sha256_file

__all__ = [
    "THRESHOLDS_SCHEMA",
    "RANK_RULES",
    "DEFAULT_RANK_RULE",
    "ThresholdsRecord",
    "write_thresholds",
    "read_thresholds",
    "prediction_set_hashes",
    "check_thresholds_match",
    "BUILTIN_TARGETS",
    "target_shares_path",
    "read_target_shares",
    "read_target_distribution",
    "read_posterior",
    "check_share_estimable",
]

THRESHOLDS_SCHEMA = 2
_CLASS_COLUMNS = ("class", "class_id", "id", "name")
_SHARE_COLUMNS = ("lb", "share")

#: How a row with too few labels is topped up (and a row with too many trimmed): by the largest
#: ``ratio`` score / threshold, ``margin`` score - threshold, ``logit`` logit(score) - logit(threshold),
#: ``prob`` the largest score itself, or ``posterior`` the largest calibrated probability corrected to the
#: target shares (:class:`hpa_ens.thresholds.Posterior`, fitted on OOF rows). ``rank_by`` names one of them.
RANK_RULES = ("ratio", "margin", "logit", "prob", "posterior")
#: The fill rule of a file that names none (and without OOF rows or a target, see
#: :func:`hpa_ens.thresholds.default_rank_rule`).
DEFAULT_RANK_RULE = "ratio"


@dataclass
class ThresholdsRecord:
    """Everything ``submit`` needs to apply thresholds, and what binds them to their prediction set.

    Attributes
    ----------
    thresholds : list of float, length K
    method : str
    class_names : list of str, length K
    task_name : str
    min_labels : int
    max_labels : int or None
    rank_by : str
    posterior : dict or None
        :meth:`hpa_ens.thresholds.Posterior.to_json`, required when ``rank_by == "posterior"``.
    prediction_set : dict
        ``{"path": str, "test.csv": sha256, "oof.csv": sha256 or None}``.
    plots : list of str
    params : dict
    report : dict
        Scores, shares and warnings of the tuning run (informative, not validated).
    """

    thresholds: list
    method: str
    class_names: list
    task_name: str = "task"
    min_labels: int = 1
    max_labels: int | None = None
    rank_by: str = DEFAULT_RANK_RULE
    posterior: dict | None = None
    prediction_set: dict = field(default_factory=dict)
    plots: list = field(default_factory=list)
    params: dict = field(default_factory=dict)
    report: dict = field(default_factory=dict)

    @property
    def n_classes(self) -> int:
        return len(self.thresholds)

    def to_json(self) -> dict:
        out = {"schema_version": THRESHOLDS_SCHEMA}
        out.update(asdict(self))
        out["thresholds"] = [float(t) for t in self.thresholds]
        out["task"] = {"name": self.task_name, "n_classes": len(self.class_names), "class_names": list(self.class_names)}
        del out["task_name"], out["class_names"]
        if self.posterior is None:
            del out["posterior"]
        # Report keys at the top level too: older readers (submit, demo_report) look there.
        for key, value in self.report.items():
            out.setdefault(key, value)
        return out


def write_thresholds(path, record: ThresholdsRecord) -> Path:
    """Validate ``record`` and write it atomically as JSON."""
    _validate(record.to_json(), str(path))
    atomic_write_json(path, record.to_json())
    return Path(path)


def _validate(doc: Mapping, source: str) -> ThresholdsRecord:
    def bad(what: str, got) -> ContractError:
        return ContractError(f"{source}: {what}. Got {got!r} instead.")

    if not isinstance(doc, Mapping):
        raise bad("expected a JSON object", type(doc).__name__)
    thr = doc.get("thresholds")
    if not isinstance(thr, list) or not thr or not all(isinstance(t, (int, float)) and not isinstance(t, bool) for t in thr):
        raise bad("'thresholds' must be a non-empty list of numbers", thr if not isinstance(thr, list) else thr[:3])
    arr = np.asarray(thr, dtype=np.float64)
    if not np.isfinite(arr).all():
        k = int(np.flatnonzero(~np.isfinite(arr))[0])
        raise bad(f"'thresholds' must be finite; class {k} is not", thr[k])
    task = doc.get("task")
    if task is None and "class_names" in doc:  # schema 1 (before tasks): class names at the top level
        task = {"name": "hpa2018", "class_names": doc["class_names"]}
    if not isinstance(task, Mapping) or not isinstance(task.get("class_names"), list):
        raise bad("'task.class_names' must list the classes the thresholds were tuned for", task)
    names = [str(n) for n in task["class_names"]]
    if len(names) != len(thr):
        raise bad(f"'thresholds' must hold one value per class of 'task' ({len(names)})", f"{len(thr)} values")
    method = doc.get("method")
    if not isinstance(method, str) or not method:
        raise bad("'method' must be a non-empty string", method)
    min_labels = doc.get("min_labels", 0)
    max_labels = doc.get("max_labels")
    if not isinstance(min_labels, int) or isinstance(min_labels, bool) or not 0 <= min_labels <= len(thr):
        raise bad(f"'min_labels' must be an int in [0, {len(thr)}]", min_labels)
    if max_labels is not None and (not isinstance(max_labels, int) or isinstance(max_labels, bool)
                                   or max_labels < max(1, min_labels)):
        raise bad("'max_labels' must be null or an int >= max(1, min_labels)", max_labels)
    rank_by = doc.get("rank_by", DEFAULT_RANK_RULE)
    if rank_by not in RANK_RULES:
        raise bad(f"'rank_by' must be one of {RANK_RULES}", rank_by)
    posterior = doc.get("posterior")
    if rank_by == "posterior" and posterior is None:
        raise bad("'rank_by: posterior' needs the 'posterior' calibration it ranks by", None)
    if posterior is not None:
        read_posterior(posterior, len(thr), source)
    pset = doc.get("prediction_set", {})
    if not isinstance(pset, Mapping):
        raise bad("'prediction_set' must be an object with the sha256 of test.csv", pset)
    plots = doc.get("plots", [])
    if not isinstance(plots, list) or not all(isinstance(p, str) for p in plots):
        raise bad("'plots' must be a list of paths", plots)
    known = {"schema_version", "thresholds", "method", "task", "min_labels", "max_labels", "rank_by", "posterior",
             "prediction_set", "plots", "params", "class_names"}
    report = {k: v for k, v in doc.get("report", {}).items()} if isinstance(doc.get("report"), Mapping) else {}
    report |= {k: v for k, v in doc.items() if k not in known and k != "report"}
    return ThresholdsRecord(thresholds=[float(t) for t in thr], method=method, class_names=names,
                            task_name=str(task.get("name") or "task"), min_labels=int(min_labels),
                            max_labels=None if max_labels is None else int(max_labels), rank_by=rank_by,
                            posterior=None if posterior is None else dict(posterior), prediction_set=dict(pset),
                            plots=list(plots), params=dict(doc.get("params") or {}),
                            report=report)


def read_thresholds(path, task=None) -> ThresholdsRecord:
    """Read and validate ``thresholds.json``; with ``task``, refuse thresholds made for another class list.

    Parameters
    ----------
    path : str or Path
    task : hpa_ens.task.Task, optional

    Returns
    -------
    ThresholdsRecord
    """
    path = Path(path)
    doc = read_json_object(path, "a thresholds file")
    record = _validate(doc, str(path))
    if task is not None and tuple(record.class_names) != tuple(task.class_names):
        raise ContractError(f"{path}: thresholds were tuned for {record.n_classes} classes ({record.task_name!r}: "
                            f"{', '.join(record.class_names[:2])}…), not for the task {task.name!r} "
                            f"({task.n_classes} classes, {', '.join(task.class_names[:2])}…).")
    return record


def read_posterior(doc, n_classes: int, source: str = "posterior") -> dict:
    """Check the ``posterior`` object of a thresholds file and return its arrays.

    Parameters
    ----------
    doc : mapping with ``x``, ``y`` (one list of isotonic breakpoints per class), ``train_share`` and
        ``target_share`` (``n_classes`` shares in (0, 1) each), as :meth:`hpa_ens.thresholds.Posterior.to_json`
        writes it
    n_classes : int
    source : str, the file named in errors

    Returns
    -------
    dict with ``x`` and ``y`` (tuples of ``n_classes`` float64 arrays, each class's breakpoints: ``x``
    non-decreasing raw scores, ``y`` non-decreasing values in [0, 1]) and ``train_share``, ``target_share``
    (float64 arrays of shape (n_classes,))

    Raises
    ------
    ContractError
        Naming ``source`` and what is wrong (a class's map, a share).
    """
    def bad(what, got):
        return ContractError(f"{source}: 'posterior' {what}. Got {got!r} instead.")

    if not isinstance(doc, Mapping):
        raise bad("must be an object with x, y, train_share and target_share", type(doc).__name__)
    arrays = {}
    for key in ("x", "y"):
        value = doc.get(key)
        if not isinstance(value, list) or len(value) != n_classes:
            raise bad(f"'{key}' must hold one list per class ({n_classes})",
                      f"{len(value)} lists" if isinstance(value, list) else value)
        try:
            arrays[key] = tuple(np.asarray(v, dtype=np.float64).reshape(-1) for v in value)
        except (TypeError, ValueError):
            raise bad(f"'{key}' must hold lists of numbers", str(value)[:60]) from None
    for k, (x, y) in enumerate(zip(arrays["x"], arrays["y"])):
        if len(x) == 0 or len(x) != len(y) or not (np.isfinite(x).all() and np.isfinite(y).all()):
            raise bad(f"class {k} must have as many finite x as y breakpoints (at least one)", (len(x), len(y)))
        if (np.diff(x) < 0).any() or (np.diff(y) < 0).any() or y.min() < 0 or y.max() > 1:
            raise bad(f"class {k} must be a non-decreasing map into [0, 1]", (x[:3].tolist(), y[:3].tolist()))
    for key in ("train_share", "target_share"):
        s = np.asarray(doc.get(key, []), dtype=np.float64) if isinstance(doc.get(key), list) else np.empty(0)
        if s.shape != (n_classes,) or not (np.isfinite(s).all() and ((s > 0) & (s < 1)).all()):
            raise bad(f"'{key}' must be {n_classes} shares in (0, 1)", doc.get(key))
        arrays[key] = s
    return arrays


# ---------------------------------------------------------------------------------- provenance
def prediction_set_hashes(prediction_set) -> dict:
    """``{"path", "test.csv", "oof.csv"}`` of a prediction-set folder or of its ``meta.json`` dict.

    From a folder the files are hashed (``test.csv``/``.parquet``, ``oof.csv``/``.parquet`` when present);
    from a meta dict the hashes its ``outputs`` recorded are used.
    """
    if isinstance(prediction_set, Mapping):
        outputs = prediction_set.get("outputs") or {}
        test = outputs.get("test.csv") or outputs.get("test.parquet")
        if not test:
            raise ContractError("meta.json: no 'outputs' hash of test.csv to bind thresholds to.")
        return {"path": prediction_set.get("name"), "test.csv": test,
                "oof.csv": outputs.get("oof.csv") or outputs.get("oof.parquet")}
    folder = Path(prediction_set)
    found = {}
    for key in ("test", "oof"):
        for ext in (".csv", ".parquet"):
            if (folder / f"{key}{ext}").is_file():
                found[f"{key}.csv"] = sha256_file(folder / f"{key}{ext}")
                break
    if "test.csv" not in found:
        raise ContractError(f"{folder}: no test.csv (or test.parquet) to bind thresholds to.")
    return {"path": str(folder), "test.csv": found["test.csv"], "oof.csv": found.get("oof.csv")}


def check_thresholds_match(record: ThresholdsRecord, prediction_set) -> None:
    """Refuse thresholds tuned on another prediction set than ``prediction_set`` (folder or meta dict).

    The test rows must be byte-identical (same ``test.csv`` sha256); when both sides know an OOF hash
    those must agree too. ``submit`` calls this and offers ``--allow-other-pred`` to skip it.

    Raises
    ------
    ContractError
    """
    tuned = record.prediction_set or {}
    if not tuned.get("test.csv"):
        raise ContractError("thresholds.json records no prediction set (written before provenance existed); "
                            "re-run tune_thresholds, or pass --allow-other-pred.")
    here = prediction_set_hashes(prediction_set)
    where = here.get("path") or "the prediction set"
    if here["test.csv"] != tuned["test.csv"]:
        raise ContractError(f"{where}: its test.csv (sha256 {here['test.csv'][:12]}…) is not the one the thresholds "
                            f"were tuned on ({tuned.get('path')}, sha256 {tuned['test.csv'][:12]}…); re-tune, or pass "
                            f"--allow-other-pred.")
    if here.get("oof.csv") and tuned.get("oof.csv") and here["oof.csv"] != tuned["oof.csv"]:
        raise ContractError(f"{where}: its oof.csv (sha256 {here['oof.csv'][:12]}…) is not the one the thresholds "
                            f"were tuned on ({tuned.get('path')}, sha256 {tuned['oof.csv'][:12]}…); re-tune, or pass "
                            f"--allow-other-pred.")


# -------------------------------------------------------------------------------- target shares
#: Target shares shipped with the package, by the name ``--target-dist`` takes: name -> (file in
#: ``hpa_ens/data``, the task whose classes its rows are, what it is). ``train`` (the shares of the train
#: labels) is no file: the commands that read the labels resolve it.
BUILTIN_TARGETS = {
    "hpa2018-lb": ("lb_label_distribution.csv", "hpa2018",
                   "HPA 2018 public-leaderboard class shares as probed by teams (column lb; train shares in "
                   "column train; classes the probe could not see are 0.001)"),
}


def target_shares_path(source) -> Path:
    """The share file ``source`` names: the packaged file of a :data:`BUILTIN_TARGETS` name, else ``source``.

    A built-in name wins over a file of the same name in the working directory.
    """
    entry = BUILTIN_TARGETS.get(str(source))
    if entry is None:
        return Path(source)
    from importlib import resources

    return Path(str(resources.files("hpa_ens").joinpath("data", entry[0])))


def _check_builtin_task(source, task) -> None:
    entry = BUILTIN_TARGETS.get(str(source))
    if entry is None:
        return
    from ..task import load_task

    own = load_task(entry[1])
    if not own.same_classes(task):
        raise ContractError(f"--target-dist {source}: the built-in shares of the task {own.name!r} ({own.n_classes} "
                            f"classes), not of the task {task.name!r} ({task.n_classes} classes); give a share file "
                            f"for it instead.")


def read_target_shares(path, task, column: str | None = None) -> np.ndarray:
    """Per-class target positive shares from a CSV (or a built-in name), checked against ``task``.

    Parameters
    ----------
    path : str or Path
        A built-in name (:data:`BUILTIN_TARGETS`: ``hpa2018-lb``), or a CSV with one row per class. A class
        column (``class``, ``class_id``, ``id`` or ``name``; ids ``0..K-1`` or the task's class names) matches
        rows to classes; without one, row k is class k and the row count must equal K.
    task : hpa_ens.task.Task
    column : str, optional
        The share column (default ``lb``, else ``share``, else the only numeric column left).

    Returns
    -------
    shares : ndarray of shape (K,), each in (0, 1)

    Raises
    ------
    ContractError
        A missing or repeated class row, shares for another class count, a share outside (0, 1).
    """
    import pandas as pd

    from ..validation import read_csv_strings

    _check_builtin_task(path, task)
    path = target_shares_path(path)
    df = read_csv_strings(path, "one row per class and a share column")
    K = task.n_classes
    class_col = next((c for c in _CLASS_COLUMNS if c in df.columns), None)
    if column is None:
        rest = [c for c in df.columns if c != class_col]
        column = next((c for c in _SHARE_COLUMNS if c in rest), None)
        if column is None:
            numeric = [c for c in rest if pd.to_numeric(df[c], errors="coerce").notna().all()]
            if len(numeric) != 1:
                raise ContractError(f"{path}: cannot tell which column holds the shares; pass --target-column. "
                                    f"Got columns {list(df.columns)} instead.")
            column = numeric[0]
    if column not in df.columns:
        raise ContractError(f"{path}: no column {column!r}. Got {list(df.columns)} instead.")
    values = pd.to_numeric(df[column], errors="coerce").to_numpy(dtype=np.float64)
    if class_col is None:
        if len(df) != K:
            raise ContractError(f"{path}: {len(df)} share rows for a task of {K} classes ({task.name!r}); without a "
                                f"class column row k is class k, so the counts must agree. Got {len(df)} rows instead.")
        classes = list(range(K))
    else:
        lookup = {str(k): k for k in range(K)} | {name: k for k, name in enumerate(task.class_names)}
        classes = []
        for row, text in enumerate(df[class_col].tolist(), start=1):
            k = lookup.get(str(text).strip())
            if k is None:
                raise ContractError(f"{path}, row {row}: class {text!r} is not a class of the task {task.name!r} "
                                    f"(ids 0..{K - 1} or its class names).")
            if k in classes:
                raise ContractError(f"{path}, row {row}: class {k} ({task.class_names[k]}) appears twice.")
            classes.append(k)
        missing = sorted(set(range(K)) - set(classes))
        if missing:
            k = missing[0]
            raise ContractError(f"{path}: no row for class {k} ({task.class_names[k]}); the task {task.name!r} has {K} "
                                f"classes. Got {len(classes)} rows instead.")
    shares = np.empty(K)
    shares[classes] = values
    for row, k in enumerate(classes, start=1):
        v = shares[k]
        if not (np.isfinite(v) and 0.0 < v < 1.0):
            raise ContractError(f"{path}, row {row}: the share of class {k} ({task.class_names[k]}) must lie in (0, 1). "
                                f"Got {df[column].iloc[row - 1]!r} instead.")
    return shares


def read_target_distribution(source, column: str | None = None, labels=None, task=None) -> np.ndarray:
    """Per-class target positive shares, shape (K,): ``"train"`` (the shares of ``labels``) or a share file.

    ``source`` is ``"train"`` (the column means of ``labels``, an ``(n, K)`` 0/1 frame or array), a built-in
    name (:data:`BUILTIN_TARGETS`, e.g. ``hpa2018-lb``, the leaderboard probe shares) or a CSV with one row
    per class, such as the leaderboard probe file (columns ``lb,train``), read by
    :func:`read_target_shares`: a class column maps rows to classes and every class must appear once; without
    one, row k is class k and the row count must equal K; every share lies in (0, 1).

    Parameters
    ----------
    source : "train", a built-in name, str or Path
    column : str, optional, the share column (default ``lb``, else ``share``)
    labels : DataFrame or ndarray of shape (n_samples, K), required for ``"train"``
    task : hpa_ens.task.Task, str or None (default HPA 2018)
    """
    from ..task import load_task

    task = load_task(task)
    if isinstance(source, str) and source == "train":
        if labels is None:
            raise ParameterError("The 'labels' parameter must be given when the target distribution is 'train'. Got None instead.")
        return np.asarray(labels, dtype=np.float64).mean(axis=0)
    return read_target_shares(source, task, column)


def check_share_estimable(shares, n_test: int, task) -> list[str]:
    """Warnings for classes whose share a test set of ``n_test`` rows cannot express (``n_test * share < 1``).

    Returns
    -------
    list of str, one per such class (the caller prints them)
    """
    out = []
    for k in np.flatnonzero(np.asarray(shares) * n_test < 1.0):
        msg = (f"class {k} ({task.class_names[k]}): target share {shares[k]:.4g} is under one row of the "
               f"{n_test} test rows (needs at least {int(np.ceil(1 / shares[k]))} rows); its matched cut predicts "
               f"at most one row.")
        out.append(msg)
    return out
