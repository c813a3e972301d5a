"""Builds a tiny, randomly initialised CLIP model directory for tests, fully offline.

The directory is written with ``save_pretrained`` (model, tokenizer, image processor), so
the real loader reads it from disk exactly as it would read downloaded weights.
"""

from __future__ import annotations

import json
import string
import tempfile
from pathlib import Path

BOS = "<|startoftext|>"
EOS = "<|endoftext|>"
PROJECTION_DIM = 16
IMAGE_SIZE = 32
MAX_TEXT_TOKENS = 16
# A few merges so the tokenizer really runs BPE: "th", "the</w>", "ca", "cat</w>".
MERGES = [("t", "h"), ("th", "e</w>"), ("c", "a"), ("ca", "t</w>")]


def tiny_vocab() -> dict[str, int]:
    """Lower-case letters, digits and common punctuation, alone and word-final, plus merges."""
    symbols = list(string.ascii_lowercase + string.digits + ".,!?'-")
    tokens = symbols + [s + "</w>" for s in symbols] + [a + b for a, b in MERGES]
    vocab = {tok: i for i, tok in enumerate(dict.fromkeys(tokens))}
    # Special tokens last, as in the released CLIP vocabularies.
    vocab[BOS] = len(vocab)
    vocab[EOS] = len(vocab)
    return vocab


def make_tiny_clip(path: Path) -> Path:
    """Write a tiny CLIP (hidden 32, 2 layers, 32-px images, projection 16) to ``path``."""
    import torch
    from transformers import CLIPConfig, CLIPImageProcessorPil, CLIPModel, CLIPTokenizer

    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    vocab = tiny_vocab()
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp)
        (src / "vocab.json").write_text(json.dumps(vocab), encoding="utf-8")
        merges = "#version: 0.2\n" + "".join(f"{a} {b}\n" for a, b in MERGES)
        (src / "merges.txt").write_text(merges, encoding="utf-8")
        tokenizer = CLIPTokenizer.from_pretrained(str(src), model_max_length=MAX_TEXT_TOKENS)
    tokenizer.save_pretrained(str(path))

    config = CLIPConfig(
        text_config={
            "vocab_size": len(vocab),
            "hidden_size": 32,
            "intermediate_size": 37,
            "num_hidden_layers": 2,
            "num_attention_heads": 4,
            "max_position_embeddings": MAX_TEXT_TOKENS,
            "bos_token_id": vocab[BOS],
            "eos_token_id": vocab[EOS],
            "pad_token_id": vocab[EOS],
        },
        vision_config={
            "hidden_size": 32,
            "intermediate_size": 37,
            "num_hidden_layers": 2,
            "num_attention_heads": 4,
            "image_size": IMAGE_SIZE,
            "patch_size": 8,
        },
        projection_dim=PROJECTION_DIM,
    )
    torch.manual_seed(0)
    CLIPModel(config).eval().save_pretrained(str(path))

    processor = CLIPImageProcessorPil(
        size={"shortest_edge": IMAGE_SIZE},
        crop_size={"height": IMAGE_SIZE, "width": IMAGE_SIZE},
    )
    processor.save_pretrained(str(path))
    return path
