"""A tiny Kaggle-layout image set for the base-model tests (imported by several test files)."""

import numpy as np
import pandas as pd
from PIL import Image

from hpa_ens.classes import CHANNELS, N_CLASSES
from hpa_ens.contract import write_folds
from hpa_ens.labels import matrix_to_targets


def make_dataset(root, n_train=24, n_test=8, size=32, seed=0):
    """Random single labels among classes 0-3, green intensity tied to class 0, 2 folds.

    Returns
    -------
    (root, train_ids, test_ids, Y)
    """
    rng = np.random.default_rng(seed)
    Y = np.zeros((n_train, N_CLASSES), dtype=np.uint8)
    Y[np.arange(n_train), rng.integers(0, 4, n_train)] = 1
    train_ids = [f"tr{i:03d}" for i in range(n_train)]
    test_ids = [f"te{i:03d}" for i in range(n_test)]
    for split, ids in (("train", train_ids), ("test", test_ids)):
        (root / split).mkdir(parents=True)
        for i, image_id in enumerate(ids):
            boost = 120 if split == "train" and Y[i, 0] else 0
            for channel in CHANNELS:
                pixels = rng.integers(0, 100, (size, size)) + (boost if channel == "green" else 0)
                Image.fromarray(pixels.clip(0, 255).astype(np.uint8)).save(root / split / f"{image_id}_{channel}.png")
    pd.DataFrame({"Id": train_ids, "Target": matrix_to_targets(Y)}).to_csv(root / "train.csv", index=False)
    pd.DataFrame({"Id": test_ids, "Predicted": "0"}).to_csv(root / "sample_submission.csv", index=False)
    write_folds(root / "folds.csv", pd.Series(np.arange(n_train) % 2, index=pd.Index(train_ids, name="Id")))
    return root, train_ids, test_ids, Y
