"""``clip``: CLIP image and text embeddings in one space, via Hugging Face transformers.

``settings.clip_model`` is a model hub id (default ``openai/clip-vit-base-patch32``) or a
local directory saved with ``save_pretrained``. Images are prepared by the PIL image
processor, so torchvision is not needed. The model loads on first use.
"""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray
from PIL import Image

from imgsearch.config import Settings
from imgsearch.encode.base import Encoder, configure_torch_threads, quiet_model_loading
from imgsearch.errors import ModelUnavailableError

DEFAULT_CLIP = "openai/clip-vit-base-patch32"
# Known without loading anything, so a collection can be described offline.
KNOWN_CLIP_DIMS = {DEFAULT_CLIP: 512, "openai/clip-vit-base-patch16": 512,
                   "openai/clip-vit-large-patch14": 768}
DEFAULT_IMAGE_SIDE = 224
HUB_PROBE_TIMEOUT_S = 2.0  # how long an uncached hub id may wait to learn the hub is away


def _hub_unreachable(endpoint: str, timeout_s: float = HUB_PROBE_TIMEOUT_S) -> str | None:
    """Why the model hub at ``endpoint`` cannot be reached now, or None when it can.

    One TCP connection, in a thread so that a hanging name lookup cannot hold it up:
    transformers would otherwise retry each file for half a minute before giving up.
    """
    from urllib.parse import urlsplit

    parts = urlsplit(endpoint)
    host = parts.hostname or ""
    port = parts.port or (443 if parts.scheme == "https" else 80)
    outcome: list[str | None] = []

    def probe() -> None:
        try:
            socket.create_connection((host, port), timeout=timeout_s).close()
            outcome.append(None)
        except OSError as exc:
            outcome.append(f"{type(exc).__name__}: {exc}")

    worker = threading.Thread(target=probe, daemon=True, name="imgsearch-hub-probe")
    worker.start()
    worker.join(timeout_s)
    if not outcome:
        return f"no answer from {host} within {timeout_s:g} s"
    return outcome[0]


def _cached_on_disk(model: str) -> bool:
    """Whether the hub id's files are in the local Hugging Face cache."""
    from huggingface_hub import try_to_load_from_cache

    found = try_to_load_from_cache(model, "config.json")
    return isinstance(found, str)


def local_model_dir(model: str) -> Path | None:
    """The directory ``model`` names, or None when it is a model hub id."""
    path = Path(model).expanduser()
    looks_local = model.startswith(("/", ".", "~")) or path.is_absolute()
    if path.exists() or looks_local or model.count("/") > 1:
        return path
    return None


def clip_model_id(model: str) -> str:
    local = local_model_dir(model)
    return local.resolve().name if local is not None else model


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def clip_dimension(model: str) -> int | None:
    """The embedding size of ``model`` without loading weights, or None if unknown."""
    local = local_model_dir(model)
    if local is None:
        return KNOWN_CLIP_DIMS.get(model)
    dim = _read_json(local / "config.json").get("projection_dim")
    return int(dim) if isinstance(dim, int) else None


def _fix_hint(model: str) -> str:
    hub_id = model if local_model_dir(model) is None else DEFAULT_CLIP
    return (
        f"On a connected machine run `huggingface-cli download {hub_id} --local-dir DIR`, "
        "copy DIR here and pass `--clip-model DIR` (or set IMGSEARCH_CLIP_MODEL=DIR); "
        "or use the weight-free `descriptor` image encoder instead."
    )


def _features(output: Any) -> Any:
    """Projected embeddings from get_*_features, which returns a model output in
    transformers 5 and a plain tensor before."""
    pooled = getattr(output, "pooler_output", None)
    return output if pooled is None else pooled


