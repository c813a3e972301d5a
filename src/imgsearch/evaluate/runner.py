"""Run a qrels file through a search configuration and score it; compare two such runs.

A qrels file is JSONL, one query per line::

    {"id": "q1", "text": "red shoes", "relevant": ["sku1", "sku7"], "grades": {"sku1": 2}}
    {"image": "queries/shoe.jpg", "filters": {"brands": ["acme"]}, "relevant": ["sku3"]}
    {"item": "sku9", "relevant": ["sku10", "sku11"]}

``image`` paths are relative to the qrels file's folder (or absolute, or http(s) URLs);
an ``item`` query is "more like this item", which never returns the item itself.
``filters`` takes the field names of :class:`~imgsearch.types.Filters`. Ids in
``relevant`` have grade 1 unless ``grades`` says otherwise. Every line is checked before
any search runs. A configuration is anything with ``search(Query) -> SearchResult`` plus
an optional transform of each query, so one engine with parsing on and off, or two
collections, can be compared on the same qrels.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from imgsearch.errors import (
    FetchError,
    ImageError,
    InvalidInputError,
    NotFoundError,
)
from imgsearch.evaluate.metrics import DEFAULT_KS, mean_metrics, query_metrics
from imgsearch.types import Filters, Query, SearchResult

QUERY_KEYS = ("text", "image", "item")
ALLOWED_KEYS = frozenset({"id", "filters", "relevant", "grades", *QUERY_KEYS})
_LIST_FILTERS = ("categories", "brands", "colors", "licenses", "tags")
_NUMBER_FILTERS = ("price_min", "price_max")
_INT_FILTERS = ("min_width", "min_height")
FILTER_FIELDS = tuple(f.name for f in dataclasses.fields(Filters))
# Errors that belong to one query (a missing item, an unreadable image) are reported on
# its line; anything else (a model that cannot load, a broken collection) stops the run.
_PER_QUERY_ERRORS = (InvalidInputError, NotFoundError, ImageError, FetchError)


@runtime_checkable
class Searcher(Protocol):
    def search(self, query: Query) -> SearchResult: ...


QueryTransform = Callable[[Query], Query]


@dataclass(frozen=True)
class EvalConfig:
    """One side of an evaluation: a label, what searches, and how each query is changed."""

    label: str
    searcher: Searcher | Callable[[Query], SearchResult]
    transform: QueryTransform | None = None

    def run(self, query: Query) -> SearchResult:
        if self.transform is not None:
            query = self.transform(query)
        if isinstance(self.searcher, Searcher):
            return self.searcher.search(query)
        return self.searcher(query)


def without_parsing(query: Query) -> Query:
    """The query with query understanding turned off (for comparing parse on/off)."""
    return dataclasses.replace(query, parse=False)


@dataclass(frozen=True)
class QrelsQuery:
    line: int
    id: str | None
    query: Query
    grades: Mapping[str, float]

    @property
    def label(self) -> str:
        return self.id if self.id is not None else f"line {self.line}"

    def describe(self) -> str:
        q = self.query
        if q.similar_to is not None:
            return f"item {q.similar_to}"
        parts = [f"text {q.text!r}"] if q.text else []
        parts += [f"image {image}" if isinstance(image, str | Path) else "image"
                  for image in q.images]
        if not q.filters.is_empty():
            parts.append("(filtered)")
        return " ".join(parts)


def load_qrels(path: str | Path) -> list[QrelsQuery]:
    """Read and check a qrels file; InvalidInputError names the first bad line."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InvalidInputError(f"qrels file {path} does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidInputError(f"qrels file {path} cannot be read ({exc})") from None
    queries = parse_qrels(text.splitlines(), base_dir=path.parent, source=str(path))
    if not queries:
        raise InvalidInputError(f"qrels file {path} holds no queries; write one JSON "
                                f"object per line with a query and its relevant ids")
    return queries


def parse_qrels(lines: Sequence[str], *, base_dir: Path, source: str = "qrels"
                ) -> list[QrelsQuery]:
    queries = []
    for number, raw in enumerate(lines, start=1):
        if raw.strip():
            queries.append(_parse_line(raw, number, base_dir, source))
    return queries


