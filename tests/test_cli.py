"""The command line: one console command, one-line input errors, tracebacks for bugs."""

import subprocess
import sys

import pytest

from hpa_ens.commands import _cli as cli
from hpa_ens.__main__ import COMMANDS, main
from hpa_ens.validation import ContractError


def test_help_lists_every_stage(capsys):
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    for name in ("stack", "thresholds", "base-models", "blend", "submit", "score", "import", "dedup", "folds"):
        assert f"  {name}" in out


def test_python_dash_m_hpa_ens_runs():
    proc = subprocess.run([sys.executable, "-m", "hpa_ens", "--help"], capture_output=True, text=True)
    assert proc.returncode == 0 and "thresholds" in proc.stdout


def test_unknown_command_is_one_line_exit_2(capsys):
    assert main(["stak"]) == 2
    err = capsys.readouterr().err
    assert "unknown command 'stak'" in err and err.count("\n") == 1


def test_every_command_names_a_module_with_main():
    import importlib.util

    for name, (module, _) in COMMANDS.items():
        assert importlib.util.find_spec(module) is not None, name


def _raises(exc):
    def fake_main(argv):
        raise exc
    return fake_main


def test_only_project_errors_are_shortened(capsys):
    assert cli.run(_raises(ContractError("f.csv: bad row 3. Got x instead.\nsecond line")), []) == 2
    err = capsys.readouterr().err
    assert "f.csv: bad row 3. Got x instead." in err and "second line" not in err
    # A bug (KeyError, ValueError from a library, …) keeps its traceback.
    with pytest.raises(KeyError):
        cli.run(_raises(KeyError("x")), [])
    with pytest.raises(ValueError):
        cli.run(_raises(ValueError("not ours")), [])


def test_debug_shows_the_traceback_of_input_errors_too():
    with pytest.raises(ContractError):
        cli.run(_raises(ContractError("bad")), ["--debug"])


def test_subprocess_exit_codes(tmp_path):
    missing = tmp_path / "nope.csv"
    proc = subprocess.run([sys.executable, "-m", "hpa_ens", "score", "--truth", str(missing), "--submission",
                           str(missing)], capture_output=True, text=True)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr and "nope.csv" in proc.stderr


def test_help_shows_defaults_but_not_none():
    ap = cli.parser("x", "y")
    ap.add_argument("--req", required=True, help="required thing")
    ap.add_argument("--opt", default=None, help="optional thing")
    ap.add_argument("--k", default=5, help="a number")
    text = ap.format_help()
    assert "(default: None)" not in text and "(default: 5)" in text


def test_n_jobs_default_is_every_available_cpu():
    assert cli.resolve_n_jobs(-1) == cli.available_cpus() >= 1
    assert cli.resolve_n_jobs(3) == 3
    # joblib's convention: -2 is all but one CPU, never fewer than one.
    assert cli.resolve_n_jobs(-2) == max(1, cli.available_cpus() - 1)
    assert cli.resolve_n_jobs(-1000) == 1
    with pytest.raises(ValueError, match="The 'n_jobs' parameter must be an integer"):
        cli.resolve_n_jobs(1.5)


def test_usage_and_errors_name_the_command_as_typed(tmp_path):
    """`hpa-ens score` from the dispatcher, `python -m hpa_ens.score` from the module's main guard."""
    help_text = subprocess.run([sys.executable, "-m", "hpa_ens", "score", "--help"], capture_output=True, text=True)
    assert help_text.returncode == 0 and help_text.stdout.startswith("usage: hpa-ens score")
    module_help = subprocess.run([sys.executable, "-m", "hpa_ens.score", "--help"], capture_output=True, text=True)
    assert module_help.returncode == 0 and module_help.stdout.startswith("usage: python -m hpa_ens.score")
    sub = tmp_path / "s.csv"
    sub.write_text("Id,Predicted\na,0\n")
    for argv, name in (([sys.executable, "-m", "hpa_ens", "score"], "hpa-ens score"),
                       ([sys.executable, "-m", "hpa_ens.score"], "python -m hpa_ens.score")):
        proc = subprocess.run([*argv, "--submission", str(sub)], capture_output=True, text=True)
        assert proc.returncode == 2 and f"of {name} is required" in proc.stderr, proc.stderr


def test_quiet_silences_information_but_not_errors(tmp_path, capsys):
    from hpa_ens.commands._cli import console, parser, run, say, verbosity, warn

    def command(argv):
        ap = parser("x", "a test command")
        ap.parse_args(argv)
        say("informational line")
        warn("a warning line")
        return verbosity()

    assert run(command, ["-q"]) == -1
    err = capsys.readouterr().err
    assert "informational line" not in err and "a warning line" in err
    assert run(command, []) == 0
    assert "informational line" in capsys.readouterr().err
    assert run(command, ["-v"]) == 1
    assert console.quiet is False  # run() restores the default after each command


def test_progress_callback_draws_one_task_per_description():
    from rich.progress import Progress

    from hpa_ens.commands._cli import progress_callback

    with Progress(disable=True) as bar:
        update = progress_callback(bar)
        update(0, 4, "train (1 cached)")
        update(3, 4, "train (1 cached)")
        update(2, 5, "test (0 cached)")
        tasks = {t.description: (t.completed, t.total) for t in bar.tasks}
    assert tasks == {"train (1 cached)": (3, 4), "test (0 cached)": (2, 5)}


@pytest.mark.parametrize("name, module", [("folds", "hpa_ens.folds"), ("eda", "hpa_ens.eda"), ("dedup", "hpa_ens.dedup"),
                                          ("import", "hpa_ens.import_preds"), ("submit", "hpa_ens.submit"),
                                          ("demo", "hpa_ens.demo")])
def test_moved_commands_keep_their_python_dash_m_form(name, module):
    """The command lives in hpa_ens.commands.<name>; the module's main guard hands over to it."""
    assert COMMANDS[name][0] == f"hpa_ens.commands.{module.rpartition('.')[2]}"
    proc = subprocess.run([sys.executable, "-m", module, "--help"], capture_output=True, text=True)
    assert proc.returncode == 0 and proc.stdout.startswith(f"usage: python -m {module} "), proc.stderr


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_every_command_names_itself_in_its_usage(name, capsys):
    """`hpa-ens NAME --help` starts with `usage: hpa-ens NAME` (the dispatcher passes the name it was given)."""
    if name in ("base-models", "train", "predict", "distill"):
        pytest.importorskip("torch", reason="needs the [train] extra")
    with pytest.raises(SystemExit) as stop:
        main([name, "--help"])
    assert stop.value.code == 0
    assert capsys.readouterr().out.startswith(f"usage: hpa-ens {name} ")
