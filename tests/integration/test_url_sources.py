"""URL lists and catalogs with URL images, served from a loopback HTTP server."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from imagegen import jpeg_bytes
from imgsearch.config import Settings
from imgsearch.engine import Engine
from imgsearch.errors import BlockedURLError
from imgsearch.types import Query

IMAGES = {f"/img/{i}.jpg": jpeg_bytes(200 + i) for i in range(12)}


class _Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = IMAGES.get(self.path)
        if body is None:
            self.send_response(404)
            self.end_headers()
            return
        self.send_response(200)
        self.send_header("Content-Type", "image/jpeg")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


def test_url_list_is_downloaded_and_indexed(tmp_path: Path, server: str) -> None:
    urls = [server + path for path in IMAGES] + [server + "/img/missing.jpg"]
    listing = tmp_path / "urls.txt"
    listing.write_text("# product photos\n" + "\n".join(urls) + "\n")
    settings = Settings(text_encoder="fake", allow_private_urls=True, download_retries=0)
    with Engine.open(tmp_path / "c", settings) as engine:
        report = engine.ingest(listing)
        assert report.added == 12
        assert [f.source for f in report.failed] == [server + "/img/missing.jpg"]
        assert "404" in report.failed[0].reason
        hits = engine.search(Query(images=[server + "/img/3.jpg"], limit=1)).hits
        assert hits[0].id == server + "/img/3.jpg"
        # re-running the same list downloads nothing new
        assert engine.ingest(listing).unchanged == 12


def test_catalog_with_url_images(tmp_path: Path, server: str) -> None:
    catalog = tmp_path / "shop.jsonl"
    catalog.write_text("\n".join(
        f'{{"id": "P{i}", "image": "{server}/img/{i}.jpg", "title": "thing {i}", '
        f'"price": {i}}}' for i in range(5)) + "\n")
    settings = Settings(text_encoder="fake", allow_private_urls=True)
    with Engine.open(tmp_path / "c", settings) as engine:
        assert engine.ingest(catalog).added == 5
        assert engine.get("P2").price == 2.0


def test_private_urls_are_refused_by_default(tmp_path: Path, server: str) -> None:
    listing = tmp_path / "urls.txt"
    listing.write_text(f"{server}/img/1.jpg\nhttp://169.254.169.254/latest/meta-data\n")
    with Engine.open(tmp_path / "c", Settings(text_encoder="fake")) as engine:
        report = engine.ingest(listing)
        assert report.added == 0
        assert {f.code for f in report.failed} == {"blocked_url"}
        with pytest.raises(BlockedURLError):
            engine.search(Query(images=[f"{server}/img/1.jpg"]))
