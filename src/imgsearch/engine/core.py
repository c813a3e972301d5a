"""The Engine facade: the composition root. The CLI and the web app talk only to it.

    engine = Engine.open("./shop")
    report = engine.ingest("products.csv")
    result = engine.search(Query(text="red shoes", limit=10))
    engine.close()

A collection is a directory: ``catalog.sqlite3`` (the source of truth), one FAISS index
per vector space under ``indexes/``, ``thumbnails/`` and ``manifest.json``. One process
writes at a time (an OS lock on the collection directory, released when the process
ends however it ends); inside it a readers–writer lock lets searches run concurrently
while each write is applied whole. On read-only storage a collection opens read-only:
no lock, no log, no index saves.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from imgsearch.config import Settings
from imgsearch.encode.base import Encoder
from imgsearch.engine import maintenance, overview
from imgsearch.engine import reembed as reembedding
from imgsearch.engine.maintenance import HealthReport
from imgsearch.engine.opening import Collaborators, Opened, open_collection
from imgsearch.engine.pipeline import Prepared, Preparer
from imgsearch.engine.writer import ProgressCallback
from imgsearch.errors import ImgSearchError, ItemNotFoundError
from imgsearch.ingest.decode import DecodedImage
from imgsearch.search.dedup import Duplicate, duplicate_groups, item_duplicates
from imgsearch.search.understand import Vocabulary
from imgsearch.store.catalog import WriteResult
from imgsearch.types import ImageInput, IngestReport, Item, Query, SearchResult


class Engine:
    """One collection, opened: each method hands its work to a collaborator built by
    ``opening.collaborators`` (the indexes, the writer, the query encoder, the searcher,
    what is derived from the collection) or to the module that does it."""

    def __init__(self, opened: Opened, parts: Collaborators) -> None:
        self.directory = opened.directory
        self.catalog = opened.catalog
        self.manifest = opened.manifest
        self.readonly = opened.readonly
        self._opened, self._parts = opened, parts  # closed at the end
        self.open_notes = opened.notes
        # what re-encoding items for a new encoder did, when opening did that
        self.reembed_report: IngestReport | None = None
        self._closed = False
        self.fetcher = parts.fetcher
        self.logs = parts.logs
        self.embedding_cache = parts.embedding_cache
        self.result_cache = parts.result_cache
        self.shared_cache = parts.shared_cache
        self.derived = parts.derived
        self.query_encoder = parts.query_encoder
        self.indexes = parts.indexes
        self.writer = parts.writer
        self.spaces = self.indexes.spaces
        self.calibrations = self.indexes.calibrations
        self.lock = self.indexes.lock
        self.searcher = parts.searcher  # ranks queries (search.searcher)

    @property
    def settings(self) -> Settings:
        return self.searcher.settings

    @settings.setter
    def settings(self, settings: Settings) -> None:
        """New settings for the next queries (tuning ranking weights replaces them)."""
        self.searcher.settings = settings

    @property
    def write_version(self) -> int:
        """Counts writes (and journal entries taken in): what was made before is stale."""
        return self.derived.write_version

    # -- opening, checking, repairing, backing up ----------------------------------
    @classmethod
    def open(cls, path: str | Path, settings: Settings | None = None, *,
             image_encoder: str | None = None, text_encoder: str | None = None,
             create: bool = True, readonly: bool = False, reembed: bool = False) -> Engine:
        """Open (or create) the collection at ``path``.

        ``image_encoder``/``text_encoder`` default to what the collection was built with
        (or the settings' defaults for a new one); naming others is refused with
        EncoderMismatchError unless ``reembed`` is set, which re-encodes every item.
        """
        return open_collection(cls, path, settings, image_encoder=image_encoder,
                               text_encoder=text_encoder, create=create, readonly=readonly,
                               reembed=reembed)

    @staticmethod
    def check(path: str | Path, *, quick: bool = False) -> HealthReport:
        """What is damaged in the collection at ``path``, changing nothing (it may be in
        use): the catalog's integrity, manifest, indexes, thumbnails and search log."""
        return maintenance.check_collection(Path(path), quick=quick)

    @staticmethod
    def repair(path: str | Path, settings: Settings | None = None) -> HealthReport:
        """Rebuild indexes and manifest from the catalog, set a damaged search log aside,
        remove unused thumbnails; then check again. Takes the writer lock."""
        return maintenance.repair_collection(
            Path(path), lambda: Engine.open(path, settings or Settings(), create=False))

    @staticmethod
    def backup(path: str | Path, destination: str | Path) -> dict[str, Any]:
        """A consistent copy of the collection (SQLite's backup API) in ``destination``,
        even while another process writes; restoring is copying it back."""
        return maintenance.backup_collection(Path(path), Path(destination))

    # -- encoders --------------------------------------------------------------------
    def encoder(self, space: str) -> Encoder:
        return self.query_encoder.encoder(space)

    def embed_query_text(self, space: str, text: str) -> NDArray[np.float32]:
        """A query text's vector in ``space`` ("text", or "image" for CLIP), cached and,
        under concurrent load, encoded in micro-batches."""
        return self.query_encoder.embed_query_text(space, text)

    def embed_query_image(self, value: ImageInput) -> NDArray[np.float32]:
        """A query image's vector, cached by the hash of its content."""
        return self.query_encoder.embed_query_image(value)

    def look_at(self, value: ImageInput) -> tuple[DecodedImage, NDArray[np.float32]]:
        """A query image as decoded (its pixels serve verification) and its vector."""
        return self.query_encoder.look_at(value)

    def text_encoder(self) -> Encoder | None:
        return self.query_encoder.text_encoder()

    @property
    def preparer(self) -> Preparer:
        return self.query_encoder.preparer

    # -- writes ----------------------------------------------------------------------
    def commit(self, prepared: list[Prepared]) -> list[WriteResult]:
        """Write prepared items durably, then make them searchable. Returns per item."""
        return self.writer.commit(prepared)

    def upsert(self, item: Item, image: ImageInput | None = None) -> str:
        """Add or replace one item; returns "added" or "updated" once it is durable."""
        outcome = self.upsert_many([(item, image)])[0]
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome

    def upsert_many(self, entries: Sequence[tuple[Item, ImageInput | None]]
                    ) -> list[str | ImgSearchError | OSError]:
        """The one write path of items given with their images (the CLI's ``add``, the
        item routes, the batch route): per entry, in order, "added" or "updated" once
        durable, or the error that kept it out (see ``Writer.upsert_many``)."""
        return self.writer.upsert_many(entries)

    def delete(self, item_id: str) -> bool:
        """Remove an item; False when there was none. Durable when it returns."""
        return bool(self.delete_many([item_id]))

    def delete_many(self, ids: Iterable[str]) -> int:
        return self.writer.delete_many(ids)

    def ingest(self, source: str | Path, *, progress: ProgressCallback | None = None,
               on_commit: Callable[[list[str]], None] | None = None) -> IngestReport:
        """Index a folder, a catalog file (CSV/JSONL/Parquet) or a URL list (.txt)."""
        from imgsearch.engine.ingest import run_ingest

        self.writer.require_writable()
        return run_ingest(self, Path(source), progress=progress, on_commit=on_commit)

    def ingest_items(self, items: Iterable[tuple[Item, ImageInput | None]], *,
                     total: int | None = None, progress: ProgressCallback | None = None,
                     on_commit: Callable[[list[str]], None] | None = None,
                     report: IngestReport | None = None) -> IngestReport:
        """Prepare and commit items in batches; failures are recorded, never fatal."""
        return self.writer.ingest_items(items, total=total, progress=progress,
                                        on_commit=on_commit, report=report)

    def reembed(self, spaces: list[str] | None = None,
                progress: ProgressCallback | None = None) -> IngestReport:
        """Re-encode items from their image reference or kept original, and their
        metadata: with ``spaces``, those lacking a vector there; without, every item."""
        self.writer.require_writable()
        if spaces is not None:
            return reembedding.run(self, spaces, progress)
        return reembedding.run_all(self, progress)

    def save(self) -> None:
        """Snapshot indexes (atomically) and prune the journal they no longer need."""
        self.indexes.save()

    # -- reads -----------------------------------------------------------------------
    def refresh(self) -> bool:
        """Take in what another process committed; True if anything (``Indexes.refresh``)."""
        return self.indexes.refresh()

    def get(self, item_id: str) -> Item:
        self.refresh()
        item = self.catalog.get(item_id)
        if item is None:
            raise ItemNotFoundError(item_id)
        return item

    def facets(self, limit: int = 200) -> dict[str, Any]:
        """Values a search form offers: categories and brands (most common first, with
        counts), the colour names with their swatch hex, and the places photos were
        taken: countries with their cities, most photos first."""
        self.refresh()
        return overview.facets(self.catalog, limit)

    def known_values(self, column: str) -> tuple[list[str], frozenset[str]]:
        """Every distinct category or brand (as first written), most common first, and
        the same values trimmed and case-folded; read once until the next write."""
        return self.derived.known_values(column)

    def vocabulary(self) -> Vocabulary:
        """Brand and category values for query understanding; refreshed after writes."""
        return self.derived.vocabulary()

    def record_click(self, search_id: str, item_id: str, position: int | None = None) -> None:
        """Feedback: a result of a logged search was clicked (durable when it returns)."""
        overview.record_click(self.logs, search_id, item_id, position)

    def report(self, since: float | None = None) -> dict[str, Any]:
        """CTR, MRR of clicks, zero-result rate and latency percentiles per query type."""
        return overview.search_report(self.logs, self.directory, self.catalog, since)

    def hamming_index(self) -> Any:
        """A binary index over every item's perceptual hash; rebuilt after writes."""
        return self.searcher.hamming_index()

    def duplicates(self, item_id: str) -> list[Duplicate]:
        """The near-duplicates of one item, strongest first (the item excluded)."""
        self.refresh()
        return item_duplicates(self.searcher, item_id)

    def duplicate_groups(self, min_tier: str = "variant") -> list[dict[str, Any]]:
        """Every group of near-duplicates at ``min_tier`` (exact, near-exact, variant)."""
        self.refresh()
        return duplicate_groups(self.searcher, min_tier)

    def __contains__(self, item_id: str) -> bool:
        return self.catalog.key_of(item_id) is not None

    def search(self, query: Query) -> SearchResult:
        self.refresh()
        return self.searcher.search(query)

    def warm(self, wait: bool = True) -> None:
        """Read into memory now what searches would otherwise read on their first runs:
        the fields of every result page (up to ``hit_cache_mb``), every perceptual hash,
        the filter columns (about a second each per million items), each space's index
        file when its open was put off to a first search, and, into the page cache, the
        vector files that re-scoring reads, on threads of their own. With ``wait``, return
        when that is done (before timing searches); without, at once (a server about to
        take requests)."""
        self.refresh()
        self.catalog.warm(wait, self.indexes.warm(wait))

    def similar(self, item_id: str, limit: int = 10, **kwargs: Any) -> Any:
        return self.search(Query(similar_to=item_id, limit=limit, **kwargs))

    def upgrade(self) -> dict[str, Any]:
        """Bring the collection's storage up to date (see ``Writer.upgrade``)."""
        return self.writer.upgrade()

    def compact(self) -> dict[str, Any]:
        """Compact every vector file with dead rows now (see ``Writer.compact``)."""
        return self.writer.compact()

    def info(self) -> dict[str, Any]:
        self.refresh()
        return overview.info(self.directory, self.catalog, self.spaces)

    def close(self) -> None:
        """Snapshot the indexes and release the collection; calling it again does nothing."""
        if self._closed:
            return
        self._closed = True
        try:
            self.indexes.save_if_room()
        finally:
            self._parts.close()
            self._opened.close()

    def __enter__(self) -> Engine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


__all__ = ["Engine"]
