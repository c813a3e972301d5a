"""What the exported sentence model takes and gives: its input and output names, and the
tokenizer's output as its inputs. Shared by the exporter and the runtime."""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

INPUTS = ("input_ids", "attention_mask", "token_type_ids")
OUTPUT = "sentence_embedding"


def encode_batch(tokenizer: Any, texts: list[str]) -> dict[str, NDArray[np.int64]]:
    """The model's inputs for ``texts``: token ids, attention mask and token types."""
    encodings = tokenizer.encode_batch(texts)
    return {
        "input_ids": np.array([e.ids for e in encodings], dtype=np.int64),
        "attention_mask": np.array([e.attention_mask for e in encodings], dtype=np.int64),
        "token_type_ids": np.array([e.type_ids for e in encodings], dtype=np.int64),
    }
