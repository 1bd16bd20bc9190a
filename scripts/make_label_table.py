"""Derive the label-set table shipped in ``hpa_ens/data/label_sets.csv`` from the real ``train.csv``.

The synthetic generator (``hpa_ens.synth``) draws each image's labels from this table: the distinct
label sets of the competition's training labels with how often each occurs. Sampling whole sets keeps
the class frequencies, the labels-per-image distribution (1..5, mean 1.634) and the pairwise
co-occurrence of the real data, while the table is small (577 rows, a few KB) and has no Ids.

Usage::

    .venv/bin/python scripts/make_label_table.py ../shared/hpa/train.csv hpa_ens/data/label_sets.csv
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from hpa_ens.io import atomic_write_text  # noqa: E402
from hpa_ens.labels import matrix_to_targets, read_labels  # noqa: E402


def label_set_table(Y: np.ndarray) -> pd.DataFrame:
    """Distinct rows of an indicator matrix with their counts, most frequent first.

    Parameters
    ----------
    Y : ndarray of shape (n_samples, 28)

    Returns
    -------
    table : DataFrame with columns ``Target`` (ascending ids, "0 25") and ``count``; ties broken by Target
    """
    targets = pd.Series(matrix_to_targets(Y), name="Target")
    counts = targets.value_counts().rename("count").reset_index()
    counts = counts.sort_values(["count", "Target"], ascending=[False, True], kind="stable")
    return counts.reset_index(drop=True)


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    source = Path(argv[0]) if argv else Path("../shared/hpa/train.csv")
    target = Path(argv[1]) if len(argv) > 1 else Path("hpa_ens/data/label_sets.csv")
    table = label_set_table(read_labels(source).to_numpy())
    atomic_write_text(target, table.to_csv(index=False, lineterminator="\n"))
    print(f"{target}: {len(table)} label sets from {table['count'].sum()} images")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
