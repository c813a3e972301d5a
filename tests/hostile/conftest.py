"""Fixtures of the hostile-input suite (how to run it: see ``tests/hostile/__init__.py``).

Every module gets one small collection of known items (``checks.KNOWN``, tiny JPEGs)
and, for HTTP, a ``TestClient`` that re-raises server exceptions, so a 500 fails the
test that caused it. Tests that add items use ids of their own and remove them again;
after each hostile request ``assert_intact`` checks that the known items are still
there and still found by their own image, and on teardown the collection is closed and
opened again from disk with the same check.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

# Reuse the web tests' error-shape helpers, the fetch tests' loopback server and
# the crash test's indexing process.
_TESTS = Path(__file__).resolve().parent.parent
for _folder in ("web", "unit", "integration"):
    if str(_TESTS / _folder) not in sys.path:
        sys.path.append(str(_TESTS / _folder))

from hostile.checks import hostile_settings, known_items, reopen_and_check  # noqa: E402
from imgsearch.engine import Engine  # noqa: E402

CRASH_ENV = "IMGSEARCH_TEST_CRASH_ITERATIONS"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--crash-iterations", type=int, default=None,
                     help="kill -9 rounds per crash loop in tests/hostile (default 3; "
                          f"also from ${CRASH_ENV})")


@pytest.fixture(scope="session")
def crash_iterations(request: pytest.FixtureRequest) -> int:
    # The option is registered only when pytest starts from tests/hostile; the
    # environment variable works from anywhere. Read here, at the edge of the run.
    given = request.config.getoption("--crash-iterations", default=None)
    if given is None:
        given = int(os.environ.get(CRASH_ENV, "3"))
    return max(1, int(given))


@pytest.fixture(scope="module")
def known_engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engine]:
    directory = tmp_path_factory.mktemp("hostile") / "collection"
    engine = Engine.open(directory, hostile_settings())
    report = engine.ingest_items(known_items())
    assert report.ok, report.failed
    yield engine
    engine.close()
    reopen_and_check(directory)


@pytest.fixture(scope="module")
def client(known_engine: Engine) -> Iterator[TestClient]:
    from imgsearch.web import create_app

    with TestClient(create_app(known_engine)) as test_client:
        yield test_client
