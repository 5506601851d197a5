"""`latbench distill` end to end on a tiny teacher, and its one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from latbench.cli import main

ARCH = '{"layers": 2, "hidden": 16, "heads": 2, "ffn": 32}'


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def test_distill_writes_an_evaluated_student_and_resumes(
    teacher_dir: Path, data_files: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    train, dev = data_files
    out = tmp_path / "student"
    args = ["distill", "--teacher", str(teacher_dir), "--data", str(train), "--dev", str(dev),
            "--arch", ARCH, "--out", str(out), "--steps", "4", "--batch-size", "16",
            "--losses", "logits=1,hidden=1,relations=1", "--eval-every", "2"]  # fmt: skip
    code, stdout, err = run(capsys, *args)
    assert code == 0, err
    assert "teacher" in stdout and "INT8" in stdout
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["arch"]["hidden"] == 16 and metrics["training"]["steps"] == 4
    assert [row["step"] for row in metrics["training"]["history"]] == [2, 4]
    quality = metrics["student"]["quality"]
    assert quality["examples"] == 80 and 0 <= quality["probability_loyalty"] <= 1
    assert metrics["teacher"]["params"] > metrics["student"]["params"]
    assert metrics["int8"]["quality"]["label_loyalty"] is not None
    for name in ("student/config.json", "student/model.safetensors", "student.onnx", "student-int8.onnx"):
        assert (out / name).is_file(), name
    code, stdout, _ = run(capsys, *args, "--json")  # finished: resumes at the end, re-evaluates
    assert code == 0
    assert json.loads(stdout)["training"]["resumed_from"] == 4


def test_proxy_mode_trains_on_a_subset(
    teacher_dir: Path, data_files: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, stdout, err = run(
        capsys, "distill", "--teacher", str(teacher_dir), "--data", str(data_files[0]), "--arch", ARCH,
        "--out", str(tmp_path / "p"), "--proxy", "--steps", "3", "--no-int8", "--json",
    )  # fmt: skip
    assert code == 0, err
    metrics = json.loads(stdout)
    assert metrics["config"]["max_examples"] == 2000 and metrics["training"]["steps"] == 3
    assert metrics["int8"] is None
    assert metrics["student"]["quality"]["examples"] == 32  # 10% of the 320 training examples


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"--teacher": "/nonexistent"}, "is not a directory"),
        (
            {"--arch": '{"layers": 6, "hidden": 16, "heads": 2, "ffn": 32}'},
            "student has 6 layers but the teacher only 4",
        ),
        ({"--layer-map": "1,2,3"}, "names 3 teacher layers but the student has 2"),
        ({"--layer-map": "first"}, "--layer-map 'first'"),
        (
            {"--losses": "attention=1", "--arch": '{"layers": 2, "hidden": 16, "heads": 2, "ffn": 32}'},
            "attention loss compares heads one to one",
        ),
        ({"--data": "EMPTY"}, "is empty"),
        ({"--arch": '{"layers": 2, "hidden": 30, "heads": 4, "ffn": 32}'}, "not divisible by 4 heads"),
        ({"--quantize": "int4"}, "not of the form wNaM"),
        ({"--quantize": "w4a4"}, "activations are quantized to 8 bits"),
        ({"--quantize": "w1a8"}, "weights are quantized to 2-8 bits"),
        ({"--fixed-scales": ""}, "--fixed-scales needs --quantize"),
    ],
)
def test_bad_input_is_a_one_line_error(
    teacher_dir: Path, data_files: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str],
    change: dict[str, str], message: str,
) -> None:  # fmt: skip
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    options = {"--teacher": str(teacher_dir), "--data": str(data_files[0]), "--arch": ARCH,
               "--out": str(tmp_path / "o"), "--steps": "1"}  # fmt: skip
    options.update(change)
    if options["--data"] == "EMPTY":
        options["--data"] = str(empty)
    code, _, err = run(capsys, "distill", *[x for kv in options.items() for x in kv if x])
    assert code == 2
    assert message in err
    assert err.count("\n") == 1 and "Traceback" not in err


def test_quantization_aware_distillation_writes_a_qdq_student_that_reloads(
    teacher_dir: Path, data_files: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import onnx

    from latbench.distill.checkpoint import load_checkpoint
    from latbench.distill.quant import QuantLinear

    out = tmp_path / "q"
    code, stdout, err = run(
        capsys, "distill", "--teacher", str(teacher_dir), "--data", str(data_files[0]),
        "--dev", str(data_files[1]), "--arch", ARCH, "--out", str(out), "--steps", "3", "--quantize", "w4a8",
    )  # fmt: skip
    assert code == 0, err
    assert "quantized W4A8 (learned (LSQ) scales)" in stdout and "INT8" not in stdout
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["quantization"]["weight_bits"] == 4 and metrics["quantization"]["packed_bytes"] > 0
    assert metrics["int8"] is None and not (out / "student-int8.onnx").exists()
    assert not (out / "student" / "config.json").exists()  # transformers cannot load LSQ layers
    ops = {n.op_type for n in onnx.load(str(out / "student.onnx")).graph.node}
    assert "DequantizeLinear" in ops
    student = load_checkpoint(out / "student")
    assert sum(isinstance(m, QuantLinear) for m in student.model.modules()) == 12
