"""Encoder speed: CLIP ViT-B/32 (random weights), minilm and descriptor, bare and in the product.

CLIP. A ``transformers.CLIPModel`` with the ViT-B/32 architecture (vision: hidden 768,
12 layers, 12 heads, patch 32, 224-px images, MLP 3072; text: hidden 512, 12 layers,
8 heads, MLP 2048, vocabulary 49,408, 77 positions; projection 512) is initialised with
seeded random weights and saved with ``save_pretrained`` in a temporary directory, beside
a PIL CLIP image processor (shortest edge 224, centre crop 224) and a CLIP tokenizer, so
the product's ``clip`` encoder loads it from disk through the same code path as
downloaded weights. Random weights cost exactly what trained ones cost. The released
CLIP vocabulary is not available offline, so the tokenizer is a byte-level BPE with the
CLIP tokenizer's normaliser, pre-tokeniser and ``</w>`` word ends, trained here on the
Debian package synopses (see ``realdata.debian_descriptions``). Having seen these very
texts, it keeps even rare words (package names) whole, where the released vocabulary would
cut them into a few pieces: the token counts are close to CLIP's but a little lower, so
the text figures lean a little optimistic (the mean tokens per text, start and end tokens
included, is printed and recorded). Two ways are timed on the same inputs:

- ``bare``: ``model.get_image_features(pixel_values)`` / ``model.get_text_features(...)``
  under ``torch.inference_mode`` on tensors made beforehand by the same processor and
  tokenizer (a model loaded separately from the same directory);
- ``pipeline``: the product's encoder, ``embed_images(list of PIL images)`` /
  ``embed_texts(list of str)``: preprocessing, tokenising, the model, conversion to
  numpy and L2 normalisation.

minilm: the product's encoder (``embed_texts``) against a ``SentenceTransformer`` loaded
from the same weights (``encode``). descriptor: the product's encoder alone (it has no
model to run bare).

Images are real photos: seeded crops of the GNOME wallpapers (``/usr/share/backgrounds``)
at web sizes (640x480 .. 1024x768), saved as JPEG quality 85 and decoded by the product's
decoder with the reduction ingest asks for, so each encoder gets what ingest hands it
(generated gradients with noise when the wallpapers are not installed). Texts are Debian
package synopses from ``apt-cache dumpavail``.

Batch 1 is ``--singles`` calls of one item each (per-call p50/p99 reported); batch 32 is one
call of 32 items. Each figure is the median over ``--repeats`` rounds; in every round the
bare and pipeline ways run one after the other, in alternating order, on the same inputs.
torch uses the product's thread choice (``Settings.torch_threads``, ``--threads``) in
both ways. ``--device`` may list ``cuda``: CLIP and minilm are then measured there too
(skipped, with a note, when no GPU is present).

Prints Markdown tables, writes ``bench/results/encoders.json`` and a bar chart
``bench/results/encoders.png``.
"""

from __future__ import annotations

import argparse
import io
import json
import random
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from common import (
    RESULTS_DIR,
    command_line,
    load_average,
    machine,
    machine_line,
    median,
    now,
    percentile,
    table,
    write_results,
)
from imgsearch import Settings
from imgsearch.encode.base import quiet_model_loading
from imgsearch.encode.registry import get_encoder
from imgsearch.ingest.decode import decode_image
from realdata import WALLPAPERS, debian_descriptions

BOS = "<|startoftext|>"
EOS = "<|endoftext|>"
CLIP_VOCAB = 49408
CLIP_TEXT_POSITIONS = 77
CLIP_IMAGE_SIDE = 224
BATCH = 32
WEB_SIZES = ((640, 480), (800, 600), (1024, 768), (600, 800), (768, 1024))
JPEG_QUALITY = 85

Call = Callable[[int], object]  # runs one timed call on input chunk number i


