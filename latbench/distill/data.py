"""Text-classification data for the distillation trainer: labelled sentences (or sentence
pairs) read from the files GLUE and Hugging Face ``datasets`` leave behind.

``load_dataset(path)`` picks the format from what ``path`` is:

* a ``.jsonl`` file (or a ``.json`` file holding JSON Lines): one JSON object per line,
  blank lines skipped, e.g. ``{"sentence": "a gripping film", "label": 1}``;
* a ``.csv`` or ``.tsv`` file with a header row, GLUE's layout (``sentence<TAB>label`` for
  SST-2). GLUE's TSVs are unquoted, so a ``.tsv`` is read with no quote character: a
  ``"`` is part of the text. A ``.csv`` is read with ordinary CSV quoting. Cells are
  text, so a label cell that is an integer (``0``, ``-1``) is read as an integer;
* a directory written by ``datasets``' ``Dataset.save_to_disk`` (``state.json`` lists the
  Arrow stream files under ``_data_files``, ``dataset_info.json`` holds the features) or
  ``DatasetDict.save_to_disk`` (``dataset_dict.json`` lists the ``splits``, one such
  directory each; ``split`` picks one, ``"train"`` by default). These are read with
  pyarrow, without importing ``datasets``; a ``ClassLabel`` label column gives the label
  names;
* a directory of GLUE split files ``{split}.jsonl``, ``{split}.tsv`` or ``{split}.csv``
  (``split`` is ``"train"`` by default; ``"validation"`` and ``"dev"`` each look for
  ``validation`` and then ``dev``, GLUE's name, and so do a ``DatasetDict``'s splits).

``split`` names a split of a directory; it is an error for a single file or a single
saved ``Dataset`` (unless it is the split that dataset was saved as).

Fields, unless given: the text is the first pair of columns present among
``sentence1``/``sentence2``, ``question1``/``question2``, ``premise``/``hypothesis``,
``question``/``sentence`` and ``text``/``text_pair`` (``save_jsonl``'s), else the first
single column among ``sentence``, ``text``, ``content`` and ``review``; the label is
``label``, else ``gold_label``, else ``labels``. A ``text_field`` given alone means single
sentences.

Labels: integers are label ids (their names are ``"0"`` .. ``"<max>"`` unless
``label_names`` or a ``ClassLabel`` names them); strings are label names, numbered by
their position in ``label_names`` if given, else in sorted order. Rows labelled ``-1`` or
``"-"`` (GLUE test files, MNLI's examples without a consensus) are left out.

A problem with the data is a one-line ``DataError`` that names the file and, for one row,
its line (counted from 1) or, in a saved dataset, its row (counted from 0, as
``dataset[i]`` counts them).
"""

from __future__ import annotations

import contextlib
import csv
import json
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from latbench.errors import LatbenchError
from latbench.files import atomic_output


class DataError(LatbenchError, ValueError):
    """A dataset that cannot be read or is unusable."""


@dataclass(frozen=True)
class Example:
    text: str
    label: int
    text_pair: str | None = None


