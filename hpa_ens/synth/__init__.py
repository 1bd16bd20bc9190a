"""The synthetic HPA-like image set (the embedded default): ``python -m hpa_ens.synth``.

:mod:`.generate` plans and writes the set in the Kaggle layout with its truth kept apart;
:mod:`.draw` renders one image's four channels. The command is :mod:`hpa_ens.commands.synth`.
"""

from .generate import *  # noqa: F401,F403
from .generate import MARKER, PROBE_FRACTION, SPLIT_TRAIN, leaderboard_probe, probe_rows, check_generated_folder, encode_png, generate, image_rng, load_label_sets, make_plan, render_image  # noqa: F401
