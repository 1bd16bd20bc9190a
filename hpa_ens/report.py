"""Small helpers for the HTML reports and their plots (matplotlib, headless)."""

from __future__ import annotations

import html
import os
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from .io import atomic_write_text
from .classes import CLASS_NAMES


def _pyplot():
    import matplotlib

    matplotlib.use(os.environ.get("MPLBACKEND", "Agg"))
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig, path, dpi: int = 90) -> Path:
    """Write a matplotlib figure as PNG atomically and close it.

    No software-version metadata is written, so the same figure gives the same bytes.
    """
    import matplotlib.pyplot as plt

    from .io import atomic_open

    path = Path(path)
    with atomic_open(path, "wb") as handle:
        fig.savefig(handle, format="png", dpi=dpi, metadata={"Software": None})
    plt.close(fig)
    return path


def plot_per_class_f1(scores: Mapping[str, np.ndarray], path, title: str = "Per-class F1") -> Path:
    """Grouped horizontal bars: one group per class, one bar per named score vector (28,)."""
    plt = _pyplot()
    names = list(scores)
    n_classes = len(next(iter(scores.values())))
    height = 0.8 / max(len(names), 1)
    fig, ax = plt.subplots(figsize=(8, 0.32 * n_classes + 1.5))
    y = np.arange(n_classes)
    for i, name in enumerate(names):
        values = np.asarray(scores[name])
        ax.barh(y + i * height, values, height=height, label=f"{name} (macro {values.mean():.3f})")
    ax.set_yticks(y + 0.4 - height / 2)
    ax.set_yticklabels([f"{k} {CLASS_NAMES[k]}" for k in range(n_classes)], fontsize=7)
    ax.invert_yaxis()
    ax.set_xlim(0, 1)
    ax.set_xlabel("F1")
    ax.set_title(title)
    ax.legend(loc="lower right", fontsize=7)
    fig.tight_layout()
    return save_figure(fig, path, dpi=90)


def html_table(header: Sequence[str], rows: Sequence[Sequence], caption: str | None = None) -> str:
    cap = f"<caption>{html.escape(caption)}</caption>" if caption else ""
    head = "".join(f"<th>{html.escape(str(h))}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table>{cap}<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def html_image(src: str, alt: str, width: int | None = None) -> str:
    w = f' width="{width}"' if width else ""
    return f'<figure><img src="{html.escape(src)}" alt="{html.escape(alt)}"{w}><figcaption>{html.escape(alt)}</figcaption></figure>'


_STYLE = """
body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}
table{border-collapse:collapse;margin:1em 0}th,td{border:1px solid #ccc;padding:4px 8px;text-align:right}
th{background:#f2f2f2}td:first-child,th:first-child{text-align:left}caption{font-weight:bold;margin-bottom:.4em}
figure{display:inline-block;margin:.5em;vertical-align:top}figcaption{font-size:.85em;color:#555;max-width:480px}
img{max-width:100%;border:1px solid #ddd}code{background:#f4f4f4;padding:1px 4px}
"""


def write_html(path, title: str, sections: Sequence[tuple[str, str]]) -> Path:
    """Write a standalone page: ``sections`` are (heading, inner HTML) pairs."""
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>",
             f"<style>{_STYLE}</style></head><body><h1>{html.escape(title)}</h1>"]
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
