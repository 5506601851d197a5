"""The `latbench` command, as a user runs it: real processes, real backends, tiny plans."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from latbench.cli import main
from latbench.db import MeasurementDB
from latbench.measurement import LATENCY_FIGURE
from latbench.testing.cli import assert_user_error

TINY_PLAN = """
name = "tiny"
encoders = 2
contexts = ["model"]
[space]
hidden = [32, 64]
heads = [2]
ffn_ratios = [2.0]
seq_lens = [8]
layers = [1, 2]
vocab_size = 64
"""
TINY_SPECS = 21  # 2 blocks + 17 operators + 2 encoders
LONGER_PLAN = TINY_PLAN.replace("hidden = [32, 64]", "hidden = [32, 64, 96, 128]").replace(
    "seq_lens = [8]", "seq_lens = [8, 16]"
)


def latbench(
    *args: str, env: dict[str, str] | None = None, timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "latbench.cli", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
    )


def spawn(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "latbench.cli", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.fixture
def plan(tmp_path: Path) -> Path:
    path = tmp_path / "tiny.toml"
    path.write_text(TINY_PLAN)
    return path


def run_main(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    code = main(list(args))
    return code, capsys.readouterr().err


def test_devices_lists_both_cpu_targets_with_the_fingerprint() -> None:
    result = latbench("devices", "--json")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    available = {row["target"]: row["available"] for row in data["targets"]}
    assert available["torch-cpu"] and available["onnxruntime-cpu"]
    assert data["fingerprint"]["physical_cores"] >= 1
    assert "onnxruntime" in data["fingerprint"]["libraries"]
    table = latbench("devices")
    assert table.returncode == 0 and "onnxruntime-cpu" in table.stdout and "fingerprint" in table.stdout


def test_profile_then_rerun_measures_nothing_new_then_export(plan: Path, tmp_path: Path) -> None:
    db = tmp_path / "m.db"
    args = (
        "profile",
        "--target",
        "onnxruntime-cpu:threads=1",
        "--plan",
        str(plan),
        "--db",
        str(db),
        "--samples",
        "8",
    )
    first = latbench(*args)
    assert first.returncode == 0, first.stderr
    assert f"measured {TINY_SPECS} new specs" in first.stdout
    second = latbench(*args)
    assert second.returncode == 0, second.stderr
    assert "measured 0 new specs" in second.stdout and f"{TINY_SPECS} were already" in second.stdout
    with MeasurementDB(db) as database:
        rows = database.measurements()
    assert len(rows) == TINY_SPECS
    blocks = [m for m in rows if m.spec.kind == "block"]
    assert blocks and all(m.kernels for m in blocks)  # ORT's per-kernel breakdown is stored
    assert all(m.target.get("threads") == 1 and m.fingerprint.library("onnxruntime") for m in rows)
    for fmt in ("csv", "parquet"):
        out = tmp_path / f"m.{fmt}"
        exported = latbench("export", "--db", str(db), "--out", str(out))
        assert exported.returncode == 0 and out.stat().st_size > 0, exported.stderr


def test_profile_dry_run_lists_specs_without_a_database(plan: Path, tmp_path: Path) -> None:
    result = latbench(
        "profile", "--target", "torch-cpu", "--plan", str(plan), "--db", str(tmp_path / "x.db"), "--dry-run"
    )
    assert result.returncode == 0, result.stderr
    assert f"{TINY_SPECS} specs" in result.stdout and "block[" in result.stdout
    assert not (tmp_path / "x.db").exists()


def test_measure_prints_a_table_and_json_and_stores_on_request(tmp_path: Path) -> None:
    arch = '{"layers": 2, "hidden": 64, "heads": 4, "ffn": 128, "vocab_size": 100}'
    table = latbench("measure", "--target", "torch-cpu", "--arch", arch, "--seq", "16", "--samples", "8")
    assert table.returncode == 0, table.stderr
    assert "median (ms)" in table.stdout
    db = tmp_path / "m.db"
    result = latbench(
        "measure",
        "--target",
        "onnxruntime-cpu",
        "--arch",
        arch,
        "--seq",
        "16",
        "--samples",
        "8",
        "--json",
        "--db",
        str(db),
    )
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["median_ms"] > 0 and data["samples"] >= 8 and data["kernels"]
    with MeasurementDB(db) as database:
        assert database.count(kind="encoder") == 1


def test_measure_reads_a_hugging_face_config(tmp_path: Path) -> None:
    import transformers

    config = transformers.BertConfig(
        hidden_size=64, num_hidden_layers=2, num_attention_heads=4, intermediate_size=128, vocab_size=100
    )
    config.save_pretrained(tmp_path / "bert")
    result = latbench(
        "measure",
        "--target",
        "torch-cpu",
        "--hf-config",
        str(tmp_path / "bert"),
        "--seq",
        "16",
        "--samples",
        "8",
        "--json",
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["arch"]["heads"] == [4, 4]


def test_user_mistakes_are_one_line_errors(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, plan: Path
) -> None:
    bad_arch = '{"layers": 2, "hidden": 100, "heads": 3, "ffn": 128}'
    assert_user_error(
        run_main(capsys, "measure", "--target", "torch-cpu", "--arch", bad_arch), "not divisible by 3 heads"
    )
    assert_user_error(
        run_main(
            capsys,
            "measure",
            "--target",
            "torch-cpu",
            "--arch",
            '{"layers": 2, "hidden": 0, "heads": 1, "ffn": 1}',
        ),
        "hidden must be a positive integer",
    )
    assert_user_error(
        run_main(capsys, "measure", "--target", "torch-cpu", "--arch", "{not json"), "malformed"
    )
    assert_user_error(
        run_main(capsys, "profile", "--target", "tpu-v9", "--plan", "quick", "--dry-run"),
        "unknown target 'tpu-v9'",
    )
    assert_user_error(
        run_main(capsys, "profile", "--target", "torch-cpu:warp=9", "--dry-run"), "unknown setting(s) warp"
    )
    assert_user_error(
        run_main(capsys, "profile", "--target", "torch-cpu", "--plan", "huge"), "unknown plan 'huge'"
    )
    broken = tmp_path / "broken.toml"
    broken.write_text("[space\nhidden = [")
    assert_user_error(
        run_main(capsys, "profile", "--target", "torch-cpu", "--plan", str(broken)), "not valid TOML"
    )
    hf = tmp_path / "config.json"
    hf.write_text('{"model_type": "gpt2", "n_embd": 64}')
    assert_user_error(run_main(capsys, "measure", "--target", "torch-cpu", "--hf-config", str(hf)), "lacks")
    corrupt = tmp_path / "corrupt.db"
    corrupt.write_bytes(b"this is not a database" * 100)
    assert_user_error(
        run_main(capsys, "profile", "--target", "torch-cpu", "--plan", str(plan), "--db", str(corrupt)),
        "corrupt.db",
    )
    assert corrupt.read_bytes() == b"this is not a database" * 100  # left untouched
    assert_user_error(
        run_main(
            capsys,
            "profile",
            "--target",
            "torch-cpu",
            "--plan",
            str(plan),
            "--db",
            "postgresql://u:secret@127.0.0.1:1/x",
        ),
        "cannot connect",
    )
    assert "secret" not in capsys.readouterr().err
    assert_user_error(
        run_main(capsys, "export", "--db", str(tmp_path / "none.db"), "--out", str(tmp_path / "x.csv"))
    )


def test_the_whole_cli_error_path_in_a_real_process() -> None:
    result = latbench(
        "measure", "--target", "torch-cpu", "--arch", '{"layers": 1, "hidden": 10, "heads": 3, "ffn": 4}'
    )
    assert_user_error(result, "not divisible")


def _count_rows(db: Path) -> int:
    try:
        with contextlib.closing(sqlite3.connect(db, timeout=30)) as conn:
            return conn.execute("select count(*) from measurements").fetchone()[0]
    except sqlite3.OperationalError:
        return 0


@pytest.mark.slow
def test_kill_9_loses_nothing_already_measured_and_a_rerun_completes(tmp_path: Path) -> None:
    plan = tmp_path / "longer.toml"
    plan.write_text(LONGER_PLAN)
    db = tmp_path / "m.db"
    args = (
        "profile",
        "--target",
        "onnxruntime-cpu:threads=1",
        "--plan",
        str(plan),
        "--db",
        str(db),
        "--samples",
        "8",
        "--chunk",
        "2",
    )
    proc = spawn(*args)
    deadline = time.monotonic() + 120
    while _count_rows(db) < 4 and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.2)
    proc.send_signal(signal.SIGKILL)
    proc.communicate()
    saved = _count_rows(db)
    assert saved >= 4
    rerun = latbench(*args)
    assert rerun.returncode == 0, rerun.stderr
    with MeasurementDB(db) as database:
        rows = database.measurements()
        assert database.claimed() == {}
    keys = [m.spec.key for m in rows]
    assert len(keys) == len(set(keys))  # nothing measured twice
    assert f"{saved} were already in the database" in rerun.stdout or saved == len(keys)
    assert f"measured {len(keys) - saved} new specs" in rerun.stdout


@pytest.mark.slow
def test_sigterm_stops_cleanly_with_exit_130(tmp_path: Path) -> None:
    plan = tmp_path / "longer.toml"
    plan.write_text(LONGER_PLAN)
    db = tmp_path / "m.db"
    proc = spawn(
        "profile",
        "--target",
        "torch-cpu:threads=1",
        "--plan",
        str(plan),
        "--db",
        str(db),
        "--samples",
        "8",
        "--chunk",
        "2",
    )
    deadline = time.monotonic() + 120
    while _count_rows(db) < 2 and time.monotonic() < deadline:
        time.sleep(0.2)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "rerun to continue" in err and "Traceback" not in err
    with MeasurementDB(db) as database:
        assert database.claimed() == {}


@pytest.mark.postgres
@pytest.mark.slow
def test_two_processes_profile_into_postgres_at_once(postgres_db_url: str, tmp_path: Path) -> None:
    plan = tmp_path / "longer.toml"
    plan.write_text(LONGER_PLAN)
    args = (
        "profile",
        "--target",
        "onnxruntime-cpu:threads=1",
        "--plan",
        str(plan),
        "--db",
        postgres_db_url,
        "--samples",
        "8",
        "--chunk",
        "2",
    )
    procs = [spawn(*args), spawn(*args)]
    outputs = [p.communicate(timeout=600) for p in procs]
    for proc, (_, err) in zip(procs, outputs, strict=True):
        assert proc.returncode == 0, err
    dry = latbench("profile", "--target", "onnxruntime-cpu:threads=1", "--plan", str(plan), "--dry-run")
    planned = int(dry.stdout.split(" specs")[0].rsplit(" ", 1)[1])
    with MeasurementDB(postgres_db_url) as database:
        rows = database.measurements()
        assert database.claimed() == {}
    keys = [m.spec.key for m in rows]
    assert len(keys) == planned == len(set(keys))  # nothing lost, nothing duplicated
    by_worker = {m.worker for m in rows}
    assert len(by_worker) == 2, "both processes should have measured part of the plan"
    measured = [int(out.split("measured ")[1].split(" new")[0]) for out, _ in outputs]
    assert sum(measured) == planned


PROFILED_TARGET = "onnxruntime-cpu:threads=1"


@pytest.fixture(scope="module")
def profiled_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny plan with six encoders, profiled once by a real `latbench profile` process
    (8 samples a spec) for the fit, predict and evaluate tests."""
    root = tmp_path_factory.mktemp("profiled")
    plan = root / "six.toml"
    plan.write_text(TINY_PLAN.replace("encoders = 2", "encoders = 6"))
    db = root / "m.db"
    profiled = latbench(
        "profile", "--target", PROFILED_TARGET, "--plan", str(plan), "--db", str(db), "--samples", "8"
    )
    assert profiled.returncode == 0, profiled.stderr
    return db


