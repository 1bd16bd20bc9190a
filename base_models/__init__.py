"""CNN base models: timm backbones trained per fold, dumping OOF and test probabilities.

The only package of hpa-ens that imports torch and timm - and only in the modules that need them:
``base_models.segment``, ``crop_cache``, ``samplers``, ``config``, ``freshness``, ``collect``,
``features`` and ``run_all`` import neither, and timm is imported only when a model is built or a
backbone checked. Importing the package changes nothing in the process (no environment variable is
set): the commands (:mod:`base_models.commands`) decide ``HF_HUB_OFFLINE`` before timm is first imported,
so a command reaches the network only for ``pretrained: true`` (timm's ImageNet weights, downloaded once
into the Hugging Face cache; :mod:`base_models.pretrained`); ``weights:`` loads a local file.

Modules by content: ``config`` (typed keys), ``data`` (cache, streaming loader, augmentation),
``samplers``, ``losses``, ``models`` / ``heads`` (backbones, linear and attention heads), ``tiles``,
``pretrained`` (where timm's ImageNet weights come from, whether they are cached),
``segment`` / ``crop_cache`` / ``mil`` (cell crops and multiple-instance learning), ``wrappers``
(tiles, cell mosaics, center loss around a backbone), ``train`` / ``collect`` / ``run_all`` /
``distill`` / ``predict`` / ``features`` (training, assembling and predicting; their command lines are
in :mod:`base_models.commands`), ``freshness`` (when a fold is done), ``checkpoint``,
``distributed`` (torchrun).

Library functions print nothing. Long work takes ``progress``, a rich-``Progress``-like object
(``add_task``, ``update``, ``advance``, ``remove_task``) owned by the command, or None; lines for the
user go to optional callbacks (``log``: notes while working; ``echo``: the run's record, e.g. one line
per finished fold; ``warn``: warnings), which the commands print.

Registries (heads, losses, samplers) are defined in :mod:`base_models.registry`, which imports their
built-in modules on the first lookup; :data:`BUILTINS` lists them.
"""

# OMP_WAIT_POLICY=PASSIVE is deliberately not set (not here, not by the commands): it helped on a machine
# crowded with other jobs but halved training speed on an idle one (mobilenetv3_small_100 at 64 px:
# 348 -> 173 img/s, 2 threads).

from .registry import HEADS, LOSSES, SAMPLERS

#: The modules holding the built-in registry entries (imported by the registries when first read).
BUILTINS = tuple(dict.fromkeys(HEADS.builtins + LOSSES.builtins + SAMPLERS.builtins))

__all__ = ["BUILTINS", "HEADS", "LOSSES", "SAMPLERS"]
