"""Base models: losses, thresholds, TTA, cache, weights, config, training, resume, collect."""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402

torch = pytest.importorskip("torch", reason="needs the [train] extra (torch)")
pytest.importorskip("timm", reason="needs the [train] extra (timm)")

from base_models import collect as collect_mod  # noqa: E402
from base_models import data as bm_data  # noqa: E402
from base_models import train as train_mod  # noqa: E402
from base_models.commands import collect as collect_cmd  # noqa: E402
from base_models.commands import train as train_cmd  # noqa: E402
from base_models.config import load_config  # noqa: E402
from hpa_ens.thresholds import exact_thresholds  # noqa: E402
from base_models.registry import SAMPLERS  # noqa: E402
from hpa_ens.images import read_image  # noqa: E402
from base_models.losses import LOSSES, build_loss  # noqa: E402
from base_models.models import build_model, load_weights  # noqa: E402
from hpa_ens.commands import _cli as cli  # noqa: E402
from hpa_ens.classes import N_CLASSES  # noqa: E402
from hpa_ens.contract import read_prediction_set  # noqa: E402
from hpa_ens.metrics import macro_f1  # noqa: E402
from hpa_ens.validation import read_csv_checked  # noqa: E402

TINY = "mobilenetv3_small_050"


from tiny_images import make_dataset as _make_dataset  # noqa: E402


def make_dataset(root, n_train=40, n_test=10, size=32, seed=0):
    return _make_dataset(root, n_train, n_test, size, seed)[0]


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory):
    return make_dataset(tmp_path_factory.mktemp("bm_data"))


def tiny_config(**extra):
    cfg = dict(backbone=TINY, name="tiny", image_size=32, batch_size=8, eval_batch_size=16, epochs=2, threads=1,
               tta="flips", augment_crop_scale=0.8)
    cfg.update(extra)
    return load_config(None, cfg)


# ------------------------------------------------------------------------------------------ losses
def test_loss_registry_lists_valid_names_on_typo():
    with pytest.raises(ValueError, match="bce, focal, lovasz, soft_f1, weighted_bce"):
        build_loss("focall")
    with pytest.raises(ValueError, match="focal"):
        build_loss({"focal": 1.0, "sofft_f1": 0.5})


def test_losses_match_closed_forms():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(16, N_CLASSES, generator=g)
    y = (torch.rand(16, N_CLASSES, generator=g) > 0.8).float()
    p = torch.sigmoid(logits).double().numpy()
    t = y.double().numpy()
    bce_np = -(t * np.log(p) + (1 - t) * np.log(1 - p)).mean()
    assert float(build_loss("bce")(logits, y)) == pytest.approx(bce_np, rel=1e-5)
    # focal with gamma=0 is BCE; with gamma=2 it is the (1-p_t)^2-weighted mean
    assert float(build_loss({"focal": {"gamma": 0.0}})(logits, y)) == pytest.approx(bce_np, rel=1e-5)
    p_t = np.where(t == 1, p, 1 - p)
    focal_np = ((1 - p_t) ** 2 * -np.log(p_t)).mean()
    assert float(build_loss("focal")(logits, y)) == pytest.approx(focal_np, rel=1e-5)
    freq = np.linspace(0.01, 0.5, N_CLASSES)
    w = (1 - freq) ** 2
    w = w / w.mean()
    per = -(t * np.log(p) + (1 - t) * np.log(1 - p))
    assert float(build_loss("weighted_bce", class_freq=freq)(logits, y)) == pytest.approx((per * w).mean(), rel=1e-5)
    combo = build_loss({"bce": 1.0, "soft_f1": 0.5})(logits, y)
    assert float(combo) == pytest.approx(float(LOSSES.get("bce")()(logits, y) + 0.5 * LOSSES.get("soft_f1")()(logits, y)),
                                         rel=1e-6)


