"""Make the fixed background sample that image hits are judged against.

A hit's stand-out is measured from what the query scores against unrelated pictures.
The collection's own neighbours say that only when the collection is large and varied;
a fixed sample of real pictures, shipped with the package, says the same thing at every
collection size. This script makes that sample for one image encoder and writes it to
``src/imgsearch/search/backgrounds/<model id>.npy`` (float16 vectors) with a JSON record
of where the numbers come from and their SHA-256.

The pictures, from Debian packages (the Makefile's APT_BENCH):

- drawings: a seeded sample of tuxpaint-stamps-default, openclipart-png and
  wesnoth-1.16-data;
- photographs: seeded crops (a third to four fifths of each side, anywhere) of the
  wallpapers of the **tuning half** of bench/copydetect.py's picture groups (its indexed
  photos with an even number). The other half and the unrelated photos stay out, so the
  copy-detection figures for them are held out from everything tuned here.

    .venv/bin/python bench/background.py     # about a minute
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
from collections.abc import Sequence

import numpy as np
from PIL import Image

from common import command_line, now
from copydetect import DISTRACTOR_ROOTS, _files, _fit, build
from imgsearch import Settings
from imgsearch.encode.registry import get_encoder
from imgsearch.search.calibration import BACKGROUND_DIR

SEED = 0


def tuning_half(photos: list[dict[str, str]]) -> list[dict[str, str]]:
    """The indexed photos thresholds are tuned on (even numbers); the rest are held out."""
    return [p for p in photos if int(p["id"].rsplit("-", 1)[1]) % 2 == 0]


def _crops(image: Image.Image, n: int, rng: random.Random) -> list[Image.Image]:
    out = []
    w, h = image.size
    for _ in range(n):
        fw, fh = rng.uniform(0.33, 0.8), rng.uniform(0.33, 0.8)
        cw, ch = max(32, round(w * fw)), max(32, round(h * fh))
        x, y = rng.randint(0, w - cw), rng.randint(0, h - ch)
        out.append(image.crop((x, y, x + cw, y + ch)))
    return out


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--encoder", default="descriptor")
    parser.add_argument("--drawings", type=int, default=800)
    parser.add_argument("--crops", type=int, default=16, help="crops per tuning photo")
    args = parser.parse_args(argv)
    encoder = get_encoder(args.encoder, Settings())
    data = build(11_000)
    rng = random.Random(SEED)
    images: list[Image.Image] = []
    photos = tuning_half(data["photos"])
    for photo in photos:
        with Image.open(photo["path"]) as im:
            im.load()
            images += _crops(_fit(im, 1024), args.crops, rng)
    n_photos = len(images)
    drawings = [str(p) for root in DISTRACTOR_ROOTS for p in _files(root)]
    rng.shuffle(drawings)
    for path in drawings:
        if len(images) - n_photos >= args.drawings:
            break
        try:
            with Image.open(path) as im:
                im.load()
                if min(im.size) < 32:
                    continue
                images.append(_fit(im, 512))
        except Exception:  # a file the decoder refuses is no background
            continue
    vectors = np.concatenate([encoder.embed_images(images[i:i + 64])
                              for i in range(0, len(images), 64)]).astype(np.float16)
    out = BACKGROUND_DIR / f"{encoder.model_id}.npy"
    out.parent.mkdir(parents=True, exist_ok=True)
    np.save(out, vectors, allow_pickle=False)
    record = {"model_id": encoder.model_id, "vectors": len(vectors), "dim": vectors.shape[1],
              "photo_crops": n_photos, "photos": [p["path"] for p in photos],
              "crops_per_photo": args.crops, "drawings": len(images) - n_photos,
              "sources": ["tuxpaint-stamps-default", "openclipart-png", "wesnoth-1.16-data",
                          "desktop wallpaper packages (tuning half of bench/copydetect.py)"],
              "seed": SEED, "made": now(), "command": command_line(),
              "sha256": hashlib.sha256(out.read_bytes()).hexdigest()}
    out.with_suffix(".json").write_text(json.dumps(record, indent=1) + "\n")
    print(f"{out}: {len(vectors)} vectors ({n_photos} photo crops of {len(photos)} photos, "
          f"{len(images) - n_photos} drawings), {out.stat().st_size / 1e6:.1f} MB")


if __name__ == "__main__":
    main()
