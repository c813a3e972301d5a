"""What thumbnails in Milvus rows cost a node (milvus schema 3): the bytes a row's
thumbnail takes, and the latency of an image search that verifies copies over the
thumbnails fetched from Milvus against its peer, the same search with verification
turned off, timed query by query in turn in the same run.

The collection (Milvus Lite, written through ``RemoteEngine.upsert_many``, as a node
writes): the first ``--photos`` images of /usr/share/backgrounds (gnome-backgrounds)
and ``--stamps`` tuxpaint stamps. Queries: an edited copy (70 % crop, grey, mirror, in
turn) of each of the first ``--copies`` photos, and the photos left out of the
collection (nothing to find: verification examines every candidate). Each query runs
``--rounds`` times with and without verification, alternating which goes first.

    python bench/remote_copies.py --photos 60 --stamps 200 --copies 20 --rounds 3

``--server``: on the standalone Milvus 2.3.5 server instead of Milvus Lite (Strong
reads wait for its time tick, 200 ms). The time spent reading thumbnails is reported
too (``CollectionBackend.thumbnails``, summed per query).
"""

from __future__ import annotations

import argparse
import io
import statistics
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from PIL import Image, ImageOps

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))  # milvuskit

import milvuskit
from imgsearch.config import Settings
from imgsearch.engine import remote_query
from imgsearch.engine.backends.milvus import MilvusBackend
from imgsearch.engine.remote import RemoteEngine, spaces_for
from imgsearch.types import Item, Query

PHOTOS = Path("/usr/share/backgrounds")
STAMPS = Path("/usr/share/tuxpaint/stamps")


def _files(root: Path, suffixes: tuple[str, ...]) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.suffix.lower() in suffixes and p.is_file())


def _jpeg(image: Image.Image, quality: int = 85) -> bytes:
    buffer = io.BytesIO()
    image.convert("RGB").save(buffer, format="JPEG", quality=quality)
    return buffer.getvalue()


def _edit(path: Path, n: int) -> bytes:
    with Image.open(path) as opened:
        image = opened.convert("RGB")
    image.thumbnail((1600, 1600))
    w, h = image.size
    if n % 3 == 0:
        image = image.crop((int(w * 0.15), int(h * 0.15), int(w * 0.85), int(h * 0.85)))
    elif n % 3 == 1:
        image = ImageOps.grayscale(image)
    else:
        image = ImageOps.mirror(image)
    return _jpeg(image)


