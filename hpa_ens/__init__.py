"""hpa-ens: post-processing for multi-label microscopy classification (HPA 2018).

The public API is re-exported here; internals live in ``_private``-style modules. Nothing in this
package imports torch.
"""

from .classes import CHANNELS, CLASS_COLUMNS, CLASS_NAMES, N_CLASSES
from .contract import (
    ContractError,
    PredictionSet,
    read_folds,
    read_prediction_set,
    read_probs,
    write_folds,
    write_prediction_set,
    write_probs,
)
from .decision import apply_thresholds
from .labels import matrix_to_targets, read_labels, read_sample_submission, read_submission, targets_to_matrix
from .metrics import bootstrap_macro_f1, class_report, macro_f1, per_class_f1

__version__ = "0.1.0"

__all__ = [
    "CHANNELS", "CLASS_COLUMNS", "CLASS_NAMES", "N_CLASSES",
    "ContractError", "PredictionSet", "read_folds", "read_prediction_set", "read_probs", "write_folds",
    "write_prediction_set", "write_probs", "apply_thresholds", "matrix_to_targets", "read_labels",
    "read_sample_submission", "read_submission", "targets_to_matrix", "bootstrap_macro_f1", "class_report",
    "macro_f1", "per_class_f1",
]