# -- inputs -----------------------------------------------------------------------------
def photos(count: int, seed: int, settings: Settings, reduce_to: int
           ) -> tuple[list[Image.Image], str]:
    """``count`` decoded web-size photos and where they came from."""
    rng = random.Random(seed)
    sources = sorted(p for p in WALLPAPERS.rglob("*") if p.suffix.lower() in
                     (".jpg", ".jpeg", ".png", ".webp")) if WALLPAPERS.is_dir() else []
    large = []
    for path in sources:
        with Image.open(path) as opened:  # reads the header only
            if min(opened.size) >= 1024:
                large.append(path)
    jobs = [(rng.choice(WEB_SIZES), random.Random(rng.random())) for _ in range(count)]
    made: list[Image.Image | None] = [None] * count
    # one wallpaper in memory at a time: they are 4096x4096
    for j, path in enumerate(large):
        with Image.open(path) as opened:
            picture = opened.convert("RGB")
        for i in range(j, count, len(large)):
            (width, height), crop_rng = jobs[i]
            made[i] = _crop(picture, width, height, crop_rng)
    decoded = []
    for i, ((width, height), crop_rng) in enumerate(jobs):
        image = made[i] or _generated(width, height, crop_rng)
        buffer = io.BytesIO()
        image.save(buffer, "JPEG", quality=JPEG_QUALITY)
        data = buffer.getvalue()
        decoded.append(decode_image(data, source=f"photo {i}", max_bytes=len(data),
                                    max_pixels=settings.max_pixels, min_side=settings.min_side,
                                    reduce_to=reduce_to).image)
    source = (f"seeded crops of {len(large)} GNOME wallpapers from {WALLPAPERS}" if large
              else "generated gradients with noise (no wallpapers installed)")
    return decoded, source


def _crop(picture: Image.Image, width: int, height: int, rng: random.Random) -> Image.Image:
    scale = rng.uniform(0.2, 0.6) * min(picture.size) / max(width, height)
    box_w, box_h = width * scale, height * scale
    left = rng.uniform(0, picture.width - box_w)
    top = rng.uniform(0, picture.height - box_h)
    return picture.resize((width, height), Image.Resampling.BICUBIC,
                          box=(left, top, left + box_w, top + box_h), reducing_gap=3.0)


def _generated(width: int, height: int, rng: random.Random) -> Image.Image:
    gen = np.random.default_rng(rng.randrange(1 << 30))
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    colours = gen.uniform(0, 255, (2, 3)).astype(np.float32)
    t = (x / width * 0.5 + y / height * 0.5)[..., None]
    pixels = colours[0] * (1 - t) + colours[1] * t + gen.normal(0, 12, (height, width, 3))
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))


def texts(count: int, seed: int) -> list[str]:
    synopses = [text for _, text in debian_descriptions()]
    return random.Random(seed).sample(synopses, min(count, len(synopses)))


# -- the random CLIP ViT-B/32 -----------------------------------------------------------
def train_tokenizer(corpus: Sequence[str]) -> Any:
    """A CLIP tokenizer whose BPE merges are learnt from ``corpus`` (offline)."""
    from tokenizers import Regex, Tokenizer, models, normalizers, pre_tokenizers, trainers
    from transformers import CLIPTokenizer

    probe = CLIPTokenizer(vocab={BOS: 0, EOS: 1}, merges=[])
    backend = Tokenizer(models.BPE(unk_token=EOS, end_of_word_suffix="</w>",
                                   continuing_subword_prefix=""))
    # The normaliser and pre-tokeniser of the CLIP tokenizer itself, so training sees
    # the same pieces that tokenising will.
    backend.normalizer = probe.backend_tokenizer.normalizer or normalizers.Lowercase()
    backend.pre_tokenizer = probe.backend_tokenizer.pre_tokenizer or pre_tokenizers.Split(
        Regex(r"\s+"), behavior="removed")
    alphabet = pre_tokenizers.ByteLevel.alphabet()
    trainer = trainers.BpeTrainer(vocab_size=CLIP_VOCAB - 2, initial_alphabet=alphabet,
                                  end_of_word_suffix="</w>", show_progress=False)
    backend.train_from_iterator(corpus, trainer)
    model = json.loads(backend.to_str())["model"]
    vocab: dict[str, int] = dict(model["vocab"])
    # every byte alone and word-final, as in CLIP's vocabulary, so nothing is unknown
    for symbol in sorted(alphabet):
        for token in (symbol, symbol + "</w>"):
            vocab.setdefault(token, len(vocab))
    vocab[BOS] = len(vocab)
    vocab[EOS] = len(vocab)
    # the BPE model takes (left, right) pairs, whatever the annotation says
    merges: Any = [tuple(m.split(" ")) if isinstance(m, str) else tuple(m)
                   for m in model["merges"]]
    return CLIPTokenizer(vocab=vocab, merges=merges, model_max_length=CLIP_TEXT_POSITIONS)


