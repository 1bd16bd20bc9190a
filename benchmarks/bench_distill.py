"""Student vs the demo's best ensemble on the synthetic set: OOF and test macro F1, inference images/s.

``.venv/bin/python benchmarks/bench_distill.py [--quick] [--work DIR | --data DIR --oof DIR] [--teacher-models
features,regnetx_002,resnet10t] [--student base_models/configs/mobilenetv3_small_100.yaml [MORE.yaml ...]]
[--alpha 0.7] [--temperature 1] [--self-train] [--plain-student] [--tta flips] [--threads 1]``

Builds what is missing, all in this process, then compares side by side:

- the synthetic set and its folds;
- the teacher's members: the demo's (``features``, ``regnetx_002``, ``resnet10t``: ``hpa_ens.commands.demo.
  DEFAULT_MODELS``), each on every fold;
- the two ensembles the demo recipe makes of them: the ``mean`` blend (``OOF/blend_mean``) and the LightGBM
  stack (``OOF/stack``, seed 0);
- **the teacher: the one of those two with the higher OOF macro F1** (per-class best thresholds on the OOF
  rows). It is chosen on the OOF rows only, never on the test rows or their labels;
- each ``--student`` config (a different, smaller backbone than the members) distilled from that teacher,
  and with ``--plain-student`` its twin trained without the teacher (``alpha 0``, no self-training).

Reported, per set:

- OOF macro F1 with per-class best thresholds (optimistic: tuned on the same rows), and test macro F1 with
  those OOF thresholds applied to the test probabilities against the synthetic truth (honest: the test
  labels are never seen);
- inference images/s on the test images at the same TTA and threads, model time only (decoding is done
  beforehand for both sides): the teacher is every checkpoint of every CNN member (how its test
  probabilities were made) plus the feature members' image features, vs the student's fold checkpoints and
  one student checkpoint (the fast predictor you would ship). The blend or stack's combination and the
  feature members' per-class linear heads are not timed (a few matrix products, small next to the CNNs).

Several ``--student`` configs are distilled from the same teacher and reported side by side (the first is named
``--student-name``, the others ``student_<config stem>``).

Target (issue 11): student >= 0.95x the teacher's test macro F1 at >= 5x its images/s.
``--quick`` runs it all on a tiny set at 32 px with one epoch: a smoke run, not a result.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))
from results import emit  # noqa: E402

#: The teacher candidates: (prediction-set folder under OOF, what it is).
ENSEMBLES = {"blend_mean": "mean blend", "stack": "LightGBM stack"}


def member_config(name: str) -> Path:
    """``base_models/configs/NAME.yaml``, else ``configs/examples/NAME.yaml``."""
    for folder in (REPO / "base_models" / "configs", REPO / "base_models" / "configs" / "examples"):
        if (folder / f"{name}.yaml").exists():
            return folder / f"{name}.yaml"
    raise SystemExit(f"no config for teacher member {name!r} in base_models/configs/ or configs/examples/")


def is_features(path: Path) -> bool:
    """A ``kind: features`` config (an image-feature model, not a CNN)."""
    from hpa_ens.commands.demo import config_kind

    return config_kind(path) == "features"


def student_sets(args) -> list[tuple[str, str]]:
    """(prediction-set name, config path) per ``--student``: the first is ``--student-name``, then ``student_STEM``."""
    names = [args.student_name] + [f"student_{Path(c).stem}" for c in args.student[1:]]
    if len(set(names)) != len(names):
        raise SystemExit(f"--student: two configs give the same set name ({', '.join(names)}); pass distinct configs")
    members = {load_backbone(member_config(m)) for m in args.teacher_models if not is_features(member_config(m))}
    for _, config in zip(names, args.student):
        if load_backbone(Path(config)) in members:
            raise SystemExit(f"--student {config}: its backbone is a teacher member's; a student is a different, "
                             f"smaller backbone (e.g. base_models/configs/mobilenetv3_small_100.yaml)")
    return list(zip(names, args.student))


def load_backbone(path: Path) -> str:
    from base_models.config import read_config_file

    return str(read_config_file(path).get("backbone"))


def ensemble_scores(args) -> dict:
    """OOF (and test) macro F1 of each teacher candidate, as :func:`scores` gives them."""
    from hpa_ens.contract import read_prediction_set
    from hpa_ens.labels import read_labels

    data, oof = Path(args.data), Path(args.oof)
    train = read_labels(data / "train.csv")
    truth = read_labels(data / "truth" / "test_labels.csv")
    out = {}
    for name in ENSEMBLES:
        pset = read_prediction_set(oof / name, train_ids=train.index.tolist())
        out[name] = scores(pset, train.to_numpy(), truth.loc[pset.test.index].to_numpy())
    return out


def choose_teacher(candidates: dict) -> str:
    """The candidate with the higher OOF macro F1 (the first listed on a tie); test scores are never read."""
    return max(ENSEMBLES, key=lambda name: candidates[name]["oof_f1"])


def build(args) -> str:
    """Everything the comparison reads, skipping what exists; returns the teacher's set name."""
    from base_models import features
    from base_models.collect import collect
    from base_models.config import load_config
    from base_models.distill import distill
    from base_models.train import fit_fold
    from hpa_ens.commands import blend, folds, stack
    from hpa_ens.contract import read_folds
    from hpa_ens.synth import generate

    data, oof = Path(args.data), Path(args.oof)
    if not (data / "train.csv").exists():
        generate(data, args.n_train, args.n_test, size=args.size, seed=0, n_jobs=1, overwrite=True)
    folds_path = data / "folds.csv"
    if not folds_path.exists():
        folds.main(["--labels", str(data / "train.csv"), "--out", str(folds_path), "--n-folds", str(args.n_folds),
                    "--seed", "0", "--no-plot"])
    n_folds = int(read_folds(folds_path).max()) + 1
    common = {"tta": args.tta, "threads": args.threads}
    if args.epochs:
        common["epochs"] = args.epochs
    if args.image_size:
        common["image_size"] = args.image_size
    for name in args.teacher_models:
        if (oof / name / "meta.json").exists():
            continue
        path = member_config(name)
        if is_features(path):
            features.run(path, data, folds_path, oof, n_jobs=args.threads, log=print)
            continue
        config = load_config(path, common)
        for fold in range(n_folds):
            fit_fold(config, data, folds_path, fold, oof)
        collect(name, oof, folds_path)
    # The demo recipe's two ensembles of the members; both commands write the same bytes for the same inputs,
    # so rebuilding them keeps the students distilled from them current.
    members = [str(oof / m) for m in args.teacher_models]
    blend.main(["--labels", str(data / "train.csv"), "--pred", *members, "--method", "mean",
                "--out", str(oof / "blend_mean")])
    stack.main(["--labels", str(data / "train.csv"), "--folds", str(folds_path), "--pred", *members,
                "--out", str(oof / "stack"), "--seed", "0"])
    candidates = ensemble_scores(args)
    teacher = choose_teacher(candidates)
    print("teacher candidates (OOF macro F1, per-class best thresholds): "
          + ", ".join(f"{ENSEMBLES[n]} {candidates[n]['oof_f1']:.4f}" for n in ENSEMBLES)
          + f"; teacher: the {ENSEMBLES[teacher]}")
    students = [(name, args.alpha, config) for name, config in student_sets(args)]
    if args.plain_student:
        students += [(f"plain_{name}", 0.0, config) for name, config in student_sets(args)]
    for name, alpha, student_config in students:
        # distill keeps every fold already trained from the same teacher with the same settings
        config = load_config(student_config, dict(common, name=name))
        distill(config, oof / teacher, data, folds_path, "all", oof, alpha=alpha, temperature=args.temperature,
                self_train=args.self_train and alpha > 0, echo=print)
    return teacher


