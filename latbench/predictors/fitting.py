"""Fitting a predictor on a measurement database (what ``latbench fit`` does), and
re-measuring held-out encoders for the noise floor (what ``latbench evaluate`` needs)."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from latbench.backends.registry import default_registry
from latbench.db import DB_ENV, MeasurementDB, choose_fingerprint, default_db
from latbench.errors import ConfigError
from latbench.fingerprint import Fingerprint, collect
from latbench.measurement import LATENCY_FIGURE, Measurement
from latbench.predictors import registry
from latbench.predictors.base import LatencyPredictor
from latbench.predictors.evaluation import encoders_and_table
from latbench.predictors.io import save_predictor
from latbench.profile import measure_specs
from latbench.target import Target


def predictor_params(name: str, *, device: str | None = None, source: str | None = None) -> dict[str, Any]:
    """Constructor parameters of predictor ``name`` from ``latbench fit``'s options: a spec
    sheet (``device``) for roofline and xgboost, a source predictor file for transfer."""
    if name not in registry.names():
        raise ConfigError(f"unknown predictor {name!r}; choose one of {', '.join(registry.names())}")
    params: dict[str, Any] = {}
    if device is not None:
        if name not in ("roofline", "xgboost"):
            raise ConfigError("--device applies to the roofline and xgboost predictors")
        params["device" if name == "roofline" else "roofline_device"] = device
    if source is not None:
        if name != "transfer":
            raise ConfigError("--source applies to the transfer predictor")
        params["source"] = source
    elif name == "transfer":
        raise ConfigError("the transfer predictor needs --source: a predictor file fitted on another target")
    return params


@dataclass(frozen=True)
class Fitted:
    """A fitted predictor with what it was fitted on (``fingerprint`` is None for a
    roofline built from a spec sheet alone)."""

    predictor: LatencyPredictor
    target: Target
    fingerprint: Fingerprint | None
    training: dict[str, Any]

    def save(self, path: str | Path) -> None:
        save_predictor(
            self.predictor, path, target=self.target, fingerprint=self.fingerprint, training=self.training
        )


def normalized_target(text: str) -> Target:
    """``text`` parsed, with the backend's defaults filled in (the key its rows are stored under)."""
    target = Target.parse(text)
    return default_registry().create(target.name).normalize(target)


def fit_from_database(
    name: str,
    target: str,
    db: str | None,
    *,
    fingerprint: str | None = None,
    params: dict[str, Any] | None = None,
) -> Fitted:
    """Fit predictor ``name`` on the measurements of ``target`` in database ``db`` (on the
    machine whose fingerprint key starts with ``fingerprint``, see ``choose_fingerprint``).
    ``db`` None means ``$LATBENCH_DB`` or ``latbench.db``, except for the roofline when
    ``$LATBENCH_DB`` is not set: a target nobody has profiled, predicted from its spec sheet
    alone, with nothing to read or calibrate."""
    params = predictor_params(name, **(params or {}))
    parsed = Target.parse(target)
    if db is None and (name != "roofline" or DB_ENV in os.environ):
        db = default_db()
    if db is None:
        normalized = (
            default_registry().create(parsed.name).normalize(parsed)
            if parsed.name in default_registry()
            else parsed
        )
        machine, rows = None, []
    else:
        normalized = normalized_target(target)
        with MeasurementDB(db, create=False) as opened:
            machine = choose_fingerprint(opened, normalized, fingerprint)
            rows = opened.measurements(target_key=normalized.key, fingerprint_key=machine.key)
    encoders, table = encoders_and_table(rows)
    try:
        predictor = registry.create(name, **params)
        predictor.fit([m.spec for m in encoders], np.array([m.latency_s for m in encoders]), table=table)
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"cannot fit {name} on these measurements: {exc}") from None
    training = {
        "encoders": len(encoders),
        **(table.summary() if table else {"blocks": 0, "ops": 0}),
        "figure": LATENCY_FIGURE,
    }
    return Fitted(predictor, normalized, machine, training)


def remeasure(
    target: Target,
    fingerprint: Fingerprint,
    tests: Sequence[Measurement],
    announce: Callable[[int], None] = lambda n: None,
) -> list[Measurement]:
    """Another independent measurement of the encoders in ``tests`` on this machine, for
    the noise floor (``announce(n)`` before measuring n encoders); a ConfigError when this
    machine is not the one they were measured on or cannot run ``target``."""
    backend = default_registry().create(target.name)
    here = collect(backend.fingerprint_extras())
    if not backend.availability().available or here.key != fingerprint.key:
        raise ConfigError(
            "the noise floor needs the held-out encoders measured twice: this machine cannot re-measure "
            f"them (target {target} measured on {fingerprint.summary()}); pass --noise-db with a second "
            "profile of the same plan, or --no-noise-floor"
        )
    specs = list({m.spec: None for m in tests})
    announce(len(specs))
    return measure_specs(backend, target, here, specs)
