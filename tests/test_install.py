"""The two installs (docs/install.md): ``pip install .`` runs every post-processing command and the notebook
API without torch; ``pip install '.[train]'`` adds the base models.

The torch-free install is simulated in child interpreters: a ``sitecustomize`` on their ``PYTHONPATH`` takes
the packages that only the extras install out of the import system (``import torch`` raises
``ModuleNotFoundError``, ``importlib.util.find_spec("torch")`` is None: exactly as when they are not
installed), in the children's own children too (joblib's workers, the stages' subprocesses).
"""

from __future__ import annotations

import ast
import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
from importlib import metadata
from pathlib import Path

import numpy as np
import pytest

from hpa_ens.commands import main as hpa_ens_main
from hpa_ens.report import image_links
from hpa_ens.testing.simulate import simulated_labels, write_simulated_sets

REPO = Path(__file__).resolve().parents[1]
PROJECT = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]

#: Every distribution of the [train] and [parquet] extras -> the top-level module it installs.
EXTRA_MODULES = {"torch": "torch", "torchvision": "torchvision", "timm": "timm", "safetensors": "safetensors",
                 "scikit-image": "skimage", "pyarrow": "pyarrow"}
HIDDEN = tuple(EXTRA_MODULES.values())

SITECUSTOMIZE = f'''"""A torch-free `pip install .`, simulated: the extras' packages are not found (tests/test_install.py)."""
import importlib.machinery
import sys

HIDDEN = {set(HIDDEN)!r}


class NotInstalled(importlib.machinery.PathFinder):
    @classmethod
    def find_spec(cls, name, path=None, target=None):
        if name.partition(".")[0] in HIDDEN:
            return None
        return super().find_spec(name, path, target)


sys.meta_path[sys.meta_path.index(importlib.machinery.PathFinder)] = NotInstalled
'''

#: The base-model modules and commands that need no torch (base_models/__init__.py says which).
TORCH_FREE_BASE_MODELS = ("base_models", "base_models.collect", "base_models.config", "base_models.crop_cache",
                          "base_models.features", "base_models.freshness", "base_models.registry",
                          "base_models.run_all", "base_models.samplers", "base_models.segment",
                          "base_models.commands.base_models", "base_models.commands.collect",
                          "base_models.commands.features")

TRAIN_EXTRA_ERROR = re.compile(r"error: `(?P<prog>[^`]+)` needs the \[train\] extra \((torch|timm) is not "
                               r"installed\); run `pip install 'hpa-ens\[train\]'` \(or `make install`\)\.")


def _requirement_name(requirement: str) -> str:
    return re.match(r"[A-Za-z0-9._-]+", requirement).group(0).lower().replace("_", "-")


@pytest.fixture(scope="module")
def torch_free_env(tmp_path_factory) -> dict[str, str]:
    """The environment of a child interpreter that sees no package of the [train] or [parquet] extra."""
    site = tmp_path_factory.mktemp("torch_free_site")
    (site / "sitecustomize.py").write_text(SITECUSTOMIZE, encoding="utf-8")
    path = [str(site), str(REPO)] + ([os.environ["PYTHONPATH"]] if os.environ.get("PYTHONPATH") else [])
    return dict(os.environ, PYTHONPATH=os.pathsep.join(path))


