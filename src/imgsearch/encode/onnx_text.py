"""A sentence-transformers text model run by ONNX Runtime, without importing torch.

The graph is exported once from the very weights the torch path loads (``onnx_export``)
and kept in a cache directory as ``model-<crc>.onnx`` beside ``model.json``, which
records the file's CRC-32 and a fingerprint of the source (weight and tokenizer files'
names, sizes and modification times, the sequence length, the export format and the
ONNX Runtime version, since the graph is saved as that version optimizes it). Each open
checks both; a file that does not match its checksum, or was made from other weights, is
exported again. CRC-32 rather than SHA-256: it finds damage as surely and costs a quarter
of the time on each start (the check guards against corruption, not tampering). The
checksum is taken over the file memory-mapped, and ONNX Runtime then opens the file by
its path: handing it the 90 MB as bytes cost a copy more (about 80 ms of a one-shot
query) and gives the same session. Texts are tokenized with the ``tokenizers`` package
directly.

The vectors are those of the torch path (tests hold them to 1e-4; they differ by about
1e-7), so a collection embedded by either path is searched by the other without
re-embedding: the runtime is not part of the vector space's model id.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import mmap
import os
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from imgsearch.encode.onnx_inputs import OUTPUT, encode_batch
from imgsearch.errors import ModelUnavailableError

EXPORT_FORMAT = 1  # raise when the exported graph changes, so old exports are redone
META = "model.json"
_log = logging.getLogger("imgsearch.encode.onnx")
_WEIGHTS = ("model.safetensors", "pytorch_model.bin")
_SOURCE_FILES = ("config.json", "tokenizer.json", "sentence_bert_config.json",
                 "modules.json", "1_Pooling/config.json")


@dataclass(frozen=True)
class SentenceModelFiles:
    """What the ONNX path needs to know about a sentence-transformers model directory."""

    directory: Path
    weights: Path
    max_seq_length: int
    dim: int


def describe_source(directory: Path) -> SentenceModelFiles:
    """Check ``directory`` holds a model the ONNX path reproduces exactly: a transformer
    followed by mean pooling (and optionally normalisation), with a fast tokenizer."""
    def read(name: str) -> Any:
        try:
            return json.loads((directory / name).read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise ModelUnavailableError(f"{directory / name} cannot be read ({exc})") from None

    weights = next((directory / w for w in _WEIGHTS if (directory / w).is_file()), None)
    if weights is None or not (directory / "tokenizer.json").is_file():
        raise ModelUnavailableError(f"{directory} has no weights file or no tokenizer.json")
    kinds = [m.get("type", "").rsplit(".", 1)[-1] for m in read("modules.json")]
    if kinds not in (["Transformer", "Pooling"], ["Transformer", "Pooling", "Normalize"]):
        raise ModelUnavailableError(f"{directory} is made of {kinds}, not a transformer "
                                    "with pooling")
    pooling = read("1_Pooling/config.json")
    modes = [k for k, v in pooling.items() if k.startswith("pooling_mode") and v]
    if modes != ["pooling_mode_mean_tokens"]:
        raise ModelUnavailableError(f"{directory} pools by {modes}, not by mean")
    config = read("config.json")
    length = read("sentence_bert_config.json").get("max_seq_length") \
        if (directory / "sentence_bert_config.json").is_file() else None
    if not isinstance(length, int) or length < 1:
        raise ModelUnavailableError(f"{directory} does not state its max_seq_length")
    return SentenceModelFiles(directory, weights, length, int(config["hidden_size"]))


def fingerprint(files: SentenceModelFiles, runtime_version: str) -> str:
    """Changes when the weights, tokenizer or configuration files change, or the export."""
    parts: list[Any] = [EXPORT_FORMAT, runtime_version, files.max_seq_length]
    for path in (files.weights, *(files.directory / n for n in _SOURCE_FILES)):
        with contextlib.suppress(FileNotFoundError):
            st = path.stat()
            parts.append([path.name, st.st_size, st.st_mtime_ns])
    return hashlib.sha256(json.dumps(parts).encode()).hexdigest()


def cache_dirs(configured: str, home: Path, files: SentenceModelFiles, model_id: str
               ) -> list[Path]:
    """Where the export may live, in order: the configured directory (when set), else the
    user cache directory, then next to the weights."""
    safe = "".join(c if c.isalnum() or c in "-_." else "-" for c in model_id)
    where = hashlib.sha256(str(files.directory.resolve()).encode()).hexdigest()[:8]
    leaf = Path("onnx") / f"{safe}-{where}"
    if configured:
        return [Path(configured).expanduser() / leaf]
    return [home / ".cache" / "imgsearch" / leaf, files.directory / "onnx"]


def read_cached(directory: Path, wanted: str) -> Path | None:
    """The cached graph's file when its checksum and source fingerprint match, else
    None (with the reason logged when there was a file that did not)."""
    try:
        meta = json.loads((directory / META).read_text(encoding="utf-8"))
        name, digest = str(meta["file"]), int(meta["crc32"])
        if meta.get("fingerprint") != wanted:
            _log.info("the ONNX text model in %s was made from other weights; exporting "
                      "it again", directory)
            return None
        graph = directory / Path(name).name
        found = _crc32_of(graph)
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if found != digest:
        _log.warning("the ONNX text model %s does not match its checksum; exporting it "
                     "again", directory / name)
        return None
    return graph


def _crc32_of(path: Path) -> int:
    """The CRC-32 of the file, read through a memory map (no copy of its bytes)."""
    with open(path, "rb") as handle:
        if os.fstat(handle.fileno()).st_size == 0:
            return zlib.crc32(b"")
        with mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as mapped:
            return zlib.crc32(mapped)


@contextlib.contextmanager
def _exclusive(directory: Path) -> Iterator[None]:
    """One exporting process per cache directory; the others wait, then read its result."""
    with open(directory / ".lock", "a+b") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def load_or_export(files: SentenceModelFiles, directories: Sequence[Path], tokenizer: Any,
                   runtime_version: str) -> tuple[Path, Path]:
    """The checked graph's file and the directory it lies in, exporting when none of
    ``directories`` holds a good one (into the first that can be written)."""
    wanted = fingerprint(files, runtime_version)
    for directory in directories:
        graph = read_cached(directory, wanted)
        if graph is not None:
            return graph, directory
    problems = []
    for directory in directories:
        try:
            directory.mkdir(parents=True, exist_ok=True)
            with _exclusive(directory):
                graph = read_cached(directory, wanted)  # another process may have done it
                if graph is None:
                    graph = _export_into(files, directory, wanted, tokenizer)
            return graph, directory
        except OSError as exc:
            problems.append(f"{directory}: {exc.strerror or exc}")
    raise ModelUnavailableError("no directory to keep the ONNX text model in: "
                                + "; ".join(problems))


def _export_into(files: SentenceModelFiles, directory: Path, wanted: str, tokenizer: Any
                 ) -> Path:
    from imgsearch.encode.onnx_export import export_sentence_model

    scratch = directory / f".export-{os.getpid()}.onnx"
    try:
        export_sentence_model(files.directory, scratch, tokenizer)
        blob = scratch.read_bytes()
        digest = zlib.crc32(blob)
        name = f"model-{digest:08x}.onnx"
        os.replace(scratch, directory / name)
    finally:
        with contextlib.suppress(FileNotFoundError):
            scratch.unlink()
    meta = {"file": name, "crc32": digest, "fingerprint": wanted,
            "source": str(files.directory), "export_format": EXPORT_FORMAT}
    staged = directory / f".{META}.{os.getpid()}"
    staged.write_text(json.dumps(meta, indent=1), encoding="utf-8")
    os.replace(staged, directory / META)  # the new graph counts from here on
    for old in directory.glob("model-*.onnx"):
        if old.name != name:
            with contextlib.suppress(OSError):
                old.unlink()
    _log.info("exported the text model %s to ONNX in %s", files.directory, directory)
    return directory / name


def open_tokenizer(files: SentenceModelFiles) -> Any:
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(files.directory / "tokenizer.json"))
    # as sentence-transformers tokenizes: cut at max_seq_length, pad to the longest text
    tokenizer.enable_truncation(max_length=files.max_seq_length)
    tokenizer.enable_padding(pad_id=tokenizer.token_to_id("[PAD]") or 0, pad_token="[PAD]")
    return tokenizer


class OnnxSentenceModel:
    """Mean-pooled sentence vectors (not normalised) from an ONNX Runtime session."""

    dim: int

    def __init__(self, files: SentenceModelFiles, directories: Sequence[Path],
                 threads: int) -> None:
        try:
            import onnxruntime
        except ImportError as exc:
            raise ModelUnavailableError("onnxruntime is not installed") from exc
        self.files = files
        self.dim = files.dim
        self._tokenizer = open_tokenizer(files)
        options = onnxruntime.SessionOptions()
        # saved already optimized (onnx_export): doing it again costs time and changes nothing
        options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_DISABLE_ALL
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        # Idle pool threads sleep rather than spin: during ingest they share the cores
        # with the decode workers, and spinning took CPU from them for nothing.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        options.log_severity_level = 3  # errors only: the library never writes to the terminal
        for attempt in (1, 2):
            graph, self.cache_dir = load_or_export(files, directories, self._tokenizer,
                                                   onnxruntime.__version__)
            try:
                self._session = onnxruntime.InferenceSession(
                    str(graph), options, providers=["CPUExecutionProvider"])
                break
            except Exception:
                # another process re-exported it between the check and the open (its
                # old file is removed then): check and open the new one
                if attempt == 2 or graph.exists():
                    raise

    def embed(self, texts: Sequence[str]) -> NDArray[np.float32]:
        out = self._session.run([OUTPUT], encode_batch(self._tokenizer, list(texts)))[0]
        return np.asarray(out, dtype=np.float32)
