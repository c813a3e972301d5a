"""Hostile EXIF blocks: wrong types, bogus values, out-of-range GPS, huge and damaged
blocks. Each case is a JPEG whose pixels are fine; ingest must accept every one."""

from __future__ import annotations

import random
import struct
from collections.abc import Callable

from PIL import Image, TiffImagePlugin

from photogen import IFD_EXIF, IFD_GPS, photo_exif, photo_jpeg

R = TiffImagePlugin.IFDRational


def _with(main: dict[int, object] | None = None, ifd0: dict[int, object] | None = None,
          gps: dict[int, object] | None = None) -> Image.Exif:
    exif = Image.Exif()
    exif.update(ifd0 or {})
    if main:
        exif.get_ifd(IFD_EXIF).update(main)
    if gps:
        exif.get_ifd(IFD_GPS).update(gps)
    return exif


def _ifd(entries: list[tuple[int, int, int, bytes]], next_ifd: int = 0) -> bytes:
    """A raw IFD: entries (tag, type, count, 4-byte value/offset), then the next one's
    offset."""
    body = struct.pack("<H", len(entries))
    for tag, kind, count, value in entries:
        body += struct.pack("<HHI", tag, kind, count) + value.ljust(4, b"\0")[:4]
    return body + struct.pack("<I", next_ifd)


def _raw_tiff(entries: list[tuple[int, int, int, bytes]], next_ifd: int = 0,
              first_ifd: int = 8, tail: bytes = b"") -> bytes:
    """An EXIF block of one raw IFD (and ``tail`` right after it)."""
    return (b"Exif\0\0" + b"II*\0" + struct.pack("<I", first_ifd)
            + _ifd(entries, next_ifd) + tail)


def _random_block(seed: int, size: int) -> bytes:
    rng = random.Random(seed)
    return b"Exif\0\0II*\0\x08\0\0\0" + bytes(rng.randrange(256) for _ in range(size))


_GOOD_GPS = {1: "N", 2: (R(38, 1), R(43, 1), R(20, 1)), 3: "W", 4: (R(9, 1), R(8, 1), R(21, 1))}

CASES: dict[str, Callable[[], Image.Exif | bytes]] = {
    "date all zeros": lambda: _with({0x9003: "0000:00:00 00:00:00"}),
    "date month 13 hour 25": lambda: _with({0x9003: "2019:13:45 25:61:61"}),
    "date as a number": lambda: _with({0x9003: 12345}),
    "date as garbage bytes": lambda: _with({0x9003: b"\xff\xfe\x00\x01garbage"}),
    "date 30k characters": lambda: _with({0x9003: "2019:01:01 00:00:00" * 1500}),
    "date year 9999": lambda: _with({0x9003: "9999:12:31 23:59:59"}),
    "offset +99:00": lambda: _with({0x9003: "2019:07:04 12:00:00", 0x9011: "+99:00"}),
    "offset not an offset": lambda: _with({0x9003: "2019:07:04 12:00:00", 0x9011: "soon"}),
    "offset without a date": lambda: _with({0x9011: "+02:00"}),
    "make 10k characters": lambda: _with(ifd0={0x010F: "Canon" * 2000}),
    "make with control characters": lambda: _with(ifd0={0x010F: "\x01\x02Can\x07on\x00"}),
    "model as a number": lambda: _with(ifd0={0x0110: 42}),
    "model as a tuple": lambda: _with(ifd0={0x0110: (1, 2, 3)}),
    "lens as invalid utf-8": lambda: _with({0xA434: b"\xc3\x28\xa0\xa1"}),
    "focal length 1/0": lambda: _with({0x920A: R(1, 0)}),
    "focal length negative": lambda: _with({0x920A: R(-50, 1)}),
    "focal length as text": lambda: _with({0x920A: "fifty"}),
    "focal length huge": lambda: _with({0x920A: R(10**9, 1)}),
    "latitude 91 degrees": lambda: _with(gps={**_GOOD_GPS, 2: (R(91, 1), R(0, 1), R(0, 1))}),
    "longitude 200 degrees": lambda: _with(gps={**_GOOD_GPS, 4: (R(200, 1), R(0, 1),
                                                                 R(0, 1))}),
    "latitude as text": lambda: _raw_tiff([(0x8825, 4, 1, struct.pack("<I", 26))],
                                          tail=_ifd([(2, 2, 4, b"38N\0")])),
    "latitude empty": lambda: _with(gps={**_GOOD_GPS, 2: ()}),
    "latitude 1/0": lambda: _with(gps={**_GOOD_GPS, 2: (R(1, 0), R(0, 1), R(0, 1))}),
    "latitude 0/0": lambda: _with(gps={**_GOOD_GPS, 2: (R(0, 0), R(0, 1), R(0, 1))}),
    "latitude of five parts": lambda: _with(gps={**_GOOD_GPS, 2: tuple(R(1, 1)
                                                                       for _ in range(5))}),
    "hemisphere X": lambda: _with(gps={**_GOOD_GPS, 1: "X"}),
    "hemisphere as a number": lambda: _with(gps={**_GOOD_GPS, 3: 7}),
    "position 0, 0": lambda: _with(gps={1: "N", 2: (R(0, 1),) * 3, 3: "E", 4: (R(0, 1),) * 3}),
    "only a latitude": lambda: _with(gps={1: "N", 2: (R(38, 1), R(0, 1), R(0, 1))}),
    "a thousand junk tags": lambda: _with(ifd0={0xC000 + i: "junk" for i in range(1000)}),
    "GPS directory past the end": lambda: _raw_tiff(
        [(0x8825, 4, 1, struct.pack("<I", 10**6))]),
    "EXIF directory pointing at itself": lambda: _raw_tiff(
        [(0x8769, 4, 1, struct.pack("<I", 8))]),
    "next directory pointing at itself": lambda: _raw_tiff(
        [(0x010F, 2, 4, b"abc\0")], next_ifd=8),
    "count 4 billion": lambda: _raw_tiff([(0x0110, 2, 0xFFFFFFFF, b"\0\0\0\0")]),
    "unknown value type": lambda: _raw_tiff([(0x0110, 99, 4, b"abcd")]),
    "first directory past the end": lambda: _raw_tiff([], first_ifd=10**6),
    "truncated header": lambda: b"Exif\0\0MM\0*",
    "random block": lambda: _random_block(1, 300),
    "random large block": lambda: _random_block(2, 60_000),
    "not TIFF at all": lambda: b"Exif\0\0" + b"hello" * 100,
    "valid date in IFD0 only": lambda: _with(ifd0={0x0132: "2018:03:02 10:11:12"}),
}


def hostile_jpeg(name: str, seed: int = 0) -> bytes:
    return photo_jpeg(seed, CASES[name]())


def good_jpeg(seed: int = 0) -> bytes:
    return photo_jpeg(seed, photo_exif(taken="2019:07:04 12:30:00", make="Google",
                                       model="Pixel 4a", gps=(38.7223, -9.1393)))
