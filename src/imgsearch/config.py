"""One ``Settings`` object, built at the edges (CLI, app factory) and passed down.

Every field can be set from the environment as ``IMGSEARCH_<FIELD>`` (upper case),
through :meth:`Settings.from_env`, which the edges call with ``os.environ``. No other
module reads the environment.

The CLI also reads TOML configuration files (:func:`layered`): a user file and a file
inside the collection, each a flat table of ``field = value``. What sets a field, from
strongest to weakest: a command-line flag, the environment, the collection's file, the
user's file, the default.
"""

from __future__ import annotations

import dataclasses
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from imgsearch.errors import InvalidInputError

ENV_PREFIX = "IMGSEARCH_"
COLLECTION_CONFIG = "imgsearch.toml"  # inside a collection's directory


# settings that take one of a few words, checked when Settings is made
CHOICES: dict[str, tuple[str, ...]] = {
    "minilm_runtime": ("auto", "onnx", "torch"),
    "fusion": ("rrf", "weighted"),
    "multi_image": ("average", "rrf"),
    "parsed_colors": ("boost", "filter"),
    "index_type": ("auto", "flat", "hnsw", "hnsw_sq8", "ivfpq"),
    "ocr_engine": ("rapidocr", "tesseract"),
    "vector_dtype": ("float32", "float16"),
}
_ANY_CASE = ("index_type",)  # read as lower case where it is used


