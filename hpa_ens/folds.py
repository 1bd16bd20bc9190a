"""Cross-validation folds: multilabel-stratified, duplicate-aware, with a split-quality report.

``python -m hpa_ens.folds --labels train.csv --out folds.csv --n-folds 5 --seed 0 [--groups FILE ...]
[--extra-labels HPAv18.csv] [--task T]`` (the command: :mod:`hpa_ens.commands.folds`)

Duplicate Ids (``--groups``) are merged into groups first; each group is stratified as one sample
carrying the union of its members' labels, and its fold is then given to every member, so a group
never spans two folds. External (HPAv18) Ids (``--extra-labels``) take part in the merge: an external
image that duplicates a train image is tied to that image's fold (``folds.extra.csv``, see
:mod:`hpa_ens.contract.extra_folds`) so the model that predicts the train image out of fold never
trains on its near-copy. The splitter itself is ``iterstrat``'s ``MultilabelStratifiedKFold``
(Sechidis et al. 2011) with ``shuffle=True`` and the seed.

Strategies (``--strategy``):

``iterative`` (default)
    Iterative stratification over all K labels jointly.
``rarest``
    Each group is reduced to its rarest label (the class with the fewest positives in the whole set)
    and split with scikit-learn's ``StratifiedKFold``; the usual Kaggle-kernel recipe.
``single-first``
    Single-label groups are split with ``StratifiedKFold`` on their one label, multi-label groups with
    iterative stratification; fold j of one part is joined to the fold of the other part that
    balances sizes best.

The split-quality measures (see ``docs/folds_eda.md`` for the formulas) are computed for the chosen
strategy and, as a baseline, for a shuffled ``KFold`` with the same seed on the same labels.
"""

from __future__ import annotations

import time
import warnings
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from .io import atomic_write_json
from .report import save_figure
from .validation import ContractError, check_param

STRATEGIES: tuple[str, ...] = ("iterative", "rarest", "single-first")

__all__ = [
    "STRATEGIES",
    "group_label_union",
    "make_folds",
    "rarest_label",
    "split_quality",
    "compare_with_kfold",
    "kfold_assign",
    "build_folds",
    "write_outputs",
]


