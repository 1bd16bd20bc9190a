"""Initial weights of the base models: timm's ImageNet weights (pretrained: true), local state dicts (weights:),
the hub decision of the commands (offline, unreachable, reachable), and their one-line refusals.

Never the network: "ImageNet" weights are state dicts of randomly initialised timm models, saved locally or
planted in a temporary Hugging Face cache in the layout huggingface_hub reads (refs/main -> snapshots/...).
The hub endpoint is pointed at a closed local port, or at a local listening socket for "reachable".
"""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import json  # noqa: E402
import pickle  # noqa: E402
import socket  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import pytest  # noqa: E402

torch = pytest.importorskip("torch", reason="needs the [train] extra (torch)")
timm = pytest.importorskip("timm", reason="needs the [train] extra (timm)")

from timm.models import adapt_input_conv  # noqa: E402

from base_models import pretrained as pt  # noqa: E402
from base_models.commands import _env  # noqa: E402
from base_models.commands import train as train_cmd  # noqa: E402
from base_models.config import dump_config, load_config, result_record  # noqa: E402
from base_models.models import build_model, load_weights  # noqa: E402
from hpa_ens.commands import _cli as cli  # noqa: E402
from hpa_ens.validation import ContractError, ParameterError  # noqa: E402

from tiny_images import make_dataset  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
TINY = "mobilenetv3_small_050"
TINY_HUB_ID = "timm/mobilenetv3_small_050.lamb_in1k"  # timm's default tag for TINY
STEM = "conv_stem.weight"


def _rgb_state(seed: int = 7, backbone: str = TINY) -> dict:
    """An "ImageNet" state dict: a 3-channel, 1000-class timm model, randomly initialised."""
    torch.manual_seed(seed)
    model = timm.create_model(backbone, pretrained=False, in_chans=3, num_classes=1000)
    return {k: v.contiguous() for k, v in model.state_dict().items()}


def _plant_hub_cache(cache: Path, state: dict, hub_id: str = TINY_HUB_ID) -> Path:
    """Put ``state`` where huggingface_hub looks for ``hub_id``'s model.safetensors."""
    from safetensors.torch import save_file

    commit = "0123456789abcdef0123456789abcdef01234567"
    repo = cache / f"models--{hub_id.replace('/', '--')}"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(commit)
    (repo / "snapshots" / commit).mkdir(parents=True)
    save_file(state, str(repo / "snapshots" / commit / "model.safetensors"))
    return cache


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # closed again when the block ends: connections are refused


@pytest.fixture
def hub_cache(tmp_path, monkeypatch):
    """An empty hub cache for this process (huggingface_hub reads the constant at call time)."""
    from huggingface_hub import constants

    cache = tmp_path / "hub"
    cache.mkdir()
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    return cache


