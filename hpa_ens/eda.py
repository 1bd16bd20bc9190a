"""Data exploration: label statistics, PNG plots, an index page, and per-channel image statistics.

``python -m hpa_ens.eda --labels train.csv [--target-dist FILE] [--images DIR] --out reports/eda/``

Writes into ``--out``: ``class_counts.png``, ``cooccurrence.png``, ``labels_per_image.png``,
``single_label_share.png``, ``target_share.png`` (with ``--target-dist``), ``summary.json`` (the key
numbers), ``index.md`` and ``index.html`` (the plots with those numbers), and with ``--images``
``channel_stats.json`` (:mod:`hpa_ens.contract.channel_stats`): ``{"channels": [...], "mean": [4], "std": [4],
"n_images": N, "size": S, "images": folder record}`` in 0..1 units of the uint8 pixels of
:mod:`hpa_ens.images`, computed in one streaming pass (one image in memory per worker). Everything is
computed before the output folder is created, so a bad input (a corrupt PNG) leaves nothing behind.
``--task`` gives K and the class names (any multi-label task) and the channel names.
"""

from __future__ import annotations

import html
import os
from pathlib import Path
from typing import Sequence

import numpy as np

from .cli import console, entry, parser, progress
from .io import atomic_write_json, atomic_write_text
from .validation import ContractError, ParameterError, check_param
from .classes import CHANNELS
from .report import save_figure

__all__ = [
    "label_summary",
    "cooccurrence",
    "merge_moments",
    "image_moments",
    "array_moments",
    "channel_stats",
    "array_channel_stats",
    "explore",
    "write_plots",
    "write_index",
    "main",
]

PLOT_FILES = {
    "class_counts": "class_counts.png",
    "cooccurrence": "cooccurrence.png",
    "labels_per_image": "labels_per_image.png",
    "single_label_share": "single_label_share.png",
    "target_share": "target_share.png",
}


