"""Per-class LightGBM stacking (hpa_ens.ensemble.Stacker, hpa-ens stack)."""

import json

import lightgbm as lgb
import numpy as np
import pytest

from hpa_ens.io import sha256_file
from hpa_ens.commands.stack import main
from hpa_ens.contract import read_prediction_set
from hpa_ens.ensemble import Stacker, default_params, mean_blend, stack_features, stack_summary
from hpa_ens.testing.simulate import simple_folds, simulate_base_models, simulated_labels, write_simulated_sets


def _labels(n, seed=0):
    return simulated_labels(n, seed)


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


def test_a_class_copy_of_the_fold_bins_equals_a_fresh_dataset():
    """The speed trick now: the fold's features binned once (inner rows with the same edges); each class
    trains on a ``subset`` copy of those bins with its own label: the same models as Datasets binned
    afresh per class, early stopping on the inner rows included."""
    from hpa_ens.ensemble._stacker import _FoldPlan, _bins_with_label, _fold_bins

    rng = np.random.default_rng(0)
    X = rng.random((500, 6)).astype(np.float32)
    plan = _FoldPlan(0, np.arange(400), np.arange(400, 500), np.arange(300, 400), np.arange(300))
    params = default_params(0) | {"min_data_in_leaf": 5}
    fit_bins, es_bins = _fold_bins(X, plan, params)
    for j in range(3):
        y = (X[:, j] + 0.3 * rng.random(500) > 0.7).astype(float)
        a = lgb.train(params, _bins_with_label(fit_bins, y[plan.fit_rows], params), num_boost_round=30,
                      valid_sets=[_bins_with_label(es_bins, y[plan.es_rows], params)],
                      callbacks=[lgb.early_stopping(5, verbose=False)])
        fresh = lgb.Dataset(X[plan.fit_rows], label=y[plan.fit_rows], params=params)
        b = lgb.train(params, fresh, num_boost_round=30,
                      valid_sets=[lgb.Dataset(X[plan.es_rows], label=y[plan.es_rows], reference=fresh)],
                      callbacks=[lgb.early_stopping(5, verbose=False)])
        assert a.best_iteration == b.best_iteration
        np.testing.assert_allclose(a.predict(X[plan.score_rows]), b.predict(X[plan.score_rows]), rtol=0, atol=1e-12)


@pytest.mark.parametrize("dynamic", [False, True], ids=["always-stack", "dynamic (the default)"])
def test_stack_is_honest_and_deterministic(small, dynamic):
    """Honest with the dynamic default too: every choice (per class and per fold) reads fold k's inner
    split, rows of the other folds, so fold k's labels cannot move fold k's OOF predictions."""
    Y, probs, folds = small
    sets, tests = list(probs), [p[:50] for p in probs]
    r1 = one_pass_stack(sets, Y, folds, tests, dynamic=dynamic, **FAST)
    r2 = one_pass_stack(sets, Y, folds, tests, dynamic=dynamic, **FAST)
    assert r1.oof.shape == Y.shape and r1.test.shape == (50, 28)
    assert np.array_equal(r1.oof, r2.oof) and np.array_equal(r1.test, r2.test)
    assert ((r1.oof >= 0) & (r1.oof <= 1)).all()
    assert {"lgbm", "mean"} <= set(r1.method.ravel())  # common classes boosted, rare ones fall back
    # Honesty: scrambling fold 0's labels must not change fold 0's OOF predictions.
    Y2 = Y.copy()
    rows = np.flatnonzero(folds == 0)
    Y2[rows] = Y[np.random.default_rng(1).permutation(rows)]
    r3 = one_pass_stack(sets, Y2, folds, tests, dynamic=dynamic, **FAST)
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


def _same_order(values, reference) -> bool:
    """``values`` is a non-decreasing function of ``reference`` (equal references, equal values)."""
    order = np.lexsort((values, reference))
    v, r = values[order], reference[order]
    return bool((np.diff(v) >= 0).all() and (v[1:][np.diff(r) == 0] == v[:-1][np.diff(r) == 0]).all())


