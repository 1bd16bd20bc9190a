"""A synthetic HPA-like image set with known truth, written in exactly the Kaggle layout.

``python -m hpa_ens.synth --out DIR --n-train N --n-test M --size S --seed K`` (the command:
:mod:`hpa_ens.commands.synth`; here: :func:`generate`) writes::

    DIR/train/{Id}_{red,green,blue,yellow}.png   8-bit grayscale S x S
    DIR/test/{Id}_{red,green,blue,yellow}.png
    DIR/train.csv                 Id,Target
    DIR/sample_submission.csv     Id,Predicted ("0" everywhere, like Kaggle's)
    DIR/leak.csv                  Id,Target for ~2% of the test Ids (like the teams' leak files)
    DIR/lb_probe.csv              class,share: the class shares of a random 30% of the test rows, as a public
                                  leaderboard probe gives them (a noisy estimate of the test shares; its row
                                  count is :func:`probe_rows`)
    DIR/truth/test_labels.csv     Id,Target for every test Id
    DIR/truth/duplicates.csv      Id_a,Id_b,kind,transform (planted near-copies; kind train-test / test-test)

Labels are whole label sets drawn from the distinct label sets of the real ``train.csv`` with their
counts (shipped as ``hpa_ens/data/label_sets.csv``), so class frequencies, labels per image and
co-occurrence follow the real data. ``target_dist`` reweights the sets for the test split so its class
shares move toward a target (for example the leaderboard probe), as test and train differ on Kaggle.

Each image is drawn from its own random stream ``SeedSequence([seed, split, index])``: the bytes
depend on the seed only, never on ``n_jobs`` or the order the workers run in.
"""

from __future__ import annotations

import io
import os
import shutil
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd

from ..classes import CHANNELS, CLASS_NAMES, N_CLASSES
from ..contract.thresholds import read_target_distribution
from ..images import composite_rgb
from ..io import atomic_write_text
from ..labels import labels_frame, parse_target
from ..report import save_figure
from ..utils import resolve_n_jobs
from ..validation import ContractError, check_param
from .draw import render, transform_copy

SPLIT_TRAIN, SPLIT_TEST, _STREAM_LABELS, _STREAM_COPY, _STREAM_PREVIEW, _STREAM_PROBE = 0, 1, 2, 3, 4, 5
#: The fixed tail of every Kaggle HPA Id (uuid1 with the organisers' node); we keep it for realism.
_ID_NODE = "ac1f6b6435d0"


# --------------------------------------------------------------------------------------------------
# labels


def load_label_sets() -> tuple[np.ndarray, np.ndarray]:
    """The shipped label-set table.

    Returns
    -------
    sets : ndarray of shape (n_sets, 28), uint8 indicator rows
    counts : ndarray of shape (n_sets,), int64, how often each set occurs in the real train.csv
    """
    text = resources.files("hpa_ens").joinpath("data/label_sets.csv").read_text(encoding="utf-8")
    table = pd.read_csv(io.StringIO(text), dtype={"Target": str, "count": np.int64}, keep_default_na=False)
    sets = np.zeros((len(table), N_CLASSES), np.uint8)
    for row, target in enumerate(table["Target"]):
        sets[row, parse_target(target, "label_sets.csv", row + 1)] = 1
    return sets, table["count"].to_numpy(np.int64)


def reweight_label_sets(sets: np.ndarray, counts: np.ndarray, target_shares: np.ndarray, n_iter: int = 200) -> np.ndarray:
    """Probabilities of the label sets whose class shares approach ``target_shares``.

    A multiplicative (iterative-proportional-fitting-like) update: every set is scaled by the geometric
    mean of target/current ratios of its classes. The real sets are kept, so labels per image and
    co-occurrence stay plausible; exact marginals are not always reachable (shares of a probe need not
    be consistent with any set distribution), so this moves toward them rather than matching exactly.

    Parameters
    ----------
    sets : (n_sets, 28) indicator rows; counts : (n_sets,); target_shares : (28,) in [0, 1]

    Returns
    -------
    probs : ndarray of shape (n_sets,), sums to 1
    """
    sets = np.asarray(sets, np.float64)
    target = np.clip(np.asarray(target_shares, np.float64), 1e-5, 1.0)
    weight = np.asarray(counts, np.float64) / np.sum(counts)
    size = sets.sum(axis=1)
    for _ in range(n_iter):
        share = (weight @ sets) / weight.sum()
        ratio = np.clip(target / np.maximum(share, 1e-9), 0.5, 2.0)
        weight = weight * np.exp((sets @ np.log(ratio)) / size)
    return weight / weight.sum()


