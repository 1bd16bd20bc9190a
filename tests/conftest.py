import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("MPLBACKEND", "Agg")
os.environ.setdefault("HPA_ENS_NO_PROGRESS", "1")

REPO = Path(__file__).resolve().parents[1]
SHARED_HPA = REPO.parent / "shared" / "hpa"


@pytest.fixture(scope="session")
def shared_hpa() -> Path:
    """The real competition files beside the checkout (tests may read them; the product never does)."""
    if not (SHARED_HPA / "train.csv").exists():
        pytest.skip("../shared/hpa/train.csv is not present (the real competition files beside the checkout)")
    return SHARED_HPA