def test_dynamic_falls_back_to_the_blend_when_the_stack_does_not_beat_it():
    """Models that already separate every class perfectly: the stack cannot beat their mean, so every
    fold's set-level rule keeps the blend, each deciding on its own inner split (rows of the other folds).

    The output is then the calibrated mean blend (Platt-scaled on each fold's fit rows, so that a fold's
    column never depends on another fold's choice): within each fold, and on the test rows, rank for rank
    the mean blend. (Before the rule was nested, the whole-set choice read every OOF row and returned the
    mean blend's own numbers.)"""
    rng = np.random.default_rng(5)
    Y = _labels(500, 5)
    probs = np.stack([np.clip(0.2 + 0.6 * Y + 0.05 * rng.standard_normal(Y.shape), 0.01, 0.99) for _ in range(2)])
    folds = simple_folds(500, 3, 0)
    res = one_pass_stack(list(probs), Y, folds, [p[:9] for p in probs], dynamic=True, **FAST)
    assert res.fallback == "blend"
    assert (res.method == "blend").all() and (res.fold_gain <= 0).all()
    blend, blend_test = mean_blend(list(probs)), mean_blend([p[:9] for p in probs])
    for k in np.unique(folds):
        rows = folds == k
        assert all(_same_order(res.oof[rows, c], blend[rows, c]) for c in range(Y.shape[1]))
    assert all(_same_order(res.test[:, c], blend_test[:, c]) for c in range(Y.shape[1]))
    from hpa_ens.thresholds import exact_macro_f1

    assert exact_macro_f1(Y, res.oof) == pytest.approx(1.0)
    assert res.oof_macro["stack"] <= res.oof_macro["mean blend"] == pytest.approx(1.0)
    plain = one_pass_stack(list(probs), Y, folds, [p[:9] for p in probs], dynamic=False, **FAST)
    assert plain.fallback is None and (plain.method == "lgbm").any()


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


# ------------------------------------------------------------------ the nested rules (dynamic by default)
def test_choice_gain_matches_a_brute_force_oracle_and_can_lose():
    """choice_gain against a hand-written loop over sklearn's f1_score at every cut; and the reason it is
    cross-fitted: scored on the rows that made it, the per-class choice never loses to the blend."""
    from sklearn.metrics import f1_score

    from hpa_ens.ensemble import choice_gain, inner_parts

    def best_f1(y, p):  # F1 at the best cut "p > t" over every distinct value (and "never")
        cuts = np.r_[np.unique(p), 1.0]
        return max(f1_score(y, p > t, zero_division=0.0) for t in cuts)

    rng = np.random.default_rng(7)
    n, k = 120, 5
    y = (rng.random((n, k)) < 0.3).astype(int)
    blend = np.clip(0.3 * y + 0.7 * rng.random((n, k)), 0, 1)
    stack = np.clip(0.3 * y + 0.7 * rng.random((n, k)), 0, 1)  # as good as the blend: choosing is noise
    parts = inner_parts(n, fold=0, seed=0)
    assert sorted(np.concatenate(parts).tolist()) == list(range(n)) and len(parts) == 5
    expected = []
    for i, scored in enumerate(parts):
        made = np.sort(np.concatenate([q for j, q in enumerate(parts) if j != i]))
        gain = 0.0
        for c in range(k):
            if best_f1(y[made, c], stack[made, c]) > best_f1(y[made, c], blend[made, c]):
                gain += best_f1(y[scored, c], stack[scored, c]) - best_f1(y[scored, c], blend[scored, c])
        expected.append(gain / (k + 3))
    got = choice_gain(y, stack, blend, parts, n_classes=k + 3)
    assert got == pytest.approx(np.mean(expected), abs=1e-12)
    # In-sample, the choice takes the larger F1 per class: it cannot lose. Cross-fitted, it can.
    in_sample = np.mean([max(best_f1(y[:, c], stack[:, c]), best_f1(y[:, c], blend[:, c]))
                         - best_f1(y[:, c], blend[:, c]) for c in range(k)])
    assert in_sample >= 0 and got < in_sample
    assert np.isnan(choice_gain(y[:1], stack[:1], blend[:1], inner_parts(1, 0, 0)))


def _planted(n=900, seed=3):
    """Class 1 is signalled by model 0's class-0 column (only a stacker finds it); both models separate
    class 2 perfectly (the stack cannot beat their mean there); the other classes are noise."""
    rng = np.random.default_rng(seed)
    Y = _labels(n, seed)
    probs = rng.random((2, n, 28)) * 0.5
    probs[0, :, 0] = 0.3 + 0.6 * Y[:, 1] * rng.random(n) + 0.1 * rng.random(n)
    probs[:, :, 2] = 0.2 + 0.6 * Y[:, 2] + 0.01 * rng.random((2, n))
    return Y, probs, simple_folds(n, 3, seed=0)