@dataclass(frozen=True)
class Settings:
    # encoders
    image_encoder: str = "descriptor"
    text_encoder: str = "minilm"
    clip_model: str = "openai/clip-vit-base-patch32"
    minilm_model: str = "sentence-transformers/all-MiniLM-L6-v2"
    encode_batch_size: int = 32
    torch_threads: int = 0  # 0: half the machine's cores (at least 1, at most 8)
    # minilm through ONNX Runtime (same vectors, starts in a fraction of the time) or torch;
    # auto: ONNX Runtime when it is installed, else torch
    minilm_runtime: str = "auto"
    # where exported models are kept; empty: ~/.cache/imgsearch, else next to the weights
    model_cache_dir: str = ""
    device: str = "cpu"

    # downloads
    allow_private_urls: bool = False
    # ports URLs may name: single ports are allowed as given; within a range, the ports of
    # well-known services (SSH, SMTP, databases, ...; ingest.fetch.SERVICE_PORTS) are not
    url_ports: str = "80,443,8080,8443,1024-65535"
    max_download_bytes: int = 10 * 1024 * 1024
    download_timeout_s: float = 20.0
    download_retries: int = 3
    download_concurrency: int = 16

    # decoding
    max_pixels: int = 64_000_000
    min_side: int = 32
    max_file_bytes: int = 50 * 1024 * 1024
    thumbnail_size: int = 512  # also what copies are verified against (search/verify.py)
    # images added from bytes (uploads, not paths or URLs) are kept in the collection up to
    # this size each, so that a change of encoder can re-encode them; 0 keeps none
    original_max_bytes: int = 20 * 1024 * 1024

    # ingest
    ingest_batch_size: int = 64
    ingest_workers: int = 0  # 0: one per core
    # decode (and derive pHash, colours, thumbnail) in worker processes, ingest_workers of
    # them shared by the process: a decode that passes decode_timeout_s is stopped by
    # killing its worker. Off: decode on threads in this process (no deadline)
    decode_processes: bool = True
    decode_timeout_s: float = 10.0

    # index
    index_type: str = "auto"  # auto | flat | hnsw | hnsw_sq8 | ivfpq
    # memory the vector indexes may hold (MB, all spaces together; 0: no limit): auto
    # picks the most accurate kind whose estimated resident size fits (index/auto.py)
    memory_budget_mb: int = 0
    # how the vector files store numbers: float32 keeps re-scoring exact; float16 halves
    # the files (scores then differ by up to ~1e-3). New files only; compaction converts.
    vector_dtype: str = "float32"
    # Exact search up to 10k vectors (under a millisecond there); past it HNSW answers a
    # page in ~0.1 ms at recall@10 >= 0.99 while exact grows linearly (bench/crossover.py).
    flat_max: int = 10_000
    hnsw_max: int = 2_000_000
    hnsw_m: int = 32
    hnsw_ef_construction: int = 80
    # 1M clustered vectors: recall@10 0.949 at 96, 0.959 at 128 for +0.05 ms, 0.970 at 192
    # (bench/peers.py curves): 128 is the cheapest with a margin over 0.95.
    hnsw_ef_search: int = 128
    # 10M clustered vectors in 2,000 lists, fast-scan codes: nprobe 32 with 1,600 exact
    # re-scores gave recall@10 0.955 / 0.946 (by vector / by id) at 6.8 / 7.0 ms p50,
    # nprobe 64 with 1,280 gave 0.974 / 0.960 at 6.9 / 7.1 ms: the scan of twice the
    # lists costs less than the row reads it saves (bench/tenmillion.py, BENCHMARKS.md).
    ivf_nprobe: int = 64
    # Candidates a compressed index hands to exact re-scoring: k · this (960 for the
    # engine's 64-result block), or more (index/auto.rescore_depth). 1M clustered vectors,
    # IVF-PQ fast-scan in 4,000 lists, nprobe 64: 640 gave recall@10 0.953 / 0.952 (by
    # vector / by id), 960 gave 0.976 / 0.971 for +0.6 ms p50 (bench/tenmillion.py build).
    pq_rescore_factor: int = 15
    compact_tombstone_ratio: float = 0.2
    search_threads: int = 1  # FAISS threads per search; builds use every core
    index_save_every: int = 50_000  # journal entries between index snapshots while writing

    # search
    default_limit: int = 10
    max_limit: int = 1000
    prefilter_max_fraction: float = 0.5
    exact_filter_max: int = 20_000

    # honest "no match": hits under this calibrated confidence (0..1) are dropped; 0 = off.
    # 0.5 = better than the best match chance alone would give (see search.calibration)
    min_confidence: float = 0.5

    # query-time encoding and caches
    micro_batch: bool = True  # gather concurrent query encodings into one model call
    micro_batch_max: int = 32
    micro_batch_wait_ms: float = 2.0
    embedding_cache_size: int = 10_000  # query embeddings kept, keyed by content
    result_cache_size: int = 1_000  # search results kept; any write empties it
    result_cache_ttl_s: float = 30.0
    row_cache_size: int = 50_000  # item rows kept in memory for result pages and dedup
    # the fields a result page shows, packed in memory for the whole catalog when it fits
    # (~80 MB a million items of short titles and paths; 0 turns it off)
    hit_cache_mb: int = 256
    filter_cache_size: int = 32  # filters whose passing items are kept until a write
    redis_url: str = ""  # optional cache shared by several processes, e.g. redis://host:6379/0

    # how the web page shows prices: a symbol ("€", "$") before, a code ("CHF") after
    currency: str = ""

    log_searches: bool = True  # search and click logs in the collection's logs.sqlite3

    # who may ask what over HTTP (web.security): the keys file (default
    # <collection>/api_keys.json), extra Host names (comma separated; the loopback names
    # and the listening address are always allowed), CORS origins (comma separated; none:
    # CORS off), and whether reads need a key too
    api_keys_file: str = ""
    allowed_hosts: str = ""
    cors_origins: str = ""
    require_read_key: bool = False

    # ranking: business signals (weights, off by default) and multi-image queries
    boost_popularity: float = 0.0
    boost_rating: float = 0.0
    boost_conversion: float = 0.0
    boost_freshness: float = 0.0
    freshness_half_life_days: float = 30.0
    multi_image: str = "average"  # average | rrf
    # colours understood in a query's text: "boost" ranks them higher by color_boost and
    # keeps the others; "filter" keeps only items of that colour. A word read from free
    # text is a guess ("in blue" next to a query image), so it must not empty a result;
    # an explicit colour filter (--color, Filters.colors) is always a filter.
    parsed_colors: str = "boost"
    color_boost: float = 0.25

    # "more like this item": weights of the lists fused (with ``fusion``) from the item's
    # image vector, its text vector and the items sharing its category or brand. Image and
    # text count alike, as the semantic lists of a text query do; category and brand are
    # soft signals (they add and lift candidates, never exclude), brand the weaker: a brand
    # spans unlike products. Chosen before measuring, not tuned (BENCHMARKS.md). 0: unused.
    similar_weight_image: float = 1.0
    similar_weight_text: float = 1.0
    similar_weight_category: float = 0.5
    similar_weight_brand: float = 0.25

    # relevance: how text queries combine keyword (BM25) and semantic signals
    fusion: str = "rrf"  # rrf | weighted
    rrf_k: int = 60
    # Keyword evidence is exact but sparse; semantic evidence is dense. The keyword list
    # gets a third of the semantic weight (the 0.25 / 0.75 split common in hybrid search);
    # equal weights did not beat minilm alone on the stamps benchmark (BENCHMARKS.md).
    weight_keyword: float = 0.333
    weight_text: float = 1.0
    weight_clip_text: float = 1.0
    # text feedback (search.feedback): the semantic query vector moves towards the text
    # vectors of the semantic list's first text_feedback_seeds hits, weighted by
    # softmax(similarity / text_feedback_temperature), by text_feedback_beta, and
    # re-scores that list. Then each item of that list is scored with its text neighbours
    # (smooth_text) and its look-alikes (smooth_image) among the list: its
    # smooth_neighbours nearest, in each space. 0: off. Chosen on both stamps catalogs
    # (BENCHMARKS.md).
    text_feedback_beta: float = 1.0
    text_feedback_seeds: int = 10
    text_feedback_temperature: float = 0.05
    smooth_text: float = 0.6
    smooth_image: float = 0.3
    smooth_neighbours: int = 5
    # concept expansion (search.concepts): the query's words also find the items named
    # by words for kinds of them, from WordNet's nouns (wordnet_dir; Debian's
    # wordnet-base; '' or missing: off): one more fused list of weight weight_concepts.
    # A word counts as a kind through its first concept_senses meanings, at most
    # concept_depth levels down; concept_compounds: the kinds of the compounds that hold
    # the query's word count too ("percussion" -> "percussion instrument" -> "drum").
    # The collection's vocabulary is read after writes up to
    # concept_vocabulary_max_items items.
    weight_concepts: float = 1.0
    concept_senses: int = 2
    concept_depth: int = 10
    concept_compounds: bool = True
    wordnet_dir: str = "/usr/share/wordnet"
    concept_vocabulary_max_items: int = 200_000
    # pictures as evidence for text queries (search.feedback): the items that look like
    # the text ranking's confident head join the fusion as one more list. Seeds: at most
    # feedback_seeds of the first hits whose text confidence reaches
    # feedback_min_confidence; the list holds at most feedback_depth items. 0: off.
    weight_visual_feedback: float = 0.0
    feedback_seeds: int = 5
    feedback_min_confidence: float = 0.5
    feedback_depth: int = 10
    # BM25 weight of each text field, in the order of the keyword index's columns
    # (ocr: text read from the pixels; album: the folders a photo is in; place: the city,
    # region and country its GPS position names)
    keyword_fields: str = ("title:3,description:1,tags:2,category:2,brand:2,colors:1,ocr:1,"
                           "album:2,place:2")

    # photos: text read from the pixels at ingest, by RapidOCR (PP-OCR models shipped in
    # its wheel) or Tesseract (the `tesseract` command). Off by default: RapidOCR costs
    # 0.4-0.8 s of CPU per image against a few ms for the rest of ingest (BENCHMARKS.md,
    # bench/ocr.py). Languages are Tesseract's codes joined by "+" ("eng+deu"), each
    # needing its tesseract-ocr-<code> package; RapidOCR reads English and Chinese.
    ocr: bool = False
    ocr_engine: str = "rapidocr"
    ocr_languages: str = "eng"
    ocr_timeout_s: float = 20.0  # per image; an image that takes longer gets no text
    ocr_max_pixels: int = 4_000_000  # larger images are scaled down to this before OCR

    def __post_init__(self) -> None:
        for name, allowed in CHOICES.items():
            value = getattr(self, name)
            given = value.strip().lower() if name in _ANY_CASE and isinstance(value, str) \
                else value
            if given not in allowed:
                raise InvalidInputError(
                    f"setting {name} {value!r} is not known (set by the environment "
                    f"{ENV_PREFIX}{name.upper()} or a configuration file); use one of: "
                    f"{', '.join(allowed)}")

        if not self.decode_timeout_s > 0:
            raise InvalidInputError(
                f"setting decode_timeout_s {self.decode_timeout_s!r} must be a number of "
                f"seconds above 0 (set by the environment {ENV_PREFIX}DECODE_TIMEOUT_S or a "
                "configuration file)")

    def keyword_weights(self) -> list[float]:
        order = ("title", "description", "tags", "category", "brand", "colors", "ocr",
                 "album", "place")
        given: dict[str, float] = {}
        for part in self.keyword_fields.split(","):
            name, _, value = part.partition(":")
            if name.strip() not in order:
                raise InvalidInputError(f"keyword_fields: unknown field {name.strip()!r}; "
                                        f"fields are {', '.join(order)}")
            try:
                given[name.strip()] = float(value)
            except ValueError:
                raise InvalidInputError(f"keyword_fields: {part!r} is not FIELD:WEIGHT") \
                    from None
        return [given.get(name, 1.0) for name in order]

    @classmethod
    def from_env(cls, environ: Mapping[str, str], **overrides: Any) -> Settings:
        """Build settings from ``IMGSEARCH_*`` variables, then apply explicit overrides."""
        values: dict[str, Any] = {}
        for f in fields(cls):
            raw = environ.get(ENV_PREFIX + f.name.upper())
            if raw is not None:
                values[f.name] = _parse(f.name, raw, type(getattr(cls(), f.name)))
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)

    def replace(self, **changes: Any) -> Settings:
        return dataclasses.replace(self, **changes)


