"""Blending prediction sets and voting submissions (hpa_ens.ensemble, hpa-ens blend and vote)."""

import json

import numpy as np
import pytest
from scipy.stats import rankdata

from hpa_ens.thresholds import exact_macro_f1
from hpa_ens.commands._cli import run
from hpa_ens.commands.blend import main
from hpa_ens.ensemble import Blender, blend, caruana_weights, fit_weights, mean_blend, rank_blend, vote
from hpa_ens.ensemble._blend import _logloss
from hpa_ens.contract import read_prediction_set
from hpa_ens.labels import read_sample_submission, read_submission
from hpa_ens.testing.simulate import simple_folds, simulate_base_models, write_simulated_sets


def _labels(n, seed=0):
    rng = np.random.default_rng(seed)
    Y = (rng.random((n, 28)) < np.r_[0.4, 0.2, np.full(26, 0.06)]).astype(np.uint8)
    Y[Y.sum(1) == 0, 0] = 1
    return Y


@pytest.fixture(scope="module")
def sim():
    Y = _labels(600)
    return Y, simulate_base_models(Y, n_models=3, seed=0)


def test_mean_and_rank_blend_match_oracles(sim):
    _, probs = sim
    np.testing.assert_allclose(mean_blend(list(probs)), probs.mean(0))
    ranks = rank_blend(list(probs))
    oracle = np.mean([[(rankdata(p[:, c]) - 1) / (len(p) - 1) for c in range(28)] for p in probs], axis=0).T
    np.testing.assert_allclose(ranks, oracle)
    assert ranks.min() >= 0 and ranks.max() <= 1


def test_fit_weights_favours_the_informative_model(sim):
    Y, probs = sim
    rng = np.random.default_rng(0)
    noise = rng.random(Y.shape)
    oof = [probs[0], noise]
    for objective in ("logloss", "f1"):
        w = fit_weights(Y, oof, objective)
        assert w.shape == (2,) and (w >= 0).all() and w.sum() == pytest.approx(1)
        assert w[0] > 0.7
    w = fit_weights(Y, list(probs), "logloss")
    assert _logloss(Y, np.tensordot(w, probs, 1)) <= _logloss(Y, probs.mean(0)) + 1e-12


def test_caruana_selection(sim):
    Y, probs = sim
    oof = [probs[0], probs[1], probs[2], np.random.default_rng(1).random(Y.shape)]
    w = caruana_weights(Y, oof, n_iter=9)
    assert w.sum() == pytest.approx(1) and np.allclose(w * 10, np.round(w * 10))
    assert w[3] == 0  # the noise model is never picked
    singles = [exact_macro_f1(Y, p) for p in oof]
    one_step = caruana_weights(Y, oof, n_iter=1)
    # Adding the best single again is always an option, so one step never scores below it.
    assert exact_macro_f1(Y, np.tensordot(one_step, np.stack(oof), 1)) >= max(singles)


def test_cross_fitted_blend_differs_only_in_oof(sim):
    Y, probs = sim
    folds = simple_folds(len(Y), 3, seed=0)
    oof_a, test_a, w_a = blend(list(probs), list(probs[:, :30]), "weighted", Y)
    oof_b, test_b, w_b = blend(list(probs), list(probs[:, :30]), "weighted", Y, folds=folds)
    np.testing.assert_allclose(test_a, test_b)
    np.testing.assert_allclose(w_a, w_b)
    assert not np.allclose(oof_a, oof_b)
    with pytest.raises(ValueError, match="method"):
        blend(list(probs), list(probs), "median")


def test_vote_matches_brute_force():
    rng = np.random.default_rng(0)
    subs = [(rng.random((200, 28)) < 0.08).astype(np.uint8) for _ in range(4)]
    weights = [3, 1, 1, 1]
    got = vote(subs, weights, 0.5, min_labels=0)
    share = sum(w * s for w, s in zip(weights, subs)) / sum(weights)
    np.testing.assert_array_equal(got, share > 0.5)
    filled = vote(subs, weights, 0.5, min_labels=1)
    empty_before = ~got.any(1)
    has_votes = share.max(1) > 0
    assert filled[empty_before & has_votes].sum(1).tolist() == [1] * int((empty_before & has_votes).sum())
    assert (filled[~empty_before] == got[~empty_before]).all()
    top = share[empty_before & has_votes].argmax(1)
    assert filled[empty_before & has_votes][np.arange(len(top)), top].all()


