import numpy as np
from sklearn.metrics import f1_score

from hpa_ens.labels import write_labels
from hpa_ens.score import main


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
    from hpa_ens.cli import run
    assert run(main, ["--labels", str(tmp_path / "truth.csv"), "--submission", str(tmp_path / "short.csv")]) == 2
    assert "1 Ids of the truth" in capsys.readouterr().err