def scores(pset, train_labels, test_labels) -> dict:
    """OOF macro F1 (per-class best thresholds) and test macro F1 at those thresholds."""
    from hpa_ens.thresholds import apply_thresholds
    from hpa_ens.metrics import macro_f1
    from hpa_ens.thresholds import exact_thresholds

    oof = pset.oof.to_numpy()
    thresholds, class_f1 = exact_thresholds(train_labels, oof)
    oof_f1 = float(class_f1.mean())
    test_pred = apply_thresholds(pset.test.to_numpy(), thresholds, min_labels=1)
    return {"oof_f1": oof_f1, "test_f1": macro_f1(test_labels, test_pred)}


def speed(fold_dirs, data, tta, threads) -> float:
    """images/s of the averaged checkpoints on the test images (model time only: the images come decoded)."""
    import torch

    from base_models.data import build_cache, default_cache_dir
    from base_models.predict import load_predictor, predict_ensemble, split_sources

    torch.set_num_threads(threads)
    predictors = [load_predictor(d) for d in fold_dirs]
    ids, sources = split_sources(data, "test", predictors[0].config)
    images = {s: build_cache(sources, s, default_cache_dir(data), tag="test")
              for s in {p.config["image_size"] for p in predictors}}
    _, seconds = predict_ensemble(predictors, images, tta, batch_size=64)
    return len(ids) / seconds