def test_vote_real_submissions(shared_hpa, tmp_path):
    files = ["vpp_team5_final_submission_multhr.csv", "vpp_team5_summary_final_multhr_lk.csv",
             "ntu_mira_team16_LB637.csv"]
    paths = [shared_hpa / "submissions" / f for f in files]
    out = tmp_path / "voted.csv"
    assert main(["--submissions", *map(str, paths), "--sample-submission", str(shared_hpa / "sample_submission.csv"),
                 "--out", str(out)]) == 0
    ids = read_sample_submission(shared_hpa / "sample_submission.csv")
    voted = read_submission(out)
    assert voted.index.tolist() == ids.tolist()
    mats = np.stack([read_submission(p).loc[ids].to_numpy() for p in paths])
    majority = mats.sum(0) >= 2
    got = voted.to_numpy().astype(bool)
    np.testing.assert_array_equal(got[majority.any(1)], majority[majority.any(1)])
    assert got.any(1).all()  # no image left empty when any submission predicted something
    # A heavy weight on one file reproduces it.
    out2 = tmp_path / "w.csv"
    assert main(["--submissions", *map(str, paths), "--weights", "5", "1", "1", "--out", str(out2)]) == 0
    first = read_submission(paths[0])
    np.testing.assert_array_equal(read_submission(out2).loc[first.index].to_numpy(), first.to_numpy())


def test_vote_command_is_blend_submissions(tmp_path, capsys):
    """``hpa-ens vote`` and ``hpa-ens blend --submissions`` are one implementation: same file, same table."""
    from hpa_ens.commands import COMMANDS, main as hpa_ens

    assert COMMANDS["vote"][0] == "hpa_ens.commands.vote"
    rng = np.random.default_rng(4)
    ids = [f"i{k}" for k in range(40)]
    paths = []
    for j in range(3):
        path = tmp_path / f"s{j}.csv"
        rows = [" ".join(map(str, np.flatnonzero(rng.random(28) < 0.1))) for _ in ids]
        path.write_text("Id,Predicted\n" + "".join(f"{i},{r}\n" for i, r in zip(ids, rows)))
        paths.append(str(path))
    flags = ["--submissions", *paths, "--weights", "2", "1", "1", "--vote-threshold", "0.4", "--min-labels", "2"]
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    assert hpa_ens(["vote", *flags, "--out", str(tmp_path / "a" / "voted.csv")]) == 0
    vote_err = capsys.readouterr().err
    assert hpa_ens(["blend", *flags, "--out", str(tmp_path / "b" / "voted.csv")]) == 0
    blend_err = capsys.readouterr().err
    assert (tmp_path / "a" / "voted.csv").read_bytes() == (tmp_path / "b" / "voted.csv").read_bytes()
    assert vote_err.replace(f"{tmp_path}/a", "X") == blend_err.replace(f"{tmp_path}/b", "X")
    assert "Submission vote" in vote_err
    expected = vote([read_submission(p).loc[ids].to_numpy() for p in paths], [2, 1, 1], 0.4, 2)
    np.testing.assert_array_equal(read_submission(tmp_path / "a" / "voted.csv").loc[ids].to_numpy(), expected)
    # vote needs its submissions; the one-line errors name the command as typed.
    with pytest.raises(SystemExit) as exit_:
        hpa_ens(["vote", "--out", str(tmp_path / "x.csv")])
    assert exit_.value.code == 2 and "required: --submissions" in capsys.readouterr().err
    assert hpa_ens(["vote", "--submissions", *paths, "--weights", "1", "--out", str(tmp_path / "x.csv")]) == 2
    assert "The '--weights' parameter of hpa-ens vote" in capsys.readouterr().err
    assert hpa_ens(["blend", "--submissions", *paths, "--weights", "1", "--out", str(tmp_path / "x.csv")]) == 2
    assert "The '--weights' parameter of hpa-ens blend" in capsys.readouterr().err
    assert not (tmp_path / "x.csv").exists()