def test_soft_f1_equals_one_minus_macro_f1_on_hard_predictions():
    rng = np.random.default_rng(1)
    y = (rng.random((30, N_CLASSES)) > 0.7).astype(np.float32)
    y[0] = 1  # every class has a positive
    pred = (rng.random((30, N_CLASSES)) > 0.5)
    logits = torch.as_tensor(np.where(pred, 50.0, -50.0), dtype=torch.float32)
    loss = float(build_loss("soft_f1")(logits, torch.as_tensor(y)))
    assert loss == pytest.approx(1 - macro_f1(y.astype(np.uint8), pred), abs=1e-5)


# -------------------------------------------------------------------------------------- thresholds
def test_exact_thresholds_are_realised_and_beat_every_cut():
    rng = np.random.default_rng(2)
    y = (rng.random((60, N_CLASSES)) > 0.8).astype(np.uint8)
    probs = np.round(rng.random((60, N_CLASSES)) * 0.5 + 0.4 * y, 2)  # rounding creates ties
    thr, f1 = exact_thresholds(y, probs)
    assert f1.mean() == pytest.approx(macro_f1(y, probs > thr))
    for c in range(0, N_CLASSES, 5):  # brute force over every realisable cut
        best = max(macro_f1(y[:, [c]], probs[:, [c]] > t) for t in np.r_[np.unique(probs[:, c]), -1.0])
        assert f1[c] == pytest.approx(best)


# ---------------------------------------------------------------------------------- augmentation
def test_dihedral_gives_eight_distinct_transforms_and_tta_subsets():
    x = torch.arange(2 * 4 * 5 * 5, dtype=torch.float32).reshape(2, 4, 5, 5)
    outs = [bm_data.dihedral(x, k) for k in range(8)]
    assert len({o.numpy().tobytes() for o in outs}) == 8
    assert torch.equal(outs[2], torch.flip(x, dims=(2, 3)))
    assert bm_data.tta_transforms("dihedral") == tuple(range(8))
    assert len(bm_data.tta_transforms("flips")) == 4
    with pytest.raises(ValueError, match="none, flips, dihedral"):
        bm_data.tta_transforms("all")


def test_augment_is_seeded_and_keeps_range():
    x = torch.rand(6, 4, 16, 16)
    a = bm_data.augment(x, torch.Generator().manual_seed(3), True, 0.7, 0.1, 0.1)
    b = bm_data.augment(x, torch.Generator().manual_seed(3), True, 0.7, 0.1, 0.1)
    assert torch.equal(a, b) and a.shape == x.shape
    assert float(a.min()) >= 0 and float(a.max()) <= 1


def test_balanced_sampler_draws_rare_images_more_often():
    Y = np.zeros((100, N_CLASSES), dtype=np.uint8)
    Y[:90, 0] = 1
    Y[90:, 27] = 1
    order = SAMPLERS.get("balanced")(Y, np.random.default_rng(0), power=1.0)
    assert len(order) == 100 and (order >= 90).mean() > 0.3
    shuffle = SAMPLERS.get("shuffle")(Y, np.random.default_rng(0))
    assert sorted(shuffle) == list(range(100))


# ------------------------------------------------------------------------------------------- cache
def test_cache_matches_decode_and_is_reused(tiny_data, tmp_path, monkeypatch):
    ids = pd.read_csv(tiny_data / "train.csv")["Id"].tolist()[:6]
    sources = [(i, tiny_data / "train") for i in ids]
    images = bm_data.build_cache(sources, 16, tmp_path, tag="t")
    assert images.shape == (6, 4, 16, 16) and images.dtype == np.uint8
    np.testing.assert_array_equal(images[3], read_image(tiny_data / "train", ids[3], 16))

    def boom(*a, **k):
        raise AssertionError("decoded again")

    monkeypatch.setattr(bm_data, "read_image", boom)
    np.testing.assert_array_equal(bm_data.build_cache(sources, 16, tmp_path, tag="t"), images)


