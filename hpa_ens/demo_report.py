"""Score every demo stage on the synthetic test truth and write ``reports/demo/index.html``.

:func:`build_report` computes the stage table and writes the report: the demo's own rows (every stage
scored on the synthetic test truth, per-class F1 bars, example images, the thresholds stage's curves,
the EDA pictures) around the sections of ``hpa-ens report`` (:mod:`hpa_ens.set_report`) over the base
models and the stack (leaderboard at cross-fitted cuts, correlation, per-class F1, stack vs blend).
The demo command (:mod:`hpa_ens.commands.demo`) prints the tables (:data:`HEADER`, :func:`format_row`).
"""

from __future__ import annotations

import html
import json
from pathlib import Path

import numpy as np

from .io import atomic_write_json, sha256_file
from .classes import CLASS_NAMES
from .contract import align, read_folds, read_prediction_set, read_stage_inputs
from .labels import read_labels, read_sample_submission, read_submission
from .metrics import bootstrap_macro_f1, macro_f1, per_class_f1
from .report import html_image, html_table, plot_per_class_f1, save_figure, write_html
from .set_report import build_set_report, report_sections

#: Columns of the stage tables (printed by the command, and in the HTML report).
HEADER = ("stage", "test macro F1", "95% CI", "OOF macro F1", "wall s")


def _score(y_true, y_pred, seed):
    score, low, high = bootstrap_macro_f1(y_true, y_pred, n_boot=500, seed=seed)
    return {"macro_f1": score, "ci": [low, high], "per_class": per_class_f1(y_true, y_pred)}


def _composites_figure(data: Path, ids, truth, predicted, path: Path) -> None:
    """A few test images (RGB composite as HPA shows them) with true and predicted labels."""
    from matplotlib.figure import Figure

    from .images import composite_rgb, read_image

    fig = Figure(figsize=(12, 7.2))
    axes = fig.subplots(2, 4)
    for ax, image_id in zip(axes.ravel(), ids):
        ax.imshow(composite_rgb(read_image(data / "test", image_id)))
        ax.axis("off")
        true_names = [CLASS_NAMES[k] for k in np.flatnonzero(truth.loc[image_id].to_numpy())]
        pred_names = [CLASS_NAMES[k] for k in np.flatnonzero(predicted.loc[image_id].to_numpy())]
        ax.set_title("true: " + ", ".join(true_names) + "\npred: " + ", ".join(pred_names), fontsize=7)
    fig.tight_layout()
    save_figure(fig, path, dpi=80)


def tuned_prediction(oof, y_true, test, target, folds, method: str | None = None, min_labels: int = 1,
                     max_labels: int | None = 5, **params):
    """The demo's threshold rule on any prediction set: what ``hpa-ens thresholds`` then ``submit`` do to the
    stack, so that every "+ thresholds" row is comparable.

    The rule ``method`` (default: the package's default with a target, :func:`hpa_ens.thresholds.resolve_method`)
    tuned on the OOF rows and the test probabilities with the announced ``target`` (and its ``params``, e.g.
    ``target_n``); then at least ``min_labels`` and at most ``max_labels`` labels per image
    (:func:`hpa_ens.thresholds.apply_thresholds`, ranked by the command's default fill rule: the posterior
    calibrated on the OOF rows and corrected to ``target``). The OOF score is cross-fitted over ``folds``
    (:func:`hpa_ens.thresholds.cross_fitted_predictions`), as the command reports it. Never tuned on test truth.

    Parameters
    ----------
    oof : ndarray (n_train, K); y_true : ndarray (n_train, K) of 0/1; test : ndarray (n_test, K)
    target : ndarray (K,), the announced target shares of the test labels
    folds : ndarray (n_train,), the fold of each OOF row

    Returns
    -------
    test_pred : ndarray (n_test, K) of bool
    oof_macro_f1 : float, macro F1 of the OOF rows, each fold at the cuts tuned on the other folds
    """
    from . import thresholds as T

    y_true = np.asarray(y_true).astype(np.uint8)
    method = T.resolve_method(method, True)
    rule = T.get_rule(method)
    params = {k: v for k, v in params.items() if v is not None and k in rule.params}
    cuts, report = T.choose(method, oof, y_true, test, target, **params)
    rank_by, posterior = T.resolve_fill_rule(None, oof, y_true, target)  # the fill rule the command defaults to
    test_pred = T.apply_thresholds(test, cuts, min_labels, max_labels, rank_by, posterior).astype(bool)
    oof_pred = T.cross_fitted_predictions(method, oof, y_true, folds, test, target, min_labels=min_labels,
                                          max_labels=max_labels, **params)
    return test_pred, float(macro_f1(y_true.astype(bool), oof_pred.astype(bool)))


