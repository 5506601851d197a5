"""The predictor benchmark's sections run end to end (on the fake backend, with small
sizes), so the script that prints the issue's figures cannot rot unnoticed."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

from latbench.db import MeasurementDB
from latbench.fingerprint import collect
from latbench.plans import Plan, ProfileSpace
from latbench.profile import run_profile
from latbench.target import Target
from latbench.testing.fake_backend import FakeBackend

ROOT = Path(__file__).resolve().parents[2]
SPACE = ProfileSpace(
    hidden=(128, 256, 384, 512, 768),
    heads=(2, 4, 8, 12),
    ffn_ratios=(2.0, 4.0),
    seq_lens=(128,),
    layers=(2, 12),
)


@pytest.fixture
def bench(monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location(
        "predictor_benchmark", ROOT / "benchmarks" / "predictor_bench.py"
    )
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "predictor_benchmark", module)
    spec.loader.exec_module(module)
    fingerprint = collect()

    def fake_backend_for(name: str):  # type: ignore[no-untyped-def]
        backend = FakeBackend()
        threads = 1 if name == module.ORT else 2  # two distinct "targets"
        return backend, backend.normalize(Target("fake-cpu", settings=(("threads", threads),))), fingerprint

    monkeypatch.setattr(module, "backend_for", fake_backend_for)
    monkeypatch.setattr(module, "LC_POOL", 24)
    monkeypatch.setattr(module, "LC_TEST", 8)
    monkeypatch.setattr(module, "LC_SIZES", (10, 24))
    monkeypatch.setattr(module, "TRANSFER_ENCODERS", 24)
    monkeypatch.setattr(module, "TRANSFER_TEST", 8)
    monkeypatch.setattr(module, "FEW_SHOT", (10,))
    monkeypatch.setattr(module, "DRAWS", 1)
    monkeypatch.setattr(module, "SPEED_POPULATION", 2000)
    monkeypatch.setattr(module, "PUBLISHED_MODELS", "turc-L2-H128")  # exported and measured for real
    monkeypatch.setattr(module, "PUBLISHED_SAMPLES", 8)
    monkeypatch.setattr(
        module, "lc_plan", lambda: Plan(name="lc", space=SPACE, contexts=("model",), encoders=32, seed=1)
    )
    return module, fake_backend_for


def test_every_section_prints_its_figures(bench, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:  # type: ignore[no-untyped-def]
    module, backend_for = bench
    backend, target, fingerprint = backend_for(module.ORT)
    standard = Plan(
        name="s", space=SPACE, contexts=("model",), encoders=12, sampling="halton", points=40, seed=2
    )
    with MeasurementDB(tmp_path / "standard.db") as db:
        run_profile(standard.specs(), backend, target, fingerprint, db)
    assert module.main(["--data", str(tmp_path), "--json", str(tmp_path / "figures.json")]) == 0
    out = capsys.readouterr().out
    for section in module.SECTIONS:
        assert f"== {section} ==" in out
    assert "turc-L2-H128" in out and "noise floor (pass 1 against pass 2)" in out
    assert "transfer(lut-block)" in out and "archs/s" in out
    import json

    figures = json.loads((tmp_path / "figures.json").read_text())
    assert figures["speed"]["lut-block"]["archs_per_s"] > 0
    assert set(figures["learning-curve"]["lut-block"]) == {"10", "24"}
    published = figures["published"]
    assert published["models"] == ["turc-L2-H128"] and published["measured_ms"][0] > 0
    assert published["again_ms"][0] > 0 and published["predictors"]["lut-block"]["predicted_ms"][0] > 0
    # the exported models are stored as model rows, so a rerun measures nothing again
    with MeasurementDB(tmp_path / "published.db", create=False) as db:
        (row,) = db.measurements()
    assert row.spec.kind == "model" and row.spec.arch is not None and row.spec.source == "hf"


def test_unknown_sections_are_refused(bench) -> None:  # type: ignore[no-untyped-def]
    module, _ = bench
    with pytest.raises(SystemExit):
        module.main(["--only", "everything"])