def test_vote_refuses_mismatched_ids(tmp_path, capsys):
    a, b = tmp_path / "a.csv", tmp_path / "b.csv"
    a.write_text("Id,Predicted\nx,0\ny,1 2\n")
    b.write_text("Id,Predicted\nx,0\nz,1\n")
    assert run(main, ["--submissions", str(a), str(b), "--out", str(tmp_path / "o.csv")]) == 2
    err = capsys.readouterr().err
    assert "b.csv" in err and "missing" in err
    assert run(main, ["--submissions", str(a), str(a), "--weights", "1", "--out", str(tmp_path / "o.csv")]) == 2


@pytest.mark.parametrize("method", ["mean", "rank", "weighted", "caruana"])
def test_cli_blend_writes_prediction_set(tmp_path, method):
    paths = write_simulated_sets(tmp_path / "data", _labels(300, 1), n_models=3, seed=0, n_folds=3)
    out = tmp_path / method
    argv = ["--labels", str(paths["labels"]), "--pred", *map(str, paths["models"]), "--method", method,
            "--out", str(out), "--folds", str(paths["folds"]), "--n-iter", "5"]
    assert main(argv) == 0
    ps = read_prediction_set(out)
    meta = json.loads((out / "meta.json").read_text())
    assert ps.oof.shape == (len(paths["train_idx"]), 28) and ps.test.shape == (len(paths["test_idx"]), 28)
    if method == "rank":
        assert meta["weights"] is None
    else:
        assert set(meta["weights"]) == {"model_0", "model_1", "model_2"}
        assert sum(meta["weights"].values()) == pytest.approx(1)
    assert meta["params"]["method"] == method and "blend" in meta["oof_macro_f1_exact_thresholds"]


@pytest.mark.parametrize("method", ["mean", "rank", "weighted", "caruana"])
def test_blender_api_matches_blend(sim, method):
    import pandas as pd

    Y, probs = sim
    folds = simple_folds(len(Y), 3, seed=0)
    oof, test, weights = blend(list(probs), list(probs[:, :30]), method, Y, None, 5, folds)
    blender = Blender(method, n_iter=5).fit(list(probs), Y, folds)
    np.testing.assert_allclose(blender.oof_, oof)
    np.testing.assert_allclose(blender.predict(list(probs[:, :30])), test)
    # Id-indexed frames in another row order give the same test blend (rank blends rank within the rows).
    ids = [f"t{i}" for i in range(30)]
    order = np.arange(30)[::-1]
    frames = [pd.DataFrame(p[:30][order], index=[ids[i] for i in order]) for p in probs]
    frames[0] = frames[0].loc[ids]
    np.testing.assert_allclose(blender.predict(frames), test)
    if method in ("weighted", "caruana"):
        with pytest.raises(ValueError, match="'X'|'y'"):
            Blender(method).fit(None)
        with pytest.raises(ValueError, match="'y'"):
            Blender(method).fit(list(probs))
    else:
        np.testing.assert_allclose(Blender(method).fit(None).predict(list(probs[:, :30])), test)


def test_cli_test_only_sets_mean_accepted_tuned_refused(tmp_path, capsys):
    import shutil

    paths = write_simulated_sets(tmp_path / "data", _labels(200, 3), n_models=2, seed=0, n_folds=2)
    a, b = map(str, paths["models"])
    only = tmp_path / "zhu_test_only"
    _test_only_copy(b, only)
    out = tmp_path / "mean"
    assert main(["--labels", str(paths["labels"]), "--pred", a, str(only), "--out", str(out)]) == 0
    assert not (out / "oof.csv").exists()
    test = pd_read(out / "test.csv")
    from hpa_ens.contract import read_probs

    expected = (read_probs(f"{a}/test.csv").to_numpy() + read_probs(only / "test.csv").to_numpy()) / 2
    np.testing.assert_allclose(test, expected)
    assert json.loads((out / "meta.json").read_text())["params"]["test_only"] is True
    for method in ("caruana", "weighted"):
        assert run(main, ["--labels", str(paths["labels"]), "--pred", a, str(only), "--method", method,
                          "--folds", str(paths["folds"]), "--out", str(tmp_path / method)]) == 2
        err = capsys.readouterr().err
        assert "zhu_test_only" in err and "needs OOF rows" in err and not (tmp_path / method).exists()
    (only / "test.csv").write_text((only / "test.csv").read_text().replace("0.", "0.1", 1))
    assert run(main, ["--pred", a, str(only), "--out", str(tmp_path / "x")]) == 2
    assert "sha256" in capsys.readouterr().err


