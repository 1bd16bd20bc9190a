"""Per-class LightGBM stacking (hpa_ens.ensemble.Stacker, hpa-ens stack)."""

import json

import lightgbm as lgb
import numpy as np
import pytest

from hpa_ens.io import sha256_file
from hpa_ens.commands.stack import main
from hpa_ens.contract import read_prediction_set
from hpa_ens.ensemble import Stacker, default_params, mean_blend, stack_features
from hpa_ens.testing.simulate import simple_folds, simulate_base_models, write_simulated_sets


def _labels(n, seed=0):
    rng = np.random.default_rng(seed)
    prevalence = np.r_[0.4, 0.25, 0.15, np.full(22, 0.06), 0.02, 0.01, 0.005]
    Y = (rng.random((n, 28)) < prevalence).astype(np.uint8)
    Y[Y.sum(1) == 0, 0] = 1
    return Y


@pytest.fixture(scope="module")
def small():
    Y = _labels(600)
    probs = simulate_base_models(Y, n_models=3, seed=0)
    return Y, probs, simple_folds(600, 3, seed=0)


FAST = dict(n_rounds=20, early_stopping_rounds=5, min_positives=10)


def one_pass_stack(oof_sets, Y, folds, test_sets, **params):
    """OOF and test in one pass, no fold models kept (the command line's way): the StackResult."""
    return Stacker(keep_models=False, **params).fit(oof_sets, Y, folds, X_test=test_sets).result_


def test_stack_features_shapes():
    probs = [np.full((4, 28), 0.25), np.full((4, 28), 0.75)]
    for kind, width in (("probs", 31), ("logits", 31), ("both", 59)):
        X, names = stack_features(probs, kind, ["a", "b"])
        assert X.shape == (4, 2 * width) and len(names) == X.shape[1] and X.dtype == np.float32
    X, names = stack_features(probs, "probs", ["a", "b"])
    assert X[0, names.index("b:n_at_0.5")] == 28 and X[0, names.index("a:max")] == pytest.approx(0.25)
    with pytest.raises(ValueError, match="features"):
        stack_features(probs, "ranks")


def test_shared_dataset_with_set_label_equals_fresh_dataset():
    """The speed trick: one binned Dataset, labels swapped per class, gives the same models."""
    rng = np.random.default_rng(0)
    X = rng.random((400, 6)).astype(np.float32)
    labels = [(X[:, j] + 0.3 * rng.random(400) > 0.7).astype(float) for j in range(3)]
    params = default_params(0) | {"min_data_in_leaf": 5}
    shared = lgb.Dataset(X, label=labels[0], params=params, free_raw_data=False).construct()
    for y in labels:
        shared.set_label(y)
        a = lgb.train(params, shared, num_boost_round=15).predict(X)
        b = lgb.train(params, lgb.Dataset(X, label=y, params=params), num_boost_round=15).predict(X)
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-12)


def test_stack_is_honest_and_deterministic(small):
    Y, probs, folds = small
    sets, tests = list(probs), [p[:50] for p in probs]
    r1 = one_pass_stack(sets, Y, folds, tests, **FAST)
    r2 = one_pass_stack(sets, Y, folds, tests, **FAST)
    assert r1.oof.shape == Y.shape and r1.test.shape == (50, 28)
    assert np.array_equal(r1.oof, r2.oof) and np.array_equal(r1.test, r2.test)
    assert ((r1.oof >= 0) & (r1.oof <= 1)).all()
    assert {"lgbm", "mean"} <= set(r1.method.ravel())  # common classes boosted, rare ones fall back
    # Honesty: scrambling fold 0's labels must not change fold 0's OOF predictions.
    Y2 = Y.copy()
    rows = np.flatnonzero(folds == 0)
    Y2[rows] = Y[np.random.default_rng(1).permutation(rows)]
    r3 = one_pass_stack(sets, Y2, folds, tests, **FAST)
    np.testing.assert_array_equal(r3.oof[rows], r1.oof[rows])
    assert not np.array_equal(r3.oof[folds != 0], r1.oof[folds != 0])


