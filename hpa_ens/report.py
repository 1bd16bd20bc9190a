"""Small helpers for the HTML reports and their plots: PNGs written atomically, tables, pages.

Plots are drawn on standalone matplotlib ``Figure`` objects (the Agg renderer, no pyplot state, no
backend chosen or changed); :func:`save_figure` writes them with no version metadata, so the same
figure gives the same bytes. ``hpa-ens report`` (:mod:`hpa_ens.set_report`) and the demo's report
(:mod:`hpa_ens.demo_report`) are built from these.
"""

from __future__ import annotations

import html
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from .io import atomic_write_text
from .classes import CLASS_NAMES

__all__ = ["save_figure", "plot_per_class_f1", "html_table", "html_image", "write_html", "image_links"]


def save_figure(fig, path, dpi: int = 90) -> Path:
    """Write a matplotlib figure as PNG atomically and close it (when pyplot manages it).

    No software-version metadata is written, so the same figure gives the same bytes.
    """
    from .io import atomic_open

    path = Path(path)
    with atomic_open(path, "wb") as handle:
        fig.savefig(handle, format="png", dpi=dpi, metadata={"Software": None})
    if getattr(fig.canvas, "manager", None) is not None:  # a pyplot figure: free pyplot's reference
        import matplotlib.pyplot as plt

        plt.close(fig)
    return path


def plot_per_class_f1(scores: Mapping[str, np.ndarray], path, title: str = "Per-class F1",
                      names: Sequence[str] | None = None) -> Path:
    """Grouped horizontal bars: one group per class, one bar per named score vector of shape (n_classes,).

    ``names`` are the class names (default the HPA 2018 classes); the legend gives each vector's mean
    (its macro F1).
    """
    from matplotlib.figure import Figure

    labels = list(scores)
    n_classes = len(next(iter(scores.values())))
    names = list(CLASS_NAMES if names is None else names)
    height = 0.8 / max(len(labels), 1)
    row = max(0.32, 0.08 * len(labels) + 0.08)  # more bars per class: taller rows
    fig = Figure(figsize=(8, row * n_classes + 1.5))
    ax = fig.subplots()
    y = np.arange(n_classes)
    for i, label in enumerate(labels):
        values = np.asarray(scores[label])
        ax.barh(y + i * height, values, height=height, label=f"{label} (macro {values.mean():.3f})")
    ax.set_yticks(y + 0.4 - height / 2)
    ax.set_yticklabels([f"{k} {names[k] if k < len(names) else ''}" for k in range(n_classes)], fontsize=7)
    ax.invert_yaxis()
    ax.set_xlim(0, 1)
    ax.set_xlabel("F1")
    ax.set_title(title)
    ax.legend(loc="lower right", fontsize=7)
    fig.tight_layout()
    return save_figure(fig, path, dpi=90)


def html_table(header: Sequence[str], rows: Sequence[Sequence], caption: str | None = None) -> str:
    """A ``<table>`` of escaped text cells, with an optional caption."""
    cap = f"<caption>{html.escape(caption)}</caption>" if caption else ""
    head = "".join(f"<th>{html.escape(str(h))}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table>{cap}<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def html_image(src: str, alt: str, width: int | None = None) -> str:
    """A ``<figure>`` with the image at ``src`` (relative to the page) and ``alt`` as its caption."""
    w = f' width="{width}"' if width else ""
    return f'<figure><img src="{html.escape(src)}" alt="{html.escape(alt)}"{w}><figcaption>{html.escape(alt)}</figcaption></figure>'


_STYLE = """
body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}
table{border-collapse:collapse;margin:1em 0}th,td{border:1px solid #ccc;padding:4px 8px;text-align:right}
th{background:#f2f2f2}td:first-child,th:first-child{text-align:left}caption{font-weight:bold;margin-bottom:.4em}
figure{display:inline-block;margin:.5em;vertical-align:top}figcaption{font-size:.85em;color:#555;max-width:480px}
img{max-width:100%;border:1px solid #ddd}code{background:#f4f4f4;padding:1px 4px}
"""


def write_html(path, title: str, sections: Sequence[tuple[str, str]], intro: str = "") -> Path:
    """Write a standalone page atomically: ``sections`` are (heading, inner HTML) pairs.

    ``intro`` is inner HTML placed under the title.
    """
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>",
             f"<style>{_STYLE}</style></head><body><h1>{html.escape(title)}</h1>{intro}"]
    for heading, inner in sections:
        parts.append(f"<section><h2>{html.escape(heading)}</h2>{inner}</section>")
    parts.append("</body></html>\n")
    atomic_write_text(path, "\n".join(parts))
    return Path(path)


def image_links(html_text: str) -> list[str]:
    """Every ``src`` of an ``<img>`` in a page (for checking a report renders)."""
    from html.parser import HTMLParser

    found: list[str] = []

    class _Parser(HTMLParser):
        def handle_starttag(self, tag, attrs):
            if tag == "img":
                found.extend(v for k, v in attrs if k == "src" and v)

    _Parser().feed(html_text)
    return found


if __name__ == "__main__":  # python -m hpa_ens.report: the command lives in hpa_ens.commands.report
    from hpa_ens.commands import launch

    launch("report", __spec__.name)