def test_missing_or_corrupt_channel_stops_before_training(tmp_path):
    root = make_dataset(tmp_path / "d", n_train=6, n_test=2, size=16)
    (root / "train" / "tr002_yellow.png").unlink()
    out = tmp_path / "oof"
    argv = ["--data", str(root), "--folds", str(root / "folds.csv"), "--fold", "0", "--out", str(out),
            "--backbone", TINY, "--image-size", "16", "--epochs", "1", "--threads", "1"]
    with pytest.raises(ValueError, match="tr002_yellow.png"):
        train_cmd.main(argv)
    assert cli.run(train_cmd.main, argv) == 2
    (root / "train" / "tr002_yellow.png").write_bytes(b"not a png")
    with pytest.raises(ValueError, match="tr002_yellow.png: cannot decode"):
        train_cmd.main(argv)
    assert not list(out.rglob("checkpoint.pt"))


# ----------------------------------------------------------------------------------------- weights
def test_local_three_channel_weights_are_adapted_to_four(tmp_path):
    import timm
    from safetensors.torch import save_file

    torch.manual_seed(0)
    rgb = timm.create_model(TINY, pretrained=False, in_chans=3, num_classes=1000)
    state = rgb.state_dict()
    save_file({k: v.contiguous() for k, v in state.items()}, str(tmp_path / "w.safetensors"))
    torch.save(state, tmp_path / "w.pt")
    stem = next(k for k, v in state.items() if v.ndim == 4 and v.shape[1] == 3)
    for name in ("w.safetensors", "w.pt"):
        model = build_model(TINY, dropout=0.1)
        report = load_weights(model, tmp_path / name)
        assert report["adapted"] == [stem]
        assert any("classifier" in k for k in report["skipped"])
        w4 = model.state_dict()[stem]
        assert w4.shape[1] == 4
        # timm repeats the RGB filters and rescales by 3/4 so activations keep their scale
        torch.testing.assert_close(w4[:, :3], state[stem] * 3 / 4)
    with pytest.raises(ValueError, match="backbone"):
        build_model("resnet_18_typo")


# ------------------------------------------------------------------------------------------ config
def test_config_flags_and_unknown_keys(tmp_path):
    cfg_path = tmp_path / "m.yaml"
    cfg_path.write_text("backbone: resnet18\nepochs: 3\n")
    args = train_cmd.build_parser().parse_args(
        ["--config", str(cfg_path), "--data", "d", "--folds", "f", "--fold", "0", "--image-size", "48",
         "--loss", "{focal: 1.0, soft_f1: 0.5}", "--weights", "null", "--augment_dihedral", "false"])
    from base_models.commands._config_flags import overrides_from_args

    cfg = load_config(args.config, overrides_from_args(args))
    assert cfg["image_size"] == 48 and cfg["epochs"] == 3 and cfg["name"] == "m"
    assert cfg["loss"] == {"focal": 1.0, "soft_f1": 0.5} and cfg["augment_dihedral"] is False
    cfg_path.write_text("backbone: resnet18\nimage_sise: 3\n")
    with pytest.raises(ValueError, match="Did you mean 'image_size'"):
        load_config(cfg_path)
    with pytest.raises(ValueError, match="'epochs' parameter must be an integer"):
        load_config(None, {"epochs": "many"})


