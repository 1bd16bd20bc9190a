"""Cell segmentation on the synthetic set: nuclei found vs the planted ones, speed, overlay PNG.

Run: ``.venv/bin/python benchmarks/bench_cells.py [--quick] [--size 128] [--n 8] [--overlay docs/img/segmentation_overlay.png]``
The truth is the synthetic scene's nucleus centres (``hpa_ens.synth.draw.Scene`` rebuilt from the
image's own random stream). A found nucleus matches a planted one when its centroid is within half
the planted nucleus radius (Hungarian matching).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
from scipy.optimize import linear_sum_assignment

from base_models.cells import CellParams, centroids, extract_cells, save_overlay
from base_models.data import read_image
from hpa_ens import synth
from hpa_ens.synth.draw import Scene


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--n", type=int, default=8)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--overlay", type=Path, default=None)
    args = ap.parse_args(argv)
    n = min(args.n, 8) if args.quick else args.n
    scale = args.size / 128
    params = CellParams(sigma=1.5 * scale, min_distance=max(1, round(3 * scale)), min_area=int(20 * scale ** 2),
                        max_cell_radius=int(40 * scale), crop_size=int(48 * scale))
    with tempfile.TemporaryDirectory() as tmp:
        synth.generate(tmp, n_train=n, n_test=1, size=args.size, seed=args.seed, n_jobs=1, overwrite=True)
        ids = synth.make_plan(n, 1, args.seed).train_ids
        images = [read_image(Path(tmp) / "train", image_id, args.size) for image_id in ids]
    n_true = n_found = n_matched = 0
    offsets, seconds, truths = [], 0.0, []
    for index, image in enumerate(images):
        scene = Scene(synth.image_rng(args.seed, synth.SPLIT_TRAIN, index), args.size)
        start = time.perf_counter()
        _, nuclei, _ = extract_cells(image, params, return_labels=True)
        seconds += time.perf_counter() - start
        found = centroids(nuclei)
        dist = np.sqrt(((scene.nuc_centres[:, None] - found[None]) ** 2).sum(-1))
        rows, cols = linear_sum_assignment(dist)
        ok = dist[rows, cols] <= 0.5 * scene.nuc_radius[rows]
        n_true += len(scene.nuc_centres)
        n_found += len(found)
        n_matched += int(ok.sum())
        offsets += dist[rows, cols][ok].tolist()
        truths.append(scene.nuc_centres)
    print(f"images {n} at {args.size}px: planted nuclei {n_true}, found {n_found}, matched {n_matched}")
    print(f"recall {n_matched / n_true:.3f}  precision {n_matched / max(n_found, 1):.3f}  "
          f"median centroid offset {np.median(offsets):.2f}px  segment+crop {1000 * seconds / n:.0f} ms/image")
    if args.overlay:
        save_overlay(args.overlay, images[:8], params, titles=[i[:8] for i in ids[:8]], true_centres=truths[:8])
        print(f"overlay: {args.overlay}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
