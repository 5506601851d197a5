"""Tests of the measurement database (SQLite always; PostgreSQL with a server, see conftest)."""

from __future__ import annotations

import contextlib
import json
import socket
import sqlite3
import subprocess
import sys
import threading
from dataclasses import replace
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq
import pytest

from latbench.arch import Arch, LayerShape, Workload
from latbench.db import SCHEMA_VERSION, MeasurementDB, default_worker, resolve_url
from latbench.errors import ConfigError, DatabaseError
from latbench.fingerprint import Fingerprint
from latbench.measurement import KernelTime, Measurement
from latbench.specs import BlockSpec, EncoderSpec, OpSpec
from latbench.target import Target

FP = Fingerprint(
    cpu_model="Intel(R) Xeon(R) CPU @ 2.20GHz",
    cpu_flags_digest="0123456789abcdef",
    physical_cores=2,
    logical_cpus=4,
    usable_cpus=4,
    l2_cache_bytes=1 << 20,
    l3_cache_bytes=55 << 20,
    memory_bytes=16 << 30,
    machine="x86_64",
    os="Linux 6.1",
    python="3.11.7",
    libraries=(("latbench", "0.1.0"), ("onnxruntime", "1.18.0"), ("torch", "2.4.0")),
    hostname="bench-host-1",
)
FP_OTHER = replace(FP, libraries=(("latbench", "0.1.0"), ("onnxruntime", "1.19.0"), ("torch", "2.4.0")))
TARGET = Target("onnxruntime-cpu", settings=(("threads", 2), ("opt_level", "all"), ("spin", False)))
TARGET_OTHER = Target("torch-cpu", settings=(("threads", 2),))
WL = Workload(1, 128)

OP = OpSpec("ffn_up_gelu", WL, hidden=256, heads=4, ffn=1024)  # heads is dropped to 0
EMB = OpSpec("embedding", Workload(2, 64, "fp16"), hidden=256, vocab_size=1000)
BLOCK = BlockSpec(LayerShape(256, 4, 1024), WL, context="isolated")
ENCODER = EncoderSpec(Arch(hidden=256, heads=(4, 8), ffn=(1024, 512)), Workload(4, 32))
SPECS = (OP, EMB, BLOCK, ENCODER)


def make(spec, target=TARGET, fp=FP, *, worker="w1", seed=1) -> Measurement:
    # Values with long binary expansions, so a lossy float round trip would show.
    times = tuple((seed + i / 7) * 1e-4 / 3 for i in range(64))
    return Measurement(
        spec=spec,
        target=target,
        fingerprint=fp,
        times_s=times,
        iterations_per_sample=17,
        rounds=4,
        stable=seed % 2 == 1,
        build_time_s=0.1 / 3,
        measured_at="2025-01-02T03:04:05.678901+00:00",
        kernels=(
            KernelTime("FusedMatMul", 2, 1e-5 / 3),
            KernelTime("SkipLayerNormalization", 1, 2.5e-6),
        ),
        worker=worker,
    )


@contextlib.contextmanager
def opened(url, **kwargs):
    db = MeasurementDB(url, **kwargs)
    try:
        yield db
    finally:
        db.close()


def sqlite_execute(path: Path, *statements: str) -> None:
    with contextlib.closing(sqlite3.connect(path)) as conn:
        for statement in statements:
            conn.execute(statement)
        conn.commit()


# --- round trip, idempotence, filters ----------------------------------------------------
def test_round_trip_every_spec_kind(db_url):
    stored = [make(spec, seed=i) for i, spec in enumerate(SPECS)]
    with opened(db_url) as db:
        assert db.add(stored) == len(SPECS)
        back = db.measurements()
    assert back == stored
    for a, b in zip(back, stored, strict=True):
        assert a.fingerprint.to_dict() == b.fingerprint.to_dict()  # hostname too
        assert a.times_s == b.times_s and a.kernels == b.kernels
        assert a.spec.key == b.spec.key and a.target.key == b.target.key
        assert a.worker == b.worker
    with opened(db_url, create=False) as db:
        assert [m.spec for m in db.measurements(kind="block")] == [BLOCK]
        assert [m.spec for m in db.measurements(kind="op")] == [OP, EMB]
        assert db.count() == 4 and db.count(kind="encoder") == 1


