"""OCR at ingest: how much of a photo's text the OCR engine reads, what it costs, and
whether a word of it finds the photo.

Renders (once, under ``bench/data/ocr-<count>-s<seed>/``) ``--images`` photos of known
text: a random crop of a wallpaper in ``/usr/share/backgrounds`` (1024x768), with two or
three words drawn in one of several TrueType fonts of the Debian font packages
(DejaVu, Liberation, FreeFont, Lato, Noto where installed), 32-96 px high, rotated up
to 10 degrees either way; half on a light sign, half straight on the photo with a
contrasting outline (as on a poster or a meme). Every word is used once, so each
belongs to one image. Words come from the English descriptions of the
tuxpaint-stamps-default clip-art (4-10 letters).

Then:

- reading time: each engine of ``--engines`` (``rapidocr``, ``tesseract``) reads the
  first ``--time-images`` images as ingest decodes them (the shorter side reduced to
  1200 px at most), one at a time: milliseconds per image and word recall on them;
- recall and search: ``Engine.ingest`` of the folder with ``ocr = true`` (the first
  engine of ``--engines``) into a fresh collection; word recall over every image (its
  words found among the words stored as its ``ocr_text``, case-insensitive), for the
  first half of the images (the half looked at while choosing the engine's settings)
  and the second (held out), then a text query per word of 4+ letters: the share whose
  image comes first;
- ingest speed: the same folder with OCR off and on, ``--repeats`` runs of OCR off
  and one run with it on (minutes), images per second.

Prints Markdown tables and writes ``bench/results/ocr.json``.
"""

from __future__ import annotations

import argparse
import random
import re
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from PIL import Image, ImageDraw, ImageFont

from common import (
    DATA_DIR,
    command_line,
    machine,
    machine_line,
    median,
    now,
    table,
    write_results,
)
from imgsearch.config import Settings
from imgsearch.engine import Engine
from imgsearch.enrich.ocr import find_ocr
from imgsearch.ingest.decode import decode_file
from imgsearch.types import Query

BACKGROUNDS = Path("/usr/share/backgrounds")
STAMPS = Path("/usr/share/tuxpaint/stamps")
FONT_DIRS = (Path("/usr/share/fonts/truetype"), Path("/usr/share/fonts/opentype"))
FONT_NAMES = ("DejaVuSans-Bold.ttf", "DejaVuSerif.ttf", "DejaVuSansCondensed.ttf",
              "LiberationSans-Regular.ttf", "LiberationSerif-Bold.ttf",
              "LiberationMono-Regular.ttf", "FreeSans.ttf", "FreeSerifBold.ttf",
              "Lato-Medium.ttf", "Lato-Black.ttf", "NotoSans-Regular.ttf")
SIZE = (1024, 768)
OCR_SIDE = 1200  # the shorter side ingest decodes to when OCR is on (engine.pipeline)
_STOP = {"with", "that", "this", "from", "have", "they", "their", "there", "were", "what",
         "which", "when", "your", "into", "some", "used", "made", "also", "other", "than"}


def fonts() -> list[Path]:
    found = {p.name: p for d in FONT_DIRS if d.is_dir() for p in d.rglob("*.[ot]tf")}
    chosen = [found[name] for name in FONT_NAMES if name in found]
    if len(chosen) < 3:
        raise SystemExit("fewer than 3 of the fonts are installed: apt-get install "
                         "fonts-dejavu-core fonts-liberation fonts-freefont-ttf")
    return chosen


def vocabulary() -> list[str]:
    """English words of 4-10 letters from the clip-art descriptions, sorted."""
    if not STAMPS.is_dir():
        raise SystemExit(f"{STAMPS} is missing: apt-get install tuxpaint-stamps-default")
    words: set[str] = set()
    for path in STAMPS.rglob("*.txt"):
        first = path.read_text(encoding="utf-8", errors="replace").split("\n", 1)[0]
        words.update(w.lower() for w in re.findall(r"\b[A-Za-z]{4,10}\b", first))
    return sorted(words - _STOP)