class ClipEncoder(Encoder):
    """CLIP vision and text towers, projected into one shared space."""

    name = "clip"
    modalities = frozenset({"image", "text"})

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._model_ref = settings.clip_model
        self._local = local_model_dir(settings.clip_model)
        self.model_id = clip_model_id(settings.clip_model)
        self.batch_size = max(1, settings.encode_batch_size)
        self._dim = clip_dimension(settings.clip_model)
        self._parts: tuple[Any, Any, Any, int] | None = None
        self._lock = threading.Lock()

    @property
    def dim(self) -> int:
        if self._dim is None:
            self._dim = int(self._load()[0].config.projection_dim)
        return self._dim

    @dim.setter
    def dim(self, value: int) -> None:
        self._dim = value

    @property
    def image_side(self) -> int:
        if self._parts is not None:
            crop = self._parts[2].crop_size
            return int(min(crop["height"], crop["width"]))
        if self._local is not None:
            crop = _read_json(self._local / "preprocessor_config.json").get("crop_size")
            if isinstance(crop, dict) and crop:
                return int(min(crop.values()))
            if isinstance(crop, int):
                return crop
        return DEFAULT_IMAGE_SIDE

    @image_side.setter
    def image_side(self, value: int) -> None:
        raise AttributeError("the CLIP image side comes from the model's image processor")

    def load(self) -> bool:
        with self._lock:
            if self._parts is not None:
                return False
            self._parts = self._open()
            return True

    def _load(self) -> tuple[Any, Any, Any, int]:
        with self._lock:
            if self._parts is None:
                self._parts = self._open()
            return self._parts

    def _open(self) -> tuple[Any, Any, Any, int]:
        if self._local is not None and not (self._local / "config.json").is_file():
            what = "does not exist" if not self._local.exists() else "has no config.json"
            raise ModelUnavailableError(
                f"cannot load CLIP model {self._model_ref!r}: the directory {what}. "
                + _fix_hint(self._model_ref)
            )
        if self._local is None:
            self._check_hub(self._model_ref)
        try:
            import transformers
        except ImportError as exc:
            raise ModelUnavailableError(
                f"the clip encoder needs the transformers package ({exc}): pip install transformers"
            ) from exc
        configure_torch_threads(self._settings)
        source = str(self._local) if self._local is not None else self._model_ref
        # transformers 5 has a PIL image processor; its default one needs torchvision.
        processor_class: Any = getattr(transformers, "CLIPImageProcessorPil", None)
        if processor_class is None:
            processor_class = transformers.CLIPImageProcessor
        try:
            with quiet_model_loading():
                model: Any = transformers.CLIPModel.from_pretrained(source)
                model = model.to(self._settings.device)
                tokenizer = transformers.CLIPTokenizer.from_pretrained(source)
                processor = processor_class.from_pretrained(source)
        except Exception as exc:  # hub, file and format errors all mean "no usable weights"
            raise ModelUnavailableError(
                f"cannot load CLIP model {self._model_ref!r}: {type(exc).__name__}: {exc}. "
                + _fix_hint(self._model_ref)
            ) from exc
        model.eval()
        max_length = int(model.config.text_config.max_position_embeddings)
        return model, tokenizer, processor, max_length

    @staticmethod
    def _check_hub(model: str) -> None:
        """Fail at once for a hub id that is neither cached nor downloadable now."""
        from huggingface_hub import constants

        if _cached_on_disk(model):
            return
        if constants.HF_HUB_OFFLINE:
            why = "it is not in the local cache and the hub is switched off (HF_HUB_OFFLINE)"
        else:
            away = _hub_unreachable(constants.ENDPOINT)
            if away is None:
                return
            why = f"it is not in the local cache and the model hub cannot be reached ({away})"
        raise ModelUnavailableError(f"cannot load CLIP model {model!r}: {why}. "
                                    + _fix_hint(model))

    def _embed_image_batch(self, images: Sequence[Image.Image]) -> NDArray[np.float32]:
        model, _, processor, _ = self._load()  # first: a missing model fails before torch loads
        import torch

        rgb = [im if im.mode == "RGB" else im.convert("RGB") for im in images]
        pixels = processor(images=rgb, return_tensors="pt")["pixel_values"]
        with torch.inference_mode():
            out = _features(model.get_image_features(pixel_values=pixels.to(model.device)))
        return np.asarray(out.float().cpu().numpy(), dtype=np.float32)

    def _embed_text_batch(self, texts: Sequence[str]) -> NDArray[np.float32]:
        model, tokenizer, _, max_length = self._load()
        import torch

        tokens = tokenizer(
            list(texts), padding=True, truncation=True, max_length=max_length, return_tensors="pt"
        )
        tokens = {k: v.to(model.device) for k, v in tokens.items()}
        with torch.inference_mode():
            out = _features(model.get_text_features(**tokens))
        return np.asarray(out.float().cpu().numpy(), dtype=np.float32)
