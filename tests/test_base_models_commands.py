"""The base-model command layer (base_models.commands): entry points, the offline hub, no side effects on import."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("torch", reason="needs the [train] extra (torch)")
pytest.importorskip("timm", reason="needs the [train] extra (timm)")

REPO = Path(__file__).resolve().parents[1]
#: subcommand -> the module whose ``python -m`` form runs it.
FORMS = {"base-models": "base_models.run_all", "train": "base_models.train", "collect": "base_models.collect",
         "features": "base_models.features", "predict": "base_models.predict", "distill": "base_models.distill"}


def _python(code: str, **env_changes) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "HF_HUB_OFFLINE"}
    env.update(env_changes, PYTHONPATH=str(REPO))
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=REPO,
                          timeout=300)


def test_registry_points_at_the_command_modules():
    from hpa_ens.commands import COMMANDS

    for name in FORMS:
        assert COMMANDS[name][0] == f"base_models.commands.{name.replace('-', '_')}"


def test_importing_any_base_models_module_imports_no_timm_and_sets_nothing():
    """timm reads HF_HUB_OFFLINE when imported: no module may import it before a command had its say."""
    code = ("import os, sys, json, pkgutil, importlib, base_models, base_models.commands\n"
            "before = dict(os.environ)\n"
            "names = [m.name for m in pkgutil.walk_packages(base_models.__path__, 'base_models.')]\n"
            "for name in names: importlib.import_module(name)\n"
            "changed = sorted(k for k in set(before) | set(os.environ) if before.get(k) != os.environ.get(k))\n"
            "print(json.dumps([len(names), 'timm' in sys.modules, changed]))")
    proc = _python(code)
    assert proc.returncode == 0, proc.stderr
    n_modules, timm_imported, changed = json.loads(proc.stdout.strip().splitlines()[-1])
    assert n_modules >= 30 and not timm_imported and changed == []


@pytest.mark.parametrize("user_value", [None, "0"])
def test_a_command_sets_the_offline_hub_before_timm_unless_the_user_did(user_value):
    # --loss focl fails in load_config after the backbone check, which imports timm.
    code = ("import os, sys\n"
            "from hpa_ens.commands._cli import run\n"
            "from base_models.commands import train\n"
            "assert 'timm' not in sys.modules\n"
            "code = run(train.main, ['--data', 'd', '--folds', 'f', '--fold', '0', '--backbone',"
            " 'mobilenetv3_small_050', '--loss', 'focl'])\n"
            "import huggingface_hub.constants as hub\n"
            "print(code, 'timm' in sys.modules, hub.HF_HUB_OFFLINE, os.environ.get('HF_HUB_OFFLINE'))")
    proc = _python(code, **({} if user_value is None else {"HF_HUB_OFFLINE": user_value}))
    assert proc.returncode == 0, proc.stderr
    assert "The 'loss' parameter must be one of" in proc.stderr
    expected = "2 True True 1" if user_value is None else "2 True False 0"
    assert proc.stdout.strip().splitlines()[-1] == expected


def test_offline_hub_keeps_the_users_setting(monkeypatch):
    from base_models.commands._env import offline_hub

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    offline_hub()
    assert os.environ["HF_HUB_OFFLINE"] == "1"
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    offline_hub()
    assert os.environ["HF_HUB_OFFLINE"] == "0"


def test_a_missing_train_extra_is_the_dispatchers_one_line_error():
    code = ("import importlib.util, sys\n"
            "real = importlib.util.find_spec\n"
            "importlib.util.find_spec = lambda name, *a: None if name == 'timm' else real(name, *a)\n"
            "from hpa_ens.commands import main\n"
            "sys.exit(main(['train', '--help']))")
    proc = _python(code)
    assert proc.returncode == 2
    # (The dispatcher's "[train]" is read as rich markup and not shown: reported to the integrator.)
    assert proc.stderr.count("\n") == 1 and "`hpa-ens train` needs the" in proc.stderr
    assert "extra (timm is not installed)" in proc.stderr


@pytest.mark.parametrize("name", sorted(FORMS))
def test_every_python_dash_m_form_reaches_its_command(name):
    proc = subprocess.run([sys.executable, "-m", FORMS[name], "--help"], capture_output=True, text=True, cwd=REPO,
                          env=dict(os.environ, PYTHONPATH=str(REPO)), timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith(f"usage: python -m {FORMS[name]} [-h] [--debug] [-q | -v]")


# ------------------------------------------------------------------------------------- flags only
_HIDDEN_INPUTS = {"DATA": "/nonexistent/data", "OUT": "/nonexistent/out", "MODELS": "no_such_config", "FOLDS": "3",
                  "FOLDS_FILE": "/nonexistent/folds.csv", "JOBS": "7", "EPOCHS": "99", "IMAGE_SIZE": "17",
                  "CACHE_DIR": "/nonexistent/cache", "CHANNEL_STATS": "/nonexistent/stats.json", "RESUME": "1"}


def test_base_models_reads_flags_only_not_the_environment():
    """The shell variables it once read change nothing: what run_all receives is the flags' defaults."""
    code = ("import json\n"
            "from base_models.commands import base_models as cmd\n"
            "seen = {}\n"
            "def fake_run_all(data_dir, configs, **kwargs):\n"
            "    seen.update(kwargs, data_dir=data_dir, configs=configs)\n"
            "    return []\n"
            "cmd.run_all = fake_run_all\n"
            "assert cmd.main([]) == 0\n"
            "print(json.dumps({k: v for k, v in seen.items() if k not in ('echo', 'log', 'make_progress')},"
            " default=str))")
    plain = _python(code)
    hidden = _python(code, **_HIDDEN_INPUTS)
    assert plain.returncode == 0 and hidden.returncode == 0, plain.stderr + hidden.stderr
    received = json.loads(hidden.stdout.strip().splitlines()[-1])
    assert received == json.loads(plain.stdout.strip().splitlines()[-1])
    assert received["data_dir"] == "data/synth" and received["explicit_data"] is False
    assert received["names"] is None and received["folds_path"] is None and received["folds"] is None
    assert received["out_root"] == "oof" and received["n_jobs"] == -1 and received["resume"] is False
    assert received["overrides"] == {"task": "hpa2018"}


