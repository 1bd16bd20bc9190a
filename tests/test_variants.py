"""Issue-6 variants wired into the trainer: every option trains one tiny epoch end to end and gives a
valid prediction set; the wrappers match their definitions; the default path is left alone."""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("MPLBACKEND", "Agg")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402

torch = pytest.importorskip("torch", reason="needs the [train] extra")
pytest.importorskip("timm", reason="needs the [train] extra")

from base_models import collect as collect_mod  # noqa: E402
from base_models import train as train_mod  # noqa: E402
from base_models import wrappers as variants  # noqa: E402
from base_models.segment import CellCrops  # noqa: E402
from base_models.config import DEFAULTS, VARIANT_KEYS, config_hash, load_config  # noqa: E402
from base_models.models import build_model  # noqa: E402
from base_models.tiles import combine_tiles, split_tiles  # noqa: E402
from hpa_ens.contract import read_prediction_set, write_folds  # noqa: E402
from hpa_ens.synth import generate  # noqa: E402

TINY = "mobilenetv3_small_050"


@pytest.fixture(scope="module")
def tiny_synth(tmp_path_factory):
    root = tmp_path_factory.mktemp("variants_data")
    generate(root, n_train=24, n_test=6, size=32, seed=0, n_jobs=1, dup_rate=0.0, leak_rate=0.0)
    ids = pd.read_csv(root / "train.csv")["Id"]
    write_folds(root / "folds.csv", pd.Series(np.arange(len(ids)) % 2, index=pd.Index(ids, name="Id")))
    return root


def tiny_config(**extra):
    cfg = dict(backbone=TINY, name="v", image_size=32, batch_size=6, eval_batch_size=16, epochs=1, threads=1,
               tta="none", normalize="per_image", augment_crop_scale=1.0)
    cfg.update(extra)
    return load_config(None, cfg)


VARIANTS = {
    "tiles_noisy_or": dict(tiles=2, tile_combine="noisy_or", tta="flips"),
    "cells_attention": dict(cells=True, cell_pooling="attention", cells_per_image=4),
    "cells_max_center": dict(cells=True, cell_pooling="max", center_loss=0.1),
    "single_label": dict(sampler="single_label", single_weight=3.0),
    "single_label_first": dict(sampler="single_label_first", phase1_epochs=1),
    "attention_maps": dict(head="attention", attention_maps=2),
    "lovasz": dict(loss={"bce": 1.0, "lovasz": 0.5}),
    "center_loss": dict(center_loss=0.05),
    "knobs_train_f1": dict(dropout=0.5, augment_crop_scale=0.8, augment_brightness=0.3, train_eval_rows=10),
}


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_each_variant_trains_and_writes_a_valid_prediction_set(tiny_synth, tmp_path, variant):
    cfg = tiny_config(name=variant, cache_dir=str(tmp_path / "cache"), **VARIANTS[variant])
    folds = tiny_synth / "folds.csv"
    for fold in (0, 1):
        metrics = train_mod.fit_fold(cfg, tiny_synth, folds, fold, tmp_path / "oof")
        assert metrics["status"] == "complete"
    collect_mod.collect(variant, tmp_path / "oof")
    train_ids = pd.read_csv(tiny_synth / "train.csv")["Id"].tolist()
    test_ids = pd.read_csv(tiny_synth / "sample_submission.csv")["Id"].tolist()
    pset = read_prediction_set(tmp_path / "oof" / variant, train_ids, test_ids)
    assert pset.oof.shape == (24, 28) and pset.test.shape == (6, 28)
    if variant == "attention_maps":
        pngs = sorted((tmp_path / "oof" / variant / "fold0" / "attention").glob("*_attention.png"))
        assert len(pngs) == 2 and metrics["attention_maps"]
    if variant == "knobs_train_f1":
        assert 0.0 <= metrics["train_subset_f1"] <= 1.0 and metrics["train_subset_rows"] == 10
    if variant.startswith("cells"):
        assert any((tmp_path / "cache" / "cell_crops").rglob("*.npz"))  # crops are cached


