"""How hard is the synthetic set? A simple baseline: logistic regression on downsampled pixels.

Features (``--features quantiles``, the default): position-free statistics of the pixels at full and
half resolution (quantiles of green, green x each reference stain, green's local contrast and gradient,
and the channel means; 104 numbers); ``--features pixels``: each channel block-averaged to ``--grid`` x ``--grid`` (1,024
numbers), which a linear model cannot use because the cells sit at random places. Standardised. One L2 logistic regression per class, 5-fold out-of-fold probabilities on train, the
per-class threshold that maximises each class's OOF F1 (exact search over the OOF probabilities), then
a model refit on all of train scores the held-out test truth with ``decision.apply_thresholds``
(at least one label per image). A small CNN should beat this clearly.

    .venv/bin/python -m hpa_ens.synth --out /tmp/synth64 --n-train 2500 --n-test 1000 --size 64 --seed 0
    .venv/bin/python benchmarks/baseline_synth.py /tmp/synth64        # both feature sets (pixels: minutes)
    .venv/bin/python benchmarks/baseline_synth.py --quick             # quantiles only

Without DATA the set above is generated under ``/tmp/hpa_baseline_synth64`` and reused while the code of
the generator (``hpa_ens.synth`` and its imports) and the generation's settings are unchanged: the folder
holds a stamp of their fingerprint, and a folder without one, or with another, is generated again. The default C is
0.1 for the quantiles and 0.01 for the pixels (the settings of the table in docs/synth.md, pivot
table "synth-baseline").
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from hpa_ens.classes import CHANNELS, CLASS_NAMES, N_CLASSES  # noqa: E402
from hpa_ens.thresholds import apply_thresholds  # noqa: E402
from hpa_ens.labels import read_labels  # noqa: E402
from hpa_ens.metrics import macro_f1, per_class_f1  # noqa: E402
from hpa_ens.thresholds import exact_thresholds  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from results import code_fingerprint, emit  # noqa: E402

DEFAULT_DATA = Path("/tmp/hpa_baseline_synth64")
#: The generation of DEFAULT_DATA (its stamp covers these and the generator's code).
GENERATE = {"n_train": 2500, "n_test": 1000, "size": 64, "seed": 0}
STAMP = ".generator-fingerprint"
DEFAULT_C = {"quantiles": 0.1, "pixels": 0.01}
ROW = {"quantiles": "quantiles (default)", "pixels": "raw {grid}×{grid} block-mean pixels"}


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


def evaluate(data: Path, features: str, grid: int, C: float, n_folds: int) -> dict:
    """OOF and test macro F1 of the per-class logistic regressions on one feature set (prints per class)."""
    from sklearn.model_selection import KFold
    from sklearn.preprocessing import StandardScaler

    start = time.perf_counter()
    train = read_labels(data / "train.csv")
    test = read_labels(data / "truth" / "test_labels.csv")
    if features == "pixels":
        x_train = load_features(data / "train", train.index, grid)
        x_test = load_features(data / "test", test.index, grid)
    else:
        x_train = load_quantile_features(data / "train", train.index)
        x_test = load_quantile_features(data / "test", test.index)
    y_train, y_test = train.to_numpy(), test.to_numpy()
    scaler = StandardScaler().fit(x_train)
    x_train, x_test = scaler.transform(x_train), scaler.transform(x_test)

    oof = np.zeros(y_train.shape)
    for fit_rows, val_rows in KFold(n_folds, shuffle=True, random_state=0).split(x_train):
        oof[val_rows] = fit_predict(x_train[fit_rows], y_train[fit_rows], x_train[val_rows], C)
    thresholds = exact_thresholds(y_train, oof)[0]
    test_probs = fit_predict(x_train, y_train, x_test, C)
    oof_pred = apply_thresholds(oof, thresholds, min_labels=1)
    test_pred = apply_thresholds(test_probs, thresholds, min_labels=1)
    f1_test = per_class_f1(y_test, test_pred)
    f1_oof = per_class_f1(y_train, oof_pred)
    print(f"data {data}: {len(y_train)} train, {len(y_test)} test; features {features} ({x_train.shape[1]}); C={C}")
    print(f"{'class':<34}{'n_train':>8}{'n_test':>7}{'OOF F1':>8}{'test F1':>8}")
    for k in range(N_CLASSES):
        print(f"{k:>2} {CLASS_NAMES[k]:<31}{int(y_train[:, k].sum()):>8}{int(y_test[:, k].sum()):>7}"
              f"{f1_oof[k]:>8.3f}{f1_test[k]:>8.3f}")
    common = y_train.sum(axis=0) >= 50
    out = {"oof": macro_f1(y_train, oof_pred), "test": macro_f1(y_test, test_pred), "test_per_class": f1_test,
           "n_train_per_class": y_train.sum(axis=0),
           "test_common": float(f1_test[common].mean()), "n_common": int(common.sum()),
           "n_features": x_train.shape[1], "n_train": len(y_train), "n_test": len(y_test),
           "seconds": time.perf_counter() - start}
    print(f"macro F1: OOF {out['oof']:.3f}, test {out['test']:.3f}; test macro F1 over the {out['n_common']} "
          f"classes with >= 50 train images: {out['test_common']:.3f}")
    print(f"({out['seconds']:.0f} s)")
    return out


def default_data(folder: Path = DEFAULT_DATA) -> Path:
    """``folder`` holding the synthetic set of :data:`GENERATE`, generated unless its stamp says the current
    generator code made it with these settings (a folder left by other code is never reused)."""
    import json

    stamp = json.dumps({**GENERATE, "code": code_fingerprint(["hpa_ens.synth"])}, sort_keys=True)
    if (folder / STAMP).is_file() and (folder / STAMP).read_text() == stamp \
            and (folder / "truth" / "test_labels.csv").exists():
        return folder
    from hpa_ens.synth import generate

    print(f"generating {folder} ({'no stamp' if not (folder / STAMP).is_file() else 'made by other code'})")
    (folder / STAMP).unlink(missing_ok=True)  # an interrupted generation leaves no stamp
    generate(folder, **GENERATE, n_jobs=2, overwrite=True)
    (folder / STAMP).write_text(stamp)
    return folder


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("data", type=Path, nargs="?", default=None,
                    help=f"a synthetic set (default: generate 2,500 + 1,000 images at 64 px in {DEFAULT_DATA})")
    ap.add_argument("--features", choices=("quantiles", "pixels"), nargs="+", default=None,
                    help="quantiles: position-free pixel statistics; pixels: block-mean pixels on a --grid "
                         "(default: both; --quick: quantiles)")
    ap.add_argument("--grid", type=int, default=16)
    ap.add_argument("--C", type=float, default=None, help="default: 0.1 for quantiles, 0.01 for pixels")
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--quick", action="store_true", help="quantile features only (the pixels take minutes)")
    args = ap.parse_args(argv)
    data = args.data
    if data is None:
        data = default_data()
    features = args.features or (["quantiles"] if args.quick else ["quantiles", "pixels"])
    for name in features:
        C = args.C if args.C is not None else DEFAULT_C[name]
        r = evaluate(data, name, args.grid, C, args.folds)
        row = ROW[name].format(grid=args.grid)
        note = (f"{r['n_train']} train / {r['n_test']} test of {data}; {r['n_features']} features, C {C}, "
                f"{args.folds}-fold OOF; {r['seconds']:.0f} s")
        for col, value in (("OOF macro F1", r["oof"]), ("test macro F1", r["test"]),
                           ("test macro F1, classes with ≥ 50 train images", r["test_common"])):
            emit(f"synth baseline: {row}, {col}", value, "macro F1", table="synth-baseline", row=row, col=col,
                 bold=name == "quantiles" and col == "test macro F1", note=note)
        # Per class (docs/synth.md: which patterns are easy, which look alike): pivot table "synth-baseline-classes".
        for k in range(N_CLASSES):
            cls = f"{k} {CLASS_NAMES[k]}"
            if name == features[0]:
                emit(f"synth baseline per class: {cls}, train images", int(r["n_train_per_class"][k]), "",
                     table="synth-baseline-classes", row=cls, col="train images", note=note)
            emit(f"synth baseline per class: {cls}, test F1 ({row})", r["test_per_class"][k], "F1",
                 table="synth-baseline-classes", row=cls, col=f"test F1, {row}", note=note)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
