"""The imgsearch command line, run as a user would run it."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

import backendkit as kit
import imagegen as gen
from imgsearch.config import Settings
from searchnodes import BACKENDS, milvus_settings

ENV = dict(os.environ, IMGSEARCH_TEXT_ENCODER="fake")


def run(*args: str | Path, check: int | None = 0, env: dict[str, str] | None = None
        ) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([sys.executable, "-m", "imgsearch.cli", *map(str, args)],
                          capture_output=True, text=True, env=env or ENV, timeout=300)
    if check is not None:
        assert proc.returncode == check, proc.stderr
    return proc


GOOD = {
    "plain.jpg": lambda: gen.jpeg_bytes(1),
    "copy-of-plain.jpg": lambda: gen.jpeg_bytes(1),
    "nested/deeper/photo.png": lambda: gen.png_bytes(2),
    "rotated.jpg": lambda: gen.exif_rotated_jpeg(3),
    "cmyk.jpg": lambda: gen.cmyk_jpeg(4),
    "sixteen.png": lambda: gen.png16_bytes(5),
    "animated.gif": lambda: gen.animated_gif(6),
    "palette.png": lambda: gen.palette_png(7),
    "alpha.png": lambda: gen.rgba_png(8),
    "gray-alpha.png": lambda: gen.la_png(9),
    "onebit.png": lambda: gen.onebit_png(10),
}
BAD = {
    "truncated.jpg": (gen.truncated_jpeg, "corrupt"),
    "empty.jpg": (gen.zero_bytes, "corrupt"),
    "notes.png": (gen.text_file, "unsupported"),
    "drawing.png": (gen.svg_bytes, "unsupported"),
    "bomb.png": (gen.decompression_bomb_png, "too_large"),
}
SKIPPED = {"tiny.png": gen.tiny_png}  # too small to describe: left out, not a failure


@pytest.fixture(scope="module")
def messy_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("messy") / "photos"
    for name, make in {**GOOD, **{k: v[0] for k, v in BAD.items()}, **SKIPPED}.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(make())
    outside = root.parent / "outside.jpg"
    outside.write_bytes(gen.jpeg_bytes(99))
    (root / "escape.jpg").symlink_to(outside)
    (root / ".hidden").mkdir()
    (root / ".hidden" / "secret.jpg").write_bytes(gen.jpeg_bytes(98))
    (root / "readme.txt").write_text("not an image extension")
    return root


def test_index_messy_folder_reports_every_bad_file(messy_folder, tmp_path):
    proc = run("index", messy_folder, "--collection", tmp_path / "c", "--json", check=1)
    report = json.loads(proc.stdout)
    assert report["added"] == len(GOOD)
    failed = {Path(f["source"]).name: f for f in report["failed"]}
    for name, (_make, code) in BAD.items():
        assert name in failed, (name, failed)
        assert code in failed[name]["code"], failed[name]
        assert failed[name]["reason"]
    assert "escape.jpg" in failed and "symlink" in failed["escape.jpg"]["reason"]
    assert len(failed) == len(BAD) + 1
    assert f"failed {len(BAD) + 1}" in proc.stderr
    skipped = {Path(f["source"]).name: f for f in report["skipped"]}
    assert skipped["tiny.png"]["code"] == "image_too_small"
    assert "too small (10x10, under 32 px" in skipped["tiny.png"]["reason"]
    assert skipped["*.txt"] == {"source": "*.txt", "code": "unsupported_extension", "count": 1,
                                "item_id": None,
                                "reason": "1 .txt file skipped: not an image file"}
    assert "skipped 2," in proc.stderr
    # each failure names its file once
    assert not any(line.count("truncated.jpg") > 1 for line in proc.stderr.splitlines())

    info = json.loads(run("info", "--collection", tmp_path / "c", "--json").stdout)
    assert info["items"] == len(GOOD)
    # exact duplicates tie at rank one
    hits = json.loads(run("search", "-c", tmp_path / "c", "--image",
                          messy_folder / "plain.jpg", "--no-collapse", "--json").stdout)["results"]
    assert {hits[0]["id"], hits[1]["id"]} == {"plain.jpg", "copy-of-plain.jpg"}
    assert hits[0]["score"] == pytest.approx(hits[1]["score"])
    # the EXIF-rotated file was indexed upright
    rotated = json.loads(run("search", "-c", tmp_path / "c", "--image",
                             messy_folder / "rotated.jpg", "--json", "--limit", "1").stdout)
    assert rotated["results"][0]["id"] == "rotated.jpg"
    # re-running touches nothing
    again = json.loads(run("index", messy_folder, "-c", tmp_path / "c", "--json",
                           check=1).stdout)
    assert again["added"] == 0 and again["unchanged"] == len(GOOD)


def _catalog(root: Path) -> Path:
    """40 products (every fourth a shoe) and three bad rows; the CSV file."""
    images = root / "img"
    images.mkdir()
    rows = ["id,image,title,category,price,brand,material"]
    for i in range(40):
        (images / f"{i}.jpg").write_bytes(gen.jpeg_bytes(100 + i))
        category = "shoes" if i % 4 == 0 else "bags"
        rows.append(f"SKU{i},img/{i}.jpg,item number {i},{category},{10 + i},b{i % 3},m{i % 2}")
    rows.append(",img/1.jpg,no id,shoes,1,b,m")
    rows.append("SKU1,img/1.jpg,duplicate id,shoes,1,b,m")
    rows.append("SKUX,img/2.jpg,bad price,shoes,cheap,b,m")
    (root / "products.csv").write_text("\n".join(rows) + "\n")
    return root / "products.csv"


@dataclass
class Shop:
    """A catalog indexed by the command line into a collection on ``backend``."""

    where: str
    images: Path
    env: dict[str, str]
    backend: str

    def search(self, *args: str | Path) -> dict[str, Any]:
        return dict(json.loads(run("search", "-c", self.where, *args, "--json",
                                   env=self.env).stdout))

    def require(self, feature: str) -> None:
        if self.backend == "local":
            return
        from imgsearch.engine.remote import open_remote

        settings = Settings(text_encoder=self.env["IMGSEARCH_TEXT_ENCODER"])
        with open_remote(self.where, settings) as engine:
            reason = engine.refuses(feature)
        if reason:
            pytest.skip(f"{self.backend}: {reason}")


@pytest.fixture(scope="module", params=BACKENDS)
def shop(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Shop:
    root = tmp_path_factory.mktemp("catalog")
    products = _catalog(root)
    backend = str(request.param)
    env = ENV
    if backend == "local":
        where = str(root / "shop")
    else:
        address = request.getfixturevalue(
            "milvus_lite_address" if backend == "milvus-lite" else "milvus_server_address")
        where = f"milvus://{address}/{kit.collection_name('catalog')}"
        # the 2.3.5 server holds one vector field: the image space alone there
        env = dict(ENV, IMGSEARCH_TEXT_ENCODER=milvus_settings(Settings(text_encoder="fake"),
                                                               backend).text_encoder)
    report = json.loads(run("index", products, "-c", where, "--json", check=1,
                            env=env).stdout)
    assert report["added"] == 40 and len(report["failed"]) == 3
    return Shop(where, root / "img", env, backend)


def test_catalog_search_and_similar(shop: Shop) -> None:
    images = shop.images
    hits = shop.search("--image", images / "8.jpg", "--category", "shoes",
                       "--price-max", "40")["results"]
    assert hits[0]["id"] == "SKU8"
    assert all(h["category"] == "shoes" and h["price"] <= 40 for h in hits)

    multi = shop.search("--image", images / "5.jpg", "--image", images / "6.jpg",
                        "--not-image", images / "7.jpg")
    assert {"SKU5", "SKU6"} <= {h["id"] for h in multi["results"][:3]}

    sim = json.loads(run("similar", "-c", shop.where, "SKU12", "--limit", "5", "--json",
                         env=shop.env).stdout)
    assert len(sim["results"]) == 5 and "SKU12" not in [h["id"] for h in sim["results"]]

    attr = shop.search("--image", images / "3.jpg", "--attr", "material=m1", "--limit", "40",
                       "--min-confidence", "0")
    assert len(attr["results"]) == 20


def test_catalog_text_and_hybrid_search(shop: Shop) -> None:
    shop.require("text")
    text = shop.search("--text", "item number 17")
    assert text["results"][0]["id"] == "SKU17"
    both = shop.search("--image", shop.images / "3.jpg", "--text", "x", "--image-weight",
                       "0.9")
    assert both["results"][0]["id"] == "SKU3"


def test_catalog_browse_newest_first(shop: Shop) -> None:
    shop.require("browse")
    browsed = shop.search("--category", "shoes", "--limit", "3")
    assert browsed["query_kind"] == "browse"
    assert [h["id"] for h in browsed["results"]] == ["SKU36", "SKU32", "SKU28"]


def test_add_then_remove_in_a_catalog_collection(tmp_path):
    products = _catalog(tmp_path)
    c = tmp_path / "shop"
    run("index", products, "-c", c, "--json", check=1)
    (tmp_path / "new.jpg").write_bytes(gen.jpeg_bytes(555))
    added = json.loads(run("add", tmp_path / "new.jpg", "-c", c, "--id", "NEW", "--title",
                           "fresh", "--json").stdout)
    assert added == {"id": "NEW", "status": "added"}
    top = json.loads(run("search", "-c", c, "--image", tmp_path / "new.jpg", "--json",
                         "--limit", "1").stdout)
    assert top["results"][0]["id"] == "NEW"
    assert run("remove", "NEW", "-c", c).returncode == 0
    assert run("remove", "NEW", "-c", c, check=3).returncode == 3
    gone = json.loads(run("search", "-c", c, "--image", tmp_path / "new.jpg", "--json",
                          "--limit", "40").stdout)
    assert "NEW" not in [h["id"] for h in gone["results"]]


def test_errors_have_exit_codes_and_messages(tmp_path):
    missing = run("search", "-c", tmp_path / "none", "--text", "x", check=3)
    assert "no collection" in missing.stderr
    c = tmp_path / "c"
    (tmp_path / "a.jpg").write_bytes(gen.jpeg_bytes(1))
    run("add", tmp_path / "a.jpg", "-c", c)
    unknown = run("similar", "nope", "-c", c, check=3)
    assert "nope" in unknown.stderr
    bad = run("search", "-c", c, "--image", tmp_path / "a.jpg", "--price-min", "9",
              "--price-max", "1", check=2)
    assert "price_min" in bad.stderr
    mismatch = run("index", tmp_path, "-c", c, "--image-encoder", "fake", check=4)
    assert "--reembed" in mismatch.stderr
    human = run("search", "-c", c, "--image", tmp_path / "a.jpg")
    assert "a.jpg" in human.stdout


def test_dedup_and_eval_commands(tmp_path):
    folder = tmp_path / "photos"
    folder.mkdir()
    for i in range(12):
        (folder / f"p{i}.jpg").write_bytes(gen.jpeg_bytes(300 + i))
    (folder / "p0-copy.jpg").write_bytes(gen.jpeg_bytes(300))
    (folder / "p1-again.jpg").write_bytes(gen.jpeg_bytes(301, quality=50))
    c = tmp_path / "c"
    run("index", folder, "-c", c, "--quiet")
    groups = json.loads(run("dedup", "-c", c, "--json").stdout)["groups"]
    as_sets = [set(g["ids"]) for g in groups]
    assert {"p0.jpg", "p0-copy.jpg"} in as_sets and {"p1.jpg", "p1-again.jpg"} in as_sets
    assert len(groups) == 2
    exact = json.loads(run("dedup", "-c", c, "--min-tier", "exact", "--json").stdout)
    assert [set(g["ids"]) for g in exact["groups"]] == [{"p0.jpg", "p0-copy.jpg"}]
    one = json.loads(run("dedup", "-c", c, "--item", "p0.jpg", "--json").stdout)
    assert [d["id"] for d in one["duplicates"]] == ["p0-copy.jpg"]
    assert one["duplicates"][0]["tier"] == "exact"

    qrels = tmp_path / "qrels.jsonl"
    qrels.write_text(
        json.dumps({"image": str(folder / "p5.jpg"), "relevant": ["p5.jpg"]}) + "\n"
        + json.dumps({"item": "p0.jpg", "relevant": ["p0-copy.jpg"]}) + "\n")
    report = json.loads(run("eval", "-c", c, qrels, "--json").stdout)
    assert report["overall"]["recall@1"] == 1.0
    assert report["overall"]["mrr"] == 1.0
    human = run("eval", "-c", c, qrels, "--explain")
    assert "ndcg" in human.stdout.lower()
    ann = json.loads(run("eval", "-c", c, "--ann", "--json").stdout)["ann"]
    assert ann[0]["recall"] == 1.0
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "x"}\n')
    assert "line 1" in run("eval", "-c", c, bad, check=2).stderr


def test_a_failed_first_index_leaves_no_collection_behind(tmp_path):
    missing = run("index", tmp_path / "no-such-folder", "-c", tmp_path / "typo", check=2)
    assert "no-such-folder" in missing.stderr
    assert not (tmp_path / "typo").exists()
    photos = tmp_path / "photos"
    gen.write_image(photos / "one.jpg", 1)
    offline = subprocess.run(
        [sys.executable, "-m", "imgsearch.cli", "index", str(photos), "-c",
         str(tmp_path / "clip"), "--image-encoder", "clip",
         "--clip-model", "imgsearch-tests/clip-that-is-not-cached"],
        capture_output=True, text=True, env=dict(ENV, HF_HUB_OFFLINE="1"), timeout=300)
    assert offline.returncode == 5, offline.stderr
    assert "cannot load CLIP model" in offline.stderr
    assert not (tmp_path / "clip").exists()
    # a collection that already held items is never removed by a failing run
    run("index", photos, "-c", tmp_path / "kept")
    run("index", tmp_path / "no-such-folder", "-c", tmp_path / "kept", check=2)
    assert json.loads(run("info", "-c", tmp_path / "kept", "--json").stdout)["items"] == 1


def test_progress_shows_no_rate_before_it_means_something(tmp_path):
    photos = tmp_path / "photos"
    for seed in range(3):
        gen.write_image(photos / f"p{seed}.jpg", seed)
    proc = run("index", photos, "-c", tmp_path / "coll")
    bar_lines = [line for line in proc.stderr.replace("\r", "\n").splitlines()
                 if line.startswith("indexing")]
    assert bar_lines, proc.stderr
    assert not any("img/s" in line for line in bar_lines), bar_lines


def test_config_files_set_defaults_and_config_shows_where_from(tmp_path):
    photos = tmp_path / "photos"
    for seed in range(4):
        gen.write_image(photos / f"p{seed}.jpg", seed)
    coll = tmp_path / "coll"
    run("index", photos, "-c", coll)
    home = tmp_path / "home"
    (home / "imgsearch").mkdir(parents=True)
    (home / "imgsearch" / "config.toml").write_text("default_limit = 2\nmin_confidence = 0\n")
    env = dict(ENV, XDG_CONFIG_HOME=str(home))

    def cli(*args: str | Path) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run([sys.executable, "-m", "imgsearch.cli", *map(str, args)],
                              capture_output=True, text=True, env=env, timeout=300)
        assert proc.returncode == 0, proc.stderr
        return proc

    found = json.loads(cli("search", "-c", coll, "--image", photos / "p1.jpg", "--json").stdout)
    assert len(found["results"]) == 2  # the user's file set the page size
    (coll / "imgsearch.toml").write_text("default_limit = 3\n")
    found = json.loads(cli("search", "-c", coll, "--image", photos / "p1.jpg", "--json").stdout)
    assert len(found["results"]) == 3  # the collection's file is stronger
    shown = json.loads(cli("config", "-c", coll, "--json").stdout)
    assert shown["default_limit"] == {"value": 3, "from": str(coll / "imgsearch.toml")}
    assert shown["min_confidence"]["from"] == str(home / "imgsearch" / "config.toml")
    assert shown["hnsw_m"]["from"] == "default"
    table = cli("config", "-c", coll).stdout.splitlines()
    assert table[0].split() == ["setting", "value", "from"]
    (coll / "imgsearch.toml").write_text("default_limt = 3\n")
    bad = subprocess.run([sys.executable, "-m", "imgsearch.cli", "info", "-c", str(coll)],
                         capture_output=True, text=True, env=env, timeout=300)
    assert bad.returncode == 2 and "unknown setting 'default_limt'" in bad.stderr

ROW = re.compile(r"^\s*(\d+)\.\s+(\d{1,3})%\s+(exact|copy|similar)\s+(\S+)")


def _table(stdout: str) -> list[re.Match[str]]:
    lines = stdout.splitlines()
    assert lines[0].split()[:5] == ["#", "conf", "match", "id", "price"], lines[0]
    rows = [ROW.match(line) for line in lines[1:]]
    assert rows and all(rows), lines
    return [r for r in rows if r]


def test_readme_hybrid_example_and_the_human_table(tmp_path):
    # imgsearch search -c ./shop --image a.jpg --text "in blue" --image-weight 0.7
    images = tmp_path / "img"
    images.mkdir()
    rows = ["id,image,title,category,price"]
    colours = {"red": (220, 20, 20), "blue": (20, 40, 220), "green": (30, 160, 60)}
    for i in range(8):
        for n, (name, rgb) in enumerate(colours.items()):
            picture = gen.picture(10 * i + n)
            picture.paste(Image.new("RGB", (120, 90), rgb), (20, 15))
            picture.save(images / f"{name}{i}.jpg", quality=90)
            rows.append(f"{name}{i},img/{name}{i}.jpg,{name} mug number {i},mugs,{5 + i}")
    (tmp_path / "products.csv").write_text("\n".join(rows) + "\n")
    c = tmp_path / "shop"
    run("index", tmp_path / "products.csv", "-c", c, "--quiet")
    query = ("search", "-c", c, "--image", images / "red0.jpg", "--text", "in blue",
             "--image-weight", "0.7")
    found = json.loads(run(*query, "--json").stdout)
    assert found["empty_reason"] is None
    assert "red0" in [h["id"] for h in found["results"]]
    assert found["interpretation"]["colors"] == {"blue": "prefer"}
    # raw per-signal scores stay in the JSON
    assert {"image", "text"} <= set(found["results"][0]["matched_by"])

    human = run(*query)
    assert "'blue' as color blue" in human.stderr
    assert "colour blue: ranked higher, not a filter" in human.stderr
    table = _table(human.stdout)
    assert "red0" in [r.group(4) for r in table]
    assert [int(r.group(1)) for r in table] == list(range(1, len(table) + 1))
    for r in table:
        assert int(r.group(2)) <= (100 if r.group(3) == "exact" else 99)
    by_id = {h["id"]: h for h in found["results"]}
    for r in table:  # the shown percentage is the hit's confidence
        assert abs(int(r.group(2)) - by_id[r.group(4)]["confidence"] * 100) <= 1

    similar = run("similar", "-c", c, "blue3", "--limit", "5", "--offset", "2")
    table = _table(similar.stdout)
    assert [int(r.group(1)) for r in table] == [3, 4, 5, 6, 7]
    assert all(int(r.group(2)) <= 99 for r in table)
    more = json.loads(run("similar", "-c", c, "blue3", "--limit", "5", "--json").stdout)
    assert all({"image", "text"} <= set(h["matched_by"]) for h in more["results"])

def test_reembed_failures_are_listed_and_exit_1(tmp_path):
    folder, c = tmp_path / "photos", tmp_path / "c"
    folder.mkdir()
    for i in range(3):
        (folder / f"p{i}.jpg").write_bytes(gen.jpeg_bytes(40 + i))
    run("index", folder, "-c", c, "--quiet")
    damaged = folder / "p1.jpg"
    stat = damaged.stat()
    damaged.write_bytes(b"\0" * stat.st_size)  # same size and time: the folder looks unchanged
    os.utime(damaged, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    out = run("index", folder, "-c", c, "--image-encoder", "fake", "--reembed", "--json",
              check=1)
    report = json.loads(out.stdout)
    assert [f["source"] for f in report["failed"]] == [str(damaged)]
    assert report["unchanged"] == 3
    assert "re-encoded 2 item(s)" in out.stderr and "1 failed" in out.stderr
    info = json.loads(run("info", "-c", c, "--json").stdout)
    assert info["without_vector"] == {"image": 1}

def test_undecodable_file_names_index_and_add(tmp_path):
    photos = tmp_path / "photos"
    gen.write_image(photos / "plain.jpg", 1)
    latin = os.path.join(os.fsencode(photos), b"caf\xe9 terrace.jpg")
    with open(latin, "wb") as handle:
        handle.write(gen.jpeg_bytes(2))
    collection = tmp_path / "c"
    first = run("index", photos, "-c", collection, "--json", "-q")
    report = json.loads(first.stdout)
    assert (report["added"], report["failed"]) == (2, [])
    again = json.loads(run("index", photos, "-c", collection, "--json", "-q").stdout)
    assert (again["added"], again["unchanged"]) == (0, 2)
    added = run("add", os.fsdecode(latin), "-c", collection, "--json")
    assert json.loads(added.stdout)["id"].endswith("caf\\xe9 terrace.jpg")


def test_a_folder_of_small_icons_and_other_files_indexes_with_exit_0(tmp_path):
    photos = tmp_path / "photos"
    gen.write_image(photos / "photo.jpg", 1)
    (photos / "icon.png").write_bytes(gen.png_bytes(2, (120, 31)))
    for n in range(3):
        (photos / f"drawing{n}.svg").write_bytes(gen.svg_bytes())
    (photos / "clip.mp4").write_bytes(b"\x00" * 16)
    first = run("index", photos, "-c", tmp_path / "c")  # exit 0: nothing failed
    assert "skipped: " in first.stderr and "icon.png: too small (120x31" in first.stderr
    assert "3 .svg files skipped: vector images and documents are not supported" in first.stderr
    assert "1 .mp4 file skipped: videos are not indexed" in first.stderr
    assert "added 1," in first.stderr and "skipped 5," in first.stderr
    again = run("index", photos, "-c", tmp_path / "c", "--json")  # re-runs stay at 0 too
    assert json.loads(again.stdout)["unchanged"] == 1


def test_indexing_a_single_image_file_adds_it(tmp_path):
    photos = tmp_path / "photos"
    gen.write_image(photos / "beach day.jpg", 4)
    gen.write_image(photos / "other.jpg", 5)
    report = json.loads(run("index", photos / "beach day.jpg", "-c", tmp_path / "c",
                            "--json").stdout)
    assert report["added"] == 1
    hit = json.loads(run("search", "-c", tmp_path / "c", "--image", photos / "beach day.jpg",
                         "--json").stdout)["results"][0]
    assert hit["id"] == "beach day.jpg" and hit["title"] == "beach day"
    again = json.loads(run("index", photos / "beach day.jpg", "-c", tmp_path / "c",
                           "--json").stdout)
    assert again["unchanged"] == 1 and again["added"] == 0


def test_catalog_failures_name_the_row_and_the_id(tmp_path):
    (tmp_path / "img").mkdir()
    (tmp_path / "img" / "ok.jpg").write_bytes(gen.jpeg_bytes(1))
    (tmp_path / "img" / "broken.jpg").write_bytes(gen.truncated_jpeg())
    (tmp_path / "shop.csv").write_text("id,image,price\nSKU1,img/ok.jpg,3\n"
                                       "SKU2,img/broken.jpg,4\nSKU3,img/ok.jpg,cheap\n")
    proc = run("index", tmp_path / "shop.csv", "-c", tmp_path / "c", check=1)
    lines = [line for line in proc.stderr.splitlines() if line.startswith("failed:")]
    assert any(line.startswith("failed: shop.csv row 2 (id SKU2): ") and "broken.jpg" in line
               for line in lines), lines
    assert any(line.startswith("failed: shop.csv row 3 (id SKU3): ") for line in lines), lines
    assert all(line.count("broken.jpg") <= 1 and line.count("SKU3") <= 1 for line in lines)


def test_format_paths_prints_image_paths_for_piping(tmp_path):
    photos = tmp_path / "photos"
    for seed in range(4):
        gen.write_image(photos / f"p{seed}.jpg", seed)
    run("index", photos, "-c", tmp_path / "c")
    out = run("search", "-c", tmp_path / "c", "--image", photos / "p2.jpg", "--format",
              "paths", "--min-confidence", "0", "--limit", "3").stdout.splitlines()
    assert out[0] == str((photos / "p2.jpg").resolve()) and len(out) == 3
    assert all(Path(line).is_absolute() and Path(line).is_file() for line in out)
    similar = run("similar", "p1.jpg", "-c", tmp_path / "c", "-f", "paths").stdout
    assert str((photos / "p1.jpg").resolve()) not in similar and similar.strip()
    bad = run("search", "-c", tmp_path / "c", "--image", photos / "p2.jpg", "--format", "csv",
              check=2)
    assert "--format must be one of table, paths" in bad.stderr
    browsed = run("search", "-c", tmp_path / "c").stdout.splitlines()
    assert browsed[0].split() == ["#", "id", "title", "/", "category"]  # no confidence
