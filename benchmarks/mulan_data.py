"""The three MULAN multi-label sets of ``../shared/multilabel/`` (yeast, emotions, scene) with their
official train/test splits, and honest out-of-fold base learners on them.

Shared by ``benchmarks/multilabel.py`` (the public runner) and ``benchmarks/shift.py`` (thresholds
under label shift). Real data no one on this project made: evidence, never a simulator.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
MULAN_DIR = ROOT.parent / "shared" / "multilabel"
SETS = ("yeast", "emotions", "scene")


@dataclass
class MulanSet:
    """One MULAN set: features and 0/1 labels of the official train and test parts."""

    name: str
    label_names: list[str]
    X_train: np.ndarray
    Y_train: np.ndarray
    X_test: np.ndarray
    Y_test: np.ndarray

    @property
    def n_classes(self) -> int:
        return len(self.label_names)

    @property
    def train_ids(self) -> list[str]:
        return [f"{self.name}_tr{i:05d}" for i in range(len(self.X_train))]

    @property
    def test_ids(self) -> list[str]:
        return [f"{self.name}_te{i:05d}" for i in range(len(self.X_test))]


def load_mulan(name: str, root: Path = MULAN_DIR) -> MulanSet:
    """Read ``root/name/name-{train,test}.arff``; the labels are the attributes named in ``name.xml``."""
    from scipy.io import arff

    folder = Path(root) / name
    label_names = re.findall(r'<label name="([^"]+)"', (folder / f"{name}.xml").read_text(encoding="utf-8"))
    parts = []
    for split in ("train", "test"):
        data, meta = arff.loadarff(folder / f"{name}-{split}.arff")
        columns = list(meta.names())
        missing = [c for c in label_names if c not in columns]
        if missing:
            raise ValueError(f"{folder / f'{name}-{split}.arff'}: label attributes {missing[:3]} not found.")
        features = [c for c in columns if c not in label_names]
        X = np.column_stack([np.asarray(data[c], dtype=np.float64) for c in features])
        Y = np.column_stack([np.asarray([int(v) for v in data[c]], dtype=np.uint8) if data[c].dtype.kind in "SO"
                             else np.asarray(data[c], dtype=np.uint8) for c in label_names])
        parts += [X, Y]
    return MulanSet(name, label_names, *parts)


def multilabel_folds(Y: np.ndarray, n_folds: int = 5, seed: int = 0) -> np.ndarray:
    """Fold of each row by iterative multilabel stratification (the same library as ``hpa_ens.folds``)."""
    from iterstrat.ml_stratifiers import MultilabelStratifiedKFold

    folds = np.full(len(Y), -1, dtype=np.int64)
    splitter = MultilabelStratifiedKFold(n_splits=n_folds, shuffle=True, random_state=seed)
    for k, (_, held) in enumerate(splitter.split(np.zeros(len(Y)), Y)):
        folds[held] = k
    return folds


def _learner(kind: str, seed: int):
    from sklearn.ensemble import ExtraTreesClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.neighbors import KNeighborsClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    if kind == "logreg":
        return make_pipeline(StandardScaler(), LogisticRegression(C=0.1, max_iter=2000))
    if kind == "extratrees":
        return ExtraTreesClassifier(n_estimators=200, min_samples_leaf=2, n_jobs=1, random_state=seed)
    if kind == "knn":
        return make_pipeline(StandardScaler(), KNeighborsClassifier(n_neighbors=15, weights="distance"))
    raise ValueError(f"The 'kind' parameter must be one of logreg, extratrees, knn. Got {kind!r} instead.")


LEARNERS = ("logreg", "extratrees", "knn")


def _fit_predict_column(kind: str, X: np.ndarray, y: np.ndarray, X_pred: np.ndarray, seed: int) -> np.ndarray:
    if y.min() == y.max():  # a class with one value in these rows: its share is the only honest answer
        return np.full(len(X_pred), float(y[0]))
    model = _learner(kind, seed).fit(X, y)
    return model.predict_proba(X_pred)[:, 1]


def _forest_probs(X: np.ndarray, Y: np.ndarray, X_pred: np.ndarray, seed: int) -> np.ndarray:
    model = _learner("extratrees", seed).fit(X, Y)
    out = np.zeros((len(X_pred), Y.shape[1]))
    for k, (classes, proba) in enumerate(zip(model.classes_, model.predict_proba(X_pred))):
        out[:, k] = proba[:, list(classes).index(1)] if 1 in classes else 0.0
    return out


def oof_and_test(kind: str, data: MulanSet, folds: np.ndarray, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Out-of-fold train probabilities (each row from the fold model that did not see it) and test
    probabilities (the full-train model), one binary model per class.

    Returns
    -------
    oof : ndarray of shape (n_train, K)
    test : ndarray of shape (n_test, K)
    """
    K = data.n_classes
    oof = np.zeros((len(data.X_train), K))
    test = np.zeros((len(data.X_test), K))
    if kind == "extratrees":  # one multi-output forest fits every class at once
        for fold in np.unique(folds):
            fit, held = folds != fold, folds == fold
            oof[held] = _forest_probs(data.X_train[fit], data.Y_train[fit], data.X_train[held], seed)
        test[:] = _forest_probs(data.X_train, data.Y_train, data.X_test, seed)
        return oof, test
    for fold in np.unique(folds):
        fit, held = folds != fold, folds == fold
        for k in range(K):
            oof[held, k] = _fit_predict_column(kind, data.X_train[fit], data.Y_train[fit, k], data.X_train[held], seed)
    for k in range(K):
        test[:, k] = _fit_predict_column(kind, data.X_train, data.Y_train[:, k], data.X_test, seed)
    return np.clip(oof, 0.0, 1.0), np.clip(test, 0.0, 1.0)