def _parse_line(raw: str, line: int, base_dir: Path, source: str) -> QrelsQuery:
    def bad(why: str) -> InvalidInputError:
        return InvalidInputError(f"{source} line {line}: {why}")

    try:
        data = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise bad(f"not valid JSON ({exc.msg} at column {exc.colno})") from None
    if not isinstance(data, dict):
        raise bad("expected a JSON object such as {\"text\": \"red shoes\", "
                  "\"relevant\": [\"id1\"]}")
    unknown = sorted(set(data) - ALLOWED_KEYS)
    if unknown:
        raise bad(f"unknown key(s) {', '.join(unknown)}; allowed: "
                  f"{', '.join(sorted(ALLOWED_KEYS))}")
    given = [k for k in QUERY_KEYS if data.get(k) not in (None, "")]
    if not given:
        raise bad("no query: give \"text\", \"image\" or \"item\"")
    if "item" in given and len(given) > 1:
        raise bad("an \"item\" query cannot be combined with \"text\" or \"image\"")
    query = Query(filters=_filters(data.get("filters"), bad))
    if "text" in given:
        query.text = _string(data["text"], "text", bad)
    if "image" in given:
        query.images = [_image(_string(data["image"], "image", bad), base_dir, bad)]
    if "item" in given:
        query.similar_to = _id(data["item"], "item", bad)
    if "relevant" not in data:
        raise bad("missing \"relevant\": list the ids that should be found")
    relevant = data["relevant"]
    if not isinstance(relevant, list):
        raise bad("\"relevant\" must be a list of ids")
    grades: dict[str, float] = {_id(r, "relevant", bad): 1.0 for r in relevant}
    extra = data.get("grades") or {}
    if not isinstance(extra, dict):
        raise bad("\"grades\" must be an object mapping ids to grades")
    for item_id, grade in extra.items():
        if item_id not in grades:
            raise bad(f"\"grades\" names {item_id!r}, which is not in \"relevant\"")
        if isinstance(grade, bool) or not isinstance(grade, int | float) or grade <= 0:
            raise bad(f"grade of {item_id!r} must be a number greater than 0, got {grade!r}")
        grades[item_id] = float(grade)
    query_id = None if data.get("id") is None else _id(data["id"], "id", bad)
    return QrelsQuery(line, query_id, query, grades)


def _string(value: Any, key: str, bad: Callable[[str], InvalidInputError]) -> str:
    if not isinstance(value, str):
        raise bad(f"\"{key}\" must be a string, got {value!r}")
    return value


def _id(value: Any, key: str, bad: Callable[[str], InvalidInputError]) -> str:
    if isinstance(value, str) and value:
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    raise bad(f"\"{key}\" must hold item ids (strings), got {value!r}")


def _image(ref: str, base_dir: Path, bad: Callable[[str], InvalidInputError]) -> str:
    if ref.startswith(("http://", "https://")):
        return ref
    path = Path(ref) if Path(ref).is_absolute() else base_dir / ref
    if not path.is_file():
        raise bad(f"image {path} does not exist (relative paths start at the qrels "
                  f"file's folder)")
    return str(path)


def _filters(value: Any, bad: Callable[[str], InvalidInputError]) -> Filters:
    if value is None:
        return Filters()
    if not isinstance(value, dict):
        raise bad("\"filters\" must be an object")
    unknown = sorted(set(value) - set(FILTER_FIELDS))
    if unknown:
        raise bad(f"unknown filter field(s) {', '.join(unknown)}; known: "
                  f"{', '.join(FILTER_FIELDS)}")
    fields: dict[str, Any] = {}
    for name, v in value.items():
        if v is None:
            continue
        if name in _LIST_FILTERS:
            values = [v] if isinstance(v, str) else v
            if not isinstance(values, list) or not all(isinstance(s, str) for s in values):
                raise bad(f"filter {name} must be a string or a list of strings, got {v!r}")
            fields[name] = tuple(values)
        elif name in _NUMBER_FILTERS + _INT_FILTERS:
            numeric = int if name in _INT_FILTERS else (int, float)
            if isinstance(v, bool) or not isinstance(v, numeric):
                raise bad(f"filter {name} must be a number, got {v!r}")
            fields[name] = v
        elif name == "orientation":
            if v not in ("landscape", "portrait", "square"):
                raise bad(f"filter orientation must be landscape, portrait or square, "
                          f"got {v!r}")
            fields[name] = v
        else:  # attributes
            if not isinstance(v, dict):
                raise bad(f"filter attributes must be an object, got {v!r}")
            fields[name] = dict(v)
    return Filters(**fields)


@dataclass
class QueryOutcome:
    qrels: QrelsQuery
    returned: list[str] = field(default_factory=list)
    metrics: dict[str, float] | None = None
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"id": self.qrels.id, "line": self.qrels.line,
                               "query": self.qrels.describe()}
        if self.error is not None:
            out["error"] = self.error
        else:
            out["metrics"] = _rounded(self.metrics or {})
        return out


