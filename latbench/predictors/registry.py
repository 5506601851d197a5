"""Every predictor by name, imported only when asked for (XGBoost and scikit-learn's
models load in a fraction of a second, but `latbench --help` should not pay for them)."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
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
_BUILTIN = frozenset(_PREDICTORS)
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


def register(name: str, cls: type[LatencyPredictor]) -> None:
    """Make a third party's predictor class loadable by ``name`` (``load_predictor`` finds
    classes by the name saved in the file). Built-in names are refused; ``cls`` must be
    importable by its module and qualified name (defined at a module's top level)."""
    if name in _BUILTIN:
        raise ValueError(f"{name!r} is a built-in predictor; give {cls.__name__} a name of its own")
    _PREDICTORS[name] = (cls.__module__, cls.__qualname__)


def unregister(name: str) -> None:
    """Forget a predictor entered with ``register`` (built-ins stay)."""
    if name not in _BUILTIN:
        _PREDICTORS.pop(name, None)


def create(name: str, **params: Any) -> LatencyPredictor:
    return predictor_class(name)(**params)
