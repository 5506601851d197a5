"""Arch, LayerShape and Workload: validation, conversions, parameter and FLOP counts.

Parameter counts are checked against real ``transformers`` models and FLOP counts against
``torch.utils.flop_counter.FlopCounterMode`` running latbench's own encoder.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from types import ModuleType

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch.utils.flop_counter import FlopCounterMode

from latbench.arch import Arch, LayerShape, Workload, iter_layer_shapes
from latbench.errors import ConfigError, InvalidArchError, LatbenchError
from latbench.models.torch_modules import Encoder


@pytest.fixture(scope="module")
def transformers() -> ModuleType:
    """The ``transformers`` package (the ``hf`` extra, which ``.[dev]`` installs)."""
    import transformers

    return transformers


SMALL = {"vocab_size": 100, "max_positions": 64}


def one_line(exc: pytest.ExceptionInfo[BaseException]) -> str:
    message = str(exc.value)
    assert message and "\n" not in message, f"not a one-line message: {message!r}"
    return message


def hf_param_count(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


# --- validation ---------------------------------------------------------------------------
def test_invalid_arch_error_is_a_user_facing_latbench_error() -> None:
    assert issubclass(InvalidArchError, LatbenchError)
    assert issubclass(ConfigError, LatbenchError)


def test_hidden_not_divisible_by_heads_names_the_layer_and_the_sizes() -> None:
    with pytest.raises(InvalidArchError) as exc:
        Arch(hidden=128, heads=(4, 3), ffn=(512, 512))
    message = one_line(exc)
    assert "layer 1" in message
    assert "128" in message and "3 heads" in message
    assert "divisors of 128" in message  # says how to fix it


def test_layer_shape_rejects_hidden_not_divisible_by_heads() -> None:
    with pytest.raises(InvalidArchError, match="hidden size 100 is not divisible by 3 heads"):
        LayerShape(100, 3, 400)


@pytest.mark.parametrize(
    ("field", "value", "shown"),
    [
        ("hidden", 0, "hidden must be a positive integer, got 0"),
        ("hidden", -64, "hidden must be a positive integer, got -64"),
        ("hidden", True, "hidden must be a positive integer, got True"),
        ("hidden", 64.0, "hidden must be a positive integer, got 64.0"),
        ("hidden", "64", "hidden must be a positive integer, got '64'"),
        ("vocab_size", 0, "vocab_size must be a positive integer, got 0"),
        ("vocab_size", False, "vocab_size must be a positive integer, got False"),
        ("max_positions", -1, "max_positions must be a positive integer, got -1"),
        ("max_positions", 512.5, "max_positions must be a positive integer, got 512.5"),
        ("type_vocab_size", -1, "type_vocab_size must be >= 0, got -1"),
        ("type_vocab_size", True, "type_vocab_size must be an integer >= 0, got True"),
        ("type_vocab_size", 1.0, "type_vocab_size must be an integer >= 0, got 1.0"),
    ],
)
def test_bad_arch_sizes_are_rejected(field: str, value: object, shown: str) -> None:
    kwargs: dict[str, object] = {"hidden": 64, "heads": (4,), "ffn": (128,), **SMALL}
    kwargs[field] = value
    with pytest.raises(InvalidArchError) as exc:
        Arch(**kwargs)  # type: ignore[arg-type]
    assert one_line(exc).endswith(shown)


@pytest.mark.parametrize(
    ("heads", "ffn", "shown"),
    [
        ((0,), (128,), "layer 0: heads must be a positive integer, got 0"),
        ((4, -2), (128, 128), "layer 1: heads must be a positive integer, got -2"),
        ((True,), (128,), "layer 0: heads must be a positive integer, got True"),
        ((4,), (0,), "layer 0: ffn must be a positive integer, got 0"),
        ((4,), (128.0,), "layer 0: ffn must be a positive integer, got 128.0"),
        ((4, 4), (128, False), "layer 1: ffn must be a positive integer, got False"),
    ],
)
def test_bad_per_layer_sizes_name_the_layer(heads: tuple, ffn: tuple, shown: str) -> None:
    with pytest.raises(InvalidArchError) as exc:
        Arch(hidden=64, heads=heads, ffn=ffn)
    assert one_line(exc) == shown


def test_zero_sized_layer_shape_is_rejected() -> None:
    with pytest.raises(InvalidArchError, match="ffn must be a positive integer, got 0"):
        LayerShape(64, 4, 0)


def test_mismatched_heads_and_ffn_lengths() -> None:
    with pytest.raises(InvalidArchError) as exc:
        Arch(hidden=64, heads=(4, 4, 4), ffn=(128, 128))
    assert one_line(exc) == "heads has 3 entries but ffn has 2; give one per layer"


def test_empty_layers() -> None:
    with pytest.raises(InvalidArchError) as exc:
        Arch(hidden=64, heads=(), ffn=())
    assert "at least one layer" in one_line(exc)


def test_uniform_needs_a_positive_layer_count() -> None:
    with pytest.raises(InvalidArchError) as exc:
        Arch.uniform(0, 64, 4, 128)
    assert one_line(exc) == "layers must be a positive integer, got 0"


@pytest.mark.parametrize(
    ("kwargs", "shown"),
    [
        ({"batch": 0, "seq_len": 8}, "batch must be a positive integer, got 0"),
        ({"batch": 1, "seq_len": -8}, "seq_len must be a positive integer, got -8"),
        ({"batch": 1.5, "seq_len": 8}, "batch must be a positive integer, got 1.5"),
        ({"batch": 1, "seq_len": 8, "precision": "fp64"}, "precision must be one of"),
    ],
)
def test_bad_workloads_are_rejected(kwargs: dict, shown: str) -> None:
    with pytest.raises(InvalidArchError) as exc:
        Workload(**kwargs)
    assert shown in one_line(exc)


def test_workload_dict_round_trip_and_bytes() -> None:
    w = Workload(4, 128, "fp16")
    assert Workload.from_dict(w.to_dict()) == w
    assert w.bytes_per_element == 2
    assert Workload.from_dict({"batch": 1, "seq_len": 8}).precision == "fp32"


def test_sequence_longer_than_max_positions_is_rejected() -> None:
    arch = Arch.uniform(2, 64, 4, 128, vocab_size=100, max_positions=64)
    arch.check_workload(Workload(1, 64))  # exactly max_positions is fine
    with pytest.raises(InvalidArchError) as exc:
        arch.check_workload(Workload(1, 65))
    message = one_line(exc)
    assert "65" in message and "max_positions 64" in message
    with pytest.raises(InvalidArchError, match="exceeds"):
        arch.flops(Workload(1, 65))


# --- construction -------------------------------------------------------------------------
def test_uniform_arch() -> None:
    arch = Arch.uniform(4, 256, 4, 1024)
    assert arch.num_layers == 4
    assert arch.heads == (4, 4, 4, 4)
    assert arch.ffn == (1024,) * 4
    assert arch.is_uniform
    assert arch.layers == (LayerShape(256, 4, 1024),) * 4
    assert arch.layers[0].head_dim == 64
    assert (arch.vocab_size, arch.max_positions, arch.type_vocab_size) == (30522, 512, 2)


def test_heterogeneous_arch() -> None:
    arch = Arch(hidden=256, heads=[4, 8, 2], ffn=[512, 1024, 256])  # lists become tuples
    assert arch.heads == (4, 8, 2) and arch.ffn == (512, 1024, 256)
    assert not arch.is_uniform
    assert arch.num_layers == 3
    assert [layer.head_dim for layer in arch.layers] == [64, 32, 128]
    hash(arch)  # frozen and hashable: usable as a key
    assert arch == Arch(hidden=256, heads=(4, 8, 2), ffn=(512, 1024, 256))
    assert iter_layer_shapes([arch, arch]) == sorted(set(arch.layers))


# --- plain dicts and JSON -----------------------------------------------------------------
def test_from_dict_uniform_form() -> None:
    arch = Arch.from_dict({"layers": 3, "hidden": 128, "heads": 4, "ffn": 512, "vocab_size": 99})
    assert arch == Arch.uniform(3, 128, 4, 512, vocab_size=99)


def test_from_dict_per_layer_form() -> None:
    arch = Arch.from_dict({"hidden": 128, "heads": [4, 2], "ffn": [512, 256]})
    assert arch == Arch(hidden=128, heads=(4, 2), ffn=(512, 256))


def test_from_dict_mixes_a_per_layer_list_with_a_single_number() -> None:
    arch = Arch.from_dict({"hidden": 128, "heads": [4, 2, 8], "ffn": 512, "layers": 3})
    assert arch.ffn == (512, 512, 512) and arch.heads == (4, 2, 8)


def test_from_dict_layers_disagreeing_with_per_layer_lists() -> None:
    with pytest.raises(InvalidArchError) as exc:
        Arch.from_dict({"hidden": 128, "heads": [4, 2], "ffn": [512, 256], "layers": 3})
    assert one_line(exc) == "layers=3 but 2 per-layer sizes were given"


def test_from_dict_single_numbers_need_layers() -> None:
    with pytest.raises(ConfigError) as exc:
        Arch.from_dict({"hidden": 128, "heads": 4, "ffn": 512})
    assert "'layers'" in one_line(exc)


def test_from_dict_unknown_fields() -> None:
    with pytest.raises(ConfigError) as exc:
        Arch.from_dict({"hidden": 128, "heads": [4], "ffn": [512], "dropout": 0.1, "act": "x"})
    message = one_line(exc)
    assert "unknown architecture field(s) act, dropout" in message
    assert "known:" in message and "hidden" in message


def test_from_dict_missing_fields() -> None:
    with pytest.raises(ConfigError) as exc:
        Arch.from_dict({"heads": [4]})
    assert one_line(exc) == "architecture needs hidden, ffn"


def test_from_dict_needs_an_object() -> None:
    with pytest.raises(ConfigError) as exc:
        Arch.from_dict([128, 4, 512])  # type: ignore[arg-type]
    assert one_line(exc) == "an architecture must be a JSON object, got list"


def test_from_dict_invalid_sizes_raise_invalid_arch() -> None:
    with pytest.raises(InvalidArchError, match="layer 0: hidden size 128 is not divisible by 3"):
        Arch.from_dict({"layers": 2, "hidden": 128, "heads": 3, "ffn": 512})


def test_to_dict_round_trip() -> None:
    arch = Arch(hidden=96, heads=(3, 6), ffn=(100, 384), vocab_size=7, max_positions=9, type_vocab_size=0)
    data = arch.to_dict()
    assert json.loads(json.dumps(data)) == data  # JSON-able
    assert Arch.from_dict(data) == arch


def test_from_json_inline() -> None:
    arch = Arch.from_json('  {"layers": 2, "hidden": 64, "heads": 4, "ffn": 256}')
    assert arch == Arch.uniform(2, 64, 4, 256)


def test_from_json_file_path(tmp_path: Path) -> None:
    arch = Arch(hidden=64, heads=(4, 2), ffn=(256, 128))
    path = tmp_path / "arch.json"
    path.write_text(json.dumps(arch.to_dict()), encoding="utf-8")
    assert Arch.from_json(path) == arch
    assert Arch.from_json(str(path)) == arch


def test_from_json_malformed_inline() -> None:
    with pytest.raises(ConfigError) as exc:
        Arch.from_json('{"hidden": 64, "heads": [4,}')
    message = one_line(exc)
    assert message.startswith("architecture JSON is malformed")
    assert "line 1 column" in message


def test_from_json_malformed_file(tmp_path: Path) -> None:
    path = tmp_path / "arch.json"
    path.write_text('{"hidden": 64,\n "heads": }', encoding="utf-8")
    with pytest.raises(ConfigError) as exc:
        Arch.from_json(path)
    assert "malformed" in one_line(exc) and "line 2" in str(exc.value)


def test_from_json_missing_file(tmp_path: Path) -> None:
    missing = tmp_path / "nope.json"
    with pytest.raises(ConfigError) as exc:
        Arch.from_json(missing)
    message = one_line(exc)
    assert str(missing) in message
    assert "neither a JSON object nor an existing file" in message


def test_from_json_array_file_is_not_an_object(tmp_path: Path) -> None:
    path = tmp_path / "arch.json"
    path.write_text("[64, 4, 256]", encoding="utf-8")
    with pytest.raises(ConfigError, match="must be a JSON object, got list"):
        Arch.from_json(path)


# --- parameter counts against transformers --------------------------------------------------
@pytest.mark.parametrize(
    "arch",
    [
        Arch.uniform(2, 64, 4, 128, **SMALL),
        Arch.uniform(3, 48, 3, 200, vocab_size=57, max_positions=33, type_vocab_size=1),
        Arch.uniform(1, 32, 2, 64, vocab_size=10, max_positions=16, type_vocab_size=0),
    ],
    ids=["bert-tiny", "odd-sizes", "no-token-types"],
)
def test_params_equal_bert_model_without_pooler(arch: Arch, transformers: ModuleType) -> None:
    model = transformers.BertModel(arch.to_hf_config(), add_pooling_layer=False)
    assert arch.params == hf_param_count(model)
    assert arch.embedding_params == hf_param_count(model.embeddings)
    assert arch.layers[0].params == hf_param_count(model.encoder.layer[0])


def test_params_equal_distilbert_model(transformers: ModuleType) -> None:
    arch = Arch.uniform(2, 64, 4, 128, type_vocab_size=0, **SMALL)
    model = transformers.DistilBertModel(arch.to_hf_config("distilbert"))
    # DistilBERT's embeddings: word + position tables and a LayerNorm, no token types.
    names = {name for name, _ in model.embeddings.named_parameters()}
    assert names == {
        "word_embeddings.weight",
        "position_embeddings.weight",
        "LayerNorm.weight",
        "LayerNorm.bias",
    }
    assert arch.embedding_params == hf_param_count(model.embeddings)
    assert arch.layers[0].params == hf_param_count(model.transformer.layer[0])
    assert arch.params == hf_param_count(model)


def test_params_of_bert_base() -> None:
    # the well-known figure: BERT-base has ~109.5M parameters with its pooler (h^2 + h)
    arch = Arch.uniform(12, 768, 12, 3072)
    assert arch.params + 768 * 768 + 768 == 109_482_240


# --- Hugging Face configs -------------------------------------------------------------------
def test_bert_round_trip_through_hf_dict(transformers: ModuleType) -> None:
    arch = Arch.uniform(3, 96, 6, 200, vocab_size=77, max_positions=40, type_vocab_size=3)
    data = arch.to_hf_dict()
    assert data["model_type"] == "bert"
    assert Arch.from_hf_config(data) == arch
    assert Arch.from_hf_config(arch.to_hf_config()) == arch


def test_distilbert_round_trip_through_hf_dict(transformers: ModuleType) -> None:
    arch = Arch.uniform(3, 96, 6, 200, vocab_size=77, max_positions=40, type_vocab_size=0)
    data = arch.to_hf_dict("distilbert")
    assert data["model_type"] == "distilbert"
    assert {"dim", "n_layers", "n_heads", "hidden_dim"} <= set(data)
    assert Arch.from_hf_config(data) == arch
    config = arch.to_hf_config("distilbert")
    assert isinstance(config, transformers.DistilBertConfig)
    assert Arch.from_hf_config(config) == arch


def test_distilbert_needs_no_token_types() -> None:
    with pytest.raises(InvalidArchError) as exc:
        Arch.uniform(2, 64, 4, 128).to_hf_dict("distilbert")
    assert "type_vocab_size=0" in one_line(exc)


def test_unknown_hf_model_type() -> None:
    with pytest.raises(ConfigError) as exc:
        Arch.uniform(2, 64, 4, 128).to_hf_dict("gpt2")
    assert one_line(exc) == "unknown model_type 'gpt2'; use 'bert' or 'distilbert'"


def test_from_hf_config_object_dict_file_and_folder(tmp_path: Path, transformers: ModuleType) -> None:
    config = transformers.BertConfig(
        hidden_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=512,
        vocab_size=1000,
        max_position_embeddings=128,
        type_vocab_size=2,
    )
    expected = Arch.uniform(2, 128, 4, 512, vocab_size=1000, max_positions=128)
    assert Arch.from_hf_config(config) == expected
    assert Arch.from_hf_config(config.to_dict()) == expected
    config.save_pretrained(tmp_path)
    assert Arch.from_hf_config(tmp_path / "config.json") == expected
    assert Arch.from_hf_config(str(tmp_path / "config.json")) == expected
    assert Arch.from_hf_config(tmp_path) == expected


def test_from_hf_config_saved_distilbert_folder(tmp_path: Path, transformers: ModuleType) -> None:
    transformers.DistilBertConfig(dim=64, n_layers=2, n_heads=2, hidden_dim=96).save_pretrained(tmp_path)
    arch = Arch.from_hf_config(tmp_path)
    assert arch == Arch.uniform(2, 64, 2, 96, type_vocab_size=0)


def test_heterogeneous_arch_cannot_be_an_hf_config(transformers: ModuleType) -> None:
    arch = Arch(hidden=64, heads=(4, 2), ffn=(128, 128))
    for model_type in ("bert", "distilbert"):
        with pytest.raises(InvalidArchError) as exc:
            arch.to_hf_dict(model_type)
        message = one_line(exc)
        assert "per-layer heads/FFN sizes" in message and "Arch.to_dict()" in message
    with pytest.raises(InvalidArchError, match="per-layer"):
        arch.to_hf_config()


def test_roberta_style_dict() -> None:
    data = {
        "model_type": "roberta",
        "hidden_size": 768,
        "num_hidden_layers": 12,
        "num_attention_heads": 12,
        "intermediate_size": 3072,
        "vocab_size": 50265,
        "max_position_embeddings": 514,
        "type_vocab_size": 1,
        "pad_token_id": 1,
    }
    arch = Arch.from_hf_config(data)
    assert arch == Arch.uniform(12, 768, 12, 3072, vocab_size=50265, max_positions=514, type_vocab_size=1)


def test_electra_config_with_embeddings_of_the_hidden_size(transformers: ModuleType) -> None:
    config = transformers.ElectraConfig(
        vocab_size=100,
        embedding_size=64,
        hidden_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=128,
        max_position_embeddings=64,
    )
    arch = Arch.from_hf_config(config)
    assert arch == Arch.uniform(2, 64, 4, 128, **SMALL)
    assert arch.params == hf_param_count(transformers.ElectraModel(config))


def test_factorized_embeddings_are_rejected(transformers: ModuleType) -> None:
    # ELECTRA-small embeds into 128 dimensions and projects to hidden 256: an Arch cannot
    # express that, and counting it as BERT got its parameters (and its compute) wrong.
    config = transformers.ElectraConfig(embedding_size=128, hidden_size=256)
    with pytest.raises(ConfigError) as exc:
        Arch.from_hf_config(config)
    message = one_line(exc)
    assert "embedding_size 128" in message and "hidden_size 256" in message


def test_bert_dict_defaults() -> None:
    data = {"hidden_size": 64, "num_hidden_layers": 1, "num_attention_heads": 2, "intermediate_size": 96}
    arch = Arch.from_hf_config(data)
    assert (arch.vocab_size, arch.max_positions, arch.type_vocab_size) == (30522, 512, 2)


def test_gpt2_config_is_not_understood(transformers: ModuleType) -> None:
    with pytest.raises(ConfigError) as exc:
        Arch.from_hf_config({"model_type": "gpt2", "n_layer": 12, "n_embd": 768, "n_head": 12})
    message = one_line(exc)
    assert "'num_hidden_layers'" in message and "BERT-family" in message
    with pytest.raises(ConfigError, match="BERT-family"):
        Arch.from_hf_config(transformers.GPT2Config(n_layer=2, n_embd=64, n_head=2))


def test_invalid_sizes_in_an_hf_config_raise_invalid_arch() -> None:
    data = {"hidden_size": 100, "num_hidden_layers": 2, "num_attention_heads": 3, "intermediate_size": 96}
    with pytest.raises(InvalidArchError, match="not divisible by 3 heads"):
        Arch.from_hf_config(data)


def test_from_hf_config_missing_path(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as exc:
        Arch.from_hf_config(tmp_path / "missing.json")
    assert one_line(exc) == f"Hugging Face config {tmp_path / 'missing.json'} does not exist"
    with pytest.raises(ConfigError, match="does not exist"):
        Arch.from_hf_config(tmp_path)  # a folder without config.json


def test_from_hf_config_malformed_file(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text("{not json", encoding="utf-8")
    with pytest.raises(ConfigError) as exc:
        Arch.from_hf_config(tmp_path)
    assert "is not valid JSON" in one_line(exc)


def test_from_hf_config_json_that_is_not_an_object(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text("[1, 2]", encoding="utf-8")
    with pytest.raises(ConfigError) as exc:
        Arch.from_hf_config(tmp_path)
    assert one_line(exc) == "a Hugging Face config must be a JSON object"


def test_from_hf_config_of_something_else() -> None:
    with pytest.raises(ConfigError) as exc:
        Arch.from_hf_config(42)
    assert one_line(exc) == "cannot read an architecture from a int"


# --- FLOPs against torch's FLOP counter -----------------------------------------------------
def counted_flops(arch: Arch, workload: Workload) -> dict[str, int]:
    """FLOPs per aten op that FlopCounterMode sees while latbench's Encoder runs."""
    torch.manual_seed(0)
    encoder = Encoder(arch).eval()
    ids = torch.randint(0, arch.vocab_size, (workload.batch, workload.seq_len))
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        out = encoder(ids)
    assert out.shape == (workload.batch, workload.seq_len, arch.hidden)
    return {str(op): n for op, n in counter.get_flop_counts()["Global"].items()}