@dataclass
class EvalRun:
    """Per-query outcomes of one configuration; ``overall`` averages the scored ones."""

    label: str
    ks: tuple[int, ...]
    outcomes: list[QueryOutcome]

    @property
    def scored(self) -> list[QueryOutcome]:
        return [o for o in self.outcomes if o.metrics is not None]

    @property
    def errors(self) -> list[QueryOutcome]:
        return [o for o in self.outcomes if o.error is not None]

    @property
    def overall(self) -> dict[str, float]:
        return mean_metrics([o.metrics for o in self.scored if o.metrics is not None])

    def to_dict(self) -> dict[str, Any]:
        return {"label": self.label, "ks": list(self.ks), "queries": len(self.outcomes),
                "scored": len(self.scored), "errors": len(self.errors),
                "overall": _rounded(self.overall),
                "per_query": [o.to_dict() for o in self.outcomes]}


def run_eval(queries: Sequence[QrelsQuery], config: EvalConfig,
             ks: Sequence[int] = DEFAULT_KS) -> EvalRun:
    """Search every query (fetching max(ks) results) and score it.

    A query without relevant ids, or one whose search fails for a reason of its own
    (an unknown item id, an unreadable image), becomes an error outcome that the
    overall means leave out.
    """
    ks = tuple(sorted(set(ks)))
    if not ks or ks[0] < 1:
        raise InvalidInputError(f"cut-offs K must be positive integers, got {list(ks)}")
    outcomes = []
    for q in queries:
        if not q.grades:
            outcomes.append(QueryOutcome(q, error="no relevant ids; it cannot be scored"))
            continue
        try:
            result = config.run(dataclasses.replace(q.query, limit=ks[-1], offset=0))
        except _PER_QUERY_ERRORS as exc:
            outcomes.append(QueryOutcome(q, error=exc.message))
            continue
        returned = [hit.id for hit in result.hits]
        outcomes.append(QueryOutcome(q, returned, query_metrics(returned, q.grades, ks)))
    return EvalRun(config.label, ks, outcomes)


@dataclass
class Comparison:
    """Two runs of the same qrels: means over the queries both scored, and B − A."""

    a: EvalRun
    b: EvalRun
    paired: list[tuple[QueryOutcome, QueryOutcome]]

    @property
    def overall(self) -> dict[str, tuple[float, float, float]]:
        mean_a = mean_metrics([oa.metrics for oa, _ in self.paired if oa.metrics])
        mean_b = mean_metrics([ob.metrics for _, ob in self.paired if ob.metrics])
        return {name: (mean_a[name], mean_b[name], mean_b[name] - mean_a[name])
                for name in mean_a}

    def to_dict(self) -> dict[str, Any]:
        per_query = []
        for oa, ob in zip(self.a.outcomes, self.b.outcomes, strict=True):
            row = oa.to_dict()
            row.pop("metrics", None)
            row.pop("error", None)
            row["a"] = {"error": oa.error} if oa.error else _rounded(oa.metrics or {})
            row["b"] = {"error": ob.error} if ob.error else _rounded(ob.metrics or {})
            per_query.append(row)
        return {"a": self.a.label, "b": self.b.label, "ks": list(self.a.ks),
                "queries": len(self.a.outcomes), "compared": len(self.paired),
                "overall": {name: {"a": round(va, 6), "b": round(vb, 6),
                                   "diff": round(d, 6)}
                            for name, (va, vb, d) in self.overall.items()},
                "per_query": per_query}


def compare(run_a: EvalRun, run_b: EvalRun) -> Comparison:
    """Pair two runs of the same qrels query by query (B − A is reported)."""
    lines_a = [o.qrels.line for o in run_a.outcomes]
    if lines_a != [o.qrels.line for o in run_b.outcomes] or run_a.ks != run_b.ks:
        raise InvalidInputError(f"runs {run_a.label!r} and {run_b.label!r} cannot be "
                                f"compared: they were made from different qrels or cut-offs")
    paired = [(oa, ob) for oa, ob in zip(run_a.outcomes, run_b.outcomes, strict=True)
              if oa.metrics is not None and ob.metrics is not None]
    return Comparison(run_a, run_b, paired)


def _rounded(metrics: Mapping[str, float]) -> dict[str, float]:
    return {name: round(value, 6) for name, value in metrics.items()}
