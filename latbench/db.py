"""The measurement database: every ``Measurement`` with its raw samples and provenance.

SQLite (a file path) by default; PostgreSQL by URL when many machines profile into one
place. SQLAlchemy Core only, no ORM: the rows are flat, and the typed objects live in
``latbench.measurement``.

Identity is ``(spec_key, target_key, fingerprint_key)``: a spec measured once on a target
with a given fingerprint is never measured (or stored) again, which is what makes an
interrupted ``profile`` resumable. Several processes may profile the same target into the
same database at once; they split the work through the ``claims`` table (see
:meth:`MeasurementDB.claim`), and a claim left behind by a dead process is reclaimed.

Every failure to open, connect to or trust a database is a one-line
:class:`~latbench.errors.DatabaseError` that says how to fix it; URLs in messages never
show a password.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import socket
import sqlite3
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy import exc as sa_exc
from sqlalchemy.dialects import postgresql as pg_dialect
from sqlalchemy.dialects import sqlite as sqlite_dialect
from sqlalchemy.engine import Connection, Engine, make_url

import latbench
from latbench.errors import ConfigError, DatabaseError, LatbenchError
from latbench.files import atomic_output
from latbench.fingerprint import Fingerprint, collect
from latbench.measurement import KernelTime, Measurement
from latbench.specs import BlockSpec, EncoderSpec, ModelSpec, OpSpec, Spec, spec_from_dict
from latbench.target import Target

SCHEMA_VERSION = 1
#: Nullable columns added after version 1, with their SQL type. A database that lacks
#: them gets them on open (``ALTER TABLE ... ADD COLUMN``), so databases written before
#: stay readable and writable; latbench versions that predate a column ignore it, so
#: adding one does not bump ``SCHEMA_VERSION`` (which makes older versions refuse).
_ADDED_COLUMNS: dict[str, str] = {"extras_json": "TEXT"}
SQLITE_BUSY_TIMEOUT_S = 30.0
POSTGRES_CONNECT_TIMEOUT_S = 10
_CLAIMS_LOCK_ID = 0x6C617462656E6368  # "latbench": PostgreSQL advisory lock of the claims
_CHUNK = 500  # keys per IN (...) list; far below every dialect's parameter limit
_FIX_DB = "move it away or pass another --db"

metadata = sa.MetaData()

measurements_table = sa.Table(
    "measurements",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    # what was measured
    sa.Column("spec_key", sa.String(20), nullable=False),
    sa.Column("spec_kind", sa.String(16), nullable=False),
    sa.Column("label", sa.Text, nullable=False),
    sa.Column("spec_json", sa.Text, nullable=False),
    sa.Column("op", sa.String(64), nullable=True),
    sa.Column("hidden", sa.Integer, nullable=True),
    sa.Column("heads", sa.Integer, nullable=True),
    sa.Column("ffn", sa.Integer, nullable=True),
    sa.Column("layers", sa.Integer, nullable=True),
    sa.Column("context", sa.String(16), nullable=True),
    sa.Column("batch", sa.Integer, nullable=False),
    sa.Column("seq_len", sa.Integer, nullable=False),
    sa.Column("precision", sa.String(16), nullable=False),
    # where
    sa.Column("target_key", sa.String(20), nullable=False),
    sa.Column("target_name", sa.Text, nullable=False),
    sa.Column("target_json", sa.Text, nullable=False),
    sa.Column("fingerprint_key", sa.String(20), nullable=False),
    sa.Column("fingerprint_json", sa.Text, nullable=False),
    sa.Column("cpu_model", sa.Text, nullable=False),
    sa.Column("hostname", sa.Text, nullable=False),
    sa.Column("worker", sa.Text, nullable=False),
    # statistics of times_s (derived, stored for queries), and the raw samples
    sa.Column("median_s", sa.Double, nullable=False),
    sa.Column("p10_s", sa.Double, nullable=False),
    sa.Column("p90_s", sa.Double, nullable=False),
    sa.Column("p99_s", sa.Double, nullable=False),
    sa.Column("iqr_s", sa.Double, nullable=False),
    sa.Column("min_s", sa.Double, nullable=False),
    sa.Column("mean_s", sa.Double, nullable=False),
    sa.Column("n_samples", sa.Integer, nullable=False),
    sa.Column("iterations_per_sample", sa.Integer, nullable=False),
    sa.Column("rounds", sa.Integer, nullable=False),
    sa.Column("stable", sa.Boolean, nullable=False),
    sa.Column("build_time_s", sa.Double, nullable=False),
    sa.Column("times_s_json", sa.Text, nullable=False),
    sa.Column("kernels_json", sa.Text, nullable=False),
    sa.Column("measured_at", sa.String(40), nullable=False),
    sa.Column("latbench_version", sa.String(32), nullable=False),
    # backend figures about the program run (Measurement.extras): a JSON object; NULL in
    # rows written before the column existed
    sa.Column("extras_json", sa.Text, nullable=True),
    sa.UniqueConstraint("spec_key", "target_key", "fingerprint_key", name="uq_measurement_identity"),
    sa.Index("ix_measurements_target_fingerprint", "target_key", "fingerprint_key"),
)

meta_table = sa.Table(
    "meta",
    metadata,
    sa.Column("key", sa.String(64), primary_key=True),
    sa.Column("value", sa.Text, nullable=False),
)

claims_table = sa.Table(
    "claims",
    metadata,
    sa.Column("spec_key", sa.String(20), primary_key=True),
    sa.Column("target_key", sa.String(20), primary_key=True),
    sa.Column("fingerprint_key", sa.String(20), primary_key=True),
    sa.Column("worker", sa.Text, nullable=False),
    sa.Column("claimed_at", sa.Double, nullable=False),
    sa.Index("ix_claims_worker", "worker"),
)

_IDENTITY = ("spec_key", "target_key", "fingerprint_key")


def resolve_url(db: str | os.PathLike[str]) -> str:
    """The SQLAlchemy URL for a ``--db`` value.

    A plain path becomes ``sqlite:///<absolute path>``; anything containing ``://`` is a
    URL used as is, except that ``postgresql://`` (and ``postgres://``) select the psycopg 3
    driver, the one latbench installs.
    """
    text = os.fspath(db).strip()
    if not text:
        raise ConfigError("empty database path; pass --db FILE.db or --db postgresql://...")
    if "://" not in text:
        if text == ":memory:":
            return "sqlite://"
        return "sqlite:///" + os.path.abspath(os.path.expanduser(text))
    for scheme in ("postgresql://", "postgres://"):
        if text.startswith(scheme):
            return "postgresql+psycopg://" + text[len(scheme) :]
    return text


def default_worker() -> str:
    """This process's worker name, ``<hostname>:<pid>`` (what :meth:`MeasurementDB.claim`
    recognises to reclaim the claims of a dead local process)."""
    return f"{socket.gethostname()}:{os.getpid()}"


def _pid_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    except OSError:
        return True  # cannot tell: never steal a live worker's claims
    return True


def _chunks(keys: Sequence[str]) -> Iterator[list[str]]:
    for i in range(0, len(keys), _CHUNK):
        yield list(keys[i : i + _CHUNK])


def _unique(keys: Sequence[str]) -> list[str]:
    return list(dict.fromkeys(keys))


def _dumps(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def _spec_columns(spec: Spec) -> dict[str, Any]:
    """The flat, queryable columns of a spec (dimensions it lacks are NULL)."""
    cols: dict[str, Any] = {
        "op": None,
        "hidden": None,
        "heads": None,
        "ffn": None,
        "layers": None,
        "context": None,
    }
    if isinstance(spec, OpSpec):
        cols.update(op=spec.op, hidden=spec.hidden or None, heads=spec.heads or None, ffn=spec.ffn or None)
    elif isinstance(spec, BlockSpec):
        cols.update(
            hidden=spec.layer.hidden,
            heads=spec.layer.heads,
            ffn=spec.layer.ffn,
            context=spec.context,
        )
    elif isinstance(spec, EncoderSpec):
        cols.update(hidden=spec.arch.hidden, layers=spec.arch.num_layers)
    elif isinstance(spec, ModelSpec):
        if spec.arch is not None:
            cols.update(hidden=spec.arch.hidden, layers=spec.arch.num_layers)
    else:  # pragma: no cover - Spec is a closed union
        raise TypeError(f"not a spec: {spec!r}")
    w = spec.workload
    cols.update(batch=w.batch, seq_len=w.seq_len, precision=w.precision)
    return cols


def _row_of(m: Measurement) -> dict[str, Any]:
    stats = m.stats
    return {
        "spec_key": m.spec.key,
        "spec_kind": m.spec.kind,
        "label": m.spec.label,
        "spec_json": _dumps(m.spec.to_dict()),
        **_spec_columns(m.spec),
        "target_key": m.target.key,
        "target_name": m.target.name,
        "target_json": _dumps(m.target.to_dict()),
        "fingerprint_key": m.fingerprint.key,
        "fingerprint_json": _dumps(m.fingerprint.to_dict()),
        "cpu_model": m.fingerprint.cpu_model,
        "hostname": m.fingerprint.hostname,
        "worker": m.worker,
        "median_s": stats.median_s,
        "p10_s": stats.p10_s,
        "p90_s": stats.p90_s,
        "p99_s": stats.p99_s,
        "iqr_s": stats.iqr_s,
        "min_s": stats.min_s,
        "mean_s": stats.mean_s,
        "n_samples": stats.n,
        "iterations_per_sample": m.iterations_per_sample,
        "rounds": m.rounds,
        "stable": bool(m.stable),
        "build_time_s": float(m.build_time_s),
        "times_s_json": json.dumps([float(t) for t in m.times_s]),
        "kernels_json": json.dumps(
            [{"op_type": k.op_type, "count": k.count, "time_s": float(k.time_s)} for k in m.kernels]
        ),
        "measured_at": m.measured_at,
        "latbench_version": latbench.__version__,
        "extras_json": _dumps(dict(m.extras)),
    }


def _measurement_of(row: Any) -> Measurement:
    return Measurement(
        spec=spec_from_dict(json.loads(row.spec_json)),
        target=Target.from_dict(json.loads(row.target_json)),
        fingerprint=Fingerprint.from_dict(json.loads(row.fingerprint_json)),
        times_s=tuple(float(t) for t in json.loads(row.times_s_json)),
        iterations_per_sample=int(row.iterations_per_sample),
        rounds=int(row.rounds),
        stable=bool(row.stable),
        build_time_s=float(row.build_time_s),
        measured_at=row.measured_at,
        kernels=tuple(
            KernelTime(str(k["op_type"]), int(k["count"]), float(k["time_s"]))
            for k in json.loads(row.kernels_json)
        ),
        worker=row.worker or "",
        extras=json.loads(row.extras_json) if row.extras_json else (),
    )


def _first_line(exc: BaseException) -> str:
    orig = getattr(exc, "orig", None) or exc
    lines = [line.strip() for line in str(orig).strip().splitlines() if line.strip()]
    return lines[0] if lines else type(orig).__name__


class MeasurementDB:
    """A measurement database (SQLite file or PostgreSQL URL).

    ``url`` is anything :func:`resolve_url` accepts. With ``create`` the schema is created
    when missing; without it a database that does not exist yet is an error (for commands
    that only read). ``clock`` (unix seconds) is injectable for tests of claim leases.
    """

    def __init__(
        self,
        url: str | os.PathLike[str],
        *,
        create: bool = True,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._engine: Engine | None = None
        self._clock = clock
        self._url = resolve_url(url)
        try:
            parsed = make_url(self._url)
        except sa_exc.ArgumentError:
            raise DatabaseError(
                f"{self._url.split('://')[0]}://... is not a valid database URL; pass a file path "
                "or a URL like postgresql://user:password@host:5432/dbname"
            ) from None
        self._parsed = parsed
        self._dialect = parsed.get_backend_name()
        self._sqlite_path = parsed.database if self._dialect == "sqlite" else None
        if self._sqlite_path in ("", ":memory:"):
            self._sqlite_path = None
        self._display = self._sqlite_path or parsed.render_as_string(hide_password=True)
        if self._dialect not in ("sqlite", "postgresql"):
            raise DatabaseError(
                f"unsupported database {self._display}: latbench stores measurements in SQLite "
                "(a file path) or PostgreSQL (postgresql://...)"
            )
        if self._sqlite_path is not None:
            self._check_sqlite_path(create)
        try:
            self._engine = self._create_engine()
            self._open(create)
        except LatbenchError:
            self.close()
            raise
        except (sa_exc.SQLAlchemyError, sqlite3.Error, OSError, ImportError) as exc:
            self.close()
            raise DatabaseError(self._describe(exc)) from exc

    # --- opening ------------------------------------------------------------------------
    def _check_sqlite_path(self, create: bool) -> None:
        path = Path(self._sqlite_path or "")
        parent = path.parent
        if not parent.is_dir():
            raise DatabaseError(
                f"cannot create measurement database {path}: directory {parent} does not exist; "
                "create it first or pass another --db"
            )
        if path.is_dir():
            raise DatabaseError(f"measurement database {path} is a directory; pass a file path as --db")
        if not create and not path.exists():
            raise DatabaseError(
                f"no measurement database at {path}; run `latbench profile --db {path}` first "
                "or pass another --db"
            )

    def _create_engine(self) -> Engine:
        if self._dialect == "sqlite":
            engine = sa.create_engine(
                self._url,
                connect_args={"timeout": SQLITE_BUSY_TIMEOUT_S, "check_same_thread": False},
            )

            @sa.event.listens_for(engine, "connect")
            def _on_connect(dbapi_conn: Any, _record: Any) -> None:
                # SQLAlchemy, not the sqlite3 module, emits BEGIN (see _on_begin).
                dbapi_conn.isolation_level = None
                cur = dbapi_conn.cursor()
                try:
                    cur.execute(f"PRAGMA busy_timeout = {int(SQLITE_BUSY_TIMEOUT_S * 1000)}")
                    if self._sqlite_path is not None:
                        # WAL: readers never block the writer, and two processes can write.
                        cur.execute("PRAGMA journal_mode = WAL")
                finally:
                    cur.close()

            @sa.event.listens_for(engine, "begin")
            def _on_begin(conn: Connection) -> None:
                # A write transaction takes the write lock up front (waiting up to the busy
                # timeout) instead of failing when a read turns into a write under WAL.
                immediate = conn.get_execution_options().get("latbench_write", False)
                conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

            return engine
        return sa.create_engine(
            self._url,
            pool_pre_ping=True,
            connect_args={
                "connect_timeout": POSTGRES_CONNECT_TIMEOUT_S,
                "application_name": "latbench",
            },
        )

    def _open(self, create: bool) -> None:
        for attempt in range(6):
            try:
                with self._write() as conn:
                    self._check_schema(conn, create)
                    if create:
                        metadata.create_all(conn, checkfirst=True)
                        conn.execute(
                            self._insert(meta_table)
                            .values(key="schema_version", value=str(SCHEMA_VERSION))
                            .on_conflict_do_nothing(index_elements=["key"])
                        )
                    self._check_version(conn)
                return
            except (sa_exc.IntegrityError, sa_exc.ProgrammingError):
                # Two processes creating the schema at once on PostgreSQL: the loser's
                # CREATE TABLE fails once the winner commits; the second look finds it.
                if attempt or not create or self._dialect != "postgresql":
                    raise
            except sa_exc.OperationalError as exc:
                # Openers of a new SQLite file all switch it to WAL, which takes the file's
                # exclusive lock: SQLite answers one of two waiting openers at once with
                # "database is locked" (a deadlock it does not wait out). It holds no lock
                # afterwards, so a second try after the others is clean.
                if self._dialect != "sqlite" or "locked" not in str(exc).lower() or attempt == 5:
                    raise
                time.sleep(0.05 * 2**attempt)

    def _check_schema(self, conn: Connection, create: bool) -> None:
        inspector = sa.inspect(conn)
        existing = set(inspector.get_table_names())
        for table in (measurements_table, meta_table, claims_table):
            if table.name not in existing:
                continue
            have = {c["name"] for c in inspector.get_columns(table.name)}
            missing = [c.name for c in table.columns if c.name not in have]
            if table is measurements_table and missing and set(missing) <= set(_ADDED_COLUMNS):
                self._add_columns(conn, missing)
                missing = []
            if missing:
                raise DatabaseError(
                    f"{self._display} has a table {table.name!r} that is not latbench's (missing "
                    f"column(s) {', '.join(missing[:5])}{', ...' if len(missing) > 5 else ''}); "
                    f"{_FIX_DB}"
                )
        if not create and "measurements" not in existing:
            raise DatabaseError(
                f"{self._display} is not a latbench measurement database (no measurements table); "
                "run `latbench profile` into it first or pass another --db"
            )

    def _add_columns(self, conn: Connection, names: Sequence[str]) -> None:
        """Add columns of ``_ADDED_COLUMNS`` to a measurements table written before them
        (in the open's write transaction: concurrent openers add each column once)."""
        guard = " IF NOT EXISTS" if self._dialect == "postgresql" else ""
        for name in names:
            conn.exec_driver_sql(
                f"ALTER TABLE {measurements_table.name} ADD COLUMN{guard} {name} {_ADDED_COLUMNS[name]}"
            )

    def _check_version(self, conn: Connection) -> None:
        if not sa.inspect(conn).has_table("meta"):
            return  # an old database opened read-only: nothing newer than us
        value = conn.execute(
            sa.select(meta_table.c.value).where(meta_table.c.key == "schema_version")
        ).scalar_one_or_none()
        if value is None:
            return
        try:
            version = int(value)
        except ValueError:
            raise DatabaseError(
                f"{self._display} has an unreadable schema_version {value!r} (not a latbench "
                f"database?); {_FIX_DB}"
            ) from None
        if version > SCHEMA_VERSION:
            raise DatabaseError(
                f"{self._display} was written by a newer latbench (schema version {version}, this "
                f"latbench {latbench.__version__} reads version {SCHEMA_VERSION}); upgrade latbench"
            )

    def _describe(self, exc: BaseException) -> str:
        """One line for a failure to open or use the database, without a password."""
        reason = _first_line(exc)
        password = self._parsed.password
        if password:
            reason = reason.replace(str(password), "***")
        if isinstance(exc, ImportError):
            return (
                f"cannot open {self._display}: the database driver is not installed ({reason}); "
                "install it with pip install 'latbench[postgres]'"
            )
        if self._dialect == "sqlite":
            lowered = reason.lower()
            where = f"cannot open measurement database {self._display}"
            if "not a database" in lowered or "malformed" in lowered:
                return f"{where}: file is not a database (corrupt, or not a latbench database); {_FIX_DB}"
            if "locked" in lowered or "busy" in lowered:
                return (
                    f"{where}: the database stayed locked by another process for "
                    f"{SQLITE_BUSY_TIMEOUT_S:.0f} s; retry when it is done, or pass another --db"
                )
            if "readonly" in lowered or "read-only" in lowered:
                return f"{where}: the file is read-only; make it writable or pass another --db"
            if "unable to open" in lowered:
                return f"{where}: unable to open the file; check the path and its permissions"
            return f"{where}: {reason}; {_FIX_DB}"
        where = f"cannot connect to {self._display}"
        lowered = reason.lower()
        if "connection refused" in lowered:
            return f"{where}: connection refused; check the server is running and the URL"
        if "password authentication failed" in lowered or "no password supplied" in lowered:
            return f"{where}: authentication failed; check the user and password in the URL"
        m = re.search(r'database "([^"]+)" does not exist', reason)
        if m:
            return f"{where}: database {m.group(1)!r} does not exist; create it (createdb) or fix the URL"
        if "timeout" in lowered:
            return f"{where}: connection timed out; check the host and port in the URL"
        if "translate host name" in lowered or "name or service not known" in lowered:
            return f"{where}: unknown host; check the host name in the URL"
        reason = reason.rstrip(".")
        if isinstance(exc, sa_exc.OperationalError | sa_exc.InterfaceError):
            return f"{where}: {reason}; check the server is running and the URL"
        return (
            f"cannot use measurement database {self._display}: {reason}; "
            "check the user's privileges on it, or pass another --db"
        )

    # --- plumbing -----------------------------------------------------------------------
    @property
    def engine(self) -> Engine:
        if self._engine is None:
            raise DatabaseError(f"measurement database {self._display} is closed")
        return self._engine

    @contextlib.contextmanager
    def _write(self, *, serialize: bool = False) -> Iterator[Connection]:
        """A connection in one write transaction, committed on success, rolled back on any
        error. On SQLite it holds the write lock from the start (BEGIN IMMEDIATE), so write
        transactions of all processes run one after another. On PostgreSQL ``serialize``
        does the same for the transactions that touch claims (a transaction-level advisory
        lock): two workers claiming overlapping specs in different orders cannot deadlock.
        """
        with self.engine.connect() as conn:
            conn = conn.execution_options(latbench_write=True)
            with conn.begin():
                if serialize and self._dialect == "postgresql":
                    conn.execute(sa.select(sa.func.pg_advisory_xact_lock(_CLAIMS_LOCK_ID)))
                yield conn

    @contextlib.contextmanager
    def _read(self) -> Iterator[Connection]:
        with self.engine.connect() as conn, conn.begin():
            yield conn

    @contextlib.contextmanager
    def _translating(self) -> Iterator[None]:
        try:
            yield
        except (sa_exc.OperationalError, sa_exc.InterfaceError) as exc:
            raise DatabaseError(self._describe(exc)) from exc

    def _insert(self, table: sa.Table) -> Any:
        if self._dialect == "postgresql":
            return pg_dialect.insert(table)
        return sqlite_dialect.insert(table)

    @staticmethod
    def _where(
        table: sa.Table,
        target_key: str | None = None,
        fingerprint_key: str | None = None,
        kind: str | None = None,
    ) -> list[Any]:
        clauses = []
        if target_key is not None:
            clauses.append(table.c.target_key == target_key)
        if fingerprint_key is not None:
            clauses.append(table.c.fingerprint_key == fingerprint_key)
        if kind is not None:
            clauses.append(table.c.spec_kind == kind)
        return clauses

    @property
    def url(self) -> str:
        """The database URL, password hidden."""
        return self._parsed.render_as_string(hide_password=True)

    @property
    def dialect(self) -> str:
        """``"sqlite"`` or ``"postgresql"``."""
        return self._dialect

    def close(self) -> None:
        if self._engine is not None:
            self._engine.dispose()
            self._engine = None

    def __enter__(self) -> MeasurementDB:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"MeasurementDB({self.url!r})"

    # --- writing ------------------------------------------------------------------------
    def add(self, measurements: Sequence[Measurement], *, worker: str | None = None) -> int:
        """Store ``measurements`` in one transaction; returns how many were new.

        One already stored (same spec, target and fingerprint) is left as it is. With
        ``worker``, that worker's claims on these specs are dropped in the same transaction,
        so a spec is never both unclaimed and unmeasured in between. The stored ``worker``
        column is each measurement's own ``worker`` field.
        """
        if not measurements:
            return 0
        rows = [_row_of(m) for m in measurements]
        t = measurements_table
        stmt = self._insert(t).on_conflict_do_nothing(index_elements=list(_IDENTITY)).returning(t.c.id)
        with self._translating(), self._write(serialize=worker is not None) as conn:
            added = len(conn.execute(stmt, rows).all())
            if worker is not None:
                groups: dict[tuple[str, str], list[str]] = {}
                for row in rows:
                    groups.setdefault((row["target_key"], row["fingerprint_key"]), []).append(row["spec_key"])
                c = claims_table.c
                for (target_key, fingerprint_key), keys in groups.items():
                    for chunk in _chunks(_unique(keys)):
                        conn.execute(
                            claims_table.delete().where(
                                c.worker == worker,
                                c.target_key == target_key,
                                c.fingerprint_key == fingerprint_key,
                                c.spec_key.in_(chunk),
                            )
                        )
        return added

    def claim(
        self,
        spec_keys: Sequence[str],
        target_key: str,
        fingerprint_key: str,
        worker: str,
        *,
        lease_s: float = 900.0,
    ) -> list[str]:
        """Claim the not yet measured ``spec_keys`` for ``worker``; returns the keys it now
        holds, in input order.

        Claims older than ``lease_s`` seconds, and claims of a process of this host that is
        no longer alive (worker ``<hostname>:<pid>``), are stale and dropped first. A spec
        another live worker holds is not returned; one this worker already holds is
        returned again with its lease renewed. Measure what is returned, then ``add`` it
        with the same ``worker``.
        """
        keys = _unique(list(spec_keys))
        now = self._clock()
        c = claims_table.c
        m = measurements_table.c
        with self._translating(), self._write(serialize=True) as conn:
            self._drop_stale_claims(conn, now, lease_s)
            measured: set[str] = set()
            for chunk in _chunks(keys):
                measured.update(
                    conn.execute(
                        sa.select(m.spec_key).where(
                            m.target_key == target_key,
                            m.fingerprint_key == fingerprint_key,
                            m.spec_key.in_(chunk),
                        )
                    ).scalars()
                )
            todo = [k for k in keys if k not in measured]
            if not todo:
                return []
            for chunk in _chunks(todo):
                conn.execute(
                    claims_table.update()
                    .where(
                        c.worker == worker,
                        c.target_key == target_key,
                        c.fingerprint_key == fingerprint_key,
                        c.spec_key.in_(chunk),
                    )
                    .values(claimed_at=now)
                )
            conn.execute(
                self._insert(claims_table).on_conflict_do_nothing(index_elements=list(_IDENTITY)),
                [
                    {
                        "spec_key": k,
                        "target_key": target_key,
                        "fingerprint_key": fingerprint_key,
                        "worker": worker,
                        "claimed_at": now,
                    }
                    for k in todo
                ],
            )
            held: set[str] = set()
            for chunk in _chunks(todo):
                held.update(
                    conn.execute(
                        sa.select(c.spec_key).where(
                            c.worker == worker,
                            c.target_key == target_key,
                            c.fingerprint_key == fingerprint_key,
                            c.spec_key.in_(chunk),
                        )
                    ).scalars()
                )
        return [k for k in todo if k in held]

    def _drop_stale_claims(self, conn: Connection, now: float, lease_s: float) -> None:
        c = claims_table.c
        conn.execute(claims_table.delete().where(c.claimed_at < now - lease_s))
        prefix = socket.gethostname() + ":"
        local = conn.execute(
            sa.select(c.worker).distinct().where(c.worker.startswith(prefix, autoescape=True))
        ).scalars()
        dead = []
        for name in local:
            pid_text = name[len(prefix) :]
            if pid_text.isdigit() and not _pid_alive(int(pid_text)):
                dead.append(name)
        if dead:
            conn.execute(claims_table.delete().where(c.worker.in_(dead)))

    def release(self, worker: str) -> None:
        """Drop every claim of ``worker`` (call when it stops, finished or not)."""
        with self._translating(), self._write() as conn:
            conn.execute(claims_table.delete().where(claims_table.c.worker == worker))

    def claimed(self, target_key: str | None = None, fingerprint_key: str | None = None) -> dict[str, str]:
        """Current claims as ``{spec_key: worker}`` (stale ones included until the next claim)."""
        c = claims_table.c
        with self._translating(), self._read() as conn:
            rows = conn.execute(
                sa.select(c.spec_key, c.worker).where(*self._where(claims_table, target_key, fingerprint_key))
            ).all()
        return {row.spec_key: row.worker for row in rows}

    # --- reading ------------------------------------------------------------------------
    def measured_keys(self, target_key: str, fingerprint_key: str) -> set[str]:
        """Spec keys already measured on this target with this fingerprint."""
        m = measurements_table.c
        with self._translating(), self._read() as conn:
            return set(
                conn.execute(
                    sa.select(m.spec_key).where(
                        m.target_key == target_key, m.fingerprint_key == fingerprint_key
                    )
                ).scalars()
            )

    def measurements(
        self,
        *,
        target_key: str | None = None,
        fingerprint_key: str | None = None,
        kind: str | None = None,
    ) -> list[Measurement]:
        """Stored measurements (in insertion order) as typed objects."""
        t = measurements_table
        with self._translating(), self._read() as conn:
            rows = conn.execute(
                sa.select(t).where(*self._where(t, target_key, fingerprint_key, kind)).order_by(t.c.id)
            ).all()
        result = []
        for row in rows:
            try:
                result.append(_measurement_of(row))
            except (LatbenchError, ValueError, KeyError, TypeError) as exc:
                raise DatabaseError(
                    f"row {row.id} of {self._display} cannot be read ({exc}); it was written by "
                    "another latbench version or edited by hand; upgrade latbench or delete the row"
                ) from exc
        return result

    def count(
        self,
        *,
        target_key: str | None = None,
        fingerprint_key: str | None = None,
        kind: str | None = None,
    ) -> int:
        t = measurements_table
        with self._translating(), self._read() as conn:
            return int(
                conn.execute(
                    sa.select(sa.func.count())
                    .select_from(t)
                    .where(*self._where(t, target_key, fingerprint_key, kind))
                ).scalar_one()
            )

    def targets(self) -> list[tuple[Target, Fingerprint, int]]:
        """Distinct (target, fingerprint) pairs with their measurement counts, the target and
        fingerprint as stored on the pair's latest row."""
        t = measurements_table
        groups = (
            sa.select(
                t.c.target_key,
                t.c.fingerprint_key,
                sa.func.count().label("n"),
                sa.func.max(t.c.id).label("last_id"),
            )
            .group_by(t.c.target_key, t.c.fingerprint_key)
            .subquery()
        )
        stmt = (
            sa.select(t.c.target_json, t.c.fingerprint_json, groups.c.n)
            .join(groups, t.c.id == groups.c.last_id)
            .order_by(t.c.target_name, t.c.target_key, t.c.fingerprint_key)
        )
        with self._translating(), self._read() as conn:
            rows = conn.execute(stmt).all()
        return [
            (
                Target.from_dict(json.loads(row.target_json)),
                Fingerprint.from_dict(json.loads(row.fingerprint_json)),
                int(row.n),
            )
            for row in rows
        ]

    # --- export -------------------------------------------------------------------------
    def export(
        self,
        path: str | os.PathLike[str],
        fmt: str | None = None,
        *,
        target_key: str | None = None,
        fingerprint_key: str | None = None,
        kind: str | None = None,
    ) -> int:
        """Write measurements as one flat row each to CSV or Parquet; returns rows written.

        ``fmt`` is ``"csv"`` or ``"parquet"``, or taken from the suffix. The raw samples are
        a ``times_s`` column: ``list<double>`` in Parquet, a JSON array in CSV. The file is
        written beside its destination and renamed over it, so it is never half-written.
        """
        import pyarrow as pa
        import pyarrow.csv as pa_csv
        import pyarrow.parquet as pq

        dest = Path(path)
        fmt = _export_format(dest, fmt)
        if not dest.parent.is_dir():
            raise ConfigError(f"cannot write {dest}: directory {dest.parent} does not exist; create it first")
        t = measurements_table
        with self._translating(), self._read() as conn:
            rows = conn.execute(
                sa.select(t).where(*self._where(t, target_key, fingerprint_key, kind)).order_by(t.c.id)
            ).all()

        fields = []
        columns: dict[str, list[Any]] = {}
        for col in t.columns:
            name = "times_s" if col.name == "times_s_json" else col.name
            values = [getattr(row, col.name) for row in rows]
            if col.name == "times_s_json":
                if fmt == "parquet":
                    arrow_type = pa.list_(pa.float64())
                    values = [[float(x) for x in json.loads(v)] for v in values]
                else:
                    arrow_type = pa.string()
            else:
                arrow_type = _arrow_type(col.type, pa)
                if arrow_type == pa.bool_():
                    values = [None if v is None else bool(v) for v in values]
            fields.append(pa.field(name, arrow_type, nullable=col.nullable or col.primary_key))
            columns[name] = values
        schema = pa.schema(fields)
        table = pa.table({f.name: pa.array(columns[f.name], type=f.type) for f in fields}, schema=schema)

        with atomic_output(dest) as tmp:
            if fmt == "parquet":
                pq.write_table(table, tmp)
            else:
                pa_csv.write_csv(table, tmp)
        return table.num_rows


EXPORT_FORMATS = {".csv": "csv", ".parquet": "parquet", ".pq": "parquet"}


def _export_format(dest: Path, fmt: str | None) -> str:
    if fmt is None:
        found = EXPORT_FORMATS.get(dest.suffix.lower())
        if found is None:
            raise ConfigError(
                f"cannot tell the export format of {dest}; name it .csv or .parquet, or pass the format"
            )
        return found
    lowered = fmt.lower().lstrip(".")
    if lowered not in ("csv", "parquet"):
        raise ConfigError(f"unknown export format {fmt!r}; use csv or parquet")
    return lowered


def _arrow_type(sa_type: Any, pa: Any) -> Any:
    if isinstance(sa_type, sa.Boolean):
        return pa.bool_()
    if isinstance(sa_type, sa.Integer):
        return pa.int64()
    if isinstance(sa_type, sa.Float):  # Double included
        return pa.float64()
    return pa.string()


def redact_url(url: str) -> str:
    """``url`` (a database URL or path) without its password, safe to write into results."""
    scheme, sep, rest = url.partition("://")
    if "@" not in rest:
        return url
    credentials, _, host = rest.rpartition("@")
    user = credentials.split(":", 1)[0]
    return f"{scheme}{sep}{user}:***@{host}"


#: The database every command uses when neither --db nor $LATBENCH_DB names one.
DEFAULT_DB = "latbench.db"
DB_ENV = "LATBENCH_DB"


def default_db() -> str:
    """``$LATBENCH_DB``, else ``latbench.db`` in the working directory."""
    return os.environ.get(DB_ENV, DEFAULT_DB)


def choose_fingerprint(db: MeasurementDB, target: Target, wanted: str | None = None) -> Fingerprint:
    """The machine whose measurements of ``target`` to use: the one whose key starts with
    ``wanted``; else the only one; else this machine. Anything ambiguous is a ConfigError
    that lists the machines."""

    found = [(fp, n) for t, fp, n in db.targets() if t.key == target.key]
    if not found:
        raise ConfigError(
            f"the database has no measurements for target {target}; run `latbench profile` first"
        )
    if wanted:
        found = [(fp, n) for fp, n in found if fp.key.startswith(wanted)]
        if len(found) != 1:
            raise ConfigError(f"--fingerprint {wanted} matches {len(found)} machines for target {target}")
        return found[0][0]
    if len(found) == 1:
        return found[0][0]
    here = collect().key
    for fp, _ in found:
        if fp.key == here:
            return fp
    options = "; ".join(f"{fp.key} ({fp.summary()}, {n} rows)" for fp, n in found)
    raise ConfigError(
        f"target {target} was profiled on {len(found)} machines; pick one with --fingerprint: {options}"
    )
