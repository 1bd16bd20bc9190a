"""``hpa-ens demo``: the whole pipeline on the embedded synthetic set, from images to a scored submission.

The stage graph (:func:`build_stages`: every stage a ``python -m`` subprocess with its inputs and
outputs) runs through :mod:`._stages`, which skips a stage whose inputs' hashes are unchanged; then
:func:`hpa_ens.demo_report.build_report` scores every stage on the synthetic test truth and writes the
report, and the tables are printed. See :mod:`hpa_ens.demo` for the stages and ``docs/recipe.md`` for
the recipe.

``--data`` is only ever generated into when it is empty (or absent) or carries the generator's marker
file (``hpa_ens.synth.generate.MARKER``): a folder holding anything else, such as a user's own data
set, is refused before any stage runs.
"""

from __future__ import annotations

import argparse
import importlib.util
import time
from importlib import resources
from pathlib import Path
from typing import Sequence

from ..validation import ContractError, ParameterError
from ..synth import probe_rows
from ._cli import console, parser, prog, train_extra_message
from ._stages import Stage, py, run_stage

NAME = "demo"
#: The hpa_ens package folder: the stages' source files are among their inputs.
PACKAGE = Path(__file__).resolve().parents[1]

#: Environment of every training stage (one BLAS/OpenMP thread per process) and its fixed number of fold
#: jobs (``--n-jobs``), so the same seed gives the same bytes whatever the machine's core count.
#: The demo's members (docs/recipe.md): two CNN families on a fixed 12-epoch schedule and the torch-free
#: image-feature model; 3 folds each.
DEFAULT_MODELS = ("features", "regnetx_002", "resnet10t")

FIXED_THREADS = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
FOLD_JOBS = 2


def _base_models_dir() -> Path:
    """Where the base_models package lives (found without importing it: that would import torch)."""
    spec = importlib.util.find_spec("base_models")
    if spec is None or spec.origin is None:
        raise ContractError("The base-model stage needs the base_models package and the [train] extra. Got neither installed instead; run `make install`.")
    return Path(spec.origin).parent


_ECHOED: list[str] = []


def _echo(line: str) -> None:
    """A finished fold, printed as it happens (one line, also when the output is a log file)."""
    console.print(f"\n  {line.strip()}", end="", highlight=False, markup=False, soft_wrap=True)
    _ECHOED.append(line)


def _src(*modules: str) -> list[Path]:
    """The source of ``modules`` (paths below hpa_ens/, no suffix; a package is its folder): a stage reruns when
    its code changes."""
    return [PACKAGE / m if (PACKAGE / m).is_dir() else PACKAGE / f"{m}.py" for m in modules]


def _packaged(name: str) -> Path:
    return Path(str(resources.files("hpa_ens").joinpath(f"data/{name}")))


def check_data_folder(data: Path) -> None:
    """Refuse to generate into a folder the generator did not make (a user's data must never be touched).

    Accepted: an absent or empty folder, or one carrying the generator's marker
    (:data:`hpa_ens.synth.generate.MARKER`, written before any image).

    Raises
    ------
    ContractError
        When ``data`` is a file, or a non-empty folder without the marker (one line naming it).
    """
    from ..synth.generate import check_generated_folder

    check_generated_folder(data, overwrite=True)


def config_kind(path: Path) -> str:
    """``features`` for a feature-model config, ``cnn`` otherwise (read without importing base_models)."""
    import yaml

    try:
        loaded = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as err:
        raise ContractError(f"{path}: cannot read this config ({err}).") from None
    return "features" if isinstance(loaded, dict) and loaded.get("kind") == "features" else "cnn"


def announced_target(data: Path, n_test: int) -> tuple[Path, int]:
    """What the demo's rules are told: the synthetic set's public-leaderboard probe (``lb_probe.csv``, the shares of
    30 % of the test rows) and its row count, for ``--target-dist`` and ``--target-n``."""
    return data / "lb_probe.csv", probe_rows(n_test)


