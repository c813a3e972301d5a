"""The ``imgsearch`` command line. It talks only to ``Engine``.

Results go to stdout (human-readable, or one JSON object with ``--json``); progress and
summaries go to stderr. Errors become exit codes in one place, ``_exit_code``; an
error nobody foresaw is one line (``--debug`` prints its traceback) and its own code.
"""

from __future__ import annotations

import dataclasses
import gc
import json
import os
import shutil
import sys
import time
import traceback
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from typer.main import get_command_name
from typer.models import CommandInfo

from imgsearch.config import COLLECTION_CONFIG, Settings, layered, user_config_path
from imgsearch.engine import items as item_fields
from imgsearch.engine.display import confidence_percent, expansions
from imgsearch.engine.requests import (
    SearchRequest,
    build_query,
    parse_boosts,
    read_indexes_ahead,
)
from imgsearch.errors import (
    CollectionError,
    EncoderError,
    ImageError,
    ImgSearchError,
    InvalidInputError,
    NotFoundError,
    PortInUseError,
    StorageFullError,
    storage_fault,
)
from imgsearch.types import (
    Filters,
    IngestFailure,
    IngestReport,
    Item,
    Progress,
    SearchHit,
    SearchResult,
)

if TYPE_CHECKING:  # the engine (faiss, numpy, models) loads only for a command that needs it
    from imgsearch.engine import Engine

# Help and usage errors in click's plain layout: typer's rich panels load rich and
# markdown-it, which doubled the time `imgsearch --help` took (BENCHMARKS.md).
_PLAIN: dict[str, Any] = {"rich_markup_mode": None, "pretty_exceptions_enable": False}
app = typer.Typer(add_completion=True, no_args_is_help=True, **_PLAIN,
                  help="Find images by image, text, both, several examples or item.")
# The errors click reports itself (usage, --help's exit), from the classes typer exports:
# typer 0.26 carries its own copy of click, earlier ones use the click package.
_CLICK_ERRORS: tuple[type[BaseException], ...] = (
    typer.Exit, typer.Abort,
    next(c for c in typer.BadParameter.__mro__ if c.__name__ == "ClickException"))

EXIT_OK, EXIT_PARTIAL, EXIT_USAGE, EXIT_NOT_FOUND, EXIT_COLLECTION, EXIT_MODEL, EXIT_ERROR = (
    0, 1, 2, 3, 4, 5, 6)
EXIT_STORAGE_FULL, EXIT_INTERNAL, EXIT_PORT_IN_USE = 7, 8, 9