def draw_labels(rng: np.random.Generator, n: int, probs: np.ndarray, sets: np.ndarray) -> np.ndarray:
    """``n`` label rows drawn from the label sets with probabilities ``probs``; shape (n, 28) uint8."""
    return sets[rng.choice(len(sets), size=n, p=probs)].copy()


def make_ids(rng: np.random.Generator, n: int, taken: set | None = None) -> list[str]:
    """``n`` distinct Kaggle-looking Ids (``"1a2b3c4d-5e6f-11e8-b2b9-ac1f6b6435d0"``), sorted."""
    taken = set() if taken is None else set(taken)
    ids: list[str] = []
    while len(ids) < n:
        raw = rng.integers(0, 16, size=(n - len(ids), 13))
        for row in raw:
            hexes = "".join("0123456789abcdef"[d] for d in row)
            candidate = f"{hexes[:8]}-{hexes[8:12]}-11e8-b2b{hexes[12]}-{_ID_NODE}"
            if candidate not in taken:
                taken.add(candidate)
                ids.append(candidate)
    return sorted(ids)


# --------------------------------------------------------------------------------------------------
# the plan: everything random except the pixels, drawn in one process from the seed


@dataclass
class Plan:
    """Ids, labels, planted duplicates and leak of one synthetic data set (no pixels)."""

    train_ids: list[str]
    test_ids: list[str]
    y_train: np.ndarray  # (n_train, 28) uint8
    y_test: np.ndarray  # (n_test, 28) uint8
    #: rows (kind, source split, source index, copy test index); kind "train-test" or "test-test"
    duplicates: list[tuple[str, int, int, int]] = field(default_factory=list)
    leak_index: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))


def make_plan(n_train: int, n_test: int, seed: int, target_shares: np.ndarray | None = None,
              dup_rate: float = 0.015, test_pairs: int | None = None, leak_rate: float = 0.02) -> Plan:
    """Draw Ids, labels, the planted near-duplicates and the leaked test Ids.

    ``dup_rate`` of the test images (at least one when there are train and test images) are copies of
    train images; ``test_pairs`` test images (default: about 0.4% of test, at least one when n_test >= 4)
    are copies of other test images. Copies carry their source's labels.
    """
    rng = np.random.default_rng(np.random.SeedSequence([seed, _STREAM_LABELS]))
    sets, counts = load_label_sets()
    train_probs = counts / counts.sum()
    test_probs = train_probs if target_shares is None else reweight_label_sets(sets, counts, target_shares)
    y_train = draw_labels(rng, n_train, train_probs, sets)
    y_test = draw_labels(rng, n_test, test_probs, sets)
    train_ids = make_ids(rng, n_train)
    test_ids = make_ids(rng, n_test, taken=set(train_ids))

    n_tt = (max(1, round(0.004 * n_test)) if n_test >= 4 else 0) if test_pairs is None else int(test_pairs)
    n_tr = max(1, round(dup_rate * n_test)) if (n_train > 0 and n_test > 0 and dup_rate > 0) else 0
    n_tr = min(n_tr, max(n_test - 2 * n_tt, 0))
    order = rng.permutation(n_test)
    duplicates: list[tuple[str, int, int, int]] = []
    for copy in order[:n_tr]:
        source = int(rng.integers(n_train))
        duplicates.append(("train-test", SPLIT_TRAIN, source, int(copy)))
        y_test[copy] = y_train[source]
    tt = order[n_tr:n_tr + 2 * n_tt]
    for source, copy in zip(tt[:n_tt], tt[n_tt:]):
        duplicates.append(("test-test", SPLIT_TEST, int(source), int(copy)))
        y_test[copy] = y_test[source]
    n_leak = max(1, round(leak_rate * n_test)) if (n_test > 0 and leak_rate > 0) else 0
    leak_index = np.sort(rng.choice(n_test, size=min(n_leak, n_test), replace=False)) if n_leak else np.zeros(0, np.int64)
    return Plan(train_ids, test_ids, y_train, y_test, duplicates, leak_index)


# --------------------------------------------------------------------------------------------------
# pixels


def image_rng(seed: int, split: int, index: int) -> np.random.Generator:
    """The random stream of one image; independent of every other image and of the worker layout."""
    return np.random.default_rng(np.random.SeedSequence([seed, split, index]))