def build_stages(data: Path, work: Path, reports: Path, oof_root: Path, models: list[str],
                 args: argparse.Namespace) -> list[Stage]:
    """The demo's stages, in order, with their inputs and outputs (paths relative to the working directory)."""
    lb_dist = _packaged("lb_label_distribution.csv")  # what the built-in target name stands for: a stage input
    lb_target = "hpa2018-lb"  # the synthetic test labels are drawn toward it; no rule is ever told it
    train_csv, sample_sub = data / "train.csv", data / "sample_submission.csv"
    # What the rules are told: a public-leaderboard probe of 30 % of the test rows, with its sampling error.
    probe, probe_n = announced_target(data, args.n_test)
    rule_flags = [] if args.method is None else ["--method", args.method]
    if args.tolerance is not None:
        rule_flags += ["--tolerance", args.tolerance]
    folds = data / "folds.csv"
    stats = reports / "eda" / "channel_stats.json"
    model_dirs = [oof_root / m for m in models]
    config_dir = _base_models_dir() / "configs"
    kinds = {m: config_kind(config_dir / f"{m}.yaml") for m in models}
    cnns = [m for m in models if kinds[m] == "cnn"]
    feature_models = [m for m in models if kinds[m] == "features"]
    blend_dir, stack_dir = oof_root / "blend_mean", oof_root / "stack"
    thresholds, duplicates = work / "thresholds.json", work / "duplicates.csv"
    base_models_dir = _base_models_dir()
    base_flags = ["--data", data, "--out", oof_root, "--names", *cnns, "--channel-stats", stats, "--folds", folds,
                  "--n-jobs", FOLD_JOBS]
    if args.epochs:
        base_flags += ["--epochs", args.epochs]
    if args.image_size:
        base_flags += ["--image-size", args.image_size]
    stages = [
        Stage("synth", py("hpa_ens.synth", "--out", data, "--n-train", args.n_train, "--n-test", args.n_test,
                          "--size", args.size, "--seed", args.seed, "--target-dist", lb_target, "--overwrite"),
              inputs=_src("synth/generate", "synth/draw", "commands/synth") + [lb_dist],
              outputs=[train_csv, sample_sub, data / "truth" / "test_labels.csv", probe]),
        Stage("folds", py("hpa_ens.folds", "--labels", train_csv, "--out", folds, "--n-folds", args.n_folds,
                          "--seed", args.seed),
              inputs=_src("folds", "groups", "commands/folds") + [train_csv], outputs=[folds]),
        Stage("eda", py("hpa_ens.eda", "--labels", train_csv, "--target-dist", probe, "--images", data / "train",
                        "--n-jobs", 2, "--out", reports / "eda"),
              inputs=_src("eda", "channel_stats", "commands/eda") + [train_csv, probe],
              outputs=[reports / "eda" / "index.html", stats]),
    ]
    for m in feature_models:
        stages.append(Stage(
            f"features_{m}",
            py("base_models.features", "--config", config_dir / f"{m}.yaml", "--data", data, "--folds", folds,
               "--out", oof_root, "--n-jobs", FOLD_JOBS),
            inputs=[base_models_dir / "features.py", base_models_dir / "commands" / "features.py", *_src("images"),
                    config_dir / f"{m}.yaml", train_csv, folds, sample_sub],
            outputs=[oof_root / m / "meta.json"], env=dict(FIXED_THREADS)))
    if cnns:
        code = sorted(p for p in base_models_dir.rglob("*.py") if p.name != "features.py")  # commands/ too
        stages.append(Stage("base_models", py("base_models.run_all", *base_flags),
                            inputs=code + [config_dir / f"{m}.yaml" for m in cnns] + [train_csv, folds, sample_sub, stats],
                            outputs=[oof_root / m / "meta.json" for m in cnns],
                            env={"HF_HUB_OFFLINE": "1", **FIXED_THREADS}))
    stages += [
        Stage("blend", py("hpa_ens.blend", "--labels", train_csv, "--pred", *model_dirs, "--method", "mean",
                          "--out", blend_dir),
              inputs=_src("ensemble", "commands/blend") + [d / "meta.json" for d in model_dirs], outputs=[blend_dir / "meta.json"]),
        Stage("stack", py("hpa_ens.stack", "--labels", train_csv, "--folds", folds, "--pred", *model_dirs,
                          "--out", stack_dir, "--seed", args.seed),
              inputs=_src("ensemble", "commands/stack") + [folds] + [d / "meta.json" for d in model_dirs], outputs=[stack_dir / "meta.json"]),
        Stage("thresholds", py("hpa_ens.tune_thresholds", "--labels", train_csv, "--pred", stack_dir, "--out", thresholds,
                               "--folds", folds, "--target-dist", probe, "--target-n", probe_n, *rule_flags,
                               "--min-labels", 1, "--max-labels", 5, "--plots", reports / "thresholds"),
              inputs=_src("thresholds", "commands/thresholds") + [stack_dir / "meta.json", folds, probe],
              outputs=[thresholds]),
        Stage("dedup", py("hpa_ens.dedup", "--train-dir", data / "train", "--test-dir", data / "test",
                          "--out", duplicates, "--n-jobs", 2, "--cache", work / "hashes.npz"),
              inputs=_src("dedup", "commands/dedup") + [train_csv, sample_sub], outputs=[duplicates]),
    ]
    submit = py("hpa_ens.submit", "--pred", stack_dir, "--thresholds", thresholds, "--sample-submission", sample_sub,
                "--target-dist", probe)
    for name, extra in (
        ("submit_thresholds", []),
        ("submit_duplicates", ["--duplicates", duplicates, "--labels", train_csv]),
        ("submit_leak", ["--duplicates", duplicates, "--labels", train_csv, "--leak", data / "leak.csv"]),
    ):
        out = work / f"{name}.csv"
        stages.append(Stage(name, submit + ["--out", str(out)] + [str(e) for e in extra],
                            inputs=_src("submit", "groups", "leak", "thresholds", "commands/submit")
                            + [thresholds, duplicates, stack_dir / "meta.json", data / "leak.csv", probe],
                            outputs=[out]))
    return stages


