"""torchrun + DistributedDataParallel on the CPU (gloo, 2 processes): sharding, rank 0 writes, valid outputs."""

import json
import os
import subprocess
import sys
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

torch = pytest.importorskip("torch", reason="needs the [train] extra")
pytest.importorskip("timm", reason="needs the [train] extra")

from base_models import distributed  # noqa: E402
from base_models.collect import collect  # noqa: E402
from base_models.config import load_config  # noqa: E402
from base_models.train import fit_fold  # noqa: E402
from hpa_ens.contract import read_prediction_set  # noqa: E402

from tiny_images import make_dataset  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("n", [0, 1, 7, 24, 25])
@pytest.mark.parametrize("world", [1, 2, 3])
def test_shards_are_disjoint_equal_and_cover_the_order(n, world):
    order = np.random.default_rng(n).permutation(n + 5)[:n]
    shards = [distributed.shard_order(order, r, world) for r in range(world)]
    assert len({len(s) for s in shards}) == 1 and len(shards[0]) == n // world
    joined = np.concatenate(shards)
    assert len(set(joined.tolist())) == len(joined)
    # Together they are the order cut to a multiple of world_size (what DistributedSampler does with drop_last).
    assert sorted(joined.tolist()) == sorted(order[: n // world * world].tolist())
    with pytest.raises(ValueError, match="'rank' parameter"):
        distributed.shard_order(order, world, world)


def test_env_parsing():
    assert distributed.from_env({}) == distributed.DistInfo(0, 1, 0)
    info = distributed.from_env({"RANK": "3", "WORLD_SIZE": "4", "LOCAL_RANK": "1"})
    assert (info.rank, info.world_size, info.local_rank, info.is_main, info.enabled) == (3, 4, 1, False, True)
    with pytest.raises(ValueError, match="'RANK' variable"):
        distributed.from_env({"RANK": "2", "WORLD_SIZE": "2"})


def test_torchrun_two_processes_gloo_train_a_valid_fold(tmp_path):
    data, train_ids, test_ids, _ = make_dataset(tmp_path / "data", n_train=24, n_test=8)
    out = tmp_path / "oof"
    flags = ["--data", str(data), "--folds", str(data / "folds.csv"), "--out", str(out), "--name", "tiny",
             "--backbone", "mobilenetv3_small_050", "--image-size", "32", "--batch-size", "4",
             "--eval-batch-size", "16", "--epochs", "1", "--threads", "1", "--tta", "none",
             "--cache-dir", str(tmp_path / "cache")]
    env = dict(os.environ, HF_HUB_OFFLINE="1", OMP_NUM_THREADS="1")
    env.pop("WORLD_SIZE", None)
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                           "-m", "base_models.train", "--fold", "0", *flags],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.count("tiny fold 0: ") == 1  # rank 0 alone reports the fold
    fold0 = out / "tiny" / "fold0"
    metrics = json.loads((fold0 / "metrics.json").read_text())
    assert metrics["world_size"] == 2 and metrics["status"] == "complete"
    # 12 fit rows, 2 ranks, batch 4: each rank trains on one batch of its 6-row shard per epoch.
    assert metrics["history"][0]["train_images_per_s"] > 0
    # Only rank 0 wrote: no second set of files, no leftover temporary files.
    assert sorted(p.name for p in fold0.iterdir()) == ["best.pt", "checkpoint.pt", "config.yaml", "metrics.json",
                                                       "oof.csv", "test.csv"]
    # The other fold in a plain process; collect accepts both into one valid prediction set.
    config = load_config(None, {"name": "tiny", "backbone": "mobilenetv3_small_050", "image_size": 32,
                                "batch_size": 4, "eval_batch_size": 16, "epochs": 1, "threads": 1, "tta": "none",
                                "cache_dir": str(tmp_path / "cache")})
    fit_fold(config, data, data / "folds.csv", 1, out)
    collect("tiny", out, data / "folds.csv")
    pset = read_prediction_set(out / "tiny", train_ids=train_ids, test_ids=test_ids)
    assert pset.oof.shape == (24, 28) and pset.test.shape == (8, 28)
    assert np.isfinite(pset.oof.to_numpy()).all()