def test_default_config_is_untouched():
    cfg = load_config(None, {"backbone": TINY})
    model = build_model(TINY)
    assert variants.wrap_model(model, cfg, 28) is model
    assert variants.batch_loss(model, None, None) is None
    # Variant keys at their defaults do not enter the hash (old finished folds stay current).
    old_style = {k: v for k, v in cfg.items() if k not in VARIANT_KEYS}
    assert config_hash(cfg) == config_hash(old_style)
    assert config_hash(cfg) != config_hash({**cfg, "tiles": 2})


def test_bad_variant_options_are_refused():
    with pytest.raises(ValueError, match="tile_combine"):
        tiny_config(tiles=2, tile_combine="median")
    with pytest.raises(ValueError, match="cells_per_image"):
        tiny_config(cells=True, cells_per_image=5)
    with pytest.raises(ValueError, match="cannot be combined"):
        tiny_config(cells=True, tiles=2)
    with pytest.raises(ValueError, match="attention_maps"):
        tiny_config(attention_maps=3)
    with pytest.raises(ValueError, match="tiles"):
        tiny_config(tiles=1)


def test_tiled_model_combines_tile_probabilities():
    torch.manual_seed(0)
    inner = build_model(TINY)
    for method in ("max", "mean", "noisy_or"):
        model = variants.wrap_model(inner, tiny_config(tiles=2, tile_combine=method), 28).eval()
        x = torch.randn(3, 4, 32, 32)
        with torch.no_grad():
            got = torch.sigmoid(model(x).double())
            oracle = combine_tiles(torch.sigmoid(inner(split_tiles(x, 2)).double()), 2, method)
        torch.testing.assert_close(got, oracle.clamp(1e-7, 1 - 1e-7), rtol=1e-5, atol=1e-6)
    model.train()
    assert model(torch.randn(2, 4, 32, 32)).shape == (8, 28)  # per-tile logits in training
    y = torch.zeros(2, 28)
    y[0, 3] = 1
    loss = model.train_loss(torch.nn.BCEWithLogitsLoss(), model(torch.randn(2, 4, 32, 32)), y)
    assert loss.ndim == 0 and torch.isfinite(loss)


def test_cell_mosaics_hold_each_images_cells_and_repeat_when_short():
    rng = np.random.default_rng(0)
    sets = [CellCrops(rng.integers(0, 255, (n, 4, 6, 6), dtype=np.uint8), np.zeros((n, 2), np.float32),
                      np.ones(n, np.int32)) for n in (4, 3, 1, 6)]
    mosaics = variants.cell_mosaics(sets, grid=2)
    assert mosaics.shape == (4, 4, 12, 12) and mosaics.dtype == np.uint8
    crops = split_tiles(mosaics, 2).reshape(4, 4, 4, 6, 6)
    for cells, got in zip(sets, crops):
        expected = cells.crops[[j % len(cells.crops) for j in range(4)]]
        np.testing.assert_array_equal(got, expected)


def test_cell_params_scale_with_image_size_and_take_overrides():
    small = variants.cell_params(tiny_config(image_size=64, cells=True))
    big = variants.cell_params(tiny_config(image_size=128, cells=True, cells_per_image=9,
                                           cell_params={"crop_size": 40}))
    assert small.crop_size == 24 and small.max_cells == 4
    assert big.crop_size == 40 and big.max_cells == 9 and big.min_distance == 3
    with pytest.raises(ValueError, match="unknown keys"):
        variants.cell_params(tiny_config(cells=True, cell_params={"crop": 3}))


def test_train_subset_rows_are_own_training_rows():
    fit = np.array([0, 2, 4, 6, 8, 10, 12, 100, 101])  # 100, 101: extra images
    rows = variants.train_subset_rows(fit, n_train=20, n_rows=4)
    assert len(rows) == 4 and set(rows) <= {0, 2, 4, 6, 8, 10, 12}
    assert len(variants.train_subset_rows(fit, 20, 0)) == 0
    assert DEFAULTS["train_eval_rows"] == 0
