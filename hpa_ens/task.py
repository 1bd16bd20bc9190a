"""A task: the classes of a multi-label problem and the per-row label rules.

Every stage works for any number of classes K. The task says what K is and what the classes are
called; HPA 2018 (28 classes) is the built-in default, so every command runs unchanged on the Kaggle
files. A task is given as

- a built-in name (``hpa2018``, ``hpa2021``; see :data:`BUILTIN_TASKS`),
- a CSV file ``id,name`` with one row per class, ids ``0..K-1`` in order, or
- a YAML file with ``name``, ``classes`` (a list of names, class k = item k) and optionally
  ``min_labels`` / ``max_labels`` (the default per-row label count rule of ``submit`` and
  ``tune_thresholds``) and ``channels``.

Prediction sets record the task's class list in ``meta.json``; stages refuse to combine sets whose
class lists differ.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

from .validation import ContractError
from .classes import CHANNELS, CLASS_NAMES

__all__ = ["Task", "BUILTIN_TASKS", "DEFAULT_TASK", "HPA2018", "HPA2021", "load_task", "task_from_meta"]


@dataclass(frozen=True)
class Task:
    """The classes of a multi-label task and its per-row label rules.

    Parameters
    ----------
    name : str
    class_names : tuple of str, length K
        Class k is called ``class_names[k]``; class columns of prediction files are ``"0".."K-1"``.
    min_labels, max_labels : int or None
        The default number of labels a submission row must carry (None: no rule).
    channels : tuple of str
        The image channels, in the order base models stack them.
    """

    name: str
    class_names: tuple[str, ...]
    min_labels: int | None = None
    max_labels: int | None = None
    channels: tuple[str, ...] = field(default=CHANNELS)

    @property
    def n_classes(self) -> int:
        return len(self.class_names)

    @property
    def columns(self) -> tuple[str, ...]:
        """Class column names of a prediction file: ``"0", "1", …, "K-1"``."""
        return tuple(str(k) for k in range(self.n_classes))

    def to_meta(self) -> dict:
        """The record a prediction set's ``meta.json`` keeps (``task`` key)."""
        return {"name": self.name, "n_classes": self.n_classes, "class_names": list(self.class_names)}

    def same_classes(self, other: "Task") -> bool:
        return tuple(self.class_names) == tuple(other.class_names)


HPA2018 = Task("hpa2018", tuple(CLASS_NAMES), min_labels=1, max_labels=5)

#: The 19 labels of the Kaggle "Human Protein Atlas - Single Cell Classification" competition (2021),
#: as listed on its data page: 18 localisations plus "Negative".
HPA2021 = Task("hpa2021", (
    "Nucleoplasm", "Nuclear membrane", "Nucleoli", "Nucleoli fibrillar center", "Nuclear speckles",
    "Nuclear bodies", "Endoplasmic reticulum", "Golgi apparatus", "Intermediate filaments", "Actin filaments",
    "Microtubules", "Mitotic spindle", "Centrosome", "Plasma membrane", "Mitochondria", "Aggresome", "Cytosol",
    "Vesicles and punctate cytosolic patterns", "Negative",
), min_labels=1, max_labels=None)

BUILTIN_TASKS: dict[str, Task] = {HPA2018.name: HPA2018, HPA2021.name: HPA2021}
DEFAULT_TASK = HPA2018


def _read_task_csv(path: Path) -> Task:
    import pandas as pd

    from .validation import read_csv_strings

    df = read_csv_strings(path, "a header id,name and one row per class")
    if list(df.columns[:2]) != ["id", "name"]:
        raise ContractError(f"{path}: expected columns id,name. Got {','.join(map(str, df.columns))} instead.")
    if len(df) == 0:
        raise ContractError(f"{path}: the file has a header but no class rows.")
    ids: list[int] = []
    for row, text in enumerate(df["id"].tolist(), start=1):
        if not str(text).strip().isdigit():
            raise ContractError(f"{path}, row {row}: class id must be a non-negative integer. Got {text!r} instead.")
        ids.append(int(text))
    seen: set[int] = set()
    for row, k in enumerate(ids, start=1):
        if k in seen:
            raise ContractError(f"{path}, row {row}: class id {k} is repeated; ids must be 0..K-1, once each.")
        seen.add(k)
    expected = list(range(len(ids)))
    if sorted(ids) != expected:
        gap = min(set(expected) - seen)
        raise ContractError(f"{path}: class ids must be 0..{len(ids) - 1} with no gap; id {gap} is missing. "
                            f"Got {sorted(ids)[:8]}{'…' if len(ids) > 8 else ''} instead.")
    names = pd.Series(df["name"].tolist(), index=ids).sort_index().tolist()
    empty = [k for k, n in enumerate(names) if not str(n).strip()]
    if empty:
        raise ContractError(f"{path}: class {empty[0]} has an empty name.")
    return Task(path.stem, tuple(str(n) for n in names))


