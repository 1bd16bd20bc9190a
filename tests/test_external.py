"""External (HPAv18) images: labels and missing files, dedup across train/external/test, fold ties.

The planted pair: a train image and a flipped, noised JPG copy of it among the external images. Dedup
must pair them (external-train) and the folds must tie the copy to the train image's fold, so the model
that predicts that train image out of fold never trains on its near-copy.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from scipy import ndimage

from hpa_ens import dedup, folds as F
from hpa_ens.classes import CHANNELS
from hpa_ens.commands import dedup as dedup_command, folds as folds_command
from hpa_ens.commands._cli import run
from hpa_ens.contract import read_folds
from hpa_ens.contract.duplicates import check_duplicates_provenance, read_duplicates, read_duplicates_meta
from hpa_ens.contract.extra_folds import extra_fit_mask, read_extra_folds
from hpa_ens.image_sets import folder_record, hpav18_id, list_image_ids, load_external, scan_images
from hpa_ens.labels import write_labels
from hpa_ens.validation import ContractError, ParameterError


def _smooth_images(rng, n, size=128):
    noise = rng.random((n, 4, size, size))
    smooth = ndimage.gaussian_filter(noise, sigma=(0, 0, 6, 6))
    smooth = (smooth - smooth.min(axis=(2, 3), keepdims=True)) / np.ptp(smooth, axis=(2, 3), keepdims=True)
    return (smooth * 255).astype(np.uint8)


def _write(folder, image_id, stack, ext=".png", **save):
    folder.mkdir(parents=True, exist_ok=True)
    for ch, plane in zip(CHANNELS, stack):
        Image.fromarray(plane).save(folder / f"{image_id}_{ch}{ext}", **save)


def _labels(n, seed):
    rng = np.random.default_rng(seed)
    Y = (rng.random((n, 28)) < 0.25 * np.exp(-np.arange(28) / 6)).astype(np.uint8)
    Y[Y.sum(axis=1) == 0, 0] = 1
    return Y


EXT_COPY = "10580_1610_C1_1"  # HPAv18 Id layout: antibody, plate, well, field
EXT_OTHER = ["10580_1610_C1_2", "10580_1756_B1_1", "11651_1732_F3_13"]


@pytest.fixture
def planted(tmp_path):
    """40 train PNGs, 3 test PNGs, 4 external JPGs: one a flipped, noised copy of train image tr07."""
    rng = np.random.default_rng(11)
    base = _smooth_images(rng, 47)
    train_ids = [f"tr{k:02d}" for k in range(40)]
    for k, image_id in enumerate(train_ids):
        _write(tmp_path / "train", image_id, base[k])
    for k in range(3):
        _write(tmp_path / "test", f"te{k}", base[40 + k])
    copy = np.clip(base[7][:, :, ::-1] + rng.normal(0, 4, base[7].shape), 0, 255).astype(np.uint8)
    _write(tmp_path / "ext", EXT_COPY, copy, ".jpg", quality=90)
    for k, image_id in enumerate(EXT_OTHER):
        _write(tmp_path / "ext", image_id, base[43 + k], ".jpg", quality=90)
    write_labels(tmp_path / "train.csv", train_ids, _labels(40, 1))
    write_labels(tmp_path / "ext.csv", [EXT_COPY] + EXT_OTHER, _labels(4, 2))
    return tmp_path


def _dedup(root, out, *extra):
    return run(dedup_command.main, ["--train-dir", str(root / "train"), "--test-dir", str(root / "test"),
                            "--extra-images", str(root / "ext"), "--extra-labels", str(root / "ext.csv"),
                            "--out", str(out), "--n-jobs", "1", *extra])


def test_planted_external_copy_lands_in_its_train_twins_fold(planted, tmp_path):
    root = planted
    assert _dedup(root, tmp_path / "dupes.csv") == 0
    pairs = read_duplicates(tmp_path / "dupes.csv")
    found = set(zip(pairs["kind"], pairs["Id_a"], pairs["Id_b"]))
    assert ("external-train", EXT_COPY, "tr07") in found
    assert set(pairs["kind"]) == {"external-train"}  # nothing else was planted
    meta = read_duplicates_meta(tmp_path / "dupes.csv")
    assert set(meta["folders"]) == {"train", "test", "external"}
    assert meta["kinds"] == ["train-test", "test-test", "external-train", "external-test"]

    common = ["--labels", str(root / "train.csv"), "--extra-labels", str(root / "ext.csv"), "--n-folds", "4",
              "--no-plot"]
    assert run(folds_command.main, common + ["--groups", str(tmp_path / "dupes.csv"), "--out", str(tmp_path / "f" / "folds.csv")]) == 0
    folds = read_folds(tmp_path / "f" / "folds.csv", ids=[f"tr{k:02d}" for k in range(40)])
    extra = read_extra_folds(tmp_path / "f" / "folds.extra.csv", n_folds=4)
    assert extra.index.tolist() == [EXT_COPY] + EXT_OTHER
    assert extra[EXT_COPY] == folds["tr07"]  # both in one fold
    assert (extra[EXT_OTHER] == -1).all()  # no train twin: every fold may train on them
    # The model of tr07's fold must not train on the copy; every other fold's model may.
    for fold in range(4):
        mask = extra_fit_mask(extra, fold)
        assert mask[0] == (fold != folds["tr07"]) and mask[1:].all()

    # Control: without the duplicates file nothing ties the copy to a fold (the check above can fail).
    assert run(folds_command.main, common + ["--out", str(tmp_path / "g" / "folds.csv")]) == 0
    assert (read_extra_folds(tmp_path / "g" / "folds.extra.csv") == -1).all()
    # The train folds themselves are those of a run without external Ids (one merge, same groups).
    assert run(folds_command.main, ["--labels", str(root / "train.csv"), "--n-folds", "4", "--no-plot", "--groups",
                        str(tmp_path / "dupes.csv"), "--out", str(tmp_path / "h" / "folds.csv")]) == 0
    assert (tmp_path / "h" / "folds.csv").read_bytes() == (tmp_path / "f" / "folds.csv").read_bytes()
    assert not (tmp_path / "h" / "folds.extra.csv").exists()


def test_external_copy_joins_train_group_through_chain(tmp_path):
    """Two train images each duplicated by one external image: one group, one fold."""
    (tmp_path / "pairs.csv").write_text("Id_a,Id_b,distance,kind\ne1,tr3,2,external-train\ne1,tr9,5,external-train\n"
                                        "e2,e1,1,external-external\n")
    ids = [f"tr{k}" for k in range(30)]
    labels = pd.DataFrame(_labels(30, 3), index=pd.Index(ids, name="Id"))
    result = F.build_folds(labels, 3, 0, "iterative", [tmp_path / "pairs.csv"], ["e1", "e2", "e3"])
    folds, extra = result["folds"], result["extra"]
    assert folds["tr3"] == folds["tr9"] == extra["e1"] == extra["e2"]
    assert extra["e3"] == -1
    assert result["report"]["n_extra_tied"] == 2


def test_dedup_provenance_refuses_other_folders(planted, tmp_path):
    out = tmp_path / "dupes.csv"
    assert _dedup(planted, out) == 0
    folders = {"train": planted / "train", "test": planted / "test", "external": planted / "ext"}
    assert check_duplicates_provenance(out, folders)["folders"]["train"]["n_files"] == 160
    _write(planted / "test", "te_new", _smooth_images(np.random.default_rng(3), 1)[0])
    with pytest.raises(ContractError, match="other test images"):
        check_duplicates_provenance(out, folders)
    # An edited CSV no longer matches its record.
    out.write_text(out.read_text() + f"tr01,te0,3,train-test\n")
    with pytest.raises(ContractError, match="changed after"):
        read_duplicates_meta(out)


def test_external_ids_without_images_are_counted_then_refused_or_skipped(planted, tmp_path, capsys):
    ids = [EXT_COPY] + EXT_OTHER + [f"99999_1_A1_{k}" for k in range(5)]
    write_labels(tmp_path / "ext_more.csv", ids, _labels(len(ids), 4))
    with pytest.raises(ContractError, match=r"5 of 9 Ids .* --skip-missing.*'99999_1_A1_0', '99999_1_A1_1'"):
        load_external(planted / "ext", tmp_path / "ext_more.csv")
    ext = load_external(planted / "ext", tmp_path / "ext_more.csv", skip_missing=True)
    assert ext.ids == [EXT_COPY] + EXT_OTHER and len(ext.missing) == 5
    assert ext.record["n_missing"] == 5 and ext.labels.shape == (4, 28)
    assert ext.sources()[0] == (EXT_COPY, planted / "ext")
    # The CLI: one line, exit 2, nothing written; --skip-missing goes through.
    out = tmp_path / "d.csv"
    code = run(dedup_command.main, ["--train-dir", str(planted / "train"), "--test-dir", str(planted / "test"),
                            "--extra-images", str(planted / "ext"), "--extra-labels", str(tmp_path / "ext_more.csv"),
                            "--out", str(out), "--n-jobs", "1"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and "5 of 9 Ids" in err and not out.exists()
    # A channel missing for one Id counts as missing too.
    (planted / "ext" / f"{EXT_OTHER[0]}_yellow.jpg").unlink()
    with pytest.raises(ContractError, match=r"1 of 4 Ids"):
        load_external(planted / "ext", planted / "ext.csv")
    with pytest.raises(ContractError, match="4 of 4 Ids"):
        load_external(planted / "test", planted / "ext.csv", skip_missing=True)  # none at all: refused
    with pytest.raises(ContractError, match="also train Ids"):
        load_external(planted / "train", planted / "train.csv", train_ids=["tr00"])


def test_scan_accepts_jpg_png_tiff_and_jpeg_bytes_under_png_name(tmp_path):
    rng = np.random.default_rng(0)
    img = _smooth_images(rng, 1, size=64)[0]
    _write(tmp_path, "a", img, ".jpg", quality=95)
    _write(tmp_path, "b", img, ".tif")
    for ch, plane in zip(CHANNELS, img):  # the common HPAv18 download script: JPEG bytes, .png name
        Image.fromarray(plane).save(tmp_path / f"c_{ch}.png", format="JPEG", quality=95)
    (tmp_path / "notes.txt").write_text("x")
    assert list_image_ids(tmp_path, CHANNELS) == ["a", "b", "c"]
    assert scan_images(tmp_path, CHANNELS)["a"]["green"].name == "a_green.jpg"
    _, hashes, _ = dedup.compute_hashes(tmp_path, channels=CHANNELS)
    assert (dedup.hamming(hashes[:, :, 0], hashes[1, :, 0]) <= 2).all()  # same picture, three encodings
    record = folder_record(tmp_path)
    assert record["n_files"] == 12
    (tmp_path / "notes.txt").write_text("changed")  # not an image: the listing is unchanged
    assert folder_record(tmp_path)["listing_sha256"] == record["listing_sha256"]


def test_hpav18_id_and_real_external_labels(shared_hpa, tmp_path):
    assert hpav18_id("ENSG00000001497_44431_556_B9_1") == "44431_556_B9_1"
    assert hpav18_id("10580_1610_C1_1") == "10580_1610_C1_1"
    # The real HPAv18 labels against a folder holding the images of only 3 of its Ids.
    labels = shared_hpa / "ext" / "HPAv18RBGY_wodpl.csv"
    raw = pd.read_csv(labels, dtype=str)
    img = _smooth_images(np.random.default_rng(0), 3, size=32)
    for image_id, stack in zip(raw["Id"][:3], img):
        _write(tmp_path, image_id, stack, ".jpg")
    with pytest.raises(ContractError, match=rf"74603 of 74606 Ids .* First: '{raw['Id'][3]}'"):
        load_external(tmp_path, labels)
    ext = load_external(tmp_path, labels, skip_missing=True)
    assert ext.ids == raw["Id"][:3].tolist() and len(ext.missing) == 74603
    assert ext.labels.to_numpy().sum(axis=1).tolist() == raw["Target"][:3].str.split().str.len().tolist()
    train = pd.read_csv(shared_hpa / "train.csv")
    assert not set(train["Id"]) & set(raw["Id"])  # load_external(train_ids=...) would refuse an overlap


def test_external_labels_for_a_k_class_task(planted, tmp_path):
    (tmp_path / "task.csv").write_text("id,name\n0,a\n1,b\n2,c\n")
    (tmp_path / "l.csv").write_text(f"Id,Target\n{EXT_COPY},2 0\n{EXT_OTHER[0]},1\n")
    ext = load_external(planted / "ext", tmp_path / "l.csv", task=tmp_path / "task.csv")
    assert ext.labels.shape == (2, 3) and ext.labels.loc[EXT_COPY].tolist() == [1, 0, 1]
    (tmp_path / "bad.csv").write_text(f"Id,Target\n{EXT_COPY},3\n")
    with pytest.raises(ContractError, match=r"bad.csv, row 1: unknown class id '3'.*0\.\.2"):
        load_external(planted / "ext", tmp_path / "bad.csv", task=tmp_path / "task.csv")


def test_dedup_option_errors_are_parameter_errors(planted, tmp_path):
    base = ["--train-dir", str(planted / "train"), "--test-dir", str(planted / "test"), "--out", str(tmp_path / "d.csv")]
    with pytest.raises(ParameterError, match="needs '--extra-images"):
        dedup_command.main(base + ["--kinds", "external-test"])
    with pytest.raises(ParameterError, match="--extra-labels"):
        dedup_command.main(base + ["--extra-labels", str(planted / "ext.csv")])
    with pytest.raises(ParameterError, match="max_distance"):
        dedup_command.main(base + ["--max-distance", "65"])
    assert not (tmp_path / "d.csv").exists()


def test_hpav18_colour_jpg_channel_is_read_from_its_plane(tmp_path):
    """HPAv18 serves each channel as an RGB JPG: green in G, blue in B, red in R, yellow in R and G.

    Luminance (0.299 R + 0.587 G + 0.114 B) would dim a blue channel to 11 % and green to 59 %.
    """
    from hpa_ens.images import read_channel

    plane = np.full((16, 16), 200, dtype=np.uint8)
    zero = np.zeros_like(plane)
    colours = {"red": (plane, zero, zero), "green": (zero, plane, zero), "blue": (zero, zero, plane),
               "yellow": (plane, plane, zero)}
    for channel, rgb in colours.items():
        Image.fromarray(np.stack(rgb, axis=-1)).save(tmp_path / f"x_{channel}.png")  # lossless stand-in for the JPG
        assert read_channel(tmp_path / f"x_{channel}.png").mean() == pytest.approx(200, abs=1), channel


def test_scan_prefers_extensions_in_order_and_handles_underscored_channels(tmp_path):
    for name in ("a_red.jpg", "a_red.png", "a_green.TIF", "b_red.tiff", "b_red.jpeg", "c_x_dapi_1.png", "c_x_gfp.png",
                 "_red.png", "d_purple.png"):
        (tmp_path / name).write_bytes(b"")
    found = scan_images(tmp_path, ["red", "green"])
    assert {i: {c: p.name for c, p in have.items()} for i, have in found.items()} == {
        "a": {"red": "a_red.png", "green": "a_green.TIF"}, "b": {"red": "b_red.jpeg"}}
    assert list(scan_images(tmp_path, ["dapi_1", "gfp"])) == ["c_x"]
    assert scan_images(tmp_path, ["dapi_1", "gfp"])["c_x"]["dapi_1"].name == "c_x_dapi_1.png"
    from hpa_ens.image_sets import missing_images

    assert missing_images(tmp_path, ["a", "b", "zz"], ["red", "green"]) == ["b", "zz"]