# ------------------------------------------------------------------- training, resume, collect
def test_train_resume_collect_end_to_end(tiny_data, tmp_path):
    folds = tiny_data / "folds.csv"
    full, killed = tmp_path / "full", tmp_path / "killed"
    cfg = tiny_config(cache_dir=str(tmp_path / "cache"))
    for fold in (0, 1):
        metrics = train_mod.fit_fold(cfg, tiny_data, folds, fold, full)
        assert metrics["status"] == "complete" and metrics["epochs_run"] == 2
    fold_dir = full / "tiny" / "fold0"
    for name in ("checkpoint.pt", "best.pt", "config.yaml", "oof.csv", "test.csv", "metrics.json"):
        assert (fold_dir / name).exists()
    ckpt = torch.load(fold_dir / "checkpoint.pt", weights_only=True)
    assert ckpt["epoch"] == 2 and {"model", "optimizer", "scheduler", "rng_torch"} <= set(ckpt)

    # Killed after the first epoch's checkpoint, then resumed: same bytes as the uninterrupted run
    # (this also checks that the same seed gives the same bytes).
    argv = ["--data", str(tiny_data), "--folds", str(folds), "--fold", "0", "--out", str(killed),
            "--backbone", TINY, "--name", "tiny", "--image-size", "32", "--batch-size", "8", "--eval-batch-size", "16",
            "--epochs", "2", "--threads", "1", "--tta", "flips", "--augment-crop-scale", "0.8",
            "--cache-dir", str(tmp_path / "cache")]
    with pytest.raises(SystemExit):
        train_cmd.main(argv + ["--stop-after-epoch", "1"])
    assert (killed / "tiny" / "fold0" / "checkpoint.pt").exists()
    assert not (killed / "tiny" / "fold0" / "metrics.json").exists()
    assert train_cmd.main(argv + ["--resume"]) == 0
    assert (killed / "tiny" / "fold0" / "oof.csv").read_bytes() == (fold_dir / "oof.csv").read_bytes()
    assert (killed / "tiny" / "fold0" / "test.csv").read_bytes() == (fold_dir / "test.csv").read_bytes()

    # collect refuses a missing fold, then assembles a valid prediction set
    with pytest.raises(ValueError, match="fold 1 is missing"):
        collect_mod.collect("tiny", killed)
    assert collect_cmd.main(["tiny", "--out", str(full)]) == 0
    train_ids = pd.read_csv(tiny_data / "train.csv")["Id"].tolist()
    test_ids = pd.read_csv(tiny_data / "sample_submission.csv")["Id"].tolist()
    pset = read_prediction_set(full / "tiny", train_ids, test_ids)
    fold_tests = [pd.read_csv(full / "tiny" / f"fold{k}" / "test.csv", index_col="Id") for k in (0, 1)]
    np.testing.assert_allclose(pset.test.to_numpy(), (fold_tests[0].loc[test_ids].to_numpy()
                                                      + fold_tests[1].loc[test_ids].to_numpy()) / 2)
    # read as exactly as the contract reads it (pandas before 3.1 parses within an ulp by default)
    fold0 = read_csv_checked(fold_dir / "oof.csv", "a fold's oof.csv", index_col="Id")
    np.testing.assert_array_equal(pset.oof.loc[fold0.index].to_numpy(), fold0.to_numpy())
    assert pset.meta["folds_sha256"]

    # a changed folds file is refused
    changed = pd.read_csv(folds)
    changed["fold"] = 1 - changed["fold"]
    changed.to_csv(folds.with_name("folds_changed.csv"), index=False)
    with pytest.raises(ValueError, match="changed since fold 0 was trained|not fold"):
        collect_mod.collect("tiny", full, folds.with_name("folds_changed.csv"))


def test_run_all_trains_collects_and_keeps_finished_folds(tiny_data, tmp_path, capfd):
    from base_models.commands import base_models as run_all

    out = tmp_path / "oof"
    cfg = tmp_path / "elsewhere" / "mine.yaml"  # a config from any path, not only the package's
    cfg.parent.mkdir()
    cfg.write_text("backbone: mobilenetv3_small_050\nbatch_size: 8\nnormalize: per_image\ntta: none\n")
    argv = ["--data", str(tiny_data), "--configs", str(cfg), "--out", str(out), "--epochs", "1",
            "--image-size", "32", "--cache-dir", str(tmp_path / "cache"), "--n-jobs", "1"]
    assert run_all.main(argv) == 0
    assert (out / "mine" / "meta.json").exists()
    lines = capfd.readouterr().out.splitlines()
    assert sum(line.startswith("mine fold ") and "fold macro F1" in line for line in lines) == 2
    stamp = (out / "mine" / "fold0" / "checkpoint.pt").stat().st_mtime_ns
    assert run_all.main(argv) == 0  # finished folds are kept, only collect runs again
    assert (out / "mine" / "fold0" / "checkpoint.pt").stat().st_mtime_ns == stamp
    assert "mine fold 0: current, kept" in capfd.readouterr().out
    with pytest.raises(ValueError, match="names"):
        run_all.main(argv + ["--names", "nope"])
    # epochs are part of the fingerprint: asking for 2 retrains
    assert not __import__("base_models.freshness").freshness.fold_is_current(
        out, load_config(cfg, {"epochs": 2, "image_size": 32}), 0, tiny_data, tiny_data / "folds.csv")


