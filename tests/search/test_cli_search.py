"""`latbench search` end to end: proxy distillation of a tiny teacher's students, the
Pareto set distilled in full, resuming, TOML configs and one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

import optuna  # noqa: F401
import pytest

from latbench.cli import main
from latbench.testing.cli import assert_user_error


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def files(student_search_files: tuple[Path, Path]) -> tuple[Path, Path]:
    return student_search_files


def test_search_distils_candidates_then_the_pareto_set_and_resumes(
    teacher_dir: Path,
    data_files: tuple[Path, Path],
    files: tuple[Path, Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    space, predictor = files
    out = tmp_path / "out"
    args = ["search", "--space", str(space), "--teacher", str(teacher_dir), "--data", str(data_files[0]),
            "--dev", str(data_files[1]), "--predictor", str(predictor), "--trials", "3", "--sampler", "tpe",
            "--startup-trials", "2", "--proxy-steps", "3", "--proxy-examples", "64", "--final-epochs", "0.1",
            "--out", str(out)]  # fmt: skip
    code, stdout, err = run(capsys, *args)
    assert code == 0, err
    assert "not available here; latencies are predicted only" in err  # the fake target
    assert "Pareto set" in stdout and "3 students evaluated" in stdout
    assert "trial 0 (" in stdout + err and "joins the front: " in stdout + err  # the live front
    document = json.loads((out / "search.json").read_text())
    assert document["evaluated_trials"] == 3 and document["objective"]["objective"] == "proxy-distillation"
    assert document["objective"]["distill"]["steps"] == 3 and document["command"][:2] == [
        "latbench",
        "search",
    ]
    evaluated = [t for t in document["trials"] if t["state"] == "COMPLETE"]
    for trial in evaluated:
        assert 0.0 <= trial["accuracy"] <= 1.0 and 0.0 <= trial["metrics"]["probability_loyalty"] <= 1.0
    for member in document["pareto"]:
        final = member["final"]
        assert final["metrics"]["steps"] == 1  # 0.1 epoch of 320 examples at batch 32
        assert "int8_accuracy" in final["metrics"]
        assert (out / f"pareto-{member['number']:04d}" / "student.onnx").is_file()
    assert (out / "study.db").is_file() and (out / "trials.csv").is_file()
    code, stdout, err = run(capsys, *args[:-2], "--trials", "5", "--no-final", "--out", str(out))
    assert code == 0, err
    again = json.loads((out / "search.json").read_text())
    assert again["evaluated_trials"] == 5
    assert [t["number"] for t in again["trials"][: len(document["trials"])]] == [
        t["number"] for t in document["trials"]
    ]


def test_search_reads_a_toml_config_and_the_command_line_wins(
    files: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    space, predictor = files
    config = tmp_path / "search.toml"
    config.write_text(
        f'space = "{space}"\npredictor = "{predictor}"\nsurrogate = true\nsampler = "random"\n'
        f'trials = 4\nout = "{tmp_path / "o"}"\nbudget_ms = 1000.0\n'
    )
    code, _, err = run(capsys, "search", "--config", str(config), "--trials", "2")
    assert code == 0, err
    document = json.loads((tmp_path / "o" / "search.json").read_text())
    assert document["evaluated_trials"] == 2 and document["settings"]["sampler"] == "random"
    assert document["settings"]["budget_ms"] == 1000.0 and document["objective"]["objective"] == "surrogate"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"space": None}, "needs --space"),
        ({"teacher": None}, "needs --teacher"),
        ({"config_extra": "colour = 'red'\n"}, "unknown search option(s) colour"),
        ({"config_extra": 'sampler = "cma"\n'}, "sampler must be one of"),
        ({"config_extra": "trials = 0\n"}, "trials must be a positive integer"),
        ({"space_hidden": "[16, 64]"}, "cannot be extracted from the teacher"),
        ({"predictor": "missing.json"}, "does not exist"),
    ],
)
def test_bad_search_settings_fail_in_one_line_before_any_trial(
    change: dict[str, str | None],
    message: str,
    teacher_dir: Path,
    data_files: tuple[Path, Path],
    files: tuple[Path, Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    space, predictor = files
    if "space_hidden" in change:
        space.write_text(space.read_text().replace("[16, 32]", str(change["space_hidden"])))
    values = {"space": str(space), "teacher": str(teacher_dir), "predictor": str(predictor)}
    values.update({k: v for k, v in change.items() if k in values})  # type: ignore[misc]
    config = tmp_path / "c.toml"
    config.write_text(f'data = "{data_files[0]}"\n' + str(change.get("config_extra", "")))
    args = ["search", "--config", str(config), "--out", str(tmp_path / "o"), "--proxy-steps", "2"]
    for key, value in values.items():
        if value is not None:
            args += [
                f"--{key}",
                value if key != "predictor" or value != "missing.json" else str(tmp_path / value),
            ]
    code, stdout, err = run(capsys, *args)
    assert code == 2, (stdout, err)
    assert message in err and err.count("\n") <= 2 and "Traceback" not in err
    assert not (tmp_path / "o" / "study.db").exists()


def test_the_reference_point_is_chosen_on_the_command_line_and_kept_by_the_study(
    files: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    space, predictor = files
    out = tmp_path / "o"
    common = ["search", "--surrogate", "--space", str(space), "--predictor", str(predictor)]
    common += ["--no-measure", "--out", str(out)]
    code, _, err = run(capsys, *common, "--trials", "3", "--reference-accuracy", "0.5", "--reference-ms", "9")
    assert code == 0, err
    document = json.loads((out / "search.json").read_text())
    assert document["reference"] == [0.5, 9.0]
    accuracies = [t["accuracy"] for t in document["trials"]]
    assert document["hypervolume"][-1] <= (max(accuracies) - 0.5) * 9.0
    code, _, err = run(capsys, *common, "--trials", "4", "--reference-accuracy", "0.5")  # resumes
    assert code == 0, err
    assert json.loads((out / "search.json").read_text())["reference"] == [0.5, 9.0]
    code, _, err = run(capsys, *common, "--trials", "4", "--reference-accuracy", "0.5", "--reference-ms", "8")
    assert_user_error((code, err), "reference latency 9 ms, not 8 ms")
    code, _, err = run(capsys, *common, "--reference-accuracy", "0.2")
    assert_user_error((code, err), "exists with another settings")
    code, _, err = run(capsys, *common, "--reference-accuracy", "1.5", "--out", str(tmp_path / "p"))
    assert_user_error((code, err), "reference_accuracy must be in [0, 1)")
    assert not (tmp_path / "p").exists()
