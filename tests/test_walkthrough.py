"""The real-data walk-through, run line by line with its real flags on a small synthetic world.

The block between ``<!-- walkthrough:begin -->`` and ``<!-- walkthrough:end -->`` of README.md (docs/walkthrough.md
explains it and carries the same block between the same markers) starts by naming its folders (``DATA``, ``LEAKS``,
``PREDS``, ``WORK``, ``SETS``). This test redefines those five variables to a synthetic world with the same
file names and formats and runs every other line exactly as written, ``hpa-ens`` being ``python -m hpa_ens``
of the interpreter under test.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[1]
#: Where the block lives: the README's "your own prediction files" walk-through.
SOURCE = REPO / "README.md"
#: The longer explanation, which carries the same block.
EXPLAINED = REPO / "docs" / "walkthrough.md"
VARIABLES = ("DATA", "LEAKS", "PREDS", "WORK", "SETS")


def walkthrough_block(path: Path = SOURCE) -> str:
    """The fenced bash block between the walkthrough markers of ``path``."""
    text = path.read_text(encoding="utf-8")
    found = re.search(r"<!-- walkthrough:begin -->\s*```bash\n(.*?)```\s*<!-- walkthrough:end -->", text, re.S)
    assert found, f"{path}: no ```bash block between <!-- walkthrough:begin --> and <!-- walkthrough:end -->"
    return found.group(1)


def split_block(block: str) -> tuple[dict, list[str]]:
    """(the variables its first lines define, every command line), continuation lines joined, comments dropped."""
    lines, current = [], ""
    for raw in block.splitlines():
        line = raw.rstrip()
        if not current and (not line.strip() or line.lstrip().startswith("#")):
            continue
        if line.endswith("\\"):
            current += line[:-1].rstrip() + " "
            continue
        lines.append((current + line.strip()) if current else line)
        current = ""
    assert not current, "the block ends in a continuation line"
    variables = {}
    while lines and re.match(r"^[A-Z_]+=", lines[0]):
        name, value = lines.pop(0).split("=", 1)
        variables[name] = value.split("#", 1)[0].strip()
    return variables, lines


def _labels(n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    prevalence = np.r_[0.4, 0.25, 0.15, np.full(22, 0.06), 0.03, 0.02, 0.02]
    y = (rng.random((n, 28)) < prevalence).astype(np.uint8)
    y[y.sum(1) == 0, 0] = 1
    return y


def _target(labels) -> str:
    return " ".join(str(k) for k in np.flatnonzero(labels)[::-1])  # unsorted, as published files often are


def synthetic_world(root: Path) -> dict:
    """The walk-through's inputs, synthetic, with the real file names and formats. Returns the variables."""
    from hpa_ens.contract import read_prediction_set
    from hpa_ens.labels import read_labels
    from hpa_ens.testing.simulate import write_simulated_sets
    from hpa_ens.utils import logit

    world = {"DATA": root / "data" / "hpa", "LEAKS": root / "data" / "leak", "PREDS": root / "my_predictions",
             "WORK": root / "work"}
    world["SETS"] = world["WORK"] / "sets"
    for key in ("DATA", "LEAKS", "PREDS"):
        world[key].mkdir(parents=True)
    paths = write_simulated_sets(root / "simulation", _labels(700, 3), n_models=2, seed=0, test_fraction=0.3,
                                 n_folds=5)
    for name, key in (("train.csv", "labels"), ("sample_submission.csv", "sample_submission")):
        (world["DATA"] / name).write_bytes(Path(paths[key]).read_bytes())
    for model, folder in zip(("resnet", "densenet"), paths["models"]):
        ps = read_prediction_set(folder)
        for part, frame in (("oof", ps.oof), ("test", ps.test)):
            out = frame.copy()
            if model == "densenet":  # this team saved logits
                out = pd.DataFrame(logit(np.clip(out.to_numpy(), 1e-6, 1 - 1e-6)), index=out.index,
                                   columns=out.columns)
            out.to_csv(world["PREDS"] / f"{model}_{part}.csv", index_label="Id")
    truth = read_labels(paths["test_labels"])
    train = read_labels(paths["labels"])
    test_ids = truth.index.tolist()
    leaked = test_ids[:14]
    rows = [(i, _target(truth.loc[i].to_numpy())) for i in leaked]
    rows.append((leaked[0], "27"))  # an Id repeated with other labels, as in the published file
    pd.DataFrame(rows, columns=["Id", "Target"]).to_csv(world["LEAKS"] / "pudae_leak.csv", index=False)
    matched = test_ids[10:20]
    pd.DataFrame({"Extra": [f"ENSG{k:011d}_{k}_1_A1_1" for k in range(len(matched))], "Test": matched,
                  "SimR": 2, "SimG": 0, "SimB": 2, "Target": [_target(truth.loc[i].to_numpy()) for i in matched],
                  "Target_noisey": [_target(truth.loc[matched[0]].to_numpy())] + [""] * (len(matched) - 1)}
                 ).to_csv(world["LEAKS"] / "test_matches_omlos.csv", index=False)
    pairs = train.index.tolist()[:6]
    pd.DataFrame({"ID": pairs, "Group Id": [1, 1, 2, 2, 3, 3]}).to_csv(world["LEAKS"] / "pedrodiamel_dupes.csv",
                                                                       index=False)
    return {key: str(value) for key, value in world.items()}