def _read_task_yaml(path: Path) -> Task:
    import yaml

    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as err:
        raise ContractError(f"{path}: not valid YAML ({str(err).splitlines()[0]}).") from None
    if not isinstance(doc, dict) or "classes" not in doc:
        raise ContractError(f"{path}: expected a mapping with a 'classes' list. Got {type(doc).__name__} instead.")
    classes = doc["classes"]
    if not isinstance(classes, list) or not classes or not all(isinstance(c, str) and c.strip() for c in classes):
        raise ContractError(f"{path}: 'classes' must be a non-empty list of class names. Got {classes!r} instead.")
    if len(set(classes)) != len(classes):
        dup = next(c for c in classes if classes.count(c) > 1)
        raise ContractError(f"{path}: class name {dup!r} is repeated in 'classes'.")
    unknown = sorted(set(doc) - {"name", "classes", "min_labels", "max_labels", "channels"})
    if unknown:
        raise ContractError(f"{path}: unknown key(s) {unknown}; expected name, classes, min_labels, max_labels, channels.")
    bounds = {}
    for key in ("min_labels", "max_labels"):
        value = doc.get(key)
        if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 0):
            raise ContractError(f"{path}: '{key}' must be a non-negative integer or null. Got {value!r} instead.")
        bounds[key] = value
    if bounds["min_labels"] is not None and bounds["max_labels"] is not None and bounds["min_labels"] > bounds["max_labels"]:
        raise ContractError(f"{path}: 'min_labels' must not exceed 'max_labels'. Got {bounds['min_labels']} > "
                            f"{bounds['max_labels']} instead.")
    channels = doc.get("channels", list(CHANNELS))
    if not isinstance(channels, list) or not all(isinstance(c, str) and c for c in channels):
        raise ContractError(f"{path}: 'channels' must be a list of channel names. Got {channels!r} instead.")
    return Task(str(doc.get("name") or path.stem), tuple(classes), bounds["min_labels"], bounds["max_labels"],
                tuple(channels))


def load_task(spec: "str | os.PathLike | Task | None" = None) -> Task:
    """Resolve a task: None (the default, HPA 2018), a built-in name, a ``.csv`` or a ``.yaml`` file.

    Raises
    ------
    ContractError
        For an unknown name, a missing file, or a file with duplicate ids, a gap in the ids, …
    """
    if spec is None:
        return DEFAULT_TASK
    if isinstance(spec, Task):
        return spec
    text = str(spec)
    if text in BUILTIN_TASKS:
        return BUILTIN_TASKS[text]
    path = Path(text)
    if not path.exists():
        raise ContractError(f"{path}: task file not found, and not a built-in task. Expected a CSV id,name, a YAML "
                            f"file, or one of {sorted(BUILTIN_TASKS)}.")
    if path.suffix.lower() in (".yaml", ".yml"):
        return _read_task_yaml(path)
    return _read_task_csv(path)


def task_from_meta(meta: dict, source: str = "meta.json") -> Task | None:
    """The task recorded in a prediction set's ``meta.json`` (None for sets written before tasks existed)."""
    record = meta.get("task") if isinstance(meta, dict) else None
    if not record:
        return None
    names = record.get("class_names")
    if not isinstance(names, list) or not names:
        raise ContractError(f"{source}: 'task.class_names' must be a non-empty list. Got {names!r} instead.")
    return Task(str(record.get("name") or "task"), tuple(map(str, names)))


def check_same_task(named: Sequence[tuple[str, Task]]) -> None:
    """Refuse prediction sets whose class lists differ, in one line naming two of them.

    ``named`` pairs each set's name (its folder) with its task.
    """
    if not named:
        return
    first_name, first = named[0]
    for name, task in named[1:]:
        if not task.same_classes(first):
            raise ContractError(
                f"{name} and {first_name} were made for different class lists ({task.name!r}: {task.n_classes} "
                f"classes, {', '.join(task.class_names[:2])}…; {first.name!r}: {first.n_classes} classes, "
                f"{', '.join(first.class_names[:2])}…); stages combine only sets of one task.")