def test_nested_rules_keep_the_stack_where_it_must_win_and_the_blend_where_it_must_lose():
    Y, probs, folds = _planted()
    res = one_pass_stack(list(probs), Y, folds, [p[:10] for p in probs], n_rounds=40, early_stopping_rounds=10)
    assert res.fallback is None and (res.fold_gain > 0).all()  # every fold keeps its stack: class 1 pays
    assert (res.method[:, 1] == "lgbm").all() and (res.inner_gain[:, 1] > 0.2).all()
    assert (res.method[:, 2] == "mean").all() and (res.inner_gain[:, 2] <= 0).all()  # the blend is perfect there
    report = stack_summary(Y, res, list(probs), ["a", "b"])
    assert report["classes"][1]["uses"] == "stack" and "beat the blend" in report["classes"][1]["why"]
    assert report["classes"][2]["uses"] == "blend" and "did not beat" in report["classes"][2]["why"]
    assert [f["kept"] for f in report["folds"]] == ["stack"] * 3


def test_a_fold_that_loses_scores_every_class_with_the_calibrated_blend_and_predict_agrees(small):
    """Fold-level fallback: a fold whose cross-fitted gain is <= 0 keeps the blend in every class (its
    logistic rare-class fallbacks too); the other folds keep their stacks. predict() repeats fit's test
    predictions, the lost fold's calibrated blends included."""
    Y, probs, folds = small
    sets, tests = list(probs), [p[:40] for p in probs]
    params = dict(rare="logistic", **FAST)
    light = one_pass_stack(sets, Y, folds, tests, **params)
    lost = light.fold_gain <= 0
    assert 0 < lost.sum() < len(lost) and light.fallback is None  # this case has both kinds of fold
    for k in range(len(lost)):
        assert (light.method[k] == "blend").all() == lost[k]
        if not lost[k]:
            assert {"lgbm", "logistic"} <= set(light.method[k])
    blend = mean_blend(sets)
    rows = folds == np.unique(folds)[np.argmax(lost)]
    assert all(_same_order(light.oof[rows, c], blend[rows, c]) for c in range(Y.shape[1]))
    kept = Stacker(**params).fit(sets, Y, folds)
    np.testing.assert_array_equal(kept.oof_, light.oof)
    np.testing.assert_array_equal(kept.predict(tests), light.test)


@pytest.mark.parametrize("case", ["simulated", "planted", "blend wins"])
def test_results_are_the_same_bytes_for_any_n_jobs(small, case):
    """n_jobs 1, 2 and 3 (and -1) give identical OOF and test arrays and identical choices: every (fold,
    class) model is single-threaded and a pure function of its inputs, the Platt and logistic fits run
    under one BLAS thread, and results are gathered in (fold, class) order."""
    if case == "simulated":
        Y, probs, folds = small
        params = dict(rare="logistic", **FAST)
    elif case == "planted":
        Y, probs, folds = _planted(600)
        params = dict(n_rounds=30, early_stopping_rounds=5, min_positives=10)
    else:
        rng = np.random.default_rng(5)
        Y = _labels(400, 5)
        probs = np.stack([np.clip(0.2 + 0.6 * Y + 0.05 * rng.standard_normal(Y.shape), 0.01, 0.99) for _ in range(2)])
        folds = simple_folds(400, 3, 0)
        params = FAST
    runs = []
    for n_jobs in (1, 2, 3, -1):
        calls = []
        res = Stacker(keep_models=False, n_jobs=n_jobs, **params).fit(
            list(probs), Y, folds, X_test=[p[:30] for p in probs], progress=lambda: calls.append(1)).result_
        assert len(calls) == 3 * Y.shape[1]
        runs.append(res)
    for res in runs[1:]:
        np.testing.assert_array_equal(res.oof, runs[0].oof)
        np.testing.assert_array_equal(res.test, runs[0].test)
        assert (res.method == runs[0].method).all() and (res.n_trees == runs[0].n_trees).all()
        np.testing.assert_array_equal(res.inner_gain, runs[0].inner_gain)
        np.testing.assert_array_equal(res.fold_gain, runs[0].fold_gain)
        assert res.fallback == runs[0].fallback and res.params == runs[0].params


