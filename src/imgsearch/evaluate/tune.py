"""Choose a collection's text-fusion settings on its own relevance judgements.

``imgsearch tune qrels.jsonl -c COLLECTION`` searches the settings that shape how a
text query's lists are fused (``TUNED``: the keyword and concept weights, the
text-feedback beta, the neighbour-smoothing weights, the visual-feedback weight, RRF's
k and the fusion method) for the best mean of one
metric (``map@10`` by default) over the qrels' text queries, each searched for the
metric's top K with no minimum confidence.

The search is coordinate ascent from the current settings: each setting in turn tries
each of its candidate values with the others held; a value is kept when it raises the
mean and wins more queries than it loses, and the round repeats until nothing improves
(at most ``rounds`` rounds). A handful of queries is
easy to overfit, so the choice is judged by k-fold cross-validation: the queries are
dealt into ``folds`` folds (seeded); for each fold, settings are chosen on the other
folds and scored on it. Every query is thus scored once by settings that never saw it,
and that *held-out* score is compared with the current settings' score on the same
queries. The settings chosen on all queries are recommended only when the held-out
score beats the current one and more held-out queries win than lose; otherwise the
current settings stay. Each (settings, query) pair is searched once and remembered, so
the folds cost little beyond the search itself.
"""

from __future__ import annotations

import contextlib
import dataclasses
import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from imgsearch.config import Settings
from imgsearch.errors import InvalidInputError, StorageAccessError
from imgsearch.evaluate.metrics import query_metrics
from imgsearch.evaluate.runner import QrelsQuery
from imgsearch.types import Query, SearchResult

# candidate values of each tuned setting, tried in this order
TUNED: dict[str, tuple[Any, ...]] = {
    "weight_keyword": (0.0, 0.15, 0.333, 0.6, 1.0),
    "weight_concepts": (0.0, 0.5, 1.0, 1.5),
    "text_feedback_beta": (0.0, 0.5, 1.0, 2.0),
    "smooth_text": (0.0, 0.6, 1.0),
    "smooth_image": (0.0, 0.3, 0.6),
    "weight_visual_feedback": (0.0, 0.25, 0.5),
    "rrf_k": (10, 60),
    "fusion": ("rrf", "weighted"),
}
METRICS = ("map@10", "ndcg@10", "recall@10", "mrr")
_EPSILON = 1e-9


class Tunable(Protocol):
    """What is tuned: a searcher whose settings can be swapped between queries."""

    settings: Settings

    def search(self, query: Query) -> SearchResult: ...


@dataclass(frozen=True)
class QueryChange:
    label: str
    before: float
    after: float


@dataclass
class TuneReport:
    metric: str
    folds: int
    queries: int
    current: dict[str, Any]
    chosen: dict[str, Any]
    held_out_before: float  # current settings, mean over every query
    held_out_after: float  # each query scored by settings chosen without it
    all_before: float
    all_after: float  # the chosen settings on every query (seen in the choice)
    per_query: list[QueryChange] = field(default_factory=list)
    fold_choices: list[dict[str, Any]] = field(default_factory=list)
    searches: int = 0

    @property
    def wins(self) -> int:
        return sum(c.after > c.before + _EPSILON for c in self.per_query)

    @property
    def losses(self) -> int:
        return sum(c.after < c.before - _EPSILON for c in self.per_query)

    @property
    def improves(self) -> bool:
        """Whether the chosen settings are worth writing: better held out, more queries
        won than lost there, and different from the current ones."""
        return (self.held_out_after > self.held_out_before + _EPSILON
                and self.wins > self.losses and self.changes != {})

    @property
    def changes(self) -> dict[str, Any]:
        return {k: v for k, v in self.chosen.items() if self.current.get(k) != v}

    def to_dict(self) -> dict[str, Any]:
        return {
            "metric": self.metric, "folds": self.folds, "queries": self.queries,
            "current": self.current, "chosen": self.chosen, "changes": self.changes,
            "held_out": {"before": self.held_out_before, "after": self.held_out_after},
            "all_queries": {"before": self.all_before, "after": self.all_after},
            "wins": self.wins, "losses": self.losses,
            "tied": len(self.per_query) - self.wins - self.losses,
            "improves": self.improves, "fold_choices": self.fold_choices,
            "searches": self.searches,
            "per_query": [dataclasses.asdict(c) for c in self.per_query],
        }


Config = tuple[tuple[str, Any], ...]


class _Scores:
    """metric(config, query), each searched once."""

    def __init__(self, target: Tunable, qrels: Sequence[QrelsQuery], metric: str,
                 base: Settings) -> None:
        self.target, self.qrels, self.metric, self.base = target, qrels, metric, base
        self.cache: dict[tuple[Config, int], float] = {}
        _, _, k = metric.partition("@")
        self.ks = (int(k),) if k else (10,)

    def of(self, config: Config, index: int) -> float:
        key = (config, index)
        if key not in self.cache:
            self.target.settings = self.base.replace(**dict(config))
            q = self.qrels[index]
            query = dataclasses.replace(q.query, limit=self.ks[0], offset=0,
                                        min_confidence=0.0)
            ids = [h.id for h in self.target.search(query).hits]
            self.cache[key] = query_metrics(ids, q.grades, self.ks)[self.metric]
        return self.cache[key]

    def mean(self, config: Config, indexes: Sequence[int]) -> float:
        return sum(self.of(config, i) for i in indexes) / len(indexes) if indexes else 0.0


