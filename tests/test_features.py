"""The image-feature base model (base_models.features): config checks, honest OOF, cache, any K, no torch."""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from base_models import features as F
from hpa_ens.contract import read_prediction_set, write_folds
from hpa_ens.labels import read_labels
from tiny_images import make_dataset

REPO = Path(__file__).resolve().parents[1]
CONFIG = REPO / "base_models" / "configs" / "features.yaml"
FAST = {"features": ["channel_stats", "quantiles", "histogram", "cells", "texture"], "C": 0.1}


def _cli(*args, cwd=None):
    env = dict(os.environ, PYTHONPATH=str(REPO))
    return subprocess.run([sys.executable, "-m", "base_models.features", *map(str, args)], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)


def _unimport():
    """Leave the process as found: other tests (run_all's dispatch) replace base_models.features in
    sys.modules, which an attribute left on the base_models package would shadow. ``F`` keeps working."""
    import base_models

    sys.modules.pop("base_models.features", None)
    if hasattr(base_models, "features"):
        delattr(base_models, "features")


_unimport()  # at collection time too: xdist workers collect every file before running any test


@pytest.fixture(scope="module", autouse=True)
def _unimport_afterwards():
    yield
    _unimport()


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root, train_ids, test_ids, y = make_dataset(tmp_path_factory.mktemp("feat") / "data", n_train=36, n_test=8)
    write_folds(root / "folds3.csv", pd.Series(np.arange(36) % 3, index=pd.Index(train_ids, name="Id")))
    return root