def decoded_test_images(config_paths, data) -> dict:
    """The test images of each feature member, decoded as its feature extraction reads them (config path -> list)."""
    from base_models.features import load_feature_config
    from hpa_ens.images import read_image
    from hpa_ens.labels import read_sample_submission
    from hpa_ens.task import load_task

    ids = read_sample_submission(Path(data) / "sample_submission.csv").tolist()
    channels = list(load_task(None).channels)
    out = {}
    for path in config_paths:
        config = load_feature_config(path)
        out[path] = [read_image(Path(data) / "test", i, size=config["image_size"], channels=channels) for i in ids]
    return out


def feature_speed(decoded: dict, threads: int) -> float:
    """images/s of every feature member's image features on the decoded test images (model time only)."""
    from threadpoolctl import threadpool_limits

    from base_models.features import image_features, load_feature_config
    from hpa_ens.task import load_task

    channels = list(load_task(None).channels)
    seconds, n = 0.0, 0
    with threadpool_limits(threads):
        for path, images in decoded.items():
            config = load_feature_config(path)
            started = time.perf_counter()
            for pixels in images:
                image_features(pixels, config["features"], channels, config["protein_channel"],
                               config["nucleus_channel"])
            seconds += time.perf_counter() - started
            n = len(images)
    return n / seconds


def compare(args, teacher: str) -> dict:
    from hpa_ens.contract import PredictionSet, read_prediction_set, read_probs
    from hpa_ens.labels import read_labels

    data, oof = Path(args.data), Path(args.oof)
    train = read_labels(data / "train.csv")
    truth = read_labels(data / "truth" / "test_labels.csv")
    # In the table's order: the members, the two candidates (the chosen one as "teacher"), the students.
    sets = {**{m: m for m in args.teacher_models}, **{("teacher" if n == teacher else n): n for n in ENSEMBLES},
            **{name: name for name, _ in student_sets(args)}}
    if args.plain_student:
        sets |= {f"plain_{name}": f"plain_{name}" for name, _ in student_sets(args)}
    results = {}
    for key, name in sets.items():
        pset = read_prediction_set(oof / name, train_ids=train.index.tolist())
        results[key] = scores(pset, train.to_numpy(), truth.loc[pset.test.index].to_numpy())
    folds_of = lambda name: sorted(p for p in (oof / name).glob("fold*") if p.is_dir())  # noqa: E731
    cnn_members = [m for m in args.teacher_models if not is_features(member_config(m))]
    feature_members = [member_config(m) for m in args.teacher_models if is_features(member_config(m))]
    dirs = {"teacher": [d for m in cnn_members for d in folds_of(m)]}
    for name, _ in student_sets(args):
        dirs[name] = folds_of(name)
        dirs[f"{name}_1ckpt"] = dirs[name][:1]
        # One student fold model alone: its own test F1 (the shipped predictor) from that fold's test.csv.
        single = PredictionSet(oof=read_prediction_set(oof / name).oof, test=read_probs(dirs[name][0] / "test.csv"))
        results[f"{name}_1ckpt"] = scores(single, train.loc[single.oof.index].to_numpy(),
                                          truth.loc[single.test.index].to_numpy())
        results[f"{name}_1ckpt"]["oof_f1"] = float("nan")  # one fold model has OOF rows for its fold only
    decoded = decoded_test_images(feature_members, data)
    # Interleaved, best of N: the machine is shared, so one slow pass should not decide a ratio. The teacher's
    # time per image is its CNN checkpoints' plus its feature members' (measured in the same pass).
    rates = dict.fromkeys(dirs, 0.0)
    for _ in range(args.repeats):
        for key in rates:
            rate = speed(dirs[key], data, args.tta, args.threads) if dirs[key] else float("inf")
            if key == "teacher" and decoded:
                rate = 1.0 / (1.0 / rate + 1.0 / feature_speed(decoded, args.threads))
            rates[key] = max(rates[key], rate)
    for key, rate in rates.items():
        results[key]["images_per_s"] = rate
        results[key]["n_checkpoints"] = len(dirs[key])
    return results


