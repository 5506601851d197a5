"""Parity plot: predicted against measured latency, with the ±10% band."""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from pathlib import Path


def parity_plot(
    measured_ms: Sequence[float],
    predicted_ms: Mapping[str, Sequence[float]],
    path: str | Path,
    *,
    title: str,
    noise_floor_text: str = "",
) -> None:
    """Write a PNG: one marker series per predictor, the identity line and ±10% band."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 6.0), dpi=110)
    # log axes: a predictor's zero or negative prediction is off the plot, not its lower limit
    values = [v for series in predicted_ms.values() for v in series if v > 0] + list(measured_ms)
    lo, hi = min(values) * 0.8, max(values) * 1.25
    line = [lo, hi]
    ax.plot(line, line, color="black", linewidth=1, label="predicted = measured")
    ax.fill_between(line, [v * 0.9 for v in line], [v * 1.1 for v in line], color="0.85", label="±10%")
    for (name, series), marker in zip(predicted_ms.items(), itertools.cycle("osD^v<>Ph*X"), strict=False):
        ax.scatter(measured_ms, series, s=22, marker=marker, alpha=0.8, label=name)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlim(lo, hi)
    ax.set_ylim(lo, hi)
    from matplotlib.ticker import FuncFormatter, NullFormatter

    plain = FuncFormatter(lambda v, _: f"{v:g}")
    for axis in (ax.xaxis, ax.yaxis):
        axis.set_major_formatter(plain)
        # minor labels help within a decade or so, and collide over several
        axis.set_minor_formatter(plain if hi / lo < 30 else NullFormatter())
    ax.tick_params(which="minor", labelsize=7)
    ax.set_xlabel("measured latency (ms)")
    ax.set_ylabel("predicted latency (ms)")
    ax.set_title(title, fontsize=10)
    if noise_floor_text:
        ax.text(0.02, 0.98, noise_floor_text, transform=ax.transAxes, va="top", fontsize=8)
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
