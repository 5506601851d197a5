"""Published learned latency predictors, re-implemented as the baselines every figure is
compared with.

* ``HatMlpPredictor`` (``hat-mlp``): HAT's predictor (Wang et al., "HAT: Hardware-Aware
  Transformers for Efficient Natural Language Processing", ACL 2020, Sec. 3.3): an MLP
  of three hidden layers of 400 ReLU units on the architecture features *averaged over
  layers*, fitted on measured end-to-end latencies. It sees no lookup table.
* ``NnMeterForestPredictor`` (``nnmeter-rf``): nn-Meter's approach (Zhang et al.,
  "nn-Meter: Towards Accurate Latency Prediction of Deep-Learning Model Inference on
  Diverse Edge Devices", MobiSys 2021): one random forest per kernel type, fitted on
  the measured operators of the lookup table; a model's latency is the plain sum of its
  kernels' predicted latencies.

Both fit with scikit-learn, then keep only plain arrays (MLP weights, tree nodes) that
go to JSON as lists and are evaluated with NumPy, so a fitted predictor and one loaded
from a file run the same code on the same numbers and answer identically.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
from sklearn.ensemble import RandomForestRegressor
from sklearn.exceptions import ConvergenceWarning
from sklearn.neural_network import MLPRegressor

from latbench.arch import BYTES_PER_ELEMENT
from latbench.predictors.base import (
    INTERVAL_COVERAGE,
    MIN_INTERVAL_ENCODERS,
    LatencyPredictor,
    Prediction,
    conformal_bounds,
)
from latbench.predictors.batch import EncoderBatch
from latbench.predictors.table import LatencyTable, op_dims
from latbench.specs import ATTENTION_OPS, LAYER_OPS, elements_formula, flops_formula

# --- HAT ---------------------------------------------------------------------------------
HAT_FEATURES = ("num_layers", "hidden", "mean_heads", "mean_ffn", "batch", "seq_len")


def hat_features(batch: EncoderBatch) -> np.ndarray:
    """``(n, 6)`` log of HAT's features: layer count, hidden size, heads and FFN size
    averaged over layers (HAT's "average hidden dim / head number" for elastic layers),
    and the workload's batch and sequence length. Averages make the features the same
    for any order of the same layers, which is HAT's design (and its blind spot). Nor do
    they hold a fixed head size: two encoders that differ only in attention width get the
    same features and the same prediction (kept so, to stay HAT's baseline)."""
    layers = batch.num_layers.astype(float)
    columns = (
        layers,
        batch.hidden.astype(float),
        batch.heads.sum(axis=1) / layers,  # padding is 0, so the sum covers real layers only
        batch.ffn.sum(axis=1) / layers,
        batch.batch.astype(float),
        batch.seq_len.astype(float),
    )
    return np.log(np.stack(columns, axis=1))


class HatMlpPredictor(LatencyPredictor):
    """HAT's MLP on layer-averaged architecture features (Wang et al., ACL 2020).

    Features are logged (sizes span decades; latency is near a power law in them) and
    standardised with the training mean and spread; the target is log-latency,
    standardised likewise, so the MLP fits relative error, as a latency model should.
    HAT trains with Adam for a fixed budget of steps; this uses ``MLPRegressor``'s
    ``adam`` (the whole training set per step up to 200 rows, ``random_state=0``, no
    early stopping on a validation split), stopping when the training loss stops
    improving or after ``max_iter`` epochs. Reaching ``max_iter`` is HAT's budget running
    out, not a failure, so scikit-learn's ``ConvergenceWarning`` is silenced for this fit
    alone; whether the fit is any good is measured by the cross-fitted interval
    residuals, like every other predictor's. (On the test database it stops after ~50.)
    """

    name = "hat-mlp"

    def __init__(self, hidden_layer_sizes: tuple[int, ...] = (400, 400, 400), max_iter: int = 2000) -> None:
        self.hidden_layer_sizes = hidden_layer_sizes
        self.max_iter = max_iter

    def _fit(self, batch: EncoderBatch, y: np.ndarray, table: LatencyTable | None) -> None:
        if len(batch) < 2:
            raise ValueError(f"hat-mlp needs at least 2 measured encoders to fit, got {len(batch)}")
        features = hat_features(batch)
        self.feature_mean_ = features.mean(axis=0)
        spread = features.std(axis=0)
        self.feature_scale_ = np.where(spread > 0, spread, 1.0)  # a constant feature stays 0
        log_y = np.log(y)
        self.log_latency_mean_ = float(log_y.mean())
        spread_y = float(log_y.std())
        self.log_latency_scale_ = spread_y if spread_y > 0 else 1.0
        mlp = MLPRegressor(
            hidden_layer_sizes=tuple(int(units) for units in self.hidden_layer_sizes),
            activation="relu",
            solver="adam",
            max_iter=int(self.max_iter),
            early_stopping=False,
            random_state=0,
        )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)  # a fixed budget, as HAT (see above)
            mlp.fit(
                (features - self.feature_mean_) / self.feature_scale_,
                (log_y - self.log_latency_mean_) / self.log_latency_scale_,
            )
        self.coefs_ = [np.array(w, dtype=float) for w in mlp.coefs_]
        self.intercepts_ = [np.array(b, dtype=float) for b in mlp.intercepts_]

    def _predict(self, batch: EncoderBatch) -> Prediction:
        z = (hat_features(batch) - self.feature_mean_) / self.feature_scale_
        for w, b in zip(self.coefs_[:-1], self.intercepts_[:-1], strict=True):
            z = np.maximum(z @ w + b, 0.0)
        out = (z @ self.coefs_[-1] + self.intercepts_[-1])[:, 0]
        return Prediction(np.exp(out * self.log_latency_scale_ + self.log_latency_mean_))

    def get_state(self) -> dict[str, Any]:
        return {
            **super().get_state(),
            "feature_mean_": self.feature_mean_.tolist(),
            "feature_scale_": self.feature_scale_.tolist(),
            "log_latency_mean_": self.log_latency_mean_,
            "log_latency_scale_": self.log_latency_scale_,
            "coefs_": [w.tolist() for w in self.coefs_],
            "intercepts_": [b.tolist() for b in self.intercepts_],
        }

    def set_state(self, state: dict[str, Any]) -> LatencyPredictor:
        super().set_state(state)
        self.feature_mean_ = np.array(state["feature_mean_"], dtype=float)
        self.feature_scale_ = np.array(state["feature_scale_"], dtype=float)
        self.log_latency_mean_ = float(state["log_latency_mean_"])
        self.log_latency_scale_ = float(state["log_latency_scale_"])
        self.coefs_ = [np.array(w, dtype=float) for w in state["coefs_"]]
        self.intercepts_ = [np.array(b, dtype=float) for b in state["intercepts_"]]
        return self


# --- nn-Meter ----------------------------------------------------------------------------
KERNELS = ("embedding", *(op for op, _ in LAYER_OPS))
TREE_ARRAYS = ("children_left", "children_right", "feature", "threshold", "value")


def kernel_feature_names(op: str) -> tuple[str, ...]:
    """nn-Meter's kernel features for ``op``: the dimensions it depends on, the workload,
    its FLOPs and the bytes it moves (nn-Meter uses FLOPs and parameter bytes beside the
    kernel's configuration)."""
    return (*op_dims(op), "flops", "bytes")


def kernel_features(
    op: str,
    hidden: Any,
    heads: Any,
    ffn: Any,
    batch: Any,
    seq_len: Any,
    bytes_per_element: int,
    attn_width: Any = None,
) -> np.ndarray:
    """``(n, len(kernel_feature_names(op)))`` raw (unlogged, as nn-Meter) features of ``n``
    instances of ``op``; dimensions are ints or int arrays (broadcast), FLOPs and bytes use the
    ``latbench.specs`` formulas, as ``OpSpec.flops``/``.bytes_moved`` do. ``attn_width`` is
    a projection's attention width (``OpSpec.width``; default ``hidden``); it reaches the
    forest through the FLOPs and bytes."""
    width = hidden if attn_width is None else attn_width
    h, a, f, b, s, w = np.broadcast_arrays(
        *(np.atleast_1d(np.asarray(v, dtype=np.int64)) for v in (hidden, heads, ffn, batch, seq_len, width))
    )
    dims = {"hidden": h, "heads": a, "ffn": f, "batch": b, "seq_len": s}
    columns = [dims[d] for d in op_dims(op)]
    columns.append(flops_formula(op, b, s, h, a, f, w))
    columns.append(elements_formula(op, b, s, h, a, f, w) * bytes_per_element)
    return np.stack(columns, axis=1).astype(float)


def kernel_training_set(table: LatencyTable, op: str, precision: str) -> tuple[np.ndarray, np.ndarray]:
    """Features and median latencies (seconds) of the table's ``op`` measurements at
    ``precision``, in the order of their spec keys (so the forest does not depend on the
    order rows came out of a database)."""
    entries = sorted(
        ((s, t) for s, t in table.ops.items() if s.op == op and s.workload.precision == precision),
        key=lambda entry: entry[0].key,
    )
    specs = [s for s, _ in entries]
    features = kernel_features(
        op,
        [s.hidden for s in specs],
        [s.heads for s in specs],
        [s.ffn for s in specs],
        [s.workload.batch for s in specs],
        [s.workload.seq_len for s in specs],
        BYTES_PER_ELEMENT[precision],
        [s.width for s in specs],
    )
    return features.reshape(len(specs), len(kernel_feature_names(op))), np.array([t for _, t in entries])


@dataclass(frozen=True)
class _FlatForest:
    """All trees of one forest in flat arrays: leaves point to themselves (so a walk
    can step every row the same number of times) and read feature 0."""

    roots: np.ndarray
    left: np.ndarray
    right: np.ndarray
    feature: np.ndarray
    threshold: np.ndarray
    value: np.ndarray

    @classmethod
    def from_trees(cls, trees: list[dict[str, list]]) -> _FlatForest:  # type: ignore[type-arg]
        roots, left, right, feature, threshold, value = [], [], [], [], [], []
        offset = 0
        for tree in trees:
            lo = np.asarray(tree["children_left"], dtype=np.int64)
            ro = np.asarray(tree["children_right"], dtype=np.int64)
            leaf = lo < 0
            own = np.arange(len(lo), dtype=np.int64)
            roots.append(offset)
            left.append(np.where(leaf, own, lo) + offset)
            right.append(np.where(leaf, own, ro) + offset)
            feature.append(np.where(leaf, 0, np.asarray(tree["feature"], dtype=np.int64)))
            threshold.append(np.asarray(tree["threshold"], dtype=float))
            value.append(np.asarray(tree["value"], dtype=float))
            offset += len(lo)
        return cls(
            np.array(roots, dtype=np.int64),
            np.concatenate(left),
            np.concatenate(right),
            np.concatenate(feature),
            np.concatenate(threshold),
            np.concatenate(value),
        )

    def predict(self, features: np.ndarray) -> np.ndarray:
        """The forest's mean leaf value per row, as ``RandomForestRegressor.predict``.

        scikit-learn compares features as float32 with float64 thresholds and adds the
        trees' predictions one after another; both are mirrored so the results match it.
        """
        x = features.astype(np.float32).astype(float)
        rows = np.arange(len(x))[:, None]
        node = np.broadcast_to(self.roots, (len(x), len(self.roots)))
        while True:  # one step deeper for every (row, tree) at once; at most max depth + 1 times
            step = np.where(
                x[rows, self.feature[node]] <= self.threshold[node], self.left[node], self.right[node]
            )
            if np.array_equal(step, node):
                break
            node = step
        leaves = self.value[node]
        total = np.zeros(len(x))
        for t in range(leaves.shape[1]):
            total += leaves[:, t]
        return total / len(self.roots)


class NnMeterForestPredictor(LatencyPredictor):
    """nn-Meter's kernel-wise random forests, summed (Zhang et al., MobiSys 2021).

    One ``RandomForestRegressor`` per kernel type (the embedding and each operator of
    ``latbench.specs.LAYER_OPS``) is fitted on the lookup table's measured operators,
    with the kernel's dimensions, workload, FLOPs and bytes as features and its latency
    in seconds as the target (nn-Meter regresses kernel latency directly, not its log).
    An encoder's latency is the plain sum of its kernels' predictions, each times its
    count: as in nn-Meter there is no calibration on whole models, so the measured
    encoders only set the prediction interval (whose residuals are honestly held out,
    since the forests never see encoders). A forest cannot extrapolate: shapes beyond
    the table get the nearest measured latencies.
    """

    name = "nnmeter-rf"

    def __init__(self, n_estimators: int = 100) -> None:
        self.n_estimators = n_estimators

    def _fit(self, batch: EncoderBatch, y: np.ndarray, table: LatencyTable | None) -> None:
        if table is None or not table.ops:
            raise ValueError("nnmeter-rf needs a LatencyTable with operator measurements")
        self.precision_ = batch.precision
        self.forests_: dict[str, list[dict[str, list]]] = {}  # type: ignore[type-arg]
        for op in KERNELS:
            features, latency_s = kernel_training_set(table, op, self.precision_)
            if len(latency_s) == 0:
                raise ValueError(
                    f"the lookup table has no {self.precision_} {op} measurements; "
                    "nnmeter-rf needs every kernel type profiled"
                )
            forest = RandomForestRegressor(n_estimators=int(self.n_estimators), random_state=0)
            forest.fit(features, latency_s)
            self.forests_[op] = [export_tree(tree) for tree in forest.estimators_]
        self._build()

    def _build(self) -> None:
        self.flat_forests_ = {op: _FlatForest.from_trees(trees) for op, trees in self.forests_.items()}

    def predict_kernel(self, op: str, features: np.ndarray) -> np.ndarray:
        """Predicted latency (seconds) of ``op`` for rows of ``kernel_features``."""
        return self.flat_forests_[op].predict(features)

    def _fit_interval(
        self, batch: EncoderBatch, y: np.ndarray, table: LatencyTable | None
    ) -> tuple[float, float] | None:
        """The forests never see encoders, so their residuals on the training encoders are
        already out-of-sample: no cross-fitting (which would refit identical forests)."""
        if len(y) < MIN_INTERVAL_ENCODERS:
            return None
        residuals = np.log(y) - np.log(np.maximum(self._predict(batch).latency_s, 1e-12))
        return conformal_bounds(residuals, INTERVAL_COVERAGE)

    def _predict(self, batch: EncoderBatch) -> Prediction:
        if batch.precision != self.precision_:
            raise ValueError(
                f"nnmeter-rf was fitted on {self.precision_} operators and cannot predict "
                f"{batch.precision} encoders"
            )
        bpe = batch.bytes_per_element
        rows, index = batch.unique_embeddings()  # hidden, batch, seq_len, vocab_size
        zeros = np.zeros(len(rows), dtype=np.int64)
        features = kernel_features("embedding", rows[:, 0], zeros, zeros, rows[:, 1], rows[:, 2], bpe)
        total = self.predict_kernel("embedding", features)[index]
        rows, layer_index = batch.unique_layers()
        if len(rows):
            h, a, f, b, s, d = rows.T
            w = np.where(d > 0, a * d, h)  # attention width
            per_layer = np.zeros(len(rows))
            for op, count in LAYER_OPS:
                if op in ATTENTION_OPS:  # keyed by their width, as OpSpec.for_layer does
                    features = kernel_features(op, w, a, f, b, s, bpe)
                else:
                    features = kernel_features(op, h, a, f, b, s, bpe, w)
                per_layer += count * self.predict_kernel(op, features)
            padded = layer_index < 0
            total = total + np.where(padded, 0.0, per_layer[np.where(padded, 0, layer_index)]).sum(axis=1)
        return Prediction(total)

    def get_state(self) -> dict[str, Any]:
        return {**super().get_state(), "precision_": self.precision_, "forests_": self.forests_}

    def set_state(self, state: dict[str, Any]) -> LatencyPredictor:
        super().set_state(state)
        self.precision_ = str(state["precision_"])
        self.forests_ = {str(op): list(trees) for op, trees in state["forests_"].items()}
        self._build()
        return self


def export_tree(estimator: Any) -> dict[str, list]:  # type: ignore[type-arg]
    """A fitted scikit-learn regression tree's node arrays as JSON-able lists."""
    tree = estimator.tree_
    return {
        "children_left": tree.children_left.tolist(),
        "children_right": tree.children_right.tolist(),
        "feature": tree.feature.tolist(),
        "threshold": tree.threshold.tolist(),
        "value": tree.value[:, 0, 0].tolist(),
    }
