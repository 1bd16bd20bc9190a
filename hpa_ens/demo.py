"""``make demo``: the whole pipeline on the embedded synthetic set, from images to a scored submission.

Stages (each skipped when its inputs' hashes are unchanged, so a second run takes seconds, and a run
killed in the middle resumes at the stage it was in)::

    synth -> folds -> eda -> feature model + CNN base models (all folds) -> blend -> stack
          -> thresholds -> dedup -> submit (thresholds / + duplicates / + leak) -> score + report

Prints one table (macro F1 on the synthetic test truth with a bootstrap interval, and wall time: the
best single model, the mean blend and the stack, each at tuned thresholds, then duplicates and leak)
and writes ``reports/demo/index.html``. The recipe (3 folds, which backbones, how many epochs) is
explained in docs/recipe.md. The stage graph and the command live in :mod:`hpa_ens.commands.demo`; the
scores and the HTML report in :mod:`hpa_ens.demo_report`.

``--data`` is only ever generated into when it is empty (or absent) or carries the generator's marker
file (``hpa_ens.synth.generate.MARKER``): a folder holding anything else, such as a user's own data
set, is refused before any stage runs.
"""

if __name__ == "__main__":  # python -m hpa_ens.demo: the command lives in hpa_ens.commands.demo
    from hpa_ens.commands import launch

    launch("demo", __spec__.name)
