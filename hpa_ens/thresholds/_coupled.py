"""Optuna where classes couple: the min/max-labels rule, a global logit shift, the pull toward a target distribution.

Per-class cuts are exact (:mod:`hpa_ens.thresholds`); what couples the classes is left to a small Optuna
TPE search on top (:func:`tune_coupled`), run in one process or shared by several through a storage
(:func:`open_storage`: a journal file or an RDB URL).
"""

from __future__ import annotations

import hashlib
import json
from contextlib import contextmanager, nullcontext
from pathlib import Path
from urllib.parse import unquote
from typing import Callable

import numpy as np

from ..io import file_lock
from ..utils import expit, logit
from ..validation import ContractError, check_param
from ._cuts import NEVER, check_probs, check_shares, distribution_gap
from ._decision import apply_thresholds

__all__ = ["coupled_thresholds", "evaluate_thresholds", "tune_coupled", "journal_storage", "open_storage",
           "study_name_for"]


def coupled_thresholds(base, matched, mix: float = 0.0, offset: float = 0.0, class_offsets=None) -> np.ndarray:
    """Blend exact and matched thresholds and shift them, in logit space.

    ``logit(t) = (1 - mix) logit(base) + mix logit(matched) + offset + class_offsets``. Working in logit
    space keeps thresholds inside (0, 1) and makes one offset mean the same for rare and common
    classes. A class never predicted by both ``base`` and ``matched`` stays at :data:`NEVER`.

    Parameters
    ----------
    base, matched : array-like of shape (n_classes,)
    mix : float in [0, 1]
    offset : float
    class_offsets : array-like of shape (n_classes,), optional

    Returns
    -------
    thresholds : ndarray of shape (n_classes,)
    """
    base = np.asarray(base, dtype=np.float64)
    matched = np.asarray(matched, dtype=np.float64)
    no_offsets = offset == 0 and (class_offsets is None or not np.any(class_offsets))
    if no_offsets and mix in (0, 1):
        # Exactly the input cuts (a logit round trip would move them by rounding, and clip 0 and 1).
        return (base if mix == 0 else matched).copy()
    z = (1.0 - mix) * logit(base) + mix * logit(matched) + offset
    if class_offsets is not None:
        z = z + np.asarray(class_offsets, dtype=np.float64)
    return np.where((base >= NEVER) & (matched >= NEVER), NEVER, expit(z))


def evaluate_thresholds(oof_probs, y_true, thresholds, min_labels: int = 1, max_labels: int | None = None,
                        test_probs=None) -> dict:
    """Score thresholds on OOF after the min/max-labels rule; predicted shares on test.

    Returns
    -------
    dict with ``macro_f1`` (float), ``per_class_f1`` (n_classes,), ``oof_share`` (n_classes,) and,
    when ``test_probs`` is given, ``test_share`` (n_classes,) and ``test_labels_per_image`` (float).
    """
    from ..metrics import per_class_f1

    y_pred = apply_thresholds(oof_probs, thresholds, min_labels, max_labels)
    f1 = per_class_f1(y_true, y_pred)
    out = {"macro_f1": float(f1.mean()), "per_class_f1": f1, "oof_share": y_pred.mean(axis=0)}
    if test_probs is not None:
        test_pred = apply_thresholds(test_probs, thresholds, min_labels, max_labels)
        out["test_share"] = test_pred.mean(axis=0)
        out["test_labels_per_image"] = float(test_pred.sum(axis=1).mean())
    return out


@contextmanager
def _quiet_optuna():
    """Optuna's per-trial INFO lines off for the duration of a search (its previous verbosity restored)."""
    import optuna

    before = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        yield
    finally:
        optuna.logging.set_verbosity(before)