def test_unknown_feature_name_is_one_line_before_any_work(data, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("kind: features\nfeatures: [channel_stats, haralik]\n")
    proc = _cli("--config", bad, "--data", data, "--folds", data / "folds.csv", "--out", tmp_path / "oof")
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "haralik" in lines[0] and "Traceback" not in proc.stderr, proc.stderr
    assert not (tmp_path / "oof").exists()
    with pytest.raises(F.ParameterError, match="'features'"):
        F.load_feature_config(None, {"features": ["channel_stats", "channel_stats"]})
    with pytest.raises(F.ContractError, match="unknown config key 'modle'"):
        F.load_feature_config(None, {"modle": "logistic"})
    with pytest.raises(F.ParameterError, match="'model'"):
        F.load_feature_config(None, {"model": "svm"})


def test_config_file_defaults_and_name():
    config = F.load_feature_config(CONFIG)
    assert config["name"] == "features" and config["kind"] == "features"
    assert set(config["features"]) <= set(F.FEATURES)


def _fit(data, out, labels_override=None, overrides=None, n_jobs=1):
    config = F.load_feature_config(CONFIG, dict(FAST, cache_dir=str(out / "cache"), **(overrides or {})))
    if labels_override is not None:
        labels_override.to_csv(data / "train.csv", index=False)
    return F.train_features(config, data, data / "folds3.csv", out / "oof", n_jobs=n_jobs)


def test_oof_rows_come_only_from_the_model_that_did_not_see_them(data, tmp_path):
    original = pd.read_csv(data / "train.csv", dtype=str)
    try:
        _fit(data, tmp_path / "a")
        # Scramble the labels of fold 0 only: fold 0's OOF rows must not move, the others must.
        folds = pd.read_csv(data / "folds3.csv", dtype=str)["fold"].astype(int).to_numpy()
        scrambled = original.copy()
        rows = np.flatnonzero(folds == 0)
        scrambled.loc[rows, "Target"] = original.loc[rows[::-1], "Target"].to_numpy()
        scrambled.loc[rows, "Target"] = np.where(scrambled.loc[rows, "Target"] == original.loc[rows, "Target"],
                                                 "3", scrambled.loc[rows, "Target"])
        _fit(data, tmp_path / "b", labels_override=scrambled)
    finally:
        original.to_csv(data / "train.csv", index=False)
    a = pd.read_csv(tmp_path / "a" / "oof" / "features" / "oof.csv", index_col=0)
    b = pd.read_csv(tmp_path / "b" / "oof" / "features" / "oof.csv", index_col=0)
    held = folds == 0
    np.testing.assert_array_equal(a.to_numpy()[held], b.to_numpy()[held])
    assert not np.allclose(a.to_numpy()[~held], b.to_numpy()[~held])


def test_prediction_set_matches_an_oracle_and_the_cache_is_reused(data, tmp_path):
    summary = _fit(data, tmp_path)
    pset = read_prediction_set(tmp_path / "oof" / "features")
    assert summary["name"] == "features" and 0 <= summary["oof_macro_f1"] <= 1
    assert pset.meta["folds_sha256"] and pset.meta["produced_by"] == "base_models.features"
    # Oracle: the same features, sklearn fitted by hand per fold and per class.
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    config = F.load_feature_config(CONFIG, FAST)
    labels = read_labels(data / "train.csv")
    y = labels.to_numpy()
    folds = pd.read_csv(data / "folds3.csv")["fold"].to_numpy()
    x = np.stack([F.image_features(F.read_image(data / "train", i), config["features"],
                                   ["red", "green", "blue", "yellow"], "green", "blue") for i in labels.index])
    held = folds == 1
    scaler = StandardScaler().fit(x[~held])
    k = 0  # class 0: green intensity planted
    model = LogisticRegression(C=0.1, max_iter=500).fit(np.clip(scaler.transform(x[~held]), -10, 10), y[~held, k])
    expected = model.predict_proba(np.clip(scaler.transform(x[held]), -10, 10))[:, 1]
    np.testing.assert_allclose(pset.oof.to_numpy()[held, k], expected, rtol=1e-5, atol=1e-6)
    # A class never seen in training gets its (zero) training share.
    assert np.all(pset.oof.to_numpy()[:, 20] == 0)
    # Second run: cached features (files untouched), the same bytes.
    caches = sorted((tmp_path / "cache").glob("*.npz"))
    mtimes = [p.stat().st_mtime_ns for p in caches]
    before = (tmp_path / "oof" / "features" / "oof.csv").read_bytes()
    _fit(data, tmp_path, n_jobs=2)
    assert [p.stat().st_mtime_ns for p in caches] == mtimes and len(caches) == 2
    assert (tmp_path / "oof" / "features" / "oof.csv").read_bytes() == before


def test_features_do_not_depend_on_n_jobs(data, tmp_path):
    config = F.load_feature_config(CONFIG, FAST)
    ids = read_labels(data / "train.csv").index[:20]
    chs = ["red", "green", "blue", "yellow"]
    one = F.extract(data / "train", ids, config, chs, tmp_path / "c1", n_jobs=1)
    two = F.extract(data / "train", ids, config, chs, tmp_path / "c2", n_jobs=2)
    np.testing.assert_array_equal(one, two)
    assert np.isfinite(one).all()


def test_any_number_of_classes(data, tmp_path):
    """A 3-class task: labels, prediction set and meta carry K = 3."""
    import shutil

    root = tmp_path / "k3"
    shutil.copytree(data, root, ignore=shutil.ignore_patterns(".cache"))
    labels = pd.read_csv(root / "train.csv", dtype=str)
    labels["Target"] = [str(i % 3) if i % 4 else "0 2" for i in range(len(labels))]
    labels.to_csv(root / "train.csv", index=False)
    task = tmp_path / "task.yaml"
    task.write_text("name: three\nclasses: [a, b, c]\n")
    summary = F.run(CONFIG, root, root / "folds3.csv", tmp_path / "oof", task=str(task), n_jobs=1,
                    overrides={"cache_dir": str(tmp_path / "cache")})
    oof = pd.read_csv(tmp_path / "oof" / "features" / "oof.csv", index_col=0)
    assert oof.shape == (len(labels), 3) and summary["name"] == "features"
    bad = labels.copy()
    bad.loc[0, "Target"] = "3"
    bad.to_csv(root / "train.csv", index=False)
    with pytest.raises(F.ContractError, match=r"row 1: unknown class id '3' in Target '3'; expected integers 0\.\.2"):
        F.run(CONFIG, root, root / "folds3.csv", tmp_path / "oof2", task=str(task))
    assert not (tmp_path / "oof2").exists()


def test_module_imports_no_torch():
    code = "import sys, base_models.features; assert 'torch' not in sys.modules, 'torch imported'"
    proc = subprocess.run([sys.executable, "-c", code], env=dict(os.environ, PYTHONPATH=str(REPO)),
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