def build_random_clip(path: Path, corpus: Sequence[str], seed: int) -> dict[str, Any]:
    """Write a randomly initialised CLIP ViT-B/32 the product's loader accepts to ``path``."""
    import torch
    from transformers import CLIPConfig, CLIPImageProcessorPil, CLIPModel

    tokenizer = train_tokenizer(corpus)
    tokenizer.save_pretrained(str(path))
    config = CLIPConfig(
        text_config={"vocab_size": CLIP_VOCAB, "hidden_size": 512, "intermediate_size": 2048,
                     "num_hidden_layers": 12, "num_attention_heads": 8,
                     "max_position_embeddings": CLIP_TEXT_POSITIONS,
                     "bos_token_id": tokenizer.bos_token_id,
                     "eos_token_id": tokenizer.eos_token_id,
                     "pad_token_id": tokenizer.pad_token_id},
        vision_config={"hidden_size": 768, "intermediate_size": 3072, "num_hidden_layers": 12,
                       "num_attention_heads": 12, "image_size": CLIP_IMAGE_SIDE,
                       "patch_size": 32},
        projection_dim=512,
    )
    torch.manual_seed(seed)
    model = CLIPModel(config).eval()
    with quiet_model_loading():
        model.save_pretrained(str(path))
    CLIPImageProcessorPil(size={"shortest_edge": CLIP_IMAGE_SIDE},
                          crop_size={"height": CLIP_IMAGE_SIDE, "width": CLIP_IMAGE_SIDE}
                          ).save_pretrained(str(path))
    return {"parameters": sum(p.numel() for p in model.parameters()),
            "tokenizer_vocab": len(tokenizer), "tokenizer_trained_on": len(corpus)}


# -- timing -----------------------------------------------------------------------------
def measure(ways: dict[str, tuple[Call, Call]], repeats: int, singles: int
            ) -> dict[str, dict[str, Any]]:
    """Items/s of each way at batch 1 and ``BATCH``: ``ways[name] = (one item i, batch i)``.

    Round r gives batch-1 call i the input ``r * singles + i`` and the batch call input
    chunk ``r``; the ways share inputs and take turns in alternating order.
    """
    names = list(ways)
    for one, batch in ways.values():  # warm-up: first calls allocate and pick kernels
        one(0)
        batch(0)
    single_ms: dict[str, list[float]] = {n: [] for n in names}
    single_rate: dict[str, list[float]] = {n: [] for n in names}
    batch_rate: dict[str, list[float]] = {n: [] for n in names}
    for r in range(repeats):
        for name in (names if r % 2 == 0 else names[::-1]):
            one, batch = ways[name]
            total = 0
            for i in range(singles):
                t0 = time.perf_counter_ns()
                one(r * singles + i)
                spent = time.perf_counter_ns() - t0
                total += spent
                single_ms[name].append(spent / 1e6)
            single_rate[name].append(singles / (total / 1e9))
            t0 = time.perf_counter_ns()
            batch(r)
            batch_rate[name].append(BATCH / ((time.perf_counter_ns() - t0) / 1e9))
    return {name: {"batch1_per_s": median(single_rate[name]),
                   "batch1_p50_ms": median(single_ms[name]),
                   "batch1_p99_ms": percentile(single_ms[name], 99),
                   f"batch{BATCH}_per_s": median(batch_rate[name]),
                   "batch1_rates": single_rate[name], f"batch{BATCH}_rates": batch_rate[name]}
            for name in names}


def _sync(device: str) -> Callable[[], None]:
    import torch

    if device.startswith("cuda"):
        return torch.cuda.synchronize
    return lambda: None


