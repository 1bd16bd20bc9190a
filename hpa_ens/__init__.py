"""hpa-ens: post-processing for multi-label microscopy classification (HPA 2018 and any K-class task).

The public API is re-exported here (scikit-learn-shaped objects and the contract's readers and
writers); stage modules are pure cores plus a thin ``main``. Nothing in this package imports torch.
"""

from .validation import ContractError, HpaEnsError, ParameterError
from .classes import CHANNELS, CLASS_COLUMNS, CLASS_NAMES, N_CLASSES
from .contract import (
    PredictionSet,
    build_meta,
    probs_frame,
    read_folds,
    read_prediction_set,
    read_prediction_sets,
    read_probs,
    read_thresholds,
    write_folds,
    write_prediction_set,
    write_probs,
    write_thresholds,
)
from .thresholds import apply_thresholds
from .labels import matrix_to_targets, read_labels, read_sample_submission, read_submission, targets_to_matrix
from .metrics import bootstrap_macro_f1, class_report, macro_f1, per_class_f1
from .task import BUILTIN_TASKS, Task, load_task

__version__ = "0.2.0"

# The estimators are imported on first use (PEP 562): ``import hpa_ens`` stays light (no scikit-learn
# until an estimator is asked for).
_LAZY = {"Blender": ".ensemble", "Stacker": ".ensemble", "ThresholdTuner": ".thresholds"}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        value = getattr(importlib.import_module(_LAZY[name], __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'hpa_ens' has no attribute {name!r}")

__all__ = [
    "CHANNELS", "CLASS_COLUMNS", "CLASS_NAMES", "N_CLASSES",
    "HpaEnsError", "ContractError", "ParameterError",
    "Task", "load_task", "BUILTIN_TASKS",
    "PredictionSet", "build_meta", "probs_frame", "read_folds", "read_prediction_set", "read_prediction_sets",
    "read_probs", "read_thresholds", "write_folds", "write_prediction_set", "write_probs", "write_thresholds",
    "Blender", "Stacker", "ThresholdTuner", "apply_thresholds",
    "matrix_to_targets", "read_labels", "read_sample_submission", "read_submission", "targets_to_matrix",
    "bootstrap_macro_f1", "class_report", "macro_f1", "per_class_f1",
]
