"""The end of a JPEG's entropy-coded data, found by one search, is the marker walk's."""

from __future__ import annotations

import random

from imgsearch.ingest.jpeg import _end_of_entropy_data


def byte_by_byte(data: bytes, i: int) -> int:
    """The definition: skip stuffed 0xFF00, restart markers and fill bytes."""
    size = len(data)
    while True:
        i = data.find(b"\xff", i)
        if i < 0 or i + 1 >= size:
            return size
        follower = data[i + 1]
        if follower == 0x00 or 0xD0 <= follower <= 0xD7 or follower == 0xFF:
            i += 1 if follower == 0xFF else 2
            continue
        return i


def test_the_search_stops_where_the_definition_stops_on_marker_dense_bytes() -> None:
    rng = random.Random(7)
    alphabet = [0x00, 0x12, 0xD0, 0xD7, 0xD8, 0xD9, 0xDA, 0xFF, 0xFF, 0xFF]
    for _ in range(3000):
        data = bytes(rng.choice(alphabet) for _ in range(rng.randint(0, 24)))
        start = rng.randint(0, len(data))
        assert _end_of_entropy_data(data, start) == byte_by_byte(data, start), (data, start)


def test_edge_cases() -> None:
    assert _end_of_entropy_data(b"", 0) == 0
    assert _end_of_entropy_data(b"\x01\xff", 0) == 2  # 0xFF as the last byte: no marker
    assert _end_of_entropy_data(b"\x01\xff\xff", 0) == 3
    assert _end_of_entropy_data(b"\xff\x00\xff\xd3\xff\xff\xd9", 0) == 5