def test_run_all_never_generates_into_a_named_folder(tmp_path):
    from base_models import run_all as run_all_lib
    from base_models.commands import base_models as run_all

    user = tmp_path / "hpa"
    user.mkdir()
    (user / "keep.txt").write_text("mine")
    assert cli.run(run_all.main, ["--data", str(user), "--out", str(tmp_path / "o")]) == 2
    assert sorted(p.name for p in user.iterdir()) == ["keep.txt"]
    with pytest.raises(ValueError, match="no train.csv"):
        run_all.main(["--data", str(tmp_path / "typo"), "--out", str(tmp_path / "o")])
    assert not (tmp_path / "typo").exists()
    with pytest.raises(ValueError, match="not generated by"):  # the default folder: only if empty or marked
        run_all_lib.ensure_data(user, explicit=False)


def test_run_all_makes_folds_only_for_the_synthetic_set(tiny_data, tmp_path, capsys):
    """Real data without folds.csv is refused in one line saying how to make folds with duplicate groups;
    the synthetic set (the generator's marker) gets its folds made."""
    import shutil

    from base_models import run_all as run_all_lib
    from base_models.commands import base_models as run_all
    from hpa_ens.contract import read_folds
    from hpa_ens.synth import MARKER

    real = tmp_path / "real"
    shutil.copytree(tiny_data, real, ignore=shutil.ignore_patterns("folds*"))
    cfg = tmp_path / "mine.yaml"
    cfg.write_text("backbone: mobilenetv3_small_050\nbatch_size: 8\n")
    before = sorted(p.name for p in real.iterdir())
    assert cli.run(run_all.main, ["--data", str(real), "--configs", str(cfg), "--out", str(tmp_path / "o"),
                                  "--epochs", "1", "--image-size", "32", "--n-jobs", "1"]) == 2
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(err) == 1 and err[0].startswith(f"error: {real / 'folds.csv'}: no folds file")
    assert f"hpa-ens folds --labels {real / 'train.csv'} --groups DUPLICATES.csv --out {real / 'folds.csv'}" in err[0]
    assert "hpa-ens dedup --train-dir" in err[0]
    assert sorted(p.name for p in real.iterdir()) == before and not (tmp_path / "o").exists()
    with pytest.raises(ValueError, match="not the synthetic set"):  # a folds file named elsewhere: the same rule
        run_all_lib.ensure_folds(real, tmp_path / "elsewhere.csv")
    assert not (tmp_path / "elsewhere.csv").exists()

    synth = tmp_path / "synth"
    shutil.copytree(real, synth)
    (synth / MARKER).write_text("written by hpa_ens.synth\n")
    run_all_lib.ensure_folds(synth, synth / "folds.csv")
    folds = read_folds(synth / "folds.csv")
    assert sorted(folds.unique()) == list(range(run_all_lib.DEMO_FOLDS))
    assert folds.index.tolist() == pd.read_csv(synth / "train.csv")["Id"].tolist()


def test_bad_config_fails_before_any_cache_or_output(tiny_data, tmp_path):
    out, cache = tmp_path / "oof", tmp_path / "cache"
    argv = ["--data", str(tiny_data), "--folds", str(tiny_data / "folds.csv"), "--fold", "0", "--out", str(out),
            "--backbone", TINY, "--cache-dir", str(cache), "--loss", "focl"]
    with pytest.raises(ValueError, match="bce, focal, lovasz, soft_f1, weighted_bce"):
        train_cmd.main(argv)
    for bad, match in ((["--lr", "-1"], "'lr' parameter must be > 0"), (["--monitor", "f1"], "inner_val_fraction"),
                       (["--tta", "all"], "'tta' parameter must be one of"), (["--head", "atention"], "head")):
        with pytest.raises(ValueError, match=match):
            train_cmd.main(argv[:-2] + bad)
    assert not out.exists() and not cache.exists()


