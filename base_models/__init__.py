"""CNN base models: timm backbones trained per fold, dumping OOF and test probabilities.

This is the only package of hpa-ens that imports torch and timm. ``HF_HUB_OFFLINE`` is set before
timm is imported anywhere in the package, so nothing ever tries the network (weights come from
local files through the ``weights`` config key).
"""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
# OMP_WAIT_POLICY=PASSIVE is deliberately not set: it helped on a machine crowded with other jobs but
# halved training speed on an idle one (mobilenetv3_small_100 at 64 px: 348 -> 173 img/s, 2 threads).

__all__ = ["registry"]