def render_image(seed: int, split: int, index: int, labels: np.ndarray, size: int) -> np.ndarray:
    """Pixels of image ``index`` of ``split``: (4, S, S) uint8 in CHANNELS order."""
    return render(image_rng(seed, split, index), size, np.flatnonzero(labels))


def render_copy(seed: int, size: int, source_split: int, source_index: int, source_labels: np.ndarray,
                copy_index: int) -> tuple[np.ndarray, str]:
    """A planted near-duplicate of a source image (redrawn from its seed, then transformed)."""
    source = render_image(seed, source_split, source_index, source_labels, size)
    rng = np.random.default_rng(np.random.SeedSequence([seed, _STREAM_COPY, copy_index]))
    return transform_copy(rng, source)


def encode_png(channel: np.ndarray, compress_level: int = 3) -> bytes:
    """One 8-bit grayscale channel as PNG bytes (Pillow writes no timestamp, so bytes are stable)."""
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(channel), mode="L").save(buffer, format="PNG", compress_level=compress_level)
    return buffer.getvalue()


def _write_image(folder: Path, image_id: str, image: np.ndarray, compress_level: int) -> None:
    for channel, pixels in zip(CHANNELS, image):
        (folder / f"{image_id}_{channel}.png").write_bytes(encode_png(pixels, compress_level))


def _render_chunk(jobs, staging: str, size: int, seed: int, compress_level: int) -> list[tuple[int, str]]:
    """Render and write a list of jobs; returns (copy index, transform) for the planted copies."""
    transforms = []
    for folder, image_id, split, index, labels, copy_of in jobs:
        if copy_of is None:
            image = render_image(seed, split, index, labels, size)
        else:
            source_split, source_index = copy_of
            image, how = render_copy(seed, size, source_split, source_index, labels, index)
            transforms.append((index, how))
        _write_image(Path(staging) / folder, image_id, image, compress_level)
    return transforms


# --------------------------------------------------------------------------------------------------
# the public entry point


_OUTPUTS = ("train", "test", "truth", "train.csv", "sample_submission.csv", "leak.csv", "lb_probe.csv")
#: The public leaderboard's share of the test rows (Kaggle's HPA 2018: 29 % public, 71 % private).
PROBE_FRACTION = 0.3


def probe_rows(n_test: int, fraction: float = PROBE_FRACTION) -> int:
    """The row count of a leaderboard probe of ``fraction`` of ``n_test`` test rows (at least one)."""
    return max(1, int(round(fraction * n_test)))


def leaderboard_probe(y_test: np.ndarray, seed: int, fraction: float = PROBE_FRACTION) -> np.ndarray:
    """The class shares a public-leaderboard probe announces: those of a random ``fraction`` of the test rows.

    What a competitor learns by probing the public leaderboard, with its sampling error; never the shares the
    test labels were drawn toward. A class the probe did not see is announced at half a row (shares lie in
    (0, 1)). Drawn from its own stream ``SeedSequence([seed, 5])``, so the images and labels do not depend on it.

    Parameters
    ----------
    y_test : ndarray of shape (n_test, K), 0/1
    seed : int
    fraction : float in (0, 1]

    Returns
    -------
    shares : ndarray of shape (K,)
    """
    y_test = np.asarray(y_test)
    n = probe_rows(len(y_test), fraction)
    rng = np.random.default_rng(np.random.SeedSequence([seed, _STREAM_PROBE]))
    rows = np.sort(rng.choice(len(y_test), size=n, replace=False))
    return np.clip(y_test[rows].mean(axis=0), 0.5 / n, 1 - 0.5 / n)
#: Written into every folder this generator fills; only such a folder (or an empty one) is ever written to.
MARKER = ".hpa_ens_synth"


def check_generated_folder(out_dir, overwrite: bool = False) -> Path:
    """Refuse to generate into a folder the generator did not make.

    Generated data goes only into a missing or empty folder, or one carrying :data:`MARKER`; a
    user's data folder (a ``train.csv`` without the marker, or any other files) is never touched,
    with or without ``overwrite``.
    """
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise ContractError(f"{out_dir}: exists and is not a folder; expected a folder for the synthetic set.")
    entries = [p.name for p in out_dir.iterdir()] if out_dir.is_dir() else []
    if entries and not (out_dir / MARKER).is_file():
        raise ContractError(f"{out_dir}: not empty and not made by hpa_ens.synth (no {MARKER} marker; holds "
                            f"{', '.join(sorted(entries)[:3])}{', …' if len(entries) > 3 else ''}); refusing to write "
                            f"synthetic data into it. Choose an empty or new folder.")
    existing = [name for name in _OUTPUTS if (out_dir / name).exists()]
    check_param("out_dir", str(out_dir), "a folder without a previous data set (or pass overwrite=True)",
                not existing or overwrite, "generate")
    return out_dir


