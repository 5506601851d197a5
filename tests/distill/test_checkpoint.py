"""Hugging Face BERT classifiers load into latbench's model with identical outputs, and
students save back in a layout Hugging Face reads."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
import transformers

from latbench.arch import Arch
from latbench.distill.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from latbench.distill.model import Classifier, ClassifierConfig

TEXTS = ["the film was not good", "a very dull plot but a lovely ending and warm music"]
PAIRS = ["good", "bad cast"]


def hf_logits(path: Path, encoded) -> torch.Tensor:  # type: ignore[no-untyped-def]
    model = transformers.BertForSequenceClassification.from_pretrained(path).eval()
    with torch.no_grad():
        return model(
            input_ids=encoded.input_ids,
            attention_mask=encoded.attention_mask,
            token_type_ids=encoded.token_type_ids,
        ).logits


@pytest.mark.parametrize("pairs", [None, PAIRS], ids=["single", "pairs"])
def test_a_hugging_face_teacher_gives_the_same_logits(teacher_dir: Path, pairs) -> None:  # type: ignore[no-untyped-def]
    ck = load_checkpoint(teacher_dir)
    assert ck.label_names == ("negative", "positive")
    assert ck.arch.num_layers == 4 and ck.arch.hidden == 32
    encoded = ck.encoder.encode(TEXTS, pairs)
    assert encoded.attention_mask[0].sum() < encoded.attention_mask.shape[1]  # padding is exercised
    if pairs:
        assert encoded.token_type_ids.max() == 1
    with torch.no_grad():
        ours = ck.model(encoded.input_ids, encoded.attention_mask, encoded.token_type_ids).logits
    torch.testing.assert_close(ours, hf_logits(teacher_dir, encoded), atol=1e-5, rtol=1e-4)


def test_a_uniform_student_saves_in_hugging_face_layout(teacher_dir: Path, tmp_path: Path) -> None:
    ck = load_checkpoint(teacher_dir)
    student = Classifier(
        ClassifierConfig(Arch.uniform(2, 16, 2, 32, vocab_size=ck.arch.vocab_size), 2)
    ).eval()
    written = save_checkpoint(tmp_path / "s", student, ck.encoder, ck.label_names)
    assert set(written) == {"model.safetensors", "tokenizer.json", "latbench.json", "config.json"}
    encoded = ck.encoder.encode(TEXTS)
    with torch.no_grad():
        ours = student(encoded.input_ids, encoded.attention_mask, encoded.token_type_ids).logits
    torch.testing.assert_close(hf_logits(tmp_path / "s", encoded), ours, atol=1e-5, rtol=1e-4)
    again = load_checkpoint(tmp_path / "s")
    assert again.arch == student.arch and again.label_names == ck.label_names


def test_a_student_with_per_layer_sizes_saves_without_a_hugging_face_config(
    teacher_dir: Path, tmp_path: Path
) -> None:
    ck = load_checkpoint(teacher_dir)
    arch = Arch(hidden=16, heads=(2, 4), ffn=(32, 16), vocab_size=ck.arch.vocab_size)
    student = Classifier(ClassifierConfig(arch, 2)).eval()
    written = save_checkpoint(tmp_path / "s", student, ck.encoder, ck.label_names)
    assert "config.json" not in written
    again = load_checkpoint(tmp_path / "s")
    encoded = ck.encoder.encode(TEXTS)
    with torch.no_grad():
        a = student(encoded.input_ids, encoded.attention_mask, encoded.token_type_ids).logits
        b = again.model(encoded.input_ids, encoded.attention_mask, encoded.token_type_ids).logits
    torch.testing.assert_close(a, b)


def test_missing_and_wrong_teachers_fail_with_one_line(teacher_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="is not a directory"):
        load_checkpoint(tmp_path / "nowhere")
    with pytest.raises(CheckpointError, match=r"no config\.json"):
        load_checkpoint(tmp_path)
    no_tok = tmp_path / "no-tokenizer"
    shutil.copytree(teacher_dir, no_tok)
    (no_tok / "tokenizer.json").unlink()
    with pytest.raises(CheckpointError, match="has no tokenizer"):
        load_checkpoint(no_tok)
    no_weights = tmp_path / "no-weights"
    shutil.copytree(teacher_dir, no_weights)
    (no_weights / "model.safetensors").unlink()
    with pytest.raises(CheckpointError, match="has no weights"):
        load_checkpoint(no_weights)


def test_an_encoder_without_a_classification_head_is_refused(teacher_dir: Path, tmp_path: Path) -> None:
    config = transformers.BertConfig.from_pretrained(teacher_dir)
    transformers.BertModel(config).save_pretrained(tmp_path)
    shutil.copy(teacher_dir / "tokenizer.json", tmp_path)
    with pytest.raises(CheckpointError, match="no classification head"):
        load_checkpoint(tmp_path)


def test_a_tokenizer_without_bert_special_tokens_is_refused(teacher_dir: Path, tmp_path: Path) -> None:
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers

    shutil.copytree(teacher_dir, tmp_path / "t")
    tok = Tokenizer(models.WordLevel(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.train_from_iterator(TEXTS, trainers.WordLevelTrainer(special_tokens=["<unk>"]))
    tok.save(str(tmp_path / "t" / "tokenizer.json"))
    with pytest.raises(CheckpointError, match=r"\[CLS\], \[SEP\], \[PAD\]"):
        load_checkpoint(tmp_path / "t")


def test_a_student_with_fixed_head_size_saves_without_a_hugging_face_config(
    teacher_dir: Path, tmp_path: Path
) -> None:
    ck = load_checkpoint(teacher_dir)
    arch = Arch.uniform(2, 16, 3, 32, vocab_size=ck.arch.vocab_size, head_size=8)  # attention 24 wide
    student = Classifier(ClassifierConfig(arch, 2)).eval()
    assert tuple(student.bert.encoder.layer[0].attention.output.dense.weight.shape) == (16, 24)
    written = save_checkpoint(tmp_path / "s", student, ck.encoder, ck.label_names)
    assert "config.json" not in written  # Hugging Face BERT cannot say "heads of 8 on hidden 16"
    again = load_checkpoint(tmp_path / "s")
    assert again.arch.head_size == 8
    encoded = ck.encoder.encode(TEXTS)
    with torch.no_grad():
        a = student(encoded.input_ids, encoded.attention_mask, encoded.token_type_ids).logits
        b = again.model(encoded.input_ids, encoded.attention_mask, encoded.token_type_ids).logits
    torch.testing.assert_close(a, b)


def make_hf_electra(directory: Path, teacher_dir: Path) -> Path:
    bert = json.loads((teacher_dir / "config.json").read_text())
    config = transformers.ElectraConfig(
        vocab_size=bert["vocab_size"],
        embedding_size=bert["hidden_size"],
        hidden_size=bert["hidden_size"],
        num_hidden_layers=2,
        num_attention_heads=bert["num_attention_heads"],
        intermediate_size=bert["intermediate_size"],
        max_position_embeddings=bert["max_position_embeddings"],
        num_labels=2,
        id2label={0: "negative", 1: "positive"},
        label2id={"negative": 0, "positive": 1},
    )
    torch.manual_seed(3)
    transformers.ElectraForSequenceClassification(config).eval().save_pretrained(directory)
    shutil.copy(teacher_dir / "tokenizer.json", directory / "tokenizer.json")
    return directory


def test_an_electra_teacher_gives_the_same_logits_and_teaches_students(
    teacher_dir: Path, tmp_path: Path, demo_data
) -> None:  # type: ignore[no-untyped-def]
    from latbench.distill.settings import DistillConfig, LossWeights
    from latbench.distill.trainer import Batches, train

    path = make_hf_electra(tmp_path / "electra", teacher_dir)
    ck = load_checkpoint(path)
    assert ck.model.config.pooler_activation == "gelu" and ck.arch.num_layers == 2
    encoded = ck.encoder.encode(TEXTS, PAIRS)
    hf = transformers.ElectraForSequenceClassification.from_pretrained(path).eval()
    with torch.no_grad():
        ours = ck.model(encoded.input_ids, encoded.attention_mask, encoded.token_type_ids).logits
        theirs = hf(
            input_ids=encoded.input_ids,
            attention_mask=encoded.attention_mask,
            token_type_ids=encoded.token_type_ids,
        ).logits
    torch.testing.assert_close(ours, theirs, atol=1e-5, rtol=1e-4)
    texts = [e.text for e in demo_data[0].examples[:64]]
    data = Batches(ck.encoder.encode(texts), torch.as_tensor(demo_data[0].labels[:64]))
    arch = Arch.uniform(1, 16, 2, 32, vocab_size=ck.arch.vocab_size)
    config = DistillConfig(steps=2, batch_size=16, checkpoint_every=0, losses=LossWeights(logits=1, hidden=1))
    student = train(ck.model, arch, data, config).student
    assert student.config.pooler_activation == "gelu"  # ETD keeps the teacher's head
    written = save_checkpoint(tmp_path / "s", student, ck.encoder, ck.label_names)
    assert "config.json" not in written  # a BERT config cannot say "gelu head"
    assert load_checkpoint(tmp_path / "s").model.config == student.config


def make_hf_roberta(directory: Path, texts: list[str], *, tokenizer_json: bool = True) -> Path:
    """A tiny ``RobertaForSequenceClassification`` with a byte-level BPE tokenizer trained
    here, saved as Hugging Face does (or with RoBERTa's vocab.json + merges.txt instead of
    tokenizer.json)."""
    from tokenizers import ByteLevelBPETokenizer

    bpe = ByteLevelBPETokenizer()
    specials = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]
    bpe.train_from_iterator(texts, vocab_size=300, special_tokens=specials, show_progress=False)
    tokenizer = transformers.RobertaTokenizerFast(
        tokenizer_object=bpe._tokenizer,
        bos_token="<s>",
        cls_token="<s>",
        eos_token="</s>",
        sep_token="</s>",
        pad_token="<pad>",
        unk_token="<unk>",
        mask_token="<mask>",
    )
    config = transformers.RobertaConfig(
        vocab_size=bpe.get_vocab_size(),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=64,
        max_position_embeddings=66,  # 64 positions after RoBERTa's two reserved rows
        pad_token_id=1,
        bos_token_id=0,
        eos_token_id=2,
        type_vocab_size=1,
        layer_norm_eps=1e-5,
        num_labels=2,
        id2label={0: "negative", 1: "positive"},
        label2id={"negative": 0, "positive": 1},
    )
    torch.manual_seed(4)
    transformers.RobertaForSequenceClassification(config).eval().save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    if not tokenizer_json:
        (directory / "tokenizer.json").unlink()
        bpe.save_model(str(directory))
    return directory


def make_hf_distilbert(directory: Path, teacher_dir: Path) -> Path:
    bert = json.loads((teacher_dir / "config.json").read_text())
    config = transformers.DistilBertConfig(
        vocab_size=bert["vocab_size"],
        dim=bert["hidden_size"],
        n_layers=2,
        n_heads=bert["num_attention_heads"],
        hidden_dim=bert["intermediate_size"],
        max_position_embeddings=bert["max_position_embeddings"],
        num_labels=2,
        id2label={0: "negative", 1: "positive"},
        label2id={"negative": 0, "positive": 1},
    )
    torch.manual_seed(5)
    transformers.DistilBertForSequenceClassification(config).eval().save_pretrained(directory)
    shutil.copy(teacher_dir / "tokenizer.json", directory / "tokenizer.json")
    return directory


FAMILIES = ["roberta", "roberta-vocab-merges", "distilbert"]


def make_family(family: str, tmp_path: Path, teacher_dir: Path, demo_data) -> Path:  # type: ignore[no-untyped-def]
    if family == "distilbert":
        return make_hf_distilbert(tmp_path / family, teacher_dir)
    texts = [e.text for e in demo_data[0].examples]
    return make_hf_roberta(tmp_path / family, texts, tokenizer_json=family == "roberta")


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("pairs", [None, PAIRS], ids=["single", "pairs"])
def test_roberta_and_distilbert_teachers_give_hugging_faces_tokens_and_logits(
    family: str, pairs, tmp_path: Path, teacher_dir: Path, demo_data
) -> None:  # type: ignore[no-untyped-def]
    path = make_family(family, tmp_path, teacher_dir, demo_data)
    ck = load_checkpoint(path)
    hf_tokenizer = transformers.AutoTokenizer.from_pretrained(path)
    hf_model = transformers.AutoModelForSequenceClassification.from_pretrained(path).eval()
    encoded = ck.encoder.encode(TEXTS, pairs)
    theirs = hf_tokenizer(TEXTS, pairs, padding=True, return_tensors="pt")
    assert encoded.input_ids.tolist() == theirs["input_ids"].tolist()  # <s> a </s></s> b </s>
    assert encoded.attention_mask.tolist() == theirs["attention_mask"].tolist()
    assert encoded.attention_mask[0].sum() < encoded.attention_mask.shape[1]  # padding is exercised
    with torch.no_grad():
        ours = ck.model(encoded.input_ids, encoded.attention_mask, encoded.token_type_ids).logits
        expected = hf_model(input_ids=theirs["input_ids"], attention_mask=theirs["attention_mask"]).logits
    torch.testing.assert_close(ours, expected, atol=1e-5, rtol=1e-4)
    config = ck.model.config
    if family == "distilbert":
        assert config.pooler_activation == "relu" and config.position_offset == 0
        assert config.arch.type_vocab_size == 1
    else:
        assert (config.pooler_activation, config.position_offset, config.max_tokens) == ("tanh", 2, 64)
        assert ck.encoder.max_len == 64


@pytest.mark.parametrize("family", ["roberta", "distilbert"])
def test_roberta_and_distilbert_teachers_teach_students_that_keep_their_head(
    family: str, tmp_path: Path, teacher_dir: Path, demo_data
) -> None:  # type: ignore[no-untyped-def]
    from latbench.distill.export import export_onnx, onnx_probs
    from latbench.distill.settings import DistillConfig, LossWeights
    from latbench.distill.trainer import Batches, train

    ck = load_checkpoint(make_family(family, tmp_path, teacher_dir, demo_data))
    texts = [e.text for e in demo_data[0].examples[:64]]
    data = Batches(ck.encoder.encode(texts), torch.as_tensor(demo_data[0].labels[:64]))
    arch = Arch.uniform(1, 16, 2, 32, vocab_size=ck.arch.vocab_size, max_positions=ck.arch.max_positions)
    config = DistillConfig(steps=2, batch_size=16, checkpoint_every=0, losses=LossWeights(logits=1, hidden=1))
    student = train(ck.model, arch, data, config).student.eval()
    teacher_config = ck.model.config
    assert student.config.pooler_activation == teacher_config.pooler_activation
    assert student.config.position_offset == teacher_config.position_offset
    written = save_checkpoint(tmp_path / "s", student, ck.encoder, ck.label_names)
    assert "config.json" not in written  # BERT's config cannot say either head or numbering
    again = load_checkpoint(tmp_path / "s")
    assert again.model.config == student.config
    encoded = again.encoder.encode(TEXTS, PAIRS)
    assert encoded.input_ids.tolist() == ck.encoder.encode(TEXTS, PAIRS).input_ids.tolist()
    with torch.no_grad():
        a = student(encoded.input_ids, encoded.attention_mask, encoded.token_type_ids).logits
        b = again.model(encoded.input_ids, encoded.attention_mask, encoded.token_type_ids).logits
    torch.testing.assert_close(a, b)
    onnx = export_onnx(student, tmp_path / "student.onnx", encoded)
    probs = torch.softmax(a.double(), dim=1).numpy()
    np.testing.assert_allclose(onnx_probs(onnx, encoded), probs, atol=1e-5)  # offset and types baked in


def test_an_unsupported_model_type_or_position_scheme_is_a_one_line_error(
    tmp_path: Path, teacher_dir: Path
) -> None:
    for change, message in (
        ({"model_type": "albert"}, "'albert' model"),
        ({"position_embedding_type": "relative_key"}, "position_embedding_type"),
        ({"hidden_act": "relu"}, "activation 'relu'"),
    ):
        path = tmp_path / str(len(message))
        shutil.copytree(teacher_dir, path)
        data = json.loads((path / "config.json").read_text())
        (path / "config.json").write_text(json.dumps({**data, **change}))
        with pytest.raises(CheckpointError, match=message):
            load_checkpoint(path)