def test_stack_learns_what_a_blend_cannot():
    """Class 1 is signalled by model 0's class-0 column: only a stacker over all columns finds it."""
    rng = np.random.default_rng(3)
    Y = _labels(900, 3)
    probs = rng.random((2, 900, 28)) * 0.5
    probs[0, :, 0] = 0.3 + 0.6 * Y[:, 1] * rng.random(900) + 0.1 * rng.random(900)
    folds = simple_folds(900, 3, seed=0)
    blend = mean_blend(list(probs))
    res = one_pass_stack(list(probs), Y, folds, [p[:10] for p in probs], n_rounds=40, early_stopping_rounds=10)
    from hpa_ens.thresholds import exact_thresholds

    assert exact_thresholds(Y, res.oof)[1][1] > exact_thresholds(Y, blend)[1][1] + 0.2


def test_rare_fallbacks_and_dynamic(small):
    Y, probs, folds = small
    few = slice(0, 200)
    lr = one_pass_stack([p[few] for p in probs], Y[few], folds[few], [p[:20] for p in probs], rare="logistic",
                        n_rounds=5, early_stopping_rounds=2, min_positives=10_000)
    assert set(lr.method.ravel()) == {"logistic"} and (lr.n_trees == 0).all()
    dyn = one_pass_stack(list(probs), Y, folds, [p[:20] for p in probs], dynamic=True, **FAST)
    boosted = dyn.method == "lgbm"
    kept_blend = np.isfinite(dyn.inner_gain) & (dyn.method == "mean")
    assert boosted.any()
    # The choice follows the inner-split comparison exactly.
    assert (dyn.inner_gain[kept_blend] <= 0).all() and (dyn.inner_gain[boosted] > 0).all()


def test_cli_writes_prediction_set_and_report(tmp_path):
    paths = write_simulated_sets(tmp_path / "data", _labels(400, 1), n_models=3, seed=0, n_folds=2)
    argv = ["--labels", str(paths["labels"]), "--folds", str(paths["folds"]),
            "--pred", *map(str, paths["models"]), "--n-rounds", "15", "--early-stopping", "5",
            "--min-positives", "8", "--dynamic"]
    assert main(argv + ["--out", str(tmp_path / "s1")]) == 0
    assert main(argv + ["--out", str(tmp_path / "s2")]) == 0
    ps = read_prediction_set(tmp_path / "s1")
    assert ps.oof.shape == (len(paths["train_idx"]), 28) and ps.test.shape == (len(paths["test_idx"]), 28)
    assert set(ps.meta["inputs"]) == {"model_0", "model_1", "model_2"}
    assert ps.meta["params"]["dynamic"] is True and ps.meta["folds_sha256"] == sha256_file(paths["folds"])
    for name in ("oof.csv", "test.csv"):
        assert sha256_file(tmp_path / "s1" / name) == sha256_file(tmp_path / "s2" / name)
    report = json.loads((tmp_path / "s1" / "stack_report.json").read_text())
    assert set(report["macro"]) == {f"best single ({max(report['single_models'], key=report['single_models'].get)})",
                                    "mean blend", "stack"}
    assert "on OOF" in report["verdict"] and len(report["per_class"]["stack"]) == 28
    assert (tmp_path / "s1" / "stack_report.png").stat().st_size > 1000


def test_cli_refuses_misaligned_folds(tmp_path, capsys):
    from hpa_ens.commands._cli import run

    paths = write_simulated_sets(tmp_path / "data", _labels(200, 2), n_models=2, seed=0, n_folds=3)
    lines = paths["folds"].read_text().splitlines()
    paths["folds"].write_text("\n".join(lines[:-1]) + "\n")  # one train Id without a fold
    code = run(main, ["--labels", str(paths["labels"]), "--folds", str(paths["folds"]),
                      "--pred", *map(str, paths["models"]), "--out", str(tmp_path / "s")])
    assert code == 2 and "missing" in capsys.readouterr().err


def test_stacker_api_matches_the_one_pass_stack_and_aligns_frames_by_id(small):
    import pandas as pd

    Y, probs, folds = small
    sets, tests = list(probs), [p[:40] for p in probs]
    one_pass = one_pass_stack(sets, Y, folds, tests, **FAST)
    stacker = Stacker(n_rounds=20, early_stopping_rounds=5, min_positives=10).fit(sets, Y, folds)
    np.testing.assert_allclose(stacker.oof_, one_pass.oof, atol=1e-12)
    np.testing.assert_allclose(stacker.predict(tests), one_pass.test, atol=1e-12)
    # DataFrames are aligned by Id: shuffled rows give the same stack.
    ids = [f"r{i}" for i in range(len(Y))]
    order = np.random.default_rng(0).permutation(len(Y))
    frames = [pd.DataFrame(p[order], index=[ids[i] for i in order]) for p in probs]
    y_frame = pd.DataFrame(Y, index=ids)
    again = Stacker(n_rounds=20, early_stopping_rounds=5, min_positives=10).fit(frames, y_frame, folds)
    np.testing.assert_allclose(again.oof_, stacker.oof_, atol=1e-12)
    with pytest.raises(ValueError, match="sets"):
        stacker.predict(tests[:2])