def pd_read(path):
    import pandas as pd

    return pd.read_csv(path, index_col="Id").to_numpy()


def _test_only_copy(src, dst):
    """A sealed test-only prediction set holding ``src``'s test rows (no oof.csv)."""
    from hpa_ens.contract import build_meta, read_prediction_set, write_prediction_set

    ps = read_prediction_set(src)
    write_prediction_set(dst, None, ps.test, build_meta("test", [], argv=[], name=dst.name))


@pytest.mark.parametrize("method", ["weighted", "caruana"])
def test_cli_tuned_blend_without_folds_is_refused_saying_why(tmp_path, capsys, method):
    """Issue 27: weights fitted on every OOF row and written as those rows' blend flatter the OOF score."""
    paths = write_simulated_sets(tmp_path / "data", _labels(150, 4), n_models=2, seed=0, n_folds=2)
    out = tmp_path / method
    assert run(main, ["--labels", str(paths["labels"]), "--pred", *map(str, paths["models"]), "--method", method,
                      "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "'--folds'" in err and "flatter" in err and "Got none instead" in err
    assert not out.exists()


def test_cli_without_labels_says_it_writes_a_test_only_set_or_refuses(tmp_path, capsys):
    paths = write_simulated_sets(tmp_path / "data", _labels(150, 5), n_models=2, seed=0, n_folds=2)
    sets = list(map(str, paths["models"]))
    out = tmp_path / "mean"
    assert run(main, ["--pred", *sets, "--out", str(out)]) == 0
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if "warning:" in line]
    assert len(lines) == 1 and "test-only set (no oof.csv)" in lines[0] and "no --labels was given" in lines[0]
    assert read_prediction_set(out).oof is None
    # --require-oof refuses instead, before anything is written ...
    refused = tmp_path / "refused"
    assert run(main, ["--pred", *sets, "--require-oof", "--out", str(refused)]) == 2
    err = capsys.readouterr().err.strip()
    assert "'--labels'" in err and "--require-oof" in err and len(err.splitlines()) == 1 and not refused.exists()
    # ... and refuses a test-only input too; with labels and OOF rows it writes them, silently.
    only = tmp_path / "only"
    _test_only_copy(sets[1], only)
    assert run(main, ["--labels", str(paths["labels"]), "--pred", sets[0], str(only), "--require-oof",
                      "--out", str(refused)]) == 2
    err = capsys.readouterr().err
    assert "only" in err and "test-only" in err and "drop --require-oof" in err and not refused.exists()
    assert run(main, ["--labels", str(paths["labels"]), "--pred", *sets, "--require-oof", "--out", str(out)]) == 0
    assert "warning" not in capsys.readouterr().err and read_prediction_set(out).oof is not None


def test_cli_models_still_names_prediction_sets_with_a_deprecation_warning(tmp_path, capsys):
    from hpa_ens.commands.blend import build_parser

    assert "--models" not in build_parser().format_help()
    paths = write_simulated_sets(tmp_path / "data", _labels(150, 6), n_models=2, seed=0, n_folds=2)
    sets = list(map(str, paths["models"]))
    assert run(main, ["--labels", str(paths["labels"]), "--models", *sets, "--out", str(tmp_path / "old")]) == 0
    err = capsys.readouterr().err
    assert "--models is deprecated in hpa-ens blend: use --pred" in err
    assert run(main, ["--labels", str(paths["labels"]), "--pred", *sets, "--out", str(tmp_path / "new")]) == 0
    assert "deprecated" not in capsys.readouterr().err
    for name in ("oof.csv", "test.csv"):
        assert (tmp_path / "old" / name).read_bytes() == (tmp_path / "new" / name).read_bytes()