def test_extras_round_trip_and_default_to_none(db_url):
    with_extras = replace(make(OP), extras={"xla_flops": 1e9 / 3, "xla_bytes_accessed": 2.5e6})
    assert with_extras.extras == (("xla_bytes_accessed", 2.5e6), ("xla_flops", 1e9 / 3))  # sorted pairs
    with opened(db_url) as db:
        db.add([with_extras, make(BLOCK)])
        op, block = db.measurements()
    assert op == with_extras and op.extra("xla_flops") == 1e9 / 3
    assert block.extras == () and block.extra("xla_flops") is None


def test_a_database_written_before_extras_existed_gains_the_column(db_url):
    """Databases from before ``extras_json`` stay readable and writable: the column is added
    on open, and their rows read back with no extras."""
    import sqlalchemy as sa

    from latbench.db import resolve_url

    with opened(db_url) as db:
        db.add([make(OP)])
    engine = sa.create_engine(resolve_url(db_url), poolclass=sa.NullPool)
    try:
        with engine.begin() as conn:
            conn.exec_driver_sql("ALTER TABLE measurements DROP COLUMN extras_json")
    finally:
        engine.dispose()
    with opened(db_url, create=False) as db:
        assert db.measurements() == [make(OP)]
    newer = replace(make(BLOCK), extras={"xla_flops": 42.0})
    with opened(db_url) as db:
        db.add([newer])
        assert db.measurements() == [make(OP), newer]


def test_fingerprint_keys_do_not_change_with_the_device_fields():
    # the key FP had before Fingerprint gained device_platform/device_kind/device_count
    assert FP.key == "a99d42f35efcace38f20"
    assert "device_kind" not in FP.to_dict()
    tpu = replace(FP, tpu="v5e", device_platform="tpu", device_kind="TPU v5 lite", device_count=4)
    assert tpu.key != FP.key and Fingerprint.from_dict(tpu.to_dict()) == tpu
    assert "4 × TPU v5 lite" in tpu.summary()


def test_add_twice_inserts_once(db_url):
    with opened(db_url) as db:
        assert db.add([make(OP), make(BLOCK)]) == 2
        # a re-measurement of a stored spec (other samples) is not stored again
        assert db.add([make(OP, seed=5), make(BLOCK), make(ENCODER)]) == 1
        assert db.add([]) == 0
        assert db.count() == 3
        assert db.measurements(kind="op")[0].times_s == make(OP).times_s


def test_measured_keys_filtered_by_target_and_fingerprint(db_url):
    with opened(db_url) as db:
        db.add([make(OP), make(BLOCK), make(ENCODER, target=TARGET_OTHER), make(EMB, fp=FP_OTHER)])
        assert db.measured_keys(TARGET.key, FP.key) == {OP.key, BLOCK.key}
        assert db.measured_keys(TARGET_OTHER.key, FP.key) == {ENCODER.key}
        assert db.measured_keys(TARGET.key, FP_OTHER.key) == {EMB.key}
        assert db.measured_keys(TARGET_OTHER.key, FP_OTHER.key) == set()
        assert db.count(target_key=TARGET.key) == 3
        assert db.count(target_key=TARGET.key, fingerprint_key=FP.key, kind="op") == 1
        assert [m.spec for m in db.measurements(fingerprint_key=FP_OTHER.key)] == [EMB]
        summary = db.targets()
    assert {(t, f.key, n) for t, f, n in summary} == {
        (TARGET, FP.key, 2),
        (TARGET_OTHER, FP.key, 1),
        (TARGET, FP_OTHER.key, 1),
    }
    assert all(f.hostname == "bench-host-1" for _, f, _ in summary)


# --- claims ------------------------------------------------------------------------------
KEYS = [s.key for s in SPECS]


