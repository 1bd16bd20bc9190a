"""The contract: the only door between stages.

Every file that passes from one stage to the next is read and written here, with its validation:

- :mod:`.predictions`: prediction sets (``oof.csv``, ``test.csv``, ``meta.json``) and ``folds.csv``;
- the freshness rule (:func:`is_current`) that every "is this done?" check uses.
"""

from .predictions import (  # noqa: F401
    META_FILE,
    OOF_FILE,
    SCHEMA_VERSION,
    TEST_FILE,
    ContractError,
    PredictionSet,
    align,
    build_meta,
    fingerprint_of,
    is_current,
    probs_frame,
    read_folds,
    read_meta,
    read_prediction_set,
    read_prediction_sets,
    check_output_folder,
    read_probs,
    write_folds,
    write_prediction_set,
    write_probs,
    write_stamp,
)
