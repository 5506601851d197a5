"""How predictors are evaluated: the only place ``latbench evaluate``'s defaults are
written. Importing this module is cheap (no scikit-learn), so ``--help`` can show them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from latbench.errors import ConfigError
from latbench.predictors import registry

SPLITS = ("random", "hidden")
#: ``EvaluationSettings.split``: one of SPLITS, or both of them.
SPLIT_CHOICES = (*SPLITS, "both")
#: The format of ``evaluation.json`` (``evaluation_document``), which ``latbench.reports`` reads.
EVALUATION_FORMAT = "latbench-evaluation"
EVALUATION_VERSION = 1
EVALUATION_FILE = "evaluation.json"


@dataclass(frozen=True)
class EvaluationSettings:
    """How predictors are scored (``latbench evaluate``'s options; its flags' defaults come
    from here). ``folds`` > 1 makes the random split a k-fold cross-validation;
    ``test_share`` is the share held out by the hidden split (and by a single random split)."""

    split: str = "both"
    folds: int = 5
    test_share: float = 0.3
    seed: int = 0
    predictors: tuple[str, ...] = registry.EVALUATED

    def __post_init__(self) -> None:
        if self.split not in SPLIT_CHOICES:
            raise ConfigError(f"split must be one of {', '.join(SPLIT_CHOICES)}, got {self.split!r}")
        if isinstance(self.folds, bool) or not isinstance(self.folds, int) or self.folds < 1:
            raise ConfigError(f"folds must be a positive integer, got {self.folds!r}")
        if not 0 < self.test_share < 1:
            raise ConfigError(f"test share must be between 0 and 1, got {self.test_share}")
        unknown = [p for p in self.predictors if p not in registry.EVALUATED]
        if unknown or not self.predictors:
            raise ConfigError(
                f"unknown predictor(s) {', '.join(unknown) or '(none given)'}; "
                f"choose from {', '.join(registry.EVALUATED)}"
            )

    @property
    def split_names(self) -> tuple[str, ...]:
        return SPLITS if self.split == "both" else (self.split,)

    def to_dict(self) -> dict[str, Any]:
        return {"split": self.split, "folds": self.folds, "test_share": self.test_share, "seed": self.seed}
