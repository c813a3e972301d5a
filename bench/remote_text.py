"""What text answers and "more like this" judged as locally cost a node over Milvus
Lite: ``RemoteEngine.search`` with each of text expansion (feedback from the surest
hits and neighbour smoothing), the concept list (WordNet) and fused "more like this"
turned on, against the same search with it off and against the bare
``CollectionBackend.search`` of the same block of candidates (the peer, timed in the
same run, query by query in turn). Also the calibration's sample (a reservoir over a
scan of every id, then the chosen vectors fetched) against the listing of the first
8,000 rows with their vectors that it replaces.

The collection: ``--n`` items with titles drawn from a small vocabulary of animals,
things and colours (WordNet knows the animals' kinds), clustered unit vectors of the
descriptor's and minilm's dimensions written straight into a fresh Milvus Lite
collection (no encoding); text queries are embedded by minilm once (cached).

    python bench/remote_text.py --n 5000 --queries 20
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from contextlib import contextmanager
from functools import partial
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))  # milvuskit

import milvuskit
from imgsearch.config import Settings
from imgsearch.engine.backends.base import Row
from imgsearch.engine.backends.milvus import MilvusBackend
from imgsearch.engine.remote import RemoteEngine, encoders_for
from imgsearch.engine.remote_concepts import RemoteWords
from imgsearch.engine.remote_sample import reservoir
from imgsearch.search.executor import fetch_size
from imgsearch.types import Item, Query

ANIMALS = ("cow", "cat", "dog", "horse", "sheep", "pigeon", "sparrow", "eagle", "trout",
           "salmon", "bee", "ant", "mouse", "goat", "duck")
THINGS = ("car", "drum", "guitar", "chair", "table", "lamp", "bicycle", "kettle")
COLOURS = ("red", "brown", "grey", "white", "black", "green")
TEXTS = ("mammals", "birds", "insects", "fish", "musical instruments", "furniture",
         "a brown animal", "vehicles")
OFF = {"text_feedback_beta": 0.0, "smooth_text": 0.0, "smooth_image": 0.0,
       "weight_concepts": 0.0, "similar_weight_text": 0.0, "similar_weight_category": 0.0,
       "similar_weight_brand": 0.0}


def clustered(rng: np.random.Generator, n: int, dim: int) -> np.ndarray:
    centres = rng.normal(size=(50, dim)).astype(np.float32)
    vectors = centres[rng.integers(0, 50, n)] + rng.normal(size=(n, dim)) * 0.6
    return (vectors / np.linalg.norm(vectors, axis=1, keepdims=True)).astype(np.float32)


def timed(run: Callable[[], object]) -> float:
    started = time.perf_counter()
    run()
    return (time.perf_counter() - started) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=5000)
    parser.add_argument("--queries", type=int, default=20)
    args = parser.parse_args()
    base = Settings(image_encoder="descriptor", text_encoder="minilm",
                    feedback_min_confidence=0.0, result_cache_size=0)
    encoders = encoders_for(base)
    rng = np.random.default_rng(0)
    image = clustered(rng, args.n, encoders["image"].dim)
    text = clustered(rng, args.n, encoders["text"].dim)
    words = (*ANIMALS, *THINGS)
    with tempfile.TemporaryDirectory() as work, \
            contextmanager(milvuskit.milvus_lite)(Path(work)) as address:
        backend = MilvusBackend.open(f"milvus://{address}/bench_text", encoders=encoders)
        for start in range(0, args.n, 1000):
            backend.upsert([Row(Item(
                id=f"v{i:07d}", title=f"A {COLOURS[i % 6]} {words[i % len(words)]}",
                category=("animals" if i % len(words) < len(ANIMALS) else "things"),
                brand=f"b{i % 7}"), {"image": image[i], "text": text[i]})
                for i in range(start, min(start + 1000, args.n))])
        full = RemoteEngine(backend, base)
        plain = RemoteEngine(backend, base.replace(**OFF))
        expansion = RemoteEngine(backend, base.replace(**{**OFF, "text_feedback_beta": 1.0,
                                                          "smooth_text": 0.6,
                                                          "smooth_image": 0.3}))
        concepts = RemoteEngine(backend, base.replace(**{**OFF, "weight_concepts": 1.0}))
        block = fetch_size(0, 10)
        texts = [TEXTS[i % len(TEXTS)] for i in range(args.queries)]
        for engine in (full, plain, expansion, concepts):  # calibrations, query vectors
            engine.search(Query(text=texts[0], parse=False))
        fresh = RemoteWords(backend, base.wordnet_dir, base.concept_vocabulary_max_items)
        wordnet = fresh.wordnet()
        first_words = timed(partial(fresh.words, wordnet)) if wordnet else float("nan")
        rows: dict[str, list[float]] = {k: [] for k in (
            "bare text", "text, nothing expanded", "text + expansion", "text + concepts",
            "text, all (defaults)", "bare image", "similar, image alone",
            "similar, fused (defaults)")}
        items = [f"v{int(i):07d}" for i in rng.integers(0, args.n, args.queries)]
        for text_query, item in zip(texts, items, strict=True):
            vector = full.encoder("text").embed_text(text_query)
            query = Query(text=text_query, parse=False, min_confidence=0.0)
            own = backend.fetch_vectors("image", [item])[item]
            similar = Query(similar_to=item)
            for name, run in (
                    ("bare text", partial(backend.search, "text", vector, block)),
                    ("text, nothing expanded", partial(plain.search, query)),
                    ("text + expansion", partial(expansion.search, query)),
                    ("text + concepts", partial(concepts.search, query)),
                    ("text, all (defaults)", partial(full.search, query)),
                    ("bare image", partial(backend.search, "image", own, block + 1)),
                    ("similar, image alone", partial(plain.search, similar)),
                    ("similar, fused (defaults)", partial(full.search, similar))):
                rows[name].append(timed(run))
        def sample() -> None:
            backend.fetch_vectors("image", reservoir(backend.ids(), 2000).ids)
        sampled = timed(sample)

        def first_rows() -> None:
            listed = 0
            for page in backend.rows(batch=2000):
                listed += len(page)
                if listed >= 8000:
                    break
        before = timed(first_rows)
        print(f"n={args.n} queries={args.queries} (Milvus Lite, block {block}, "
              f"descriptor + minilm)")
        for name, values in rows.items():
            peer = rows["bare image" if "similar" in name or "image" in name
                        else "bare text"]
            ratio = statistics.median(v / p for v, p in zip(values, peer, strict=True))
            print(f"{name:28s} p50 {statistics.median(values):9.1f} ms   "
                  f"÷ bare {ratio:5.2f}")
        print(f"concept words read (n items, WordNet vocabulary): {first_words:.0f} ms")
        print(f"calibration sample: reservoir over every id + 2,000 vectors fetched "
              f"{sampled:.0f} ms; first 8,000 rows listed with vectors (before) "
              f"{before:.0f} ms")
        full.close()


if __name__ == "__main__":
    main()