def _torch_free(env: dict[str, str], *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    """``python ARGS`` in the simulated torch-free install."""
    return subprocess.run([sys.executable, *map(str, args)], env=env, cwd=cwd or REPO, capture_output=True,
                          text=True, timeout=600)


def _child_json(env: dict[str, str], code: str) -> dict:
    proc = _torch_free(env, "-c", code)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_the_hidden_packages_are_exactly_the_train_and_parquet_extras():
    extras = PROJECT["optional-dependencies"]
    assert {_requirement_name(r) for r in extras["train"] + extras["parquet"]} == set(EXTRA_MODULES)
    core = {_requirement_name(r) for r in PROJECT["dependencies"]}
    assert not core & set(EXTRA_MODULES), "a package of an extra is also a core dependency"


def test_the_simulated_install_has_no_torch(torch_free_env):
    """The simulation itself: every hidden package is not found and not importable; the core ones are."""
    code = ("import importlib, importlib.util, json\n"
            f"hidden = {HIDDEN!r}\n"
            "found = [m for m in hidden if importlib.util.find_spec(m) is not None]\n"
            "importable = []\n"
            "for m in hidden:\n"
            "    try:\n"
            "        importlib.import_module(m)\n"
            "        importable.append(m)\n"
            "    except ModuleNotFoundError as err:\n"
            "        assert err.name == m, err\n"
            "import numpy, pandas, sklearn, scipy, lightgbm, hpa_ens\n"
            "print(json.dumps({'found': found, 'importable': importable, 'hpa_ens': hpa_ens.__file__}))")
    got = _child_json(torch_free_env, code)
    assert got == {"found": [], "importable": [], "hpa_ens": str(REPO / "hpa_ens" / "__init__.py")}


def test_every_library_module_and_the_notebook_api_work_without_torch(torch_free_env):
    """``import hpa_ens``, every module of it, the torch-free base-model modules, and the estimators at work."""
    code = f"""
import importlib, json, pkgutil, sys
import numpy as np
import hpa_ens

modules = [m.name for m in pkgutil.walk_packages(hpa_ens.__path__, "hpa_ens.")] + {list(TORCH_FREE_BASE_MODELS)!r}
for name in modules:
    importlib.import_module(name)

# docs/api.md's toy problem, smaller
rng = np.random.default_rng(0)
y = (rng.random((300, 4)) < 0.3).astype(int)
oof_sets = [np.clip(0.55 * y + 0.8 * np.random.default_rng(s).random(y.shape), 0, 1) for s in (1, 2)]
folds = np.arange(300) % 3
blend = hpa_ens.Blender(method="mean").fit(oof_sets, y).predict(oof_sets)
stacker = hpa_ens.Stacker(n_rounds=20, seed=0, n_jobs=1).fit(oof_sets, y, folds)
labels = hpa_ens.ThresholdTuner(method="boot", min_labels=1).fit(stacker.oof_, y).transform(stacker.predict(oof_sets))
hidden = sorted(m for m in sys.modules if m.partition(".")[0] in {HIDDEN!r})
print(json.dumps({{"n_modules": len(modules), "blend": blend.shape, "labels": labels.shape,
                  "min_labels": int(labels.sum(1).min()), "f1": hpa_ens.macro_f1(y, labels), "hidden": hidden}}))
"""
    got = _child_json(torch_free_env, code)
    assert got["n_modules"] > 60 and got["hidden"] == []
    assert got["blend"] == [300, 4] and got["labels"] == [300, 4] and got["min_labels"] >= 1
    assert got["f1"] > 0.5


def _labels(n: int, seed: int) -> np.ndarray:
    return simulated_labels(n, seed)


#: The post-processing pipeline: (command, arguments), run in a folder holding the simulated world. Another
#: stage (e.g. ``report``) is one more line; its outputs compared byte for byte go in OUTPUTS.
PIPELINE = [
    ("stack", ["--labels", "train.csv", "--folds", "folds.csv", "--pred", "oof/model_0", "oof/model_1",
               "oof/model_2", "--n-rounds", "15", "--early-stopping", "5", "--min-positives", "8",
               "--n-jobs", "1", "--out", "stack"]),
    ("thresholds", ["--labels", "train.csv", "--pred", "stack", "--target-dist", "train", "--out",
                    "thresholds.json"]),
    ("submit", ["--pred", "stack", "--thresholds", "thresholds.json", "--sample-submission",
                "sample_submission.csv", "--out", "submission.csv"]),
    ("score", ["--truth", "truth/test_labels.csv", "--submission", "submission.csv", "--json", "score.json"]),
    ("report", ["--pred", "oof/model_0", "oof/model_1", "oof/model_2", "--labels", "train.csv", "--folds",
                "folds.csv", "--stack", "stack", "--truth", "truth/test_labels.csv", "--n-boot", "50",
                "--out", "report"]),
]
#: What the pipeline writes, compared byte for byte with the same commands where torch is installed.
OUTPUTS = ["stack/oof.csv", "stack/test.csv", "submission.csv"]


def test_stack_thresholds_submit_run_without_torch_and_write_the_same_bytes(torch_free_env, tmp_path, monkeypatch):
    world = tmp_path / "torch_free"
    write_simulated_sets(world, _labels(400, 1), n_models=3, seed=0, n_folds=2)
    reference = tmp_path / "full"
    shutil.copytree(world, reference)
    for name, args in PIPELINE:
        proc = _torch_free(torch_free_env, "-m", "hpa_ens", name, *args, cwd=world)
        assert proc.returncode == 0, f"hpa-ens {name}: {proc.stderr[-3000:]}"
    score = json.loads((world / "score.json").read_text())
    assert 0.3 < score["macro_f1"] <= 1
    page = (world / "report" / "index.html").read_text()
    for name in ("model_0", "model_1", "model_2", "stack", "mean blend"):
        assert name in page, name
    assert all((world / "report" / link).stat().st_size > 1000 for link in image_links(page))
    # The same commands in this process, where torch may be importable: the same numbers, to the byte.
    monkeypatch.chdir(reference)
    for name, args in PIPELINE:
        assert hpa_ens_main([name, *args]) == 0, name
    for output in OUTPUTS:
        assert (world / output).read_bytes() == (reference / output).read_bytes(), output
    thresholds = [json.loads((folder / "thresholds.json").read_text())["thresholds"] for folder in (world, reference)]
    assert thresholds[0] == thresholds[1]
    # The report's numbers too (its provenance quotes each set's creation time, which differs between the runs).
    reports = [json.loads((folder / "report" / "report.json").read_text()) for folder in (world, reference)]
    for report in reports:
        for row in report["leaderboard"]:
            row.pop("provenance", None)
    assert reports[0] == reports[1]


#: Every way to start a command that needs torch (base-models and demo: with their CNN configs).
NEEDS_TORCH = [["-m", "hpa_ens", "train"], ["-m", "base_models.train"],
               ["-m", "hpa_ens", "predict"], ["-m", "base_models.predict"],
               ["-m", "hpa_ens", "distill"], ["-m", "base_models.distill"],
               ["-m", "hpa_ens", "base-models"], ["-m", "base_models.run_all"],
               ["-m", "hpa_ens", "base-models", "--names", "resnet10t", "features", "--data", "elsewhere"],
               ["-m", "hpa_ens", "demo"], ["-m", "hpa_ens.demo"]]


@pytest.mark.parametrize("argv", NEEDS_TORCH, ids=" ".join)
def test_commands_needing_torch_refuse_in_one_line_and_touch_nothing(torch_free_env, tmp_path, argv):
    proc = _torch_free(torch_free_env, *argv, cwd=tmp_path)
    assert proc.returncode == 2 and proc.stdout == "", proc.stderr[-3000:]
    line = TRAIN_EXTRA_ERROR.fullmatch(proc.stderr.strip())
    assert line, proc.stderr[-3000:]
    typed = f"hpa-ens {argv[2]}" if argv[1] == "hpa_ens" else f"python -m {argv[1]}"
    assert line["prog"] == typed
    assert list(tmp_path.iterdir()) == []  # no synthetic data generated, no folder made


@pytest.mark.parametrize("name", ["base-models", "collect", "features"])
def test_torch_free_base_model_commands_start_without_torch(torch_free_env, name):
    proc = _torch_free(torch_free_env, "-m", "hpa_ens", name, "--help")
    assert proc.returncode == 0 and proc.stdout.startswith(f"usage: hpa-ens {name} "), proc.stderr[-3000:]


@pytest.mark.slow
def test_the_feature_base_model_runs_without_torch(torch_free_env, tmp_path):
    """``hpa-ens base-models`` with only a ``kind: features`` config: images to a prediction set, no torch."""
    config = tmp_path / "tiny_features.yaml"
    config.write_text("kind: features\nfeatures: [channel_stats]\nmodel: logistic\nC: 0.1\ntest: fold_mean\n")
    steps = [["synth", "--out", "data", "--n-train", "60", "--n-test", "20", "--size", "32", "--n-jobs", "1"],
             ["folds", "--labels", "data/train.csv", "--out", "data/folds.csv", "--n-folds", "2", "--no-plot"],
             ["base-models", "--data", "data", "--configs", str(config), "--out", "oof", "--n-jobs", "1"]]
    for argv in steps:
        proc = _torch_free(torch_free_env, "-m", "hpa_ens", *argv, cwd=tmp_path)
        assert proc.returncode == 0, f"hpa-ens {argv[0]}: {proc.stderr[-3000:]}"
    assert sorted(p.name for p in (tmp_path / "oof" / "tiny_features").iterdir()) == ["meta.json", "oof.csv",
                                                                                     "test.csv"]


def test_parquet_without_its_extra_is_a_one_line_error_naming_the_extra(torch_free_env, tmp_path):
    pytest.importorskip("pyarrow", reason="needs the [parquet] extra")  # this process writes the file
    import pandas as pd

    ids = [f"t{i:03d}" for i in range(5)]
    frame = pd.DataFrame(np.full((5, 28), 0.25), columns=[str(k) for k in range(28)])
    frame.insert(0, "Id", ids)
    frame.to_parquet(tmp_path / "team.parquet", index=False)
    needs = "reading parquet needs the [parquet] extra (pyarrow is not installed); run `pip install 'hpa-ens[parquet]'`."
    code = ("import json, hpa_ens\n"
            "try:\n"
            f"    hpa_ens.read_probs('team.parquet', {ids!r})\n"
            "except hpa_ens.ContractError as err:\n"
            "    print(json.dumps(str(err)))\n")
    proc = _torch_free(torch_free_env, "-c", code, cwd=tmp_path)
    assert proc.returncode == 0 and json.loads(proc.stdout) == f"team.parquet: {needs}", proc.stderr[-3000:]
    proc = _torch_free(torch_free_env, "-m", "hpa_ens", "import", "--test", "team.parquet", "--out", "set",
                       cwd=tmp_path)
    assert proc.returncode == 2 and proc.stderr.strip() == f"error: team.parquet: {needs}", proc.stderr[-3000:]
    assert not (tmp_path / "set").exists()


def _third_party_imports(package: Path) -> dict[str, str]:
    """Top-level module -> one file importing it, for every import outside the standard library and the project."""
    found: dict[str, str] = {}
    for path in sorted(package.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                top = name.partition(".")[0]
                if top not in sys.stdlib_module_names and top not in ("hpa_ens", "base_models"):
                    found.setdefault(top, str(path.relative_to(REPO)))
    return found


def test_the_torch_free_library_imports_only_core_dependencies():
    """Every package ``hpa_ens`` imports (lazy imports too) is a core dependency of pyproject.toml."""
    core = {_requirement_name(r) for r in PROJECT["dependencies"]}
    distributions = metadata.packages_distributions()
    outside = {module: where for module, where in _third_party_imports(REPO / "hpa_ens").items()
               if not core & {d.lower().replace("_", "-") for d in distributions.get(module, [])}}
    assert not outside, f"hpa_ens imports packages that `pip install .` does not install: {outside}"