# ---------------------------------------------------------------------------------------- core
def group_label_union(Y: np.ndarray, codes: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """Collapse rows into groups carrying the union of their labels.

    Parameters
    ----------
    Y : ndarray of shape (n_samples, n_classes), 0/1
    codes : ndarray of shape (n_samples,) or None
        Group number of each row; ``None`` means every row is its own group.

    Returns
    -------
    group_Y : ndarray of shape (n_groups, n_classes), uint8
        Groups ordered by their code.
    inverse : ndarray of shape (n_samples,)
        Row -> group index, so ``group_Y[inverse]`` is the group label of each row.
    """
    Y = np.asarray(Y).astype(np.uint8)
    if codes is None:
        return Y, np.arange(len(Y))
    codes = np.asarray(codes)
    check_param("codes", codes.shape, f"of shape ({len(Y)},)", codes.shape == (len(Y),), "group_label_union")
    _, inverse = np.unique(codes, return_inverse=True)
    inverse = inverse.ravel()
    group_Y = np.zeros((int(inverse.max()) + 1 if len(inverse) else 0, Y.shape[1]), dtype=np.uint8)
    np.maximum.at(group_Y, inverse, Y)
    return group_Y, inverse


def rarest_label(Y: np.ndarray) -> np.ndarray:
    """Each row's rarest label (fewest positives over ``Y``); ``-1`` for a row with no label.

    Parameters
    ----------
    Y : ndarray of shape (n_samples, n_classes)

    Returns
    -------
    labels : ndarray of shape (n_samples,), int64
    """
    Y = np.asarray(Y).astype(bool)
    counts = Y.sum(axis=0).astype(np.float64)
    # Ties between equally rare classes go to the lower class id (argmin takes the first).
    masked = np.where(Y, counts[None, :], np.inf)
    labels = np.argmin(masked, axis=1).astype(np.int64)
    labels[~Y.any(axis=1)] = -1
    return labels


def _to_folds(splits, n_samples: int) -> np.ndarray:
    folds = np.full(n_samples, -1, dtype=np.int64)
    for fold, (_, test_index) in enumerate(splits):
        folds[test_index] = fold
    return folds


def _iterative(Y: np.ndarray, n_folds: int, seed: int) -> np.ndarray:
    from iterstrat.ml_stratifiers import MultilabelStratifiedKFold

    # shuffle=True is what makes random_state legal in current scikit-learn (iterstrat issue #29).
    splitter = MultilabelStratifiedKFold(n_splits=n_folds, shuffle=True, random_state=seed)
    return _to_folds(splitter.split(np.zeros(len(Y)), Y), len(Y))


def _stratified_single(labels: np.ndarray, n_folds: int, seed: int) -> np.ndarray:
    from sklearn.model_selection import StratifiedKFold

    splitter = StratifiedKFold(n_splits=n_folds, shuffle=True, random_state=seed)
    with warnings.catch_warnings():
        # Classes with fewer members than folds are expected (HPA class 27 has 11 positives);
        # StratifiedKFold still spreads them one per fold.
        warnings.filterwarnings("ignore", message=".*least populated class.*", category=UserWarning)
        return _to_folds(splitter.split(np.zeros(len(labels)), labels), len(labels))


def _single_first(Y: np.ndarray, n_folds: int, seed: int) -> np.ndarray:
    n_labels = Y.sum(axis=1)
    single = n_labels <= 1
    folds = np.full(len(Y), -1, dtype=np.int64)
    part_single = np.flatnonzero(single)
    part_multi = np.flatnonzero(~single)
    if len(part_single) < n_folds or len(part_multi) < n_folds:
        # Too few of one kind to split it on its own: fall back to one joint split.
        return _iterative(Y, n_folds, seed)
    folds_single = _stratified_single(rarest_label(Y[part_single]), n_folds, seed)
    folds_multi = _iterative(Y[part_multi], n_folds, seed)
    # Join the largest single-label fold with the smallest multi-label fold, and so on (stable sorts,
    # so the pairing is deterministic).
    order_single = np.argsort(-np.bincount(folds_single, minlength=n_folds), kind="stable")
    order_multi = np.argsort(np.bincount(folds_multi, minlength=n_folds), kind="stable")
    remap_multi = np.empty(n_folds, dtype=np.int64)
    remap_multi[order_multi] = order_single
    folds[part_single] = folds_single
    folds[part_multi] = remap_multi[folds_multi]
    return folds


def make_folds(Y: np.ndarray, n_folds: int = 5, seed: int = 0, codes: np.ndarray | None = None,
               strategy: str = "iterative") -> np.ndarray:
    """Assign every row to a fold, keeping each duplicate group in one fold.

    Parameters
    ----------
    Y : ndarray of shape (n_samples, n_classes), 0/1
        Label indicator matrix.
    n_folds : int, >= 2
    seed : int
        Same seed and same rows in the same order -> same folds.
    codes : ndarray of shape (n_samples,), optional
        Duplicate-group number of each row (``hpa_ens.groups.group_codes``); rows with equal codes
        land in the same fold.
    strategy : {"iterative", "rarest", "single-first"}

    Returns
    -------
    folds : ndarray of shape (n_samples,), int64 in 0..n_folds-1
    """
    check_param("strategy", strategy, f"one of {list(STRATEGIES)}", strategy in STRATEGIES, "make_folds")
    check_param("n_folds", n_folds, "an integer >= 2", isinstance(n_folds, (int, np.integer)) and n_folds >= 2,
                "make_folds")
    check_param("seed", seed, "a non-negative integer", isinstance(seed, (int, np.integer)) and seed >= 0, "make_folds")
    Y = np.asarray(Y)
    check_param("Y", Y.shape, "a 2-D indicator matrix", Y.ndim == 2, "make_folds")
    group_Y, inverse = group_label_union(Y, codes)
    if len(group_Y) < n_folds:
        raise ContractError(
            f"The 'n_folds' parameter of make_folds must be <= the number of groups ({len(group_Y)}). Got {n_folds} instead."
        )
    if strategy == "iterative":
        group_folds = _iterative(group_Y, n_folds, seed)
    elif strategy == "rarest":
        group_folds = _stratified_single(rarest_label(group_Y), n_folds, seed)
    else:
        group_folds = _single_first(group_Y, n_folds, seed)
    return group_folds[inverse]


def kfold_assign(n_samples: int, n_folds: int, seed: int) -> np.ndarray:
    """Plain shuffled ``KFold`` folds (the baseline), shape (n_samples,)."""
    from sklearn.model_selection import KFold

    return _to_folds(KFold(n_splits=n_folds, shuffle=True, random_state=seed).split(np.zeros(n_samples)), n_samples)


# ------------------------------------------------------------------------------------- quality
def _distribution_distance(subset_pos: np.ndarray, subset_size: np.ndarray, total_pos: np.ndarray, total: int) -> float:
    """Mean over targets (columns) and folds (rows) of |pos/neg in fold - pos/neg in all| (Sechidis 2011).

    A denominator of 0 (every example of a fold is positive) is taken as 1 so the value stays finite.
    """
    neg = subset_size[:, None] - subset_pos
    ratio_fold = subset_pos / np.maximum(neg, 1)
    ratio_all = total_pos / np.maximum(total - total_pos, 1)
    return float(np.mean(np.abs(ratio_fold - ratio_all[None, :])))


def split_quality(Y: np.ndarray, folds: np.ndarray, n_folds: int | None = None,
                  codes: np.ndarray | None = None) -> dict:
    """Measure how evenly a split spreads the labels.

    Parameters
    ----------
    Y : ndarray of shape (n_samples, n_classes), 0/1
    folds : ndarray of shape (n_samples,), ints 0..K-1
    n_folds : int, optional
        K; by default ``folds.max() + 1``.
    codes : ndarray of shape (n_samples,), optional
        Duplicate groups; adds ``groups_split`` (groups whose members sit in more than one fold).

    Returns
    -------
    report : dict
        ``fold_sizes`` (K,), ``positives`` (K, n_classes) positives per fold and class,
        ``pos_min`` / ``pos_max`` (n_classes,), ``LD``, ``LPD`` (Sechidis et al. 2011; 0 is perfect),
        ``ED`` (mean |fold size - n/K|), ``FZ`` (fold-class cells with no positive although the class
        has at least K positives), ``FZLP`` (same for label pairs occurring at least K times),
        ``max_rel_dev`` (largest |positives - expected| / expected over classes with >= K positives).
    """
    Y = np.asarray(Y).astype(np.int64)
    folds = np.asarray(folds).astype(np.int64)
    n_samples, n_classes = Y.shape
    K = int(n_folds if n_folds is not None else folds.max() + 1)
    onehot = np.zeros((n_samples, K), dtype=np.int64)
    onehot[np.arange(n_samples), folds] = 1
    sizes = onehot.sum(axis=0)
    positives = onehot.T @ Y  # (K, n_classes)
    total_pos = Y.sum(axis=0)

    # Label pairs: co-occurrence counts per fold, upper triangle, restricted to pairs present in Y.
    pair_all = Y.T @ Y
    iu = np.triu_indices(n_classes, k=1)
    present = pair_all[iu] > 0
    pair_fold = np.stack([(Y[folds == k].T @ Y[folds == k])[iu][present] for k in range(K)])
    pair_total = pair_all[iu][present]

    present_classes = total_pos > 0
    ld = _distribution_distance(positives[:, present_classes], sizes, total_pos[present_classes], n_samples)
    lpd = _distribution_distance(pair_fold, sizes, pair_total, n_samples) if present.any() else 0.0
    expected = total_pos / K
    enough = total_pos >= K
    with np.errstate(divide="ignore", invalid="ignore"):
        rel_dev = np.abs(positives - expected[None, :]) / expected[None, :]
    report = {
        "n_samples": int(n_samples),
        "n_folds": K,
        "fold_sizes": sizes.tolist(),
        "positives": positives.tolist(),
        "class_total": total_pos.tolist(),
        "pos_min": positives.min(axis=0).tolist(),
        "pos_max": positives.max(axis=0).tolist(),
        "LD": ld,
        "LPD": lpd,
        "ED": float(np.mean(np.abs(sizes - n_samples / K))),
        "FZ": int((positives[:, enough] == 0).sum()),
        "FZLP": int((pair_fold[:, pair_total >= K] == 0).sum()),
        "max_rel_dev": float(rel_dev[:, enough].max()) if enough.any() else 0.0,
    }
    if codes is not None:
        codes = np.asarray(codes)
        frame = pd.DataFrame({"code": codes, "fold": folds})
        report["groups_split"] = int((frame.groupby("code")["fold"].nunique() > 1).sum())
    return report


def compare_with_kfold(Y: np.ndarray, folds: np.ndarray, n_folds: int, seed: int,
                       codes: np.ndarray | None = None) -> dict:
    """``{"split": quality of folds, "kfold": quality of a shuffled KFold with the same seed}``."""
    baseline = kfold_assign(len(Y), n_folds, seed)
    return {
        "split": split_quality(Y, folds, n_folds, codes),
        "kfold": split_quality(Y, baseline, n_folds, codes),
    }


# ------------------------------------------------------------------------------------- outputs
def report_table(comparison: dict, strategy: str, class_names: Sequence[str] | None = None):
    """A rich table: per class positives per fold (min/max) for the split and for KFold, then totals."""
    from rich.table import Table

    split, kfold = comparison["split"], comparison["kfold"]
    table = Table(title=f"Split quality: {strategy} vs shuffled KFold ({split['n_folds']} folds, "
                        f"{split['n_samples']:,} rows)",
                  caption="strategy columns: positives per fold, min–max; LD/LPD: 0 is perfect")
    table.add_column("k", justify="right", no_wrap=True, min_width=2)
    table.add_column("class", no_wrap=True, max_width=20, overflow="ellipsis")
    for col in ("n", "n/K", strategy, "KFold"):
        table.add_column(col, justify="right", no_wrap=True)
    K = split["n_folds"]
    for k in range(len(split["class_total"])):
        total = split["class_total"][k]
        name = class_names[k] if class_names is not None and len(class_names) == len(split["class_total"]) else str(k)
        table.add_row(str(k), name, str(total), f"{total / K:.1f}",
                      f"{split['pos_min'][k]}–{split['pos_max'][k]}",
                      f"{kfold['pos_min'][k]}–{kfold['pos_max'][k]}")
    table.add_section()
    for key, fmt in (("LD", "{:.5f}"), ("LPD", "{:.5f}"), ("ED", "{:.1f}"), ("FZ", "{}"), ("FZLP", "{}"),
                     ("max_rel_dev", "{:.3f}"), ("groups_split", "{}")):
        if key in split:
            table.add_row("", key, "", "", fmt.format(split[key]), fmt.format(kfold[key]))
    table.add_row("", "fold sizes", "", f"{split['n_samples'] / K:.1f}",
                  f"{min(split['fold_sizes'])}–{max(split['fold_sizes'])}",
                  f"{min(kfold['fold_sizes'])}–{max(kfold['fold_sizes'])}")
    return table


def plot_quality(comparison: dict, strategy: str, path: Path, dpi: int = 100) -> None:
    """Per class, the spread of positives per fold relative to the expected count (PNG)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    split, kfold = comparison["split"], comparison["kfold"]
    K = split["n_folds"]
    total = np.asarray(split["class_total"], dtype=np.float64)
    expected = np.where(total > 0, total / K, np.nan)
    x = np.arange(len(total))
    fig, ax = plt.subplots(figsize=(10, 4))
    for offset, (name, rep, color) in enumerate(((strategy, split, "tab:blue"), ("KFold", kfold, "tab:orange"))):
        lo = np.asarray(rep["pos_min"]) / expected
        hi = np.asarray(rep["pos_max"]) / expected
        xs = x + (offset - 0.5) * 0.3
        ax.vlines(xs, lo, hi, color=color, lw=3, label=f"{name} (LD {rep['LD']:.4f})")
    ax.axhline(1.0, color="black", lw=0.8)
    ax.set_xticks(x)
    ax.set_xticklabels([str(k) for k in x], fontsize=7)
    ax.set_xlabel("class")
    ax.set_ylabel("positives per fold / expected")
    ax.set_title("Min–max positives per fold, relative to total/K")
    ax.legend(loc="upper left")
    fig.tight_layout()
    save_figure(fig, path, dpi=dpi)


def report_paths(out: Path) -> tuple[Path, Path]:
    """``folds.csv`` -> (``folds.report.json``, ``folds.report.png``) beside it."""
    out = Path(out)
    return out.with_name(f"{out.stem}.report.json"), out.with_name(f"{out.stem}.report.png")


# ---------------------------------------------------------------------------------- the stage
def assign_extra_folds(codes_all: np.ndarray, n_train: int, folds: np.ndarray) -> np.ndarray:
    """Fold of each external image: its duplicate group's train fold, or -1 when the group has no train Id.

    Parameters
    ----------
    codes_all : ndarray of shape (n_train + n_extra,)
        Group numbers of the train Ids followed by the external Ids (one merge over all of them).
    n_train : int
    folds : ndarray of shape (n_train,), the train folds (a group never spans two folds)

    Returns
    -------
    extra_folds : ndarray of shape (n_extra,), int64 in -1..K-1
    """
    codes_all = np.asarray(codes_all)
    fold_of_group = dict(zip(codes_all[:n_train].tolist(), np.asarray(folds).tolist()))
    return np.array([fold_of_group.get(c, -1) for c in codes_all[n_train:].tolist()], dtype=np.int64)


def build_folds(labels: pd.DataFrame, n_folds: int = 5, seed: int = 0, strategy: str = "iterative",
                group_files: Sequence[str] = (), extra_ids: Sequence[str] = ()) -> dict:
    """Folds for the train Ids of ``labels`` (and the fold tie of each external Id).

    Parameters
    ----------
    labels : DataFrame of shape (n_train, K), 0/1, indexed by Id
    group_files : duplicate files (see :mod:`hpa_ens.groups`)
    extra_ids : external (HPAv18) Ids; pairs through them join train Ids too, and each gets the fold of
        the train images it duplicates (-1 when none)

    Returns
    -------
    result : dict with ``folds`` (Series by train Id), ``extra`` (Series by external Id, or None),
        ``codes`` (train group codes or None), ``comparison`` (:func:`compare_with_kfold`), ``report``
        (the JSON report), ``seconds``
    """
    from .groups import group_codes, read_groups

    check_param("n_folds", n_folds, "an integer >= 2", n_folds >= 2)
    check_param("seed", seed, "a non-negative integer", seed >= 0)
    ids, extra_ids = labels.index.tolist(), list(extra_ids)
    shared = set(ids) & set(extra_ids)
    if shared:
        raise ContractError(f"{len(shared)} external Ids are also train Ids (one Id would name two images); "
                            f"first: {sorted(shared)[:3]}.")
    codes = codes_all = None
    if group_files or extra_ids:
        everything = ids + extra_ids
        codes_all = group_codes(read_groups(list(group_files), ids=everything), everything) if group_files \
            else np.arange(len(everything))
        codes = codes_all[: len(ids)]
    start = time.perf_counter()
    folds = make_folds(labels.to_numpy(), n_folds, seed, codes, strategy)
    seconds = time.perf_counter() - start
    extra = None
    if extra_ids:
        extra = pd.Series(assign_extra_folds(codes_all, len(ids), folds), index=pd.Index(extra_ids, name="Id"),
                          name="fold")
    sizes = np.bincount(codes) if codes is not None else np.zeros(0, np.int64)
    comparison = compare_with_kfold(labels.to_numpy(), folds, n_folds, seed, codes if group_files else None)
    report = {"groups": [str(g) for g in group_files], "n_duplicate_groups": int((sizes > 1).sum()),
              "n_duplicate_ids": int(sizes[sizes > 1].sum()), "n_folds": n_folds, "seed": seed, "strategy": strategy}
    if extra is not None:
        report["n_extra"] = int(len(extra))
        report["n_extra_tied"] = int((extra >= 0).sum())
    return {"folds": pd.Series(folds, index=pd.Index(ids, name="Id"), name="fold"), "extra": extra, "codes": codes,
            "comparison": comparison, "report": {**report, **comparison}, "seconds": seconds}


def write_outputs(result: dict, out: Path, labels_path: str, task, plot: bool,
                  extra_out: Path | None = None) -> list[Path]:
    """folds.csv, folds.report.json (+ .png), and folds.extra.csv when there are external Ids."""
    from .contract import write_folds
    from .contract.extra_folds import write_extra_folds

    write_folds(out, result["folds"])
    written = [out]
    if result["extra"] is not None:
        write_extra_folds(extra_out, result["extra"])
        written.append(extra_out)
    json_path, png_path = report_paths(out)
    atomic_write_json(json_path, {"labels": str(labels_path), "task": task.name, **result["report"]})
    written.append(json_path)
    if plot:
        plot_quality(result["comparison"], result["report"]["strategy"], png_path)
        written.append(png_path)
    return written


if __name__ == "__main__":  # python -m hpa_ens.folds: the command lives in hpa_ens.commands.folds
    from hpa_ens.commands import launch

    launch("folds", __spec__.name)
