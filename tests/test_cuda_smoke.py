"""One training batch on CUDA through the trainer's own loop (skipped without a GPU)."""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

torch = pytest.importorskip("torch", reason="needs the [train] extra")
pytest.importorskip("timm", reason="needs the [train] extra")
if not torch.cuda.is_available():
    pytest.skip("no CUDA device", allow_module_level=True)

from base_models.config import load_config  # noqa: E402
from base_models.infer import Normalizer  # noqa: E402
from base_models.losses import build_loss  # noqa: E402
from base_models.models import build_model  # noqa: E402
from base_models.optim import OPTIMIZERS, SCHEDULERS  # noqa: E402
from base_models.train import FoldData, train_one_epoch  # noqa: E402


def test_one_batch_trains_on_cuda_with_amp_and_channels_last():
    config = load_config(None, dict(backbone="resnet18", image_size=64, batch_size=8, epochs=1, device="cuda",
                                    amp=True, channels_last=True))
    rng = np.random.default_rng(0)
    images = rng.integers(0, 255, (8, 4, 64, 64), dtype=np.uint8)
    labels = (rng.random((8, 28)) > 0.8).astype(np.uint8)
    data = FoldData([], [], labels, images, images[:0], np.arange(8), np.arange(0), 2, "", {}, 0.0)
    device = torch.device("cuda")
    model = build_model("resnet18", n_classes=28).to(device).to(memory_format=torch.channels_last)
    before = [p.detach().clone() for p in model.parameters()]
    optimizer = OPTIMIZERS.get("adamw")(model.parameters(), config)
    scheduler = SCHEDULERS.get("cosine")(optimizer, config, 1)
    stats = train_one_epoch(model, optimizer, scheduler, build_loss("bce").to(device), data,
                            Normalizer(None, None, device, True), config, epoch=0)
    assert stats["images"] == 8 and np.isfinite(stats["loss"])
    assert any(not torch.equal(b, p.detach()) for b, p in zip(before, model.parameters()))
