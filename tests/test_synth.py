"""Tests of the synthetic HPA-like data set generator (issue 3)."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from hpa_ens import synth
from hpa_ens.commands import synth as synth_command
from hpa_ens.commands._cli import run
from hpa_ens.synth.draw import PATTERNS, Scene, render, transform_copy
from hpa_ens.classes import CHANNELS, N_CLASSES
from hpa_ens.contract import read_target_distribution
from hpa_ens.labels import read_labels, read_sample_submission

SIZE = 32
ID_PATTERN = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-11e8-b2b[0-9a-f]-ac1f6b6435d0$")


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("synth") / "data"
    # enough test images that the default rates plant train-test and test-test copies and a leak
    synth.generate(out, n_train=40, n_test=30, size=SIZE, seed=7, n_jobs=1)
    return out


def load(folder: Path, image_id: str) -> np.ndarray:
    return np.stack([np.asarray(Image.open(folder / f"{image_id}_{c}.png")) for c in CHANNELS])


def hashes(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file() and p.name != synth.MARKER}


def test_layout_and_files_follow_the_contract(dataset):
    train = read_labels(dataset / "train.csv")
    test_ids = read_sample_submission(dataset / "sample_submission.csv")
    truth = read_labels(dataset / "truth" / "test_labels.csv")
    assert len(train) == 40 and len(test_ids) == 30
    assert list(truth.index) == list(test_ids)
    assert not set(train.index) & set(test_ids)
    assert all(ID_PATTERN.match(i) for i in [*train.index, *test_ids])
    assert list(train.index) == sorted(train.index)
    sub = pd.read_csv(dataset / "sample_submission.csv", dtype=str)
    assert (sub["Predicted"] == "0").all()
    for split, ids in (("train", train.index), ("test", test_ids)):
        expected = {f"{i}_{c}.png" for i in ids for c in CHANNELS}
        assert {p.name for p in (dataset / split).iterdir()} == expected
        image = Image.open(dataset / split / f"{ids[0]}_green.png")
        assert image.mode == "L" and image.size == (SIZE, SIZE)
    # every image has 1..5 labels
    for frame in (train, truth):
        assert frame.sum(axis=1).between(1, 5).all()
    # no staging folder left behind
    assert sorted(p.name for p in dataset.iterdir()) == sorted(
        ["train", "test", "truth", "train.csv", "sample_submission.csv", "leak.csv", "lb_probe.csv", synth.MARKER])


def test_the_leaderboard_probe_is_a_random_30_percent_of_the_test_rows(dataset):
    """lb_probe.csv: the shares of probe_rows(n_test) test rows (a sampling error the rules are told about), read
    by the thresholds' target reader as it is; a class the probe missed at half a row."""
    from hpa_ens.contract import read_target_distribution

    truth = read_labels(dataset / "truth" / "test_labels.csv").to_numpy()
    n = synth.probe_rows(len(truth))
    assert n == 9 == round(synth.PROBE_FRACTION * 30)
    shares = read_target_distribution(dataset / "lb_probe.csv")
    np.testing.assert_array_equal(shares, synth.leaderboard_probe(truth, seed=7))
    counts = np.where(shares == 0.5 / n, 0, shares * n)
    np.testing.assert_allclose(counts, np.round(counts), atol=1e-9)  # whole rows of n
    counts = np.round(counts).astype(int)
    assert (counts <= truth.sum(axis=0)).all() and counts.sum() >= n  # every probed row has a label
    # Some set of n test rows has exactly these counts: the probe is rows of this test set.
    rng = np.random.default_rng(np.random.SeedSequence([7, 5]))
    rows = np.sort(rng.choice(len(truth), size=n, replace=False))
    np.testing.assert_array_equal(truth[rows].sum(axis=0), counts)
    assert not np.allclose(shares, truth.mean(axis=0))  # a noisy estimate, not the test shares themselves
    assert synth.leaderboard_probe(truth, seed=8).tolist() != shares.tolist()


def test_leak_labels_are_the_truth(dataset):
    truth = read_labels(dataset / "truth" / "test_labels.csv")
    leak = read_labels(dataset / "leak.csv")
    assert 1 <= len(leak) <= 0.1 * len(truth)
    assert set(leak.index) <= set(truth.index)
    pd.testing.assert_frame_equal(leak, truth.loc[leak.index])


