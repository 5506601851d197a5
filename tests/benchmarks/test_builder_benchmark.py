"""benchmarks/builder_bench.py runs end to end on one small published model."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def bench(monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    path = ROOT / "benchmarks" / "builder_bench.py"
    spec = importlib.util.spec_from_file_location("builder_benchmark", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "builder_benchmark", module)
    spec.loader.exec_module(module)
    return module


def test_one_model_is_compared_in_every_form(bench, tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    out = tmp_path / "builder.json"
    args = ["--only", "turc-L2-H128", "--samples", "4", "--repeats", "2", "--json", str(out)]
    assert bench.main(args) == 0
    printed = capsys.readouterr().out
    summaries = ("latbench's encoder (deployed form)", "the fused form (before)", "noise floor: the exported")
    assert all(line in printed for line in summaries)
    (result,) = json.loads(out.read_text())["results"]
    assert result["name"] == "turc-L2-H128" and len(result["repeat_ratios"]) == 2
    assert all(result[k] > 0 for k in ("exported_ms", "latbench_ms", "fused_ms", "ratio", "noise_ratio"))


def test_unknown_models_and_bad_counts_are_refused(bench, capsys: pytest.CaptureFixture[str]) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(SystemExit):
        bench.main(["--only", "gpt-2"])
    assert "unknown published model" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        bench.main(["--repeats", "0"])