def default_models() -> list[str]:
    """Every config in ``base_models/configs`` (CNNs and feature models), by file stem: what --models may name."""
    return sorted(p.stem for p in (_base_models_dir() / "configs").glob("*.yaml"))


def build_parser() -> argparse.ArgumentParser:
    ap = parser(NAME, "Run the whole pipeline on the embedded synthetic set and score it.")
    ap.add_argument("--data", type=Path, default=Path("data/synth"), help="where the synthetic set goes")
    ap.add_argument("--work", type=Path, default=Path("work/demo"), help="thresholds, duplicates, submissions, logs")
    ap.add_argument("--reports", type=Path, default=Path("reports/demo"))
    ap.add_argument("--oof", type=Path, default=Path("oof"), help="prediction sets")
    ap.add_argument("--models", default=None, help="comma-separated configs of base_models/configs (CNN or kind: features; default: "
                    + ",".join(DEFAULT_MODELS) + ")")
    ap.add_argument("--n-train", type=int, default=2500)
    ap.add_argument("--n-test", type=int, default=1000)
    ap.add_argument("--size", type=int, default=64, help="synthetic image side in pixels")
    ap.add_argument("--n-folds", type=int, default=3, help="folds of every base model (3: fewer, better fits in "
                    "the CPU budget; see docs/recipe.md)")
    ap.add_argument("--method", default=None, help="thresholds: the rule (default: the package's default with a "
                    "target, told the synthetic leaderboard probe lb_probe.csv and its row count)")
    ap.add_argument("--tolerance", type=float, default=None, help="thresholds: the rule's tolerance, where it has one")
    ap.add_argument("--epochs", type=int, default=None, help="override every base-model config's epochs (quick runs)")
    ap.add_argument("--image-size", type=int, default=None, help="override every base-model config's image size")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--force", action="store_true", help="rerun every stage even when fresh")
    return ap


def resolve_models(spec: str | None) -> list[str]:
    """The demo's members: ``spec`` (comma-separated config names) or the default recipe; unknown names refused."""
    if importlib.util.find_spec("torch") is None:
        raise ContractError(train_extra_message("torch", prog(NAME)))
    models = [m.strip() for m in spec.split(",") if m.strip()] if spec else list(DEFAULT_MODELS)
    known = default_models()
    unknown = [m for m in models if m not in known]
    if unknown:
        raise ParameterError(f"The 'models' parameter must name configs in base_models/configs ({', '.join(known)}). "
                             f"Got {unknown[0]!r} instead.")
    return models


def run_demo(args: argparse.Namespace, models: list[str]) -> dict[str, float]:
    """Run every stage (fresh ones are skipped), then write and print the report; returns each stage's seconds."""
    stages = build_stages(args.data, args.work, args.reports, args.oof, models, args)
    stamps, logs = args.work / "stamps", args.work / "logs"
    timings: dict[str, float] = {}
    for stage in stages:
        console.print(f"[bold]{stage.name}[/bold] …", end=" ")
        _ECHOED.clear()
        ran, seconds = run_stage(stage, stamps, force=args.force, log_dir=logs, echo=_echo)
        timings[stage.name] = seconds
        prefix = f"\n{stage.name} " if _ECHOED else ""
        console.print(f"{prefix}{'done' if ran else 'fresh, skipped'} ({seconds:.1f} s)")
    from ..demo_report import build_report

    probe, probe_n = announced_target(args.data, args.n_test)
    results = build_report(args.data, args.work, args.reports, args.oof, models, timings, seed=args.seed,
                           target_dist=probe, target_n=probe_n,
                           method=args.method, tolerance=args.tolerance)
    _print_tables(results)
    return timings


def _print_tables(results: dict) -> None:
    """The base models' table, then the stages' table (both also in the HTML report)."""
    from rich.table import Table

    from ..demo_report import HEADER, format_row

    for title, table_rows in (("base models at the demo's thresholds (same rule as the stack)", results["members"]),
                              ("hpa-ens demo: macro F1 on the synthetic test truth", results["rows"])):
        table = Table(title=title)
        for col in HEADER:
            table.add_column(col, justify="left" if col == "stage" else "right")
        for r in table_rows:
            table.add_row(*format_row(r))
        console.print(table)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    models = resolve_models(args.models)
    check_data_folder(args.data)
    start = time.perf_counter()
    run_demo(args, models)
    console.print(f"demo finished in {time.perf_counter() - start:.1f} s; report: {args.reports / 'index.html'}")
    return 0