def test_config_help_documents_every_key():
    from base_models.config import SPEC

    text = train_cmd.build_parser().format_help()
    for key in SPEC:
        if key != "kind":
            assert f"--{key.replace('_', '-')}" in text
    assert "inner split of the TRAINING folds" in " ".join(text.split())


def test_poisoned_checkpoint_is_refused_in_one_short_line(tmp_path):
    import pickle

    from base_models import checkpoint

    class Evil:
        def __reduce__(self):
            return (print, ("ran",))

    with open(tmp_path / "evil.pt", "wb") as handle:
        pickle.dump({"model": Evil()}, handle, protocol=2)
    with pytest.raises(ValueError) as err:
        checkpoint.load(tmp_path / "evil.pt")
    message = str(err.value)
    assert "\n" not in message and "weights_only=False" not in message and "pickled" in message


def test_oof_rows_do_not_depend_on_their_own_labels(tmp_path):
    """Honest OOF: scrambling the labels of the held-out fold leaves its OOF predictions unchanged."""
    folds = {}
    for variant, extra in (("fixed", {}), ("inner", {"monitor": "f1", "inner_val_fraction": 0.25, "patience": 1})):
        for scrambled in (False, True):
            root = make_dataset(tmp_path / f"{variant}{scrambled}", n_train=24, n_test=4, size=16)
            if scrambled:
                labels = pd.read_csv(root / "train.csv", dtype=str)
                held = pd.read_csv(root / "folds.csv")["fold"].to_numpy() == 0
                labels.loc[held, "Target"] = np.random.default_rng(5).permutation(
                    ["27", "26 3", "14", "5"] * 3)[:held.sum()]
                labels.to_csv(root / "train.csv", index=False)
            cfg = tiny_config(image_size=16, epochs=3, tta="none", cache_dir=str(tmp_path / f"c{variant}{scrambled}"),
                              **extra)
            metrics = train_mod.fit_fold(cfg, root, root / "folds.csv", 0, tmp_path / f"o{variant}{scrambled}")
            folds[(variant, scrambled)] = (tmp_path / f"o{variant}{scrambled}" / "tiny" / "fold0" / "oof.csv",
                                           metrics)
    for variant in ("fixed", "inner"):
        clean, scrambled = folds[(variant, False)], folds[(variant, True)]
        assert clean[0].read_bytes() == scrambled[0].read_bytes()
        assert clean[1]["fold_macro_f1"] != scrambled[1]["fold_macro_f1"]  # the labels did change
    assert folds[("fixed", False)][1]["epoch_selection"] == "last_epoch"
    assert folds[("inner", False)][1]["epoch_selection"] == "inner_f1"
    assert folds[("inner", False)][1]["n_monitor"] > 0


def test_run_all_hands_feature_configs_to_base_models_features(tiny_data, tmp_path, monkeypatch, capfd):
    import sys
    import types

    from base_models.commands import base_models as run_all

    cfg = tmp_path / "feat.yaml"
    cfg.write_text("kind: features\nname: feat\nfeatures: [channel_stats]\n")
    calls = []

    def run(config_path, data_dir, folds_path, out_root, task, n_jobs, progress=None, log=None):
        calls.append((Path(config_path), Path(data_dir), Path(folds_path), Path(out_root), task.name, n_jobs))
        return {"name": "feat", "oof_macro_f1": 0.5}

    monkeypatch.setitem(sys.modules, "base_models.features", types.SimpleNamespace(run=run))
    argv = ["--data", str(tiny_data), "--configs", str(cfg), "--out", str(tmp_path / "o"), "--n-jobs", "1"]
    assert run_all.main(argv) == 0
    assert calls == [(cfg, tiny_data, tiny_data / "folds.csv", tmp_path / "o", "hpa2018", 1)]
    assert "feat: OOF macro F1 0.5000 (feature model)" in capfd.readouterr().out
    monkeypatch.setitem(sys.modules, "base_models.features", None)  # not written yet: skipped, said so
    assert run_all.main(argv) == 0
    assert "base_models.features is not installed; skipped" in capfd.readouterr().out
    with pytest.raises(ValueError, match="not a CNN config"):
        load_config(cfg)