def main(argv=None) -> int:
    from hpa_ens.commands.demo import DEFAULT_MODELS

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="tiny set, 32 px, 1 epoch: a smoke run")
    ap.add_argument("--work", default=None, help="folder for data/ and oof/ (default /tmp/hpa_bench_distill[_quick])")
    ap.add_argument("--data", default=None)
    ap.add_argument("--oof", default=None)
    ap.add_argument("--teacher-models", default=",".join(DEFAULT_MODELS),
                    help="the teacher's members (default: the demo's); the teacher is their blend or stack")
    ap.add_argument("--student", nargs="+", default=[str(REPO / "base_models" / "configs" / "mobilenetv3_small_100.yaml")],
                    help="one or more student configs (a backbone that is not a member's), each distilled from the "
                         "same teacher")
    ap.add_argument("--student-name", default="student", help="the first student's prediction-set name under OOF")
    ap.add_argument("--alpha", type=float, default=0.7)
    ap.add_argument("--temperature", type=float, default=1.0)
    ap.add_argument("--self-train", action="store_true")
    ap.add_argument("--plain-student", action="store_true", help="also train the student without the teacher")
    ap.add_argument("--tta", default="flips")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=2)
    args = ap.parse_args(argv)
    args.teacher_models = [m for m in args.teacher_models.split(",") if m]
    if args.quick:
        args.n_train, args.n_test, args.size, args.n_folds, args.epochs, args.image_size = 48, 24, 32, 2, 1, 32
        args.repeats = 1
        args.plain_student = True
    else:
        args.n_train, args.n_test, args.size, args.n_folds, args.epochs, args.image_size = 1000, 300, 64, 3, None, None
    student_sets(args)  # a student that is a member's backbone is refused before any work
    work = Path(args.work or ("/tmp/hpa_bench_distill_quick" if args.quick else "/tmp/hpa_bench_distill"))
    args.data = args.data or str(work / "data")
    args.oof = args.oof or str(work / "oof")
    started = time.perf_counter()
    teacher = build(args)
    built = time.perf_counter() - started
    results = compare(args, teacher)
    args.teacher_set = teacher
    print(f"distillation benchmark ({'quick smoke run' if args.quick else 'synthetic set'}: {args.data}; "
          f"teacher: the {ENSEMBLES[teacher]} of {', '.join(args.teacher_models)} (higher OOF F1); "
          f"students {', '.join(Path(c).stem for c in args.student)} alpha {args.alpha} T {args.temperature} "
          f"self-train {args.self_train}; tta {args.tta}, {args.threads} thread(s); build {built:.0f} s)")
    print(f"{'set':<28}{'OOF F1':>8}{'test F1':>9}{'images/s':>10}  checkpoints")
    for name, r in results.items():
        rate = f"{r['images_per_s']:10.1f}" if "images_per_s" in r else f"{'':>10}"
        oof_f1 = f"{r['oof_f1']:8.4f}" if np.isfinite(r["oof_f1"]) else f"{'-':>8}"
        print(f"{name:<28}{oof_f1}{r['test_f1']:9.4f}{rate}  {r.get('n_checkpoints', '')}")
    teacher_r = results["teacher"]
    for name in [key for student, _ in student_sets(args) for key in (student, f"{student}_1ckpt")]:
        r = results[name]
        f1_ratio, speed_ratio = r["test_f1"] / teacher_r["test_f1"], r["images_per_s"] / teacher_r["images_per_s"]
        print(f"{name} / teacher: test F1 {f1_ratio:.3f}x, images/s {speed_ratio:.1f}x: target (>= 0.95x F1 at "
              f">= 5x images/s) {'met' if f1_ratio >= 0.95 and speed_ratio >= 5 else 'not met'}")
    print(json.dumps({k: {kk: round(vv, 4) for kk, vv in v.items()} for k, v in results.items()}))
    emit_table(results, args)
    return 0


