"""Sources: folder scanning, catalog files and URL lists, through their public functions."""

from __future__ import annotations

import json
import math
import os
from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import imagegen as gen
from imgsearch.errors import CatalogFormatError, InvalidInputError
from imgsearch.ingest.sources import (
    CatalogRows,
    detect_source,
    read_catalog,
    read_url_list,
    scan_folder,
)

# ---- folders ----------------------------------------------------------------------


def test_scan_lists_nested_images_sorted_with_posix_ids(tmp_path: Path) -> None:
    ids = gen.make_photo_folder(tmp_path, 9, seed=1)
    entries, failures = scan_folder(tmp_path)
    assert failures == []
    assert [e.id for e in entries] == ids == sorted(ids)
    assert any("/" in i for i in ids) and any(i.count("/") == 2 for i in ids)
    for entry in entries:
        stat = (tmp_path / entry.id).stat()
        assert entry.path == tmp_path / entry.id
        assert (entry.size, entry.mtime) == (stat.st_size, stat.st_mtime)


def test_scan_skips_hidden_system_and_non_image_files(tmp_path: Path) -> None:
    for name in ["a.JPG", "b.Png", "c.tiff", "d.webp", "e.txt", "f.svg", "noext", ".hidden.jpg",
                 ".git/x.jpg", "__MACOSX/x.jpg", "@eaDir/x.jpg", "$RECYCLE.BIN/x.jpg",
                 "System Volume Information/x.jpg", ".thumbnails/x.jpg", "lost+found/x.jpg",
                 "sub/.cache/x.jpg", "sub/g.gif"]:
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"x")
    entries, failures = scan_folder(tmp_path)
    assert [e.id for e in entries] == ["a.JPG", "b.Png", "c.tiff", "d.webp", "sub/g.gif"]
    assert failures == []


def test_symlinks_inside_the_root_are_followed_once(tmp_path: Path) -> None:
    root = tmp_path / "photos"
    gen.make_photo_folder(root, 4)
    (root / "link.jpg").symlink_to(root / "photo_0000.jpg")
    (root / "again").symlink_to(root / "holidays", target_is_directory=True)
    (root / "loop").symlink_to(root, target_is_directory=True)
    (root / "holidays" / "up").symlink_to(root / "holidays", target_is_directory=True)
    entries, failures = scan_folder(root)
    ids = [e.id for e in entries]
    assert "link.jpg" in ids
    assert "holidays/photo_0001.jpg" in ids
    assert not any(i.startswith(("again/", "loop/", "holidays/up/")) for i in ids)
    assert len(ids) == len(set(ids)) == 5
    assert failures == []


def test_symlink_to_a_skipped_folder_inside_the_root_is_listed(tmp_path: Path) -> None:
    gen.write_image(tmp_path / ".stash" / "kept.jpg", 1)
    (tmp_path / "visible").symlink_to(tmp_path / ".stash", target_is_directory=True)
    entries, _ = scan_folder(tmp_path)
    assert [e.id for e in entries] == ["visible/kept.jpg"]


def test_symlinks_escaping_the_root_are_failures(tmp_path: Path) -> None:
    root, outside = tmp_path / "root", tmp_path / "outside"
    gen.write_image(outside / "secret.jpg", 1)
    gen.write_image(root / "mine.jpg", 2)
    (root / "secret.jpg").symlink_to(outside / "secret.jpg")
    (root / "elsewhere").symlink_to(outside, target_is_directory=True)
    (root / "broken.jpg").symlink_to(root / "missing.jpg")
    (root / "self.jpg").symlink_to(root / "self.jpg")
    entries, failures = scan_folder(root)
    assert [e.id for e in entries] == ["mine.jpg"]
    reasons = {f.source: f.reason for f in failures}
    assert "symlink escapes the folder root" in reasons["secret.jpg"]
    assert "symlink escapes the folder root" in reasons["elsewhere"]
    assert "broken symlink" in reasons["broken.jpg"]
    assert "loop" in reasons["self.jpg"]