@pytest.mark.parametrize(
    ("arch", "workload"),
    [
        (Arch.uniform(2, 64, 4, 128, **SMALL), Workload(1, 16)),
        (Arch(hidden=96, heads=(3, 6, 2), ffn=(100, 384, 48), **SMALL), Workload(3, 7)),
    ],
    ids=["uniform", "heterogeneous"],
)
def test_flops_equal_flop_counter_of_the_encoder(arch: Arch, workload: Workload) -> None:
    counts = counted_flops(arch, workload)
    # Only matrix products are counted: the 3-D nn.Linear calls lower to addmm (the four
    # projections and two FFN matrices), the two attention matmuls to bmm. Embedding
    # lookups, softmax, GELU and LayerNorm are not counted, by FlopCounterMode nor by us.
    assert set(counts) == {"aten.addmm", "aten.bmm"}
    b, s, h = workload.batch, workload.seq_len, arch.hidden
    projections = sum(2 * b * s * (4 * h * h + 2 * h * f) for f in arch.ffn)
    attention = arch.num_layers * 2 * (2 * b * s * s * h)
    assert counts["aten.addmm"] == projections
    assert counts["aten.bmm"] == attention
    assert arch.flops(workload) == sum(counts.values())
    assert arch.flops(workload) == 2 * arch.macs(workload)