def bench_clip(model_dir: Path, device: str, settings: Settings, images: list[Image.Image],
               corpus: list[str], repeats: int, singles: int) -> dict[str, Any]:
    import torch
    from transformers import CLIPImageProcessorPil, CLIPModel, CLIPTokenizer

    encoder = get_encoder("clip", settings.replace(clip_model=str(model_dir), device=device))
    encoder.embed_texts(corpus[:1])  # loads the model, applying the product's thread choice
    with quiet_model_loading():
        bare: Any = CLIPModel.from_pretrained(str(model_dir))
    bare = bare.to(device).eval()
    processor: Any = CLIPImageProcessorPil.from_pretrained(str(model_dir))
    tokenizer: Any = CLIPTokenizer.from_pretrained(str(model_dir))
    sync = _sync(device)
    pixels = processor(images=images, return_tensors="pt")["pixel_values"].to(device)
    single_tokens = [tokenizer([t], truncation=True, max_length=CLIP_TEXT_POSITIONS,
                               return_tensors="pt").to(device) for t in corpus]
    n_img, n_txt = len(images), len(corpus)
    batch_tokens = [tokenizer(list(corpus[_batch_slice(r, n_txt)]), padding=True,
                              truncation=True, max_length=CLIP_TEXT_POSITIONS,
                              return_tensors="pt").to(device)
                    for r in range(repeats)]

    def bare_images(rows: slice) -> None:
        with torch.inference_mode():
            bare.get_image_features(pixel_values=pixels[rows])
        sync()

    def bare_texts(tokens: Any) -> None:
        with torch.inference_mode():
            bare.get_text_features(**tokens)
        sync()

    image_ways: dict[str, tuple[Call, Call]] = {
        "bare": (lambda i: bare_images(slice(i % n_img, i % n_img + 1)),
                 lambda r: bare_images(_batch_slice(r, n_img))),
        "pipeline": (lambda i: encoder.embed_images([images[i % n_img]]),
                     lambda r: encoder.embed_images(images[_batch_slice(r, n_img)])),
    }
    text_ways: dict[str, tuple[Call, Call]] = {
        "bare": (lambda i: bare_texts(single_tokens[i % n_txt]),
                 lambda r: bare_texts(batch_tokens[r])),
        "pipeline": (lambda i: encoder.embed_texts([corpus[i % n_txt]]),
                     lambda r: encoder.embed_texts(corpus[_batch_slice(r, n_txt)])),
    }
    result = {"device": device, "torch_threads": torch.get_num_threads(),
              "images": measure(image_ways, repeats, singles),
              "texts": measure(text_ways, repeats, singles),
              "tokens_per_text_mean": float(np.mean([t["input_ids"].shape[1]
                                                     for t in single_tokens])),
              "tokens_per_batch_mean": float(np.mean([t["input_ids"].shape[1]
                                                      for t in batch_tokens]))}
    return result


def bench_minilm(device: str, settings: Settings, corpus: list[str], repeats: int,
                 singles: int) -> dict[str, Any]:
    import torch
    from sentence_transformers import SentenceTransformer

    from imgsearch.encode.minilm import model_source

    encoder = get_encoder("minilm", settings.replace(device=device))
    encoder.embed_texts(corpus[:1])  # loads the model, applying the product's thread choice
    with quiet_model_loading():
        bare = SentenceTransformer(model_source(settings)[0], device=device)
    n = len(corpus)

    def bare_encode(batch: Sequence[str]) -> None:
        bare.encode(list(batch), batch_size=len(batch), convert_to_numpy=True,
                    show_progress_bar=False)

    ways: dict[str, tuple[Call, Call]] = {
        "bare": (lambda i: bare_encode([corpus[i % n]]),
                 lambda r: bare_encode(corpus[_batch_slice(r, n)])),
        "pipeline": (lambda i: encoder.embed_texts([corpus[i % n]]),
                     lambda r: encoder.embed_texts(corpus[_batch_slice(r, n)])),
    }
    return {"device": device, "model_id": encoder.model_id,
            "torch_threads": torch.get_num_threads(),
            "texts": measure(ways, repeats, singles)}