def test_unreadable_subfolder_is_a_failure_not_a_crash(tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    gen.make_photo_folder(tmp_path, 4)
    real_scandir = os.scandir

    def scandir(path: str | os.PathLike[str]) -> object:
        if Path(path).name == "family":  # permissions do not stop root, so pretend
            raise PermissionError(13, "Permission denied")
        return real_scandir(path)

    monkeypatch.setattr(os, "scandir", scandir)
    entries, failures = scan_folder(tmp_path)
    assert [(f.source, f.code) for f in failures] == [("family", "unreadable")]
    assert "Permission denied" in failures[0].reason
    assert entries and not any(e.id.startswith("family/") for e in entries)


def test_relative_root_gives_absolute_paths(tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                                            ) -> None:
    gen.make_photo_folder(tmp_path / "pics", 2)
    monkeypatch.chdir(tmp_path)
    entries, _ = scan_folder(Path("pics"))
    assert all(e.path.is_absolute() and e.path.exists() for e in entries)


def test_scan_of_a_missing_folder_is_an_input_error(tmp_path: Path) -> None:
    with pytest.raises(InvalidInputError, match="nope"):
        scan_folder(tmp_path / "nope")


# ---- CSV --------------------------------------------------------------------------


def write_csv(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_csv_rows_become_items(tmp_path: Path) -> None:
    csv_path = write_csv(tmp_path / "shop.csv", (
        "\ufeffid,image,title,price,tags,brand,rating,created_at,material,empty\n"
        "1,img/a.jpg, Red shoe ,$1,234.50,red|shoe; sale ,Nike,4.5,2024-05-01T12:00:00Z,"
        "leather,\n"
        "2,/abs/b.png,Bag,79.99,,,,,,\n"
        "3,https://cdn.example/c.jpg,Hat,12,,,,,,\n"
    ).replace("$1,234.50", '"$1,234.50"'))
    rows = read_catalog(csv_path)
    assert rows.failures == []
    first, second, third = rows.items
    assert first.id == "1" and first.image == str(tmp_path / "img" / "a.jpg")
    assert first.title == "Red shoe" and first.brand == "Nike"
    assert first.price == 1234.5 and first.rating == 4.5
    assert first.tags == ("red", "shoe", "sale")
    assert first.created_at == "2024-05-01T12:00:00Z"
    assert first.attributes == {"material": "leather"}
    assert second.image == "/abs/b.png" and second.price == 79.99 and second.attributes == {}
    assert third.image == "https://cdn.example/c.jpg"


def test_csv_row_problems_are_reported_per_row(tmp_path: Path) -> None:
    csv_path = write_csv(tmp_path / "c.csv", (
        "id,image,title,price,rating,created_at\n"
        "a,a.jpg,first,,,\n"           # row 1 ok
        ",b.jpg,,,,\n"                 # row 2 missing id
        "a,c.jpg,second,,,\n"          # row 3 duplicate of row 1
        "d,,,,,\n"                     # row 4 missing image
        "e,e.jpg,,abc,,\n"             # row 5 bad price
        'f,f.jpg,,"79,99",,\n'         # row 6 ambiguous price
        "g,g.jpg,,,high,\n"            # row 7 bad rating
        "h,h.jpg,,,,yesterday\n"       # row 8 bad date
        "i,i.jpg,,,,,extra\n"          # row 9 too many fields
        "j,ftp://x/j.jpg,,,,\n"        # row 10 unsupported reference
        "k,k.jpg,,-3,,\n"              # row 11 negative price
        "l,l.jpg,last,5,,\n"           # row 12 ok
    ))
    rows = read_catalog(csv_path)
    assert [i.id for i in rows.items] == ["a", "l"]
    assert rows.items[0].title == "first"
    # "c.csv row 5", and " (id e)" after it when the row has an id
    by_row = {int(f.source.split(" row ")[1].split()[0]): f for f in rows.failures}
    assert by_row[5].source == "c.csv row 5 (id e)" and by_row[5].item_id == "e"
    assert by_row[2].source == "c.csv row 2" and by_row[2].item_id is None
    assert sorted(by_row) == [2, 3, 4, 5, 6, 7, 8, 9, 10, 11]
    assert by_row[2].code == "missing_id"
    assert by_row[3].code == "duplicate_id" and "row 1" in by_row[3].reason
    assert by_row[4].code == "missing_image"
    assert "price" in by_row[5].reason and "'abc'" in by_row[5].reason
    assert "79,99" in by_row[6].reason
    assert "rating" in by_row[7].reason
    assert "created_at" in by_row[8].reason
    assert "more fields" in by_row[9].reason
    assert "http" in by_row[10].reason
    assert "price" in by_row[11].reason
    assert all(f.source.startswith("c.csv row ") for f in rows.failures)


@pytest.mark.parametrize(("text", "expected"), [
    ("79.99", 79.99), ("$1,234.50", 1234.5), ("1234", 1234.0), ("€12", 12.0),
    ("12 USD", 12.0), (" 0.5 ", 0.5), ("1,000,000", 1e6),
])
def test_price_formats_accepted(tmp_path: Path, text: str, expected: float) -> None:
    path = write_csv(tmp_path / "p.csv", f'id,image,price\nx,x.jpg,"{text}"\n')
    assert read_catalog(path).items[0].price == pytest.approx(expected)


@pytest.mark.parametrize("text", ["79,99", "abc", "1,23,4", "$", "nan", "inf", "1.2.3", "--5"])
def test_price_garbage_rejected(tmp_path: Path, text: str) -> None:
    path = write_csv(tmp_path / "p.csv", f'id,image,price\nx,x.jpg,"{text}"\n')
    rows = read_catalog(path)
    assert rows.items == [] and rows.failures[0].code == "bad_value"


@pytest.mark.parametrize("header", ["id,title\n", "image,title\n", "name,url\n"])
def test_csv_missing_required_column_fails_the_file(tmp_path: Path, header: str) -> None:
    path = write_csv(tmp_path / "bad.csv", header + "1,2\n")
    with pytest.raises(CatalogFormatError, match="missing required column"):
        read_catalog(path)


def test_csv_not_utf8_fails_the_file(tmp_path: Path) -> None:
    path = tmp_path / "latin.csv"
    path.write_bytes("id,image,title\n1,a.jpg,caf\xe9\n".encode("latin-1"))
    with pytest.raises(CatalogFormatError, match="UTF-8"):
        read_catalog(path)


# ---- JSONL ------------------------------------------------------------------------


def test_jsonl_rows_and_bad_lines(tmp_path: Path) -> None:
    path = tmp_path / "items.jsonl"
    lines = [
        json.dumps({"id": 1, "image": "a.jpg", "tags": ["x", " y ", "", "x"], "price": 10,
                    "popularity": "3.5", "meta": {"k": "v"}, "nothing": None}),
        "{not json",
        "",
        json.dumps([1, 2]),
        json.dumps({"id": "b", "image": "b.jpg", "conversion": 0.25, "color": "red"}),
    ]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    rows = read_catalog(path)
    assert [i.id for i in rows.items] == ["1", "b"]
    first = rows.items[0]
    assert first.tags == ("x", "y") and first.price == 10.0 and first.popularity == 3.5
    assert first.attributes == {"meta": {"k": "v"}}
    assert rows.items[1].conversion == 0.25 and rows.items[1].color == "red"
    assert [(f.source, f.code) for f in rows.failures] == [
        ("items.jsonl line 2", "bad_row"), ("items.jsonl line 4", "bad_row")]
    assert "JSON" in rows.failures[0].reason


def test_jsonl_without_required_keys_fails_the_file(tmp_path: Path) -> None:
    path = tmp_path / "x.ndjson"
    path.write_text('{"id": 1, "title": "t"}\n', encoding="utf-8")
    with pytest.raises(CatalogFormatError, match="image"):
        read_catalog(path)


# ---- Parquet ----------------------------------------------------------------------


def test_parquet_rows_become_items(tmp_path: Path) -> None:
    path = tmp_path / "items.parquet"
    table = pa.table({
        "id": [1, 2, 3],
        "image": ["a.jpg", "https://cdn.example/b.jpg", None],
        "tags": [["red", "shoe"], [], None],
        "price": [9.5, None, 1.0],
        "created_at": [datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)] * 3,
        "weight": [1.5, math.nan, 2.0],
    })
    pq.write_table(table, path)
    rows = read_catalog(path)
    assert [i.id for i in rows.items] == ["1", "2"]
    first, second = rows.items
    assert first.image == str(tmp_path / "a.jpg")
    assert first.tags == ("red", "shoe") and first.price == 9.5
    assert first.created_at is not None and first.created_at.startswith("2024-01-02T03:04:05")
    assert first.attributes == {"weight": 1.5}
    assert second.price is None and second.attributes == {}
    assert rows.failures[0].code == "missing_image" and "row 3" in rows.failures[0].source


def test_unreadable_parquet_fails_the_file(tmp_path: Path) -> None:
    path = tmp_path / "broken.parquet"
    path.write_bytes(b"PAR1 this is not parquet")
    with pytest.raises(CatalogFormatError, match="Parquet"):
        read_catalog(path)
    pq.write_table(pa.table({"id": [1]}), tmp_path / "cols.parquet")
    with pytest.raises(CatalogFormatError, match="image"):
        read_catalog(tmp_path / "cols.parquet")


# ---- URL lists and detection ------------------------------------------------------


def test_url_list(tmp_path: Path) -> None:
    path = tmp_path / "urls.txt"
    path.write_text("# my images\n\nhttps://a.example/1.jpg\n  http://b.example/2.png  \n"
                    "ftp://c.example/3.jpg\nnot a url\nhttps://a.example/1.jpg\n",
                    encoding="utf-8")
    rows = read_url_list(path)
    assert isinstance(rows, CatalogRows)
    assert [(i.id, i.image) for i in rows.items] == [
        ("https://a.example/1.jpg", "https://a.example/1.jpg"),
        ("http://b.example/2.png", "http://b.example/2.png")]
    assert [(f.source, f.code) for f in rows.failures] == [
        ("urls.txt line 5", "bad_url"), ("urls.txt line 6", "bad_url"),
        ("urls.txt line 7", "duplicate_id")]


def test_detect_source(tmp_path: Path) -> None:
    for name in ["a.csv", "b.JSONL", "c.ndjson", "d.parquet", "e.txt", "f.xlsx"]:
        (tmp_path / name).write_bytes(b"")
    assert detect_source(tmp_path) == "folder"
    assert {detect_source(tmp_path / n) for n in ["a.csv", "b.JSONL", "c.ndjson", "d.parquet"]
            } == {"catalog"}
    assert detect_source(tmp_path / "e.txt") == "urls"
    with pytest.raises(CatalogFormatError, match="xlsx"):
        detect_source(tmp_path / "f.xlsx")
    with pytest.raises(InvalidInputError, match="no such"):
        detect_source(tmp_path / "missing.csv")


def test_undecodable_file_names_get_valid_text_ids_and_real_paths(tmp_path: Path) -> None:
    root = tmp_path / "photos"
    root.mkdir()
    raw = os.path.join(os.fsencode(root), b"caf\xe9.jpg")
    with open(raw, "wb") as handle:
        handle.write(gen.jpeg_bytes(1))
    entries, failures = scan_folder(root)
    assert failures == []
    assert [e.id for e in entries] == ["caf\\xe9.jpg"]
    entries[0].id.encode("utf-8")
    assert os.fsencode(entries[0].path) == raw and entries[0].path.is_file()


def test_a_fifo_named_like_an_image_is_reported_not_opened(tmp_path: Path) -> None:
    root = tmp_path / "photos"
    gen.write_image(root / "a.jpg", 1)
    os.mkfifo(root / "pipe.jpg")
    os.mkfifo(root / "notes.txt")  # not an image name: not listed at all
    entries, failures = scan_folder(root)
    assert [e.id for e in entries] == ["a.jpg"]
    assert [(f.source, f.code) for f in failures] == [("pipe.jpg", "not_a_file")]


def test_scan_of_changed_paths_lists_what_a_full_scan_lists_there(tmp_path: Path) -> None:
    from imgsearch.ingest.changes import scan_changed

    for name in ("a.jpg", "b/c.png", "b/d/e.jpg", "b/notes.txt", ".hidden/f.jpg", "g.jpg"):
        gen.write_image(tmp_path / name, 1) if name.endswith(("jpg", "png")) else \
            (tmp_path / name).write_text("x")
    full, _ = scan_folder(tmp_path)
    changed = scan_changed(tmp_path, [tmp_path / "b", tmp_path / "a.jpg",
                                      tmp_path / ".hidden" / "f.jpg", tmp_path / "gone.jpg",
                                      tmp_path / "nowhere" / "x.jpg"])
    assert changed is not None
    assert sorted(e.id for e in changed.entries) == ["a.jpg", "b/c.png", "b/d/e.jpg"]
    assert {e.id: e for e in changed.entries}.items() <= {e.id: e for e in full}.items()
    assert changed.covers("gone.jpg") and changed.covers("b/d/old.jpg")
    assert changed.covers("nowhere/x.jpg") and not changed.covers("g.jpg")
    assert not changed.covers(".hidden/f.jpg")


def test_scan_of_changed_paths_defers_to_a_full_scan_past_links(tmp_path: Path) -> None:
    from imgsearch.ingest.changes import scan_changed

    gen.write_image(tmp_path / "real" / "a.jpg", 1)
    (tmp_path / "link").symlink_to(tmp_path / "real")
    assert scan_changed(tmp_path, [tmp_path / "link" / "a.jpg"]) is None
    assert scan_changed(tmp_path, [tmp_path]) is None  # the root itself changed


def test_a_changed_folder_and_a_changed_file_in_it_list_the_file_once(tmp_path: Path) -> None:
    from imgsearch.ingest.changes import scan_changed

    gen.write_image(tmp_path / "new" / "a.jpg", 1)
    changed = scan_changed(tmp_path, [tmp_path / "new", tmp_path / "new" / "a.jpg"])
    assert changed is not None and [e.id for e in changed.entries] == ["new/a.jpg"]
