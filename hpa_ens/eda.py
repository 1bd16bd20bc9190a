"""Data exploration: label statistics, PNG plots, an index page, and per-channel image statistics.

``python -m hpa_ens.eda --labels train.csv [--target-dist FILE] [--images DIR] --out reports/eda/``
(the command: :mod:`hpa_ens.commands.eda`)

Writes into ``--out``: ``class_counts.png``, ``cooccurrence.png``, ``labels_per_image.png``,
``single_label_share.png``, ``target_share.png`` (with ``--target-dist``), ``summary.json`` (the key
numbers), ``index.md`` and ``index.html`` (the plots with those numbers), and with ``--images``
``channel_stats.json`` (:mod:`hpa_ens.contract.channel_stats`): ``{"channels": [...], "mean": [4], "std": [4],
"n_images": N, "size": S, "images": folder record}`` in 0..1 units of the uint8 pixels of
:mod:`hpa_ens.images`, computed in one streaming pass (one image in memory per worker) by
:func:`hpa_ens.channel_stats.channel_stats`. Everything is computed before the output folder is created
(:func:`explore`, then :func:`write_report`), so a bad input (a corrupt PNG) leaves nothing behind.
``--task`` gives K and the class names (any multi-label task) and the channel names.
"""

from __future__ import annotations

import html
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from .io import atomic_write_json, atomic_write_text
from .validation import ParameterError, check_param
from .report import save_figure

__all__ = [
    "label_summary",
    "cooccurrence",
    "explore",
    "write_plots",
    "write_index",
    "write_report",
    "key_numbers",
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
def key_numbers(summary: dict) -> list[tuple[str, str]]:
    """The report's key numbers as (name, formatted value) rows (the index pages and the command's lines)."""
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
    key = key_numbers(summary)
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


# ---------------------------------------------------------------------------------- the stage
def explore(labels_path=None, images=None, task=None, target_dist=None, target_column=None,
            max_images=None, n_jobs: int = 1, seed: int = 0,
            progress: Callable[[int, int, str], None] | None = None) -> dict:
    """Compute everything the report needs, writing nothing (so a bad input leaves no folder behind).

    Parameters
    ----------
    labels_path : path-like, optional
        ``Id,Target`` labels (the label numbers and plots).
    images : path-like, optional
        Folder of ``{Id}_{channel}`` files (channel statistics; every image needs every channel).
    task : Task, name or file, optional
    target_dist : path-like or a built-in name (``hpa2018-lb``), optional
        One target share per class, reported beside the train share (needs ``labels_path``).
    target_column : str, optional
        Column of ``target_dist``.
    max_images, n_jobs, seed, progress
        Of :func:`hpa_ens.channel_stats.channel_stats`.

    Returns
    -------
    result : dict with ``summary`` (or None), ``Y`` (or None), ``stats`` (channel stats or None)
    """
    from .channel_stats import channel_stats
    from .contract import read_target_distribution
    from .task import load_task

    if not labels_path and not images:
        raise ParameterError("The 'labels_path' parameter of explore must be given (or 'images'). Got neither "
                             "instead.")
    if target_dist and not labels_path:
        raise ParameterError(f"The 'target_dist' parameter of explore needs 'labels_path'. Got {target_dist!r} "
                             f"without labels instead.")
    task = load_task(task)
    stats = channel_stats(images, task.channels, n_jobs=n_jobs, max_images=max_images, seed=seed,
                          progress=progress, complete=True) if images else None
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

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    if result["stats"] is not None:
        write_channel_stats(out_dir / "channel_stats.json", result["stats"])
    if result["summary"] is not None:
        plots = write_plots(result["summary"], result["Y"], out_dir, dpi=dpi)
        atomic_write_json(out_dir / "summary.json", result["summary"])
        write_index(result["summary"], plots, out_dir)


if __name__ == "__main__":  # python -m hpa_ens.eda: the command lives in hpa_ens.commands.eda
    from hpa_ens.commands import launch

    launch("eda", __spec__.name)
