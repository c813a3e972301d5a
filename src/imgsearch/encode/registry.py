"""Encoders by name: the one place that knows which names exist and how to build them."""

from __future__ import annotations

from collections.abc import Callable

from imgsearch.config import Settings
from imgsearch.encode.base import Encoder
from imgsearch.errors import UnknownEncoderError

EncoderFactory = Callable[[Settings], Encoder]


def _descriptor(settings: Settings) -> Encoder:
    from imgsearch.encode.descriptor import DescriptorEncoder

    return DescriptorEncoder(batch_size=max(64, settings.encode_batch_size))


def _minilm(settings: Settings) -> Encoder:
    from imgsearch.encode.minilm import MiniLMEncoder

    return MiniLMEncoder(settings)


def _clip(settings: Settings) -> Encoder:
    from imgsearch.encode.clip import ClipEncoder

    return ClipEncoder(settings)


def _fake(settings: Settings) -> Encoder:
    from imgsearch.encode.fake import FakeEncoder

    return FakeEncoder(batch_size=settings.encode_batch_size)


_FACTORIES: dict[str, EncoderFactory] = {
    "clip": _clip,
    "descriptor": _descriptor,
    "fake": _fake,
    "minilm": _minilm,
}


def register_encoder(name: str, factory: EncoderFactory) -> None:
    """Make ``factory`` available as ``name`` (replacing an earlier one of that name)."""
    if not name or not name.strip():
        raise ValueError("an encoder name must not be empty")
    _FACTORIES[name] = factory


def encoder_names() -> list[str]:
    return sorted(_FACTORIES)


def get_encoder(name: str, settings: Settings) -> Encoder:
    """Build the encoder registered as ``name``. Models load lazily, on first use."""
    factory = _FACTORIES.get(name)
    if factory is None:
        raise UnknownEncoderError(
            f"no encoder named {name!r}; known encoders: {', '.join(encoder_names())}"
        )
    return factory(settings)


def describe_encoder(name: str, settings: Settings) -> tuple[str, int]:
    """(model id, dimension) of an encoder, without loading weights where possible."""
    if name == "minilm":
        from imgsearch.encode.minilm import DEFAULT_MINILM, MINILM_DIM, model_source

        _, model_id = model_source(settings)
        if model_id == DEFAULT_MINILM:
            return model_id, MINILM_DIM
    elif name == "clip":
        from imgsearch.encode.clip import clip_dimension, clip_model_id

        dim = clip_dimension(settings.clip_model)
        if dim is not None:
            return clip_model_id(settings.clip_model), dim
    encoder = get_encoder(name, settings)
    return encoder.model_id, encoder.dim