def test_planted_duplicates_match_their_source(dataset):
    train = read_labels(dataset / "train.csv")
    truth = read_labels(dataset / "truth" / "test_labels.csv")
    dups = pd.read_csv(dataset / "truth" / "duplicates.csv", dtype=str)
    assert list(dups.columns) == ["Id_a", "Id_b", "kind", "transform"]
    assert set(dups["kind"]) == {"train-test", "test-test"}
    assert dups["Id_b"].is_unique
    rng = np.random.default_rng(0)
    for row in dups.itertuples():
        source_dir = dataset / ("train" if row.kind == "train-test" else "test")
        labels_a = (train if row.kind == "train-test" else truth).loc[row.Id_a]
        assert row.Id_a in (train.index if row.kind == "train-test" else truth.index)
        assert (labels_a.to_numpy() == truth.loc[row.Id_b].to_numpy()).all()
        a = load(source_dir, row.Id_a).astype(np.float64)
        b = load(dataset / "test", row.Id_b).astype(np.float64)
        fields = dict(part.split("=") for part in row.transform.split(";"))
        # undo in reverse order: the copy was flipped, then shifted
        dy, dx = (int(v) for v in fields["shift"].split(","))
        b = np.roll(b, (-dy, -dx), axis=(1, 2))
        if fields["flip"] == "h":
            b = b[:, :, ::-1]
        elif fields["flip"] == "v":
            b = b[:, ::-1, :]
        inner = (slice(None), slice(3, -3), slice(3, -3))
        close = np.corrcoef(a[inner].ravel(), b[inner].ravel())[0, 1]
        other_id = truth.index[int(rng.integers(len(truth)))]
        other = np.corrcoef(a[inner].ravel(), load(dataset / "test", other_id)[inner].ravel().astype(float))[0, 1]
        assert close > 0.9, row
        assert close > other + 0.1


def test_same_seed_same_bytes_whatever_n_jobs_and_other_seed_differs(tmp_path):
    synth.generate(tmp_path / "a", 12, 8, size=SIZE, seed=3, n_jobs=1)
    synth.generate(tmp_path / "b", 12, 8, size=SIZE, seed=3, n_jobs=2)
    synth.generate(tmp_path / "c", 12, 8, size=SIZE, seed=4, n_jobs=1)
    a, b, c = hashes(tmp_path / "a"), hashes(tmp_path / "b"), hashes(tmp_path / "c")
    assert a == b
    assert (tmp_path / "a" / "train.csv").read_bytes() != (tmp_path / "c" / "train.csv").read_bytes()
    assert not set(a.values()) & set(c.values()) - {hashlib.sha256(b"").hexdigest()}


def test_refuses_to_overwrite_without_flag(tmp_path):
    synth.generate(tmp_path / "d", 4, 4, size=16, seed=0, n_jobs=1)
    with pytest.raises(ValueError, match="overwrite"):
        synth.generate(tmp_path / "d", 4, 4, size=16, seed=0, n_jobs=1)
    synth.generate(tmp_path / "d", 5, 4, size=16, seed=0, n_jobs=1, overwrite=True)
    assert len(read_labels(tmp_path / "d" / "train.csv")) == 5
    assert len(list((tmp_path / "d" / "train").iterdir())) == 5 * 4


@pytest.mark.parametrize("bad", [{"n_train": 0}, {"size": 8}, {"seed": -1}, {"n_jobs": 0}])
def test_bad_parameters_are_refused(tmp_path, bad):
    kwargs = {"n_train": 4, "n_test": 4, "size": 16, "seed": 0, "n_jobs": 1} | bad
    with pytest.raises(ValueError, match=f"'{next(iter(bad))}' parameter"):
        synth.generate(tmp_path / "e", **kwargs)


def test_label_table_reproduces_the_real_train_counts(shared_hpa):
    sets, counts = synth.load_label_sets()
    real = read_labels(shared_hpa / "train.csv").to_numpy()
    assert counts.sum() == len(real)
    np.testing.assert_array_equal(counts @ sets.astype(np.int64), real.sum(axis=0))
    assert len({tuple(r) for r in sets}) == len(sets)


def test_drawn_label_statistics_follow_the_real_ones(shared_hpa):
    plan = synth.make_plan(n_train=30000, n_test=10, seed=1)
    real = read_labels(shared_hpa / "train.csv").to_numpy()
    drawn_share, real_share = plan.y_train.mean(axis=0), real.mean(axis=0)
    # binomial tolerance: 4 standard errors of a share estimated from 30,000 draws, plus a little
    tolerance = 4 * np.sqrt(real_share * (1 - real_share) / 30000) + 5e-4
    assert (np.abs(drawn_share - real_share) <= tolerance).all()
    per_image = plan.y_train.sum(axis=1)
    assert per_image.min() >= 1 and per_image.max() <= 5
    assert abs(per_image.mean() - real.sum(axis=1).mean()) < 0.02
    assert plan.y_train[:, 27].mean() < 0.002  # rare classes stay rare
    # pairwise co-occurrence (nucleoplasm with cytosol is the most common pair)
    co_real = (real[:, 0] & real[:, 25]).mean()
    co_drawn = (plan.y_train[:, 0] & plan.y_train[:, 25]).mean()
    assert abs(co_real - co_drawn) < 0.01


def test_target_distribution_moves_test_shares(shared_hpa):
    target = read_target_distribution(shared_hpa / "lb_label_distribution.csv")
    plan = synth.make_plan(n_train=20000, n_test=20000, seed=2, target_shares=target, dup_rate=0)
    train_share, test_share = plan.y_train.mean(axis=0), plan.y_test.mean(axis=0)
    assert np.abs(test_share - target).sum() < 0.6 * np.abs(train_share - target).sum()
    assert abs(test_share[0] - target[0]) < 0.02  # nucleoplasm 0.36 on the leaderboard vs 0.41 in train