def _parse(name: str, raw: str, kind: type) -> Any:
    try:
        if kind is bool:
            lowered = raw.strip().lower()
            if lowered in ("1", "true", "yes", "on"):
                return True
            if lowered in ("0", "false", "no", "off", ""):
                return False
            raise ValueError(raw)
        if kind is int:
            return int(raw)
        if kind is float:
            return float(raw)
        return raw
    except ValueError:
        raise InvalidInputError(
            f"{ENV_PREFIX}{name.upper()}={raw!r} is not a valid {kind.__name__}"
        ) from None


def user_config_path(environ: Mapping[str, str]) -> Path:
    """``$XDG_CONFIG_HOME/imgsearch/config.toml`` (``~/.config`` when unset)."""
    base = environ.get("XDG_CONFIG_HOME") or str(Path(environ.get("HOME", "~"),
                                                       ".config"))
    return Path(base).expanduser() / "imgsearch" / "config.toml"


def read_config_file(path: Path) -> dict[str, Any]:
    """The settings a TOML file sets ({} when there is no file), checked field by field."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (FileNotFoundError, NotADirectoryError):  # no file there: no layer
        return {}
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidInputError(f"cannot read configuration file {path}: {exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise InvalidInputError(f"configuration file {path} is not valid TOML: {exc}") \
            from None
    known = {f.name: type(getattr(Settings(), f.name)) for f in fields(Settings)}
    values: dict[str, Any] = {}
    for name, value in data.items():
        kind = known.get(name)
        if kind is None:
            raise InvalidInputError(f"configuration file {path}: unknown setting {name!r} "
                                    f"(`imgsearch config` lists them)")
        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            raise InvalidInputError(f"configuration file {path}: {name} must be a "
                                    f"{kind.__name__}, got {value!r}")
        values[name] = value
    return values


def layered(environ: Mapping[str, str], files: Sequence[Path] = (),
            **flags: Any) -> tuple[Settings, dict[str, str]]:
    """Settings from, weakest first: defaults, ``files`` in order, the environment,
    then ``flags`` (None means not given); with where each field's value came from."""
    values: dict[str, Any] = {}
    origin = {f.name: "default" for f in fields(Settings)}
    for path in files:
        for name, value in read_config_file(path).items():
            values[name], origin[name] = value, str(path)
    from_env = Settings.from_env(environ)
    for f in fields(Settings):
        if ENV_PREFIX + f.name.upper() in environ:
            values[f.name] = getattr(from_env, f.name)
            origin[f.name] = f"environment ({ENV_PREFIX}{f.name.upper()})"
    for name, value in flags.items():
        if value is not None:
            values[name], origin[name] = value, "command line"
    return Settings(**values), origin

