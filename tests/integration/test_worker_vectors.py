"""Image vectors computed in the decode worker processes are the ones this process would
compute: the same descriptor (within 1e-6), pHash, colours and thumbnail for every item,
whether decoding runs in worker processes or on threads here."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import imagegen as gen
from imgsearch import Engine, Settings
from imgsearch.encode.descriptor import DescriptorEncoder, describe_image
from imgsearch.engine.pipeline import derive_job
from imgsearch.enrich.thumbnails import shrink_for_thumbnail
from imgsearch.ingest.decode import decode_file


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("mixed")
    gen.make_photo_folder(root / "small", 6)
    for seed, size in enumerate(((1200, 900), (900, 1200), (1024, 768), (640, 480))):
        gen.write_image(root / f"large_{seed}.jpg", 40 + seed, size, "JPEG")
    (root / "rotated.jpg").write_bytes(gen.exif_rotated_jpeg(3, (400, 300)))
    (root / "cmyk.jpg").write_bytes(gen.cmyk_jpeg(4, (300, 200)))
    (root / "alpha.png").write_bytes(gen.rgba_png(5, (300, 200)))
    (root / "palette.png").write_bytes(gen.palette_png(6, (200, 150)))
    return root


def _ingested(folder: Path, target: Path, processes: bool) -> dict[str, tuple]:
    settings = Settings(text_encoder="none", decode_processes=processes, ingest_workers=2)
    with Engine.open(target, settings) as engine:
        report = engine.ingest(folder)
        assert not report.failed
        space = engine.spaces["image"]
        out = {}
        for item_id in (item.id for item in engine.catalog.iter_items()):
            item = engine.get(item_id)
            key = np.asarray([engine.catalog.key_of(item_id)])
            vector = space.vectors_of_keys(key)[1][0]
            thumbnail = (target / item.thumbnail).read_bytes() if item.thumbnail else b""
            out[item_id] = (vector, item.phash, item.colors, item.width, item.height,
                            thumbnail)
        return out


def test_worker_vectors_equal_vectors_made_here(folder: Path, tmp_path: Path) -> None:
    in_workers = _ingested(folder, tmp_path / "workers", processes=True)
    here = _ingested(folder, tmp_path / "threads", processes=False)
    assert set(in_workers) == set(here)
    assert len(here) == 14
    for item_id, (vector, *fields) in in_workers.items():
        other_vector, *other_fields = here[item_id]
        assert np.abs(vector - other_vector).max() <= 1e-6, item_id
        assert abs(float(np.linalg.norm(vector)) - 1.0) <= 1e-6
        assert fields == other_fields, item_id  # pHash, colours, size, thumbnail bytes


def test_describe_image_is_the_encoders_vector(folder: Path) -> None:
    images = [decode_file(path, max_pixels=10**8, min_side=32, max_bytes=10**8,
                          reduce_to=DescriptorEncoder.image_side).image
              for path in sorted(folder.rglob("*.*"))]
    batch = DescriptorEncoder().embed_images(images)
    alone = np.stack([describe_image(image) for image in images])
    assert batch.shape == alone.shape == (14, DescriptorEncoder().dim)
    assert np.abs(batch - alone).max() <= 1e-6


def test_a_worker_sends_the_vector_back_not_the_pixels(folder: Path, tmp_path: Path) -> None:
    path = str(folder / "large_0.jpg")
    with Engine.open(tmp_path / "c", Settings(text_encoder="none")) as engine:
        request = engine.preparer.request(path, "large_0.jpg")
        assert request.image_vector is describe_image  # decode workers are the default
        derived = derive_job(request, 512)
        full = decode_file(Path(path), max_pixels=10**8, min_side=32, max_bytes=10**8,
                           reduce_to=request.reduce_to,
                           longer_at_least=request.longer_at_least)
    # decoded as large as its largest consumer needs: the 512-px thumbnail's longer side
    # (1/2 scale) and the descriptor's shorter side (160 px)
    assert full.image.size == (600, 450)
    assert (request.reduce_to, request.longer_at_least) == (160, 512)
    assert derived.decoded.image.size == (1, 1)  # the pixels stayed where they were decoded
    assert (derived.decoded.width, derived.decoded.height) == (1200, 900)
    assert derived.image_vector is not None
    # the descriptor reads the thumbnail's pixels (shorter side 384 >= 160)
    small = shrink_for_thumbnail(full.image, 512)
    assert small.size == (512, 384)
    expected = DescriptorEncoder().embed_image(small)
    assert np.abs(derived.image_vector - expected).max() <= 1e-6
    with Engine.open(tmp_path / "t", Settings(text_encoder="none",
                                              decode_processes=False)) as engine:
        on_threads = engine.preparer.request(path, "large_0.jpg")
    assert on_threads.image_vector is None  # encoded here, in batches
    kept = derive_job(on_threads, 512)
    assert kept.image_vector is None
    assert kept.decoded.image.size == small.size  # what the batch encoder gets here
