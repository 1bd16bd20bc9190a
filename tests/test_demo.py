"""`make demo` end to end on a tiny synthetic set: every stage, the score table, the report, the skip."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from hpa_ens.report import image_links

pytest.importorskip("torch")

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
    assert stages[1:] == ["mean blend + thresholds", "stack + thresholds (matched, min 1 label)", "+ duplicates",
                          "+ leak"]
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
    _screenshot_if_possible(tmp_path / "reports" / "index.html", tmp_path / "shot.png")

    second = _demo(tmp_path)
    assert second.returncode == 0, second.stderr[-3000:]
    assert second.stderr.count("fresh, skipped") == 12, second.stderr
