"""Fixtures for the tests against a real PostgreSQL (marker `cluster`): one throwaway server
per test session (`pg_harness.PgServer`), a fresh database per test."""

from __future__ import annotations

import itertools
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from pg_harness import PgServer  # noqa: E402

_names = itertools.count(1)


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PgServer]:
    server = PgServer.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def pg_dsn(pg_server: PgServer) -> str:
    """A new empty database on the session's server (its password: `pg_server.password`)."""
    return pg_server.create_database(f"t{next(_names)}")
