import numpy as np
import pytest
from sklearn.metrics import f1_score

from hpa_ens.labels import write_labels
from hpa_ens.commands.score import main


def test_score_cli_matches_sklearn_and_checks_ids(tmp_path, capsys):
    rng = np.random.default_rng(0)
    ids = [f"i{k}" for k in range(200)]
    y_true = (rng.random((200, 28)) < 0.1)
    y_true[np.arange(200), rng.integers(0, 28, 200)] = True
    y_pred = y_true ^ (rng.random(y_true.shape) < 0.05)
    write_labels(tmp_path / "truth.csv", ids, y_true)
    # The submission in another row order: matched by Id.
    order = rng.permutation(200)
    write_labels(tmp_path / "sub.csv", [ids[i] for i in order], y_pred[order], column="Predicted")
    assert main(["--labels", str(tmp_path / "truth.csv"), "--submission", str(tmp_path / "sub.csv"),
                 "--n-boot", "100", "--json", str(tmp_path / "s.json")]) == 0
    out = capsys.readouterr().out
    expected = f1_score(y_true, y_pred, average="macro", zero_division=0)
    assert f"macro F1 {expected:.4f}" in out
    write_labels(tmp_path / "short.csv", ids[:-1], y_pred[:-1], column="Predicted")
    from hpa_ens.commands._cli import run
    assert run(main, ["--labels", str(tmp_path / "truth.csv"), "--submission", str(tmp_path / "short.csv")]) == 2
    assert "1 Ids of the truth" in capsys.readouterr().err


def _task(tmp_path, k=6):
    import pandas as pd

    path = tmp_path / "task.csv"
    pd.DataFrame({"id": range(k), "name": [f"label{j}" for j in range(k)]}).to_csv(path, index=False)
    return path


@pytest.mark.filterwarnings("ignore:.*rows have no label")  # rows with no label are allowed outside HPA
def test_score_any_task_truth_flag_and_partial_truth(tmp_path, capsys):
    import json

    from hpa_ens.commands._cli import run

    rng = np.random.default_rng(1)
    ids = [f"s{k}" for k in range(300)]
    y_true = rng.random((300, 6)) < 0.3  # rows with no label are allowed outside HPA
    y_pred = y_true ^ (rng.random(y_true.shape) < 0.1)
    task = _task(tmp_path)
    write_labels(tmp_path / "truth.csv", ids[:120], y_true[:120])
    write_labels(tmp_path / "sub.csv", ids[::-1], y_pred[::-1], column="Predicted")
    base = ["--submission", str(tmp_path / "sub.csv"), "--task", str(task), "--n-boot", "50"]
    # the truth labels 120 of 300 rows: refused unless --partial-truth, then scored on those 120 only
    assert run(main, ["--truth", str(tmp_path / "truth.csv"), *base]) == 2
    assert "180 Ids are not in the truth" in capsys.readouterr().err
    assert run(main, ["--truth", str(tmp_path / "truth.csv"), *base, "--partial-truth",
                      "--json", str(tmp_path / "s.json")]) == 0
    out = capsys.readouterr().out
    expected = f1_score(y_true[:120], y_pred[:120], average="macro", zero_division=0)
    assert f"macro F1 {expected:.4f}" in out and "180 submission rows not in the truth ignored" in out
    saved = json.loads((tmp_path / "s.json").read_text())
    assert abs(saved["macro_f1"] - expected) < 1e-12 and len(saved["per_class_f1"]) == 6
    # --labels stays as a hidden alias of --truth
    assert run(main, ["--labels", str(tmp_path / "truth.csv"), *base, "--partial-truth"]) == 0
    assert f"macro F1 {expected:.4f}" in capsys.readouterr().out
    # a class id outside the task is refused, naming the file and row
    (tmp_path / "bad.csv").write_text("Id,Predicted\ns0,6\n")
    assert run(main, ["--truth", str(tmp_path / "truth.csv"), "--submission", str(tmp_path / "bad.csv"),
                      "--task", str(task), "--partial-truth"]) == 2
    err = capsys.readouterr().err
    assert "bad.csv, row 1" in err and "0..5" in err
