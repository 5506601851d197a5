"""Few-shot transfer: a predictor fitted on one target, adapted to another from a few
end-to-end measurements there (the idea of HELP, Lee et al. 2021, and LitePred, Feng et
al. 2024: latency on a new device is strongly rank-correlated with latency on a known
one, so a handful of measurements fix the mapping between them).

``TransferPredictor(source="ort-cpu.json")`` predicts ``exp(a) * source(x) ** b``: a
power law in the source predictor's latency, fitted in log space on the new target's
measurements. With fewer than ``MIN_SLOPE_ENCODERS`` only the offset ``a`` is fitted
(``b = 1``): a constant speed ratio is all a few points can support. The source
predictor is embedded in the saved file, so it travels with the adapted one.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from latbench.predictors.base import LatencyPredictor, Prediction
from latbench.predictors.batch import EncoderBatch
from latbench.predictors.table import LatencyTable

MIN_SLOPE_ENCODERS = 5


class TransferPredictor(LatencyPredictor):
    name = "transfer"

    def __init__(self, source: str = "") -> None:
        self.source = source

    def _fit(self, batch: EncoderBatch, y: np.ndarray, table: LatencyTable | None) -> None:
        import json

        from latbench.predictors.io import load_predictor

        if not self.source:
            raise ValueError("transfer needs source=PATH: a predictor file fitted on another target")
        loaded = load_predictor(self.source)
        self.source_ = loaded.predictor
        self.source_document_ = json.loads(Path(self.source).read_text(encoding="utf-8"))
        self.slope_, self.offset_log_ = 1.0, 0.0
        if len(y) == 0:
            return
        x = np.log(self._source_latency(batch).latency_s)
        t = np.log(y)
        if len(y) >= MIN_SLOPE_ENCODERS and np.ptp(x) > 0.05:
            self.slope_, self.offset_log_ = (float(v) for v in np.polyfit(x, t, 1))
        else:
            self.offset_log_ = float(np.mean(t - x))

    def _source_latency(self, batch: EncoderBatch) -> Prediction:
        prediction = self.source_._predict(batch)
        return Prediction(
            np.maximum(prediction.latency_s, 1e-12),
            outside_bits=prediction.outside_bits,
            outside_names=prediction.outside_names,
        )

    def _predict(self, batch: EncoderBatch) -> Prediction:
        source = self._source_latency(batch)
        latency = np.exp(self.offset_log_ + self.slope_ * np.log(source.latency_s))
        return Prediction(latency, outside_bits=source.outside_bits, outside_names=source.outside_names)

    def get_state(self) -> dict[str, Any]:
        return {
            **super().get_state(),
            "slope_": self.slope_,
            "offset_log_": self.offset_log_,
            "source_document_": self.source_document_,
        }

    def set_state(self, state: dict[str, Any]) -> LatencyPredictor:
        from latbench.predictors.io import predictor_from_document

        super().set_state(state)
        self.slope_, self.offset_log_ = float(state["slope_"]), float(state["offset_log_"])
        self.source_document_ = state["source_document_"]
        self.source_ = predictor_from_document(self.source_document_)
        return self
