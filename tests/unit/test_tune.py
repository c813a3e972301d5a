"""`imgsearch tune`: coordinate ascent judged by cross-validation, with a fake searcher
whose answers depend on the settings in known ways."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from imgsearch.config import Settings
from imgsearch.errors import InvalidInputError
from imgsearch.evaluate.runner import QrelsQuery
from imgsearch.evaluate.tune import tune, write_settings
from imgsearch.types import Query, SearchHit, SearchResult


class FakeSearcher:
    """Query ``q<n>``'s relevant id is ``r<n>``; ``good(settings, n)`` says whether the
    searcher puts it first (else it is not returned at all)."""

    def __init__(self, good: Callable[[Settings, int], bool]) -> None:
        self.settings = Settings()
        self.good = good
        self.seen: list[Settings] = []

    def search(self, query: Query) -> SearchResult:
        assert query.text is not None
        n = int(query.text[1:])
        self.seen.append(self.settings)
        ids = [f"r{n}"] if self.good(self.settings, n) else []
        ids += [f"noise{i}" for i in range(query.limit - len(ids))]
        return SearchResult([SearchHit(i, 1.0) for i in ids], "text", 1.0)


def _qrels(n: int) -> list[QrelsQuery]:
    return [QrelsQuery(i + 1, f"q{i}", Query(text=f"q{i}"), {f"r{i}": 1.0})
            for i in range(n)]


def test_a_setting_that_helps_every_query_is_chosen_and_wins_held_out() -> None:
    searcher = FakeSearcher(lambda s, n: s.weight_keyword == 1.0)
    report = tune(searcher, _qrels(10), folds=5)
    assert report.changes == {"weight_keyword": 1.0}
    assert report.held_out_before == 0.0 and report.held_out_after == 1.0
    assert (report.wins, report.losses) == (10, 0) and report.improves
    assert searcher.settings == Settings()  # left as it was
    assert all(s.result_cache_size == 0 for s in searcher.seen)  # the cache is blind


def test_a_setting_that_helps_one_query_only_is_not_shipped() -> None:
    # helps q0 and nothing else: chosen whenever q0 is in the training folds, and so
    # never scored on q0; the held-out score cannot beat the current settings
    searcher = FakeSearcher(lambda s, n: n == 0 and s.fusion == "weighted")
    report = tune(searcher, _qrels(10), folds=5)
    assert report.chosen["fusion"] == "weighted"  # on all queries it looks better...
    assert report.all_after > report.all_before
    assert report.held_out_after == report.held_out_before  # ...but not held out
    assert not report.improves


def test_a_setting_that_loses_held_out_is_not_shipped() -> None:
    # rrf_k 10 helps the even queries and hurts the odd ones by as much: ties at best
    searcher = FakeSearcher(lambda s, n: (s.rrf_k == 10) == (n % 2 == 0))
    report = tune(searcher, _qrels(10), folds=5)
    assert not report.improves and report.losses >= report.wins


@pytest.mark.parametrize(("qrels", "folds", "metric", "why"), [
    (_qrels(1), 5, "map@10", "at least 2 text queries"),
    (_qrels(4), 1, "map@10", "--folds must be 2 or more"),
    (_qrels(4), 2, "p@3", "metric 'p@3'"),
])
def test_bad_requests_are_refused(qrels: list[QrelsQuery], folds: int, metric: str,
                                  why: str) -> None:
    with pytest.raises(InvalidInputError, match=why):
        tune(FakeSearcher(lambda s, n: True), qrels, folds=folds, metric=metric)


def test_write_settings_keeps_the_other_lines(tmp_path: Path) -> None:
    path = tmp_path / "imgsearch.toml"
    path.write_text('# mine\ndefault_limit = 24\nweight_keyword = 0.333\n')
    write_settings(path, {"weight_keyword": 1.0, "fusion": "weighted"})
    text = path.read_text()
    assert text.startswith("# mine\ndefault_limit = 24\nweight_keyword = 1.0\n")
    assert 'fusion = "weighted"' in text
    import tomllib
    assert tomllib.loads(text) == {"default_limit": 24, "weight_keyword": 1.0,
                                   "fusion": "weighted"}


def test_an_unwritable_settings_file_is_a_clear_error(tmp_path: Path) -> None:
    from imgsearch.errors import StorageAccessError

    folder = tmp_path / "collection-that-is-a-file"
    folder.write_text("not a folder")
    with pytest.raises(StorageAccessError, match="cannot write the chosen settings"):
        write_settings(folder / "imgsearch.toml", {"weight_keyword": 1.0})