def tune_coupled(
    oof_probs,
    y_true,
    test_probs,
    base,
    matched,
    target_share,
    *,
    n_trials: int = 100,
    seed: int = 0,
    tolerance: float | None = 0.25,
    min_labels_range: tuple[int, int] = (0, 1),
    max_labels_range: tuple[int, int] = (1, 5),
    offset_range: float = 1.0,
    class_offset_range: float = 0.0,
    storage=None,
    study_name: str | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> dict:
    """Optuna TPE over what couples the classes, maximising OOF macro F1 after the min/max rule.

    Searched: ``mix`` (exact → matched, [0, 1]), a global logit ``offset`` (±offset_range),
    ``min_labels`` and ``max_labels`` (int ranges) and, when ``class_offset_range`` > 0, one small logit
    offset per class around its base cut. With ``tolerance``, a trial is feasible only when the
    predicted test distribution is close to the target: ``distribution_gap(test_share, target) <=
    tolerance``, passed to TPE through ``trial.set_constraint`` (Optuna 5).

    Parameters
    ----------
    oof_probs, y_true : array-like of shape (n_samples, n_classes)
    test_probs : array-like of shape (n_test, n_classes)
    base, matched, target_share : array-like of shape (n_classes,)
    n_trials : int, trials run by this call (a shared study may hold more)
    seed : int, TPE seed
    storage : None, str or optuna storage; several processes may share one (a journal file, or an RDB URL:
        given as a string, a new SQLite file is set up once under a lock file however many start together)
    study_name : str, required with a storage to share
    progress : callable ``(trials_done, n_trials)``, optional, called after each trial of this call

    Returns
    -------
    dict with ``thresholds`` (n_classes,), ``min_labels``, ``max_labels``, ``params`` (the best
    feasible trial's), ``value``, ``feasible`` (bool), ``n_trials_total``, ``best_trial`` (number)
    """
    import optuna

    oof_probs, y = check_probs(oof_probs, y_true, "oof_probs")
    test_probs = check_probs(test_probs, name="test_probs")
    n_classes = oof_probs.shape[1]
    base = np.asarray(base, dtype=np.float64)
    matched = np.asarray(matched, dtype=np.float64)
    target = check_shares(target_share, n_classes)
    check_param("n_trials", n_trials, "an int >= 1", isinstance(n_trials, (int, np.integer)) and n_trials >= 1)
    lo_min, hi_min = min_labels_range
    lo_max, hi_max = max(max_labels_range[0], 1, lo_min), max_labels_range[1]
    check_param("max_labels_range", max_labels_range, "a range (lo, hi) with hi >= max(1, min_labels)",
                hi_max >= max(lo_max, hi_min, 1))
    spec = storage if isinstance(storage, str) else None

    def params_to_thresholds(params: dict) -> np.ndarray:
        class_off = None
        if class_offset_range > 0:
            class_off = np.array([params.get(f"offset_{k}", 0.0) for k in range(n_classes)])
        return coupled_thresholds(base, matched, params.get("mix", 0.0), params.get("offset", 0.0), class_off)

    def objective(trial) -> float:
        params = {
            "mix": trial.suggest_float("mix", 0.0, 1.0),
            "offset": trial.suggest_float("offset", -offset_range, offset_range),
            "min_labels": trial.suggest_int("min_labels", lo_min, hi_min),
        }
        params["max_labels"] = trial.suggest_int("max_labels", max(lo_max, params["min_labels"], 1), hi_max)
        if class_offset_range > 0:
            for k in range(n_classes):
                params[f"offset_{k}"] = trial.suggest_float(f"offset_{k}", -class_offset_range, class_offset_range)
        thr = params_to_thresholds(params)
        result = evaluate_thresholds(oof_probs, y, thr, params["min_labels"], params["max_labels"], test_probs)
        gap = distribution_gap(result["test_share"], target)
        trial.set_user_attr("distribution_gap", gap)
        if tolerance is not None:
            trial.set_constraint("distribution_gap", gap - tolerance)
        return result["macro_f1"]

    done = [0]

    def report(study, trial) -> None:
        done[0] += 1
        progress(done[0], n_trials)

    with _quiet_optuna():
        sampler = optuna.samplers.TPESampler(seed=seed, n_startup_trials=min(10, n_trials))
        # Workers started together on a new SQLite file take turns to create its tables and the study (and to
        # enqueue the first trial once); the search itself runs unlocked, SQLite's own locking serialises writes.
        with _storage_lock(spec) if spec is not None else nullcontext():
            if spec is not None:
                storage = _open_storage(spec)
            try:
                study = optuna.create_study(storage=storage, study_name=study_name, direction="maximize",
                                            sampler=sampler, load_if_exists=storage is not None)
            except optuna.exceptions.DuplicatedStudyError:
                # Two workers created the study at the same instant on an RDB server: the loser loads it.
                study = optuna.load_study(study_name=study_name, storage=storage, sampler=sampler)
            # The first trial is the plain exact (or robust) cut with the requested label rule: TPE starts from
            # the known-good point instead of finding it again.
            if not study.trials:
                study.enqueue_trial({"mix": 0.0, "offset": 0.0, "min_labels": hi_min, "max_labels": hi_max}
                                    | ({f"offset_{k}": 0.0 for k in range(n_classes)} if class_offset_range > 0
                                       else {}))
        study.optimize(objective, n_trials=n_trials, callbacks=[report] if progress is not None else None)
    complete = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    feasible = [t for t in complete if all(v <= 0 for v in t.constraints.values())]
    pool = feasible or complete
    # Best value, then lowest trial number: deterministic whatever the storage order.
    best = max(pool, key=lambda t: (t.value, -t.number))
    params = dict(best.params)
    return {
        "thresholds": params_to_thresholds(params),
        "min_labels": int(params["min_labels"]),
        "max_labels": int(params["max_labels"]),
        "params": params,
        "value": float(best.value),
        "feasible": bool(feasible),
        "distribution_gap": float(best.user_attrs.get("distribution_gap", np.nan)),
        "n_trials_total": len(complete),
        "best_trial": int(best.number),
    }


# ----------------------------------------------------------------------------------- storages
def journal_storage(path: str):
    """An Optuna JournalStorage on a file: safe for several processes appending to one study."""
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    Path(path).parent.mkdir(parents=True, exist_ok=True)
    return JournalStorage(JournalFileBackend(str(path)))


def _sqlite_file(spec: str) -> Path | None:
    """The database file of a ``sqlite:///…`` URL (None for another URL, a journal file or an in-memory db)."""
    if not spec.startswith("sqlite:"):
        return None
    # sqlite://[host]/DATABASE[?query], read as SQLAlchemy's make_url reads it (optuna's storage is SQLAlchemy),
    # without importing SQLAlchemy here: "sqlite:///x.db" is x.db, "sqlite:////abs/x.db" is /abs/x.db.
    rest = spec[len("sqlite:"):]
    if not rest.startswith("//") or "/" not in rest[2:]:
        return None
    database = unquote(rest[2:].split("/", 1)[1].split("?", 1)[0])
    return None if not database or database == ":memory:" or database.startswith("file:") else Path(database)


def _storage_lock(spec: str):
    """A lock file beside a SQLite file (``study.db.lock``), for the steps that race on a new file; else nothing.

    SQLite's busy timeout serialises writes, but not the first creation of the tables: two processes both see
    no tables and both ``CREATE TABLE`` ("table studies already exists"), or both insert the schema version.
    """
    db = _sqlite_file(spec)
    if db is None or not db.parent.is_dir():  # no folder: opening fails anyway, with open_storage's message
        return nullcontext()
    return file_lock(db.with_name(db.name + ".lock"), what=spec)


def open_storage(spec: str):
    """An Optuna storage: an RDB URL (``sqlite:///f.db``, ``postgresql://…``) or a journal file.

    Any number of processes may open a new SQLite file at the same moment: the tables are created once,
    under a lock file beside the database (``f.db.lock``, removed afterwards).

    Raises
    ------
    ContractError
        When the URL cannot be opened (one line naming it).
    """
    if "://" not in spec:
        return journal_storage(spec)
    with _storage_lock(spec):
        return _open_storage(spec)


def _open_storage(spec: str):
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


def study_name_for(key: dict) -> str:
    """One study name for every process given the same inputs and search space (``key``: JSON-able; never the
    seed), so that workers sharing a storage land in one study."""
    return "thresholds-" + hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]