def test_stack_works_for_any_number_of_classes():
    rng = np.random.default_rng(4)
    Y = (rng.random((300, 6)) < [0.5, 0.3, 0.3, 0.2, 0.2, 0.1]).astype(np.uint8)
    probs = simulate_base_models(Y, n_models=2, seed=1)
    res = one_pass_stack(list(probs), Y, simple_folds(300, 3, 0), [p[:7] for p in probs], **FAST)
    assert res.oof.shape == (300, 6) and res.test.shape == (7, 6) and res.method.shape == (3, 6)


def test_dynamic_falls_back_to_the_blend_when_the_stack_does_not_beat_it():
    """Models that already separate every class perfectly: the stack cannot beat their mean, so the
    set-level rule keeps the mean blend (chosen on OOF rows only)."""
    rng = np.random.default_rng(5)
    Y = _labels(500, 5)
    probs = np.stack([np.clip(0.2 + 0.6 * Y + 0.05 * rng.standard_normal(Y.shape), 0.01, 0.99) for _ in range(2)])
    res = one_pass_stack(list(probs), Y, simple_folds(500, 3, 0), [p[:9] for p in probs], dynamic=True, **FAST)
    assert res.fallback == "blend"
    np.testing.assert_allclose(res.oof, mean_blend(list(probs)))
    np.testing.assert_allclose(res.test, mean_blend([p[:9] for p in probs]))
    assert res.oof_macro["stack"] <= res.oof_macro["mean blend"] == pytest.approx(1.0)
    plain = one_pass_stack(list(probs), Y, simple_folds(500, 3, 0), [p[:9] for p in probs], **FAST)
    assert plain.fallback is None


def _cli_args(paths, out):
    return ["--labels", str(paths["labels"]), "--folds", str(paths["folds"]), "--n-rounds", "5",
            "--early-stopping", "2", "--min-positives", "8", "--out", str(out)]


def test_cli_refuses_test_only_sets_other_tasks_and_foreign_out_folders(tmp_path, capsys):
    import shutil

    from hpa_ens.commands._cli import run

    paths = write_simulated_sets(tmp_path / "data", _labels(200, 2), n_models=2, seed=0, n_folds=2)
    a, b = map(str, paths["models"])
    only = tmp_path / "test_only"
    _test_only_copy(b, only)
    assert run(main, _cli_args(paths, tmp_path / "s") + ["--pred", a, str(only)]) == 2
    err = capsys.readouterr().err
    assert "test-only" in err and "needs OOF rows" in err and not (tmp_path / "s").exists()
    other = tmp_path / "other_task"
    shutil.copytree(b, other)
    meta = json.loads((other / "meta.json").read_text())
    meta["task"] = {"name": "other", "class_names": [f"c{k}" for k in range(28)]}
    (other / "meta.json").write_text(json.dumps(meta))
    assert run(main, _cli_args(paths, tmp_path / "s") + ["--pred", a, str(other)]) == 2
    err = capsys.readouterr().err
    assert "other_task" in err and "different class lists" in err and not (tmp_path / "s").exists()
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("keep me")
    assert run(main, _cli_args(paths, foreign) + ["--pred", a, b]) == 2
    assert "not a prediction set" in capsys.readouterr().err and (foreign / "notes.txt").exists()
    # The old flag names stay as hidden aliases; --models (config names elsewhere) says to use --pred.
    assert run(main, _cli_args(paths, tmp_path / "s") + ["--models", a, b, "--threads", "1"]) == 0
    assert json.loads((tmp_path / "s" / "meta.json").read_text())["params"]["lightgbm"]["num_threads"] == 1
    err = capsys.readouterr().err
    assert "--models is deprecated in hpa-ens stack: use --pred" in err and "--threads is deprecated" not in err


