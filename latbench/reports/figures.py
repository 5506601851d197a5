"""The report's figures, drawn with matplotlib (Agg) into PNG files.

Each function takes plain data (no latbench objects), writes one PNG and returns nothing;
every figure has a title, axes labelled with their units and a legend. The parity plot
lives in ``latbench.reports.parity`` (``latbench evaluate`` draws it too).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

#: One colour per series, the same across figures (matplotlib's tab10).
COLORS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f")


def _pyplot():  # type: ignore[no-untyped-def]
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


@dataclass(frozen=True)
class Point:
    """A student on the accuracy–latency plane."""

    label: str
    accuracy: float
    latency_ms: float


@dataclass(frozen=True)
class ParetoPoint:
    """A Pareto student: search accuracy, final accuracy (when fully distilled), predicted
    latency with its interval and measured latency (when measured)."""

    label: str
    accuracy: float
    final_accuracy: float | None
    predicted_ms: float
    predicted_low_ms: float
    predicted_high_ms: float
    measured_ms: float | None


@dataclass(frozen=True)
class TeacherMark:
    label: str
    accuracy: float
    latency_ms: float
    measured: bool


def front_plot(
    path: str | Path,
    *,
    title: str,
    trials: Sequence[Point],
    rejected_ms: Sequence[float],
    pareto: Sequence[ParetoPoint],
    teacher: TeacherMark | None = None,
    budget_ms: float | None = None,
) -> None:
    """Every evaluated trial, the Pareto front as a staircase at predicted latency, each
    Pareto student's measured latency beside its prediction (joined by a line, with the
    prediction's 90% interval), the teacher and the latency budget. ``rejected_ms``: the
    predicted latencies of students rejected over the budget without training, drawn as
    crosses along the bottom edge (they have no accuracy)."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(8.0, 5.2), dpi=110)
    if trials:
        ax.scatter([p.latency_ms for p in trials], [p.accuracy for p in trials], s=18, color="0.6",
                   alpha=0.7, label=f"trials ({len(trials)})", zorder=2)  # fmt: skip
    if rejected_ms:
        from matplotlib.transforms import blended_transform_factory

        bottom = blended_transform_factory(ax.transData, ax.transAxes)
        ax.scatter(list(rejected_ms), [0.02] * len(rejected_ms), s=22, marker="x", color="0.45",
                   transform=bottom, label=f"rejected over the budget, untrained ({len(rejected_ms)})",
                   zorder=2)  # fmt: skip
    if pareto:
        ordered = sorted(pareto, key=lambda p: p.predicted_ms)
        xs, ys = [], []
        for p in ordered:  # the front as a staircase: each step holds until the next student
            if xs:
                xs.append(p.predicted_ms)
                ys.append(ys[-1])
            xs.append(p.predicted_ms)
            ys.append(p.accuracy)
        ax.plot(xs, ys, color=COLORS[0], linewidth=1.2, zorder=3)
        ax.errorbar(
            [p.predicted_ms for p in ordered],
            [p.accuracy for p in ordered],
            xerr=[
                [p.predicted_ms - p.predicted_low_ms for p in ordered],
                [p.predicted_high_ms - p.predicted_ms for p in ordered],
            ],
            fmt="o",
            color=COLORS[0],
            markersize=6,
            capsize=3,
            label="Pareto set, predicted latency (90% interval)",
            zorder=4,
        )
        measured = [p for p in ordered if p.measured_ms is not None]
        if measured:
            for p in measured:
                ax.plot([p.predicted_ms, p.measured_ms], [p.accuracy, p.accuracy], color=COLORS[1],
                        linewidth=0.8, linestyle=":", zorder=3)  # fmt: skip
            ax.scatter([p.measured_ms for p in measured], [p.accuracy for p in measured], s=40, marker="D",
                       color=COLORS[1], label="Pareto set, measured latency", zorder=5)  # fmt: skip
        finals = [p for p in ordered if p.final_accuracy is not None]
        if finals:
            ax.scatter(
                [p.measured_ms if p.measured_ms is not None else p.predicted_ms for p in finals],
                [p.final_accuracy for p in finals],
                s=40,
                marker="^",
                color=COLORS[2],
                label="Pareto set after full distillation",
                zorder=5,
            )
        for p in ordered:
            ax.annotate(p.label, (p.predicted_ms, p.accuracy), textcoords="offset points", xytext=(4, -11),
                        fontsize=7, color="0.25")  # fmt: skip
    if teacher is not None:
        how = "measured" if teacher.measured else "predicted"
        ax.scatter([teacher.latency_ms], [teacher.accuracy], s=160, marker="*", color=COLORS[3],
                   label=f"teacher {teacher.label} ({how})", zorder=6)  # fmt: skip
    if budget_ms is not None:
        ax.axvline(budget_ms, color=COLORS[3], linestyle="--", linewidth=1,
                   label=f"latency budget {budget_ms:g} ms")  # fmt: skip
    ax.set_xlabel("latency (ms)")
    ax.set_ylabel("accuracy (development set)")
    ax.set_title(title, fontsize=10)
    ax.grid(True, color="0.92")
    ax.legend(loc="lower right", fontsize=7)
    _save(plt, fig, path)


def hypervolume_plot(
    path: str | Path,
    *,
    title: str,
    curves: Mapping[str, Sequence[float]],
    reference: tuple[float, float],
) -> None:
    """Hypervolume after each evaluated trial, one line per search (this one first)."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 4.2), dpi=110)
    for (name, curve), color in zip(curves.items(), COLORS, strict=False):
        ax.plot(range(1, len(curve) + 1), curve, color=color, marker="o", markersize=3, linewidth=1.4,
                label=name)  # fmt: skip
    ax.set_xlabel("evaluated trials")
    ax.set_ylabel("hypervolume (accuracy × ms)")
    ax.set_title(f"{title}\nreference point: accuracy {reference[0]:g}, {reference[1]:.3g} ms", fontsize=10)
    ax.grid(True, color="0.92")
    ax.legend(loc="lower right", fontsize=8)
    _save(plt, fig, path)


def breakdown_plot(
    path: str | Path,
    *,
    title: str,
    students: Sequence[str],
    parts_ms: Sequence[Mapping[str, float]],
    measured_ms: Sequence[float | None],
) -> None:
    """Horizontal stacked bars: each student's latency split by operator, with its
    measured latency marked."""
    plt = _pyplot()
    names = list(dict.fromkeys(name for parts in parts_ms for name in parts))
    fig, ax = plt.subplots(figsize=(8.0, 0.9 + 0.45 * max(len(students), 1)), dpi=110)
    left = [0.0] * len(students)
    palette = [*COLORS, "#bcbd22", "#17becf"]
    for i, name in enumerate(names):
        widths = [parts.get(name, 0.0) for parts in parts_ms]
        ax.barh(students, widths, left=left, color=palette[i % len(palette)], label=name, height=0.6)
        left = [a + b for a, b in zip(left, widths, strict=True)]
    marked = [(s, m) for s, m in zip(students, measured_ms, strict=True) if m is not None]
    if marked:
        ax.scatter([m for _, m in marked], [s for s, _ in marked], marker="|", s=300, color="black",
                   label="measured", zorder=5)  # fmt: skip
    ax.invert_yaxis()
    ax.set_xlabel("latency (ms)")
    ax.set_ylabel("student")
    ax.set_title(title, fontsize=10)
    ax.legend(loc="center left", bbox_to_anchor=(1.01, 0.5), fontsize=7)
    _save(plt, fig, path)


def _save(plt: Any, fig: Any, path: str | Path) -> None:
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
