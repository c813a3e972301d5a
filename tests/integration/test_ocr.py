"""Text read from the pixels (RapidOCR by default, or Tesseract) is stored, searchable
and says it matched."""

from __future__ import annotations

import re
import shutil
import sys
from pathlib import Path

import pytest
from PIL import Image, ImageDraw, ImageFont

from imagegen import picture
from imgsearch.config import Settings
from imgsearch.engine import Engine
from imgsearch.enrich import ocr, scene_text
from imgsearch.types import Query

try:
    import rapidocr_onnxruntime  # noqa: F401
    _NO_RAPIDOCR = None
except ImportError as exc:  # `make setup` installs it; a bare pip install may not have
    _NO_RAPIDOCR = str(exc)

needs_rapidocr = pytest.mark.skipif(
    _NO_RAPIDOCR is not None,
    reason=f"rapidocr-onnxruntime is not installed ({_NO_RAPIDOCR}; `make setup` installs "
           "it with --no-deps)")

needs_tesseract = pytest.mark.skipif(
    shutil.which("tesseract") is None,
    reason="the tesseract command is not installed (apt-get install tesseract-ocr "
           "tesseract-ocr-eng; `make test` does)")


def _sign(path: Path, words: str, seed: int) -> None:
    """A photo-like background with a sign of ``words`` on it."""
    image = picture(seed, (800, 450))
    draw = ImageDraw.Draw(image)
    draw.rectangle((20, 130, 780, 320), fill=(250, 250, 245))
    draw.text((110, 185), words, font=ImageFont.load_default(size=72), fill=(10, 10, 10))
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path, quality=92)


def _settings(**changes: object) -> Settings:
    return Settings(image_encoder="descriptor", text_encoder="fake", ingest_workers=2,
                    **changes)  # type: ignore[arg-type]


@pytest.mark.parametrize("engine_name", [
    pytest.param("rapidocr", marks=needs_rapidocr),
    pytest.param("tesseract", marks=needs_tesseract)])
def test_text_in_an_image_is_read_stored_and_found_by_keyword(tmp_path, engine_name):
    folder = tmp_path / "photos"
    _sign(folder / "a.jpg", "FRESH BREAD", 1)
    _sign(folder / "b.jpg", "PARKING ONLY", 2)
    picture(3, (800, 450)).save(folder / "c.jpg")
    with Engine.open(tmp_path / "c", _settings(ocr=True, ocr_engine=engine_name)) as engine:
        report = engine.ingest(folder)
        assert report.ok and report.added == 3
        assert "BREAD" in (engine.get("a.jpg").ocr_text or "")
        assert "PARKING" in (engine.get("b.jpg").ocr_text or "")
        hits = engine.search(Query(text="parking")).hits
        assert hits[0].id == "b.jpg"
        assert "ocr" in hits[0].matched_by
        # no text: at most a short fragment of noise, no word a query would name
        assert not re.findall(r"\w{3,}", engine.get("c.jpg").ocr_text or "")


@needs_tesseract
def test_ocr_off_reads_nothing(tmp_path):
    folder = tmp_path / "photos"
    _sign(folder / "a.jpg", "FRESH BREAD", 1)
    with Engine.open(tmp_path / "c", _settings()) as engine:
        engine.ingest(folder)
        assert engine.preparer.ocr is None
        assert engine.get("a.jpg").ocr_text is None


def test_without_tesseract_ingest_goes_on_and_says_why(tmp_path, monkeypatch):
    monkeypatch.setattr(ocr.shutil, "which", lambda name: None)
    folder = tmp_path / "photos"
    _sign(folder / "a.jpg", "FRESH BREAD", 1)
    with Engine.open(tmp_path / "c", _settings(ocr=True, ocr_engine="tesseract")) as engine:
        report = engine.ingest(folder)
        assert report.ok and report.added == 1
        notes = [s for s in report.skipped if s.code == "ocr_unavailable"]
        assert len(notes) == 1 and "tesseract" in notes[0].reason
        assert engine.get("a.jpg").ocr_text is None


@needs_tesseract
def test_a_missing_language_is_named():
    engine, why = ocr.find_ocr("eng+zzz", 5.0, 1_000_000, "tesseract")
    assert engine is None and why is not None and "zzz" in why


