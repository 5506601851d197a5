"""`latbench demo`: every stage of the pipeline, shrunk (a tiny plan, a teacher trained
for a few steps, two-trial searches), ends in a report."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from latbench.cli import main

PLAN = """
name = "demo-test"
encoders = 6
contexts = ["model"]
[space]
hidden = [64, 128]
heads = [2, 4]
ffn_ratios = [4.0]
seq_lens = [128]
layers = [1, 4]
vocab_size = 256
"""


@pytest.mark.slow
def test_the_demo_runs_every_stage_and_writes_the_report(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import optuna  # noqa: F401

    plan = tmp_path / "plan.toml"
    plan.write_text(PLAN)
    out = tmp_path / "demo"
    args = ["demo", "--out", str(out), "--plan", str(plan), "--teacher-steps", "5", "--trials", "2",
            "--proxy-steps", "2", "--final-epochs", "0.005", "--samples", "8"]  # fmt: skip
    code = main(args)
    stdout, err = capsys.readouterr()
    assert code == 0, err
    for n, stage in enumerate(
        ("demo task", "profile", "fit", "evaluate", "search (GP)", "baseline", "report")
    ):
        assert f"{n + 1}/7 {stage}" in stdout
    assert "$ latbench profile --target onnxruntime-cpu:threads=1" in stdout  # each stage's command
    report = out / "report" / "report.html"
    assert f"report: {report.resolve()}" in stdout
    html = report.read_text()
    assert "random (baseline)" in html and "Latency predictors" in html and "teacher" in html
    for name in ("front", "hypervolume", "breakdown", "parity-random", "parity-hidden"):
        assert (out / "report" / f"{name}.png").is_file()
    search = json.loads((out / "search" / "search.json").read_text())
    assert search["evaluated_trials"] == 2 and search["settings"]["budget_ms"] > 0
    assert search["teacher"]["measured"]["ms"] > 0 and search["teacher"]["accuracy"] is not None
    assert all(m["final"] is not None and m["final_latency"]["measured"] for m in search["pareto"])
    timings = json.loads((out / "demo-timings.json").read_text())
    assert set(timings["stages_s"]) >= {"profile", "report"} and timings["wall_s"] > 0


@pytest.mark.slow
def test_the_demo_can_take_the_one_shot_path(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    plan = tmp_path / "plan.toml"
    plan.write_text(PLAN)
    out = tmp_path / "demo"
    args = ["demo", "--out", str(out), "--plan", str(plan), "--teacher-steps", "5", "--trials", "2",
            "--final-epochs", "0.005", "--samples", "8", "--no-baseline", "--evaluator", "supernet",
            "--supernet-steps", "2"]  # fmt: skip
    code = main(args)
    stdout, err = capsys.readouterr()
    assert code == 0, err
    assert "5/7 train the supernet (one-shot)" in stdout and "6/7 search (GP)" in stdout
    assert "--evaluator supernet --supernet" in stdout
    search = json.loads((out / "search" / "search.json").read_text())
    assert search["objective"]["objective"] == "supernet" and search["evaluated_trials"] == 2
    assert (out / "supernets" / "shots.json").is_file() and (out / "report" / "report.html").is_file()
