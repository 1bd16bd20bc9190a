"""How hard is the synthetic set? A simple baseline: logistic regression on downsampled pixels.

Features (``--features quantiles``, the default): position-free statistics of the pixels at full and
half resolution (quantiles of green, green x each reference stain, green's local contrast and gradient;
110 numbers); ``--features pixels``: each channel block-averaged to ``--grid`` x ``--grid`` (1,024
numbers), which a linear model cannot use because the cells sit at random places. Standardised. One L2 logistic regression per class, 5-fold out-of-fold probabilities on train, the
per-class threshold that maximises each class's OOF F1 (exact search over the OOF probabilities), then
a model refit on all of train scores the held-out test truth with ``decision.apply_thresholds``
(at least one label per image). A small CNN should beat this clearly.

    .venv/bin/python -m hpa_ens.synth --out /tmp/synth64 --n-train 2500 --n-test 1000 --size 64 --seed 0
    .venv/bin/python benchmarks/baseline_synth.py /tmp/synth64
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from hpa_ens.classes import CHANNELS, CLASS_NAMES, N_CLASSES  # noqa: E402
from hpa_ens.decision import apply_thresholds  # noqa: E402
from hpa_ens.labels import read_labels  # noqa: E402
from hpa_ens.metrics import macro_f1, per_class_f1  # noqa: E402
from hpa_ens.thresholds import exact_thresholds  # noqa: E402


def load_features(folder: Path, ids, grid: int) -> np.ndarray:
    """Block-mean each channel to grid x grid; returns (n, 4 * grid * grid) float32."""
    from PIL import Image

    rows = []
    for image_id in ids:
        parts = []
        for channel in CHANNELS:
            pixels = np.asarray(Image.open(folder / f"{image_id}_{channel}.png"), dtype=np.float32) / 255.0
            size = pixels.shape[0]
            block = size // grid
            pixels = pixels[: block * grid, : block * grid].reshape(grid, block, grid, block).mean(axis=(1, 3))
            parts.append(pixels.ravel())
        rows.append(np.concatenate(parts))
    return np.stack(rows)


QUANTILES = np.array([0.5, 0.75, 0.9, 0.95, 0.98, 0.99, 0.995, 1.0])


def quantile_features(image: np.ndarray) -> np.ndarray:
    """Position-free statistics of one (4, S, S) image in [0, 1], at full and half resolution.

    The protein pattern sits at random places, so a linear model on raw pixels sees little more than
    brightness; quantiles of the green channel, of green times each reference stain (co-localisation
    with nuclei, microtubules, ER), of green's local contrast (dots) and of its gradient (lines) keep
    "what" and drop "where".
    """
    from scipy import ndimage

    feats = []
    for level in (image, image.reshape(4, image.shape[1] // 2, 2, image.shape[2] // 2, 2).mean(axis=(2, 4))):
        red, green, blue, yellow = level
        contrast = green - ndimage.uniform_filter(green, 5)
        gradient = np.hypot(*np.gradient(green))
        for values in (green, green * blue, green * red, green * yellow, contrast, gradient):
            feats.append(np.quantile(values, QUANTILES))
        feats.append(level.mean(axis=(1, 2)))
    return np.concatenate(feats)


def load_quantile_features(folder: Path, ids) -> np.ndarray:
    from PIL import Image

    rows = []
    for image_id in ids:
        image = np.stack([np.asarray(Image.open(folder / f"{image_id}_{c}.png"), np.float32) / 255.0 for c in CHANNELS])
        rows.append(quantile_features(image))
    return np.stack(rows)


def fit_predict(x_train, y_train, x_test, C: float) -> np.ndarray:
    from sklearn.linear_model import LogisticRegression

    probs = np.zeros((len(x_test), y_train.shape[1]))
    for k in range(y_train.shape[1]):
        positives = int(y_train[:, k].sum())
        if positives == 0 or positives == len(y_train):
            probs[:, k] = positives / len(y_train)
            continue
        model = LogisticRegression(C=C, max_iter=300)
        model.fit(x_train, y_train[:, k])
        probs[:, k] = model.predict_proba(x_test)[:, 1]
    return probs


def main(argv=None) -> int:
    from sklearn.model_selection import KFold
    from sklearn.preprocessing import StandardScaler

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("data", type=Path)
    ap.add_argument("--features", choices=("quantiles", "pixels"), default="quantiles",
                    help="quantiles: position-free pixel statistics; pixels: block-mean pixels on a --grid")
    ap.add_argument("--grid", type=int, default=16)
    ap.add_argument("--C", type=float, default=0.01)
    ap.add_argument("--folds", type=int, default=5)
    args = ap.parse_args(argv)
    start = time.perf_counter()
    train = read_labels(args.data / "train.csv")
    test = read_labels(args.data / "truth" / "test_labels.csv")
    if args.features == "pixels":
        x_train = load_features(args.data / "train", train.index, args.grid)
        x_test = load_features(args.data / "test", test.index, args.grid)
    else:
        x_train = load_quantile_features(args.data / "train", train.index)
        x_test = load_quantile_features(args.data / "test", test.index)
    y_train, y_test = train.to_numpy(), test.to_numpy()
    scaler = StandardScaler().fit(x_train)
    x_train, x_test = scaler.transform(x_train), scaler.transform(x_test)

    oof = np.zeros(y_train.shape)
    for fit_rows, val_rows in KFold(args.folds, shuffle=True, random_state=0).split(x_train):
        oof[val_rows] = fit_predict(x_train[fit_rows], y_train[fit_rows], x_train[val_rows], args.C)
    thresholds = exact_thresholds(y_train, oof)[0]
    test_probs = fit_predict(x_train, y_train, x_test, args.C)
    oof_pred = apply_thresholds(oof, thresholds, min_labels=1)
    test_pred = apply_thresholds(test_probs, thresholds, min_labels=1)
    f1_test = per_class_f1(y_test, test_pred)
    f1_oof = per_class_f1(y_train, oof_pred)
    print(f"data {args.data}: {len(y_train)} train, {len(y_test)} test; features {args.features} ({x_train.shape[1]}); C={args.C}")
    print(f"{'class':<34}{'n_train':>8}{'n_test':>7}{'OOF F1':>8}{'test F1':>8}")
    for k in range(N_CLASSES):
        print(f"{k:>2} {CLASS_NAMES[k]:<31}{int(y_train[:, k].sum()):>8}{int(y_test[:, k].sum()):>7}"
              f"{f1_oof[k]:>8.3f}{f1_test[k]:>8.3f}")
    common = y_train.sum(axis=0) >= 50
    print(f"macro F1: OOF {macro_f1(y_train, oof_pred):.3f}, test {macro_f1(y_test, test_pred):.3f}; "
          f"test macro F1 over the {int(common.sum())} classes with >= 50 train images: {f1_test[common].mean():.3f}")
    print(f"({time.perf_counter() - start:.0f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
