"""Users' own models: ONNX files and local Hugging Face checkpoints, measured for real on
onnxruntime-cpu and eager PyTorch, broken down by operator; bad input refused in one line."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import onnx
import pytest
import transformers
from onnx import TensorProto, helper

from latbench.arch import Arch, Workload
from latbench.cli import main
from latbench.db import MeasurementDB
from latbench.errors import ConfigError
from latbench.fingerprint import collect
from latbench.measurement import Measurement
from latbench.predictors.evaluation import encoders_and_table
from latbench.specs import EncoderSpec, ModelSpec, spec_from_dict
from latbench.target import Target
from latbench.testing.cli import assert_user_error
from latbench.timing import ProtocolSettings
from latbench.user_models import (
    CATEGORIES,
    NodeProfile,
    export_hf_model,
    load_hf_model,
    load_onnx,
    max_positions,
    measure_hf_eager,
    measure_onnx,
    onnx_feeds,
    operator_breakdown,
    operator_of,
    vocab_size,
)

FAST = ProtocolSettings(warmup_min_s=0.0, min_sample_s=0.0005, samples=8, min_samples=8, rounds=2)
TARGET = "onnxruntime-cpu:threads=1"


def tiny_config(family: str, *, head: bool = False):  # type: ignore[no-untyped-def]
    common = {"vocab_size": 300, "max_position_embeddings": 40}
    if family == "distilbert":
        config = transformers.DistilBertConfig(dim=32, n_layers=2, n_heads=2, hidden_dim=64, **common)
    else:
        cls = {"bert": transformers.BertConfig, "roberta": transformers.RobertaConfig,
               "electra": transformers.ElectraConfig}[family]  # fmt: skip
        config = cls(
            hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64, **common
        )
    if head:
        config.architectures = [f"{type(config).__name__.removesuffix('Config')}ForSequenceClassification"]
    return config


@pytest.fixture(scope="module")
def bert_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("bert")
    transformers.BertModel(tiny_config("bert")).save_pretrained(directory)
    return directory


@pytest.fixture(scope="module")
def bert_onnx(bert_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("onnx") / "bert.onnx"
    path.write_bytes(export_hf_model(load_hf_model(bert_dir), 1, 16))
    return path


def test_inputs_follow_the_graph_ids_within_the_vocabulary_and_masks_of_ones(bert_onnx: Path) -> None:
    model = load_onnx(bert_onnx)
    assert vocab_size(model, "input_ids") == 300 and max_positions(model) == 40
    feeds = onnx_feeds(model, 3, 12)
    assert set(feeds) == {"input_ids", "attention_mask"}
    assert feeds["input_ids"].shape == (3, 12) and feeds["input_ids"].dtype == np.int64
    assert feeds["input_ids"].min() >= 0 and feeds["input_ids"].max() < 300
    assert (feeds["attention_mask"] == 1).all()


def test_an_onnx_model_is_timed_and_broken_down_by_operator(bert_onnx: Path) -> None:
    result = measure_onnx(bert_onnx, TARGET, batch=2, seq=16, settings=FAST)
    assert result.stats.n >= 8 and result.stats.median_s > 0 and result.inputs["input_ids"] == [2, 16]
    b = result.breakdown
    assert b is not None and b.nodes > 20 and tuple(b.operators_ms) == CATEGORIES
    for name in ("embeddings", "projections", "attention", "ffn", "layer norm"):
        assert b.operators_ms[name] > 0, name
    total = sum(b.operators_ms.values()) + b.unattributed_ms
    assert total == pytest.approx(result.stats.median_s * 1e3) and b.unattributed_ms >= 0
    document = result.to_dict()
    assert document["workload"] == {"batch": 2, "seq_len": 16} and document["breakdown"]["nodes"] == b.nodes


@pytest.mark.parametrize(("family", "head"), [("roberta", False), ("distilbert", True), ("electra", True)])
def test_every_supported_family_exports_and_runs(family: str, head: bool, tmp_path: Path) -> None:
    config = tiny_config(family, head=head)
    (tmp_path / "config.json").write_text(config.to_json_string())  # a config alone: random weights
    model = load_hf_model(tmp_path)
    assert type(model).__name__.endswith("ForSequenceClassification") == head
    result = measure_onnx(export_hf_model(model, 1, 8), TARGET, batch=1, seq=8, settings=FAST, what=family)
    assert result.breakdown is not None and result.breakdown.operators_ms["projections"] > 0
    assert result.breakdown.operators_ms["ffn"] > 0


def test_the_exported_graph_takes_other_batches_and_lengths(bert_onnx: Path) -> None:
    assert measure_onnx(bert_onnx, TARGET, batch=4, seq=24, settings=FAST).inputs["input_ids"] == [4, 24]


def test_eager_pytorch_is_timed_with_the_threads_asked_for(bert_dir: Path) -> None:
    import torch

    before = torch.get_num_threads()
    result = measure_hf_eager(load_hf_model(bert_dir), batch=1, seq=8, threads=1, settings=FAST)
    assert (
        result.stats.median_s > 0 and str(result.target) == "torch-cpu:threads=1" and result.breakdown is None
    )
    assert torch.get_num_threads() == before


def test_nodes_map_onto_latbench_operators() -> None:
    layer = "/bert/encoder/layer.3"
    assert operator_of(f"{layer}/attention/self/query/MatMul", "MatMul") == "projections"
    assert operator_of(f"{layer}/attention/output/dense/MatMul", "MatMul") == "projections"
    assert operator_of(f"{layer}/attention/self/Softmax", "Softmax") == "attention"
    assert operator_of(f"{layer}/intermediate/dense/MatMul", "MatMul") == "ffn"
    assert operator_of(f"{layer}/output/dense/MatMul", "MatMul") == "ffn"
    assert operator_of(f"{layer}/output/Add", "Add") == "layer norm"  # the residual of add & norm
    assert operator_of(f"{layer}/output/LayerNorm/LayerNormalization", "LayerNormalization") == "layer norm"
    assert operator_of("/distilbert/transformer/layer.0/attention/q_lin/MatMul", "MatMul") == "projections"
    assert operator_of("/distilbert/transformer/layer.0/ffn/lin1/MatMul", "MatMul") == "ffn"
    assert operator_of("/bert/embeddings/word_embeddings/Gather", "Gather") == "embeddings"
    assert operator_of("BiasGelu_token_3", "BiasGelu") == "ffn"  # fused by ONNX Runtime
    assert operator_of("/bert/Where", "Where") == "the rest"


def test_the_breakdown_shares_out_the_measured_latency() -> None:
    profile = NodeProfile(
        {"/e/embeddings/Gather": ("Gather", 10.0), "x/attention/self/Softmax": ("Softmax", 30.0)}, 50.0
    )
    b = operator_breakdown(profile, 2.0)
    assert b.operators_ms["embeddings"] == pytest.approx(0.4) and b.operators_ms[
        "attention"
    ] == pytest.approx(1.2)
    assert b.unattributed_ms == pytest.approx(0.4)


def _graph_with(inputs: list[tuple[str, list[int | str]]], path: Path) -> Path:
    values = [helper.make_tensor_value_info(n, TensorProto.FLOAT, s) for n, s in inputs]
    out = helper.make_tensor_value_info("y", TensorProto.FLOAT, None)
    node = helper.make_node("Identity", [inputs[0][0]], ["y"])
    onnx.save(helper.make_model(helper.make_graph([node], "g", values, [out])), path)
    return path


def test_bad_onnx_input_is_refused_in_one_line(tmp_path: Path, bert_onnx: Path) -> None:
    with pytest.raises(ConfigError, match="no ONNX model at"):
        load_onnx(tmp_path / "missing.onnx")
    (tmp_path / "text.onnx").write_text("not a model")
    with pytest.raises(ConfigError, match="is not an ONNX model"):
        load_onnx(tmp_path / "text.onnx")
    unbound = load_onnx(_graph_with([("x", ["batch", "seq", "hidden"])], tmp_path / "u.onnx"))
    with pytest.raises(ConfigError, match="symbolic dimension 'hidden' at axis 2"):
        onnx_feeds(unbound, 1, 8)
    fixed = load_onnx(_graph_with([("x", [1, 64])], tmp_path / "f.onnx"))
    with pytest.raises(ConfigError, match="fixed sequence length of 64; pass --seq 64"):
        onnx_feeds(fixed, 1, 8)
    assert onnx_feeds(fixed, 1, 64)["x"].shape == (1, 64)
    with pytest.raises(ConfigError, match="--seq 41 is longer than the model's 40 positions"):
        onnx_feeds(load_onnx(bert_onnx), 1, 41)
    with pytest.raises(ConfigError, match="measured on onnxruntime-cpu, not torch-cpu"):
        measure_onnx(bert_onnx, "torch-cpu", settings=FAST)


def test_bad_hugging_face_input_is_refused_in_one_line(tmp_path: Path, bert_dir: Path) -> None:
    with pytest.raises(ConfigError, match=r"no Hugging Face config\.json"):
        load_hf_model(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "gpt2", "n_layer": 2}))
    with pytest.raises(ConfigError, match="model type 'gpt2' is not supported; --hf-model takes bert"):
        load_hf_model(tmp_path)
    with pytest.raises(ConfigError, match="longer than the model's 40 positions"):
        export_hf_model(load_hf_model(bert_dir), 1, 64)


def test_the_measure_command_takes_onnx_and_hugging_face_models(
    bert_onnx: Path, bert_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert (
        main(["measure", "--onnx", str(bert_onnx), "--target", TARGET, "--seq", "8", "--samples", "8"]) == 0
    )
    printed = capsys.readouterr().out
    assert "per operator" in printed and "projections" in printed and "unattributed" in printed
    code = main(
        ["measure", "--hf-model", str(bert_dir), "--target", TARGET, "--seq", "8", "--samples", "8", "--json"]
    )
    assert code == 0
    onnx_run, eager = json.loads(capsys.readouterr().out)
    assert onnx_run["breakdown"]["operators_ms"]["attention"] > 0 and eager["target"] == "torch-cpu:threads=1"
    code = main(["measure", "--onnx", str(bert_onnx), "--target", TARGET, "--seq", "99"])
    assert_user_error((code, capsys.readouterr().err), "longer than the model's 40 positions")
    code = main(["measure", "--onnx", str(bert_onnx), "--target", TARGET, "--precision", "bf16"])
    assert_user_error((code, capsys.readouterr().err), "leave --precision at fp32")


def test_measured_models_are_stored_with_their_breakdown_and_shape(
    bert_onnx: Path, bert_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "m.db"
    onnx_args = ["measure", "--onnx", str(bert_onnx), "--target", TARGET, "--seq", "8", "--samples", "8"]
    assert main([*onnx_args, "--db", str(db)]) == 0
    assert main([*onnx_args, "--db", str(db)]) == 0  # the same model again: kept once
    assert "already stored" in capsys.readouterr().err
    hf_args = ["measure", "--hf-model", str(bert_dir), "--target", TARGET, "--seq", "8", "--samples", "8"]
    assert main([*hf_args, "--db", str(db), "--json"]) == 0
    documents = json.loads(capsys.readouterr().out)
    assert [d["spec"]["source"] for d in documents] == ["hf", "hf-eager"]
    with MeasurementDB(db, create=False) as opened:
        rows = opened.measurements()
    by_source = {m.spec.source: m for m in rows}
    assert set(by_source) == {"onnx", "hf", "hf-eager"} and all(m.spec.kind == "model" for m in rows)
    assert by_source["onnx"].spec.arch is None and by_source["hf"].spec.arch.hidden == 32
    assert by_source["hf-eager"].target.name == "torch-cpu"
    operators = {k.op_type for k in by_source["onnx"].kernels}
    assert {"projections", "attention", "ffn", "unattributed"} <= operators
    assert by_source["onnx"].spec.digest != by_source["hf"].spec.digest


def test_a_model_spec_round_trips_and_stays_out_of_what_predictors_fit(bert_dir: Path) -> None:
    arch = Arch.from_hf_config(str(bert_dir))
    spec = ModelSpec("bert", "0123456789abcdef", Workload(1, 8), "hf", arch)
    assert spec_from_dict(spec.to_dict()) == spec and spec.label == "model[bert,hf] b=1 s=8"
    assert spec.key != ModelSpec("bert", "0123456789abcdef", Workload(1, 8), "hf-eager", arch).key
    with pytest.raises(ConfigError, match="model source must be one of"):
        ModelSpec("x", "d", Workload(1, 8), "tflite")
    model_row = Measurement(spec, Target("onnxruntime-cpu"), collect(), (1e-3,), 1, 1, True, 0.0, "now")
    encoder = EncoderSpec(arch, Workload(1, 8))
    encoder_row = replace(model_row, spec=encoder)
    encoders, table = encoders_and_table([model_row, encoder_row])
    assert [m.spec for m in encoders] == [encoder] and table is None
