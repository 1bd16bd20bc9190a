"""`make demo` end to end on a tiny synthetic set: every stage, the score table, the report, the skip."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from hpa_ens.report import image_links

pytest.importorskip("torch", reason="needs the [train] extra")

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

    # The report's threshold rule (used for the blend and best-single rows) is the CLI chain's rule:
    # on the stack it reproduces tune_thresholds + submit exactly.
    import numpy as np
    from importlib import resources

    from hpa_ens.contract import align, read_prediction_set
    from hpa_ens.demo_report import tuned_prediction
    from hpa_ens.contract import read_target_distribution
    from hpa_ens.labels import read_labels, read_sample_submission, read_submission

    labels = read_labels(tmp_path / "data" / "train.csv")
    test_ids = read_sample_submission(tmp_path / "data" / "sample_submission.csv")
    stack = read_prediction_set(tmp_path / "oof" / "stack", labels.index, test_ids)
    target = read_target_distribution(Path(str(resources.files("hpa_ens").joinpath("data/lb_label_distribution.csv"))),
                                      labels=labels)
    predicted, _ = tuned_prediction(stack.oof.to_numpy(), labels.to_numpy(), stack.test.to_numpy(), target, 0.3)
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