CollectionOpt = Annotated[Path, typer.Option("--collection", "-c",
                                             help="Collection directory.")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON object.")]
ImageEncoderOpt = Annotated[str | None, typer.Option(
    "--image-encoder", help="descriptor (default, offline), clip or fake.")]
TextEncoderOpt = Annotated[str | None, typer.Option(
    "--text-encoder", help="minilm (default), clip, fake or none.")]
ClipModelOpt = Annotated[str | None, typer.Option(
    "--clip-model", help="CLIP hub id or local directory.")]


# options of the whole command line, set by _options for the command it runs
_OPTIONS = {"debug": False}


def _print_version(value: bool) -> None:
    if value:
        from imgsearch.version import __version__

        typer.echo(f"imgsearch {__version__}")
        raise typer.Exit(EXIT_OK)


@app.callback()
def _options(debug: Annotated[bool, typer.Option(
        "--debug", help="On an unexpected error, print its traceback.")] = False,
             version: Annotated[bool, typer.Option(
        "--version", callback=_print_version, is_eager=True,
        help="Print the version and exit.")] = False) -> None:
    _OPTIONS["debug"] = debug


def _debugging() -> bool:
    return _OPTIONS["debug"]


def _exit_code(exc: ImgSearchError) -> int:
    if isinstance(exc, StorageFullError):
        return EXIT_STORAGE_FULL
    if isinstance(exc, PortInUseError):
        return EXIT_PORT_IN_USE
    if isinstance(exc, NotFoundError):
        return EXIT_NOT_FOUND
    if isinstance(exc, InvalidInputError | ImageError):
        return EXIT_USAGE
    if isinstance(exc, CollectionError):
        return EXIT_COLLECTION
    if isinstance(exc, EncoderError):
        return EXIT_MODEL
    return EXIT_ERROR


@contextmanager
def _errors() -> Iterator[None]:
    try:
        yield
    except ImgSearchError as exc:
        typer.echo(f"error: {exc.message}", err=True)
        raise typer.Exit(_exit_code(exc)) from None
    except KeyboardInterrupt:
        typer.echo("interrupted; everything reported as committed is kept", err=True)
        raise typer.Exit(130) from None
    except _CLICK_ERRORS:
        raise
    except Exception as exc:
        fault = storage_fault(exc)
        if fault is not None:  # a full disk, read-only storage, a damaged database
            typer.echo(f"error: {fault.message}", err=True)
            raise typer.Exit(_exit_code(fault)) from None
        if _debugging():
            traceback.print_exc(file=sys.stderr)
        first = (str(exc).splitlines() or [""])[0]
        typer.echo(f"internal error: {type(exc).__name__}: {first} (this is a bug; run "
                   f"again with --debug for the traceback)", err=True)
        raise typer.Exit(EXIT_INTERNAL) from None


def _layers(clip_model: str | None = None, collection: Path | None = None
            ) -> tuple[Settings, dict[str, str]]:
    files = [user_config_path(os.environ)]
    if collection is not None:
        files.append(collection / COLLECTION_CONFIG)
    return layered(os.environ, files, clip_model=clip_model)


def _settings(clip_model: str | None = None, collection: Path | None = None) -> Settings:
    return _layers(clip_model, collection)[0]


def _open(collection: Path, *, create: bool = False, readonly: bool = False,
          image_encoder: str | None = None, text_encoder: str | None = None,
          clip_model: str | None = None, reembed: bool = False) -> Engine:
    from imgsearch.engine import Engine

    # The modules just imported live until exit: the collector need not walk them again
    # at each of its full passes while this command runs.
    gc.freeze()
    if _remote(collection) is not None:
        from imgsearch.errors import UnsupportedOnBackendError

        raise UnsupportedOnBackendError(
            f"{_remote(collection)}: this command works on a local collection; a milvus "
            f"one is written by `index` and `migrate` and searched through `serve`")
    settings = _settings(clip_model, collection)
    if readonly:  # a query image or two: starting decode worker processes costs more
        settings = settings.replace(decode_processes=False)
    engine = Engine.open(collection, settings,
                         image_encoder=image_encoder,
                         text_encoder=text_encoder, create=create, readonly=readonly,
                         reembed=reembed)
    for note in engine.open_notes:
        typer.echo(f"note: {note}", err=True)
    return engine


@contextmanager
def _removed_if_left_empty(collection: Path) -> Iterator[dict[str, int]]:
    """A collection that this command creates is removed again when the command fails
    with nothing added to it (a mistyped source, a model that cannot load): a failed
    first run leaves nothing behind. The body records how many ``items`` the collection
    holds when it fails, and -1 once its work went through."""
    existed = collection.exists()
    outcome: dict[str, int] = {"items": 0}  # failing while opening: nothing added
    try:
        yield outcome
    except BaseException:
        if not existed and outcome.get("items") == 0 and collection.is_dir():
            shutil.rmtree(collection, ignore_errors=True)
        raise


def _items_or_keep(engine: Engine) -> int:
    """How many items the collection holds, or -1 (keep it) when that cannot be read."""
    try:
        return engine.catalog.count()
    except Exception:
        return -1


def _print_json(data: Any) -> None:
    typer.echo(json.dumps(data, indent=None, default=str))


class _ProgressBar:
    """Draws engine progress events with tqdm on stderr (count, rate, ETA).

    The rate and ETA show once they mean something: after a few seconds of work (a rate
    measured over the first milliseconds reads a million images a second).
    """

    WARM_UP_S = 2.0
    _NO_RATE = "{desc}: {percentage:3.0f}%|{bar}| {n_fmt}/{total_fmt} [{elapsed}{postfix}]"

    def __init__(self, quiet: bool) -> None:
        self.quiet = quiet
        self.bar: Any = None
        self.started = 0.0

    def __call__(self, event: Progress) -> None:
        if self.quiet:
            return
        from tqdm import tqdm

        if event.stage == "scan":
            typer.echo(f"{event.total} images found, {event.done} unchanged", err=True)
            return
        if self.bar is None:
            self.started = time.monotonic()
            self.bar = tqdm(total=event.total, unit="img", file=sys.stderr, desc="indexing",
                            dynamic_ncols=True, bar_format=self._NO_RATE)
        elif (self.bar.bar_format is not None
              and time.monotonic() - self.started >= self.WARM_UP_S):
            self.bar.bar_format = None  # tqdm's own: with rate and ETA
        self.bar.n = event.done
        self.bar.set_postfix(failed=event.failed, refresh=False)
        self.bar.refresh()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _summary(report: IngestReport) -> str:
    rate = (report.added + report.updated) / report.seconds if report.seconds else 0.0
    return (f"added {report.added}, updated {report.updated}, unchanged {report.unchanged}, "
            f"removed {report.removed}, skipped {report.skipped_files}, "
            f"failed {len(report.failed)} "
            f"in {report.seconds:.1f}s ({rate:.1f} images/s)")


@app.command()
def index(
    source: Annotated[Path, typer.Argument(help="A folder, a catalog (.csv/.jsonl/.parquet) "
                                                "or a URL list (.txt).")],
    collection: CollectionOpt,
    image_encoder: ImageEncoderOpt = None,
    text_encoder: TextEncoderOpt = None,
    clip_model: ClipModelOpt = None,
    reembed: Annotated[bool, typer.Option(help="Re-encode every item with new encoders.")]
    = False,
    as_json: JsonOpt = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
    print_committed: Annotated[bool, typer.Option(
        help="Print the id of each item once it is durably committed.")] = False,
) -> None:
    """Index a folder, catalog or URL list; re-running only processes what changed."""
    with _errors():
        bar = _ProgressBar(quiet or as_json)
        remote = _remote(collection)
        if remote is not None:  # staged locally, then copied: everything again each run
            from imgsearch.engine.migrate import index_remote

            try:
                report = index_remote(source, remote, _settings(clip_model),
                                      image_encoder=image_encoder, text_encoder=text_encoder,
                                      progress=bar)
            finally:
                bar.close()
            _print_report(report, as_json)
            if report.failed:
                raise typer.Exit(EXIT_PARTIAL)
            return
        on_commit: Callable[[list[str]], None] | None = None
        if print_committed:
            def on_commit(ids: list[str]) -> None:
                sys.stdout.write("".join(f"committed {i}\n" for i in ids))
                sys.stdout.flush()
        with _removed_if_left_empty(collection) as outcome, \
                _open(collection, create=True, image_encoder=image_encoder,
                      text_encoder=text_encoder, clip_model=clip_model,
                      reembed=reembed) as engine:
            try:
                report = engine.ingest(source, progress=bar, on_commit=on_commit)
            except BaseException as exc:
                outcome["items"] = _items_or_keep(engine)
                if isinstance(exc, StorageFullError) and exc.report is not None:
                    bar.close()  # what was committed before the disk filled
                    _print_report(exc.report, as_json)
                raise
            finally:
                bar.close()
            outcome["items"] = -1  # the run went through: keep what it made
            if engine.reembed_report is not None:  # items re-encoding could not redo
                seen = {f.source for f in report.failed}
                report.failed[:0] = [f for f in engine.reembed_report.failed
                                     if f.source not in seen]
        _print_report(report, as_json)
        if report.failed:
            raise typer.Exit(EXIT_PARTIAL)


def _print_failures(failures: list[IngestFailure]) -> None:
    """The first 50 failures on stderr, a line each, and how many more there were."""
    for failure in failures[:50]:
        typer.echo(f"failed: {failure.source}: {failure.reason}", err=True)
    if len(failures) > 50:
        typer.echo(f"... and {len(failures) - 50} more failures", err=True)


def _print_report(report: IngestReport, as_json: bool) -> None:
    if as_json:
        _print_json(report.to_dict())
    for skip in report.skipped[:50]:
        typer.echo(f"skipped: {skip.source}: {skip.reason}", err=True)
    if len(report.skipped) > 50:
        typer.echo(f"... and {len(report.skipped) - 50} more skipped", err=True)
    _print_failures(report.failed)
    typer.echo(_summary(report), err=True)


@app.command()
def watch(
    folder: Annotated[Path, typer.Argument(help="The folder to keep in sync.")],
    collection: CollectionOpt,
    image_encoder: ImageEncoderOpt = None,
    text_encoder: TextEncoderOpt = None,
    clip_model: ClipModelOpt = None,
    settle: Annotated[float, typer.Option(
        min=0.05, help="Seconds a file must stay unchanged (and, where the system can "
                       "tell, closed by its writer) before it is read.")] = 0.4,
    as_json: Annotated[bool, typer.Option(
        "--json", help="Print each sync's report as one JSON line.")] = False,
) -> None:
    """Index FOLDER, then keep the collection in sync as files are added, changed, moved
    or deleted, until Ctrl-C. Ids and reports are those of `imgsearch index FOLDER`."""
    import signal

    from imgsearch.engine.watch import FolderWatcher

    with _errors():
        with _removed_if_left_empty(collection) as outcome, \
                _open(collection, create=True, image_encoder=image_encoder,
                      text_encoder=text_encoder, clip_model=clip_model) as engine:
            watcher = FolderWatcher(engine, folder, settle_s=settle,
                                    on_report=lambda report: _print_report(report, as_json))
            watcher.start()  # the first sync, as `index` would do it
            outcome["items"] = -1
            typer.echo(f"watching {folder} (Ctrl-C to stop)", err=True)
            previous = signal.signal(signal.SIGTERM, lambda *_: watcher.stop(timeout=0))
            try:
                while watcher.running:
                    time.sleep(0.2)
            except KeyboardInterrupt:
                pass
            finally:
                watcher.stop(timeout=60)
                signal.signal(signal.SIGTERM, previous)
            for error in watcher.stats.errors:
                typer.echo(f"error: {error}", err=True)
        typer.echo(f"stopped watching {folder}", err=True)


@app.command()
def add(
    image: Annotated[str, typer.Argument(help="Image path or http(s) URL.")],
    collection: CollectionOpt,
    item_id: Annotated[str | None, typer.Option("--id", help="Item id (default: the image "
                                                             "reference).")] = None,
    title: Annotated[str | None, typer.Option()] = None,
    description: Annotated[str | None, typer.Option()] = None,
    category: Annotated[str | None, typer.Option()] = None,
    brand: Annotated[str | None, typer.Option()] = None,
    price: Annotated[float | None, typer.Option()] = None,
    color: Annotated[str | None, typer.Option()] = None,
    tag: Annotated[list[str] | None, typer.Option()] = None,
    as_json: JsonOpt = False,
) -> None:
    """Add or replace one item."""
    with _errors():
        path = None if image.startswith(("http://", "https://")) else Path(image).resolve()
        # a name that is not UTF-8 is stored as text (\xNN escapes); the file is read as is
        ref = image if path is None else item_fields.name_text(str(path))
        checked_id = item_fields.checked_id(item_id) if item_id else item_fields.name_text(image)
        item = Item(id=checked_id, image=ref, title=title, description=description,
                    category=category, brand=brand, price=price, color=color,
                    tags=tuple(tag or ()))
        with _open(collection, create=True) as engine:
            status = engine.upsert(item, path)
        if as_json:
            _print_json({"id": item.id, "status": status})
        else:
            typer.echo(f"{status} {item.id}")


@app.command()
def remove(ids: Annotated[list[str], typer.Argument(help="Item ids.")],
           collection: CollectionOpt, as_json: JsonOpt = False) -> None:
    """Remove items by id."""
    with _errors():
        with _open(collection) as engine:
            missing = [i for i in ids if i not in engine]
            removed = engine.delete_many([i for i in ids if i not in missing])
        if as_json:
            _print_json({"removed": removed, "missing": missing})
        else:
            typer.echo(f"removed {removed}" + (f"; not found: {', '.join(missing)}"
                                               if missing else ""))
        if missing:
            raise typer.Exit(EXIT_NOT_FOUND)


@app.command()
def show(item_id: Annotated[str, typer.Argument(help="Id of the item.")],
         collection: CollectionOpt, as_json: JsonOpt = False) -> None:
    """Show one item: its metadata and what ingest learnt (EXIF facts, place, text
    read from the image)."""
    with _errors():
        with _open(collection, readonly=True) as engine:
            data = engine.get(item_id).to_dict()
        if as_json:
            _print_json(data)
            return
        width = max(len(name) for name in data)
        for name, value in data.items():
            if value not in (None, "", [], {}, ()):
                shown = value if not isinstance(value, list | dict) else json.dumps(value)
                typer.echo(f"{name:<{width}}  " + str(shown).replace("\n", " / "))


@app.command()
def info(collection: CollectionOpt, as_json: JsonOpt = False) -> None:
    """Show what a collection holds."""
    with _errors():
        engine = _open(collection, readonly=True)
        try:
            data = engine.info()
        finally:
            engine.close()
        if as_json:
            _print_json(data)
            return
        typer.echo(f"{data['collection']}: {data['items']} items, "
                   f"{data['disk_bytes'] / 1e6:.1f} MB on disk")
        for name, space in data["spaces"].items():
            typer.echo(f"  {name}: {space['encoder']} ({space['model_id']}, {space['dim']}-d), "
                       f"{space['index']} index, {space['vectors']} vectors")
            stored = space.get("vector_file") or {}
            dead = stored.get("rows", 0) - stored.get("live", 0)
            typer.echo(f"    index {space['index_resident_bytes'] / 1e6:.1f} MB resident; "
                       f"vectors {stored.get('disk_bytes', 0) / 1e6:.1f} MB on disk "
                       f"({stored.get('dtype', '-')}, {dead} dead rows), "
                       f"{stored.get('resident_bytes', 0) / 1e6:.1f} MB of it resident")
        for name, lacking in data.get("without_vector", {}).items():
            typer.echo(f"  {lacking} item(s) have no {name} vector (their re-encoding "
                       f"failed): add them again with their image, or remove them")


def _filters(category: list[str] | None, brand: list[str] | None, price_min: float | None,
             price_max: float | None, color: list[str] | None, license_: list[str] | None,
             tag: list[str] | None, orientation: str | None, min_width: int | None,
             min_height: int | None, attr: list[str] | None) -> Filters:
    attributes: dict[str, str] = {}
    for pair in attr or ():
        name, sep, value = pair.partition("=")
        if not sep or not name:
            raise InvalidInputError(f"--attr takes NAME=VALUE, got {pair!r}")
        attributes[name] = value
    return Filters(categories=tuple(category or ()), brands=tuple(brand or ()),
                   price_min=price_min, price_max=price_max, colors=tuple(color or ()),
                   licenses=tuple(license_ or ()), tags=tuple(tag or ()),
                   orientation=orientation,  # type: ignore[arg-type]
                   min_width=min_width, min_height=min_height, attributes=attributes)


FormatOpt = Annotated[str, typer.Option(
    "--format", "-f", help="table (default: rank, confidence, match, id, price, title) or "
                           "paths (each hit's image path or URL, one a line, for piping).")]
_FORMATS = ("table", "paths")


def _print_result(result: SearchResult, as_json: bool, offset: int = 0,
                  fmt: str = "table") -> None:
    if fmt not in _FORMATS:
        raise InvalidInputError(f"--format must be one of {', '.join(_FORMATS)}, got {fmt!r}")
    if as_json:
        _print_json(result.to_dict())
        return
    if fmt == "paths":  # nothing but the paths on stdout: `| xargs feh`
        for hit in result.hits:
            if hit.image:
                typer.echo(hit.image)
            else:
                typer.echo(f"{hit.id}: no image path (added from uploaded bytes)", err=True)
        return
    understood = result.interpretation.get("understood")
    if understood:
        colors = result.interpretation.get("colors", {})
        use = {"prefer": "ranked higher, not a filter", "filter": "a filter",
               "ignored": "ignored: --color wins"}
        notes = "".join(f"; colour {c}: {use.get(how, how)}" for c, how in colors.items())
        typer.echo("understood: " + ", ".join(f"{u['span']!r} as {u['as']}" for u in understood)
                   + f"; searching for {result.interpretation['text']!r}{notes}", err=True)
    expanded = expansions(result.interpretation.get("expanded") or {})
    if expanded:
        typer.echo("expanded: " + "; ".join(expanded), err=True)
    if not result.hits:
        typer.echo("no results" + (f": {result.message}" if result.message else ""))
    else:
        for line in _hit_table(result.hits, offset + 1,
                               scored=result.query_kind != "browse"):
            typer.echo(line)
    load_ms = result.stage_ms.get("model_load", 0.0)
    typer.echo(f"{len(result.hits)} results in {result.query_time_ms - load_ms:.1f} ms"
               + (f" (and {load_ms:.1f} ms loading the model)" if load_ms else ""), err=True)


_ID_WIDTH_MAX = 40


def _hit_table(hits: list[SearchHit], first: int = 1, scored: bool = True) -> list[str]:
    """A header row, then one row per hit: rank, confidence (0-100 %), match kind, id,
    price, title and category. Raw per-signal scores are in ``--json`` (matched_by).
    Browsing (filters alone) ranks nothing: no confidence or match columns."""
    id_width = min(max(len("id"), *(len(h.id) for h in hits)), _ID_WIDTH_MAX)
    priced = any(h.price is not None for h in hits)
    scores = f"  {'conf':>4}  {'match':<7}" if scored else ""
    head = f"{'#':>4}{scores}  {'id':<{id_width}}"
    lines = [(head + (f"  {'price':>9}" if priced else "") + "  title / category").rstrip()]
    for rank, hit in enumerate(hits, first):
        judged = f"  {confidence_percent(hit):>3d}%  {hit.match:<7}" if scored else ""
        row = f"{f'{rank}.':>4}{judged}  {hit.id:<{id_width}}"
        if priced:
            row += f"  {hit.price:>9.2f}" if hit.price is not None else " " * 11
        extra = "  ".join(x for x in (hit.title or "", hit.category or "") if x)
        if hit.duplicates:
            extra += f"  (+{hit.duplicates} duplicate{'s' if hit.duplicates > 1 else ''})"
        lines.append(f"{row}  {extra}".rstrip())
    return lines


Category = Annotated[list[str] | None, typer.Option("--category", help="Repeatable.")]
Brand = Annotated[list[str] | None, typer.Option("--brand", help="Repeatable.")]
PriceMin = Annotated[float | None, typer.Option("--price-min")]
PriceMax = Annotated[float | None, typer.Option("--price-max")]
Color = Annotated[list[str] | None, typer.Option("--color", help="Repeatable.")]
License = Annotated[list[str] | None, typer.Option("--license", help="Repeatable.")]
Tag = Annotated[list[str] | None, typer.Option("--tag", help="Repeatable; all must match.")]
OrientationOpt = Annotated[str | None, typer.Option(
    "--orientation", help="landscape, portrait or square.")]
MinWidth = Annotated[int | None, typer.Option("--min-width")]
MinHeight = Annotated[int | None, typer.Option("--min-height")]
Attr = Annotated[list[str] | None, typer.Option("--attr", help="NAME=VALUE; repeatable.")]
TakenAfter = Annotated[str | None, typer.Option(
    "--taken-after", help="Photos taken on or after this local date (2019, 2019-06, "
                          "2019-06-01).")]
TakenBefore = Annotated[str | None, typer.Option(
    "--taken-before", help="Photos taken before this local date.")]
Camera = Annotated[list[str] | None, typer.Option(
    "--camera", help="Camera make and model as stored ('Google Pixel 4a'); repeatable.")]
Near = Annotated[str | None, typer.Option(
    "--near", help="LAT,LON,KM: photos taken within KM km of that position.")]
Place = Annotated[list[str] | None, typer.Option(
    "--place", help="Photos whose city, region or country is this name ('Lisbon', "
                    "'Portugal'); repeatable.")]
Limit = Annotated[int | None, typer.Option(
    "--limit", "-n", help="Results per page (default: the default_limit setting, 10).")]
MinConfidence = Annotated[float | None, typer.Option(
    "--min-confidence", help="Drop hits under this calibrated confidence (0..1); 0 keeps "
                             "everything.")]
Boost = Annotated[list[str] | None, typer.Option(
    "--boost", help="SIGNAL=WEIGHT for popularity, rating, conversion, freshness; "
                    "repeatable; weights sum to at most 1.")]
MaxPerCategory = Annotated[int | None, typer.Option(
    "--max-per-category", help="Diversity: at most this many hits per category.")]
Mmr = Annotated[float | None, typer.Option(
    "--mmr", help="Diversity: maximal marginal relevance lambda (1 = relevance only).")]
PreferColor = Annotated[list[str] | None, typer.Option(
    "--prefer-color", help="Rank items of this colour higher (a boost, not a filter); "
                           "repeatable.")]
CollapseOpt = Annotated[bool, typer.Option(
    "--collapse/--no-collapse", help="Fold near-exact duplicates into one hit.")]
Offset = Annotated[int, typer.Option("--offset")]


def _photo_filters(filters: Filters, taken_after: str | None, taken_before: str | None,
                   camera: list[str] | None, near: str | None,
                   place: list[str] | None = None) -> Filters:
    position: tuple[float, float, float] | None = None
    if near is not None:
        parts = near.split(",")
        try:
            lat, lon, km = (float(p) for p in parts)
        except ValueError:
            raise InvalidInputError(f"--near takes LAT,LON,KM (e.g. 38.72,-9.14,25), "
                                    f"got {near!r}") from None
        position = (lat, lon, km)
    return dataclasses.replace(filters, taken_after=taken_after, taken_before=taken_before,
                               cameras=tuple(camera or ()), near=position,
                               places=tuple(place or ()))


def _one_blas_thread_at_load() -> None:
    """A search makes its products on one BLAS thread (``encode.blas``). Told so before
    numpy loads it, OpenBLAS starts no threads of its own, which would spin through the
    rest of numpy's import: 0.15 s of CPU of a search's 0.75 s on a 2-core machine. A
    count the user set stays."""
    if "numpy" not in sys.modules:
        os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")


def _search_and_print(collection: Path, request: SearchRequest, limit: int | None,
                      as_json: bool, offset: int, fmt: str) -> None:
    """Search a collection read-only; without --limit, a page is its default_limit."""
    _one_blas_thread_at_load()
    if _remote(collection) is not None:
        from imgsearch.engine.remote import open_remote

        with open_remote(str(_remote(collection)), _settings()) as remote:
            result = remote.search(build_query(dataclasses.replace(request, limit=limit),
                                               remote.settings.default_limit))
        _print_result(result, as_json, offset, fmt)
        return
    read_indexes_ahead(collection, request)
    with _open(collection, readonly=True) as engine:
        query = build_query(dataclasses.replace(request, limit=limit),
                            engine.settings.default_limit)
        result = engine.search(query)
    _print_result(result, as_json, offset, fmt)


@app.command()
def search(
    collection: CollectionOpt,
    text: Annotated[str | None, typer.Option("--text", "-t", help="Describe what you want.")]
    = None,
    image: Annotated[list[str] | None, typer.Option(
        "--image", "-i", help="Query image path or URL; repeat for several examples.")] = None,
    not_image: Annotated[list[str] | None, typer.Option(
        "--not-image", help="Push results away from this image; repeatable.")] = None,
    image_weight: Annotated[float, typer.Option(
        "--image-weight", help="Weight of the images against the text (0..1).")] = 0.5,
    category: Category = None, brand: Brand = None, price_min: PriceMin = None,
    price_max: PriceMax = None, color: Color = None, license_: License = None,
    tag: Tag = None, orientation: OrientationOpt = None, min_width: MinWidth = None,
    min_height: MinHeight = None, attr: Attr = None, taken_after: TakenAfter = None,
    taken_before: TakenBefore = None, camera: Camera = None, near: Near = None,
    place: Place = None, limit: Limit = None, offset: Offset = 0, as_json: JsonOpt = False,
    fmt: FormatOpt = "table",
    parse: Annotated[bool, typer.Option(
        "--parse/--no-parse", help="Understand prices, colours, brands and categories in "
                                   "the text.")] = True,
    min_confidence: MinConfidence = None, collapse: CollapseOpt = True,
    boost: Boost = None, max_per_category: MaxPerCategory = None, mmr: Mmr = None,
    multi_image: Annotated[str | None, typer.Option(
        "--multi-image", help="Several images: 'average' their vectors or 'rrf' fuse "
                              "per-image rankings.")] = None,
    prefer_color: PreferColor = None,
    ef_search: Annotated[int | None, typer.Option(
        "--ef-search", help="HNSW indexes: candidates kept while searching (recall for "
                            "time); default from the collection's settings.")] = None,
    nprobe: Annotated[int | None, typer.Option(
        "--nprobe", help="IVF-PQ indexes: inverted lists visited.")] = None,
) -> None:
    """Search by text, by image(s), or both."""
    with _errors():
        request = SearchRequest(
            text=text, images=list(image or []), negative_images=list(not_image or []),
            image_weight=image_weight, offset=offset, parse=parse,
            min_confidence=min_confidence, collapse_duplicates=collapse,
            boosts=parse_boosts(boost or ()), max_per_category=max_per_category,
            mmr_lambda=mmr, multi_image=multi_image, prefer_colors=tuple(prefer_color or ()),
            ef_search=ef_search, nprobe=nprobe,
            filters=_photo_filters(
                _filters(category, brand, price_min, price_max, color, license_,
                         tag, orientation, min_width, min_height, attr),
                taken_after, taken_before, camera, near, place))
        _search_and_print(collection, request, limit, as_json, offset, fmt)


@app.command()
def similar(
    item_id: Annotated[str, typer.Argument(help="Id of the item to find more like.")],
    collection: CollectionOpt,
    category: Category = None, brand: Brand = None, price_min: PriceMin = None,
    price_max: PriceMax = None, color: Color = None, license_: License = None,
    tag: Tag = None, orientation: OrientationOpt = None, min_width: MinWidth = None,
    min_height: MinHeight = None, attr: Attr = None, taken_after: TakenAfter = None,
    taken_before: TakenBefore = None, camera: Camera = None, near: Near = None,
    place: Place = None, limit: Limit = None, offset: Offset = 0, as_json: JsonOpt = False,
    fmt: FormatOpt = "table",
    min_confidence: MinConfidence = None, collapse: CollapseOpt = True,
    boost: Boost = None, max_per_category: MaxPerCategory = None, mmr: Mmr = None,
    prefer_color: PreferColor = None,
) -> None:
    """More like this item (the item itself excluded)."""
    with _errors():
        request = SearchRequest(
            similar_to=item_id, offset=offset, min_confidence=min_confidence,
            collapse_duplicates=collapse, boosts=parse_boosts(boost or ()),
            max_per_category=max_per_category, mmr_lambda=mmr,
            prefer_colors=tuple(prefer_color or ()),
            filters=_photo_filters(
                _filters(category, brand, price_min, price_max, color, license_,
                         tag, orientation, min_width, min_height, attr),
                taken_after, taken_before, camera, near, place))
        _search_and_print(collection, request, limit, as_json, offset, fmt)


@app.command()
def report(
    collection: CollectionOpt,
    days: Annotated[float | None, typer.Option(
        "--days", help="Only searches of the last DAYS days.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Click-through, MRR of clicks, zero-result rate and latency per query type."""
    import time

    since = time.time() - days * 86400 if days else None
    with _errors():
        if _remote(collection) is not None:  # the log every node of it shares
            from imgsearch.engine.remote import open_remote

            with open_remote(str(_remote(collection)), _settings()) as remote:
                data = remote.report(since=since)
        else:
            engine = _open(collection, readonly=True)
            try:
                data = engine.report(since=since)
            finally:
                engine.close()
        if as_json:
            _print_json(data)
            return
        if not data or not data.get("all", {}).get("searches"):
            typer.echo("no searches logged yet")
            return
        # latency is the query's own time; a search that first loaded a model (the first
        # of a process) counts under "model loads", with that load's time, apart
        typer.echo(f"{'query type':12s} {'searches':>8s} {'CTR':>6s} {'MRR':>6s} "
                   f"{'zero':>6s} {'p50 ms':>8s} {'p95 ms':>8s} {'p99 ms':>8s} "
                   f"{'model loads':>11s} {'load p50 ms':>11s}")
        for kind, row in data.items():
            lat = row["latency_ms"]
            load = row.get("model_load_ms") or {}
            typer.echo(f"{kind:12s} {row['searches']:8d} {row['click_through_rate']:6.3f} "
                       f"{row['mrr_of_clicks']:6.3f} {row['zero_result_rate']:6.3f} "
                       f"{lat['p50']:8.2f} {lat['p95']:8.2f} {lat['p99']:8.2f} "
                       f"{row.get('model_loads', 0):11d} "
                       + (f"{load['p50']:11.1f}" if load else f"{'-':>11s}"))


@app.command()
def dedup(
    collection: CollectionOpt,
    item: Annotated[str | None, typer.Option(
        "--item", help="Show the duplicates of this item instead of every group.")] = None,
    min_tier: Annotated[str, typer.Option(
        "--min-tier", help="exact, near-exact or variant (the weakest tier to include).")]
    = "variant",
    as_json: JsonOpt = False,
) -> None:
    """List groups of near-duplicate images (perceptual hash + image similarity)."""
    with _errors():
        engine = _open(collection, readonly=True)
        try:
            if item is not None:
                found = [d.to_dict() for d in engine.duplicates(item)]
                if as_json:
                    _print_json({"id": item, "duplicates": found})
                for d in [] if as_json else found:
                    typer.echo(f"{d['tier']:10s} hamming {d['hamming']:2d}  cosine "
                               f"{d['cosine']:.4f}  {d['id']}")
                return
            groups = engine.duplicate_groups(min_tier)
        finally:
            engine.close()
        if as_json:
            _print_json({"groups": groups, "count": len(groups),
                         "items": sum(len(g["ids"]) for g in groups)})
            return
        for number, group in enumerate(groups, 1):
            typer.echo(f"group {number} ({group['tier']}, {len(group['ids'])} items): "
                       + "  ".join(group["ids"]))
        typer.echo(f"{len(groups)} groups", err=True)


@app.command(name="eval")
def evaluate(
    collection: CollectionOpt,
    qrels: Annotated[Path | None, typer.Argument(
        help="JSONL: one query per line with its relevant ids (see README).")] = None,
    compare: Annotated[Path | None, typer.Option(
        "--compare", help="Run the same queries on a second collection, side by side.")]
    = None,
    compare_parse: Annotated[bool, typer.Option(
        "--compare-parse", help="Compare query understanding on against off.")] = False,
    ks: Annotated[str, typer.Option("--k", help="Cut-offs, comma separated.")]
    = "1,5,10,20,100",
    per_query: Annotated[bool, typer.Option("--per-query")] = False,
    explain: Annotated[bool, typer.Option("--explain", help="Print metric definitions.")]
    = False,
    ann: Annotated[bool, typer.Option(
        "--ann", help="Recall@10 of each vector index against exact search.")] = False,
    ann_queries: Annotated[int, typer.Option("--ann-queries")] = 200,
    as_json: JsonOpt = False,
) -> None:
    """Score search quality on your own relevance judgements (Recall, P, mAP, MRR, nDCG)."""
    from imgsearch.evaluate import metrics, report, runner
    from imgsearch.evaluate.ann import ann_recall

    with _errors():
        try:
            cutoffs = tuple(int(k) for k in ks.split(","))
        except ValueError:
            raise InvalidInputError(f"--k takes numbers separated by commas, got {ks!r}") \
                from None
        if explain:
            typer.echo(report.format_definitions(metrics.definitions()))
            if qrels is None and not ann:
                return
        output: dict[str, Any] = {}
        engine = _open(collection, readonly=True)
        try:
            if ann:
                results = [ann_recall(space, n_queries=ann_queries)
                           for space in engine.spaces.values()]
                output["ann"] = [r.to_dict() for r in results]
                if not as_json:
                    typer.echo(report.format_ann(results))
            if qrels is not None:
                queries = runner.load_qrels(qrels)
                run_a = runner.run_eval(queries, runner.EvalConfig(str(collection), engine),
                                        cutoffs)
                if compare is not None or compare_parse:
                    other = _open(compare, readonly=True) if compare is not None else engine
                    try:
                        config_b = runner.EvalConfig(str(compare), other) if compare \
                            is not None else runner.EvalConfig(
                                "parse off", engine, runner.without_parsing)
                        if compare_parse:
                            run_a = runner.run_eval(queries, runner.EvalConfig(
                                "parse on", engine), cutoffs)
                        run_b = runner.run_eval(queries, config_b, cutoffs)
                    finally:
                        if other is not engine:
                            other.close()
                    comparison = runner.compare(run_a, run_b)
                    output.update(comparison.to_dict())
                    if not as_json:
                        typer.echo(report.format_comparison(comparison))
                else:
                    output.update(run_a.to_dict())
                    if not as_json:
                        typer.echo(report.format_run(run_a, per_query=per_query))
            elif not ann:
                raise InvalidInputError("eval needs a QRELS file, --ann or --explain")
        finally:
            engine.close()
        if as_json:
            _print_json(output)


@app.command()
def tune(
    qrels: Annotated[Path, typer.Argument(
        help="JSONL: one text query per line with its relevant ids (see README).")],
    collection: CollectionOpt,
    folds: Annotated[int, typer.Option("--folds", help="Cross-validation folds.")] = 5,
    metric: Annotated[str, typer.Option(
        "--metric", help="map@10, ndcg@10, recall@10 or mrr.")] = "map@10",
    seed: Annotated[int, typer.Option("--seed", help="How queries are dealt into folds.")]
    = 0,
    dry_run: Annotated[bool, typer.Option(
        "--dry-run", help="Report only; write nothing.")] = False,
    per_query: Annotated[bool, typer.Option("--per-query", help="List every query.")]
    = False,
    as_json: JsonOpt = False,
) -> None:
    """Choose the text-fusion settings on your own judgements, cross-validated; write
    them to the collection's imgsearch.toml only when they win on held-out queries."""
    from imgsearch.evaluate import runner
    from imgsearch.evaluate import tune as tuning

    with _errors():
        queries = runner.load_qrels(qrels)
        engine = _open(collection, readonly=True)
        try:
            report = tuning.tune(engine, queries, folds=folds, metric=metric, seed=seed,
                                 progress=None if as_json else
                                 lambda line: typer.echo(line, err=True))
        finally:
            engine.close()
        written = report.improves and not dry_run
        if written:
            tuning.write_settings(collection / COLLECTION_CONFIG, report.changes)
        _, origin = _layers(collection=collection)
        shadowed = [name for name in report.changes if origin[name].startswith(
            ("environment", "command line"))]
        if as_json:
            _print_json({**report.to_dict(), "written": written,
                         "file": str(collection / COLLECTION_CONFIG),
                         "shadowed_by_environment": shadowed})
            return
        typer.echo(_format_tune(report, per_query))
        if written:
            typer.echo(f"wrote {', '.join(f'{k} = {v}' for k, v in report.changes.items())} "
                       f"to {collection / COLLECTION_CONFIG}")
        elif report.improves:
            typer.echo("--dry-run: nothing written")
        else:
            typer.echo("kept the current settings: the chosen ones do not beat them on "
                       "held-out queries")
        for name in shadowed:
            typer.echo(f"note: {name} is set by {origin[name]}, which wins over the file",
                       err=True)


def _format_tune(report: Any, per_query: bool) -> str:
    m = report.metric
    lines = [f"tuned on {report.queries} text queries, {report.folds} folds, {m} "
             f"({report.searches} searches)", ""]
    width = max(map(len, report.current))
    lines.append(f"{'setting':<{width}}  {'current':>9}  {'chosen':>9}")
    for name, value in report.current.items():
        mark = "" if report.chosen[name] == value else "  *"
        lines.append(f"{name:<{width}}  {value!s:>9}  {report.chosen[name]!s:>9}{mark}")
    lines += ["", f"{m} held out (each query scored by settings chosen without it): "
                  f"{report.held_out_before:.3f} -> {report.held_out_after:.3f}",
              f"{m} on all queries with the chosen settings: "
              f"{report.all_before:.3f} -> {report.all_after:.3f}",
              f"held-out queries: {report.wins} better, {report.losses} worse, "
              f"{len(report.per_query) - report.wins - report.losses} tied"]
    changed = [c for c in report.per_query if per_query or abs(c.after - c.before) > 1e-9]
    changed.sort(key=lambda c: c.after - c.before, reverse=True)
    for c in changed:
        lines.append(f"  {c.after - c.before:+.3f}  {c.before:.3f} -> {c.after:.3f}  {c.label}")
    return "\n".join(lines)


@app.command()
def check(
    collection: CollectionOpt,
    quick: Annotated[bool, typer.Option(
        "--quick", help="PRAGMA quick_check instead of the full integrity_check.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Check a collection for damage (catalog, manifest, indexes, thumbnails, search
    log); changes nothing. Exit code 0 when healthy, 4 when something is damaged."""
    with _errors():
        from imgsearch.engine import Engine

        health = Engine.check(collection, quick=quick)
        _print_health(health.to_dict(), as_json)
        if not health.healthy:
            raise typer.Exit(EXIT_COLLECTION)


@app.command()
def upgrade(collection: CollectionOpt, as_json: JsonOpt = False) -> None:
    """Upgrade a collection written by an older imgsearch (a backup of the old catalog is
    kept next to it) and compact its vector files into the vector_dtype setting."""
    with _errors():
        engine = _open(collection)
        try:
            data = engine.upgrade()
        finally:
            engine.close()
        if as_json:
            _print_json(data)
            return
        if data["upgraded_from"] is None:
            typer.echo(f"{collection}: schema {data['schema_version']}, already current")
        else:
            typer.echo(f"{collection}: upgraded from schema {data['upgraded_from']} to "
                       f"{data['schema_version']}; the old catalog is kept at "
                       f"{data['backup']}")
        for space, done in data["compacted"].items():
            typer.echo(f"  {space} vectors: compacted into {done['dtype']}, "
                       f"{done['dead_rows_dropped']} dead rows dropped")


@app.command()
def compact(collection: CollectionOpt, as_json: JsonOpt = False) -> None:
    """Compact the collection's vector files now: copy each file's live rows into a new
    one and drop the rows of replaced and deleted items (saving does it by itself once
    they pass compact_tombstone_ratio of a file)."""
    with _errors():
        engine = _open(collection)
        try:
            done = engine.compact()
        finally:
            engine.close()
        if as_json:
            _print_json({"compacted": done})
            return
        if not done:
            typer.echo(f"{collection}: no vector file has dead rows; nothing to compact")
        for space, step in done.items():
            typer.echo(f"  {space} vectors: {step['dead_rows_dropped']} dead rows dropped, "
                       f"{step['bytes_before']:,} -> {step['bytes_after']:,} bytes "
                       f"({step['file']})")


@app.command()
def repair(collection: CollectionOpt, as_json: JsonOpt = False) -> None:
    """Rebuild what can be rebuilt from the catalog: indexes, the manifest, a damaged
    search log (set aside), unused thumbnails (removed). A damaged catalog cannot be:
    restore it from a backup."""
    with _errors():
        from imgsearch.engine import Engine

        health = Engine.repair(collection, _settings())
        _print_health(health.to_dict(), as_json)
        if not health.healthy:
            raise typer.Exit(EXIT_COLLECTION)


@app.command()
def backup(
    collection: CollectionOpt,
    destination: Annotated[Path, typer.Argument(help="A new (or empty) directory.")],
    as_json: JsonOpt = False,
) -> None:
    """Copy a collection consistently (SQLite's backup API), even while it is written.
    To restore, copy the backup back in place of the collection (see the README)."""
    with _errors():
        from imgsearch.engine import Engine

        done = Engine.backup(collection, destination)
        if as_json:
            _print_json(done)
            return
        for note in done["notes"]:
            typer.echo(f"note: {note}", err=True)
        typer.echo(f"backed up {collection} to {destination}: {', '.join(done['copied'])}")


def _print_health(data: dict[str, Any], as_json: bool) -> None:
    if as_json:
        _print_json(data)
        return
    for action in data["repaired"]:
        typer.echo(f"repaired: {action}")
    for f in data["findings"]:
        typer.echo(f"{f['severity']}: {f['part']}: {f['problem']}\n  fix: {f['fix']}")
    state = "healthy" if data["healthy"] else "DAMAGED"
    items = f", {data['items']} items" if data["items"] is not None else ""
    typer.echo(f"{data['collection']}: {state}{items} (checked {', '.join(data['checked'])})")


@app.command()
def serve(
    collection: Annotated[Path | None, typer.Option(
        "--collection", "-c", help="Collection directory.")] = None,
    legacy_collection: Annotated[Path | None, typer.Argument(
        metavar="[COLLECTION]", show_default=False,
        help="Deprecated: the collection directory; use -c/--collection.")] = None,
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
    workers: Annotated[int, typer.Option(
        min=1, help="Server processes, each with the indexes in its own memory: one "
                    "writes, the others hand it their writes. More than one uses more "
                    "cores for searches.")] = 1,
    api_key_file: Annotated[Path | None, typer.Option(
        "--api-key-file", help="API keys file (default: the collection's api_keys.json; "
                               "env IMGSEARCH_API_KEYS_FILE).")] = None,
    allowed_host: Annotated[list[str] | None, typer.Option(
        "--allowed-host", help="Host name clients use to reach the server, besides "
                               "localhost and the listening address; repeatable.")] = None,
    cors_origin: Annotated[list[str] | None, typer.Option(
        "--cors-origin", help="Origin (https://shop.example.com) whose pages may call the "
                              "API; repeatable. Default: CORS off.")] = None,
    require_read_key: Annotated[bool | None, typer.Option(
        "--require-read-key/--no-require-read-key",
        help="Searches and the web page need a key too.")] = None,
    watch_folders: Annotated[list[Path] | None, typer.Option(
        "--watch", help="Keep this folder in sync with the collection while serving "
                        "(as `imgsearch watch`); repeatable.")] = None,
    consume: Annotated[str | None, typer.Option(
        "--consume", help="Also index from this Redis stream (redis://HOST:6379/STREAM), "
                          "as `imgsearch consume` does; its lag shows in /metrics.")] = None,
    consume_group: Annotated[str, typer.Option(help="Consumer group for --consume.")]
    = "imgsearch",
    image_root: Annotated[list[Path] | None, typer.Option(
        "--image-root", help="Folder whose images stream messages may name by path; "
                             "repeatable.")] = None,
) -> None:
    """Serve the HTTP API (docs at /docs) over a collection.

    Beyond loopback (--host 0.0.0.0), writes need a key from `imgsearch keys create`.
    """
    from imgsearch.web.serve import serve as run_server

    with _errors():
        collection = _serve_collection(collection, legacy_collection)
        remote = _remote(collection)
        settings = _settings(collection=None if remote else collection)
        settings = settings.replace(
            api_keys_file=str(api_key_file) if api_key_file else settings.api_keys_file,
            allowed_hosts=",".join([settings.allowed_hosts, *(allowed_host or [])]).strip(","),
            cors_origins=",".join([settings.cors_origins, *(cors_origin or [])]).strip(","),
            require_read_key=settings.require_read_key if require_read_key is None
            else require_read_key)
        if remote is not None:
            if workers != 1 or consume or watch_folders:
                raise InvalidInputError("--workers, --consume and --watch serve local "
                                        "collections; run more nodes against a milvus one")
            from imgsearch.web.remote_app import serve_remote

            serve_remote(remote, host, port, settings)
            return
        stream = None
        if consume is not None:
            from imgsearch.engine.stream import ConsumeOptions, StreamAddress

            stream = ConsumeOptions(StreamAddress.parse(consume), group=consume_group,
                                    image_roots=tuple(image_root or ()))
        run_server(collection, host, port, settings, workers=workers, consume=stream,
                   watch=watch_folders or ())


def _remote(collection: Path | None) -> str | None:
    """The URI of a remote collection (milvus://HOST:PORT/NAME) given where a path goes
    (a path argument folds its "//" into "/"); None for a directory."""
    text = str(collection or "")
    scheme, sep, rest = text.partition(":/")
    if not sep or scheme == "local":  # a directory: no backend module to import
        return None
    from imgsearch.engine.backends.registry import BACKENDS

    if scheme not in BACKENDS:
        return None
    return f"{scheme}://{rest.lstrip('/')}"


@app.command()
def migrate(
    source: Annotated[Path, typer.Argument(help="Collection to copy (a directory).")],
    target: Annotated[str, typer.Argument(help="Where to: milvus://HOST:PORT/NAME, or a "
                                               "new directory.")],
    as_json: JsonOpt = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
) -> None:
    """Copy a collection to another backend, vectors included (nothing is encoded again)."""
    from imgsearch.engine.migrate import migrate as run_migrate

    with _errors():
        bar = _ProgressBar(quiet or as_json)
        try:
            done = run_migrate(_remote(source) or source, _remote(Path(target)) or target,
                               _settings(collection=source), progress=bar)
        finally:
            bar.close()
        if as_json:
            _print_json(done.to_dict())
        typer.echo(f"copied {done.copied} items in {done.seconds:.1f} s; {target} holds "
                   f"{done.target_count}", err=True)


def _serve_collection(option: Path | None, positional: Path | None) -> Path:
    if option is not None and positional is not None and option != positional:
        raise InvalidInputError(f"two collections given ({positional} and -c {option}); "
                                f"give one, with -c/--collection")
    if positional is not None:
        typer.echo("note: the collection as a positional argument is deprecated; use "
                   "-c/--collection", err=True)
    collection = option or positional
    if collection is None:
        raise InvalidInputError("which collection? give it with -c/--collection")
    return collection


keys_app = typer.Typer(no_args_is_help=True, **_PLAIN, help="API keys for the HTTP server: "
                       "create, list, revoke. Only hashes are stored.")
app.add_typer(keys_app, name="keys")
KeysFileOpt = Annotated[Path | None, typer.Option(
    "--keys-file", help="Keys file (default: COLLECTION/api_keys.json, or "
                        "IMGSEARCH_API_KEYS_FILE).")]


def _key_store(collection: Path, keys_file: Path | None) -> Any:
    from imgsearch.web.keys import KeyStore

    return KeyStore.for_collection(collection, str(keys_file or _settings().api_keys_file))


@keys_app.command("create")
def keys_create(
    collection: CollectionOpt,
    scope: Annotated[str, typer.Option(help="read, write (reads too) or admin (writes, "
                                            "/metrics and /v1/report too).")] = "read",
    name: Annotated[str | None, typer.Option(help="A name to recognise it by.")] = None,
    keys_file: KeysFileOpt = None, as_json: JsonOpt = False,
) -> None:
    """Make a key and print its token, once: it is not stored, only its hash."""
    with _errors():
        store = _key_store(collection, keys_file)
        key, token = store.create(scope, name or "")
        if as_json:
            _print_json({**key.public(), "token": token, "keys_file": str(store.path)})
            return
        typer.echo(token)
        typer.echo(f"created {key.scope} key {key.name!r} (id {key.id}) in {store.path}; "
                   f"the token above is shown only now", err=True)


@keys_app.command("list")
def keys_list(collection: CollectionOpt, keys_file: KeysFileOpt = None,
              as_json: JsonOpt = False) -> None:
    """The keys (id, name, scope, creation time); never their tokens."""
    import time

    with _errors():
        store = _key_store(collection, keys_file)
        keys = [k.public() for k in store.current()]
        if as_json:
            _print_json({"keys": keys, "keys_file": str(store.path)})
            return
        for k in keys:
            made = time.strftime("%Y-%m-%d %H:%M", time.gmtime(k["created_at"]))
            typer.echo(f"{k['id']}  {k['scope']:5s}  {made} UTC  {k['name']}")
        typer.echo(f"{len(keys)} keys in {store.path}", err=True)


@keys_app.command("revoke")
def keys_revoke(which: Annotated[str, typer.Argument(help="Key id or name.")],
                collection: CollectionOpt, keys_file: KeysFileOpt = None,
                as_json: JsonOpt = False) -> None:
    """Remove a key; a running server refuses it from its next request."""
    with _errors():
        gone = _key_store(collection, keys_file).revoke(which)
        if as_json:
            _print_json({"revoked": [k.public() for k in gone]})
            return
        typer.echo("revoked " + ", ".join(f"{k.id} ({k.name})" for k in gone))


@app.command(name="config")
def show_config(
    collection: Annotated[Path | None, typer.Option(
        "--collection", "-c", help="Also read this collection's imgsearch.toml.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Show every setting, its value and where it comes from.

    Strongest first: a command-line flag, the environment (IMGSEARCH_<NAME>), the
    collection's imgsearch.toml, the user's ~/.config/imgsearch/config.toml, the default.
    """
    with _errors():
        settings, origin = _layers(collection=collection)
        values = dataclasses.asdict(settings)
        if as_json:
            _print_json({name: {"value": value, "from": origin[name]}
                         for name, value in values.items()})
            return
        width = max(map(len, values))
        shown = {name: str(value) for name, value in values.items()}
        value_width = min(40, max(map(len, shown.values())))
        typer.echo(f"{'setting':<{width}}  {'value':<{value_width}}  from")
        for name, value in shown.items():
            typer.echo(f"{name:<{width}}  {value:<{value_width}}  {origin[name]}")


# ---- batch encoding to Parquet shards, and streams ------------------------------------


@app.command()
def encode(
    source: Annotated[Path, typer.Argument(help="A folder, a catalog (.csv/.jsonl/.parquet) "
                                                "or a URL list (.txt).")],
    out: Annotated[Path, typer.Option("--out", help="Folder of the Parquet shards.")],
    runner: Annotated[str, typer.Option(help="local (this process) or ray.")] = "local",
    ray_address: Annotated[str | None, typer.Option(
        "--ray-address", help="Ray cluster to use (default: start a local one).")] = None,
    workers: Annotated[int, typer.Option(
        min=1, help="Ray workers, each holding one encoder.")] = 1,
    num_gpus: Annotated[float, typer.Option(
        "--num-gpus", min=0.0, help="GPUs per Ray worker.")] = 0.0,
    shard_size: Annotated[int, typer.Option("--shard-size", min=1,
                                            help="Items per shard.")] = 1000,
    image_encoder: ImageEncoderOpt = None,
    text_encoder: TextEncoderOpt = None,
    clip_model: ClipModelOpt = None,
    as_json: JsonOpt = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No line per shard.")] = False,
) -> None:
    """Encode a source into Parquet shards, without a collection; a killed run resumes.

    Load the shards into a collection with `imgsearch import-embeddings`.
    """
    from imgsearch.engine.batch_encode import run_encode

    with _errors():
        if runner not in ("local", "ray"):
            raise InvalidInputError(f"--runner must be local or ray, got {runner!r}")
        settings = _settings(clip_model)
        settings = settings.replace(image_encoder=image_encoder or settings.image_encoder,
                                    text_encoder=text_encoder or settings.text_encoder)
        def shard_done(event: Progress) -> None:
            if not (quiet or as_json):
                typer.echo(f"shard {event.done}/{event.total} written ({event.failed} "
                           f"failed so far)", err=True)

        report = run_encode(source, out, settings, runner="ray" if runner == "ray" else "local",
                            shard_size=shard_size, ray_address=ray_address, workers=workers,
                            num_gpus=num_gpus, progress=shard_done)
        if as_json:
            _print_json(report.to_dict())
        _print_failures(report.failed)
        typer.echo(f"{report.shards} shard(s): {report.written} written, {report.skipped} "
                   f"finished before; {report.items} items encoded, {len(report.failed)} "
                   f"failed in {report.seconds:.1f}s ({report.runner} runner)", err=True)
        if report.failed:
            raise typer.Exit(EXIT_PARTIAL)


@app.command(name="import-embeddings")
def import_embeddings(
    directory: Annotated[Path, typer.Argument(help="The --out folder of `imgsearch encode`.")],
    collection: CollectionOpt,
    as_json: JsonOpt = False,
) -> None:
    """Load Parquet shards of `imgsearch encode` into a collection without re-encoding."""
    from imgsearch.engine import import_embeddings as importing

    with _errors():
        spaces = importing.shard_spaces(directory)
        with _removed_if_left_empty(collection) as outcome, importing.open_for_import(
                collection, _settings(collection=collection), spaces) as engine:
            for note in engine.open_notes:
                typer.echo(f"note: {note}", err=True)
            try:
                report = importing.import_embeddings(engine, directory)
            except BaseException:
                outcome["items"] = _items_or_keep(engine)
                raise
            outcome["items"] = -1
        _print_report(report, as_json)
        if report.failed:
            raise typer.Exit(EXIT_PARTIAL)


@app.command()
def consume(
    stream: Annotated[str, typer.Argument(help="redis://HOST:6379/STREAM")],
    collection: CollectionOpt,
    group: Annotated[str, typer.Option(help="Consumer group.")] = "imgsearch",
    consumer: Annotated[str | None, typer.Option(
        help="This consumer's name in the group (default: HOST-PID); give the same name "
             "after a restart to take up its pending messages at once.")] = None,
    image_root: Annotated[list[Path] | None, typer.Option(
        "--image-root", help="Folder whose images messages may name by path; "
                             "repeatable. Default: no paths, only URLs and bytes.")] = None,
    batch_size: Annotated[int, typer.Option(min=1, help="Messages per read.")] = 32,
    claim_idle_ms: Annotated[int, typer.Option(
        min=0, help="Claim messages another consumer left pending this long.")] = 60_000,
    exit_when_idle: Annotated[bool, typer.Option(
        help="Stop once a round finds no message (default: run until stopped).")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Index from a Redis stream as a consumer group member, until Ctrl-C or SIGTERM.

    Messages upsert an item (id, image URL, path or base64 bytes, metadata) or delete
    one; each is acknowledged once its write is durable; a message that cannot be
    applied goes, with its reason, to the stream STREAM:dead.
    """
    import signal
    import threading

    from imgsearch.engine.stream import StreamAddress, StreamConsumer

    with _errors():
        address = StreamAddress.parse(stream)
        stop = threading.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda *_: stop.set())
        with _open(collection, create=True) as engine:
            worker = StreamConsumer(engine, address, group=group, consumer=consumer,
                                    image_roots=image_root or [], batch_size=batch_size,
                                    claim_idle_ms=claim_idle_ms)
            typer.echo(f"consuming {address} as {worker.consumer} in group {group}",
                       err=True)
            stats = worker.run(stop, stop_when_idle=exit_when_idle)
        if as_json:
            _print_json(dataclasses.asdict(stats))
        typer.echo(f"upserted {stats.upserted}, unchanged {stats.unchanged}, deleted "
                   f"{stats.deleted}, dead-lettered {stats.dead}, reclaimed "
                   f"{stats.reclaimed}, errors {stats.errors}", err=True)


def _command_run(args: Sequence[str]) -> CommandInfo | None:
    """The registered command (not a group) that ``args`` run: the first argument after
    the global ``--debug``, as click finds it. None for anything else (top-level help,
    a misspelt name, ``keys``, shell completion), which needs every command."""
    if any(name.startswith("_") and name.endswith("_COMPLETE") for name in os.environ):
        return None
    rest = list(args)
    while rest[:1] == ["--debug"]:
        rest.pop(0)
    if not rest:
        return None
    # named as typer names it: the name given, else the function's
    return next((info for info in app.registered_commands if info.callback is not None
                 and rest[0] == (info.name or get_command_name(info.callback.__name__))),
                None)


@contextmanager
def _only(command: CommandInfo | None) -> Iterator[None]:
    """The app with ``command`` its only command while it runs: typer turns every
    command's signature into click's before it runs one (0.05 s for all of them, a
    tenth of a one-shot search). Usage, help and errors of a command do not name the
    others, so they read the same."""
    if command is None:
        yield
        return
    commands, groups = app.registered_commands, app.registered_groups
    app.registered_commands, app.registered_groups = [command], []
    try:
        yield
    finally:
        app.registered_commands, app.registered_groups = commands, groups


def main() -> None:
    args = sys.argv[1:]
    if args[:1] == ["--show-completion"] and len(args) <= 2:
        _show_completion(args[1] if len(args) == 2 else None)
    try:
        with _only(_command_run(args)):
            app()
    finally:
        # The interpreter's exit clears every module, and the cyclic collector walks
        # all that is left each time: about 0.06 s after a search, which prints
        # nothing more. Frozen objects are left out of those passes; what still lives
        # at exit has no promise of a __del__ call in any case (atexit handlers, and
        # the threads' joins, still run).
        gc.freeze()


_SHELLS = ("bash", "zsh", "fish", "powershell", "pwsh")


def _show_completion(shell: str | None) -> None:
    """``--show-completion [SHELL]``: the completion script for SHELL, else for the shell
    this runs under, else for the login shell ($SHELL) when no parent shell can be seen
    (a job started without one)."""
    from typer.completion import get_completion_script

    if shell is None:
        try:
            import shellingham

            shell = str(shellingham.detect_shell()[0])
        except Exception:  # no parent shell to detect: a detached job, a service
            shell = Path(os.environ.get("SHELL", "")).name
    if shell not in _SHELLS:
        typer.echo(f"Error: no completion for the shell {shell or '(unknown)'!r}; "
                   f"name one of {', '.join(_SHELLS)}: imgsearch --show-completion bash",
                   err=True)
        raise SystemExit(EXIT_USAGE)
    typer.echo(get_completion_script(prog_name="imgsearch",
                                     complete_var="_IMGSEARCH_COMPLETE", shell=shell))
    raise SystemExit(0)


if __name__ == "__main__":
    main()
