"""What keeping the originals of uploaded images costs a single upsert.

An upsert from bytes (``PUT /v1/items/{id}`` with an image, ``Engine.upsert(item, data)``)
now also writes the bytes under ``originals/`` and fsyncs them (file, folder and the note
of pending files) before the catalog commit. This times ``Engine.upsert`` from bytes with
originals kept (the default cap) and not kept (``original_max_bytes=0``), taking turns
in a seeded random order, on web-size JPEGs cut from the GNOME wallpapers in
``/usr/share/backgrounds`` (generated gradients where they are not installed). Each
upsert uses a new id and new bytes, so every one writes a new original.

    python bench/originals.py [--images 120]

Prints a Markdown table and writes ``bench/results/originals.json``.
"""

from __future__ import annotations

import argparse
import io
import random
import sys
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import (
    command_line,
    load_average,
    machine,
    machine_line,
    median,
    now,
    percentile,
    table,
    timed,
    write_results,
)
from imgsearch.config import Settings
from imgsearch.engine import Engine
from imgsearch.types import Item

WALLPAPERS = Path("/usr/share/backgrounds")


def _images(count: int, seed: int) -> list[bytes]:
    rng = random.Random(seed)
    sources = sorted(p for p in WALLPAPERS.glob("*.jpg")) if WALLPAPERS.is_dir() else []
    out = []
    for i in range(count):
        if sources:
            with Image.open(rng.choice(sources)) as opened:
                photo = opened.convert("RGB")
            w, h = rng.choice([(800, 600), (1024, 768), (600, 800)])
            x = rng.randrange(max(1, photo.width - w))
            y = rng.randrange(max(1, photo.height - h))
            photo = photo.crop((x, y, x + w, y + h))
        else:
            grid = np.linspace(0, 255, 800 * 600 * 3, dtype=np.float32).reshape(600, 800, 3)
            photo = Image.fromarray(((grid + i * 7) % 256).astype(np.uint8))
        buffer = io.BytesIO()
        photo.save(buffer, format="JPEG", quality=85)
        out.append(buffer.getvalue())
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=120)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    images = _images(args.images * 2, args.seed)
    load_before = load_average()
    base = Settings(text_encoder="none", ingest_workers=1)
    variants = {"originals kept": base, "not kept (original_max_bytes=0)":
                base.replace(original_max_bytes=0)}
    times: dict[str, list[float]] = {name: [] for name in variants}
    with tempfile.TemporaryDirectory(dir=Path(__file__).resolve().parent) as tmp:
        engines = {name: Engine.open(Path(tmp) / str(n), settings)
                   for n, (name, settings) in enumerate(variants.items())}
        for engine in engines.values():  # warm up: encoder, pools, folders
            engine.upsert(Item(id="warm"), images[0])
        order = random.Random(args.seed)
        for i in range(args.images):
            names = list(variants)
            order.shuffle(names)
            for turn, name in enumerate(names):
                data = images[2 * i + turn]
                ms, _ = timed(engines[name].upsert, Item(id=f"u{i}"), data)
                times[name].append(ms)
        for engine in engines.values():
            engine.close()
    sizes = [len(d) for d in images]
    info = machine()
    print(machine_line(info))
    print(f"{args.images} upserts per variant, JPEG {median(sizes) / 1e3:.0f} kB median\n")
    rows = [[name, f"{median(v):.1f}", f"{percentile(v, 90):.1f}"] for name, v in times.items()]
    print(table(["upsert from bytes", "p50 ms", "p90 ms"], rows))
    write_results("originals", {"command": command_line(), "date": now(), "machine": info,
                                "load_average": {"before": load_before,
                                                 "after": load_average()},
                                "images": args.images, "median_bytes": median(sizes),
                                "ms": times})


if __name__ == "__main__":
    main()