def _config(values: Mapping[str, Any]) -> Config:
    return tuple((name, values[name]) for name in TUNED)


def _ascend(scores: _Scores, start: Config, indexes: Sequence[int], rounds: int) -> Config:
    """Coordinate ascent over TUNED from ``start`` on the queries ``indexes``: a value is
    taken when it raises the mean and wins more of those queries than it loses (a mean
    raised by one or two queries' large swings is how a few queries get overfitted)."""
    best = start
    for _ in range(rounds):
        improved = False
        for name, values in TUNED.items():
            for value in values:
                trial = _config({**dict(best), name: value})
                if trial != best and _beats(scores, trial, best, indexes):
                    best, improved = trial, True
        if not improved:
            break
    return best


def _beats(scores: _Scores, trial: Config, best: Config, indexes: Sequence[int]) -> bool:
    diffs = [scores.of(trial, i) - scores.of(best, i) for i in indexes]
    wins = sum(d > _EPSILON for d in diffs)
    losses = sum(d < -_EPSILON for d in diffs)
    return sum(diffs) > _EPSILON and wins > losses


def tune(target: Tunable, qrels: Sequence[QrelsQuery], *, folds: int = 5,
         metric: str = "map@10", rounds: int = 3, seed: int = 0,
         progress: Callable[[str], None] | None = None) -> TuneReport:
    """Choose TUNED settings for ``target`` on text ``qrels`` (see the module doc);
    ``target.settings`` is left as it was."""
    if metric not in METRICS:
        raise InvalidInputError(f"tune: metric {metric!r} is not one of "
                                f"{', '.join(METRICS)}")
    text = [q for q in qrels if q.query.text and not q.query.images
            and q.query.similar_to is None]
    if len(text) < 2:
        raise InvalidInputError(
            f"tune needs at least 2 text queries with relevant ids, got {len(text)}; "
            f"image and item queries are not tuned here")
    if folds < 2:
        raise InvalidInputError(f"tune: --folds must be 2 or more, got {folds}")
    folds = min(folds, len(text))
    original = target.settings
    base = original.replace(result_cache_size=0)  # the cache does not know the settings
    current = _config({name: getattr(base, name) for name in TUNED})
    scores = _Scores(target, text, metric, base)
    order = list(range(len(text)))
    random.Random(seed).shuffle(order)
    fold_of = {index: n % folds for n, index in enumerate(order)}
    held_out: dict[int, float] = {}
    choices = []
    try:
        for fold in range(folds):
            train = [i for i in order if fold_of[i] != fold]
            test = [i for i in order if fold_of[i] == fold]
            chosen = _ascend(scores, current, train, rounds)
            choices.append(dict(chosen))
            for i in test:
                held_out[i] = scores.of(chosen, i)
            if progress is not None:
                progress(f"fold {fold + 1}/{folds}: held-out {metric} "
                         f"{scores.mean(current, test):.3f} -> "
                         f"{sum(held_out[i] for i in test) / len(test):.3f}")
        final = _ascend(scores, current, order, rounds)
    finally:
        target.settings = original
    everyone = list(range(len(text)))
    return TuneReport(
        metric=metric, folds=folds, queries=len(text), current=dict(current),
        chosen=dict(final), held_out_before=scores.mean(current, everyone),
        held_out_after=sum(held_out.values()) / len(held_out),
        all_before=scores.mean(current, everyone), all_after=scores.mean(final, everyone),
        per_query=[QueryChange(text[i].label, scores.of(current, i), held_out[i])
                   for i in everyone],
        fold_choices=choices, searches=len(scores.cache))


def write_settings(path: Path, changes: Mapping[str, Any]) -> None:
    """Set ``changes`` in the TOML settings file ``path`` (a collection's imgsearch.toml),
    keeping its other lines; written to a temporary file and renamed over it."""
    lines = path.read_text(encoding="utf-8").splitlines() if path.exists() else []
    left = dict(changes)
    out = []
    for line in lines:
        name = line.split("=", 1)[0].strip() if "=" in line and \
            not line.lstrip().startswith("#") else None
        if name in left:
            out.append(f"{name} = {_toml(left.pop(name))}")
        else:
            out.append(line)
    if left:
        out.append("# chosen by imgsearch tune")
        out += [f"{name} = {_toml(value)}" for name, value in left.items()]
    temporary = path.with_name(path.name + ".tmp")
    try:
        temporary.write_text("\n".join(out) + "\n", encoding="utf-8")
        temporary.replace(path)
    except OSError as exc:
        with contextlib.suppress(OSError):
            temporary.unlink(missing_ok=True)
        raise StorageAccessError(f"cannot write the chosen settings to {path} "
                                 f"({exc.strerror or exc}); nothing was changed") from None


def _toml(value: Any) -> str:
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, bool):
        return "true" if value else "false"
    return repr(value)