def test_only_confident_words_are_kept():
    tsv = ("level\tpage_num\tblock_num\tpar_num\tline_num\tword_num\tleft\ttop\twidth\t"
           "height\tconf\ttext\n"
           "5\t1\t1\t1\t1\t1\t0\t0\t10\t10\t95.0\tHELLO\n"
           "5\t1\t1\t1\t1\t2\t0\t0\t10\t10\t30.0\tnoise\n"
           "5\t1\t1\t1\t1\t3\t0\t0\t10\t10\t91.0\t—\n"
           "5\t1\t1\t1\t1\t4\t0\t0\t10\t10\t80.0\tAN\n"
           "5\t1\t1\t1\t1\t5\t0\t0\t10\t10\t99.0\t4\n"
           "5\t1\t1\t1\t2\t1\t0\t0\t10\t10\t88.5\tworld\n")
    assert ocr.words_from_tsv(tsv) == "HELLO\nworld"


def test_large_images_are_scaled_to_the_pixel_cap():
    scaled = ocr._scaled(Image.new("L", (4000, 3000)), 1_000_000)
    assert scaled.size[0] * scaled.size[1] <= 1_000_000
    assert abs(scaled.size[0] / scaled.size[1] - 4 / 3) < 0.01


def test_without_rapidocr_ingest_goes_on_and_says_why(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "rapidocr_onnxruntime", None)  # import fails
    folder = tmp_path / "photos"
    _sign(folder / "a.jpg", "FRESH BREAD", 1)
    with Engine.open(tmp_path / "c", _settings(ocr=True)) as engine:
        report = engine.ingest(folder)
        assert report.ok and report.added == 1
        notes = [s for s in report.skipped if s.code == "ocr_unavailable"]
        assert len(notes) == 1 and "rapidocr" in notes[0].reason
        assert engine.get("a.jpg").ocr_text is None


@needs_rapidocr
def test_rapidocr_reads_tilted_light_text_and_gives_up_when_time_runs_out(tmp_path):
    image = picture(4, (900, 500))
    layer = Image.new("RGBA", (700, 140))
    ImageDraw.Draw(layer).text((20, 20), "HARBOUR VIEW", font=ImageFont.load_default(
        size=80), fill=(250, 250, 250, 255), stroke_width=4, stroke_fill=(0, 0, 0, 255))
    layer = layer.rotate(8, expand=True)
    image.paste(layer, (60, 150), layer)
    reader, why = ocr.find_ocr("eng", 20.0, 4_000_000)
    assert reader is not None and why is None
    assert {"harbour", "view"} <= scene_text.words_in(reader.read(image))
    out_of_time, _ = ocr.find_ocr("eng", 0.0, 4_000_000)
    assert out_of_time is not None and out_of_time.read(image) is None


def test_words_run_together_are_split_and_kept_as_read():
    splits = {"GIANTSMERMAID": ["GIANTS", "MERMAID"], "Toonie": ["To", "on", "ie"]}

    def split(run: str) -> list[str]:
        return splits.get(run, [run])

    text = scene_text.words_of(["GIANTSMERMAID x", "Toonie", "Harbour", "!", ""], split)
    assert text == "GIANTS MERMAID GIANTSMERMAID\nTo on ie Toonie\nHarbour"
    assert scene_text.words_of(["- ;"], split) is None


def test_the_word_table_splits_english_runs_and_leaves_other_words_whole():
    wordninja = pytest.importorskip("wordninja", reason="wordninja is not installed")
    split = scene_text._splitter(wordninja)
    assert split("GIANTSMERMAID") == ["GIANTS", "MERMAID"]
    assert split("deprivethemof") == ["deprive", "them", "of"]
    assert split("seahorse") == ["seahorse"]  # a word of the table stays whole
    assert split("Wesnoth") == ["Wesnoth"]  # not "Wes no th"


@needs_rapidocr
def test_an_ocr_failure_loses_the_text_not_the_image(tmp_path, monkeypatch):
    def broken(*args: object, **kwargs: object) -> None:
        raise ValueError("a degenerate text box")

    reader, _ = ocr.find_ocr("eng", 20.0, 4_000_000)
    assert isinstance(reader, scene_text.RapidOcrReader)
    monkeypatch.setattr(reader.pipeline, "auto_text_det", broken)
    assert reader.read(picture(5, (320, 240))) is None
    # a sliver (RapidOCR's own resize raises on it) and a single pixel: no text, no error
    assert reader.read(Image.new("RGB", (4000, 32), "white")) is None
    assert reader.read(Image.new("RGB", (1, 1))) is None
