"""Inference CLI: reproduces the trainer's test predictions, averages checkpoints, refuses bad input."""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

torch = pytest.importorskip("torch", reason="needs the [train] extra")
pytest.importorskip("timm", reason="needs the [train] extra")

from base_models import predict as predict_mod  # noqa: E402
from base_models.commands import predict as predict_cmd  # noqa: E402
from base_models.config import load_config  # noqa: E402
from base_models.train import fit_fold  # noqa: E402
from hpa_ens.contract import read_probs  # noqa: E402

from tiny_images import make_dataset  # noqa: E402


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """Two folds of a tiny model: one per-image normalised, one with dataset channel statistics."""
    root = tmp_path_factory.mktemp("predict")
    data, train_ids, test_ids, _ = make_dataset(root / "data", n_train=16, n_test=10)
    folds = {}
    for fold, normalize in ((0, "per_image"), (1, "dataset")):
        config = load_config(None, dict(backbone="mobilenetv3_small_050", name="tiny", image_size=32, batch_size=4,
                                        eval_batch_size=16, epochs=1, threads=1, tta="flips",
                                        normalize=normalize, cache_dir=str(root / "cache")))
        fit_fold(config, data, data / "folds.csv", fold, root / "oof")
        folds[fold] = root / "oof" / "tiny" / f"fold{fold}"
    return data, test_ids, folds, root


def test_predict_reproduces_the_trainers_test_probabilities(trained, tmp_path, capsys):
    data, test_ids, folds, root = trained
    for fold, folder in folds.items():
        out = tmp_path / f"p{fold}.csv"
        assert predict_cmd.main(["--checkpoint", str(folder), "--data", str(data), "--tta", "flips",
                                 "--batch-size", "16", "--threads", "1", "--out", str(out),
                                 "--cache-dir", str(root / "cache")]) == 0
        mine = read_probs(out, ids=test_ids)
        trainer = read_probs(folder / "test.csv", ids=test_ids)
        np.testing.assert_allclose(mine.to_numpy(), trainer.to_numpy(), rtol=0, atol=1e-6)
    assert "images_per_s=" in capsys.readouterr().out


def test_several_checkpoints_are_averaged_and_d8_is_dihedral(trained, tmp_path):
    data, test_ids, folds, root = trained
    outs = {}
    for key, ckpts, tta in (("a", [folds[0]], "d8"), ("b", [folds[1] / "best.pt"], "d8"),
                            ("ab", [folds[0], folds[1] / "best.pt"], "d8"), ("a_dihedral", [folds[0]], "dihedral")):
        out = tmp_path / f"{key}.csv"
        predict_cmd.main(["--checkpoint", *map(str, ckpts), "--data", str(data), "--tta", tta, "--threads", "1",
                          "--out", str(out), "--cache-dir", str(root / "cache")])
        outs[key] = read_probs(out, ids=test_ids).to_numpy()
    np.testing.assert_allclose(outs["ab"], (outs["a"] + outs["b"]) / 2, atol=1e-12)
    np.testing.assert_array_equal(outs["a"], outs["a_dihedral"])
    # The 8-transform average differs from the 4-flip one the trainer wrote.
    assert not np.allclose(outs["a"], read_probs(folds[0] / "test.csv", ids=test_ids).to_numpy(), atol=1e-7)


def test_predict_on_train_split_and_errors(trained, tmp_path):
    data, _, folds, root = trained
    out = tmp_path / "train.csv"
    predict_cmd.main(["--checkpoint", str(folds[0]), "--data", str(data), "--split", "train", "--tta", "none",
                      "--threads", "1", "--out", str(out), "--cache-dir", str(root / "cache")])
    assert len(read_probs(out)) == 16
    with pytest.raises(ValueError, match="checkpoint not found"):
        predict_mod.load_predictor(tmp_path / "nope.pt")
    lonely = tmp_path / "lonely"
    lonely.mkdir()
    (lonely / "best.pt").write_bytes((folds[0] / "best.pt").read_bytes())
    with pytest.raises(ValueError, match="config.yaml"):
        predict_mod.load_predictor(lonely)
    with pytest.raises(SystemExit):  # argparse refuses an unknown TTA name
        predict_cmd.main(["--checkpoint", str(folds[0]), "--data", str(data), "--tta", "rot"])


def test_predict_without_out_writes_beside_the_checkpoint(trained):
    data, test_ids, folds, root = trained
    assert predict_cmd.main(["--checkpoint", str(folds[0]), "--data", str(data), "--tta", "none",
                             "--threads", "1", "--cache-dir", str(root / "cache")]) == 0
    written = folds[0].parent / "predict_test.csv"
    assert read_probs(written).index.tolist() == test_ids