@dataclass(frozen=True)
class TextDataset:
    """Labelled examples; ``label_names[i]`` names label id ``i``."""

    examples: tuple[Example, ...]
    label_names: tuple[str, ...]
    source: str

    def __post_init__(self) -> None:
        object.__setattr__(self, "examples", tuple(self.examples))
        object.__setattr__(self, "label_names", tuple(self.label_names))
        names = self.label_names
        if not names:
            raise DataError(f"dataset {self.source} has no label names: give at least one")
        if not all(isinstance(name, str) and name for name in names):
            raise DataError(f"dataset {self.source} label names must be non-empty strings, got {list(names)}")
        if len(set(names)) != len(names):
            raise DataError(f"dataset {self.source} repeats a label name: {list(names)}")
        if not self.examples:
            raise DataError(f"dataset {self.source} is empty: it needs at least one example")
        for index, example in enumerate(self.examples):
            if not isinstance(example, Example):
                raise DataError(f"dataset {self.source} example {index} is {example!r}, not an Example")
            label = example.label
            if isinstance(label, bool) or not isinstance(label, int) or not 0 <= label < len(names):
                raise DataError(
                    f"dataset {self.source} example {index} has label {label!r}, "
                    f"outside 0..{len(names) - 1} for its {len(names)} label names"
                )

    def __len__(self) -> int:
        return len(self.examples)

    @property
    def num_labels(self) -> int:
        return len(self.label_names)

    @property
    def labels(self) -> np.ndarray:
        """The label ids, one per example (int64)."""
        return np.fromiter((e.label for e in self.examples), dtype=np.int64, count=len(self.examples))

    @property
    def has_pairs(self) -> bool:
        return any(e.text_pair is not None for e in self.examples)

    def subset(self, n: int, seed: int) -> TextDataset:
        """``n`` examples drawn without replacement (all of them if ``n >= len``), in the
        order drawn; the same ``seed`` draws the same ones, and a smaller ``n`` draws a
        prefix of a larger one's."""
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise DataError(f"a subset of dataset {self.source} needs at least 1 example, got n={n!r}")
        order = np.random.default_rng(seed).permutation(len(self.examples))[:n]
        return self._take(order)

    def split(self, fraction: float, seed: int) -> tuple[TextDataset, TextDataset]:
        """A random split into ``round(fraction * len)`` examples and the rest (e.g.
        ``train, dev = data.split(0.9, seed=0)``); both parts must be non-empty."""
        if not 0.0 < fraction < 1.0:
            raise DataError(f"split fraction must be between 0 and 1 (exclusive), got {fraction!r}")
        first = round(fraction * len(self.examples))
        if not 0 < first < len(self.examples):
            raise DataError(
                f"dataset {self.source} has {len(self.examples)} examples, too few to split "
                f"at fraction {fraction}: one part would be empty; use more examples or another fraction"
            )
        order = np.random.default_rng(seed).permutation(len(self.examples))
        return self._take(order[:first]), self._take(order[first:])

    def _take(self, order: np.ndarray) -> TextDataset:
        return TextDataset(tuple(self.examples[i] for i in order), self.label_names, self.source)


# What the fields are called when not given: pairs first, as ("question", "sentence")
# would otherwise be read as the single field "sentence".
PAIR_FIELDS: tuple[tuple[str, str], ...] = (
    ("sentence1", "sentence2"),
    ("question1", "question2"),
    ("premise", "hypothesis"),
    ("question", "sentence"),
    ("text", "text_pair"),
)
TEXT_FIELDS: tuple[str, ...] = ("sentence", "text", "content", "review")
LABEL_FIELDS: tuple[str, ...] = ("label", "gold_label", "labels")
UNLABELLED: tuple[Any, ...] = (-1, "-")

FORMATS = (
    "give a .jsonl file (or a .json file of JSON Lines), a .csv or .tsv file with a header row, "
    "a directory written by datasets' save_to_disk, or a directory of split files such as train.tsv"
)
SPLIT_EXTENSIONS = (".jsonl", ".tsv", ".csv")

_INTEGER = re.compile(r"-?[0-9]+")

# A table's rows for some fields: (where, the fields' values) per row, where is
# "dataset <path> line <n>" or "dataset <path> row <i>".
Rows = Iterator[tuple[str, tuple[Any, ...]]]


@dataclass(frozen=True)
class _Table:
    """A readable source of rows: its columns, and how to read some of them."""

    source: str
    columns: tuple[str, ...]
    read: Callable[[Sequence[str]], Rows]
    typed: bool = True  # False where every cell is text (CSV/TSV)
    class_names: Mapping[str, tuple[str, ...]] = field(default_factory=dict)  # ClassLabel names per column


def load_dataset(
    path: str | Path,
    *,
    split: str | None = None,
    text_field: str | None = None,
    text_pair_field: str | None = None,
    label_field: str | None = None,
    label_names: Sequence[str] | None = None,
) -> TextDataset:
    """The labelled examples at ``path`` (see the module docstring for the formats and
    how fields and labels are found); anything unusable is a one-line ``DataError``."""
    path = Path(path)
    if isinstance(label_names, str) or (label_names is not None and len(label_names) == 0):
        raise DataError(f"label_names must be a non-empty list of names, got {label_names!r}")
    if not path.exists():
        raise DataError(f"dataset {path} does not exist: {FORMATS}")
    if path.is_dir():
        if (path / "dataset_dict.json").is_file() or (path / "state.json").is_file():
            table = _saved_table(path, split)
        else:
            table = _split_file_table(path, split)
    else:
        if split is not None:
            raise DataError(
                f"dataset {path} is a single file, so it has no split {split!r}: leave split unset, "
                "or give a directory of split files"
            )
        table = _file_table(path)
    fields = _pick_fields(table, text_field, text_pair_field, label_field)
    return _examples(table, fields, None if label_names is None else tuple(label_names))