def test_claims_split_work_between_two_workers(db_url):
    with opened(db_url) as db1, opened(db_url) as db2:
        db1.add([make(ENCODER)])
        first = db1.claim(KEYS[:2], TARGET.key, FP.key, "host-a:1")
        assert first == KEYS[:2]
        second = db2.claim(KEYS, TARGET.key, FP.key, "host-b:1")
        assert second == [KEYS[2]]  # the encoder is measured, the ops are taken
        # claiming again keeps (and renews) what a worker holds, in input order
        assert db1.claim(KEYS[::-1], TARGET.key, FP.key, "host-a:1") == KEYS[1::-1]
        # claims are per target and fingerprint
        assert db2.claim(KEYS[:1], TARGET.key, FP_OTHER.key, "host-b:1") == KEYS[:1]
        assert db1.claimed(TARGET.key, FP.key) == {
            KEYS[0]: "host-a:1",
            KEYS[1]: "host-a:1",
            KEYS[2]: "host-b:1",
        }
        db1.release("host-a:1")
        assert db2.claim(KEYS, TARGET.key, FP.key, "host-b:1") == KEYS[:3]
        assert db1.claim(KEYS, TARGET.key, FP.key, "host-a:1") == []


def test_add_drops_the_workers_claims(db_url):
    with opened(db_url) as db:
        assert db.claim(KEYS, TARGET.key, FP.key, "host-a:1") == KEYS
        db.claim(KEYS[:1], TARGET.key, FP_OTHER.key, "host-a:1")
        assert db.add([make(OP), make(BLOCK)], worker="host-a:1") == 2
        assert db.claimed(TARGET.key, FP.key) == {KEYS[1]: "host-a:1", KEYS[3]: "host-a:1"}
        assert db.claimed(TARGET.key, FP_OTHER.key) == {KEYS[0]: "host-a:1"}  # other fingerprint
        # another worker's add does not touch these claims
        db.add([make(EMB)], worker="host-b:1")
        assert set(db.claimed(TARGET.key, FP.key)) == {KEYS[1], KEYS[3]}
        db.release("host-a:1")
        assert db.claimed() == {}


def _dead_pid() -> int:
    with subprocess.Popen([sys.executable, "-c", ""]) as proc:
        pass  # waited for and reaped on exit: its pid names no process now
    return proc.pid


def test_claims_of_a_dead_local_process_are_reclaimed(db_url):
    host = socket.gethostname()
    dead, me = f"{host}:{_dead_pid()}", default_worker()
    with opened(db_url) as db:
        assert db.claim(KEYS[:2], TARGET.key, FP.key, dead) == KEYS[:2]
        assert db.claim(KEYS[2:3], TARGET.key, FP.key, "elsewhere:1") == KEYS[2:3]
        # the dead worker's claims are stale; another host's worker cannot be checked: kept
        assert db.claim(KEYS, TARGET.key, FP.key, me) == [KEYS[0], KEYS[1], KEYS[3]]
        assert dead not in db.claimed().values()


def test_expired_claims_are_reclaimed(db_url):
    now = [1_000_000.0]
    with opened(db_url, clock=lambda: now[0]) as db:
        assert db.claim(KEYS, TARGET.key, FP.key, "host-a:1", lease_s=600) == KEYS
        now[0] += 599
        assert db.claim(KEYS, TARGET.key, FP.key, "host-b:1", lease_s=600) == []
        now[0] += 2  # 601 s after the claim
        assert db.claim(KEYS, TARGET.key, FP.key, "host-b:1", lease_s=600) == KEYS
        # a renewed claim gets a fresh lease
        now[0] += 500
        assert db.claim(KEYS[:1], TARGET.key, FP.key, "host-b:1", lease_s=600) == KEYS[:1]
        now[0] += 200
        assert db.claim(KEYS, TARGET.key, FP.key, "host-a:1", lease_s=600) == KEYS[1:]


