"""Optimisers and learning-rate schedules by name (registries, extendable by later issues)."""

from __future__ import annotations

import math

import torch

from .registry import Registry

OPTIMIZERS = Registry("optimizer")
SCHEDULERS = Registry("scheduler")


@OPTIMIZERS.register("adamw")
def adamw(params, config):
    return torch.optim.AdamW(params, lr=config["lr"], weight_decay=config["weight_decay"])


@OPTIMIZERS.register("adam")
def adam(params, config):
    return torch.optim.Adam(params, lr=config["lr"], weight_decay=config["weight_decay"])


@OPTIMIZERS.register("sgd")
def sgd(params, config):
    return torch.optim.SGD(params, lr=config["lr"], momentum=config["momentum"],
                           weight_decay=config["weight_decay"], nesterov=config["momentum"] > 0)


class _WarmupThen:
    """Picklable-free lr multiplier: linear warm-up over ``warmup`` steps, then ``shape``."""

    def __init__(self, warmup: int, total: int, shape: str):
        self.warmup, self.total, self.shape = int(warmup), max(int(total), 1), shape

    def __call__(self, step: int) -> float:
        if step < self.warmup:
            return (step + 1) / (self.warmup + 1)
        if self.shape == "constant":
            return 1.0
        progress = min((step - self.warmup) / max(self.total - self.warmup, 1), 1.0)
        return 0.5 * (1.0 + math.cos(math.pi * progress))


def _lambda_scheduler(optimizer, config, steps_per_epoch: int, shape: str):
    total = config["epochs"] * steps_per_epoch
    warmup = int(round(config["warmup_epochs"] * steps_per_epoch))
    return torch.optim.lr_scheduler.LambdaLR(optimizer, _WarmupThen(warmup, total, shape))


@SCHEDULERS.register("cosine")
def cosine(optimizer, config, steps_per_epoch: int):
    """Linear warm-up then cosine decay to 0 at the last step, stepped per batch."""
    return _lambda_scheduler(optimizer, config, steps_per_epoch, "cosine")


@SCHEDULERS.register("constant")
def constant(optimizer, config, steps_per_epoch: int):
    """Linear warm-up then a constant rate."""
    return _lambda_scheduler(optimizer, config, steps_per_epoch, "constant")