def test_every_class_pattern_draws_something():
    rng = np.random.default_rng(5)
    scene = Scene(rng, 64)
    scene.mitotic = 0
    for k in range(N_CLASSES):
        pattern = PATTERNS[k](scene)
        assert pattern.shape == (64, 64)
        assert np.isfinite(pattern).all()
        assert pattern.max() > 0.2, k


def test_render_is_uint8_and_the_label_changes_the_green_channel():
    labels = np.array([0])
    a = render(np.random.default_rng(1), 48, labels)
    b = render(np.random.default_rng(1), 48, np.array([21]))
    assert a.shape == (4, 48, 48) and a.dtype == np.uint8
    assert not np.array_equal(a[1], b[1])
    # the nucleoplasm image is green where the nucleus (blue) is: positive correlation
    assert np.corrcoef(a[1].ravel(), a[2].ravel())[0, 1] > 0.3


def test_transform_copy_description_is_faithful():
    image = render(np.random.default_rng(2), 40, np.array([25]))
    copy, how = transform_copy(np.random.default_rng(3), image)
    fields = dict(part.split("=") for part in how.split(";"))
    assert fields["flip"] in {"none", "h", "v"} and set(fields) == {"flip", "shift", "gain", "noise"}
    assert copy.shape == image.shape and copy.dtype == np.uint8


def test_cli_writes_data_and_preview(tmp_path):
    out = tmp_path / "cli"
    code = run(synth_command.main, ["--out", str(out), "--n-train", "6", "--n-test", "4", "--size", "24", "--seed", "1",
                            "--n-jobs", "1", "--preview", str(tmp_path / "p.png"), "--preview-kind", "random"])
    assert code == 0
    assert len(read_labels(out / "train.csv")) == 6
    assert Image.open(tmp_path / "p.png").size[0] > 100
    # a second run into the same folder without --overwrite is a one-line error, exit 2
    assert run(synth_command.main, ["--out", str(out), "--n-train", "6", "--n-test", "4", "--size", "24", "--n-jobs", "1"]) == 2


def test_never_generates_into_a_user_folder(tmp_path):
    from hpa_ens.validation import ContractError

    user = tmp_path / "hpa"
    (user / "train").mkdir(parents=True)
    (user / "train.csv").write_text("Id,Target\nmine,0\n")
    (user / "sample_submission.csv").write_text("Id,Predicted\nt,0\n")
    before = sorted(p.relative_to(user).as_posix() for p in user.rglob("*"))
    for overwrite in (False, True):
        with pytest.raises(ContractError, match=r"not empty and not made by hpa_ens.synth"):
            synth.generate(user, n_train=4, n_test=2, size=32, seed=0, n_jobs=1, overwrite=overwrite)
    assert sorted(p.relative_to(user).as_posix() for p in user.rglob("*")) == before
    assert (user / "train.csv").read_text() == "Id,Target\nmine,0\n"
    # The generator's own folder may be regenerated with overwrite.
    synth.generate(tmp_path / "gen", n_train=4, n_test=2, size=32, seed=0, n_jobs=1)
    assert (tmp_path / "gen" / synth.MARKER).is_file()
    synth.generate(tmp_path / "gen", n_train=4, n_test=2, size=32, seed=0, n_jobs=1, overwrite=True)


def test_progress_reports_every_image_and_does_not_change_the_bytes(tmp_path):
    calls = []
    synth.generate(tmp_path / "a", 10, 6, size=16, seed=5, n_jobs=1, progress=lambda *c: calls.append(c))
    synth.generate(tmp_path / "b", 10, 6, size=16, seed=5, n_jobs=2)
    assert calls[0] == (0, 16, "synth images") and calls[-1] == (16, 16, "synth images")
    assert [done for done, _, _ in calls] == sorted(done for done, _, _ in calls)
    for path in sorted((tmp_path / "a").rglob("*.png")):
        assert path.read_bytes() == (tmp_path / "b" / path.relative_to(tmp_path / "a")).read_bytes()


@pytest.mark.parametrize("module", ["hpa_ens.synth", "hpa_ens.synth.generate"])
def test_python_dash_m_forms_run_the_command(tmp_path, module):
    import subprocess
    import sys

    help_text = subprocess.run([sys.executable, "-m", module, "--help"], capture_output=True, text=True)
    assert help_text.returncode == 0 and help_text.stdout.startswith(f"usage: python -m {module} ")
    proc = subprocess.run([sys.executable, "-m", module, "--out", str(tmp_path / "d"), "--n-train", "3", "--n-test",
                           "2", "--size", "16", "--n-jobs", "1"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert len(read_labels(tmp_path / "d" / "train.csv")) == 3
