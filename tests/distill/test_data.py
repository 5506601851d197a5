"""Text-classification data: every format loads the same examples, and every unusable
dataset is a one-line DataError that says where."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from latbench.distill.data import DataError, Example, TextDataset, load_dataset, save_jsonl
from latbench.errors import LatbenchError

MNLI_NAMES = ("entailment", "neutral", "contradiction")


def write_jsonl(path: Path, rows: list[Any]) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return path


def write_lines(path: Path, *lines: str) -> Path:
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return path


def dataset(*labels: int, names: tuple[str, ...] = ("neg", "pos")) -> TextDataset:
    return TextDataset(tuple(Example(f"text {i}", label) for i, label in enumerate(labels)), names, "test")


# -- formats --------------------------------------------------------------------------------


def test_jsonl_with_integer_labels_and_blank_lines(tmp_path: Path) -> None:
    path = tmp_path / "sst2.jsonl"
    path.write_text('{"sentence": "a gripping film", "label": 1}\n\n  \n{"sentence": "dull", "label": 0}\n')
    data = load_dataset(path)
    assert data.examples == (Example("a gripping film", 1), Example("dull", 0))
    assert data.label_names == ("0", "1")
    assert data.source == str(path)
    assert len(data) == 2 and data.num_labels == 2 and not data.has_pairs
    assert data.labels.dtype == np.int64 and data.labels.tolist() == [1, 0]


def test_json_file_holding_json_lines_is_read_as_jsonl(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "data.json", [{"text": "hi", "label": 2}, {"text": "yo", "label": 0}])
    data = load_dataset(path)
    assert [e.text for e in data.examples] == ["hi", "yo"]
    assert data.label_names == ("0", "1", "2")  # names run up to the largest id


def test_csv_with_quoted_commas_and_a_byte_order_mark(tmp_path: Path) -> None:
    path = tmp_path / "reviews.csv"
    path.write_text('\ufeffreview,label\n"good, really good",pos\nbad,neg\n', encoding="utf-8")
    data = load_dataset(path)
    assert data.examples == (Example("good, really good", 1), Example("bad", 0))
    assert data.label_names == ("neg", "pos")  # strings numbered in sorted order


def test_tsv_in_glue_sst2_layout_keeps_quotes_and_reads_integer_labels(tmp_path: Path) -> None:
    path = write_lines(
        tmp_path / "train.tsv",
        "sentence\tlabel",
        'hide new secretions from the "parental" units \t0',
        "contains no wit , only labored gags \t0",
        "that loves its characters \t1",
    )
    data = load_dataset(path)
    assert data.examples[0] == Example('hide new secretions from the "parental" units ', 0)
    assert data.labels.tolist() == [0, 0, 1]
    assert data.label_names == ("0", "1")


def test_mnli_like_pairs_with_gold_labels_skip_rows_without_consensus(tmp_path: Path) -> None:
    path = write_lines(
        tmp_path / "dev_matched.tsv",
        "index\tgenre\tsentence1\tsentence2\tlabel1\tgold_label",
        "0\tfiction\tThe cat sat.\tA cat sat.\tentailment\tentailment",
        "1\tfiction\tIt rained.\tIt was sunny.\tcontradiction\tcontradiction",
        "2\tslate\tHe left.\tHe may return.\tneutral\t-",
        "3\tslate\tShe sang.\tSomeone sang.\tneutral\tneutral",
    )
    data = load_dataset(path, label_names=MNLI_NAMES)
    assert data.has_pairs and len(data) == 3
    assert data.examples[0] == Example("The cat sat.", 0, "A cat sat.")
    assert data.labels.tolist() == [0, 2, 1]
    assert data.label_names == MNLI_NAMES
    # without label_names the names are sorted
    assert load_dataset(path).label_names == ("contradiction", "entailment", "neutral")


def test_qqp_like_question_pairs_with_a_named_label_field(tmp_path: Path) -> None:
    path = write_lines(
        tmp_path / "qqp.tsv",
        "id\tqid1\tqid2\tquestion1\tquestion2\tis_duplicate",
        "0\t1\t2\tHow do I cook rice?\tWhat is the way to cook rice?\t1",
        "1\t3\t4\tWhy is the sky blue?\tHow tall is Everest?\t0",
    )
    data = load_dataset(path, label_field="is_duplicate")
    assert data.examples[1] == Example("Why is the sky blue?", 0, "How tall is Everest?")


def test_question_sentence_pairs_win_over_the_single_sentence_field(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "qnli.jsonl", [{"question": "Q?", "sentence": "S.", "label": 1}])
    assert load_dataset(path).examples == (Example("Q?", 1, "S."),)


def test_explicit_fields_override_detection(tmp_path: Path) -> None:
    rows = [{"sentence": "ignored", "body": "great", "stars": 4, "label": 0}]
    path = write_jsonl(tmp_path / "r.jsonl", rows)
    data = load_dataset(path, text_field="body", label_field="stars", label_names=list("01234"))
    assert data.examples == (Example("great", 4),)
    # a text_field given alone means single sentences, even where a pair is present
    pairs = write_jsonl(tmp_path / "p.jsonl", [{"premise": "P", "hypothesis": "H", "label": 0}])
    assert load_dataset(pairs, text_field="hypothesis").examples == (Example("H", 0),)
    assert load_dataset(pairs, text_field="hypothesis", text_pair_field="premise").examples == (
        Example("H", 0, "P"),
    )


def test_glue_directory_of_split_files(tmp_path: Path) -> None:
    write_lines(tmp_path / "train.tsv", "sentence\tlabel", "good\t1", "bad\t0")
    write_lines(tmp_path / "dev.tsv", "sentence\tlabel", "fine\t1")
    write_lines(tmp_path / "test.tsv", "index\tsentence", "0\tunknown")
    assert load_dataset(tmp_path).source == str(tmp_path / "train.tsv")
    assert load_dataset(tmp_path, split="train").examples == load_dataset(tmp_path / "train.tsv").examples
    for split in ("dev", "validation"):
        assert load_dataset(tmp_path, split=split).examples == (Example("fine", 1),)
    write_jsonl(tmp_path / "validation.jsonl", [{"text": "from jsonl", "label": 0}])
    assert load_dataset(tmp_path, split="dev").examples == (Example("from jsonl", 0),)
    with pytest.raises(DataError, match=r"has no label column .* columns are index, sentence"):
        load_dataset(tmp_path, split="test")
    with pytest.raises(DataError, match=r"has no mnli\.jsonl/\.tsv/\.csv: its splits are dev, test, train"):
        load_dataset(tmp_path, split="mnli")


# -- Hugging Face save_to_disk ----------------------------------------------------------------


@pytest.fixture(scope="module")
def hf() -> Any:
    import datasets

    datasets.disable_progress_bars()
    return datasets


def sst2(hf: Any, sentences: list[str], labels: list[int]) -> Any:
    features = hf.Features(
        {"sentence": hf.Value("string"), "label": hf.ClassLabel(names=["negative", "positive"])}
    )
    return hf.Dataset.from_dict({"sentence": sentences, "label": labels}, features=features)


def test_saved_dataset_with_class_label_names(hf: Any, tmp_path: Path) -> None:
    sst2(hf, ["good", "bad", "fine"], [1, 0, 1]).save_to_disk(str(tmp_path / "sst2"))
    data = load_dataset(tmp_path / "sst2")
    assert data.examples == (Example("good", 1), Example("bad", 0), Example("fine", 1))
    assert data.label_names == ("negative", "positive")
    assert data.source == str(tmp_path / "sst2")
    with pytest.raises(
        DataError, match=r"is a single saved Dataset, not a DatasetDict, so it has no split 'dev'"
    ):
        load_dataset(tmp_path / "sst2", split="dev")


def test_saved_dataset_of_pairs_with_plain_labels_across_shards(hf: Any, tmp_path: Path) -> None:
    rows = {"premise": [f"p{i}" for i in range(6)], "hypothesis": [f"h{i}" for i in range(6)]}
    rows["label"] = [0, 1, 2, -1, 2, 0]
    hf.Dataset.from_dict(rows).save_to_disk(str(tmp_path / "mnli"), num_shards=2)
    assert len(json.loads((tmp_path / "mnli" / "state.json").read_text())["_data_files"]) == 2
    data = load_dataset(tmp_path / "mnli", label_names=MNLI_NAMES)
    assert [e.text for e in data.examples] == ["p0", "p1", "p2", "p4", "p5"]  # row 3 is unlabelled
    assert data.examples[0] == Example("p0", 0, "h0")
    assert data.label_names == MNLI_NAMES
    assert load_dataset(tmp_path / "mnli").label_names == ("0", "1", "2")


def test_saved_dataset_dict_picks_a_split(hf: Any, tmp_path: Path) -> None:
    splits = {"train": sst2(hf, ["good", "bad"], [1, 0]), "validation": sst2(hf, ["okay"], [1])}
    hf.DatasetDict(splits).save_to_disk(str(tmp_path / "glue"))
    assert load_dataset(tmp_path / "glue").examples == (Example("good", 1), Example("bad", 0))
    for split in ("validation", "dev"):
        data = load_dataset(tmp_path / "glue", split=split)
        assert data.examples == (Example("okay", 1),)
        assert data.label_names == ("negative", "positive")
        assert data.source == str(tmp_path / "glue" / "validation")
    with pytest.raises(
        DataError, match=r"has no split 'test': its splits are train, validation; pass split="
    ):
        load_dataset(tmp_path / "glue", split="test")


def test_saved_test_split_without_labels_is_an_error(hf: Any, tmp_path: Path) -> None:
    sst2(hf, ["a", "b"], [-1, -1]).save_to_disk(str(tmp_path / "test"))
    with pytest.raises(DataError, match=r"has no labelled examples: all 2 rows are labelled -1"):
        load_dataset(tmp_path / "test")


def test_saved_dataset_errors(hf: Any, tmp_path: Path) -> None:
    saved = tmp_path / "saved"
    sst2(hf, ["good"], [1]).save_to_disk(str(saved))
    with pytest.raises(
        DataError, match=r"saved has no column 'text' \(given as text_field\): its columns are"
    ):
        load_dataset(saved, text_field="text")
    arrow = next(saved.glob("*.arrow"))
    arrow.write_bytes(b"not arrow at all")
    with pytest.raises(DataError, match=r"is not an Arrow stream .*save the dataset again"):
        load_dataset(saved)
    arrow.unlink()
    with pytest.raises(DataError, match=r"is missing its data file data-00000-of-00001\.arrow"):
        load_dataset(saved)
    (saved / "state.json").write_text("{}")
    with pytest.raises(DataError, match=r"state\.json lists no _data_files"):
        load_dataset(saved)
    (saved / "state.json").write_text("{not json")
    with pytest.raises(DataError, match=r"state\.json cannot be read as JSON"):
        load_dataset(saved)


# -- saving -----------------------------------------------------------------------------------


def test_save_jsonl_round_trips_integer_labels(tmp_path: Path) -> None:
    data = TextDataset((Example("one\nline two", 1), Example("héllo ✓", 0)), ("0", "1"), "demo")
    save_jsonl(data, tmp_path / "out" / "d.jsonl")
    lines = (tmp_path / "out" / "d.jsonl").read_text(encoding="utf-8").splitlines()
    assert json.loads(lines[0]) == {"text": "one\nline two", "label": 1}
    back = load_dataset(tmp_path / "out" / "d.jsonl")
    assert (back.examples, back.label_names) == (data.examples, data.label_names)


def test_save_jsonl_round_trips_named_labels_and_pairs(tmp_path: Path) -> None:
    examples = (Example("P1", 2, "H1"), Example("P2", 0, "H2"), Example("P3", 1, "H3"))
    data = TextDataset(examples, MNLI_NAMES, "demo")
    save_jsonl(data, tmp_path / "mnli.jsonl")
    first = json.loads((tmp_path / "mnli.jsonl").read_text().splitlines()[0])
    assert first == {"text": "P1", "text_pair": "H1", "label": "contradiction"}
    back = load_dataset(tmp_path / "mnli.jsonl", label_names=MNLI_NAMES)
    assert (back.examples, back.label_names) == (data.examples, data.label_names)
    # sorted names come back without being given
    ordered = TextDataset(examples, ("a", "b", "c"), "demo")
    save_jsonl(ordered, tmp_path / "abc.jsonl")
    back = load_dataset(tmp_path / "abc.jsonl")
    assert (back.examples, back.label_names) == (ordered.examples, ordered.label_names)


def test_save_jsonl_refuses_a_mix_of_pairs_and_single_texts(tmp_path: Path) -> None:
    data = TextDataset((Example("a", 0, "b"), Example("c", 1)), ("0", "1"), "demo")
    with pytest.raises(DataError, match="mixes examples with and without text_pair"):
        save_jsonl(data, tmp_path / "x.jsonl")
    assert not (tmp_path / "x.jsonl").exists()


# -- subset and split -------------------------------------------------------------------------


def test_subset_is_deterministic_without_replacement_and_nested() -> None:
    data = dataset(*([0, 1] * 50))
    small, large = data.subset(10, seed=3), data.subset(30, seed=3)
    assert len(small) == 10 and len(set(small.examples)) == 10
    assert small == data.subset(10, seed=3)
    assert small.examples == large.examples[:10]
    assert small != data.subset(10, seed=4)
    assert small.label_names == data.label_names and small.source == data.source
    everything = data.subset(1000, seed=0)
    assert sorted(everything.examples, key=lambda e: e.text) == sorted(data.examples, key=lambda e: e.text)
    with pytest.raises(DataError, match=r"needs at least 1 example, got n=0"):
        data.subset(0, seed=0)


def test_split_partitions_the_examples_deterministically() -> None:
    data = dataset(*([0, 1, 1] * 10))
    train, dev = data.split(0.8, seed=1)
    assert (len(train), len(dev)) == (24, 6)
    assert set(train.examples) | set(dev.examples) == set(data.examples)
    assert not set(train.examples) & set(dev.examples)
    assert (train, dev) == data.split(0.8, seed=1)
    assert train != data.split(0.8, seed=2)[0]
    for fraction in (0.0, 1.0, -0.5, 1.5):
        with pytest.raises(DataError, match="split fraction must be between 0 and 1"):
            data.split(fraction, seed=0)
    with pytest.raises(DataError, match=r"has 2 examples, too few to split at fraction 0\.1"):
        dataset(0, 1).split(0.1, seed=0)


def test_text_dataset_checks_itself() -> None:
    assert issubclass(DataError, LatbenchError) and issubclass(DataError, ValueError)
    with pytest.raises(DataError, match="dataset test is empty"):
        dataset()
    with pytest.raises(DataError, match=r"example 1 has label 2, outside 0\.\.1 for its 2 label names"):
        dataset(0, 2)
    with pytest.raises(DataError, match="has no label names"):
        dataset(0, names=())
    with pytest.raises(DataError, match="repeats a label name"):
        dataset(0, names=("a", "a"))


# -- unusable data ------------------------------------------------------------------------------


def test_paths_that_are_not_datasets(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"nope\.jsonl does not exist: give a \.jsonl file"):
        load_dataset(tmp_path / "nope.jsonl")
    (tmp_path / "data.parquet").write_bytes(b"PAR1")
    with pytest.raises(
        DataError, match=r"unknown extension '\.parquet': give a \.jsonl file .* \.csv or \.tsv"
    ):
        load_dataset(tmp_path / "data.parquet")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match=r"holds no dataset \(no train\.jsonl/\.tsv/\.csv\): give"):
        load_dataset(tmp_path / "empty")
    write_jsonl(tmp_path / "one.jsonl", [{"text": "a", "label": 0}])
    with pytest.raises(DataError, match=r"is a single file, so it has no split 'train'"):
        load_dataset(tmp_path / "one.jsonl", split="train")


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("empty.jsonl", "", r"empty\.jsonl is empty"),
        ("blank.jsonl", "\n  \n", r"blank\.jsonl is empty"),
        ("empty.tsv", "", r"empty\.tsv is empty: it has no header row"),
        ("header.tsv", "sentence\tlabel\n", r"header\.tsv is empty: it has no rows"),
        (
            "bad.jsonl",
            '{"text": "a", "label": 0}\n{"text": "b", label: 1}\n',
            r"bad\.jsonl line 2 is not valid JSON",
        ),
        ("array.json", '[{"text": "a", "label": 0}]\n', r"array\.json line 1 is a JSON list, not an object"),
        (
            "gap.jsonl",
            '{"text": "a", "label": 0}\n\n{"text": "b"}\n',
            r"gap\.jsonl line 3 has no field 'label'",
        ),
        (
            "empty-text.tsv",
            "sentence\tlabel\nok\t1\n \t0\n",
            r"empty-text\.tsv line 3: field 'sentence' is empty",
        ),
        ("null.jsonl", '{"text": null, "label": 0}\n', r"null\.jsonl line 1: field 'text' is None, not text"),
        (
            "bool.jsonl",
            '{"text": "a", "label": true}\n',
            r"line 1: label field 'label' is True, not an integer",
        ),
        ("float.jsonl", '{"text": "a", "label": 0.5}\n', r"line 1: .* is 0\.5, not an integer .*regression"),
        ("neg.jsonl", '{"text": "a", "label": -2}\n', r"line 1: label -2 is negative"),
        ("blank-label.csv", "text,label\na,\n", r"line 2: label field 'label' is empty"),
        (
            "mixed.jsonl",
            '{"text": "a", "label": 0}\n{"text": "b", "label": "pos"}\n',
            r"mixed\.jsonl line 2: label 'pos' is a string but the first row's is one of integers",
        ),
        (
            "ragged.tsv",
            "sentence\tlabel\ngood\t1\nbad\ttab\t0\n",
            r"ragged\.tsv line 3 has 3 fields but the header has 2",
        ),
        ("test.tsv", "sentence\tlabel\na\t-1\nb\t-1\n", r"test\.tsv has no labelled examples: all 2 rows"),
        (
            "cols.jsonl",
            '{"body": "a", "stars": 1}\n',
            r"has no text column \(looked for sentence1\+sentence2, .*review\); its columns are body, stars: "
            r"set text_field",
        ),
        (
            "nolabel.jsonl",
            '{"text": "a", "stars": 1}\n',
            r"has no label column .*columns are text, stars: set label_field",
        ),
    ],
)
def test_unusable_files(tmp_path: Path, name: str, content: str, message: str) -> None:
    path = tmp_path / name
    path.write_text(content, encoding="utf-8")
    with pytest.raises(DataError, match=message) as caught:
        load_dataset(path)
    assert "\n" not in str(caught.value)


def test_non_utf8_text_names_its_line(tmp_path: Path) -> None:
    path = tmp_path / "latin1.tsv"
    path.write_bytes("sentence\tlabel\ncafé\t1\n".encode("latin-1"))
    with pytest.raises(DataError, match=r"latin1\.tsv line 2 is not UTF-8 text"):
        load_dataset(path)


def test_label_name_errors(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "m.jsonl", [{"premise": "p", "hypothesis": "h", "label": "maybe"}])
    with pytest.raises(DataError, match=r"m\.jsonl line 1: label 'maybe' is not one of the label names"):
        load_dataset(path, label_names=MNLI_NAMES)
    ids = write_jsonl(tmp_path / "ids.jsonl", [{"text": "a", "label": 0}, {"text": "b", "label": 3}])
    with pytest.raises(
        DataError, match=r"ids\.jsonl line 2: label id 3 is out of range for the 2 label names"
    ):
        load_dataset(ids, label_names=["neg", "pos"])
    with pytest.raises(DataError, match="label_names must be a non-empty list of names"):
        load_dataset(ids, label_names="negpos")
    with pytest.raises(DataError, match="label_names must be a non-empty list of names"):
        load_dataset(ids, label_names=[])


def test_field_option_errors(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "d.jsonl", [{"text": "a", "label": 0}])
    with pytest.raises(
        DataError, match=r"has no column 'body' \(given as text_field\): its columns are text, label"
    ):
        load_dataset(path, text_field="body")
    with pytest.raises(DataError, match=r"no column 'other' \(given as text_pair_field\)"):
        load_dataset(path, text_field="text", text_pair_field="other")
    with pytest.raises(DataError, match=r"no column 'gold' \(given as label_field\)"):
        load_dataset(path, label_field="gold")
    with pytest.raises(DataError, match=r"text_pair_field='text' needs text_field too"):
        load_dataset(path, text_pair_field="text")


# -- unlabelled text ---------------------------------------------------------------------------


def test_unlabelled_text_from_a_file_or_a_folder_of_text_files(tmp_path: Path) -> None:
    from latbench.distill.data import load_texts

    write_lines(tmp_path / "a.txt", "first sentence", "", "  second one  ")
    assert load_texts(tmp_path / "a.txt") == ("first sentence", "second one")
    write_lines(tmp_path / "b.txt", "third")
    assert load_texts(tmp_path) == ("first sentence", "second one", "third")
    write_lines(tmp_path / "corpus", "no extension is text too")
    assert load_texts(tmp_path / "corpus") == ("no extension is text too",)


def test_unlabelled_text_from_labelled_tables_reads_only_the_text(tmp_path: Path, hf: Any) -> None:
    from latbench.distill.data import load_texts

    write_jsonl(
        tmp_path / "pairs.jsonl", [{"premise": "a", "hypothesis": "b"}, {"premise": "c", "hypothesis": "d"}]
    )
    assert load_texts(tmp_path / "pairs.jsonl") == ("a", "b", "c", "d")
    write_jsonl(tmp_path / "x.jsonl", [{"body": "one", "label": 1}])
    assert load_texts(tmp_path / "x.jsonl", text_field="body") == ("one",)
    with pytest.raises(DataError, match="has no text column"):
        load_texts(tmp_path / "x.jsonl")
    with pytest.raises(DataError, match="has no column 'title'"):
        load_texts(tmp_path / "x.jsonl", text_field="title")
    hf.Dataset.from_dict({"text": ["saved one", "saved two"]}).save_to_disk(str(tmp_path / "saved"))
    assert load_texts(tmp_path / "saved") == ("saved one", "saved two")


def test_missing_or_empty_text_is_a_one_line_error(tmp_path: Path) -> None:
    from latbench.distill.data import load_texts

    with pytest.raises(DataError, match="does not exist"):
        load_texts(tmp_path / "nothing.txt")
    write_lines(tmp_path / "empty.txt", "", "   ")
    with pytest.raises(DataError, match="holds no sentences"):
        load_texts(tmp_path / "empty.txt")
