"""The ``Encoder`` base class: one batch method per modality, everything else derived.

A subclass states what it is (``name``, ``model_id``, ``dim``, ``modalities``) and
implements ``_embed_image_batch`` and/or ``_embed_text_batch`` for the modalities it
supports. Batching, empty inputs, single items, shape checks and L2 normalisation live
here, so every encoder hands out the same kind of vectors.
"""

from __future__ import annotations

import os
from abc import ABC
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import TypeVar

import numpy as np
from numpy.typing import NDArray
from PIL import Image

from imgsearch.config import Settings
from imgsearch.errors import EncoderError

T = TypeVar("T")

MODALITIES: frozenset[str] = frozenset({"image", "text"})


class Encoder(ABC):  # noqa: B024 -- abstract in spirit: a subclass implements one batch method per modality
    """Turns images and/or texts into L2-normalised float32 vectors of size ``dim``."""

    name: str = ""
    model_id: str = ""
    dim: int = 0
    modalities: frozenset[str] = frozenset()
    # Shorter side the encoder wants images decoded at; decoders use it to draft-reduce JPEGs.
    image_side: int = 224
    batch_size: int = 32

    # -- what subclasses implement ------------------------------------------------------

    def _embed_image_batch(self, images: Sequence[Image.Image]) -> NDArray[np.float32]:
        raise EncoderError(f"encoder {self.name!r} does not embed images")

    def _embed_text_batch(self, texts: Sequence[str]) -> NDArray[np.float32]:
        raise EncoderError(f"encoder {self.name!r} does not embed texts")

    # -- derived ------------------------------------------------------------------------

    def embed_images(self, images: Sequence[Image.Image]) -> NDArray[np.float32]:
        """Embed RGB images; returns an ``(n, dim)`` array of unit vectors."""
        self._require("image")
        return self._run(list(images), self._embed_image_batch)

    def embed_texts(self, texts: Sequence[str]) -> NDArray[np.float32]:
        """Embed texts; returns an ``(n, dim)`` array of unit vectors."""
        self._require("text")
        if isinstance(texts, str):
            raise EncoderError("embed_texts takes a list of texts, not one string; use embed_text")
        return self._run([str(t) for t in texts], self._embed_text_batch)

    def embed_image(self, image: Image.Image) -> NDArray[np.float32]:
        """Embed one image; returns a ``(dim,)`` unit vector."""
        return self.embed_images([image])[0]

    def embed_text(self, text: str) -> NDArray[np.float32]:
        """Embed one text; returns a ``(dim,)`` unit vector."""
        return self.embed_texts([text])[0]

    def image_vector_job(self) -> Callable[[Image.Image], NDArray[np.float32]] | None:
        """A module-level function giving one image's unit vector, for a decode worker
        process to run beside decoding (workers receive it by name); None when images
        must come to this process (a model loaded here)."""
        return None

    def load(self) -> bool:
        """Load the model now rather than on first use; True when this call loaded it
        (False when it was loaded already or there is nothing to load)."""
        return False

    def supports(self, modality: str) -> bool:
        return modality in self.modalities

    def __repr__(self) -> str:
        return f"{type(self).__name__}(model_id={self.model_id!r}, dim={self.dim})"

    def _require(self, modality: str) -> None:
        if modality not in self.modalities:
            supported = ", ".join(sorted(self.modalities)) or "nothing"
            raise EncoderError(
                f"encoder {self.name!r} cannot embed {modality}s (it embeds {supported}); "
                f"choose an encoder that supports {modality}s"
            )

    def _run(
        self, inputs: list[T], embed_batch: Callable[[Sequence[T]], NDArray[np.float32]]
    ) -> NDArray[np.float32]:
        dim = self.dim
        if not inputs:
            return np.zeros((0, dim), dtype=np.float32)
        size = max(1, int(self.batch_size))
        parts = [embed_batch(inputs[i : i + size]) for i in range(0, len(inputs), size)]
        out = np.concatenate(parts, axis=0) if len(parts) > 1 else parts[0]
        if out.shape != (len(inputs), dim):
            raise EncoderError(
                f"encoder {self.name!r} ({self.model_id}) returned shape {out.shape} "
                f"for {len(inputs)} inputs; expected ({len(inputs)}, {dim})"
            )
        return l2_normalize(out)


def l2_normalize(vectors: NDArray[np.floating]) -> NDArray[np.float32]:
    """Rows scaled to unit length, as float32; all-zero rows stay zero."""
    out = np.array(vectors, dtype=np.float32, copy=True)
    norms = np.linalg.norm(out, axis=-1, keepdims=True)
    np.divide(out, np.maximum(norms, 1e-12), out=out)
    return out


def thread_count(settings: Settings) -> int:
    """``settings.torch_threads``, or in automatic mode half the cores (1 to 8)."""
    wanted = int(settings.torch_threads)
    if wanted > 0:
        return wanted
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return max(1, min((cores or 1) // 2, 8))


def configure_torch_threads(settings: Settings) -> None:
    """Apply ``settings.torch_threads`` to torch (0: half the cores, at least 1, at most 8).

    Half, because during ingest the model shares the machine with the decoding threads;
    a model given every core fights them for it and both slow down.

    An explicit setting is applied as given. In automatic mode the count is only
    lowered, never raised, so a choice the host application made stays in force.
    """
    import torch

    target = thread_count(settings)
    if settings.torch_threads > 0:
        if torch.get_num_threads() != target:
            torch.set_num_threads(target)
        return
    if torch.get_num_threads() > target:
        torch.set_num_threads(target)


@contextmanager
def quiet_model_loading() -> Iterator[None]:
    """Hide transformers' loading progress bars: the library never writes to the terminal."""
    from transformers.utils import logging as hf_logging

    was_enabled = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if was_enabled:
            hf_logging.enable_progress_bar()