def format_row(r: dict) -> list[str]:
    """One row of the stage table (a ``rows``/``members`` entry of :func:`build_report`'s result), as text."""
    return [r["stage"], f"{r['macro_f1']:.4f}", f"[{r['ci'][0]:.3f}, {r['ci'][1]:.3f}]",
            "" if r["oof_macro_f1"] is None else f"{r['oof_macro_f1']:.4f}", f"{r['seconds']:.1f}"]


def build_report(data: Path, work: Path, reports: Path, oof_root: Path, models: list[str], timings: dict,
                 seed: int = 0, target_dist: Path | None = None, target_n: int | None = None,
                 method: str | None = None, tolerance: float | None = None) -> dict:
    """Compute the stage table and write the HTML report (``index.html``, its plots, ``results.json``).

    Rows: the best single model (chosen by its OOF macro F1), the mean blend and the stack, each at the
    same tuned thresholds, then duplicates and leak on top of the stack. Every base model's own row
    (at the same thresholds) is in ``members``.

    Returns
    -------
    results : dict with ``rows`` and ``members`` (stage, macro_f1, ci, oof_macro_f1, seconds, per_class),
        ``models``, ``best_single``, ``timings``, ``threshold_rule`` and ``sets`` (the members' and the stack's
        :class:`~hpa_ens.set_report.SetReport`, as JSON); also written as ``results.json``
    """
    from . import thresholds as T
    from .contract import read_target_distribution

    labels = read_labels(data / "train.csv")
    test_ids = read_sample_submission(data / "sample_submission.csv")
    truth = align(read_labels(data / "truth" / "test_labels.csv"), test_ids, "truth/test_labels.csv", "the sample submission")
    y_train, y_test = labels.to_numpy().astype(bool), truth.to_numpy().astype(bool)
    target = read_target_distribution(target_dist, labels=labels) if target_dist else y_train.mean(axis=0)
    folds = read_folds(data / "folds.csv", labels.index).to_numpy()
    rule = {"method": T.resolve_method(method, True), "target_n": target_n, "tolerance": tolerance}

    def tuned(pset):
        return tuned_prediction(pset.oof.to_numpy(), y_train, pset.test.to_numpy(), target, folds, **rule)

    def add(into, stage, y_pred, seconds, oof_f1=None):
        result = _score(y_test, y_pred, seed)
        into.append({"stage": stage, "macro_f1": result["macro_f1"], "ci": result["ci"], "oof_macro_f1": oof_f1,
                     "seconds": seconds, "per_class": result["per_class"].tolist()})

    members: list[dict] = []
    tuned_members = {}
    for m in models:
        tuned_members[m] = tuned(read_prediction_set(oof_root / m, labels.index, test_ids))
        seconds = timings.get(f"features_{m}", timings.get("base_models", 0.0))
        add(members, f"{m} + thresholds", tuned_members[m][0], seconds, tuned_members[m][1])
    # The best single model is chosen on OOF rows only (never on the test truth).
    best = max(models, key=lambda m: tuned_members[m][1])
    blend = read_prediction_set(oof_root / "blend_mean", labels.index, test_ids)
    stack_oof_f1 = tuned(read_prediction_set(oof_root / "stack", labels.index, test_ids))[1]

    rows: list[dict] = []
    best_row = next(r for r in members if r["stage"] == f"{best} + thresholds")
    rows.append(dict(best_row, stage=f"best single model ({best}) + thresholds"))
    blend_pred, blend_oof = tuned(blend)
    add(rows, "mean blend + thresholds", blend_pred, timings.get("blend", 0.0), blend_oof)
    for stage, name, keys in (
        (f"stack + thresholds ({rule['method']}, min 1 label)", "submit_thresholds", ("stack", "thresholds", "submit_thresholds")),
        ("+ duplicates", "submit_duplicates", ("dedup", "submit_duplicates")),
        ("+ leak", "submit_leak", ("submit_leak",)),
    ):
        sub = align(read_submission(work / f"{name}.csv"), test_ids, f"{name}.csv", "the sample submission")
        oof_f1 = stack_oof_f1 if name == "submit_thresholds" else None
        add(rows, stage, sub.to_numpy().astype(bool), sum(timings.get(k, 0.0) for k in keys), oof_f1)

    reports.mkdir(parents=True, exist_ok=True)
    plot_per_class_f1({"best single + thresholds": np.array(rows[0]["per_class"]),
                       "mean blend + thresholds": np.array(rows[1]["per_class"]),
                       "final (+ leak)": np.array(rows[-1]["per_class"])}, reports / "per_class_f1.png",
                      title="Per-class F1 on the synthetic test truth")
    final = align(read_submission(work / "submit_leak.csv"), test_ids, "submit_leak.csv", "the sample submission")
    rng = np.random.default_rng(seed)
    _composites_figure(data, list(rng.choice(np.asarray(test_ids), 8, replace=False)), truth, final,
                       reports / "examples.png")

    sets = _members_report(data, oof_root, models, truth, seed)
    table_html = html_table(list(HEADER), [format_row(r) for r in rows],
                            caption=f"{len(labels)} train / {len(test_ids)} test synthetic images; models: "
                                    f"{', '.join(models)}; every row at the same threshold rule (tuned on OOF rows)")
    members_html = html_table(list(HEADER), [format_row(r) for r in members], caption="Each base model at the same rule")
    sections = [("Stages", table_html), ("Base models", members_html),
                ("Per-class F1", html_image("per_class_f1.png", "Per-class F1 on the test truth"))]
    # hpa-ens report's sections over the members and the stack (pictures named sets_*.png), with the stack
    # command's own verdict in its panel.
    verdict = ""
    stack_json = oof_root / "stack" / "stack_report.json"
    if stack_json.exists():
        verdict = html.escape(str(json.loads(stack_json.read_text()).get("verdict", "")))
        verdict = f"<p>The stack command's verdict (OOF, cuts tuned on the same rows): <b>{verdict}</b></p>"
    sections += [(h, verdict + inner if h == "Stack vs blend" else inner)
                 for h, inner in report_sections(sets, reports, prefix="sets_")]
    for folder, heading in ((reports / "thresholds", "Thresholds"), (reports / "eda", "Exploration (train labels)")):
        pngs = sorted(folder.glob("*.png")) if folder.exists() else []
        if pngs:
            sections.append((heading, "".join(html_image(f"{folder.name}/{p.name}", p.stem.replace('_', ' '), 480) for p in pngs)))
    sections.append(("Examples", html_image("examples.png", "Test images: true labels and final predictions")))
    write_html(reports / "index.html", "hpa-ens demo report", sections)
    results = {"rows": rows, "members": members, "models": models, "best_single": best, "timings": timings,
               "threshold_rule": {**rule, "target": str(target_dist), "min_labels": 1, "max_labels": 5},
               "sets": sets.to_json()}
    atomic_write_json(reports / "results.json", results)
    return results


def _members_report(data: Path, oof_root: Path, models: list[str], truth, seed: int):
    """``hpa-ens report``'s numbers for the demo's members and its stack (OOF at cross-fitted cuts, test truth).

    ``truth`` is the test truth as an Id-indexed frame (aligned here to the sets' test rows).
    """
    folds = data / "folds.csv"
    inputs = read_stage_inputs([oof_root / m for m in models] + [oof_root / "stack"], data / "train.csv", folds,
                               needs_oof="the demo's report")
    n = len(models)
    return build_set_report(inputs.names[:n], inputs.oof_list[:n], inputs.Y, inputs.folds,
                            test_list=inputs.test_list[:n],
                            truth=align(truth, inputs.test_ids, "truth/test_labels.csv", "the sets' test rows").to_numpy(),
                            stack=(inputs.names[n], inputs.oof_list[n], inputs.test_list[n], inputs.sets[n].meta),
                            metas=[ps.meta for ps in inputs.sets[:n]], folds_sha256=sha256_file(folds),
                            class_names=inputs.task.class_names, with_curves=False, n_boot=500, seed=seed)
