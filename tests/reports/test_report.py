"""`latbench report`: the HTML page and PNGs from search results and predictor
evaluations, escaping, provenance, and one-line errors for bad input."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from latbench.cli import main
from latbench.errors import ConfigError
from latbench.reports.build import build_report
from latbench.reports.results import read_results


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def embedded_images(html: str) -> list[str]:
    return re.findall(r'<img src="data:image/png;base64,([A-Za-z0-9+/=]+)"', html)


def evaluation_document() -> dict:  # type: ignore[type-arg]
    measured = [0.4, 0.8, 1.6, 3.2]
    return {
        "format": "latbench-evaluation",
        "version": 1,
        "target": "fake-cpu",
        "fingerprint": {"cpu_model": "Test CPU <b>", "physical_cores": 2},
        "settings": {"split": "random"},
        "command": ["latbench", "evaluate", "--target", "fake-cpu"],
        "splits": {
            "random": {
                "folds": 1,
                "train": 8,
                "test": 4,
                "noise_floor": {
                    "n": 4,
                    "median_pct": 1.5,
                    "p90_pct": 3.0,
                    "mape_pct": 1.7,
                    "within_10pct": 1.0,
                },
                "predictors": {
                    "lut-block": {
                        "accuracy": {
                            "n": 4,
                            "within_5pct": 0.75,
                            "within_10pct": 1.0,
                            "mape_pct": 4.0,
                            "rmspe_pct": 5.0,
                            "kendall_tau": 1.0,
                            "p95_error_pct": 9.0,
                            "median_error_pct": -1.0,
                        },
                        "extrapolated": 0,
                        "error": None,
                        "predicted_ms": [v * 1.04 for v in measured],
                    },
                    "hat-mlp": {
                        "accuracy": None,
                        "extrapolated": 0,
                        "error": "too few encoders",
                        "predicted_ms": [],
                    },
                },
                "measured_ms": measured,
                "test_labels": ["a", "b", "c", "d"],
            }
        },
    }


def test_a_search_report_has_every_figure_the_pareto_table_and_provenance(
    searches: Any, tmp_path: Path
) -> None:
    files = build_report(
        [searches.gp], tmp_path / "r", baselines=[searches.random], command=["latbench", "report"]
    )
    names = [p.name for p in files.images]
    assert names == ["front.png", "hypervolume.png", "breakdown.png"] and files.notes == ()
    for path in files.images:
        data = path.read_bytes()
        assert data.startswith(b"\x89PNG") and len(data) > 10_000
    html = files.html.read_text(encoding="utf-8")
    assert len(embedded_images(html)) == 3  # self-contained: the PNGs are in the page too
    assert not re.search(r"""(src|href)=["']?(https?:|//)""", html)  # nothing from the network
    assert "<link" not in html and "<script" not in html
    document = json.loads((searches.gp / "search.json").read_text())
    for member in document["pareto"]:  # every Pareto student is in the table, with both latencies
        assert member["final_latency"]["measured"] is True
        latency = member["final_latency"]
        assert re.search(re.escape(f"{latency['ms']:.3f}"), html)
        # the typical and tail figures beside the latency figure (the minimum)
        assert latency["median_ms"] >= latency["ms"] and latency["p90_ms"] >= latency["median_ms"]
        assert f"{latency['median_ms']:.3f} · {latency['p90_ms']:.3f}" in html
    assert "teacher" in html and "4L/128H/4A/512F" in html  # the teacher row
    assert f"latency budget {document['settings']['budget_ms']:g} ms" in html
    assert "gp (this search)" in html and "random (baseline)" in html
    assert "Provenance" in html and "latbench search --sampler gp" in html and "cpu_model" in html


def test_user_text_is_escaped_in_the_page(searches: Any, tmp_path: Path) -> None:
    document = json.loads((searches.gp / "search.json").read_text())
    evil = '<script>alert("x")</script>'
    document["space"]["name"] = evil
    document["study"] = evil
    document["command"] = ["latbench", "search", "--out", evil]
    path = tmp_path / "evil" / "search.json"
    path.parent.mkdir()
    path.write_text(json.dumps(document))
    html = build_report([path], tmp_path / "r", title=f"title {evil}").html.read_text()
    assert evil not in html and "<script" not in html
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in html


