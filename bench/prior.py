"""Measure the encoder-level prior that small collections are calibrated with.

A collection under ``calibration.MIN_VECTORS`` items has too few pairs to say what chance
looks like, so its image hits are judged against what the encoder gives unrelated real
pictures: cosines between every pair of different pictures among the GNOME wallpapers
(``/usr/share/backgrounds``, gnome-backgrounds) and the Tux Paint stamps
(``/usr/share/tuxpaint/stamps``, tuxpaint-stamps-default), decoded as ingest decodes
them. It prints the constants to paste into ``search/calibration.py`` (``PRIORS``), keyed
by the encoder's model id; rerun it whenever the encoder's model id changes:

    .venv/bin/python bench/prior.py                    # about a minute
"""

from __future__ import annotations

import argparse
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from imgsearch import Settings
from imgsearch.encode.registry import get_encoder
from imgsearch.errors import ImageError
from imgsearch.ingest.decode import decode_file

ROOTS = (Path("/usr/share/backgrounds/gnome"), Path("/usr/share/tuxpaint/stamps"))
EXTENSIONS = {".jpg", ".jpeg", ".png", ".webp"}
QUANTILE = 0.999  # "chance" of the prior: beaten by one unrelated pair in a thousand
SEED = 0


def _group(path: Path) -> str:
    # light/dark variants of one wallpaper, and a stamp's own variants, are one picture
    variant = r"([-_](l|d|day|night|light|dark|morning|evening))$"
    return re.sub(variant, "", str(path.with_suffix("")))


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--encoder", default="descriptor")
    parser.add_argument("--max-stamps", type=int, default=800)
    args = parser.parse_args(argv)
    settings = Settings()
    encoder = get_encoder(args.encoder, settings)
    paths: list[Path] = []
    for root in ROOTS:
        found = sorted(p for p in root.rglob("*") if p.suffix.lower() in EXTENSIONS)
        paths += found[: args.max_stamps] if "tuxpaint" in str(root) else found
    images, groups = [], []
    for path in paths:
        try:
            decoded = decode_file(path, max_pixels=settings.max_pixels, min_side=settings.min_side,
                                  max_bytes=settings.max_file_bytes,
                                  reduce_to=max(getattr(encoder, "image_side", 256),
                                                settings.thumbnail_size))
        except ImageError:
            continue
        images.append(decoded.image)
        groups.append(_group(path))
    vectors = np.concatenate([encoder.embed_images(images[i:i + 64])
                              for i in range(0, len(images), 64)])
    sims = vectors @ vectors.T
    label = np.array(groups)
    different = label[:, None] != label[None, :]
    pairs = sims[np.triu(different, 1)]
    rng = np.random.default_rng(SEED)
    noise = [rng.integers(0, 256, (256, 256, 3), dtype=np.uint8) for _ in range(20)]
    from PIL import Image
    noise_vectors = encoder.embed_images([Image.fromarray(n) for n in noise])
    noise_best = float((noise_vectors @ vectors.T).max())
    median = float(np.median(pairs))
    chance = float(np.quantile(pairs, QUANTILE))
    print(f"{len(images)} pictures ({len(set(groups))} distinct), {len(pairs):,} pairs of "
          f"different pictures; noise images' best cosine {noise_best:.3f}")
    print(f"median {median:.4f}, q0.99 {np.quantile(pairs, 0.99):.4f}, "
          f"q{QUANTILE} {chance:.4f}, max {pairs.max():.4f}")
    print(f'    "{encoder.model_id}": Prior(median={median:.4f}, chance={chance:.4f}),')


if __name__ == "__main__":
    main()
