"""Every predictor by name, imported only when asked for (XGBoost and scikit-learn's
models load in a fraction of a second, but `latbench --help` should not pay for them)."""

from __future__ import annotations

import importlib
from typing import Any

from latbench.predictors.base import LatencyPredictor

# name -> (module, class)
_PREDICTORS: dict[str, tuple[str, str]] = {
    "lut-block": ("latbench.predictors.lut", "LutBlockPredictor"),
    "lut-op": ("latbench.predictors.lut", "LutOpPredictor"),
    "flops": ("latbench.predictors.lut", "FlopsPredictor"),
    "hat-mlp": ("latbench.predictors.baselines", "HatMlpPredictor"),
    "nnmeter-rf": ("latbench.predictors.baselines", "NnMeterForestPredictor"),
    "roofline": ("latbench.predictors.roofline", "RooflinePredictor"),
    "xgboost": ("latbench.predictors.xgb", "XGBoostPredictor"),
    "transfer": ("latbench.predictors.transfer", "TransferPredictor"),
}
# Fitted from a database alone (``transfer`` also needs a predictor for another target).
EVALUATED = tuple(name for name in _PREDICTORS if name != "transfer")


def names() -> tuple[str, ...]:
    return tuple(_PREDICTORS)


def predictor_class(name: str) -> type[LatencyPredictor]:
    try:
        module, cls = _PREDICTORS[name]
    except KeyError:
        raise KeyError(f"unknown predictor {name!r}; known: {', '.join(_PREDICTORS)}") from None
    return getattr(importlib.import_module(module), cls)  # type: ignore[no-any-return]


def create(name: str, **params: Any) -> LatencyPredictor:
    return predictor_class(name)(**params)
