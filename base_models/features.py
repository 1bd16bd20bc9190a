"""An image-feature base model: hand-made statistics per image, one linear or boosted model per class.

A cheap member that differs from the CNNs (top teams mixed very different models), and on real data a
baseline users want anyway. No torch: numpy, scipy and scikit-learn (LightGBM optional), all core
dependencies.

1. **Features**, computed once per image and cached (``cache_dir``, default ``DATA/.cache/features``;
   one ``.npz`` per split, keyed by a fingerprint of the feature list, the image files' sizes and
   mtimes, the image size and the code (this module and the Otsu threshold); written atomically):

   - ``channel_stats``: per channel mean, std, quantiles and bright fractions;
   - ``quantiles``: position-free quantiles of the protein channel, of protein x each reference
     stain (co-localisation), of its local contrast (dots) and gradient (lines), at full and half
     resolution (the features of ``benchmarks/baseline_synth.py``);
   - ``texture``: grey-level co-occurrence statistics and a local-binary-pattern histogram of the
     protein channel;
   - ``histogram``: the protein channel's intensity distribution (normalised histogram);
   - ``cells``: nuclei segmented from the nucleus channel; per nucleus the protein's mean inside it,
     in a ring around it and in the cell around that, their ratios and the nucleus area, summarised
     over nuclei (mean, max, min, std), plus protein spots inside / outside nuclei.

2. **Models**: per fold, standardise on the fold's training rows, then one logistic regression
   (``model: logistic``) or LightGBM classifier (``model: lightgbm``) per class. A held-out row is
   predicted only by the fold model that did not see it; test probabilities are the mean of the fold
   models (``test: fold_mean``) or one model refit on every train row (``test: full``). Nothing is
   tuned on the held-out rows (fixed C / trees).

Output: ``OUT/NAME/{oof.csv,test.csv,meta.json}`` through :mod:`hpa_ens.contract`, like the CNNs.
:func:`run` is the library entry point (``base_models.run_all`` calls it for ``kind: features``
configs); the command (:mod:`base_models.commands.features`, also ``hpa-ens features``) is

    python -m base_models.features --config base_models/configs/features.yaml \
        --data data/synth --folds data/synth/folds.csv --out oof
"""

from __future__ import annotations

import difflib
import hashlib
import inspect

import time
from pathlib import Path
from typing import Callable, Mapping, Sequence

import numpy as np
import pandas as pd

from hpa_ens.validation import ContractError, ParameterError
from hpa_ens.contract import build_meta, fingerprint_of, read_folds, write_prediction_set
from hpa_ens.images import channel_paths, otsu_threshold, read_image
from hpa_ens.io import atomic_open

__all__ = ["DEFAULTS", "FEATURES", "load_feature_config", "image_features", "extract", "fit_predict_fold",
           "train_features", "run"]

DEFAULTS: dict = {
    "kind": "features",
    "name": None,               # prediction-set name; default: the config file's stem
    "features": ["channel_stats", "quantiles", "texture", "histogram", "cells"],
    "image_size": None,         # resize every channel to this side first (null: as stored)
    "protein_channel": "green",  # the stain whose pattern is the label (HPA: green)
    "nucleus_channel": "blue",   # nuclei for the per-cell features (null: no cells feature)
    "model": "logistic",        # logistic | lightgbm
    "C": 0.1,                   # logistic: inverse L2 strength
    "n_estimators": 150,        # lightgbm
    "learning_rate": 0.05,      # lightgbm
    "num_leaves": 7,            # lightgbm
    "test": "fold_mean",        # fold_mean | full
    "seed": 0,
    "cache_dir": None,          # default DATA/.cache/features
}
_CHOICES = {"model": ("logistic", "lightgbm"), "test": ("fold_mean", "full")}

QUANTILES = np.array([0.5, 0.75, 0.9, 0.95, 0.98, 0.99, 0.995, 1.0])


# ------------------------------------------------------------------------------------------- features
class _Image:
    """One image as float32 channels in [0, 1], with the roles the feature functions need."""

    def __init__(self, pixels: np.ndarray, channels: Sequence[str], protein: str, nucleus: str | None):
        self.pixels = pixels.astype(np.float32) / 255.0
        self.channels = list(channels)
        self.p = self.channels.index(protein)
        self.n = self.channels.index(nucleus) if nucleus in self.channels else None

    @property
    def protein(self) -> np.ndarray:
        return self.pixels[self.p]