# ------------------------------------------------------------------------------- label numbers
def cooccurrence(Y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Label co-occurrence counts and their row-normalised form.

    Parameters
    ----------
    Y : ndarray of shape (n_samples, n_classes), 0/1

    Returns
    -------
    counts : ndarray of shape (n_classes, n_classes), int64
        ``counts[i, j]`` = images with both i and j (diagonal: images with i).
    given_row : ndarray of shape (n_classes, n_classes), float64
        ``counts[i, j] / counts[i, i]``: share of class-i images that also carry j (0 where class i
        has no image).
    """
    Y = np.asarray(Y).astype(np.int64)
    counts = Y.T @ Y
    diag = np.diag(counts).astype(np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        given_row = np.where(diag[:, None] > 0, counts / diag[:, None], 0.0)
    return counts, given_row


def label_summary(Y: np.ndarray, target_shares: np.ndarray | None = None) -> dict:
    """Key numbers of a label matrix.

    Parameters
    ----------
    Y : ndarray of shape (n_samples, n_classes), 0/1
    target_shares : ndarray of shape (n_classes,), optional
        A target positive share per class (e.g. the leaderboard probe), reported beside the train share.

    Returns
    -------
    summary : dict
        ``n_images``, ``class_counts`` (n_classes,), ``class_share``, ``n_single_label``,
        ``n_no_label``, ``labels_per_image`` (histogram: index = number of labels), ``mean_labels``,
        ``max_labels``, ``single_label_share`` per class (share of that class's images with no other
        label), ``top_pairs`` (10 most frequent label pairs), ``rarest`` / ``most_common`` class, and
        ``target_share`` when given.
    """
    Y = np.asarray(Y).astype(np.int64)
    n_images, n_classes = Y.shape
    per_image = Y.sum(axis=1)
    counts = Y.sum(axis=0)
    single = per_image == 1
    single_counts = Y[single].sum(axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        single_share = np.where(counts > 0, single_counts / np.maximum(counts, 1), 0.0)
    pair_counts, _ = cooccurrence(Y)
    iu = np.triu_indices(n_classes, k=1)
    order = np.argsort(-pair_counts[iu], kind="stable")[:10]
    top_pairs = [[int(iu[0][i]), int(iu[1][i]), int(pair_counts[iu][i])] for i in order if pair_counts[iu][i] > 0]
    summary = {
        "n_images": int(n_images),
        "n_classes": int(n_classes),
        "class_counts": counts.tolist(),
        "class_share": (counts / max(n_images, 1)).tolist(),
        "n_single_label": int(single.sum()),
        "n_no_label": int((per_image == 0).sum()),
        "labels_per_image": np.bincount(per_image, minlength=1).tolist(),
        "mean_labels": float(per_image.mean()) if n_images else 0.0,
        "max_labels": int(per_image.max()) if n_images else 0,
        "single_label_share": single_share.tolist(),
        "top_pairs": top_pairs,
        "rarest": int(np.argmin(counts)),
        "most_common": int(np.argmax(counts)),
    }
    if target_shares is not None:
        target_shares = np.asarray(target_shares, dtype=np.float64)
        check_param("target_shares", target_shares.shape, f"of shape ({n_classes},)",
                    target_shares.shape == (n_classes,), "label_summary")
        summary["target_share"] = target_shares.tolist()
    return summary


def _names(n_classes: int, class_names: Sequence[str] | None = None) -> list[str]:
    """Axis labels "k name" (names from the task when they fit K, else the bare class ids)."""
    if class_names is not None and len(class_names) == n_classes:
        return [f"{k} {name}" for k, name in enumerate(class_names)]
    return [str(k) for k in range(n_classes)]


# --------------------------------------------------------------------------------------- plots
def _save(fig, path: Path, dpi: int) -> None:
    save_figure(fig, path, dpi=dpi)


def write_plots(summary: dict, Y: np.ndarray, out_dir: Path, dpi: int = 100) -> dict[str, str]:
    """Write the EDA PNGs into ``out_dir``; returns ``{plot key: file name}`` of those written."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out_dir = Path(out_dir)
    n_classes = summary["n_classes"]
    names = _names(n_classes, summary.get("class_names"))
    ypos = np.arange(n_classes)
    written: dict[str, str] = {}
    height = max(4.0, 0.22 * n_classes + 1.0)

    counts = np.asarray(summary["class_counts"])
    fig, ax = plt.subplots(figsize=(8, height))
    ax.barh(ypos, np.maximum(counts, 0.5), color="tab:blue")
    ax.set_xscale("log")
    ax.set_yticks(ypos)
    ax.set_yticklabels(names, fontsize=7)
    ax.invert_yaxis()
    for y, c in zip(ypos, counts):
        ax.text(max(c, 0.5) * 1.05, y, f"{c:,}", va="center", fontsize=6)
    ax.set_xlabel("images with the class (log scale)")
    ax.set_title(f"Class counts ({summary['n_images']:,} images)")
    fig.tight_layout()
    _save(fig, out_dir / PLOT_FILES["class_counts"], dpi)
    written["class_counts"] = PLOT_FILES["class_counts"]

    _, given_row = cooccurrence(Y)
    shown = given_row.copy()
    np.fill_diagonal(shown, np.nan)  # the diagonal is 1 by definition and would flatten the scale
    fig, ax = plt.subplots(figsize=(9, 8))
    image = ax.imshow(shown, cmap="viridis", vmin=0, vmax=max(np.nanmax(shown), 1e-9) if n_classes > 1 else 1)
    ax.set_xticks(ypos)
    ax.set_xticklabels([str(k) for k in ypos], fontsize=7)
    ax.set_yticks(ypos)
    ax.set_yticklabels(names, fontsize=7)
    ax.set_xlabel("also labelled j")
    ax.set_title("P(j | i): share of class-i images that also carry class j")
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
    fig.tight_layout()
    _save(fig, out_dir / PLOT_FILES["cooccurrence"], dpi)
    written["cooccurrence"] = PLOT_FILES["cooccurrence"]

    hist = np.asarray(summary["labels_per_image"])
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.bar(np.arange(len(hist)), hist, color="tab:green")
    for x, h in enumerate(hist):
        ax.text(x, h, f"{h:,}", ha="center", va="bottom", fontsize=7)
    ax.set_xticks(np.arange(len(hist)))
    ax.set_xlabel("labels per image")
    ax.set_ylabel("images")
    ax.set_title(f"Labels per image (mean {summary['mean_labels']:.3f})")
    fig.tight_layout()
    _save(fig, out_dir / PLOT_FILES["labels_per_image"], dpi)
    written["labels_per_image"] = PLOT_FILES["labels_per_image"]

    share = np.asarray(summary["single_label_share"])
    fig, ax = plt.subplots(figsize=(8, height))
    ax.barh(ypos, share, color="tab:purple")
    ax.set_yticks(ypos)
    ax.set_yticklabels(names, fontsize=7)
    ax.invert_yaxis()
    ax.set_xlim(0, 1)
    ax.set_xlabel("share of the class's images that carry no other label")
    ax.set_title("Single-label share per class")
    fig.tight_layout()
    _save(fig, out_dir / PLOT_FILES["single_label_share"], dpi)
    written["single_label_share"] = PLOT_FILES["single_label_share"]

    if "target_share" in summary:
        train = np.asarray(summary["class_share"])
        target = np.asarray(summary["target_share"])
        fig, ax = plt.subplots(figsize=(8, height))
        ax.barh(ypos - 0.2, np.maximum(train, 1e-5), height=0.4, label="train", color="tab:blue")
        ax.barh(ypos + 0.2, np.maximum(target, 1e-5), height=0.4, label="target", color="tab:red")
        ax.set_xscale("log")
        ax.set_yticks(ypos)
        ax.set_yticklabels(names, fontsize=7)
        ax.invert_yaxis()
        ax.set_xlabel("positive share (log scale)")
        ax.set_title("Train share vs target distribution")
        ax.legend(loc="lower right")
        fig.tight_layout()
        _save(fig, out_dir / PLOT_FILES["target_share"], dpi)
        written["target_share"] = PLOT_FILES["target_share"]
    return written


# -------------------------------------------------------------------------------------- index
def _key_numbers(summary: dict) -> list[tuple[str, str]]:
    names = _names(summary["n_classes"], summary.get("class_names"))
    n = max(summary["n_images"], 1)
    rows = [
        ("images", f"{summary['n_images']:,}"),
        ("single-label images", f"{summary['n_single_label']:,} ({summary['n_single_label'] / n:.1%})"),
        ("images without a label", f"{summary['n_no_label']:,}"),
        ("mean labels per image", f"{summary['mean_labels']:.3f}"),
        ("most labels on one image", f"{summary['max_labels']}"),
        ("most common class", f"{names[summary['most_common']]}: {summary['class_counts'][summary['most_common']]:,}"),
        ("rarest class", f"{names[summary['rarest']]}: {summary['class_counts'][summary['rarest']]:,}"),
    ]
    if summary["top_pairs"]:
        i, j, c = summary["top_pairs"][0]
        rows.append(("most frequent pair", f"{names[i]} + {names[j]}: {c:,}"))
    if "channel_stats" in summary:
        cs = summary["channel_stats"]
        rows.append(("channel mean (" + "/".join(cs["channels"]) + ")", " / ".join(f"{m:.4f}" for m in cs["mean"])))
        rows.append(("channel std", " / ".join(f"{s:.4f}" for s in cs["std"])))
    return rows


def _class_rows(summary: dict) -> list[list[str]]:
    rows = []
    for k, name in enumerate(_names(summary["n_classes"], summary.get("class_names"))):
        row = [name, f"{summary['class_counts'][k]:,}", f"{summary['class_share'][k]:.4f}",
               f"{summary['single_label_share'][k]:.3f}"]
        if "target_share" in summary:
            row.append(f"{summary['target_share'][k]:.4f}")
        rows.append(row)
    return rows


def write_index(summary: dict, plots: dict[str, str], out_dir: Path, title: str = "Label exploration") -> None:
    """Write ``index.md`` and ``index.html`` that show the plots with the key numbers."""
    out_dir = Path(out_dir)
    header = ["class", "images", "share", "single-label share"] + (["target share"] if "target_share" in summary else [])
    key = _key_numbers(summary)
    class_rows = _class_rows(summary)
    captions = {
        "class_counts": "Class counts (log scale)",
        "cooccurrence": "Co-occurrence, normalised per row: P(j | i)",
        "labels_per_image": "Labels per image",
        "single_label_share": "Single-label share per class",
        "target_share": "Train share vs target distribution",
    }

    md = [f"# {title}", "", f"Source: `{summary.get('source', '')}`", "", "| number | value |", "|---|---|"]
    md += [f"| {k} | {v} |" for k, v in key]
    md.append("")
    for plot_key, file in plots.items():
        md += [f"## {captions[plot_key]}", "", f"![{captions[plot_key]}]({file})", ""]
    md += ["## Per class", "", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    md += ["| " + " | ".join(r) + " |" for r in class_rows]
    atomic_write_text(out_dir / "index.md", "\n".join(md) + "\n")

    esc = html.escape
    parts = [
        "<!doctype html>", "<html><head><meta charset='utf-8'>", f"<title>{esc(title)}</title>",
        "<style>body{font-family:sans-serif;max-width:1000px;margin:2em auto}table{border-collapse:collapse}"
        "td,th{border:1px solid #ccc;padding:2px 8px;text-align:right}td:first-child{text-align:left}"
        "img{max-width:100%}</style>",
        "</head><body>", f"<h1>{esc(title)}</h1>", f"<p>Source: <code>{esc(str(summary.get('source', '')))}</code></p>",
        "<table>", *(f"<tr><td>{esc(k)}</td><td>{esc(v)}</td></tr>" for k, v in key), "</table>",
    ]
    for plot_key, file in plots.items():
        parts += [f"<h2>{esc(captions[plot_key])}</h2>", f"<img src='{esc(file)}' alt='{esc(captions[plot_key])}'>"]
    parts += ["<h2>Per class</h2>", "<table>", "<tr>" + "".join(f"<th>{esc(h)}</th>" for h in header) + "</tr>"]
    parts += ["<tr>" + "".join(f"<td>{esc(c)}</td>" for c in r) + "</tr>" for r in class_rows]
    parts += ["</table>", "</body></html>"]
    atomic_write_text(out_dir / "index.html", "\n".join(parts) + "\n")


# ------------------------------------------------------------------------------ channel stats
def merge_moments(a: tuple[int, float, float], b: tuple[int, float, float]) -> tuple[int, float, float]:
    """Merge two ``(count, mean, M2)`` summaries (Chan et al.'s parallel form of Welford's update).

    ``M2`` is the sum of squared deviations from the mean, so variance = M2 / count.
    """
    n_a, mean_a, m2_a = a
    n_b, mean_b, m2_b = b
    n = n_a + n_b
    if n == 0:
        return 0, 0.0, 0.0
    delta = mean_b - mean_a
    mean = mean_a + delta * n_b / n
    m2 = m2_a + m2_b + delta * delta * n_a * n_b / n
    return n, mean, m2


def image_moments(path: str | os.PathLike) -> tuple[tuple[int, float, float], tuple[int, int]]:
    """``(count, mean, M2)`` of one channel file in 0..1 units, and its (height, width).

    The file is decoded by :func:`hpa_ens.images.read_channel` (PNG/JPG/TIFF; 16-bit scaled to uint8 by
    ``round(value * 255 / 65535)``, colour converted to grey) and divided by 255, so the statistics are
    those of the pixels every other stage sees. A file that cannot be decoded raises
    :class:`hpa_ens.images.ImageError` naming it.
    """
    from .images import read_channel

    return array_moments(read_channel(path))


def array_moments(pixels: np.ndarray) -> tuple[tuple[int, float, float], tuple[int, int]]:
    """``(count, mean, M2)`` of a uint8 array in 0..1 units, and its shape (H, W)."""
    values = np.asarray(pixels, dtype=np.float64) / 255.0
    mean = float(values.mean())
    m2 = float(np.square(values - mean).sum())
    return (int(values.size), mean, m2), (int(values.shape[-2]), int(values.shape[-1]))


def _chunk_moments(paths: list[tuple[int, str]], n_channels: int) -> tuple[list[tuple[int, float, float]], dict]:
    acc = [(0, 0.0, 0.0)] * n_channels
    sizes: dict[tuple[int, int], int] = {}
    for channel, path in paths:
        moments, shape = image_moments(path)
        acc[channel] = merge_moments(acc[channel], moments)
        sizes[shape] = sizes.get(shape, 0) + 1
    return acc, sizes


def find_images(image_dir: str | os.PathLike, channels: Sequence[str] = CHANNELS,
                complete: bool = False) -> dict[str, list[str]]:
    """``{Id: [channels present]}`` for files ``{Id}_{channel}.{png,jpg,tif}`` in ``image_dir`` (sorted by Id).

    ``complete`` refuses an image that lacks one of ``channels`` (the command line's rule: a Kaggle
    folder with a missing channel file is a broken download, not a smaller data set).
    """
    from .image_sets import scan_images

    found = scan_images(image_dir, channels)
    if not found:
        raise ContractError(
            f"{image_dir}: no images named {{Id}}_{{{','.join(channels)}}}.png/.jpg/.tif. Got "
            f"{len(os.listdir(image_dir))} other entries instead."
        )
    incomplete = [(i, [c for c in channels if c not in have]) for i, have in found.items() if len(have) < len(channels)]
    if incomplete and complete:
        image_id, missing = incomplete[0]
        raise ContractError(
            f"{Path(image_dir) / f'{image_id}_{missing[0]}'}.png: channel file not found ({len(incomplete)} image(s) "
            f"lack a channel; every image needs {'/'.join(channels)}). Got only {', '.join(found[image_id])} for "
            f"{image_id!r} instead."
        )
    return {i: list(have) for i, have in found.items()}


def _finish(totals, sizes, n_files, channels, n_images) -> dict:
    stats: dict = {
        "channels": list(channels),
        "mean": [float(m) for _, m, _ in totals],
        "std": [float(np.sqrt(m2 / n)) if n else 0.0 for n, _, m2 in totals],
        "n_images": int(n_images),
    }
    square = {h for h, w in sizes if h == w}
    stats["size"] = int(next(iter(square))) if len(sizes) == 1 and square else None
    if stats["size"] is None:
        stats["sizes"] = [[h, w, c] for (h, w), c in sorted(sizes.items())]
    stats["n_files"] = list(n_files)
    return stats


def array_channel_stats(images: np.ndarray, max_images: int | None = 2000,
                        channels: Sequence[str] = CHANNELS) -> dict:
    """:func:`channel_stats` of an in-memory image array (e.g. the base models' uint8 cache).

    Parameters
    ----------
    images : ndarray of shape (n_images, n_channels, H, W), uint8 (a memmap is fine)
    max_images : int or None
        Use this many evenly spaced images (deterministic; all when None).

    Returns
    -------
    stats : dict, the layout of :func:`channel_stats` (``channels`` has n_channels names)
    """
    n = len(images)
    n_channels = images.shape[1]
    channels = list(channels)[:n_channels] if len(channels) >= n_channels else [str(c) for c in range(n_channels)]
    take = n if max_images is None else min(max_images, n)
    rows = np.unique(np.linspace(0, n - 1, take).astype(int)) if n else np.zeros(0, int)
    totals = [(0, 0.0, 0.0)] * n_channels
    for start in range(0, len(rows), 256):
        block = np.asarray(images[rows[start:start + 256]])
        for c in range(n_channels):
            totals[c] = merge_moments(totals[c], array_moments(block[:, c])[0])
    sizes = {(int(images.shape[2]), int(images.shape[3])): len(rows)} if len(rows) else {}
    return _finish(totals, sizes, [len(rows)] * n_channels, channels, len(rows))


def channel_stats(image_dir: str | os.PathLike, channels: Sequence[str] = CHANNELS, n_jobs: int = 1,
                  max_images: int | None = None, seed: int = 0, chunk_size: int = 32,
                  show_progress: bool = True, complete: bool = False) -> dict:
    """Per-channel pixel mean and standard deviation over a folder of ``{Id}_{channel}`` image files.

    The one channel-statistics function of the project (:func:`array_channel_stats` is the same for an
    in-memory array). One streaming pass: each worker decodes one file at a time with
    :mod:`hpa_ens.images` and keeps only ``(count, mean, M2)`` per channel; chunk results are merged in
    a fixed order, so the numbers do not depend on ``n_jobs``.

    Parameters
    ----------
    image_dir : path-like
    channels : sequence of str
    n_jobs : int
        joblib workers decoding in parallel.
    max_images : int, optional
        Use a seeded random subset of this many Ids (all when None).
    seed : int
    chunk_size : int
        Files per joblib task.

    Returns
    -------
    stats : dict
        ``{"channels": [...], "mean": [...], "std": [...], "n_images": N, "size": S, "n_files": [...],
        "images": folder record}`` with mean/std in 0..1 units (population std over all pixels);
        ``size`` is the side length when every image is S×S, else None with ``sizes`` listing
        ``[h, w, count]``. Written and read through :mod:`hpa_ens.contract.channel_stats`.

    Raises
    ------
    hpa_ens.images.ImageError
        A file that cannot be decoded (named), before anything is written.
    """
    from joblib import Parallel, delayed

    from .image_sets import folder_record, scan_images

    found = find_images(image_dir, channels, complete)
    paths = scan_images(image_dir, channels)
    ids = list(found)
    if max_images is not None and max_images < len(ids):
        rng = np.random.default_rng(seed)
        ids = sorted(rng.choice(ids, size=max_images, replace=False).tolist())
    jobs = [(ci, str(paths[i][c])) for i in ids for ci, c in enumerate(channels) if c in paths[i]]
    chunks = [jobs[s: s + chunk_size] for s in range(0, len(jobs), chunk_size)]
    totals = [(0, 0.0, 0.0)] * len(channels)
    n_files = [0] * len(channels)
    for ci, _ in jobs:
        n_files[ci] += 1
    sizes: dict[tuple[int, int], int] = {}
    runner = Parallel(n_jobs=max(1, min(n_jobs, len(chunks))), return_as="generator")
    results = runner(delayed(_chunk_moments)(chunk, len(channels)) for chunk in chunks)
    with progress(transient=True) as bar:
        task = bar.add_task("channel stats", total=len(jobs), visible=show_progress)
        for chunk, (acc, chunk_sizes) in zip(chunks, results):
            for ci in range(len(channels)):
                totals[ci] = merge_moments(totals[ci], acc[ci])
            for shape, count in chunk_sizes.items():
                sizes[shape] = sizes.get(shape, 0) + count
            bar.advance(task, len(chunk))
    stats = _finish(totals, sizes, n_files, channels, len(ids))
    stats["images"] = folder_record(image_dir)
    return stats


# ---------------------------------------------------------------------------------- the stage
def explore(labels_path=None, images=None, task=None, target_dist=None, target_column=None,
            max_images=None, n_jobs: int = 1, seed: int = 0) -> dict:
    """Compute everything the report needs, writing nothing (so a bad input leaves no folder behind).

    Returns
    -------
    result : dict with ``summary`` (or None), ``Y`` (or None), ``stats`` (channel stats or None)
    """
    from .contract import read_target_distribution
    from .task import load_task

    task = load_task(task)
    stats = channel_stats(images, task.channels, n_jobs=n_jobs, max_images=max_images, seed=seed,
                          complete=True) if images else None
    summary = Y = None
    if labels_path:
        from .labels import read_labels

        Y = read_labels(labels_path, allow_empty=True, task=task).to_numpy()
        target = read_target_distribution(target_dist, column=target_column, task=task) if target_dist else None
        summary = label_summary(Y, target)
        summary.update({"task": task.name, "class_names": list(task.class_names), "source": str(labels_path)})
        if target_dist:
            summary["target_source"] = str(target_dist)
        if stats is not None:
            summary["channel_stats"] = stats
    return {"summary": summary, "Y": Y, "stats": stats}


def write_report(result: dict, out_dir: Path, dpi: int = 100) -> None:
    """Write channel_stats.json (through the contract), the plots, summary.json and the index pages."""
    from .contract.channel_stats import write_channel_stats

    out_dir.mkdir(parents=True, exist_ok=True)
    if result["stats"] is not None:
        write_channel_stats(out_dir / "channel_stats.json", result["stats"])
    if result["summary"] is not None:
        plots = write_plots(result["summary"], result["Y"], out_dir, dpi=dpi)
        atomic_write_json(out_dir / "summary.json", result["summary"])
        write_index(result["summary"], plots, out_dir)


def summary_lines(result: dict) -> list[str]:
    lines = []
    stats = result["stats"]
    if stats is not None:
        lines.append(f"channel stats over {stats['n_images']:,} images: mean "
                     + " ".join(f"{m:.4f}" for m in stats["mean"]) + ", std " + " ".join(f"{s:.4f}" for s in stats["std"]))
    if result["summary"] is not None:
        lines += [f"{key}: {value}" for key, value in _key_numbers(result["summary"])]
    return lines


def check_options(args) -> None:
    if args.labels is None and args.images is None:
        raise ParameterError("The '--labels' parameter must be given (or '--images'). Got neither instead.")
    check_param("--dpi", args.dpi, "an integer >= 10", args.dpi >= 10)
    check_param("--max-images", args.max_images, "a positive integer", args.max_images is None or args.max_images > 0)
    if args.target_dist and not args.labels:
        raise ParameterError("The '--target-dist' parameter needs '--labels'. Got no --labels instead.")


def build_parser():
    from .cli import add_n_jobs_argument, add_task_argument

    p = parser("python -m hpa_ens.eda", "Label exploration plots and per-channel image statistics.")
    p.add_argument("--labels", help="train.csv (Id,Target)")
    p.add_argument("--target-dist", help="CSV with one share per class (e.g. lb_label_distribution.csv)")
    p.add_argument("--target-column", default=None, help="column of --target-dist (default: lb, else share)")
    p.add_argument("--images", help="folder of {Id}_{channel}.png/.jpg/.tif for channel mean/std")
    p.add_argument("--max-images", type=int, default=None, help="channel stats on a seeded subset of Ids")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--dpi", type=int, default=100)
    p.add_argument("--out", required=True, help="output folder (created only once everything is computed)")
    add_task_argument(p)
    add_n_jobs_argument(p)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    from .cli import resolve_n_jobs

    args = build_parser().parse_args(argv)
    check_options(args)
    result = explore(args.labels, args.images, args.task, args.target_dist, args.target_column, args.max_images,
                     resolve_n_jobs(args.n_jobs), args.seed)
    write_report(result, Path(args.out), args.dpi)
    for line in summary_lines(result):
        console.print(line)
    console.print(f"wrote {args.out}/")
    return 0


if __name__ == "__main__":
    entry(main)
