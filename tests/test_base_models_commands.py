"""The base-model command layer (base_models.commands): entry points, the offline hub, no side effects on import."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("torch", reason="needs the [train] extra")
pytest.importorskip("timm", reason="needs the [train] extra")

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
