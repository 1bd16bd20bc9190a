"""Small public helpers that every layer uses: logits, CPU counts, ordered parallel maps.

One implementation each (the library, the commands and ``base_models`` import them from here):

- :func:`logit` / :func:`expit`: :func:`scipy.special.logit` on probabilities clipped into ``[eps, 1 - eps]``
  (so 0 and 1 map to finite values), and :func:`scipy.special.expit`;
- :func:`available_cpus`: the CPUs this process may use (CPU affinity, capped by a cgroup quota);
- :func:`resolve_n_jobs`: a worker count in joblib's convention (``-1`` every CPU, ``-2`` all but one, …);
- :func:`parallel_map`: ``[func(x) for x in items]`` in up to ``n_jobs`` threads, results in input order.

Nothing here has import-time side effects.
"""

from __future__ import annotations

import math
import os
from typing import Callable, Iterable, TypeVar

import numpy as np

from .validation import check_param

__all__ = ["LOGIT_EPS", "logit", "expit", "available_cpus", "resolve_n_jobs", "parallel_map"]

#: Default clip of :func:`logit`: probabilities are moved into ``[1e-6, 1 - 1e-6]`` first.
LOGIT_EPS = 1e-6

T = TypeVar("T")
R = TypeVar("R")


def logit(p, eps: float = LOGIT_EPS) -> np.ndarray:
    """``log(p / (1 - p))`` of probabilities clipped into ``[eps, 1 - eps]``.

    Parameters
    ----------
    p : array-like of any shape, values in [0, 1]
    eps : float in [0, 0.5)

    Returns
    -------
    ndarray of the shape of ``p``, float64, finite when ``eps > 0``
    """
    from scipy.special import logit as _logit

    return _logit(np.clip(np.asarray(p, dtype=np.float64), eps, 1.0 - eps))


def expit(z) -> np.ndarray:
    """``1 / (1 + exp(-z))`` (:func:`scipy.special.expit`), float64, the inverse of :func:`logit`."""
    from scipy.special import expit as _expit

    return _expit(np.asarray(z, dtype=np.float64))


def available_cpus() -> int:
    """CPUs this process may use: its CPU affinity, capped by a cgroup (container) CPU quota."""
    try:
        count = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        count = os.cpu_count() or 1
    quota = _cgroup_cpu_limit()
    if quota is not None:
        count = min(count, quota)
    return max(1, count)


def _cgroup_cpu_limit() -> int | None:
    """The cgroup v2 (``cpu.max``) or v1 (``cpu.cfs_quota_us``) CPU limit, rounded up; None when unlimited."""
    try:
        with open("/sys/fs/cgroup/cpu.max", encoding="ascii") as handle:
            quota, period = handle.read().split()[:2]
        if quota != "max":
            return max(1, math.ceil(int(quota) / int(period)))
        return None
    except (OSError, ValueError):
        pass
    try:
        with open("/sys/fs/cgroup/cpu/cpu.cfs_quota_us", encoding="ascii") as handle:
            quota_us = int(handle.read())
        with open("/sys/fs/cgroup/cpu/cpu.cfs_period_us", encoding="ascii") as handle:
            period_us = int(handle.read())
        if quota_us > 0 and period_us > 0:
            return max(1, math.ceil(quota_us / period_us))
    except (OSError, ValueError):
        pass
    return None


def resolve_n_jobs(n_jobs: int | None) -> int:
    """A worker count in joblib's convention, resolved against :func:`available_cpus`.

    ``None``, ``0`` and ``-1`` mean every available CPU; ``-k`` (k >= 2) means all but ``k - 1`` of them
    (at least 1), as in joblib; a positive number is taken as given.

    Parameters
    ----------
    n_jobs : int or None

    Returns
    -------
    int >= 1
    """
    ok = n_jobs is None or (isinstance(n_jobs, (int, np.integer)) and not isinstance(n_jobs, bool))
    check_param("n_jobs", n_jobs, "an integer (positive; or -1 for every CPU, -2 for all but one, …) or None", ok)
    cpus = available_cpus()
    if n_jobs is None or n_jobs == 0:
        return cpus
    if n_jobs < 0:
        return max(1, cpus + 1 + int(n_jobs))
    return int(n_jobs)


def parallel_map(func: Callable[[T], R], items: Iterable[T], n_jobs: int | None = 1,
                 progress: Callable[[], None] | None = None) -> list[R]:
    """``[func(x) for x in items]`` in up to ``n_jobs`` threads (joblib), results in input order.

    Threads suit work that releases the GIL (numpy sorts, BLAS, LightGBM); the result never depends
    on ``n_jobs``. One job (or one item) runs in this thread, with no pool. ``progress``, if given, is
    called with no argument after each result, in the calling thread (results arrive in input order).
    """
    items = list(items)
    n_jobs = resolve_n_jobs(n_jobs)
    if n_jobs <= 1 or len(items) <= 1:
        results = []
        for x in items:
            results.append(func(x))
            if progress is not None:
                progress()
        return results
    from joblib import Parallel, delayed

    pool = Parallel(n_jobs=min(n_jobs, len(items)), backend="threading", return_as="generator")
    results = []
    for result in pool(delayed(func)(x) for x in items):
        results.append(result)
        if progress is not None:
            progress()
    return results
