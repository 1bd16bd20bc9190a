"""Cell segmentation: nuclei found vs the planted ones (synthetic), speed, overlay PNG, and the two
watersheds (scikit-image vs the hand-written flooding) on real 512-px HPA channels.

Run: ``.venv/bin/python benchmarks/bench_cells.py [--quick] [--size 128] [--n 8] [--overlay docs/img/segmentation_overlay.png]``

The real-image part reads ``../shared/hpa/images/`` (skipped when absent). No Id there has all four
channels, so each test image stacks one real blue (DAPI) channel with real red, green and yellow
channels of other images: nuclei are real, cell borders are a stress test of the second watershed.
The truth is the synthetic scene's nucleus centres (``hpa_ens.synth.draw.Scene`` rebuilt from the
image's own random stream). A found nucleus matches a planted one when its centroid is within half
the planted nucleus radius (Hungarian matching).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from scipy.optimize import linear_sum_assignment

from base_models.segment import CellParams, centroids, extract_cells, save_overlay, segment_cells, segment_nuclei
from hpa_ens import synth
from hpa_ens.images import read_channel, read_image

sys.path.insert(0, str(Path(__file__).resolve().parent))
from results import emit  # noqa: E402

SHARED_IMAGES = Path(__file__).resolve().parents[2] / "shared" / "hpa" / "images"


def compare_watersheds(n_images: int = 4) -> None:
    """Both watersheds on the same real 512-px images, timed in this process; nuclei/cells agreement.

    Timed the same way: each method runs once untimed on the first image (scikit-image's lazy imports),
    then both run on every image in turn, their times summed.
    """
    if not SHARED_IMAGES.is_dir():
        print(f"real images: {SHARED_IMAGES} absent, skipped")
        return
    channels = {c: [read_channel(p) for p in sorted(SHARED_IMAGES.glob(f"*_{c}.png"))]
                for c in ("red", "green", "blue", "yellow")}
    s = 512 / 128
    times = {"skimage": 0.0, "flood": 0.0}
    nuc_agree, cell_agree, same_count, warmed = [], [], 0, False
    n_images = min(n_images, len(channels["blue"]))
    for i in [0, *range(n_images)]:  # the first pass (image 0, untimed) warms both methods up
        image = np.stack([channels[c][i % len(channels[c])] for c in ("red", "green")] + [channels["blue"][i]]
                         + [channels["yellow"][i % len(channels["yellow"])]])
        out = {}
        for method in times:
            params = CellParams(sigma=1.5 * s, min_distance=round(3 * s), min_area=int(20 * s * s), cell_sigma=1.5 * s,
                                max_cell_radius=int(40 * s), crop_size=int(48 * s), watershed=method)
            start = time.perf_counter()
            nuclei = segment_nuclei(image[2], params)
            cells = segment_cells(image, nuclei, params)
            times[method] += time.perf_counter() - start
            out[method] = (nuclei, cells)
        if not warmed:
            warmed, times = True, dict.fromkeys(times, 0.0)
            continue
        (n0, c0), (n1, c1) = out["flood"], out["skimage"]
        same_count += int(n0.max() == n1.max())
        nuc_agree.append((n0 == n1).mean())
        cell_agree.append((c0 == c1).mean())
    print(f"real 512px images {n_images}: segment nuclei + cells, flood {1000 * times['flood'] / n_images:.0f} ms/image,"
          f" skimage {1000 * times['skimage'] / n_images:.0f} ms/image, ratio {times['flood'] / times['skimage']:.1f}x; "
          f"same nucleus count {same_count}/{n_images}, nucleus pixels agree {np.mean(nuc_agree):.4f}, "
          f"cell pixels agree {np.mean(cell_agree):.3f}")
    emit("cells: scikit-image watershed vs the hand-written flooding, nuclei + cells on real 512-px channels",
         1000 * times["skimage"] / n_images, "ms/image", baseline=1000 * times["flood"] / n_images,
         baseline_name="banded flooding (watershed: flood)", ratio=times["flood"] / times["skimage"],
         differs="algorithm: scikit-image's watershed vs the hand-written banded flooding; same images and "
                 "parameters, both warmed up (their cell borders differ slightly: see the agreement)",
         note=f"{n_images} images; same nucleus count on {same_count}/{n_images}, nucleus pixels agree "
              f"{np.mean(nuc_agree):.4f}, cell pixels agree {np.mean(cell_agree):.3f}")


from hpa_ens.synth.draw import Scene  # noqa: E402


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
    emit("cells: planted nuclei found (recall) on synthetic images", n_matched / n_true, "recall",
         note=f"{n} images at {args.size} px; {n_true} planted, {n_found} found, {n_matched} matched; precision "
              f"{n_matched / max(n_found, 1):.3f}; median centroid offset {np.median(offsets):.2f} px")
    emit("cells: segment + crop time per synthetic image", 1000 * seconds / n, "ms/image",
         note=f"{n} images at {args.size} px, nuclei + cells + crops")
    if args.overlay:
        save_overlay(args.overlay, images[:8], params, titles=[i[:8] for i in ids[:8]], true_centres=truths[:8])
        print(f"overlay: {args.overlay}")
    compare_watersheds(2 if args.quick else 4)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
