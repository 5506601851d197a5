"""The one-shot path from the command line: `latbench supernet train` and `extract`, and
the bank of supernets behind them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from latbench.arch import Arch
from latbench.cli import build_parser, main
from latbench.cli.supernet import supernet_config
from latbench.distill.checkpoint import load_checkpoint
from latbench.distill.settings import SupernetConfig
from latbench.errors import ConfigError
from latbench.search.oneshot import load_bank

SPACE_TOML = (
    'name = "tiny"\nlayers = [1, 2]\nhidden = [16, 32]\nheads = [2, 4]\nffn_ratios = [1.0, 2.0]\n'
    "vocab_size = 160\nmax_positions = 64\n"
    '[[shots]]\nname = "narrow"\nhidden = [16]\n[[shots]]\nname = "wide"\nhidden = [32]\n'
)


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def trained(teacher_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("oneshot")
    (root / "space.toml").write_text(SPACE_TOML)
    (root / "text.txt").write_text("\n".join(f"this film is not bad number {i}" for i in range(60)) + "\n")
    code = main(["supernet", "train", "--teacher", str(teacher_dir), "--text", str(root / "text.txt"),
                 "--space", str(root / "space.toml"), "--out", str(root / "nets"), "--steps", "3",
                 "--batch-size", "8"])  # fmt: skip
    assert code == 0
    return root


def test_train_writes_one_supernet_per_shot_and_reruns_instantly(
    trained: Path, teacher_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    document = json.loads((trained / "nets" / "shots.json").read_text())
    assert [s["name"] for s in document["shots"]] == ["narrow", "wide"]
    assert document["space"]["name"] == "tiny" and len(document["space"]["shots"]) == 2
    code, out, err = run(capsys, "supernet", "train", "--teacher", str(teacher_dir), "--text",
                         str(trained / "text.txt"), "--space", str(trained / "space.toml"), "--out",
                         str(trained / "nets"), "--steps", "3", "--batch-size", "8")  # fmt: skip
    assert code == 0, err
    assert "narrow" in out and "wide" in out and "resumed at 3" in out


def test_extract_reads_the_student_off_its_shots_supernet(
    trained: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    arch = '{"layers": 2, "hidden": 16, "heads": 2, "ffn": 32}'
    code, out, err = run(capsys, "supernet", "extract", "--supernet", str(trained / "nets"), "--arch", arch,
                         "--out", str(trained / "student"))  # fmt: skip
    assert code == 0, err
    assert "from shot narrow" in out
    student = load_checkpoint(trained / "student")
    assert student.arch.hidden == 16 and student.arch.num_layers == 2
    bank = load_bank(trained / "nets")
    space, loaded = bank.find(Arch.from_json(arch))
    assert space.name == "narrow"
    ids = student.encoder.encode(["a film that is not bad"])
    with torch.no_grad():
        a = student.model(ids.input_ids, ids.attention_mask).logits
        b = loaded.net(student.arch, ids.input_ids, ids.attention_mask).logits
    assert torch.allclose(a, b, atol=1e-5)
    assert bank.extract(Arch.uniform(1, 32, 4, 64))[0] == "wide"


def test_bad_input_is_a_one_line_error(
    trained: Path, teacher_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    deep = '{"layers": 3, "hidden": 16, "heads": 2, "ffn": 32}'
    code, _, err = run(capsys, "supernet", "extract", "--supernet", str(trained / "nets"), "--arch", deep,
                       "--out", str(trained / "x"))  # fmt: skip
    assert code == 2 and "no supernet" in err and "narrow: 3 layers" in err
    code, _, err = run(capsys, "supernet", "extract", "--supernet", str(trained / "none"), "--arch", deep,
                       "--out", str(trained / "x"))  # fmt: skip
    assert code == 2 and "is not a folder" in err
    missing = str(trained / "missing.txt")
    code, _, err = run(capsys, "supernet", "train", "--teacher", str(teacher_dir), "--text", missing,
                       "--space", str(trained / "space.toml"), "--out", str(trained / "y"))  # fmt: skip
    assert code == 2 and "does not exist" in err
    code, _, err = run(capsys, "supernet", "train", "--teacher", str(teacher_dir), "--demo-text", "8",
                       "--space", "hat", "--out", str(trained / "y"), "--steps", "1")  # fmt: skip
    assert code == 2 and err.count("\n") == 1
    assert "the supernet of hat cannot be initialised from this teacher: 6 layers > the teacher's 4" in err


def test_train_with_no_options_builds_exactly_the_default_settings() -> None:
    args = build_parser().parse_args(["supernet", "train", "--teacher", "t", "--demo-text", "--space", "demo",
                                      "--out", "o"])  # fmt: skip
    assert supernet_config(args) == SupernetConfig()
    assert args.demo_text == 12_000
    with pytest.raises(ConfigError, match="bad loss weight"):
        argv = ["supernet", "train", "--teacher", "t", "--text", "x", "--space", "demo", "--out", "o",
                "--losses", "relation=1"]  # fmt: skip
        supernet_config(build_parser().parse_args(argv))


@pytest.mark.parametrize("scoring", ["direct", "finetune"])
def test_search_reads_each_trial_off_the_supernet(
    scoring: str,
    teacher_dir: Path,
    data_files: tuple[Path, Path],
    student_search_files: tuple[Path, Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    space, predictor = student_search_files
    nets = tmp_path / "nets"
    train, dev = (str(f) for f in data_files)
    code, _, err = run(capsys, "supernet", "train", "--teacher", str(teacher_dir), "--text", train,
                       "--space", str(space), "--out", str(nets), "--steps", "2",
                       "--batch-size", "8")  # fmt: skip
    assert code == 0, err
    out = tmp_path / "out"
    args = ["search", "--space", str(space), "--teacher", str(teacher_dir), "--data", train, "--dev", dev,
            "--predictor", str(predictor), "--trials", "4", "--sampler", "random",
            "--evaluator", "supernet", "--supernet", str(nets), "--supernet-scoring", scoring,
            "--supernet-steps", "2", "--proxy-examples", "32", "--no-final", "--out", str(out)]  # fmt: skip
    code, _, err = run(capsys, *args)
    assert code == 0, err
    document = json.loads((out / "search.json").read_text())
    objective = document["objective"]
    assert objective["objective"] == "supernet" and objective["scoring"] == scoring
    assert (objective["finetune"] is None) == (scoring == "direct")
    evaluated = [t for t in document["trials"] if t["state"] == "COMPLETE"]
    assert len(evaluated) == 4
    for trial in evaluated:
        assert 0.0 <= trial["accuracy"] <= 1.0 and trial["metrics"]["steps"] == (
            2 if scoring == "finetune" else 0
        )
    assert not list(out.glob("trial-*"))  # nothing distilled per trial


def test_search_with_the_supernet_evaluator_needs_the_supernet(
    teacher_dir: Path, data_files: tuple[Path, Path], student_search_files: tuple[Path, Path], tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    space, predictor = student_search_files
    base = ["search", "--space", str(space), "--teacher", str(teacher_dir), "--data", str(data_files[0]),
            "--predictor", str(predictor), "--out", str(tmp_path / "o"),
            "--evaluator", "supernet"]  # fmt: skip
    code, _, err = run(capsys, *base)
    assert code == 2 and "--evaluator supernet needs --supernet" in err
    code, _, err = run(capsys, *base, "--supernet", str(tmp_path / "missing"))
    assert code == 2 and "is not a folder" in err
