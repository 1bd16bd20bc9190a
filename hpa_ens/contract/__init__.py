"""The contract: the only door between stages.

Every file that passes from one stage to the next is read and written here, with its validation:

- :mod:`.predictions`: prediction sets (``oof.csv``, ``test.csv``, ``meta.json``) and ``folds.csv``;
- :mod:`.image_folders`: which files are images, and an image folder's provenance (its listing hash);
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
    prediction_set_lock,
    read_probs,
    write_folds,
    write_prediction_set,
    write_probs,
    write_stamp,
)
from .fold_metrics import FOLD_METRICS_FILE, read_fold_metrics, write_fold_metrics  # noqa: F401,E402
from .duplicates import DUPLICATE_KINDS, check_duplicates_provenance, read_duplicates, read_duplicates_meta, write_duplicates  # noqa: F401,E501
from .channel_stats import ChannelStats, read_channel_stats, write_channel_stats  # noqa: F401
from .image_folders import IMAGE_EXTENSIONS, folder_record, image_files  # noqa: F401
from .extra_folds import extra_fit_mask, extra_folds_path, read_extra_folds, write_extra_folds  # noqa: F401
from .thresholds import BUILTIN_TARGETS, ThresholdsRecord, check_thresholds_match, prediction_set_hashes, read_target_distribution, read_target_shares, read_thresholds, target_shares_path, write_thresholds  # noqa: F401,E501
from .inputs import StageInputs, meta_inputs, read_stage_inputs, write_stage_set  # noqa: F401,E402
