"""Hugging Face BERT classifiers load into latbench's model with identical outputs, and
students save back in a layout Hugging Face reads."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from latbench.arch import Arch
from search.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from search.model import Classifier, ClassifierConfig

transformers = pytest.importorskip("transformers")
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
    roberta = tmp_path / "roberta"
    shutil.copytree(teacher_dir, roberta)
    config = json.loads((roberta / "config.json").read_text())
    (roberta / "config.json").write_text(json.dumps({**config, "model_type": "roberta"}))
    with pytest.raises(CheckpointError, match="'roberta' model"):
        load_checkpoint(roberta)
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
    from search.distill import Batches, DistillConfig, LossWeights, train

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