def test_cli_same_bytes_for_any_n_jobs_and_the_per_class_record(tmp_path):
    paths = write_simulated_sets(tmp_path / "data", _labels(400, 1), n_models=3, seed=0, n_folds=3)
    argv = ["--labels", str(paths["labels"]), "--folds", str(paths["folds"]), "--pred", *map(str, paths["models"]),
            "--n-rounds", "15", "--early-stopping", "5", "--min-positives", "8"]
    for n_jobs in ("1", "2", "3"):
        assert main(argv + ["--n-jobs", n_jobs, "--out", str(tmp_path / f"j{n_jobs}")]) == 0
    for name in ("oof.csv", "test.csv", "stack_report.json"):
        assert len({sha256_file(tmp_path / f"j{n}" / name) for n in "123"}) == 1, name
    report = json.loads((tmp_path / "j1" / "stack_report.json").read_text())
    assert len(report["classes"]) == 28 and len(report["folds"]) == 3
    result_methods = np.array([c["methods"] for c in report["classes"]]).T  # fold x class
    assert result_methods.shape == (3, 28)
    for c, record in enumerate(report["classes"]):
        assert set(record) == {"class", "uses", "methods", "inner_gain", "mean_inner_gain", "why"}
        assert record["class"] == c and record["why"]
        # "lgbm" exactly where the inner-split gain was positive and the fold kept its stack.
        for k, (method, gain) in enumerate(zip(record["methods"], record["inner_gain"])):
            if method == "lgbm":
                assert gain > 0 and report["folds"][k]["kept"] == "stack"
            if method == "mean" and gain is not None:
                assert gain <= 0
    for fold in report["folds"]:
        assert fold["kept"] in ("stack", "blend", "no LightGBM model")
        assert (fold["kept"] == "blend") == (fold["set_gain"] is not None and fold["set_gain"] <= 0)
    meta = json.loads((tmp_path / "j1" / "meta.json").read_text())
    assert meta["params"]["dynamic"] is True and meta["class_uses"] == [c["uses"] for c in report["classes"]]
    assert meta["params"]["lightgbm"]["num_threads"] == 1


def test_no_dynamic_restores_the_old_per_class_behaviour(tmp_path):
    """--no-dynamic (alias --always-stack): every class with enough positives is stacked in every fold,
    the same bytes as Stacker(dynamic=False); the default differs from it where the blend was kept."""
    import pandas as pd

    paths = write_simulated_sets(tmp_path / "data", _labels(400, 1), n_models=3, seed=0, n_folds=3)
    argv = ["--labels", str(paths["labels"]), "--folds", str(paths["folds"]), "--pred", *map(str, paths["models"]),
            "--n-rounds", "15", "--early-stopping", "5", "--min-positives", "8", "--n-jobs", "2"]
    assert main(argv + ["--no-dynamic", "--out", str(tmp_path / "plain")]) == 0
    assert main(argv + ["--always-stack", "--out", str(tmp_path / "alias")]) == 0
    assert main(argv + ["--out", str(tmp_path / "default")]) == 0
    assert main(argv + ["--dynamic", "--out", str(tmp_path / "flag")]) == 0  # still accepted: the default
    for name in ("oof.csv", "test.csv"):
        assert sha256_file(tmp_path / "plain" / name) == sha256_file(tmp_path / "alias" / name)
        assert sha256_file(tmp_path / "default" / name) == sha256_file(tmp_path / "flag" / name)
    report = json.loads((tmp_path / "plain" / "stack_report.json").read_text())
    assert json.loads((tmp_path / "plain" / "meta.json").read_text())["params"]["dynamic"] is False
    for record in report["classes"]:
        assert all(m in ("lgbm", "mean") for m in record["methods"])  # "mean" only as the rare fallback
        assert all(g is None for m, g in zip(record["methods"], record["inner_gain"]) if m == "mean")
    assert report["set_fallback"] is None and all(f["kept"] == "stack" for f in report["folds"])
    # The same stack as the library's Stacker(dynamic=False) on the same inputs.
    from hpa_ens.contract.inputs import read_stage_inputs

    inputs = read_stage_inputs(paths["models"], paths["labels"], paths["folds"])
    lib = Stacker(dynamic=False, n_rounds=15, early_stopping_rounds=5, min_positives=8, keep_models=False).fit(
        inputs.oof_list, inputs.Y, inputs.folds, X_test=inputs.test_list).result_
    np.testing.assert_allclose(read_prediction_set(tmp_path / "plain").oof.to_numpy(), lib.oof, rtol=0, atol=1e-12)
    assert (lib.method == "lgbm").sum() > (np.array([c["methods"] for c in json.loads(
        (tmp_path / "default" / "stack_report.json").read_text())["classes"]]) == "lgbm").sum()


def test_parallel_map_keeps_input_order_and_reports_progress_in_the_calling_thread():
    """What the stacker's workers rest on (hpa_ens.utils.parallel_map): results in input order whatever the
    finishing order, and progress() called once per result, in the thread that called parallel_map."""
    import threading
    import time

    from hpa_ens.utils import parallel_map

    caller, seen = threading.get_ident(), []

    def slow_first(i):
        time.sleep(0.05 if i == 0 else 0.0)  # the first item finishes last
        return i * i

    for n_jobs in (1, 2, 3):
        seen.clear()
        assert parallel_map(slow_first, range(6), n_jobs, progress=lambda: seen.append(threading.get_ident())) \
            == [i * i for i in range(6)]
        assert seen == [caller] * 6