def save_jsonl(dataset: TextDataset, path: str | Path) -> None:
    """Write ``dataset`` as JSON Lines, ``{"text", "text_pair" (for pairs), "label"}`` per
    example, that ``load_dataset`` reads back. Labels are written as ids when the label
    names are the default ``"0"`` .. ``"n-1"``, else as names; reading names back numbers
    them in sorted order, so pass ``label_names=dataset.label_names`` to get the same ids
    (and names no example uses) back."""
    pairs = [e.text_pair is not None for e in dataset.examples]
    if any(pairs) and not all(pairs):
        raise DataError(
            f"dataset {dataset.source} mixes examples with and without text_pair: "
            "JSON Lines needs the same fields on every line"
        )
    as_ids = dataset.label_names == _default_names(dataset.num_labels)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_output(path) as tmp, open(tmp, "w", encoding="utf-8", newline="\n") as out:
        for example in dataset.examples:
            row: dict[str, Any] = {"text": example.text}
            if example.text_pair is not None:
                row["text_pair"] = example.text_pair
            row["label"] = example.label if as_ids else dataset.label_names[example.label]
            out.write(json.dumps(row, ensure_ascii=False) + "\n")


TEXT_EXTENSIONS = (".txt", ".text")
TEXT_FORMATS = (
    "give a text file (one sentence per line), a folder of such .txt files, a .jsonl/.csv/.tsv "
    "file or a directory written by datasets' save_to_disk"
)


def load_texts(
    path: str | Path, *, split: str | None = None, text_field: str | None = None
) -> tuple[str, ...]:
    """Unlabelled sentences for task-agnostic distillation, no labels read or needed.

    ``path`` is a text file (one sentence per line, blank lines skipped), a folder of
    ``.txt`` files (read in name order), or anything ``load_dataset`` reads, of which only
    the text column is taken (``text_field``, else the first of the usual names; both
    texts of a sentence pair become sentences of their own)."""
    path = Path(path)
    if not path.exists():
        raise DataError(f"text {path} does not exist: {TEXT_FORMATS}")
    if path.is_dir() and not (path / "dataset_dict.json").is_file() and not (path / "state.json").is_file():
        files = sorted(p for p in path.iterdir() if p.suffix.lower() in TEXT_EXTENSIONS)
        if files:
            return _nonempty(path, [line for f in files for line in _text_lines(f)])
        table = _split_file_table(path, split)
    elif path.is_dir():
        table = _saved_table(path, split)
    elif path.suffix.lower() in TEXT_EXTENSIONS or not path.suffix:
        return _nonempty(path, list(_text_lines(path)))
    else:
        table = _file_table(path)
    columns = table.columns
    if text_field is not None:
        if text_field not in columns:
            raise DataError(
                f"dataset {table.source} has no column {text_field!r}: its columns are {', '.join(columns)}"
            )
        fields: tuple[str, ...] = (text_field,)
    else:
        pair = next(((a, b) for a, b in PAIR_FIELDS if a in columns and b in columns), None)
        single = next((name for name in TEXT_FIELDS if name in columns), None)
        if pair is None and single is None:
            raise DataError(
                f"dataset {table.source} has no text column (looked for {', '.join(TEXT_FIELDS)}); "
                f"its columns are {', '.join(columns) or 'none'}: set text_field"
            )
        fields = pair if pair is not None else (single,)  # type: ignore[assignment]
    texts = [
        _text(value, where, name).strip()
        for where, values in table.read(fields)
        for name, value in zip(fields, values, strict=True)
        if value is not None
    ]
    return _nonempty(path, [t for t in texts if t])


def _text_lines(path: Path) -> Iterator[str]:
    for _, line in _lines(path):
        if line.strip():
            yield line.strip()


def _nonempty(path: Path, texts: list[str]) -> tuple[str, ...]:
    if not texts:
        raise DataError(f"text {path} holds no sentences")
    return tuple(texts)


# -- formats ------------------------------------------------------------------------------


def _file_table(path: Path) -> _Table:
    suffix = path.suffix.lower()
    if suffix in (".jsonl", ".json"):
        return _jsonl_table(path)
    if suffix in (".csv", ".tsv"):
        return _csv_table(path)
    raise DataError(f"dataset {path} has an unknown extension {path.suffix or '(none)'!r}: {FORMATS}")