def _text_layer(words: str, font: ImageFont.FreeTypeFont, on_sign: bool,
                rng: random.Random) -> Image.Image:
    box = ImageDraw.Draw(Image.new("L", (1, 1))).textbbox((0, 0), words, font=font)
    pad = 24
    layer = Image.new("RGBA", (box[2] - box[0] + 2 * pad, box[3] - box[1] + 2 * pad))
    draw = ImageDraw.Draw(layer)
    if on_sign:
        shade = rng.randrange(225, 256)
        draw.rectangle((0, 0, *layer.size), fill=(shade, shade, shade - 10, 255))
        ink = (rng.randrange(0, 60),) * 3
        draw.text((pad - box[0], pad - box[1]), words, font=font, fill=(*ink, 255))
    else:
        light = rng.random() < 0.5
        fill = (250, 250, 250, 255) if light else (15, 15, 15, 255)
        stroke = (0, 0, 0, 255) if light else (255, 255, 255, 255)
        draw.text((pad - box[0], pad - box[1]), words, font=font, fill=fill,
                  stroke_width=max(2, font.size // 16), stroke_fill=stroke)
    return layer


def render(folder: Path, count: int, seed: int) -> dict[str, list[str]]:
    """Write ``count`` images under ``folder``; image name -> its words."""
    rng = random.Random(seed)
    backgrounds = sorted(p for p in BACKGROUNDS.rglob("*") if p.suffix.lower() in
                         (".jpg", ".jpeg", ".png", ".webp"))
    if not backgrounds:
        raise SystemExit(f"no photos in {BACKGROUNDS}: apt-get install gnome-backgrounds")
    faces = fonts()
    pool = vocabulary()
    rng.shuffle(pool)
    truth: dict[str, list[str]] = {}
    folder.mkdir(parents=True, exist_ok=True)
    for number in range(count):
        n_words = rng.choice((2, 3))
        words = [pool.pop() for _ in range(n_words)]
        if rng.random() < 0.3:
            words = [w.upper() for w in words]
        elif rng.random() < 0.5:
            words = [w.capitalize() for w in words]
        with Image.open(rng.choice(backgrounds)) as source:
            photo = source.convert("RGB")
        scale = max(SIZE[0] / photo.width, SIZE[1] / photo.height) * rng.uniform(1.0, 1.6)
        photo = photo.resize((int(photo.width * scale) + 1, int(photo.height * scale) + 1))
        left = rng.randrange(photo.width - SIZE[0] + 1)
        top = rng.randrange(photo.height - SIZE[1] + 1)
        photo = photo.crop((left, top, left + SIZE[0], top + SIZE[1]))
        size = rng.randrange(32, 97)
        font = ImageFont.truetype(str(rng.choice(faces)), size)
        layer = _text_layer(" ".join(words), font, number % 2 == 0, rng)
        layer = layer.rotate(rng.uniform(-10, 10), expand=True, resample=Image.Resampling.BICUBIC)
        if layer.width > SIZE[0] - 20:
            ratio = (SIZE[0] - 20) / layer.width
            layer = layer.resize((int(layer.width * ratio), int(layer.height * ratio)))
        x = rng.randrange(10, max(11, SIZE[0] - layer.width - 10))
        y = rng.randrange(10, max(11, SIZE[1] - layer.height - 10))
        photo.paste(layer, (x, y), layer)
        name = f"sign{number:04d}.jpg"
        photo.save(folder / name, quality=88)
        truth[name] = [w.lower() for w in words]
    (folder / "truth.txt").write_text("".join(f"{n}\t{' '.join(w)}\n"
                                              for n, w in truth.items()))
    return truth


def load(folder: Path) -> dict[str, list[str]]:
    lines = (folder / "truth.txt").read_text().splitlines()
    return {name: words.split() for name, words in (line.split("\t") for line in lines)}


def reading(folder: Path, truth: dict[str, list[str]], names: list[str], engine_name: str
            ) -> dict[str, Any]:
    engine, why = find_ocr("eng", 120.0, Settings().ocr_max_pixels, engine_name)
    if engine is None:
        raise SystemExit(why)
    ms: list[float] = []
    texts: dict[str, str | None] = {}
    for name in names:
        decoded = decode_file(folder / name, max_pixels=64_000_000, min_side=32,
                              max_bytes=50 << 20, reduce_to=OCR_SIDE)
        started = time.perf_counter()
        texts[name] = engine.read(decoded.image)
        ms.append((time.perf_counter() - started) * 1000)
    return {"engine": engine_name, "images": len(names), "ms_median": median(ms),
            "ms_mean": sum(ms) / len(ms), "ms_p90": sorted(ms)[int(0.9 * (len(ms) - 1))],
            "word_recall": _recall({n: truth[n] for n in names}, texts)["word_recall"]}


def _recall(truth: dict[str, list[str]], texts: dict[str, str | None]) -> dict[str, Any]:
    found = total = noise = 0
    for name, words in truth.items():
        read = set(re.findall(r"\w+", (texts[name] or "").lower()))
        found += sum(w in read for w in words)
        total += len(words)
        noise += len(read - set(words))
    return {"images": len(truth), "words": total, "word_recall": found / total,
            "other_words_per_image": noise / len(truth)}


def recall(engine: Engine, truth: dict[str, list[str]]) -> list[dict[str, Any]]:
    """Word recall over the first half of the images, the second (held out), and all."""
    texts = {name: engine.get(name).ocr_text for name in truth}
    names = sorted(truth)
    halves = (("first half", names[:len(names) // 2]),
              ("second half (held out)", names[len(names) // 2:]), ("all", names))
    return [{"part": part, **_recall({n: truth[n] for n in chosen}, texts)}
            for part, chosen in halves]


def ingest_once(folder: Path, settings: Settings, keep: Path | None = None
                ) -> tuple[float, Engine | None]:
    target = keep or Path(tempfile.mkdtemp(prefix="imgsearch-ocr-bench-"))
    engine = Engine.open(target / "collection", settings)
    report = engine.ingest(folder)
    if report.failed:
        raise SystemExit(f"ingest failed: {report.failed[:3]}")
    speed = report.added / report.seconds
    if keep is None:
        engine.close()
        shutil.rmtree(target, ignore_errors=True)
        return speed, None
    return speed, engine


def search(engine: Engine, truth: dict[str, list[str]]) -> dict[str, Any]:
    first = asked = 0
    misses: list[str] = []
    for name, words in truth.items():
        for word in words:
            if len(word) < 4:
                continue
            asked += 1
            hits = engine.search(Query(text=word, min_confidence=0, limit=10)).hits
            if hits and hits[0].id == name:
                first += 1
            elif len(misses) < 20:
                misses.append(f"{word} ({name})")
    return {"queries": asked, "rank1": first / asked, "some_misses": misses}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeats", type=int, default=3, help="ingest runs with OCR off")
    parser.add_argument("--text-encoder", default="minilm")
    parser.add_argument("--time-images", type=int, default=30,
                        help="images OCR is timed on alone")
    parser.add_argument("--engines", default="rapidocr,tesseract",
                        help="engines timed alone; the first one also ingests")
    args = parser.parse_args()
    folder = DATA_DIR / f"ocr-{args.images}-s{args.seed}"
    truth = load(folder) if (folder / "truth.txt").exists() else \
        render(folder, args.images, args.seed)
    print(f"# OCR benchmark ({now()})\n\n{machine_line(machine())}\n\n`{command_line()}`\n")
    engines = [e.strip() for e in args.engines.split(",") if e.strip()]
    timed = sorted(truth)[:args.time_images]
    read = [reading(folder, truth, timed, name) for name in engines]
    print("OCR alone, one image at a time:\n")
    print(table(["engine", "images timed", "OCR ms/image median", "mean", "p90",
                 "word recall"],
                [[r["engine"], r["images"], r["ms_median"], r["ms_mean"], r["ms_p90"],
                  r["word_recall"]] for r in read]))
    base = Settings(text_encoder=args.text_encoder, ocr_engine=engines[0])
    # the data folder holds truth.txt too: ingest only sees images
    off = [ingest_once(folder, base)[0] for _ in range(args.repeats)]
    workdir = Path(tempfile.mkdtemp(prefix="imgsearch-ocr-bench-"))
    on_speed, engine = ingest_once(folder, base.replace(ocr=True), keep=workdir)
    assert engine is not None
    words = recall(engine, truth)
    found = search(engine, truth)
    engine.close()
    shutil.rmtree(workdir, ignore_errors=True)
    print(f"\nText stored at ingest (ocr = true, {engines[0]}) against the words drawn:\n")
    print(table(["images", "words", "word recall", "other words read per image"],
                [[f"{w['images']} ({w['part']})", w["words"], w["word_recall"],
                  w["other_words_per_image"]] for w in words]))
    print("\nA text query per word drawn:\n")
    print(table(["queries (words of 4+ letters)", "image at rank 1"],
                [[found["queries"], found["rank1"]]]))
    print(f"\nIngest of the {len(truth)} photos into a fresh collection:\n")
    print(table(["ingest", "images/s (median)", "runs"],
                [["OCR off", median(off), len(off)], ["OCR on", on_speed, 1]]))
    print(f"\nOCR on / off: {on_speed / median(off):.3f}x; misses: "
          f"{', '.join(found['some_misses'][:10])}")
    write_results("ocr", {"command": command_line(), "machine": machine(), "reading": read,
                          "recall": words, "search": found, "ingest_off": off,
                          "ingest_on": on_speed})


if __name__ == "__main__":
    main()