def run_cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    """``latbench ARGS`` in this process: exit code, stdout and stderr."""
    code = main(list(args))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_fit_then_predict_from_a_profiled_database(profiled_db: Path, tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    db, target = profiled_db, PROFILED_TARGET
    arch = '{"layers": 2, "hidden": 64, "heads": 2, "ffn": 128, "vocab_size": 64}'
    for name in ("lut-block", "lut-op", "flops"):  # in this process: the command line's own code path
        out = tmp_path / f"{name}.json"
        code, stdout, err = run_cli(capsys, "fit", "--db", str(db), "--target", target, "--predictor", name,
                                    "--out", str(out))  # fmt: skip
        assert code == 0, err
        saved = json.loads(out.read_text())
        assert f"fitted {name}" in stdout and saved["predictor"] == name
        assert saved["training"]["figure"] == LATENCY_FIGURE  # what the predictor's latencies mean
        code, stdout, err = run_cli(
            capsys, "predict", "--predictor", str(out), "--arch", arch, "--seq", "8", "--json"
        )
        assert code == 0, err
        data = json.loads(stdout)
        assert data["latency_ms"] > 0 and data["outside_table"] == [] and data["predictor"] == name
    far = latbench(
        "predict",
        "--predictor",
        str(tmp_path / "lut-block.json"),
        "--arch",
        arch,
        "--seq",
        "64",
        "--batch",
        "8",
    )
    assert far.returncode == 0 and "outside the measured table" in far.stdout
    assert "latbench: warning: 1 of 1 encoders lie outside" in far.stderr
    other = latbench(
        "predict",
        "--predictor",
        str(tmp_path / "flops.json"),
        "--arch",
        arch,
        "--seq",
        "8",
        "--target",
        "onnxruntime-cpu:threads=2",
    )
    assert other.returncode == 0 and "fitted on target onnxruntime-cpu" in other.stderr
    assert_user_error(
        run_main(
            capsys,
            "fit",
            "--db",
            str(db),
            "--target",
            target,
            "--predictor",
            "oracle",
            "--out",
            str(tmp_path / "x.json"),
        ),
        "unknown predictor 'oracle'",
    )
    assert_user_error(
        run_main(
            capsys,
            "fit",
            "--db",
            str(db),
            "--target",
            "torch-cpu",
            "--predictor",
            "flops",
            "--out",
            str(tmp_path / "x.json"),
        ),
        "no measurements for target torch-cpu",
    )
    assert_user_error(
        run_main(capsys, "predict", "--predictor", str(tmp_path / "none.json"), "--arch", arch),
        "does not exist",
    )
    assert not (tmp_path / "x.json").exists()


def test_evaluate_scores_predictors_beside_a_re_measured_noise_floor(
    profiled_db: Path, tmp_path: Path
) -> None:
    db, target = profiled_db, PROFILED_TARGET
    out = tmp_path / "eval"
    result = latbench("evaluate", "--db", str(db), "--target", target, "--out", str(out))
    assert result.returncode == 0, result.stderr
    assert "random split" in result.stdout and "hidden split" in result.stdout
    assert "noise floor n=" in result.stdout and "lut-block" in result.stdout
    report = json.loads((out / "evaluation.json").read_text())
    assert report["format"] == "latbench-evaluation" and report["version"] == 1  # what reports read
    assert report["command"][:2] == ["latbench", "evaluate"] and report["settings"]["split"] == "both"
    assert report["settings"]["figure"] == LATENCY_FIGURE
    assert report["splits"]["random"]["noise_floor"]["n"] >= 1
    assert report["splits"]["random"]["predictors"]["lut-block"]["accuracy"]["n"] >= 1
    for name in ("random", "hidden"):
        png = (out / f"parity-{name}.png").read_bytes()
        assert png.startswith(b"\x89PNG") and len(png) > 10_000
    quiet = latbench(
        "evaluate",
        "--db",
        str(db),
        "--target",
        target,
        "--out",
        str(out),
        "--no-noise-floor",
        "--split",
        "random",
    )
    assert quiet.returncode == 0 and "noise floor: not measured" in quiet.stdout


def test_roofline_from_a_spec_sheet_alone_then_predict(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "h100.json"
    fitted = latbench(
        "fit",
        "--predictor",
        "roofline",
        "--device",
        "nvidia-h100-sxm",
        "--target",
        "torch-cpu",
        "--out",
        str(out),
    )
    assert fitted.returncode == 0, fitted.stderr
    assert "spec sheet only" in fitted.stdout and "on 0 encoders" in fitted.stdout
    arch = '{"layers": 12, "hidden": 768, "heads": 12, "ffn": 3072}'
    predicted = latbench("predict", "--predictor", str(out), "--arch", arch, "--json")
    assert predicted.returncode == 0, predicted.stderr
    result = json.loads(predicted.stdout)
    assert (
        0.05 < result["latency_ms"] < 50 and result["interval_ms"] is None and result["fingerprint"] is None
    )
    text = latbench("predict", "--predictor", str(out), "--arch", arch)
    assert "no interval" in text.stdout
    assert_user_error(
        run_main(
            capsys,
            "fit",
            "--predictor",
            "roofline",
            "--device",
            "tpu-v99",
            "--target",
            "x",
            "--out",
            str(out),
        ),
        "tpu-v99",
    )
    assert_user_error(
        run_main(capsys, "fit", "--predictor", "transfer", "--target", "onnxruntime-cpu", "--out", str(out)),
        "needs --source",
    )
    assert_user_error(
        run_main(
            capsys,
            "fit",
            "--predictor",
            "flops",
            "--device",
            "auto",
            "--target",
            "onnxruntime-cpu",
            "--out",
            str(out),
        ),
        "--device applies to",
    )


def test_specsheets_lists_devices_with_sources(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["specsheets"]) == 0
    text = capsys.readouterr().out
    assert "nvidia-h100-sxm" in text and "tpu-v5e" in text and "https://" in text and "auto" in text
    assert main(["specsheets", "--json"]) == 0
    sheets = json.loads(capsys.readouterr().out)
    assert (
        sheets["nvidia-a100-sxm-80gb"]["peak_flops"]["bf16"]
        > sheets["nvidia-a100-sxm-80gb"]["peak_flops"]["fp32"]
    )


def test_a_target_setting_this_machine_cannot_run_is_a_one_line_error(
    capsys: pytest.CaptureFixture[str],
) -> None:
    pytest.importorskip("jax", reason="jax (the tpu extra) is optional; the xla target needs it")
    assert_user_error(
        run_main(capsys, "profile", "--target", "xla:platform=tpu", "--plan", "quick", "--dry-run"),
        "xla:platform=tpu",
        "is not available here",
        "no tpu device",
    )