def _test_only_copy(src, dst):
    """A sealed test-only prediction set holding ``src``'s test rows (no oof.csv)."""
    from hpa_ens.contract import build_meta, read_prediction_set, write_prediction_set

    ps = read_prediction_set(src)
    write_prediction_set(dst, None, ps.test, build_meta("test", [], argv=[], name=dst.name))


@pytest.mark.parametrize("user_policy", [None, "ACTIVE"])
def test_stack_command_sets_passive_omp_wait_before_lightgbm_loads(tmp_path, user_policy):
    """The command (not the library import) sets OMP_WAIT_POLICY=PASSIVE, before lightgbm is imported,
    unless the user set a policy."""
    import os
    import subprocess
    import sys

    paths = write_simulated_sets(tmp_path / "data", _labels(120, 6), n_models=2, seed=0, n_folds=2)
    code = (
        "import importlib.abc, os, sys\n"
        "seen = []\n"
        "class Watch(importlib.abc.MetaPathFinder):\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name == 'lightgbm' and not seen:\n"
        "            seen.append(os.environ.get('OMP_WAIT_POLICY'))\n"
        "        return None\n"
        "sys.meta_path.insert(0, Watch())\n"
        "import hpa_ens, hpa_ens.stack, hpa_ens.ensemble, hpa_ens.commands.stack\n"
        "assert os.environ.get('OMP_WAIT_POLICY') == os.environ.get('EXPECT_BEFORE'), 'set at import'\n"
        "from hpa_ens.commands import main\n"
        "assert main(sys.argv[1:]) == 0\n"
        "print('policy when lightgbm loaded:', seen[0])\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    if user_policy:
        env["OMP_WAIT_POLICY"] = user_policy
    env["EXPECT_BEFORE"] = user_policy or ""
    if not user_policy:
        code = code.replace("os.environ.get('EXPECT_BEFORE')", "None")
    argv = ["stack", "--labels", str(paths["labels"]), "--folds", str(paths["folds"]),
            "--pred", *map(str, paths["models"]), "--n-rounds", "3", "--min-positives", "5", "--n-jobs", "1",
            "--out", str(tmp_path / "s")]
    proc = subprocess.run([sys.executable, "-c", code, *argv], capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert f"policy when lightgbm loaded: {user_policy or 'PASSIVE'}" in proc.stdout


def test_two_stacks_started_together_on_one_out_leave_one_whole_sealed_set(tmp_path):
    """Issue 27: the second writer waits for the first; the set (and its report) is all one run's, never half of each."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    repo = Path(__file__).resolve().parents[1]
    paths = write_simulated_sets(tmp_path / "data", _labels(300, 7), n_models=2, seed=0, n_folds=2)
    common = ["--labels", str(paths["labels"]), "--folds", str(paths["folds"]), "--pred", *map(str, paths["models"]),
              "--n-rounds", "8", "--early-stopping", "3", "--min-positives", "5", "--n-jobs", "1"]
    runs = {"probs": ["--features", "probs"], "both": ["--features", "both", "--seed", "1"]}
    env = dict(os.environ, HPA_ENS_NO_PROGRESS="1", PYTHONPATH=str(repo))
    shared = tmp_path / "stack"
    procs = [subprocess.Popen([sys.executable, "-m", "hpa_ens.stack", *common, *extra, "--out", str(shared)], cwd=repo,
                              env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE) for extra in runs.values()]
    for p in procs:
        _, err = p.communicate(timeout=300)
        assert p.returncode == 0, err.decode()[-2000:]
    ps = read_prediction_set(shared)  # refuses a set whose files do not match its seal
    winner = ps.meta["params"]["features"]
    # The same run alone gives the same bytes; its report is the one beside the set.
    assert main(common + runs[winner] + ["--out", str(tmp_path / "alone")]) == 0
    for name in ("oof.csv", "test.csv"):
        assert sha256_file(shared / name) == sha256_file(tmp_path / "alone" / name)
    report = json.loads((shared / "stack_report.json").read_text())
    assert report == json.loads((tmp_path / "alone" / "stack_report.json").read_text())
    assert ps.meta["oof_macro_f1_exact_thresholds"] == report["macro"]
    assert sorted(p.name for p in shared.iterdir()) == ["meta.json", "oof.csv", "stack_report.json",
                                                        "stack_report.png", "test.csv"]
