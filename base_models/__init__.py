"""CNN base models: timm backbones trained per fold, dumping OOF and test probabilities.

This is the only package of hpa-ens that imports torch and timm. ``HF_HUB_OFFLINE`` is set before
timm is imported anywhere in the package, so nothing ever tries the network (weights come from
local files through the ``weights`` config key).
"""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
# Idle OpenMP threads sleep instead of spinning: on a shared 2-core machine spinning threads made
# training 4x slower (8 -> 32 img/s measured under load). Must be set before torch is imported.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

__all__ = ["registry"]
