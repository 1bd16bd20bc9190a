"""CNN base models: timm backbones trained per fold, dumping OOF and test probabilities.

The only package of hpa-ens that imports torch and timm - and only in the modules that need them:
``base_models.segment``, ``crop_cache``, ``samplers``, ``config``, ``freshness`` and ``run_all``
import neither. ``HF_HUB_OFFLINE`` is set before timm is imported anywhere in the package, so nothing
ever tries the network (weights come from local files through the ``weights`` config key).

Modules by content: ``config`` (typed keys), ``data`` (cache, streaming loader, augmentation),
``samplers``, ``losses``, ``models`` / ``heads`` (backbones, linear and attention heads), ``tiles``,
``segment`` / ``crop_cache`` / ``mil`` (cell crops and multiple-instance learning), ``wrappers``
(tiles, cell mosaics, center loss around a backbone), ``train`` / ``collect`` / ``run_all`` /
``distill`` / ``predict`` (the commands), ``freshness`` (when a fold is done), ``checkpoint``,
``distributed`` (torchrun).

Registries (heads, losses, samplers) are defined in :mod:`base_models.registry`, which imports their
built-in modules on the first lookup; :data:`BUILTINS` lists them.
"""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
# OMP_WAIT_POLICY=PASSIVE is deliberately not set: it helped on a machine crowded with other jobs but
# halved training speed on an idle one (mobilenetv3_small_100 at 64 px: 348 -> 173 img/s, 2 threads).

from .registry import HEADS, LOSSES, SAMPLERS  # noqa: E402

#: The modules holding the built-in registry entries (imported by the registries when first read).
BUILTINS = tuple(dict.fromkeys(HEADS.builtins + LOSSES.builtins + SAMPLERS.builtins))

__all__ = ["BUILTINS", "HEADS", "LOSSES", "SAMPLERS"]