def _isolated_env(tmp_path: Path, **changes) -> dict:
    """A subprocess environment with empty caches (hub, torch) under tmp_path and no hub setting."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("HF_HUB_OFFLINE", "HF_HUB_CACHE", "HF_ENDPOINT") and not k.lower().endswith("_proxy")}
    env.update(HF_HOME=str(tmp_path / "hf_home"), HF_HUB_CACHE=str(tmp_path / "hf_home" / "hub"),
               TORCH_HOME=str(tmp_path / "torch_home"), PYTHONPATH=str(REPO), HPA_ENS_NO_PROGRESS="1")
    env.update(changes)
    return env


# ------------------------------------------------------------------------------------- weights: FILE
@pytest.mark.parametrize("suffix", [".safetensors", ".pth"])
def test_a_local_state_dict_loads_into_a_four_channel_model(tmp_path, suffix):
    state = _rgb_state()
    path = tmp_path / f"imagenet{suffix}"
    if suffix == ".safetensors":
        from safetensors.torch import save_file

        save_file(state, str(path))
    else:
        torch.save(state, path)
    torch.manual_seed(0)
    random_init = build_model(TINY, n_classes=28)
    torch.manual_seed(0)
    model = build_model(TINY, n_classes=28, weights=str(path))
    stem = model.state_dict()[STEM]
    assert stem.shape[1] == 4 and not torch.equal(stem, random_init.state_dict()[STEM])
    # the file's 3-channel stem adapted as timm adapts it for pretrained=True (repeat, rescale by 3/4)
    torch.testing.assert_close(stem, adapt_input_conv(4, state[STEM].float()), rtol=0, atol=0)
    torch.testing.assert_close(stem[:, :3], state[STEM] * 3 / 4)
    for key in ("blocks.1.0.conv_pw.weight", "bn1.running_var"):
        assert torch.equal(model.state_dict()[key], state[key])
    # the 28-class classifier is not the file's 1000-class one: kept as initialised
    assert torch.equal(model.state_dict()["classifier.weight"], random_init.state_dict()["classifier.weight"])


def test_a_state_dict_for_the_backbone_loads_into_attention_and_cell_models(tmp_path):
    from safetensors.torch import save_file

    from base_models.wrappers import wrap_model

    state = _rgb_state()
    save_file(state, str(tmp_path / "w.safetensors"))
    attention = build_model(TINY, head="attention", n_classes=5, weights=str(tmp_path / "w.safetensors"))
    torch.testing.assert_close(attention.backbone.state_dict()[STEM], adapt_input_conv(4, state[STEM]))
    config = load_config(None, dict(backbone=TINY, cells=True, augment_crop_scale=1.0, image_size=32,
                                    weights=str(tmp_path / "w.safetensors")))
    cells = wrap_model(build_model(TINY, n_classes=5), config, n_classes=5)
    torch.testing.assert_close(cells.inner.backbone.state_dict()[STEM], adapt_input_conv(4, state[STEM]))


def test_a_shape_mismatch_is_one_line_naming_file_key_and_shapes(tmp_path):
    from safetensors.torch import save_file

    other = _rgb_state(backbone="mobilenetv3_small_100")  # same names, other widths
    path = tmp_path / "small_100.safetensors"
    save_file(other, str(path))
    with pytest.raises(ContractError) as err:
        load_weights(build_model(TINY), path)
    message = str(err.value)
    assert "\n" not in message and str(path) in message
    # the stems agree but for the channels (adapted); the first mismatch in the model's order is the next conv
    assert "'blocks.0.0.conv_pw.weight' has shape (16, 16, 1, 1) but the model expects (8, 16, 1, 1)" in message

    data = make_dataset(tmp_path / "d", n_train=6, n_test=2, size=16)[0]
    argv = ["--data", str(data), "--folds", str(data / "folds.csv"), "--fold", "0", "--out", str(tmp_path / "oof"),
            "--backbone", TINY, "--weights", str(path), "--image-size", "16", "--epochs", "1", "--threads", "1"]
    assert cli.run(train_cmd.main, argv) == 2


def test_a_weights_pth_holding_pickled_objects_is_refused_unrun(tmp_path):
    ran = tmp_path / "ran"
    path = tmp_path / "evil.pth"
    path.write_bytes(pickle.dumps({"model": {STEM: torch.zeros(8, 3, 3, 3)}, "hook": _Runs(str(ran))}, protocol=2))
    with pytest.raises(ContractError, match="refused: this weights file holds pickled Python objects") as err:
        build_model(TINY, weights=str(path))
    assert "\n" not in str(err.value) and not ran.exists()
    torch.save({"model": {STEM: torch.zeros(8, 3, 3, 3)}, "hook": _Runs(str(ran))}, path)
    with pytest.raises(ContractError, match="refused"):
        build_model(TINY, weights=str(path))
    assert not ran.exists()


class _Runs:
    """Unpickling this would create a file: an unrestricted pickle load runs code."""

    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (Path.touch, (Path(self.path),))


def test_pretrained_and_weights_together_are_refused(tmp_path):
    with pytest.raises(ParameterError, match="'pretrained' and 'weights' parameters cannot be combined"):
        load_config(None, dict(backbone=TINY, pretrained=True, weights=str(tmp_path / "w.safetensors")))
    with pytest.raises(ParameterError, match="cannot be combined"):
        build_model(TINY, pretrained=True, weights=str(tmp_path / "w.safetensors"))


def test_pretrained_needs_a_backbone_with_weights():
    with pytest.raises(ParameterError, match="'botnet50ts_256' has none"):
        load_config(None, dict(backbone="botnet50ts_256", pretrained=True))
    with pytest.raises(ParameterError, match="Close names"):
        load_config(None, dict(backbone="mobilenetv3_smal_050", pretrained=True))


# ------------------------------------------------------------------------------------ pretrained: true
@pytest.mark.parametrize("head", ["linear", "attention"])
def test_pretrained_loads_timms_weights_with_the_stem_adapted(hub_cache, head):
    state = _rgb_state(seed=11)
    _plant_hub_cache(hub_cache, state)
    assert pt.cached_copy(pt.pretrained_source(TINY)) is not None
    torch.manual_seed(0)
    model = build_model(TINY, head=head, n_classes=6, pretrained=True)
    backbone = model if head == "linear" else model.backbone
    torch.testing.assert_close(backbone.state_dict()[STEM], adapt_input_conv(4, state[STEM]), rtol=0, atol=0)
    assert torch.equal(backbone.state_dict()["blocks.1.0.conv_pw.weight"], state["blocks.1.0.conv_pw.weight"])
    torch.manual_seed(0)
    random_init = build_model(TINY, head=head, n_classes=6)
    key = STEM if head == "linear" else f"backbone.{STEM}"
    assert not torch.equal(random_init.state_dict()[key], model.state_dict()[key])


def test_pretrained_reaches_the_cell_model(hub_cache):
    from base_models.wrappers import wrap_model

    state = _rgb_state(seed=12)
    _plant_hub_cache(hub_cache, state)
    config = load_config(None, dict(backbone=TINY, cells=True, augment_crop_scale=1.0, image_size=32, pretrained=True))
    cells = wrap_model(build_model(TINY, n_classes=5), config, n_classes=5)
    torch.testing.assert_close(cells.inner.backbone.state_dict()[STEM], adapt_input_conv(4, state[STEM]))


def test_train_with_pretrained_starts_from_the_cached_weights(hub_cache, tmp_path):
    state = _rgb_state(seed=13)
    _plant_hub_cache(hub_cache, state)
    data = make_dataset(tmp_path / "d", n_train=8, n_test=2, size=16)[0]
    out = tmp_path / "oof"
    # lr 1e-9 (YAML reads "1e-9" as text): one epoch leaves the convolutions where they started
    argv = ["--data", str(data), "--folds", str(data / "folds.csv"), "--fold", "0", "--out", str(out), "--backbone",
            TINY, "--pretrained", "--image-size", "16", "--epochs", "1", "--threads", "1", "--batch-size", "4",
            "--lr", "0.000000001", "--tta", "none", "--name", "tiny"]
    assert cli.run(train_cmd.main, argv) == 0
    kept = torch.load(out / "tiny" / "fold0" / "best.pt", weights_only=True)
    weights = kept.get("model", kept)
    torch.testing.assert_close(weights[STEM], adapt_input_conv(4, state[STEM]), rtol=0, atol=1e-6)
    metrics = json.loads((out / "tiny" / "fold0" / "metrics.json").read_text())
    assert metrics["pretrained_weights"] == TINY_HUB_ID
    assert "pretrained: true" in (out / "tiny" / "fold0" / "config.yaml").read_text()


def test_pretrained_false_leaves_config_and_fingerprint_as_before():
    plain = load_config(None, dict(backbone=TINY))
    assert "pretrained" not in dump_config(plain) and "pretrained" not in result_record(plain)
    asked = load_config(None, dict(backbone=TINY, pretrained=True), check_names=False)
    assert result_record(asked)["pretrained"] is True and "pretrained: true" in dump_config(asked)


def test_a_bool_config_flag_alone_means_true():
    args = train_cmd.build_parser().parse_args(["--data", "d", "--folds", "f", "--fold", "0", "--pretrained",
                                                "--augment-dihedral", "false"])
    assert args.cfg_pretrained is True and args.cfg_augment_dihedral is False
    args = train_cmd.build_parser().parse_args(["--data", "d", "--folds", "f", "--fold", "0", "--pretrained", "false"])
    assert args.cfg_pretrained is False


# ------------------------------------------------------------------------------------- the hub decision
def test_offline_hub_with_the_hub_unreachable_goes_offline_when_cached(hub_cache, monkeypatch):
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{_closed_port()}")
    _plant_hub_cache(hub_cache, _rgb_state())
    started = time.perf_counter()
    _env.offline_hub([TINY])
    assert os.environ["HF_HUB_OFFLINE"] == "1"
    assert time.perf_counter() - started < 10  # one refused connection, not huggingface_hub's ~46 s of retries


def test_offline_hub_with_the_hub_unreachable_refuses_missing_weights_in_one_line(hub_cache, monkeypatch):
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    endpoint = f"http://127.0.0.1:{_closed_port()}"
    monkeypatch.setenv("HF_ENDPOINT", endpoint)
    with pytest.raises(ContractError) as err:
        _env.offline_hub([TINY])
    message = str(err.value)
    assert "\n" not in message and f"{endpoint} could not be reached within 3 s" in message
    assert f"backbone {TINY!r}" in message and str(hub_cache) in message and "weights: (--weights FILE)" in message


def test_offline_hub_with_the_hub_reachable_stays_online_and_imports_nothing(tmp_path):
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        code = ("import os, sys\n"
                "from base_models.commands._env import offline_hub\n"
                "offline_hub(['resnet18'])\n"
                "print(os.environ.get('HF_HUB_OFFLINE'), 'timm' in sys.modules, 'huggingface_hub' in sys.modules)")
        env = _isolated_env(tmp_path, HF_ENDPOINT=f"http://127.0.0.1:{server.getsockname()[1]}")
        proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=REPO,
                              timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["None", "False", "False"]  # online, decided before timm: it downloads


def test_hub_reachable_is_bounded_when_the_lookup_hangs(monkeypatch):
    def hang(*args, **kwargs):
        time.sleep(5)
        raise OSError("late")

    monkeypatch.setattr(socket, "create_connection", hang)
    started = time.perf_counter()
    assert pt.hub_reachable("https://huggingface.co", timeout=0.3) is False
    assert time.perf_counter() - started < 2


def test_hub_reachable_uses_the_proxy_in_front_of_the_hub(monkeypatch):
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.example:3128")
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    assert pt._address("https://huggingface.co") == ("proxy.example", 3128)
    monkeypatch.delenv("HTTPS_PROXY")
    monkeypatch.delenv("https_proxy", raising=False)
    assert pt._address("https://huggingface.co") == ("huggingface.co", 443)


@pytest.mark.parametrize("command", ["train", "base-models"])
def test_pretrained_offline_without_a_cache_stops_in_one_line_before_any_data(tmp_path, command):
    """The brief's case: HF_HUB_OFFLINE=1, empty HF_HOME / HF_HUB_CACHE / TORCH_HOME, exit 2, one line."""
    missing = tmp_path / "no_such_data"
    if command == "train":
        args = ["-m", "base_models.train", "--data", str(missing), "--folds", str(missing / "folds.csv"), "--fold",
                "0", "--backbone", TINY, "--pretrained"]
    else:  # the default data folder would be generated into: it must not be
        args = ["-m", "hpa_ens", "base-models", "--pretrained", "--names", "regnetx_002"]
    proc = subprocess.run([sys.executable, *args], capture_output=True, text=True, cwd=tmp_path, timeout=300,
                          env=_isolated_env(tmp_path, HF_HUB_OFFLINE="1"))
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.count("\n") == 1, proc.stderr
    line = proc.stderr.strip()
    hub = tmp_path / "hf_home" / "hub"
    backbone = TINY if command == "train" else "regnetx_002"
    assert line.startswith("error: pretrained: true needs timm's ImageNet weights for backbone")
    assert f"{backbone!r}" in line and f"the cache {hub}" in line and "HF_HUB_OFFLINE=1 is set" in line
    assert "point weights: (--weights FILE) at a local .safetensors or .pth state dict" in line
    assert not missing.exists() and not (tmp_path / "data").exists() and not (tmp_path / "oof").exists()