def _channel_stats(img: _Image) -> np.ndarray:
    feats = []
    for ch in img.pixels:
        feats += [ch.mean(), ch.std(), *np.quantile(ch, [0.5, 0.9, 0.99, 1.0]), (ch > 0.1).mean(), (ch > 0.3).mean()]
    return np.asarray(feats)


def _quantiles(img: _Image) -> np.ndarray:
    from scipy import ndimage

    feats = []
    pix = img.pixels
    c, h, w = pix.shape
    half = pix[:, : h // 2 * 2, : w // 2 * 2].reshape(c, h // 2, 2, w // 2, 2).mean(axis=(2, 4))
    for level in (pix, half):
        protein = level[img.p]
        contrast = protein - ndimage.uniform_filter(protein, 5)
        gradient = np.hypot(*np.gradient(protein))
        values = [protein] + [protein * level[k] for k in range(c) if k != img.p] + [contrast, gradient]
        for v in values:
            feats.append(np.quantile(v, QUANTILES))
        feats.append(level.mean(axis=(1, 2)))
    return np.concatenate(feats)


#: Grey-level co-occurrence offsets (dy, dx) for angles 0, 45, 90 and 135 degrees at distance 1.
_ANGLES = ((0, 1), (-1, 1), (-1, 0), (-1, -1))


def glcm_properties(q: np.ndarray, levels: int, distance: int) -> np.ndarray:
    """Contrast, dissimilarity, homogeneity, energy and correlation of the symmetric, normalised
    grey-level co-occurrence matrix of ``q`` (ints in 0..levels-1), averaged over the four angles."""
    i, j = np.meshgrid(np.arange(levels), np.arange(levels), indexing="ij")
    out = np.zeros(5)
    h, w = q.shape
    for dy, dx in _ANGLES:
        dy, dx = dy * distance, dx * distance
        r0, r1, c0, c1 = max(0, -dy), h - max(0, dy), max(0, -dx), w - max(0, dx)
        a, b = q[r0:r1, c0:c1], q[r0 + dy:r1 + dy, c0 + dx:c1 + dx]  # pixel and its neighbour at (dy, dx)
        counts = np.bincount((a * levels + b).ravel(), minlength=levels * levels).reshape(levels, levels)
        p = (counts + counts.T).astype(np.float64)
        p /= max(p.sum(), 1.0)
        mu = (i * p).sum()
        var = ((i - mu) ** 2 * p).sum()
        corr = (((i - mu) * (j - mu) * p).sum() / var) if var > 1e-12 else 1.0
        out += [((i - j) ** 2 * p).sum(), (np.abs(i - j) * p).sum(), (p / (1.0 + (i - j) ** 2)).sum(),
                np.sqrt((p ** 2).sum()), corr]
    return out / len(_ANGLES)


def lbp_histogram(x: np.ndarray) -> np.ndarray:
    """Share of pixels per rotation-invariant uniform local binary pattern of the 8 neighbours (10 bins:
    0..8 neighbours at least as bright in one run, 9 = non-uniform); border pixels left out."""
    c = x[1:-1, 1:-1]
    h, w = x.shape
    ring = [(0, 0), (0, 1), (0, 2), (1, 2), (2, 2), (2, 1), (2, 0), (1, 0)]
    bits = np.stack([x[dy:h - 2 + dy, dx:w - 2 + dx] >= c for dy, dx in ring]).astype(np.int8)
    transitions = np.abs(np.diff(np.concatenate([bits, bits[:1]]), axis=0)).sum(axis=0)
    code = np.where(transitions <= 2, bits.sum(axis=0), 9)
    return np.bincount(code.ravel(), minlength=10)[:10] / code.size


def _texture(img: _Image) -> np.ndarray:
    levels = 16
    q = np.clip((img.protein * levels).astype(np.int64), 0, levels - 1)
    props = [glcm_properties(q, levels, d) for d in (1, 2, 4)]
    return np.nan_to_num(np.concatenate(props + [lbp_histogram(img.protein)]))


def _histogram(img: _Image) -> np.ndarray:
    hist = np.histogram(img.protein, bins=16, range=(0.0, 1.0))[0]
    return np.log1p(hist / img.protein.size * 1000.0)


_CELL_STATS = 8


def _cells(img: _Image) -> np.ndarray:
    """Per-nucleus protein statistics summarised over nuclei (mean, max, min, std) + spot counts."""
    from scipy import ndimage

    protein = img.protein
    out = np.zeros(_CELL_STATS * 4 + 6)
    if img.n is None:
        return out
    nuclear = ndimage.gaussian_filter(img.pixels[img.n], 1.0)
    if nuclear.max() - nuclear.min() < 1e-6:
        return out
    # The fixed [0, 1] binning and first best cut this model's features were computed with.
    mask = nuclear > otsu_threshold(nuclear, binning="unit", ties="first")
    labels, count = ndimage.label(mask)
    # spots: protein well above its own background, inside or outside nuclei
    spots = protein > protein.mean() + 2 * protein.std()
    spot_labels, n_spots = ndimage.label(spots)
    inside = (spots & mask).sum() / max(spots.sum(), 1)
    out[-6:] = [count, n_spots, inside, spots.mean(), protein[mask].mean() if mask.any() else 0.0,
                protein[~mask].mean() if (~mask).any() else 0.0]
    if count == 0:
        return out
    index = np.arange(1, count + 1)
    ring = ndimage.grey_dilation(labels, size=(5, 5)) * (labels == 0)
    cell = ndimage.grey_dilation(labels, size=(11, 11)) * (labels == 0)
    area = ndimage.sum(np.ones_like(protein), labels, index)
    nuc_mean = ndimage.mean(protein, labels, index)
    nuc_max = ndimage.maximum(protein, labels, index)
    nuc_std = ndimage.standard_deviation(protein, labels, index)
    with np.errstate(invalid="ignore", divide="ignore"):  # a nucleus with no ring pixels: 0
        ring_mean = np.nan_to_num(ndimage.mean(protein, ring, index))
        cell_mean = np.nan_to_num(ndimage.mean(protein, cell, index))
    eps = 1e-3
    per = np.stack([nuc_mean, nuc_max, nuc_std / (nuc_mean + eps), ring_mean, cell_mean,
                    nuc_mean / (ring_mean + eps), ring_mean / (cell_mean + eps), area / protein.size], axis=1)
    per = np.log1p(np.clip(per, 0, 1e3))
    out[: _CELL_STATS * 4] = np.concatenate([per.mean(0), per.max(0), per.min(0), per.std(0)])
    return out


#: name -> function(image) -> 1-D feature vector (fixed length for a given channel list).
FEATURES: dict[str, Callable[[_Image], np.ndarray]] = {
    "channel_stats": _channel_stats, "quantiles": _quantiles, "texture": _texture, "histogram": _histogram,
    "cells": _cells,
}


def image_features(pixels: np.ndarray, names: Sequence[str], channels: Sequence[str], protein: str,
                   nucleus: str | None) -> np.ndarray:
    """The feature vector of one image.

    Parameters
    ----------
    pixels : ndarray of shape (n_channels, H, W), uint8
    names : feature names (keys of :data:`FEATURES`)

    Returns
    -------
    features : ndarray of shape (n_features,), float32
    """
    img = _Image(pixels, channels, protein, nucleus)
    return np.concatenate([FEATURES[n](img) for n in names]).astype(np.float32)


# --------------------------------------------------------------------------------------------- config
def load_feature_config(path=None, overrides: Mapping | None = None) -> dict:
    """Defaults, then the YAML file, then overrides; every key and feature name checked (no work done)."""

    config = dict(DEFAULTS)
    source = "command line"
    if path is not None:
        from .config import read_config_file  # torch-free, like this module

        path = Path(path)
        loaded = read_config_file(path)
        source = str(path)
        _check_keys(loaded, source)
        config.update(loaded)
    if overrides:
        _check_keys(overrides, "command line")
        config.update(overrides)
    if config["kind"] != "features":
        raise ContractError(f"{source}: 'kind' must be features for base_models.features. Got {config['kind']!r} instead.")
    if not config["name"]:
        config["name"] = path.stem if path is not None else "features"
    names = config["features"]
    if isinstance(names, str):
        names = [names]
    if not isinstance(names, list) or not names or not all(isinstance(n, str) for n in names):
        raise ParameterError(f"The 'features' parameter must be a non-empty list of names from "
                             f"{', '.join(FEATURES)}. Got {config['features']!r} instead.")
    for n in names:
        if n not in FEATURES:
            close = difflib.get_close_matches(n, list(FEATURES), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ParameterError(f"The 'features' parameter must name features from {', '.join(FEATURES)}. "
                                 f"Got {n!r} instead{hint}.")
    if len(set(names)) != len(names):
        raise ParameterError(f"The 'features' parameter must not repeat a name. Got {names!r} instead.")
    config["features"] = list(names)
    for key, choices in _CHOICES.items():
        if config[key] not in choices:
            raise ParameterError(f"The '{key}' parameter must be one of {', '.join(choices)}. Got {config[key]!r} instead.")
    for key in ("C", "learning_rate"):
        if isinstance(config[key], bool) or not isinstance(config[key], (int, float)) or not config[key] > 0:
            raise ParameterError(f"The '{key}' parameter must be a number > 0. Got {config[key]!r} instead.")
    for key in ("n_estimators", "num_leaves", "seed"):
        low = 0 if key == "seed" else (2 if key == "num_leaves" else 1)
        if isinstance(config[key], bool) or not isinstance(config[key], int) or config[key] < low:
            raise ParameterError(f"The '{key}' parameter must be an integer >= {low}. Got {config[key]!r} instead.")
    size = config["image_size"]
    if size is not None and (isinstance(size, bool) or not isinstance(size, int) or size < 16):
        raise ParameterError(f"The 'image_size' parameter must be null or an integer >= 16. Got {size!r} instead.")
    return config


def _check_keys(keys, source: str) -> None:
    from .config import check_known_keys  # torch-free, like this module

    check_known_keys(keys, DEFAULTS, source)


# ---------------------------------------------------------------------------------------------- cache
def _files_record(folder: Path, ids: Sequence[str], channels: Sequence[str]) -> str:
    """A digest of every channel file's name, size and mtime (cheap: stat only, no decoding)."""
    digest = hashlib.sha256()
    for image_id in ids:
        for p in channel_paths(folder, image_id, channels):
            st = p.stat()
            digest.update(f"{p.name}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return digest.hexdigest()


def _module_digest() -> str:
    """The code the features come from: this module and the nuclei's Otsu threshold (hpa_ens.images)."""
    digest = hashlib.sha256(Path(__file__).read_bytes())
    digest.update(inspect.getsource(otsu_threshold).encode())
    return digest.hexdigest()


def _cache_root(config: dict, data_dir: Path) -> Path:
    from hpa_ens.io import writable_cache_dir

    return Path(config["cache_dir"]) if config["cache_dir"] else writable_cache_dir(data_dir, "features")


def _extract_chunk(folder: str, ids: list[str], config: dict, channels: list[str]) -> np.ndarray:
    rows = [image_features(read_image(folder, i, size=config["image_size"], channels=channels), config["features"],
                           channels, config["protein_channel"], config["nucleus_channel"]) for i in ids]
    return np.stack(rows)


def extract(folder, ids: Sequence[str], config: dict, channels: Sequence[str], cache_root, n_jobs: int = 1,
            label: str = "features", progress=None) -> np.ndarray:
    """Feature matrix of ``ids`` under ``folder``, read from the cache when its fingerprint matches.

    ``progress``: a rich-``Progress``-like object (``add_task``, ``update``, ``remove_task``) showing the
    images done while the features are computed, or None.

    Returns
    -------
    x : ndarray of shape (len(ids), n_features), float32; the same for any ``n_jobs``
    """
    folder, ids, channels = Path(folder), [str(i) for i in ids], list(channels)
    key = fingerprint_of({"features": config["features"], "image_size": config["image_size"],
                          "protein": config["protein_channel"], "nucleus": config["nucleus_channel"],
                          "channels": channels, "ids": hashlib.sha256("\n".join(ids).encode()).hexdigest(),
                          "files": _files_record(folder, ids, channels), "code": _module_digest()})
    path = Path(cache_root) / f"{label}-{key[:24]}.npz"
    if path.is_file():
        try:
            with np.load(path, allow_pickle=False) as z:
                if z["key"].item() == key and z["x"].shape[0] == len(ids):
                    return z["x"]
        except (OSError, ValueError, KeyError):
            pass  # a damaged cache file is rebuilt below
    chunks = [ids[i:i + 64] for i in range(0, len(ids), 64)]
    parts: list[np.ndarray] = []
    task = progress.add_task(f"{label}: image features", total=len(ids)) if progress is not None else None
    if n_jobs > 1 and len(chunks) > 1:
        from joblib import Parallel, delayed

        # Each worker pins its BLAS to one thread: n_jobs workers, n_jobs cores.
        results = Parallel(n_jobs=n_jobs, return_as="generator")(
            delayed(_extract_chunk)(str(folder), c, config, channels) for c in chunks)
    else:
        results = (_extract_chunk(str(folder), c, config, channels) for c in chunks)
    for chunk, result in zip(chunks, results):
        parts.append(result)
        if task is not None:
            progress.update(task, advance=len(chunk))
    if task is not None:
        progress.remove_task(task)
    x = np.concatenate(parts).astype(np.float32)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_open(path, "wb") as handle:
        np.savez(handle, x=x, key=np.array(key))
    return x


# --------------------------------------------------------------------------------------------- models
def _fit_one(x: np.ndarray, y: np.ndarray, config: dict, n_jobs: int):
    if config["model"] == "logistic":
        from sklearn.linear_model import LogisticRegression

        return LogisticRegression(C=float(config["C"]), max_iter=500).fit(x, y)
    import lightgbm as lgb

    return lgb.LGBMClassifier(n_estimators=config["n_estimators"], learning_rate=config["learning_rate"],
                              num_leaves=config["num_leaves"], min_child_samples=10, subsample=0.8,
                              subsample_freq=1, colsample_bytree=0.5, random_state=config["seed"],
                              n_jobs=n_jobs, deterministic=True, force_row_wise=True, verbose=-1).fit(x, y)


def fit_predict_fold(x_fit: np.ndarray, y_fit: np.ndarray, x_pred: Sequence[np.ndarray], config: dict,
                     n_jobs: int = 1) -> list[np.ndarray]:
    """One model per class on ``x_fit``; probabilities for each matrix in ``x_pred``.

    Parameters
    ----------
    x_fit : ndarray (n_fit, n_features); y_fit : ndarray (n_fit, K) of 0/1
    x_pred : matrices (n_i, n_features) to predict

    Returns
    -------
    probs : list of ndarray (n_i, K); a class with no positive (or no negative) training row gets
        its training share everywhere
    """
    from sklearn.preprocessing import StandardScaler

    scaler = StandardScaler().fit(x_fit)
    fit = np.clip(scaler.transform(x_fit), -10, 10)
    preds = [np.clip(scaler.transform(x), -10, 10) for x in x_pred]
    out = [np.zeros((len(x), y_fit.shape[1])) for x in x_pred]
    for k in range(y_fit.shape[1]):
        positives = int(y_fit[:, k].sum())
        if positives in (0, len(y_fit)):
            for o in out:
                o[:, k] = positives / len(y_fit)
            continue
        model = _fit_one(fit, y_fit[:, k], config, n_jobs)
        for o, x in zip(out, preds):
            o[:, k] = model.predict_proba(x)[:, 1]
    return out


# ----------------------------------------------------------------------------------------------- data
def _frame(ids: Sequence[str], probs: np.ndarray) -> pd.DataFrame:
    return pd.DataFrame(probs, index=pd.Index(list(ids), name="Id"), columns=range(probs.shape[1]))


def _write_set(folder: Path, oof: pd.DataFrame, test: pd.DataFrame, meta: dict, task) -> None:
    # The contract's writer takes the task once the integrator's extension lands (K from the task).
    if "task" in inspect.signature(write_prediction_set).parameters:
        write_prediction_set(folder, oof, test, meta, task=task)
    else:
        write_prediction_set(folder, oof, test, meta)


# -------------------------------------------------------------------------------------------- training
def train_features(config: dict, data_dir, folds_path, out_root, task=None, n_jobs: int = 1,
                   argv: Sequence[str] | None = None, progress=None, log: Callable[[str], None] | None = None) -> dict:
    """Features (cached), one model per class and fold, and the prediction set ``OUT/NAME``.

    ``progress`` shows the feature extraction (:func:`extract`); ``log(line)`` receives one line per
    fold (its macro F1 and seconds). Nothing is printed here.

    Returns
    -------
    summary : dict with ``name``, ``oof_macro_f1`` (per-class best thresholds on the OOF rows, optimistic),
        ``oof_macro_f1_at_0.5``, ``fold_macro_f1`` (list), ``seconds``, ``feature_seconds``, ``n_features``
    """
    from hpa_ens.task import load_task
    from hpa_ens.thresholds import exact_thresholds

    task = load_task(task)
    data_dir, out_root = Path(data_dir), Path(out_root)
    channels = list(task.channels)
    for key in ("protein_channel", "nucleus_channel"):
        if config[key] is not None and config[key] not in channels:
            raise ParameterError(f"The '{key}' parameter must be one of the task's channels "
                                 f"({', '.join(channels)}). Got {config[key]!r} instead.")
    if "cells" in config["features"] and config["nucleus_channel"] is None:
        raise ParameterError("The 'features' parameter names cells, which needs a 'nucleus_channel'. Got null instead.")
    from hpa_ens.labels import read_labels, read_sample_submission

    labels = read_labels(data_dir / "train.csv", task=task)
    train_ids, y = labels.index.tolist(), labels.to_numpy(dtype=np.uint8)
    test_ids = read_sample_submission(data_dir / "sample_submission.csv").tolist()
    folds = read_folds(folds_path, train_ids).to_numpy()
    # Every file must exist before any decoding starts (names the first missing one).
    for folder, ids in ((data_dir / "train", train_ids), (data_dir / "test", test_ids)):
        for image_id in ids:
            channel_paths(folder, image_id, channels)

    started = time.perf_counter()
    cache = _cache_root(config, data_dir)
    x_train = extract(data_dir / "train", train_ids, config, channels, cache, n_jobs, "train", progress)
    x_test = extract(data_dir / "test", test_ids, config, channels, cache, n_jobs, "test", progress)
    feature_seconds = time.perf_counter() - started

    n_folds = int(folds.max()) + 1
    oof = np.full((len(train_ids), task.n_classes), np.nan)
    test_sum = np.zeros((len(test_ids), task.n_classes))
    fold_f1 = []
    for fold in range(n_folds):
        t0 = time.perf_counter()
        held = folds == fold
        oof_k, test_k = fit_predict_fold(x_train[~held], y[~held], [x_train[held], x_test], config, n_jobs)
        oof[held] = oof_k
        test_sum += test_k
        fold_f1.append(float(exact_thresholds(y[held], oof_k)[1].mean()))
        if log is not None:
            log(f"{config['name']} fold {fold}: fold F1 {fold_f1[-1]:.4f} (per-class best thresholds), "
                f"{time.perf_counter() - t0:.1f} s")
    if config["test"] == "full":
        test_probs = fit_predict_fold(x_train, y, [x_test], config, n_jobs)[0]
    else:
        test_probs = test_sum / n_folds

    from hpa_ens.metrics import macro_f1

    summary = {"name": config["name"], "kind": "features", "oof_macro_f1": float(exact_thresholds(y, oof)[1].mean()),
               "oof_macro_f1_at_0.5": float(macro_f1(y, oof > 0.5)), "fold_macro_f1": fold_f1,
               "n_features": int(x_train.shape[1]), "feature_seconds": feature_seconds,
               "seconds": time.perf_counter() - started}
    params = {k: v for k, v in config.items() if k not in ("cache_dir",)}
    meta = build_meta("base_models.features", inputs={"train.csv": data_dir / "train.csv",
                                                        "sample_submission.csv": data_dir / "sample_submission.csv"},
                      folds=folds_path, params=params, argv=argv, name=config["name"],
                      task=task.to_meta(), summary={k: v for k, v in summary.items() if k != "seconds"})
    _write_set(out_root / config["name"], _frame(train_ids, oof), _frame(test_ids, test_probs), meta, task)
    return summary


def run(config_path, data_dir, folds_path, out_root, task=None, n_jobs: int | None = 1,
        overrides: Mapping | None = None, argv: Sequence[str] | None = None, progress=None,
        log: Callable[[str], None] | None = None) -> dict:
    """Load and check a ``kind: features`` config, then train it (``base_models.run_all`` and the command).

    ``n_jobs`` follows joblib (-1 every CPU); ``progress`` and ``log`` as in :func:`train_features`.
    Returns the summary of :func:`train_features` (``name``, ``oof_macro_f1``, …).
    """
    from hpa_ens.utils import resolve_n_jobs

    config = load_feature_config(config_path, overrides)
    return train_features(config, data_dir, folds_path, out_root, task, resolve_n_jobs(n_jobs), argv=argv,
                          progress=progress, log=log)


if __name__ == "__main__":  # python -m base_models.features: the command lives in base_models.commands.features
    from hpa_ens.commands import launch

    launch("features", __spec__.name)
