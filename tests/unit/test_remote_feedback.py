"""A node's click feedback: a log that cannot be opened never fails a search, and a
click then says why it was not recorded."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from imgsearch.config import Settings
from imgsearch.engine.remote_feedback import RemoteFeedback
from imgsearch.errors import BackendUnavailableError, InvalidInputError
from imgsearch.types import Query, SearchResult


class Down:
    def feedback(self) -> Any:
        raise BackendUnavailableError("milvus://db:19530/shop",
                                      "Milvus at db:19530 cannot be reached")


def node(settings: Settings) -> Any:
    return SimpleNamespace(settings=settings, backend=Down(), uri="milvus://db:19530/shop")


def test_a_log_that_cannot_be_opened_leaves_the_search_unlogged() -> None:
    feedback = RemoteFeedback(node(Settings()))
    result = feedback.logged(Query(text="shoes"), SearchResult([], "text", 1.0))
    assert result.search_id is None and result.query_kind == "text"
    with pytest.raises(BackendUnavailableError, match="db:19530"):
        feedback.record_click("s1", "p1", 1)


def test_with_logging_off_a_click_is_refused_saying_so() -> None:
    feedback = RemoteFeedback(node(Settings(log_searches=False)))
    assert feedback.logged(Query(text="x"), SearchResult([], "text", 1.0)).search_id is None
    with pytest.raises(InvalidInputError, match="IMGSEARCH_LOG_SEARCHES=0"):
        feedback.record_click("s1", "p1", 1)
    assert feedback.report(None) == {}
