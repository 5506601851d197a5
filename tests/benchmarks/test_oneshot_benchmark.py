"""The one-shot benchmark runs end to end with tiny settings, so the script that prints
the issue's figures cannot rot."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

from latbench.search.space import SearchSpace

ROOT = Path(__file__).resolve().parents[2]


def test_both_sections_print_their_figures(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = importlib.util.spec_from_file_location(
        "oneshot_benchmark", ROOT / "benchmarks" / "oneshot_bench.py"
    )
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "oneshot_benchmark", module)
    spec.loader.exec_module(module)
    monkeypatch.setattr(
        module,
        "SPACE",
        SearchSpace(
            name="s",
            layers=(1, 2),
            hidden=(64, 128),
            heads=(2,),
            ffn_ratios=(1.0,),
            vocab_size=256,
            max_positions=128,
        ),
    )
    out = tmp_path / "figures.json"
    code = module.main(
        ["--data", str(tmp_path / "work"), "--train-examples", "96", "--dev-examples", "24",
         "--teacher-steps", "2", "--supernet-steps", "2", "--students", "3", "--finetune-steps", "2",
         "--standalone-epochs", "0.2", "--text-sentences", "40", "--trials", "4", "--proxy-trials", "2",
         "--label-counts", "16,32", "--label-seeds", "2", "--label-steps", "2",
         "--json", str(out)]
    )  # fmt: skip
    assert code == 0
    printed = capsys.readouterr().out
    assert "Kendall τ against stand-alone accuracy (mean of 2 seeds) over 3 students" in printed
    assert "seed 0 vs seed 1 (ceiling)" in printed and "speed-up at equal trials" in printed
    figures = json.loads(out.read_text())
    ranking = figures["ranking"]
    assert len(ranking["students"]) == 3
    assert {"supernet direct", "supernet finetune", "params"} <= set(ranking["taus"])
    assert figures["speed"]["trials"] == 4 and figures["speed"]["supernet_search_s"] > 0
    assert set(figures["useful"]["rows"]) == {"16", "32"} and "supernet - random" in printed
    assert len(figures["useful"]["rows"]["16"]["CVT (random init)"]["runs"]) == 2