def test_an_evaluation_alone_gives_parity_plots_and_accuracy_beside_the_noise_floor(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "evaluation.json"
    path.write_text(json.dumps(evaluation_document()))
    code, out, err = run(capsys, "report", str(tmp_path), "--out", str(tmp_path / "r"))
    assert code == 0, err
    assert "parity-random.png" in out
    html = (tmp_path / "r" / "report.html").read_text()
    assert len(embedded_images(html)) == 1
    assert "noise floor (re-measured)" in html and "95.8" not in html and "100.0%" in html
    assert "not fitted: too few encoders" in html
    assert "Test CPU &lt;b&gt;" in html  # the fingerprint, escaped


def test_a_search_and_an_evaluation_make_one_page(searches: Any, tmp_path: Path) -> None:
    evaluation = tmp_path / "e" / "evaluation.json"
    evaluation.parent.mkdir()
    evaluation.write_text(json.dumps(evaluation_document()))
    files = build_report([searches.gp, evaluation], tmp_path / "r")
    assert [p.name for p in files.images][-1] == "parity-random.png"
    html = files.html.read_text()
    assert html.index("Search") < html.index("Latency predictors") < html.index("Provenance")


def test_without_its_predictor_file_the_report_says_why_there_is_no_breakdown(
    searches: Any, tmp_path: Path
) -> None:
    document = json.loads((searches.gp / "search.json").read_text())
    document["latency"]["predictor_file"] = str(tmp_path / "gone.json")
    path = tmp_path / "s" / "search.json"
    path.parent.mkdir()
    path.write_text(json.dumps(document))
    files = build_report([path], tmp_path / "r")
    assert [p.name for p in files.images] == ["front.png", "hypervolume.png"]
    assert files.notes and "gone.json is not here" in files.notes[0]
    assert "gone.json is not here" in files.html.read_text()


def test_a_baseline_with_another_reference_point_is_left_out_with_a_note(
    searches: Any, tmp_path: Path
) -> None:
    document = json.loads((searches.random / "search.json").read_text())
    document["reference"] = [0.5, 1.0]
    path = tmp_path / "b" / "search.json"
    path.parent.mkdir()
    path.write_text(json.dumps(document))
    files = build_report([searches.gp], tmp_path / "r", baselines=[path])
    assert any("another reference point" in n for n in files.notes)
    assert "random (baseline)" not in files.html.read_text()


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "does not exist"),
        ("{not json", "is not JSON"),
        ("[1, 2]", "a JSON object was expected"),
        ('{"format": "something-else"}', "neither a latbench search result nor a predictor evaluation"),
        ('{"format": "latbench-search", "version": 99}', "search format version 99"),
        ('{"format": "latbench-search", "version": 1, "study": "s"}', "has no 'settings'"),
        (
            '{"format": "latbench-evaluation", "version": 1, "target": "t", "splits": []}',
            "should be an object",
        ),
    ],
)
def test_bad_inputs_are_one_line_errors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: str | None, message: str
) -> None:
    path = tmp_path / "in.json"
    if content is not None:
        path.write_text(content)
    with pytest.raises(ConfigError, match=re.escape(message)):
        read_results(path)
    code, _, err = run(capsys, "report", str(path), "--out", str(tmp_path / "r"))
    assert code == 2 and err.startswith("latbench: error: ") and message in err
    assert len(err.strip().splitlines()) == 1 and not (tmp_path / "r" / "report.html").exists()


def test_wrong_combinations_of_inputs_are_refused(searches: Any, tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError, match=r"holds neither search\.json"):
        build_report([tmp_path / "empty"], tmp_path / "r")
    with pytest.raises(ConfigError, match="at most one search result"):
        build_report([searches.gp, searches.random], tmp_path / "r")
    evaluation = tmp_path / "evaluation.json"
    evaluation.write_text(json.dumps(evaluation_document()))
    with pytest.raises(ConfigError, match="give a search result to compare it with"):
        build_report([evaluation], tmp_path / "r", baselines=[searches.random])
    with pytest.raises(ConfigError, match="is a predictor evaluation, not a search result"):
        build_report([searches.gp], tmp_path / "r", baselines=[evaluation])
