"""Reading what a report is made from: a search's ``search.json`` and a predictor
evaluation's ``evaluation.json``, checked before any figure is drawn.

Both are JSON documents written by latbench (``latbench search`` and ``latbench
evaluate``); a folder holding one of them may be given instead of the file. Anything
missing or of the wrong kind is a ``ConfigError`` naming the file and the field, so a
damaged or foreign file is a one-line error, not a traceback halfway through a report.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from latbench.errors import ConfigError
from latbench.predictors.settings import EVALUATION_FILE, EVALUATION_FORMAT, EVALUATION_VERSION
from latbench.search.study import FORMAT_VERSION as SEARCH_VERSION
from latbench.search.study import RESULTS_FILE as SEARCH_FILE
from latbench.search.study import RESULTS_FORMAT as SEARCH_FORMAT

_SEARCH_FIELDS: dict[str, type | tuple[type, ...]] = {
    "study": str,
    "settings": dict,
    "space": dict,
    "objective": dict,
    "latency": dict,
    "reference": list,
    "hypervolume": list,
    "pareto": list,
    "trials": list,
}
_TRIAL_FIELDS: dict[str, type | tuple[type, ...]] = {
    "number": int,
    "state": str,
    "feasible": bool,
    "skipped": bool,
}


@dataclass(frozen=True)
class Results:
    """One report input: which kind it is, where it came from, and its document."""

    kind: str  # "search" or "evaluation"
    path: Path
    document: dict[str, Any]


def read_results(path: str | Path) -> Results:
    """A search or evaluation result file (or a folder holding ``search.json`` or
    ``evaluation.json``), validated."""
    path = Path(path)
    if path.is_dir():
        found = [path / name for name in (SEARCH_FILE, EVALUATION_FILE) if (path / name).is_file()]
        if not found:
            raise ConfigError(
                f"{path} holds neither {SEARCH_FILE} (from `latbench search`) nor {EVALUATION_FILE} "
                "(from `latbench evaluate`)"
            )
        path = found[0]
    document = _read_json(path)
    kind = document.get("format")
    if kind == SEARCH_FORMAT:
        check_search(document, path)
        return Results("search", path, document)
    if kind == EVALUATION_FORMAT:
        check_evaluation(document, path)
        return Results("evaluation", path, document)
    raise ConfigError(
        f"{path} is neither a latbench search result nor a predictor evaluation (format {kind!r})"
    )


def read_search(path: str | Path) -> Results:
    """Like ``read_results``, but only a search result is accepted (for baselines)."""
    results = read_results(path)
    if results.kind != "search":
        raise ConfigError(f"{results.path} is a predictor evaluation, not a search result")
    return results


def read_evaluation(path: str | Path) -> Results:
    """Like ``read_results``, but only a predictor evaluation is accepted."""
    results = read_results(path)
    if results.kind != "evaluation":
        raise ConfigError(f"{results.path} is a search result, not a predictor evaluation")
    return results


def _read_json(path: Path) -> dict[str, Any]:
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{path} does not exist") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path} is not JSON ({exc})") from None
    if not isinstance(document, dict):
        raise ConfigError(f"{path} is not a latbench result file (a JSON object was expected)")
    return document


def _check_fields(data: dict[str, Any], fields: dict[str, Any], where: str) -> None:
    for name, kind in fields.items():
        if name not in data:
            raise ConfigError(f"{where} has no {name!r}")
        if not isinstance(data[name], kind):
            raise ConfigError(f"{where}: {name!r} should be {_kind(kind)}, got {type(data[name]).__name__}")


def _kind(kind: type | tuple[type, ...]) -> str:
    kinds = kind if isinstance(kind, tuple) else (kind,)
    names = {dict: "an object", list: "a list", str: "a string", int: "an integer", bool: "true or false"}
    return " or ".join(names.get(k, k.__name__) for k in kinds)


def check_search(document: dict[str, Any], path: Path) -> None:
    if document.get("version") != SEARCH_VERSION:
        raise ConfigError(
            f"{path} has search format version {document.get('version')!r}; this latbench reads "
            f"{SEARCH_VERSION}"
        )
    _check_fields(document, _SEARCH_FIELDS, str(path))
    reference = document["reference"]
    if len(reference) != 2 or not all(isinstance(v, (int, float)) for v in reference):
        raise ConfigError(f"{path}: 'reference' should be [accuracy, latency_ms], got {reference!r}")
    for where, rows in (("trials", document["trials"]), ("pareto", document["pareto"])):
        for i, row in enumerate(rows):
            if not isinstance(row, dict):
                raise ConfigError(f"{path}: {where}[{i}] is not an object")
            _check_fields(row, _TRIAL_FIELDS, f"{path}: {where}[{i}]")


def check_evaluation(document: dict[str, Any], path: Path) -> None:
    if document.get("version") != EVALUATION_VERSION:
        raise ConfigError(
            f"{path} has evaluation format version {document.get('version')!r}; this latbench reads "
            f"{EVALUATION_VERSION}"
        )
    _check_fields(document, {"target": str, "splits": dict}, str(path))
    for name, split in document["splits"].items():
        where = f"{path}: split {name!r}"
        if not isinstance(split, dict):
            raise ConfigError(f"{where} is not an object")
        _check_fields(split, {"predictors": dict, "measured_ms": list}, where)
        for predictor, scored in split["predictors"].items():
            if not isinstance(scored, dict):
                raise ConfigError(f"{where}: predictor {predictor!r} is not an object")
            predicted = scored.get("predicted_ms")
            if scored.get("accuracy") and (
                not isinstance(predicted, list) or len(predicted) != len(split["measured_ms"])
            ):
                raise ConfigError(f"{where}: predictor {predictor!r} has no prediction per measured encoder")
