"""`make demo` end to end on a tiny synthetic set: every stage, the score table, the report, the skip."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from hpa_ens.report import image_links

pytest.importorskip("torch", reason="needs the [train] extra (torch)")

REPO = Path(__file__).resolve().parents[1]


def _demo(tmp_path, *extra):
    args = [sys.executable, "-m", "hpa_ens.demo", "--data", "data", "--work", "work", "--reports", "reports",
            "--oof", "oof", "--n-train", "160", "--n-test", "60", "--size", "32", "--n-folds", "2",
            "--models", "features,regnetx_002", "--epochs", "1", "--image-size", "32", *extra]
    env = dict(os.environ, HPA_ENS_NO_PROGRESS="1", HF_HUB_OFFLINE="1", MPLBACKEND="Agg")
    return subprocess.run(args, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)


def _screenshot_if_possible(page: Path, out: Path) -> None:
    """Render the report in headless Chromium when the machine has it, and check the picture is not blank."""
    import shutil
    import tempfile

    import numpy as np
    from PIL import Image

    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        return  # the link parse above is the check on machines without a browser
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             f"--user-data-dir={tempfile.mkdtemp()}", "--window-size=1200,1600", f"--screenshot={out}"]
    subprocess.run([browser, *flags, page.resolve().as_uri()], capture_output=True, timeout=120)
    pixels = np.asarray(Image.open(out).convert("L"), dtype=np.float64)
    assert pixels.shape == (1600, 1200)
    assert pixels.std() > 20  # text, tables and plots, not an empty or error page


@pytest.mark.xdist_group("demo")
def test_tiny_demo_end_to_end_then_skips(tmp_path):
    first = _demo(tmp_path)
    assert first.returncode == 0, first.stderr[-3000:]
    results = json.loads((tmp_path / "reports" / "results.json").read_text())
    stages = [row["stage"] for row in results["rows"]]
    assert stages[0].startswith("best single model (") and stages[0].endswith(") + thresholds")
    from hpa_ens.thresholds import DEFAULT_WITH_TARGET

    assert stages[1:] == ["mean blend + thresholds", f"stack + thresholds ({DEFAULT_WITH_TARGET}, min 1 label)",
                          "+ duplicates", "+ leak"]
    # The demo runs the thresholds command at its default, told the probe and its row count, never the file the
    # test labels were drawn toward.
    record = json.loads((tmp_path / "work" / "thresholds.json").read_text())
    assert record["method"] == DEFAULT_WITH_TARGET and record["params"]["target_dist"].endswith("lb_probe.csv")
    assert record["params"]["target_n"] == 18
    assert results["threshold_rule"]["target_n"] == 18 and results["threshold_rule"]["method"] == DEFAULT_WITH_TARGET
    assert [r["stage"] for r in results["members"]] == ["features + thresholds", "regnetx_002 + thresholds"]
    best = max(results["members"], key=lambda r: r["oof_macro_f1"])
    assert results["rows"][0]["macro_f1"] == best["macro_f1"]  # chosen on OOF, scored on test
    for row in results["rows"]:
        assert 0.0 <= row["ci"][0] <= row["macro_f1"] <= row["ci"][1] <= 1.0
    # The leak labels are the truth for their Ids, so adding them cannot lower the score.
    assert results["rows"][-1]["macro_f1"] >= results["rows"][-2]["macro_f1"] - 1e-12
    for name in ("features", "regnetx_002", "blend_mean", "stack"):
        assert (tmp_path / "oof" / name / "meta.json").exists()
    page = (tmp_path / "reports" / "index.html").read_text()
    links = image_links(page)
    assert len(links) >= 5
    for link in links:
        assert (tmp_path / "reports" / link).stat().st_size > 1000, link
    assert "test macro F1" in page
    # The demo's own rows around hpa-ens report's sections over its members and stack.
    headings = [h for h in page.split("<h2>")[1:]]
    headings = [h[:h.index("</h2>")] for h in headings]
    for heading in ("Stages", "Base models", "Per-class F1", "Leaderboard", "Correlation between sets",
                    "Per-class F1 per set", "Stack vs blend", "Thresholds", "Exploration (train labels)", "Examples"):
        assert heading in headings, heading
    assert {"per_class_f1.png", "sets_leaderboard.png", "sets_correlation.png", "sets_blend_stack.png",
            "thresholds/f1_curves.png", "examples.png"} <= set(links)
    assert any(link.startswith("eda/") for link in links)
    kinds = {row["name"]: row["kind"] for row in results["sets"]["leaderboard"]}
    assert kinds == {"features": "set", "regnetx_002": "set", "mean blend": "mean blend", "stack": "stack"}
    for row in results["sets"]["leaderboard"]:
        assert row["oof_ci"][0] <= row["oof_macro_f1"] <= row["oof_ci"][1]
    _screenshot_if_possible(tmp_path / "reports" / "index.html", tmp_path / "shot.png")

    # The report's threshold rule (used for the blend and best-single rows) is the CLI chain's rule:
    # on the stack it reproduces tune_thresholds + submit exactly.
    import numpy as np
    from importlib import resources

    from hpa_ens.contract import align, read_folds, read_prediction_set, read_target_distribution
    from hpa_ens.demo_report import tuned_prediction
    from hpa_ens.labels import read_labels, read_sample_submission, read_submission

    labels = read_labels(tmp_path / "data" / "train.csv")
    test_ids = read_sample_submission(tmp_path / "data" / "sample_submission.csv")
    stack = read_prediction_set(tmp_path / "oof" / "stack", labels.index, test_ids)
    target = read_target_distribution(tmp_path / "data" / "lb_probe.csv", labels=labels)
    lb = read_target_distribution(Path(str(resources.files("hpa_ens").joinpath("data/lb_label_distribution.csv"))),
                                  labels=labels)
    assert not np.allclose(target, lb, atol=1e-3)
    folds = read_folds(tmp_path / "data" / "folds.csv", labels.index).to_numpy()
    predicted, oof_f1 = tuned_prediction(stack.oof.to_numpy(), labels.to_numpy(), stack.test.to_numpy(), target, folds,
                                         target_n=18)
    assert oof_f1 == pytest.approx(next(r for r in results["rows"] if r["stage"].startswith("stack"))["oof_macro_f1"])
    submitted = align(read_submission(tmp_path / "work" / "submit_thresholds.csv"), test_ids, "submission")
    np.testing.assert_array_equal(predicted, submitted.to_numpy().astype(bool))

    second = _demo(tmp_path)
    assert second.returncode == 0, second.stderr[-3000:]
    assert second.stderr.count("fresh, skipped") == 12, second.stderr


def test_demo_refuses_to_generate_into_a_user_folder(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    (data / "train.csv").write_text("Id,Target\nmine,0\n")
    (data / "notes.txt").write_text("my own files")
    before = sorted(p.name for p in data.iterdir())
    proc = _demo(tmp_path)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "marker" in lines[0] and "Traceback" not in proc.stderr, proc.stderr
    assert sorted(p.name for p in data.iterdir()) == before
    assert (data / "train.csv").read_text() == "Id,Target\nmine,0\n"
    assert not (tmp_path / "work").exists() and not (tmp_path / "oof").exists()
