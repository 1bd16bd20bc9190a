"""Score every demo stage on the synthetic test truth and write ``reports/demo/index.html``."""

from __future__ import annotations

import html
import json
import shutil
from pathlib import Path

import numpy as np

from .cli import console
from .io import atomic_write_json
from .classes import CHANNELS, CLASS_NAMES
from .contract import align, read_prediction_set
from .labels import read_labels, read_sample_submission, read_submission
from .metrics import bootstrap_macro_f1, macro_f1, per_class_f1
from .report import html_image, html_table, plot_per_class_f1, save_figure, write_html


def _score(y_true, y_pred, seed):
    score, low, high = bootstrap_macro_f1(y_true, y_pred, n_boot=500, seed=seed)
    return {"macro_f1": score, "ci": [low, high], "per_class": per_class_f1(y_true, y_pred)}


def _composites_figure(data: Path, ids, truth, predicted, path: Path) -> None:
    """A few test images (RGB composite as HPA shows them) with true and predicted labels."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from PIL import Image

    fig, axes = plt.subplots(2, 4, figsize=(12, 7.2))
    for ax, image_id in zip(axes.ravel(), ids):
        channels = {c: np.asarray(Image.open(data / "test" / f"{image_id}_{c}.png"), dtype=np.float32) / 255 for c in CHANNELS}
        rgb = np.stack([channels["red"] + 0.5 * channels["yellow"], channels["green"] + 0.5 * channels["yellow"],
                        channels["blue"]], axis=-1)
        ax.imshow(np.clip(rgb, 0, 1))
        ax.axis("off")
        true_names = [CLASS_NAMES[k] for k in np.flatnonzero(truth.loc[image_id].to_numpy())]
        pred_names = [CLASS_NAMES[k] for k in np.flatnonzero(predicted.loc[image_id].to_numpy())]
        ax.set_title("true: " + ", ".join(true_names) + "\npred: " + ", ".join(pred_names), fontsize=7)
    fig.tight_layout()
    save_figure(fig, path, dpi=80)


def build_report(data: Path, work: Path, reports: Path, oof_root: Path, models: list[str], timings: dict,
                 seed: int = 0) -> dict:
    """Compute the stage table, print it, and write the HTML report (returns the results dict)."""
    from rich.table import Table

    labels = read_labels(data / "train.csv")
    test_ids = read_sample_submission(data / "sample_submission.csv")
    truth = align(read_labels(data / "truth" / "test_labels.csv"), test_ids, "truth/test_labels.csv", "the sample submission")
    y_train, y_test = labels.to_numpy().astype(bool), truth.to_numpy().astype(bool)

    sets = {m: read_prediction_set(oof_root / m, labels.index, test_ids) for m in models}
    oof_half = {m: macro_f1(y_train, s.oof.to_numpy() > 0.5) for m, s in sets.items()}
    best = max(oof_half, key=oof_half.get)
    blend = read_prediction_set(oof_root / "blend_mean", labels.index, test_ids)
    stack = read_prediction_set(oof_root / "stack", labels.index, test_ids)
    thresholds = json.loads((work / "thresholds.json").read_text())

    rows = []

    def add(stage, y_pred, seconds, oof_f1=None):
        result = _score(y_test, y_pred, seed)
        rows.append({"stage": stage, "macro_f1": result["macro_f1"], "ci": result["ci"], "oof_macro_f1": oof_f1,
                     "seconds": seconds, "per_class": result["per_class"].tolist()})

    add(f"best single model ({best}) @0.5", sets[best].test.to_numpy() > 0.5, timings.get("base_models", 0.0), oof_half[best])
    add("mean blend @0.5", blend.test.to_numpy() > 0.5, timings.get("blend", 0.0),
        macro_f1(y_train, blend.oof.to_numpy() > 0.5))
    add("stack @0.5", stack.test.to_numpy() > 0.5, timings.get("stack", 0.0), macro_f1(y_train, stack.oof.to_numpy() > 0.5))
    for stage, name, keys in (
        ("+ thresholds (matched, min 1 label)", "submit_thresholds", ("thresholds", "submit_thresholds")),
        ("+ duplicates", "submit_duplicates", ("dedup", "submit_duplicates")),
        ("+ leak", "submit_leak", ("submit_leak",)),
    ):
        sub = align(read_submission(work / f"{name}.csv"), test_ids, f"{name}.csv", "the sample submission")
        oof_f1 = thresholds.get("oof_macro_f1") if name == "submit_thresholds" else None
        add(stage, sub.to_numpy().astype(bool), sum(timings.get(k, 0.0) for k in keys), oof_f1)

    table = Table(title="hpa-ens demo: macro F1 on the synthetic test truth")
    for col in ("stage", "test macro F1", "95% CI", "OOF macro F1", "wall s"):
        table.add_column(col, justify="left" if col == "stage" else "right")
    for r in rows:
        table.add_row(r["stage"], f"{r['macro_f1']:.4f}", f"[{r['ci'][0]:.3f}, {r['ci'][1]:.3f}]",
                      "" if r["oof_macro_f1"] is None else f"{r['oof_macro_f1']:.4f}", f"{r['seconds']:.1f}")
    console.print(table)

    reports.mkdir(parents=True, exist_ok=True)
    plot_per_class_f1({"best single": np.array(rows[0]["per_class"]), "stack @0.5": np.array(rows[2]["per_class"]),
                       "final (+ leak)": np.array(rows[-1]["per_class"])}, reports / "per_class_f1.png",
                      title="Per-class F1 on the synthetic test truth")
    final = align(read_submission(work / "submit_leak.csv"), test_ids, "submit_leak.csv", "the sample submission")
    rng = np.random.default_rng(seed)
    _composites_figure(data, list(rng.choice(np.asarray(test_ids), 8, replace=False)), truth, final,
                       reports / "examples.png")
    for src_dir, name in ((oof_root / "stack", "stack_report.png"),):
        if (src_dir / name).exists():
            shutil.copyfile(src_dir / name, reports / name)

    table_html = html_table(
        ["stage", "test macro F1", "95% CI", "OOF macro F1", "wall s"],
        [[r["stage"], f"{r['macro_f1']:.4f}", f"[{r['ci'][0]:.3f}, {r['ci'][1]:.3f}]",
          "" if r["oof_macro_f1"] is None else f"{r['oof_macro_f1']:.4f}", f"{r['seconds']:.1f}"] for r in rows],
        caption=f"{len(labels)} train / {len(test_ids)} test synthetic images; models: {', '.join(models)}")
    sections = [("Stages", table_html), ("Per-class F1", html_image("per_class_f1.png", "Per-class F1 on the test truth"))]
    stack_json = oof_root / "stack" / "stack_report.json"
    if stack_json.exists():
        sr = json.loads(stack_json.read_text())
        verdict = html.escape(str(sr.get("verdict", "")))
        inner = f"<p><b>{verdict}</b></p>"
        if (reports / "stack_report.png").exists():
            inner += html_image("stack_report.png", "OOF F1 per class at exact thresholds: best single, mean blend, stack")
        sections.append(("Stack vs blend (OOF)", inner))
    for folder, heading in ((reports / "thresholds", "Thresholds"), (reports / "eda", "Exploration (train labels)")):
        pngs = sorted(folder.glob("*.png")) if folder.exists() else []
        if pngs:
            sections.append((heading, "".join(html_image(f"{folder.name}/{p.name}", p.stem.replace('_', ' '), 480) for p in pngs)))
    sections.append(("Examples", html_image("examples.png", "Test images: true labels and final predictions")))
    write_html(reports / "index.html", "hpa-ens demo report", sections)
    results = {"rows": rows, "models": models, "best_single": best, "oof_at_half": oof_half, "timings": timings}
    atomic_write_json(reports / "results.json", results)
    return results
