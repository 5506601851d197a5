"""Fixtures for the latbench tests (the PostgreSQL ones are in tests/conftest.py)."""

from __future__ import annotations

import os

import pytest


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path: os.PathLike[str]) -> str:
    """A fresh measurement database location: a SQLite file path, and (marked ``postgres``,
    skipped without a server) a fresh PostgreSQL database URL."""
    if request.param == "sqlite":
        return os.path.join(os.fspath(tmp_path), "measurements.db")
    return request.getfixturevalue("postgres_db_url")
