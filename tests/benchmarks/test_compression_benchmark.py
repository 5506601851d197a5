"""The compression benchmark runs end to end with tiny settings, so the script that prints
the issue's figures cannot rot."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def test_every_variant_is_trained_scored_and_timed(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = importlib.util.spec_from_file_location(
        "compression_benchmark", ROOT / "benchmarks" / "compression_bench.py"
    )
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "compression_benchmark", module)
    spec.loader.exec_module(module)
    out = tmp_path / "figures.json"
    code = module.main(
        ["--data", str(tmp_path / "work"), "--train-examples", "96", "--dev-examples", "24",
         "--teacher-steps", "2", "--seeds", "1", "--epochs", "0.1", "--seq", "16", "--samples", "4",
         "--arch", '{"layers": 1, "hidden": 64, "heads": 2, "ffn": 128}', "--json", str(out)]
    )  # fmt: skip
    assert code == 0
    printed = capsys.readouterr().out
    assert "W8A8 - FP32" in printed and "ONNX vs PyTorch, worst run" in printed
    figures = json.loads(out.read_text())["variants"]
    assert set(figures) == {"FP32 + KD", "dynamic INT8", "LSQ + KD W8A8", "LSQ + KD W4A8", "LSQ + KD W2A8",
                            "LSQ W4A8, no KD", "min-max W4A8 + KD"}  # fmt: skip
    assert figures["LSQ + KD W4A8"]["size_bytes"] < figures["LSQ + KD W8A8"]["size_bytes"]
    assert figures["LSQ + KD W8A8"]["size_bytes"] < figures["FP32 + KD"]["size_bytes"]
    assert all(v["latency_ms"] > 0 for v in figures.values())