def _lines(path: Path) -> Iterator[tuple[int, str]]:
    """The file's lines, numbered from 1, as UTF-8 (a byte-order mark is dropped)."""
    with open(path, "rb") as file:
        for number, raw in enumerate(file, 1):
            try:
                yield number, raw.decode("utf-8-sig" if number == 1 else "utf-8")
            except UnicodeDecodeError:
                raise DataError(f"dataset {path} line {number} is not UTF-8 text: save it as UTF-8") from None


def _json_objects(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    for number, line in _lines(path):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise DataError(
                f"dataset {path} line {number} is not valid JSON ({exc.msg}, column {exc.colno}): "
                "write one JSON object per line (JSON Lines)"
            ) from None
        if not isinstance(row, dict):
            raise DataError(
                f"dataset {path} line {number} is a JSON {type(row).__name__}, not an object: "
                "write one JSON object per line (JSON Lines)"
            )
        yield number, row


def _jsonl_table(path: Path) -> _Table:
    with contextlib.closing(_json_objects(path)) as objects:
        first = next(objects, None)
    if first is None:
        raise DataError(f"dataset {path} is empty: it holds no JSON objects; check the path")

    def read(fields: Sequence[str]) -> Rows:
        for number, row in _json_objects(path):
            missing = [name for name in fields if name not in row]
            if missing:
                raise DataError(
                    f"dataset {path} line {number} has no field {missing[0]!r}: every line needs "
                    f"{', '.join(map(repr, fields))}"
                )
            yield f"dataset {path} line {number}", tuple(row[name] for name in fields)

    return _Table(str(path), tuple(first[1]), read)


def _csv_rows(path: Path) -> Iterator[tuple[int, list[str]]]:
    """Non-blank CSV (or, for ``.tsv``, unquoted tab-separated) records with the line
    each ends on."""
    lines = (line for _, line in _lines(path))
    dialect = {"delimiter": "\t", "quoting": csv.QUOTE_NONE} if path.suffix.lower() == ".tsv" else {}
    reader = csv.reader(lines, **dialect)
    while True:
        try:
            record = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            raise DataError(f"dataset {path} line {reader.line_num} is not valid CSV ({exc})") from None
        if record:
            yield reader.line_num, record


def _csv_table(path: Path) -> _Table:
    with contextlib.closing(_csv_rows(path)) as records:
        first = next(records, None)
    if first is None:
        raise DataError(f"dataset {path} is empty: it has no header row; check the path")
    header = tuple(first[1])
    fix = (
        "check for stray tabs (GLUE TSVs are unquoted)"
        if path.suffix.lower() == ".tsv"
        else "quote fields that hold commas"
    )

    def read(fields: Sequence[str]) -> Rows:
        at = [header.index(name) for name in fields]
        rows = _csv_rows(path)
        next(rows)  # the header
        for number, record in rows:
            if len(record) != len(header):
                raise DataError(
                    f"dataset {path} line {number} has {len(record)} fields but the header has "
                    f"{len(header)}: {fix}"
                )
            yield f"dataset {path} line {number}", tuple(record[i] for i in at)

    return _Table(str(path), header, read, typed=False)


def _split_names(split: str | None) -> tuple[str, ...]:
    """The names to look for, in order, for ``split`` (GLUE's dev split is ``dev``)."""
    split = "train" if split is None else split
    return ("validation", "dev") if split in ("validation", "dev") else (split,)


def _split_file_table(directory: Path, split: str | None) -> _Table:
    for name in _split_names(split):
        for extension in SPLIT_EXTENSIONS:
            candidate = directory / f"{name}{extension}"
            if candidate.is_file():
                return _file_table(candidate)
    found = sorted({p.stem for p in directory.iterdir() if p.suffix.lower() in SPLIT_EXTENSIONS})
    wanted = " or ".join(f"{name}.jsonl/.tsv/.csv" for name in _split_names(split))
    if found:
        raise DataError(
            f"dataset directory {directory} has no {wanted}: its splits are {', '.join(found)}; "
            "pass split= one of them"
        )
    raise DataError(f"dataset directory {directory} holds no dataset (no {wanted}): {FORMATS}")


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DataError(
            f"dataset file {path} cannot be read as JSON ({exc}): save the dataset again"
        ) from None


def _saved_table(directory: Path, split: str | None) -> _Table:
    """A directory written by ``Dataset.save_to_disk`` or ``DatasetDict.save_to_disk``."""
    if (directory / "dataset_dict.json").is_file():
        splits = _read_json(directory / "dataset_dict.json").get("splits")
        if not isinstance(splits, list) or not all(isinstance(s, str) for s in splits):
            raise DataError(
                f"dataset {directory}: dataset_dict.json has no list of splits; save the dataset again"
            )
        name = next((s for s in _split_names(split) if s in splits), None)
        if name is None:
            wanted = "train" if split is None else split
            raise DataError(
                f"dataset {directory} has no split {wanted!r}: its splits are {', '.join(splits) or 'none'}; "
                "pass split= one of them"
            )
        directory = directory / name
        if not (directory / "state.json").is_file():
            raise DataError(f"dataset split {directory} has no state.json: save the dataset again")
        saved_split = name
    else:
        saved_split = None
    state = _read_json(directory / "state.json")
    files = state.get("_data_files") if isinstance(state, dict) else None
    if not isinstance(files, list) or not all(isinstance(f, dict) and "filename" in f for f in files):
        raise DataError(
            f"dataset {directory}: state.json lists no _data_files; it is not a directory written by "
            "datasets' save_to_disk"
        )
    if saved_split is None and split is not None and split != state.get("_split"):
        raise DataError(
            f"dataset {directory} is a single saved Dataset, not a DatasetDict, so it has no split "
            f"{split!r}: leave split unset"
        )
    paths = [directory / f["filename"] for f in files]
    for path in paths:
        if not path.is_file():
            raise DataError(
                f"dataset {directory} is missing its data file {path.name}: save the dataset again"
            )
    features = {}
    if (directory / "dataset_info.json").is_file():
        info = _read_json(directory / "dataset_info.json")
        features = (info.get("features") if isinstance(info, dict) else None) or {}
    class_names = {
        column: tuple(feature["names"])
        for column, feature in features.items()
        if isinstance(feature, dict) and feature.get("_type") == "ClassLabel" and feature.get("names")
    }
    columns = _arrow_columns(paths[0]) if paths else ()
    return _Table(
        str(directory), columns, lambda fields: _arrow_rows(str(directory), paths, fields), True, class_names
    )


def _open_arrow(path: Path) -> Any:
    import pyarrow as pa

    try:
        return pa.ipc.open_stream(pa.memory_map(str(path)))
    except (OSError, pa.ArrowException) as exc:
        raise DataError(
            f"dataset file {path} is not an Arrow stream ({exc}): save the dataset again with save_to_disk"
        ) from None


def _arrow_columns(path: Path) -> tuple[str, ...]:
    return tuple(_open_arrow(path).schema.names)


def _arrow_rows(source: str, paths: Sequence[Path], fields: Sequence[str]) -> Rows:
    import pyarrow as pa

    index = 0
    for path in paths:
        try:
            table = _open_arrow(path).read_all()
        except (OSError, pa.ArrowException) as exc:
            raise DataError(f"dataset file {path} cannot be read ({exc}): save the dataset again") from None
        missing = [name for name in fields if name not in table.column_names]
        if missing:
            raise DataError(
                f"dataset file {path} has no column {missing[0]!r}: its columns are "
                f"{', '.join(table.column_names)}; save the dataset again"
            )
        columns = [table.column(name).to_pylist() for name in fields]
        for values in zip(*columns, strict=True):
            yield f"dataset {source} row {index}", values
            index += 1


# -- fields and labels --------------------------------------------------------------------


def _pick_fields(
    table: _Table, text_field: str | None, text_pair_field: str | None, label_field: str | None
) -> tuple[str, str | None, str]:
    """The text, text-pair (or ``None``) and label columns: as given, else found by name."""
    columns = table.columns
    found = ", ".join(columns) or "none"

    def check(name: str, option: str) -> None:
        if name not in columns:
            raise DataError(
                f"dataset {table.source} has no column {name!r} (given as {option}): its columns are {found}"
            )

    if text_field is None:
        if text_pair_field is not None:
            raise DataError(
                f"text_pair_field={text_pair_field!r} needs text_field too: give the first text's column"
            )
        pair = next(((a, b) for a, b in PAIR_FIELDS if a in columns and b in columns), None)
        if pair is not None:
            text_field, text_pair_field = pair
        else:
            text_field = next((name for name in TEXT_FIELDS if name in columns), None)
        if text_field is None:
            looked = ", ".join([*(f"{a}+{b}" for a, b in PAIR_FIELDS), *TEXT_FIELDS])
            raise DataError(
                f"dataset {table.source} has no text column (looked for {looked}); its columns are "
                f"{found}: set text_field (and text_pair_field for sentence pairs)"
            )
    else:
        check(text_field, "text_field")
        if text_pair_field is not None:
            check(text_pair_field, "text_pair_field")
    if label_field is None:
        label_field = next((name for name in LABEL_FIELDS if name in columns), None)
        if label_field is None:
            raise DataError(
                f"dataset {table.source} has no label column (looked for {', '.join(LABEL_FIELDS)}); "
                f"its columns are {found}: set label_field"
            )
    else:
        check(label_field, "label_field")
    return text_field, text_pair_field, label_field


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _text(value: Any, where: str, name: str) -> str:
    if not isinstance(value, str):
        raise DataError(
            f"{where}: field {name!r} is {_short(value)}, not text: fix the row or set text_field"
        )
    if not value.strip():
        raise DataError(f"{where}: field {name!r} is empty: fill it in or remove the row")
    return value


def _raw_label(value: Any, where: str, name: str, typed: bool) -> int | str:
    if not typed and isinstance(value, str) and _INTEGER.fullmatch(value):
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise DataError(
            f"{where}: label field {name!r} is {_short(value)}, not an integer or a string: "
            "fix the row or set label_field (regression targets are not supported)"
        )
    if isinstance(value, int) and value < 0 and value != -1:
        raise DataError(f"{where}: label {value} is negative: label ids start at 0 (-1 marks no label)")
    if isinstance(value, str) and not value.strip():
        raise DataError(f"{where}: label field {name!r} is empty: fill it in or remove the row")
    return value


def _default_names(count: int) -> tuple[str, ...]:
    return tuple(str(i) for i in range(count))


def _examples(
    table: _Table, fields: tuple[str, str | None, str], label_names: tuple[str, ...] | None
) -> TextDataset:
    text_field, pair_field, label_field = fields
    wanted = [text_field, label_field] if pair_field is None else [text_field, pair_field, label_field]
    rows: list[tuple[str, str, str | None, int | str]] = []
    unlabelled = 0
    for where, values in table.read(wanted):
        label = _raw_label(values[-1], where, label_field, table.typed)
        if label in UNLABELLED:
            unlabelled += 1
            continue
        text = _text(values[0], where, text_field)
        pair = None if pair_field is None else _text(values[1], where, pair_field)
        rows.append((where, text, pair, label))
    if not rows:
        if unlabelled:
            raise DataError(
                f"dataset {table.source} has no labelled examples: all {unlabelled} rows are labelled "
                "-1 or '-' (as in GLUE test files); use a labelled split such as train or dev"
            )
        raise DataError(f"dataset {table.source} is empty: it has no rows; check the path")
    first_is_int = isinstance(rows[0][3], int)
    for where, _, _, label in rows:
        if isinstance(label, int) != first_is_int:
            kinds = ("a string", "integers") if first_is_int else ("an integer", "strings")
            raise DataError(
                f"{where}: label {label!r} is {kinds[0]} but the first row's is one of {kinds[1]}: "
                f"use one kind of label throughout field {label_field!r}"
            )
    if first_is_int:
        names = label_names or table.class_names.get(label_field)
        if names is None:
            names = _default_names(1 + max(int(label) for *_, label in rows))
        for where, _, _, label in rows:
            if int(label) >= len(names):
                raise DataError(
                    f"{where}: label id {label} is out of range for the {len(names)} label names "
                    f"{list(names)}: fix the row or the label names"
                )
        ids = [int(label) for *_, label in rows]
    else:
        names = label_names or tuple(sorted({str(label) for *_, label in rows}))
        position = {name: i for i, name in enumerate(names)}
        ids = []
        for where, _, _, label in rows:
            if label not in position:
                raise DataError(
                    f"{where}: label {label!r} is not one of the label names {list(names)}: "
                    "add it to label_names or fix the row"
                )
            ids.append(position[label])
    examples = tuple(Example(text, i, pair) for (_, text, pair, _), i in zip(rows, ids, strict=True))
    return TextDataset(examples, tuple(names), table.source)