def test_concurrent_creation_of_one_database(db_url):
    errors: list[BaseException] = []

    def open_and_add(seed: int) -> None:
        try:
            with opened(db_url) as db:
                db.add([make(SPECS[seed % len(SPECS)], seed=seed)])
        except BaseException as exc:  # collected for the main thread
            errors.append(exc)

    threads = [threading.Thread(target=open_and_add, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    with opened(db_url) as db:
        assert db.count() == 4


# --- export ------------------------------------------------------------------------------
def _filled(path: Path) -> MeasurementDB:
    db = MeasurementDB(path)
    db.add([make(spec, seed=i) for i, spec in enumerate(SPECS)])
    return db


def test_export_parquet(tmp_path):
    with contextlib.closing(_filled(tmp_path / "m.db")) as db:
        assert db.export(tmp_path / "out.parquet") == 4
        assert db.export(tmp_path / "only-blocks.pq", kind="block") == 1
    table = pq.read_table(tmp_path / "out.parquet")
    assert table.num_rows == 4
    assert {
        "spec_key",
        "spec_kind",
        "label",
        "op",
        "hidden",
        "heads",
        "ffn",
        "layers",
        "context",
        "batch",
        "seq_len",
        "precision",
        "target_name",
        "cpu_model",
        "median_s",
        "p99_s",
        "stable",
        "times_s",
        "kernels_json",
        "measured_at",
    } <= set(table.column_names)
    assert "times_s_json" not in table.column_names
    times_type = table.schema.field("times_s").type
    assert pa.types.is_list(times_type) and pa.types.is_float64(times_type.value_type)
    rows = table.to_pylist()
    assert [r["spec_kind"] for r in rows] == ["op", "op", "block", "encoder"]
    assert rows[0]["times_s"] == list(make(OP, seed=0).times_s)
    assert rows[0]["median_s"] == make(OP, seed=0).median_s
    # flat spec columns: zero dimensions are NULL
    assert (rows[0]["op"], rows[0]["hidden"], rows[0]["heads"], rows[0]["ffn"]) == (
        "ffn_up_gelu",
        256,
        None,
        1024,
    )
    assert (rows[2]["hidden"], rows[2]["heads"], rows[2]["ffn"], rows[2]["context"]) == (
        256,
        4,
        1024,
        "isolated",
    )
    assert (rows[3]["layers"], rows[3]["hidden"], rows[3]["heads"], rows[3]["ffn"]) == (
        2,
        256,
        None,
        None,
    )
    assert rows[1]["precision"] == "fp16" and rows[3]["batch"] == 4
    assert pq.read_table(tmp_path / "only-blocks.pq").column("spec_kind").to_pylist() == ["block"]


def test_export_csv(tmp_path):
    with contextlib.closing(_filled(tmp_path / "m.db")) as db:
        assert db.export(tmp_path / "out.data", fmt="csv") == 4
    table = pa_csv.read_csv(tmp_path / "out.data")
    assert table.num_rows == 4
    rows = table.to_pylist()
    assert json.loads(rows[2]["times_s"]) == list(make(BLOCK, seed=2).times_s)
    assert rows[2]["spec_key"] == BLOCK.key and rows[2]["target_name"] == "onnxruntime-cpu"
    assert json.loads(rows[2]["kernels_json"])[0]["op_type"] == "FusedMatMul"


def test_export_rejects_unknown_formats_and_writes_nothing(tmp_path):
    with contextlib.closing(_filled(tmp_path / "m.db")) as db:
        with pytest.raises(ConfigError, match="export format"):
            db.export(tmp_path / "out.xlsx")
        with pytest.raises(ConfigError, match="unknown export format 'json'"):
            db.export(tmp_path / "out.csv", fmt="json")
        with pytest.raises(ConfigError, match="does not exist"):
            db.export(tmp_path / "missing" / "out.csv")
    assert sorted(p.name for p in tmp_path.iterdir() if not p.name.startswith("m.db")) == []


def test_export_of_an_empty_database(tmp_path):
    with opened(tmp_path / "m.db") as db:
        assert db.export(tmp_path / "empty.parquet") == 0
    assert pq.read_table(tmp_path / "empty.parquet").num_rows == 0


# --- bad databases -----------------------------------------------------------------------
def _one_line(exc_info: pytest.ExceptionInfo[DatabaseError]) -> str:
    message = str(exc_info.value)
    assert "\n" not in message
    return message


def test_corrupt_file(tmp_path):
    path = tmp_path / "x.db"
    path.write_bytes(b"this is not a database\x00" * 200)
    with pytest.raises(DatabaseError) as info:
        MeasurementDB(path)
    message = _one_line(info)
    assert str(path) in message and "not a database" in message and "--db" in message


def test_missing_directory(tmp_path):
    with pytest.raises(DatabaseError) as info:
        MeasurementDB(tmp_path / "nope" / "x.db")
    assert "does not exist" in _one_line(info)
    assert not (tmp_path / "nope").exists()


def test_missing_file_when_not_creating(tmp_path):
    with pytest.raises(DatabaseError) as info:
        MeasurementDB(tmp_path / "x.db", create=False)
    assert "no measurement database" in _one_line(info)
    assert not (tmp_path / "x.db").exists()


def test_foreign_measurements_table(tmp_path):
    path = tmp_path / "x.db"
    sqlite_execute(path, "CREATE TABLE measurements (id INTEGER PRIMARY KEY, value REAL)")
    with pytest.raises(DatabaseError) as info:
        MeasurementDB(path)
    assert "not latbench's" in _one_line(info)
    with contextlib.closing(sqlite3.connect(path)) as conn:  # left untouched
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert tables == {"measurements"}


def test_sqlite_database_without_latbench_tables_when_not_creating(tmp_path):
    path = tmp_path / "x.db"
    sqlite_execute(path, "CREATE TABLE other (id INTEGER)")
    with pytest.raises(DatabaseError) as info:
        MeasurementDB(path, create=False)
    assert "not a latbench measurement database" in _one_line(info)


def test_newer_schema_version(tmp_path):
    path = tmp_path / "x.db"
    with opened(path):
        pass
    sqlite_execute(path, f"UPDATE meta SET value = '{SCHEMA_VERSION + 1}' WHERE key = 'schema_version'")
    with pytest.raises(DatabaseError) as info:
        MeasurementDB(path)
    assert "newer latbench" in _one_line(info)


def test_reopen_keeps_data_and_uses_wal(tmp_path):
    path = tmp_path / "x.db"
    with opened(str(path)) as db:
        db.add([make(OP)])
        assert db.url == f"sqlite:///{path}"
        assert db.dialect == "sqlite"
    with opened(path, create=False) as db:
        assert db.measurements() == [make(OP)]
    with contextlib.closing(sqlite3.connect(path)) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_closed_database(tmp_path):
    db = MeasurementDB(tmp_path / "x.db")
    db.close()
    db.close()  # idempotent
    with pytest.raises(DatabaseError, match="closed"):
        db.count()


def test_unreachable_postgres_hides_password():
    with pytest.raises(DatabaseError) as info:
        MeasurementDB("postgresql://u:secret@127.0.0.1:1/x")
    message = _one_line(info)
    assert "secret" not in message
    assert "127.0.0.1:1" in message and "connection refused" in message


@pytest.mark.postgres
def test_postgres_url_hides_password(postgres_db_url):
    with opened(postgres_db_url) as db:
        assert db.dialect == "postgresql"
        assert db.url.startswith("postgresql+psycopg://")
        password = db.engine.url.password
        if password:
            assert f":{password}@" not in db.url and ":***@" in db.url
            assert f":{password}@" not in repr(db)


def test_unsupported_url():
    with pytest.raises(DatabaseError, match="unsupported database"):
        MeasurementDB("mysql://u:secret@localhost/x")


# --- resolve_url -------------------------------------------------------------------------
def test_resolve_url(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert resolve_url("m.db") == f"sqlite:///{tmp_path / 'm.db'}"
    assert resolve_url("/abs/dir/m.db") == "sqlite:////abs/dir/m.db"
    assert resolve_url(Path("sub/m.db")) == f"sqlite:///{tmp_path / 'sub' / 'm.db'}"
    assert resolve_url("sqlite:///rel.db") == "sqlite:///rel.db"
    assert resolve_url("postgresql://u:p@h:5432/db") == "postgresql+psycopg://u:p@h:5432/db"
    assert resolve_url("postgres://u@h/db") == "postgresql+psycopg://u@h/db"
    assert resolve_url("postgresql+psycopg://u@h/db") == "postgresql+psycopg://u@h/db"
    assert resolve_url("postgresql+psycopg2://u@h/db") == "postgresql+psycopg2://u@h/db"
    assert resolve_url(":memory:") == "sqlite://"
    with pytest.raises(ConfigError):
        resolve_url("  ")