def bench_descriptor(settings: Settings, images: list[Image.Image], repeats: int, singles: int
                     ) -> dict[str, Any]:
    encoder = get_encoder("descriptor", settings)
    n = len(images)
    ways: dict[str, tuple[Call, Call]] = {
        "pipeline": (lambda i: encoder.embed_images([images[i % n]]),
                     lambda r: encoder.embed_images(images[_batch_slice(r, n)])),
    }
    return {"device": "cpu", "model_id": encoder.model_id, "images": measure(ways, repeats,
                                                                             singles)}


def _batch_slice(r: int, n: int) -> slice:
    start = (r * BATCH) % max(1, n - BATCH + 1)
    return slice(start, start + BATCH)


# -- report -----------------------------------------------------------------------------
def rows_of(results: dict[str, Any]) -> list[dict[str, Any]]:
    """One flat row per (encoder, device, modality, way)."""
    out = []
    for encoder, per_device in results["encoders"].items():
        for device, r in per_device.items():
            for modality in ("images", "texts"):
                if modality not in r:
                    continue
                ways = r[modality]
                for way, m in ways.items():
                    bare = ways.get("bare")
                    out.append({
                        "encoder": encoder, "device": device, "modality": modality, "way": way,
                        "batch1": m["batch1_per_s"], "p50": m["batch1_p50_ms"],
                        "p99": m["batch1_p99_ms"], "batch32": m[f"batch{BATCH}_per_s"],
                        "share1": m["batch1_per_s"] / bare["batch1_per_s"] if bare else None,
                        "share32": (m[f"batch{BATCH}_per_s"] / bare[f"batch{BATCH}_per_s"]
                                    if bare else None)})
    return out


def _share(value: float | None) -> str:
    return "" if value is None else f"{value:.0%}"


