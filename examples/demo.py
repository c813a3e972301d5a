"""Build a small product-style catalog from real photos and search it, offline.

The photos are the sample images that scikit-image ships (astronaut, coffee, a cat, a
rocket, coins...). Each gets a short description written for this demo; a few photos
also appear as cropped/resized/re-encoded variants, so "more like this" has something
to find. Run with `make demo`.
"""

from __future__ import annotations

import csv
import shutil
import sys
from pathlib import Path

import skimage.data
from PIL import Image, ImageOps

from imgsearch.engine import Engine
from imgsearch.engine.display import confidence_percent
from imgsearch.types import Filters, Query, SearchResult

ROOT = Path(__file__).resolve().parent.parent / "demo-collection"

PHOTOS = {
    # id: (file shipped with scikit-image, title, description, category, price)
    "astronaut": ("astronaut.png", "Astronaut portrait",
                  "astronaut in a white space suit in front of a flag", "people", 25.0),
    "coffee": ("coffee.png", "Cup of coffee",
               "a red cup of coffee on a saucer on a wooden table", "food", 4.5),
    "cat": ("chelsea.png", "Tabby cat", "a ginger tabby cat looking sideways", "animals", 12.0),
    "rocket": ("rocket.jpg", "Rocket launch pad",
               "a space rocket on the launch pad before lift-off", "space", 30.0),
    "coins": ("coins.png", "Old coins", "a grey scan of old coins on a table", "objects", 8.0),
    "hubble": ("hubble_deep_field.jpg", "Hubble deep field",
               "galaxies in deep space seen by a telescope", "space", 40.0),
    "motorcycle": ("motorcycle_left.png", "Motorcycle",
                   "a motorbike parked in a room", "vehicles", 55.0),
    "retina": ("retina.jpg", "Retina scan", "medical photo of the back of an eye", "science", 3.0),
    "moon": ("moon.png", "Moon surface", "grey craters on the surface of the moon", "space", 15.0),
    "brick": ("brick.png", "Brick wall", "texture of a brick wall", "textures", 2.0),
    "grass": ("grass.png", "Grass", "texture of grass blades", "textures", 2.0),
    "camera": ("camera.png", "Cameraman", "a man with a camera on a tripod, black and white",
               "people", 9.0),
}


SAMPLES = Path(skimage.data.__file__).parent


def _rgb(filename: str) -> Image.Image:
    with Image.open(SAMPLES / filename) as image:
        return image.convert("RGB")


def build_catalog(folder: Path) -> Path:
    images = folder / "images"
    images.mkdir(parents=True, exist_ok=True)
    rows = []
    for item_id, (filename, title, description, category, price) in PHOTOS.items():
        image = _rgb(filename)
        image.save(images / f"{item_id}.jpg", quality=90)
        rows.append([item_id, f"images/{item_id}.jpg", title, description, category, price])
    # variants of a few photos: what a shop has when the same product is shot twice
    for item_id in ("cat", "coffee", "rocket"):
        image = Image.open(images / f"{item_id}.jpg")
        w, h = image.size
        variant = ImageOps.mirror(image.crop((w // 12, h // 12, w - w // 12, h - h // 12)))
        variant = variant.resize((w * 2 // 3, h * 2 // 3))
        variant.save(images / f"{item_id}-variant.jpg", quality=70)
        _filename, title, description, category, price = PHOTOS[item_id]
        rows.append([f"{item_id}-variant", f"images/{item_id}-variant.jpg",
                     f"{title} (second shot)", description, category, price * 1.2])
    catalog = folder / "products.csv"
    with open(catalog, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["id", "image", "title", "description", "category", "price"])
        writer.writerows(rows)
    return catalog


def show(title: str, result: SearchResult) -> None:
    print(f"\n== {title}")
    if not result.hits:
        print(f"  no match: {result.message}")
    for rank, hit in enumerate(result.hits, 1):
        print(f"  {rank}. {confidence_percent(hit):3d}%  {hit.match:8s} {hit.id:18s} "
              f"{hit.title or ''}")


def main() -> int:
    if ROOT.exists():
        shutil.rmtree(ROOT)
    source = ROOT / "source"
    catalog = build_catalog(source)
    with Engine.open(ROOT / "collection") as engine:
        report = engine.ingest(catalog)
        print(f"indexed {report.added} items from {catalog} in {report.seconds:.1f}s "
              f"({len(report.failed)} failed)")
        query_image = Image.open(source / "images" / "cat.jpg").rotate(4).resize((300, 200))
        show("image query: a rotated, shrunk copy of the cat photo",
             engine.search(Query(images=[query_image], limit=3)))
        show("text query: 'a hot drink in a cup'",
             engine.search(Query(text="a hot drink in a cup", limit=3)))
        show("text query: 'spaceship' in category space under 35",
             engine.search(Query(text="spaceship", limit=3,
                                 filters=Filters(categories=("space",), price_max=35))))
        show("more like 'rocket'", engine.similar("rocket", limit=3))
    print(f"\ncollection kept at {ROOT / 'collection'}; try:\n"
          f"  .venv/bin/imgsearch search -c {ROOT / 'collection'} --text 'a cat'")
    return 0


if __name__ == "__main__":
    sys.exit(main())
