"""Hostile inputs and kill -9: the behaviours that must keep holding.

Every case sends something an attacker or an unlucky operator would (oversized or
malformed bodies, decompression bombs, foreign formats, SSRF address tricks, symlinks
out of a folder, broken catalog rows, bad flags) through the CLI or the HTTP API, and
asserts its *specific* answer: the HTTP status and JSON error code, or the CLI exit
code and a fragment of its message. Afterwards the collection must still open with
its known items searchable (``conftest.assert_intact`` / ``reopen_and_check``).

Run it:

    python -m pytest -q tests/hostile

The crash loops (``test_crash_loop.py``) kill -9 a CLI ``index`` and an HTTP server
taking PUT/DELETE at random moments, then check that every acknowledged write is there
and that catalog and indexes agree. CI runs a few rounds; run it long with

    python -m pytest -q tests/hostile/test_crash_loop.py --crash-iterations 200
    IMGSEARCH_TEST_CRASH_ITERATIONS=200 python -m pytest -q tests/hostile

Cases marked ``xfail(strict=True)`` describe a behaviour that does not hold yet; the
reason names the fault. When it is fixed the test passes, strict xfail turns that into
a failure, and the mark must be removed.
"""