def emit_table(results: dict, args) -> None:
    """The pivot table "distill" (docs/scale_out.md) and the headline figures, each ratio against this run's teacher."""
    teacher = results["teacher"]
    members = ", ".join(args.teacher_models)
    label = {("teacher" if name == args.teacher_set else name):
             (f"teacher: {what} of {members} (higher OOF F1)" if name == args.teacher_set
              else f"{what} of {members} (lower OOF F1: not the teacher)") for name, what in ENSEMBLES.items()}
    for name, config in student_sets(args):
        stem = Path(config).stem
        label |= {name: f"student {stem}, all folds", f"{name}_1ckpt": f"student {stem}, 1 checkpoint",
                  f"plain_{name}": f"{stem} without the teacher (alpha 0), all folds"}
    setting = (f"{'quick smoke run, ' if args.quick else ''}{args.n_train} train / {args.n_test} test at {args.size} px, "
               f"{args.n_folds} folds; alpha {args.alpha}, T {args.temperature}, self-train {args.self_train}, "
               f"tta {args.tta}, {args.threads} thread(s)")
    for key, r in results.items():
        row = label.get(key, f"teacher member {key}")
        cols = [("OOF F1", r["oof_f1"], "macro F1"), ("test F1", r["test_f1"], "macro F1"),
                ("test F1 / teacher", r["test_f1"] / teacher["test_f1"] if teacher["test_f1"] else None, "×")]
        if "images_per_s" in r:
            cols += [("images/s", r["images_per_s"], "images/s"),
                     ("images/s / teacher", r["images_per_s"] / teacher["images_per_s"], "×")]
        if "n_checkpoints" in r:
            cols.append(("checkpoints", r["n_checkpoints"], ""))
        for col, value, unit in cols:
            emit(f"distill: {row}, {col}", value, unit, table="distill", row=row, col=col, note=setting)
    teacher_what = (f"the teacher ({ENSEMBLES[args.teacher_set]} of {members}: {teacher['n_checkpoints']} CNN "
                    "checkpoints and the feature members' image features)")
    for name, config in student_sets(args):
        student = Path(config).stem
        for key, what in ((f"{name}_1ckpt", f"one {student} checkpoint"),
                          (name, f"{student}, {results[name]['n_checkpoints']} fold checkpoints")):
            r = results[key]
            met = r["test_f1"] >= 0.95 * teacher["test_f1"] and r["images_per_s"] >= 5 * teacher["images_per_s"]
            emit(f"distill: {what} vs the teacher ensemble, inference", r["images_per_s"], "images/s",
                 baseline=teacher["images_per_s"], baseline_name=teacher_what,
                 differs=f"configuration: {what} vs {teacher_what}; same test images, TTA and threads, model time "
                         "only, interleaved best of --repeats",
                 note=f"test macro F1 {r['test_f1']:.4f} vs {teacher['test_f1']:.4f} "
                      f"({r['test_f1'] / teacher['test_f1']:.2f}×); target >= 0.95× F1 at >= 5× images/s: "
                      f"{'met' if met else 'not met'}; {setting}")


if __name__ == "__main__":
    sys.exit(main())