def test_macs_of_one_layer() -> None:
    layer = LayerShape(64, 4, 256)
    w = Workload(2, 10)
    assert layer.macs(w) == 20 * (4 * 64 * 64 + 2 * 64 * 256) + 2 * 2 * 10 * 10 * 64


# --- properties ---------------------------------------------------------------------------
@st.composite
def archs(draw: st.DrawFn) -> Arch:
    """Valid archs: per-layer heads drawn first, hidden a common multiple of them."""
    n = draw(st.integers(1, 6))
    uniform = draw(st.booleans())
    head_choice = st.sampled_from([1, 2, 3, 4, 6, 8, 12])
    heads = [draw(head_choice)] * n if uniform else draw(st.lists(head_choice, min_size=n, max_size=n))
    ffn = (
        [draw(st.integers(1, 4096))] * n
        if uniform
        else draw(st.lists(st.integers(1, 4096), min_size=n, max_size=n))
    )
    base = math.lcm(*heads)
    hidden = base * draw(st.integers(1, max(1, 1024 // base)))
    return Arch(
        hidden=hidden,
        heads=tuple(heads),
        ffn=tuple(ffn),
        vocab_size=draw(st.integers(1, 50_000)),
        max_positions=draw(st.integers(1, 1024)),
        type_vocab_size=draw(st.integers(0, 4)),
    )


@settings(max_examples=150, deadline=None, database=None)
@given(archs())
def test_property_dict_round_trip_and_params(arch: Arch) -> None:
    assert Arch.from_dict(arch.to_dict()) == arch
    assert Arch.from_json(json.dumps(arch.to_dict())) == arch
    assert arch.params > 0
    # params grows with hidden: the next hidden size that every layer's heads divide
    bigger = Arch(
        hidden=arch.hidden + math.lcm(*arch.heads),
        heads=arch.heads,
        ffn=arch.ffn,
        vocab_size=arch.vocab_size,
        max_positions=arch.max_positions,
        type_vocab_size=arch.type_vocab_size,
    )
    assert bigger.params > arch.params
    if arch.is_uniform:
        assert Arch.from_hf_config(arch.to_hf_dict()) == arch
