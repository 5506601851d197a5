"""Fixtures shared by every test package.

PostgreSQL: tests that need a server take ``postgres_db_url`` (or ``postgres_server_url``)
and are skipped unless ``LATBENCH_TEST_POSTGRES_URL`` names one (``eval
"$(scripts/start-postgres)"`` starts a local server and sets it). Each test gets its own
freshly created database, dropped afterwards, so tests never see each other's rows.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest

POSTGRES_ENV = "LATBENCH_TEST_POSTGRES_URL"


@pytest.fixture(scope="session")
def postgres_server_url() -> str:
    """The PostgreSQL URL from ``LATBENCH_TEST_POSTGRES_URL`` (psycopg 3 driver); skips
    the test when the variable is not set."""
    url = os.environ.get(POSTGRES_ENV)
    if not url and os.environ.get("CI"):
        pytest.fail(f"{POSTGRES_ENV} is not set in CI: scripts/test starts the server and sets it")
    if not url:
        pytest.skip(f'{POSTGRES_ENV} is not set (eval "$(scripts/start-postgres)" to run PostgreSQL tests)')
    from latbench.db import resolve_url

    return resolve_url(url)


@pytest.fixture
def postgres_db_url(postgres_server_url: str) -> Iterator[str]:
    """URL of a new, empty database on the test server, dropped after the test."""
    import sqlalchemy as sa
    from sqlalchemy.engine import make_url

    name = f"latbench_test_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(postgres_server_url, isolation_level="AUTOCOMMIT", poolclass=sa.NullPool)
    try:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
        yield make_url(postgres_server_url).set(database=name).render_as_string(hide_password=False)
    finally:
        try:
            with admin.connect() as conn:
                conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            admin.dispose()