def test_the_block_names_its_folders_first_and_uses_only_real_commands():
    variables, commands = split_block(walkthrough_block())
    assert tuple(variables) == VARIABLES
    assert commands and all(c.split()[0] in ("hpa-ens", "awk") for c in commands)
    used = set(re.findall(r"\$([A-Z_]+)", " ".join(commands)))
    assert used <= set(VARIABLES), f"undefined variables {used - set(VARIABLES)}"


def test_the_explanation_carries_the_readme_block():
    assert walkthrough_block(EXPLAINED) == walkthrough_block(SOURCE), \
        "docs/walkthrough.md's block differs from the README's: copy the README's block between the markers"


def test_walkthrough_runs_on_a_synthetic_world(tmp_path):
    from hpa_ens.submit import check_submission

    _, commands = split_block(walkthrough_block())
    world = synthetic_world(tmp_path)
    env = dict(os.environ, PYTHONPATH=str(REPO), HPA_ENS_NO_PROGRESS="1", MPLBACKEND="Agg", PYTHON=sys.executable)
    prelude = 'set -euo pipefail\nhpa-ens() { "$PYTHON" -m hpa_ens "$@"; }\n' + "".join(
        f"{name}={value}\n" for name, value in world.items())
    outputs = []
    for command in commands:
        proc = subprocess.run(["bash", "-c", prelude + command], cwd=tmp_path, env=env, capture_output=True,
                              text=True, timeout=600)
        assert proc.returncode == 0, f"{command}\n{proc.stderr[-3000:]}"
        outputs.append(proc.stdout + proc.stderr)
    work, leaks = Path(world["WORK"]), Path(world["LEAKS"])
    sample = Path(world["DATA"]) / "sample_submission.csv"
    report = check_submission(work / "submission.csv", sample)
    assert report["n_empty"] == 0 and report["n_unsorted"] == 0
    # The leak labels are in the submission, last (union of the repeated Id's rows).
    sub = pd.read_csv(work / "submission.csv", dtype=str, keep_default_na=False).set_index("Id")["Predicted"]
    pudae = pd.read_csv(leaks / "pudae_leak.csv", dtype=str)
    for image_id, group in pudae.groupby("Id"):
        assert set(sub[image_id].split()) == set().union(*(t.split() for t in group["Target"]))
    # The thresholds' OOF score is cross-fitted over the walk-through's folds.
    thresholds = json.loads((work / "thresholds.json").read_text())
    assert thresholds["oof_score_folds"] == f"{world['WORK']}/folds.csv"
    assert thresholds["params"]["target_dist"] == "hpa2018-lb"
    assert re.search(r"macro F1 \d\.\d{4}\s+95% CI", outputs[-1]) and "n=14" in outputs[-1]
