"""The distillation benchmark runs end to end with tiny settings (latencies from FLOPs
instead of a real target), so the script that prints the issue's figures cannot rot."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

from latbench.arch import Workload
from latbench.search.space import SearchSpace

ROOT = Path(__file__).resolve().parents[2]


def test_every_section_prints_its_figures(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = importlib.util.spec_from_file_location(
        "distill_benchmark", ROOT / "benchmarks" / "distill_bench.py"
    )
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "distill_benchmark", module)
    spec.loader.exec_module(module)

    def fake_measure(archs, seq):  # type: ignore[no-untyped-def]
        return [(a.flops(Workload(1, seq)) / 1e8 + 0.01, 0.001) for a in archs]

    monkeypatch.setattr(module, "measure", fake_measure)
    monkeypatch.setattr(module, "RANK_ARCHS", 4)
    monkeypatch.setattr(
        module,
        "STUDENT_GRID",
        SearchSpace(name="g", layers=(1, 2), hidden=(32, 64), heads=(2,), ffn_ratios=(2.0,)),
    )
    out = tmp_path / "figures.json"
    code = module.main(
        ["--data", str(tmp_path / "work"), "--train-examples", "120", "--dev-examples", "30",
         "--teacher-steps", "2", "--full-steps", "3", "--proxy-steps", "2", "--json", str(out)]
    )  # fmt: skip
    assert code == 0
    printed = capsys.readouterr().out
    assert "teacher 4L/128H: dev accuracy" in printed
    assert "Kendall tau proxy vs full over 4 students" in printed
    figures = json.loads(out.read_text())
    assert {"teacher", "speedups", "proxy_rank"} <= set(figures)
    for row in figures["speedups"]:
        assert row["speedup"] >= row["target_speedup"] and 0 <= row["accuracy"] <= 1
    if "etd_vs_random" in figures:
        assert set(figures["etd_vs_random"]) == {"etd", "random"}
    assert len(figures["proxy_rank"]["full"]) == 4
