"""Saving and loading predictors as JSON: inspectable, diffable, never pickle.

A predictor file holds its name, constructor parameters, learned state, the target and
machine fingerprint it was fitted on, and a summary of its training data::

    {"format": "latbench-predictor", "version": 1, "predictor": "lut-block",
     "params": {...}, "state": {...}, "target": {...}, "fingerprint": {...},
     "training": {"encoders": 12, "blocks": 48, "ops": 76, "hidden": [128, 384], ...}}
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

from latbench import __version__
from latbench.errors import ConfigError
from latbench.files import atomic_output
from latbench.fingerprint import Fingerprint
from latbench.predictors import registry
from latbench.predictors.base import LatencyPredictor
from latbench.target import Target

FORMAT = "latbench-predictor"
VERSION = 1


class FingerprintMismatchWarning(UserWarning):
    """A predictor used for a target or machine other than the one it was fitted on."""


def save_predictor(
    predictor: LatencyPredictor,
    path: str | Path,
    *,
    target: Target,
    fingerprint: Fingerprint | None,
    training: dict[str, Any],
) -> None:
    """Write ``predictor`` as JSON; ``fingerprint`` is None for a predictor built from a
    spec sheet alone (no machine measured)."""
    document = {
        "format": FORMAT,
        "version": VERSION,
        "latbench": __version__,
        **predictor_document(predictor),
        "target": target.to_dict(),
        "fingerprint": fingerprint.to_dict() if fingerprint else None,
        "training": training,
    }
    with atomic_output(path) as tmp, open(tmp, "w", encoding="utf-8") as f:
        json.dump(document, f, indent=1, sort_keys=True)


def predictor_document(predictor: LatencyPredictor) -> dict[str, Any]:
    """A fitted predictor as JSON-able data (how predictors nest inside one another)."""
    return {"predictor": predictor.name, "params": predictor.get_params(), "state": predictor.get_state()}


def predictor_from_document(document: dict[str, Any]) -> LatencyPredictor:
    return registry.create(document["predictor"], **document["params"]).set_state(document["state"])


class LoadedPredictor:
    """A predictor with the provenance it was saved with."""

    def __init__(
        self, predictor: LatencyPredictor, target: Target, fingerprint: Fingerprint | None, training: dict
    ) -> None:  # type: ignore[type-arg]
        self.predictor = predictor
        self.target = target
        self.fingerprint = fingerprint
        self.training = training


def load_predictor(
    path: str | Path, *, target: Target | None = None, fingerprint: Fingerprint | None = None
) -> LoadedPredictor:
    """Read a predictor file; warns (``FingerprintMismatchWarning``) when ``target`` or
    ``fingerprint`` is given and differs from what the predictor was fitted on."""
    path = Path(path)
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"predictor file {path} does not exist; create one with `latbench fit`") from None
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise ConfigError(f"predictor file {path} is not JSON; was it written by `latbench fit`?") from None
    if not isinstance(document, dict) or document.get("format") != FORMAT:
        raise ConfigError(f"{path} is not a latbench predictor file")
    if document.get("version") != VERSION:
        raise ConfigError(
            f"{path} has predictor format version {document.get('version')}; this latbench reads {VERSION}"
        )
    name = document.get("predictor")
    if name not in registry.names():
        raise ConfigError(f"{path} holds an unknown predictor {name!r}; known: {', '.join(registry.names())}")
    try:
        predictor = predictor_from_document(document)
        saved_target = Target.from_dict(document["target"])
        saved = document["fingerprint"]
        saved_fingerprint = Fingerprint.from_dict(saved) if saved is not None else None
    except (KeyError, TypeError, ValueError) as exc:
        raise ConfigError(f"predictor file {path} is damaged ({type(exc).__name__}: {exc})") from None
    if target is not None and target.key != saved_target.key:
        warnings.warn(
            f"predictor {path.name} was fitted on target {saved_target}, not {target}: "
            "its latencies describe that target",
            FingerprintMismatchWarning,
            stacklevel=2,
        )
    if fingerprint is not None and saved_fingerprint is not None and fingerprint.key != saved_fingerprint.key:
        warnings.warn(
            f"predictor {path.name} was fitted on another machine ({saved_fingerprint.summary()}, "
            f"libraries {dict(saved_fingerprint.libraries)}); its latencies describe that machine",
            FingerprintMismatchWarning,
            stacklevel=2,
        )
    return LoadedPredictor(predictor, saved_target, saved_fingerprint, document.get("training", {}))