def plot(rows: list[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5))
    for ax, modality in zip(axes, ("images", "texts"), strict=True):
        mine = [r for r in rows if r["modality"] == modality]
        labels = [f"{r['encoder']} {r['way']}\n{r['device']}" for r in mine]
        x = np.arange(len(mine))
        for offset, key, label in ((-0.2, "batch1", "batch 1"),
                                   (0.2, "batch32", f"batch {BATCH}")):
            bars = ax.bar(x + offset, [r[key] for r in mine], 0.4, label=label)
            ax.bar_label(bars, fmt="%.0f", fontsize=7)
        ax.set_xticks(x, labels, fontsize=8)
        ax.set_yscale("log")
        ax.set_ylabel(f"{modality} per second (log scale)")
        ax.set_title(f"{modality} per second, median of rounds")
        ax.grid(axis="y", which="both", alpha=0.3)
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--repeats", type=int, default=5, help="timed rounds per figure")
    parser.add_argument("--singles", type=int, default=16,
                        help="one-item calls per round for the batch-1 figures")
    parser.add_argument("--device", default="cpu,cuda",
                        help="comma-separated torch devices for CLIP and minilm; "
                             "cuda is skipped when no GPU is present")
    parser.add_argument("--threads", type=int, default=0,
                        help="Settings.torch_threads (0: the product's automatic choice)")
    parser.add_argument("--encoders", default="clip,minilm,descriptor",
                        help="comma-separated encoders to measure")
    parser.add_argument("--seed", type=int, default=0,
                        help="seed of the photo crops, the text sample and the CLIP weights")
    parser.add_argument("--quick", action="store_true",
                        help="2 rounds of 4 single calls: a smoke run, not a measurement")
    args = parser.parse_args(argv)
    if args.quick:
        args.repeats, args.singles = 2, 4
    import torch

    wanted = [e.strip() for e in args.encoders.split(",") if e.strip()]
    devices, skipped = [], []
    for device in (d.strip() for d in args.device.split(",") if d.strip()):
        if device.startswith("cuda") and not torch.cuda.is_available():
            skipped.append(device)
        else:
            devices.append(device)

    info = machine()
    print(f"machine: {machine_line(info)}")
    if skipped:
        print(f"skipped devices {', '.join(skipped)}: torch.cuda.is_available() is False")
    load_before = load_average()
    settings = Settings(torch_threads=args.threads)
    needed_images = max(BATCH + args.repeats, args.repeats * args.singles + 1)
    # ingest decodes for the larger of the encoder's side and the thumbnail
    images, image_source = photos(min(needed_images, 4 * BATCH), args.seed, settings,
                                  reduce_to=max(CLIP_IMAGE_SIDE, settings.thumbnail_size))
    corpus = texts(min(max(BATCH * args.repeats, args.repeats * args.singles + 1), 512),
                   args.seed)
    print(f"inputs: {len(images)} photos ({image_source}, decoded sizes "
          f"{min(im.size for im in images)}..{max(im.size for im in images)}); "
          f"{len(corpus)} Debian package synopses")
    results: dict[str, Any] = {
        "benchmark": "encoders", "command": command_line(), "date": now(), "machine": info,
        "repeats": args.repeats, "singles": args.singles, "batch": BATCH,
        "inputs": {"images": len(images), "image_source": image_source,
                   "texts": len(corpus), "text_source": "apt-cache dumpavail synopses"},
        "skipped_devices": skipped, "encoders": {}}

    if "clip" in wanted:
        with tempfile.TemporaryDirectory(prefix="imgsearch-clip-b32-") as tmp:
            started = time.perf_counter()
            corpus_all = [text for _, text in debian_descriptions()]
            built = build_random_clip(Path(tmp), corpus_all, args.seed)
            built["build_s"] = round(time.perf_counter() - started, 1)
            print(f"clip: random ViT-B/32, {built['parameters'] / 1e6:.1f} M parameters, "
                  f"tokenizer of {built['tokenizer_vocab']:,} tokens; built in "
                  f"{built['build_s']} s", flush=True)
            results["clip_model"] = built
            results["encoders"]["clip"] = {}
            for device in devices:
                print(f"clip on {device} ...", flush=True)
                results["encoders"]["clip"][device] = bench_clip(
                    Path(tmp), device, settings, images, corpus, args.repeats, args.singles)
    if "minilm" in wanted:
        results["encoders"]["minilm"] = {}
        for device in devices:
            print(f"minilm on {device} ...", flush=True)
            results["encoders"]["minilm"][device] = bench_minilm(
                device, settings, corpus, args.repeats, args.singles)
    if "descriptor" in wanted:
        print("descriptor ...", flush=True)
        results["encoders"]["descriptor"] = {"cpu": bench_descriptor(
            settings, images, args.repeats, args.singles)}

    rows = rows_of(results)
    threads = {f"{e}/{d}": r.get("torch_threads") for e, per in results["encoders"].items()
               for d, r in per.items() if "torch_threads" in r}
    print()
    print(f"Encoder throughput, median of {args.repeats} rounds; batch 1 = {args.singles} "
          f"one-item calls per round; pipeline ÷ bare = share of the bare model's throughput; "
          f"torch threads {threads}")
    print(table(["encoder", "device", "input", "way", "batch 1 /s", "p50 ms", "p99 ms",
                 f"batch {BATCH} /s", "÷ bare b1", f"÷ bare b{BATCH}"],
                [[r["encoder"], r["device"], r["modality"], r["way"], r["batch1"], r["p50"],
                  r["p99"], r["batch32"], _share(r["share1"]), _share(r["share32"])]
                 for r in rows]))
    clip_cpu = results["encoders"].get("clip", {})
    for device, r in clip_cpu.items():
        print(f"clip/{device}: mean tokens per text {r['tokens_per_text_mean']:.1f} alone, "
              f"{r['tokens_per_batch_mean']:.1f} padded in batches of {BATCH}")
    results["rows"] = rows
    results["load_average"] = {"before": load_before, "after": load_average()}
    print(f"load average (1, 5, 15 min) before: {load_before}, after: {load_average()}")
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    chart = RESULTS_DIR / "encoders.png"
    plot(rows, chart)
    print(f"\nwrote {write_results('encoders', results)} and {chart}")


if __name__ == "__main__":
    main()