def _timed(engine: RemoteEngine, data: bytes) -> tuple[float, Any]:
    started = time.perf_counter()
    result = engine.search(Query(images=[data], limit=10))
    return (time.perf_counter() - started) * 1000, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--photos", type=int, default=60)
    parser.add_argument("--stamps", type=int, default=200)
    parser.add_argument("--copies", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--server", action="store_true",
                        help="the standalone Milvus 2.3.5 server, not Milvus Lite")
    args = parser.parse_args()
    photos = _files(PHOTOS, (".jpg", ".jpeg", ".png"))
    stamps = _files(STAMPS, (".png",))[:args.stamps]
    indexed, left_out = photos[:args.photos], photos[args.photos:]
    settings = Settings(image_encoder="descriptor", text_encoder="none", ingest_workers=2)
    with tempfile.TemporaryDirectory() as work, \
            contextmanager(milvuskit.milvus_server if args.server else milvuskit.milvus_lite)(
                Path(work)) as address:
        engine = RemoteEngine(MilvusBackend.open(f"milvus://{address}/bench_copies",
                                                 spaces_for(settings)), settings)
        entries = [(Item(id=f"photo{i}", title=p.stem), str(p)) for i, p in enumerate(indexed)]
        entries += [(Item(id=f"stamp{i}", title=p.stem), str(p)) for i, p in enumerate(stamps)]
        started = time.perf_counter()
        for start in range(0, len(entries), 50):
            written = engine.upsert_many(entries[start:start + 50])  # type: ignore[arg-type]
            assert all(isinstance(w, str) for w in written), written
        print(f"wrote {len(entries)} items in {time.perf_counter() - started:.1f} s")
        ids = [item.id for item, _p in entries]
        sizes = [len(v) for v in engine.backend.thumbnails(ids).values()]
        encoded = [4 * ((n + 2) // 3) for n in sizes]  # base64, as the field holds it
        print(f"thumbnail bytes per item (JPEG): median {statistics.median(sizes):,.0f}, "
              f"mean {statistics.mean(sizes):,.0f}, max {max(sizes):,}; in the field "
              f"(base64): median {statistics.median(encoded):,.0f}, max {max(encoded):,} "
              f"of 65,535")
        photo_sizes = sorted(sizes[:len(indexed)])
        print(f"  photos only: median {statistics.median(photo_sizes):,.0f} bytes of JPEG")
        engine.warm()
        reading: list[float] = []  # ms reading thumbnails, this query
        read = engine.backend.thumbnails

        def timed_read(ids: Any, expected: Any = None) -> dict[str, bytes]:
            started = time.perf_counter()
            try:
                return read(ids, expected)
            finally:
                reading.append((time.perf_counter() - started) * 1000)

        engine.backend.thumbnails = timed_read  # type: ignore[method-assign]
        spent: dict[str, list[float]] = {"copy": [], "nothing": []}
        queries: list[tuple[str, str, bytes]] = [
            ("copy", f"photo{n}", _edit(indexed[n], n)) for n in range(args.copies)]
        queries += [("nothing", p.name, _jpeg(Image.open(p))) for p in left_out]
        verify, early = remote_query._matches, remote_query.EarlyFeatures
        # the peer: no verification, nor the query's features found ahead for it
        off: Any = lambda *_a, **_k: {}  # noqa: E731
        none: Any = lambda _image: None  # noqa: E731
        times: dict[tuple[str, bool], list[float]] = {}
        ratios: dict[str, list[float]] = {"copy": [], "nothing": []}
        found = wrong = 0
        for round_ in range(args.rounds):
            for n, (kind, target, data) in enumerate(queries):
                pair: dict[bool, float] = {}
                for verifying in ((True, False) if (n + round_) % 2 else (False, True)):
                    remote_query._matches = verify if verifying else off  # type: ignore[assignment]
                    remote_query.EarlyFeatures = early if verifying else none  # type: ignore[misc]
                    engine.feature_cache.clear()  # each query reads its thumbnails again
                    reading.clear()
                    ms, result = _timed(engine, data)
                    if verifying:
                        spent[kind].append(sum(reading))
                    pair[verifying] = ms
                    times.setdefault((kind, verifying), []).append(ms)
                    if verifying and round_ == 0:
                        top = result.hits[0] if result.hits else None
                        if kind == "copy" and top is not None and top.id == target \
                                and top.match == "copy":
                            found += 1
                        claimed = [h.title for h in result.hits if h.match == "copy"]
                        if kind == "nothing" and claimed:  # another size of it, perhaps
                            print(f"  {target}: a copy of {', '.join(map(str, claimed))}")
                            wrong += 1
                ratios[kind].append(pair[True] / pair[False])
        remote_query._matches, remote_query.EarlyFeatures = verify, early  # type: ignore[misc]
        print(f"edited copies found first as copy: {found}/{args.copies}; unrelated photos "
              f"with a copy claimed: {wrong}/{len(left_out)}")
        for kind in ("copy", "nothing"):
            on = statistics.median(times[(kind, True)])
            plain = statistics.median(times[(kind, False)])
            print(f"{kind:8s} p50 with verification {on:7.1f} ms, without {plain:7.1f} ms, "
                  f"median ratio per query {statistics.median(ratios[kind]):.2f} "
                  f"({len(ratios[kind])} pairs); reading thumbnails p50 "
                  f"{statistics.median(spent[kind]):.1f} ms a query")
        engine.close()


if __name__ == "__main__":
    main()
