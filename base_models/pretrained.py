"""timm's ImageNet weights for a backbone: where they come from, whether a copy is cached, whether the hub answers.

``pretrained: true`` builds the backbone with ``timm.create_model(name, pretrained=True, in_chans=4)``:
timm resolves the weights (:func:`pretrained_source`: the Hugging Face hub repository of the model's
default tag, or an older release URL), downloads them once into its normal cache (the hub cache,
``HF_HUB_CACHE`` / ``HF_HOME``; a URL into torch's hub cache, ``TORCH_HOME``) and adapts the 3-channel
stem to 4 channels with ``timm.models.adapt_input_conv``.

What a command needs before it builds anything, without downloading: :func:`cached_copy` (is a copy of
the weights in the cache?) and :func:`hub_reachable` (does the hub accept a connection within a few
seconds? - a hub that does not answer would otherwise cost about 46 s of retries per file before timm
fails). :func:`unavailable_message` is the one-line refusal. The decision about ``HF_HUB_OFFLINE`` is
the command layer's (:func:`base_models.commands._env.offline_hub`); nothing here writes the environment.

timm (and, through it, huggingface_hub, which reads ``HF_HUB_OFFLINE`` when first imported) is
imported inside the functions that need it.
"""

from __future__ import annotations

import os
import socket
import threading
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from hpa_ens.validation import ParameterError

__all__ = ["PretrainedSource", "pretrained_source", "cached_copy", "cache_folder", "hub_endpoint", "hub_reachable",
           "unavailable_message", "HUB_TIMEOUT_S"]

#: Seconds a connection to the hub may take before the hub counts as unreachable.
HUB_TIMEOUT_S = 3.0
_DEFAULT_ENDPOINT = "https://huggingface.co"
# timm's names (timm.models._hub): a .bin file is looked for as .safetensors first.
_TIMM_WEIGHTS_FILE = "pytorch_model.bin"
_SAFE_WEIGHTS_FILE = "model.safetensors"


@dataclass(frozen=True)
class PretrainedSource:
    """Where timm loads a backbone's pretrained weights from.

    ``hf_hub_id`` (``timm/resnet18.a1_in1k``, optionally ``@revision``) with the file names timm tries in
    order (``files``), or, for a model without a hub repository, ``url`` (torch's hub cache).
    """

    backbone: str
    hf_hub_id: str | None
    files: tuple[str, ...]
    url: str | None

    @property
    def label(self) -> str:
        """How messages name the weights: the hub repository, else the URL's file name."""
        if self.hf_hub_id:
            return self.hf_hub_id
        return Path(urllib.parse.urlparse(self.url or "").path).name or self.backbone


def pretrained_source(backbone: str) -> PretrainedSource:
    """The source timm resolves for ``backbone``'s pretrained weights (imports timm).

    Raises
    ------
    ParameterError
        When timm knows no pretrained weights for the backbone.
    """
    from timm.models import get_pretrained_cfg

    from .models import check_backbone

    cfg = get_pretrained_cfg(check_backbone(backbone))
    hf_hub_id = getattr(cfg, "hf_hub_id", None) or None
    url = getattr(cfg, "url", None) or None
    if cfg is None or not (hf_hub_id or url):
        raise ParameterError(f"The 'pretrained' parameter needs a backbone with pretrained weights in timm; "
                             f"{backbone!r} has none (timm.list_pretrained() lists those that do). Got true instead.")
    filename = getattr(cfg, "hf_hub_filename", None) or _TIMM_WEIGHTS_FILE
    if filename == _TIMM_WEIGHTS_FILE:
        files = (_SAFE_WEIGHTS_FILE, filename)
    elif filename.endswith(".bin"):
        files = (filename[:-4] + ".safetensors", filename)
    else:
        files = (filename,)
    return PretrainedSource(backbone, hf_hub_id, files, None if hf_hub_id else url)


def _torch_hub_file(url: str) -> Path:
    from torch.hub import get_dir

    return Path(get_dir()) / "checkpoints" / Path(urllib.parse.urlparse(url).path).name


def cached_copy(source: PretrainedSource) -> Path | None:
    """The cached file timm would load for ``source`` without the network, or None."""
    if source.hf_hub_id:
        from huggingface_hub import try_to_load_from_cache

        repo, _, revision = source.hf_hub_id.partition("@")
        for name in source.files:
            found = try_to_load_from_cache(repo, name, revision=revision or None)
            if isinstance(found, str):
                return Path(found)
        return None
    path = _torch_hub_file(source.url or "")
    return path if path.is_file() else None


def cache_folder(source: PretrainedSource) -> Path:
    """The folder the weights of ``source`` are downloaded into (the hub cache, or torch's for a URL)."""
    if source.hf_hub_id:
        from huggingface_hub import constants

        return Path(constants.HF_HUB_CACHE)
    return _torch_hub_file(source.url or "").parent


def hub_endpoint() -> str:
    """The Hugging Face endpoint timm downloads from (``HF_ENDPOINT``, default https://huggingface.co)."""
    return (os.environ.get("HF_ENDPOINT") or _DEFAULT_ENDPOINT).rstrip("/")


def _address(endpoint: str) -> tuple[str, int]:
    """Host and port a connection to ``endpoint`` opens first: the HTTPS/HTTP proxy's when one applies."""
    parsed = urllib.parse.urlparse(endpoint)
    host = parsed.hostname or ""
    proxy = urllib.request.getproxies().get(parsed.scheme)
    if proxy and not urllib.request.proxy_bypass(host):
        parsed = urllib.parse.urlparse(proxy if "://" in proxy else f"http://{proxy}")
        host = parsed.hostname or host
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    return host, port


def hub_reachable(endpoint: str | None = None, timeout: float = HUB_TIMEOUT_S) -> bool:
    """True when a TCP connection to the hub (or the proxy in front of it) opens within ``timeout`` seconds.

    The name lookup runs in a daemon thread, so a resolver that hangs costs ``timeout`` too, not its own
    retries.
    """
    host, port = _address(endpoint or hub_endpoint())
    if not host:
        return False
    result: list[bool] = []

    def connect() -> None:
        try:
            with socket.create_connection((host, port), timeout=timeout):
                result.append(True)
        except OSError:
            result.append(False)

    worker = threading.Thread(target=connect, name="hub-probe", daemon=True)
    worker.start()
    worker.join(timeout)
    return bool(result and result[0])


def unavailable_message(source: PretrainedSource, why: str) -> str:
    """The one-line refusal when the weights are neither cached nor downloadable (``why``: the reason)."""
    where = hub_endpoint() if source.hf_hub_id else urllib.parse.urlparse(source.url or "").netloc
    return (f"pretrained: true needs timm's ImageNet weights for backbone {source.backbone!r} ({source.label}): not "
            f"in the cache {cache_folder(source)}, and no download ({why}). Run once where {where} is reachable "
            f"(the weights stay cached there for offline runs), or point weights: (--weights FILE) at a local "
            f".safetensors or .pth state dict instead of pretrained: true.")