def generate(out_dir, n_train: int, n_test: int, size: int = 128, seed: int = 0, target_dist=None,
             n_jobs: int = -1, dup_rate: float = 0.015, test_pairs: int | None = None, leak_rate: float = 0.02,
             overwrite: bool = False, compress_level: int = 3,
             progress: Callable[[int, int, str], None] | None = None) -> Plan:
    """Write a synthetic HPA-like data set in the Kaggle layout (see the module docstring).

    Parameters
    ----------
    out_dir : path; created if missing. Only a missing or empty folder, or one this generator made
        (it carries :data:`MARKER`), is written to; existing outputs are replaced only with ``overwrite``.
    n_train, n_test : int >= 1, number of images
    size : int >= 16, image side in pixels (512 gives the competition's format)
    seed : int >= 0; the same seed gives the same bytes
    target_dist : None, an ndarray of 28 shares, or a built-in name or CSV path read with
        ``read_target_distribution`` (for example ``hpa2018-lb``, the packaged ``lb_label_distribution.csv``);
        draws the test labels toward these class shares
    n_jobs : joblib workers in joblib's convention (-1: every available CPU, -2: all but one, …); does not
        change the output
    dup_rate, test_pairs, leak_rate : see :func:`make_plan`
    compress_level : PNG zlib level 0-9 (speed vs. size; pixels are the same)
    progress : callable, optional
        ``progress(n_images_written, n_images, "synth images")`` (the convention of
        :func:`hpa_ens.commands._cli.progress`)

    Returns
    -------
    plan : Plan, the Ids, labels, duplicates and leak that were written
    """
    check_param("n_train", n_train, "an int >= 1", isinstance(n_train, (int, np.integer)) and n_train >= 1, "generate")
    check_param("n_test", n_test, "an int >= 1", isinstance(n_test, (int, np.integer)) and n_test >= 1, "generate")
    check_param("size", size, "an int >= 16", isinstance(size, (int, np.integer)) and size >= 16, "generate")
    check_param("seed", seed, "an int >= 0", isinstance(seed, (int, np.integer)) and seed >= 0, "generate")
    check_param("n_jobs", n_jobs, "a non-zero int", isinstance(n_jobs, (int, np.integer)) and n_jobs != 0, "generate")
    check_param("dup_rate", dup_rate, "a float in [0, 0.5]", 0 <= dup_rate <= 0.5, "generate")
    check_param("leak_rate", leak_rate, "a float in [0, 1]", 0 <= leak_rate <= 1, "generate")
    check_param("compress_level", compress_level, "an int in 0..9", compress_level in range(10), "generate")
    out_dir = check_generated_folder(out_dir, overwrite)

    if target_dist is None:
        target_shares = None
    elif isinstance(target_dist, (str, os.PathLike)):
        target_shares = read_target_distribution(Path(target_dist))
    else:
        target_shares = np.asarray(target_dist, np.float64)
        check_param("target_dist", target_dist, "28 shares in [0, 1]",
                    target_shares.shape == (N_CLASSES,) and bool(((target_shares >= 0) & (target_shares <= 1)).all()),
                    "generate")
    plan = make_plan(int(n_train), int(n_test), int(seed), target_shares, dup_rate, test_pairs, leak_rate)

    copy_of = {copy: (src_split, src_index) for _, src_split, src_index, copy in plan.duplicates}
    jobs = [("train", plan.train_ids[i], SPLIT_TRAIN, i, plan.y_train[i], None) for i in range(n_train)]
    jobs += [("test", plan.test_ids[i], SPLIT_TEST, i, plan.y_test[i], copy_of.get(i)) for i in range(n_test)]

    # Write into a hidden staging folder and move the finished outputs in at the end: a crash never
    # leaves a half-written data set where a later stage would read it.
    out_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out_dir / MARKER, "written by hpa_ens.synth; this folder may be regenerated\n")
    staging = out_dir / f".synth-partial-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    for folder in ("train", "test", "truth"):
        (staging / folder).mkdir(parents=True)
    try:
        transforms = _run_jobs(jobs, staging, int(size), int(seed), n_jobs, compress_level, progress)
        _write_tables(staging, plan, transforms, seed)
        for name in _OUTPUTS:
            target = out_dir / name
            if target.is_dir():
                shutil.rmtree(target)
            elif target.exists():
                target.unlink()
            os.replace(staging / name, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return plan


def _run_jobs(jobs, staging: Path, size: int, seed: int, n_jobs: int, compress_level: int,
              progress: Callable[[int, int, str], None] | None) -> dict:
    from joblib import Parallel, delayed

    workers = max(1, min(resolve_n_jobs(n_jobs), len(jobs)))
    chunk = max(8, min(64, len(jobs) // (4 * workers) + 1))
    chunks = [jobs[i:i + chunk] for i in range(0, len(jobs), chunk)]
    transforms: dict[int, str] = {}
    if workers == 1:
        results = (_render_chunk(c, str(staging), size, seed, compress_level) for c in chunks)
    else:
        results = Parallel(n_jobs=workers, return_as="generator")(
            delayed(_render_chunk)(c, str(staging), size, seed, compress_level) for c in chunks)
    done = 0
    if progress is not None:
        progress(done, len(jobs), "synth images")
    for c, result in zip(chunks, results):
        transforms.update(result)
        done += len(c)
        if progress is not None:
            progress(done, len(jobs), "synth images")
    return transforms


def _write_tables(staging: Path, plan: Plan, transforms: dict[int, str], seed: int) -> None:
    def csv(frame: pd.DataFrame) -> str:
        return frame.to_csv(index=False, lineterminator="\n")

    atomic_write_text(staging / "train.csv", csv(labels_frame(plan.train_ids, plan.y_train)))
    atomic_write_text(staging / "sample_submission.csv", csv(pd.DataFrame({"Id": plan.test_ids, "Predicted": "0"})))
    atomic_write_text(staging / "truth" / "test_labels.csv", csv(labels_frame(plan.test_ids, plan.y_test)))
    leak_ids = [plan.test_ids[i] for i in plan.leak_index]
    atomic_write_text(staging / "leak.csv", csv(labels_frame(leak_ids, plan.y_test[plan.leak_index])))
    probe = leaderboard_probe(plan.y_test, seed)
    atomic_write_text(staging / "lb_probe.csv", csv(pd.DataFrame({"class": np.arange(len(probe)), "share": probe})))
    rows = []
    for kind, split, source, copy in plan.duplicates:
        id_a = plan.train_ids[source] if split == SPLIT_TRAIN else plan.test_ids[source]
        rows.append({"Id_a": id_a, "Id_b": plan.test_ids[copy], "kind": kind, "transform": transforms[copy]})
    frame = pd.DataFrame(rows, columns=["Id_a", "Id_b", "kind", "transform"])
    atomic_write_text(staging / "truth" / "duplicates.csv", csv(frame))


# --------------------------------------------------------------------------------------------------
# the picture


def preview(path, size: int = 128, seed: int = 0, kind: str = "classes", n: int = 16) -> None:
    """Write a PNG grid of composites with their label names.

    ``kind="classes"``: one image per class with that single label (28 tiles, to check the morphologies).
    ``kind="random"``: ``n`` images with label sets drawn like the training set.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    check_param("kind", kind, "'classes' or 'random'", kind in ("classes", "random"), "preview")
    if kind == "classes":
        label_rows = np.eye(N_CLASSES, dtype=np.uint8)
    else:
        sets, counts = load_label_sets()
        rng = np.random.default_rng(np.random.SeedSequence([seed, _STREAM_PREVIEW]))
        label_rows = draw_labels(rng, n, counts / counts.sum(), sets)
    cols = 7 if kind == "classes" else 4
    rows = int(np.ceil(len(label_rows) / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(2.3 * cols, 2.5 * rows))
    for ax in np.ravel(axes):
        ax.axis("off")
    for index, (ax, labels) in enumerate(zip(np.ravel(axes), label_rows)):
        image = render_image(seed, _STREAM_PREVIEW, index, labels, size)
        ax.imshow(composite_rgb(image), interpolation="nearest")
        names = [f"{k} {CLASS_NAMES[k]}" for k in np.flatnonzero(labels)]
        ax.set_title("\n".join(names), fontsize=7)
    fig.tight_layout()
    save_figure(fig, path, dpi=80)


if __name__ == "__main__":  # python -m hpa_ens.synth.generate: the command lives in hpa_ens.commands.synth
    from hpa_ens.commands import launch

    launch("synth", __spec__.name)