def test_base_models_help_names_no_environment_variable():
    proc = subprocess.run([sys.executable, "-m", "base_models.run_all", "--help"], capture_output=True, text=True,
                          cwd=REPO, env=dict(os.environ, PYTHONPATH=str(REPO), **_HIDDEN_INPUTS), timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "env" not in proc.stdout.lower()
    assert "(default: oof)" in proc.stdout and "--pretrained" in proc.stdout and "--models" in proc.stdout


def test_base_models_flags_become_config_keys():
    from base_models.commands import base_models as cmd

    args = cmd.build_parser().parse_args(["--pretrained", "--epochs", "2", "--image-size", "48", "--models", "a", "b",
                                          "--fold", "0", "1"])
    assert cmd.config_overrides(args) == {"epochs": 2, "image_size": 48, "pretrained": True, "task": "hpa2018"}
    assert args.names == ["a", "b"] and args.fold == [0, 1]


def test_predict_says_n_jobs_and_keeps_threads_as_a_hidden_alias():
    from base_models.commands import predict as cmd

    ap = cmd.build_parser()
    base = ["--checkpoint", "c", "--data", "d"]
    assert ap.parse_args(base).n_jobs == -1
    assert ap.parse_args(base + ["--n-jobs", "3"]).n_jobs == 3
    assert ap.parse_args(base + ["--threads", "2"]).n_jobs == 2
    text = ap.format_help()
    assert "--n-jobs" in text and "--threads" not in text


def test_the_demo_passes_flags_to_the_base_model_stage(tmp_path):
    from hpa_ens.commands import demo

    args = demo.build_parser().parse_args(["--epochs", "2", "--image-size", "32"])
    stages = demo.build_stages(Path("data"), Path("work"), Path("reports"), Path("oof"),
                               ["features", "regnetx_002", "resnet10t"], args)
    stage = next(s for s in stages if s.name == "base_models")
    command = stage.command[stage.command.index("base_models.run_all") + 1:]
    assert command == ["--data", "data", "--out", "oof", "--names", "regnetx_002", "resnet10t", "--channel-stats",
                       str(Path("reports/eda/channel_stats.json")), "--folds", str(Path("data/folds.csv")),
                       "--n-jobs", "2", "--epochs", "2", "--image-size", "32"]
    assert set(stage.env) == {"HF_HUB_OFFLINE", "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"}
    assert not set(_HIDDEN_INPUTS) & set(stage.env)
