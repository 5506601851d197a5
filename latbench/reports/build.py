"""``latbench report``: search results and predictor evaluations → one HTML page + PNGs.

``build_report`` reads a search's ``search.json`` and/or a predictor evaluation's
``evaluation.json`` (``latbench.reports.results``), draws the figures (``latbench.reports.figures``) into
``out_dir`` and writes ``out_dir/report.html`` with the same images embedded, so the page
can be mailed or opened offline on its own while the PNGs serve slides and documents.

From a search: the accuracy–latency front (every trial, the Pareto set at predicted and
measured latency, the teacher, the budget), hypervolume against trials (beside baseline
searches such as random, when given), the Pareto students' per-operator latency
breakdown (from the predictor's lookup table, when it has one), a table of the Pareto
students, and provenance. From an evaluation: each split's parity plot and predictor
accuracy beside the noise floor.
"""

from __future__ import annotations

import datetime
import platform
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from latbench.arch import Arch, Workload
from latbench.errors import ConfigError
from latbench.files import atomic_output
from latbench.reports import figures
from latbench.reports import html as h
from latbench.reports.results import Results, read_results, read_search

REPORT_FILE = "report.html"


@dataclass(frozen=True)
class ReportFiles:
    html: Path
    images: tuple[Path, ...]
    notes: tuple[str, ...]  # what could not be shown, and why


def build_report(
    inputs: Sequence[str | Path],
    out_dir: str | Path,
    *,
    baselines: Sequence[str | Path] = (),
    title: str | None = None,
    command: Sequence[str] = (),
) -> ReportFiles:
    """Write the report of ``inputs`` (at most one search result and one evaluation)."""
    loaded = [read_results(p) for p in inputs]
    if not loaded:
        raise ConfigError("a report needs a search result or a predictor evaluation")
    searches = [r for r in loaded if r.kind == "search"]
    evaluations = [r for r in loaded if r.kind == "evaluation"]
    if len(searches) > 1 or len(evaluations) > 1:
        raise ConfigError(
            "give at most one search result and one evaluation (compare searches with --baseline)"
        )
    if baselines and not searches:
        raise ConfigError("--baseline compares searches: give a search result to compare it with")
    baseline_results = [read_search(p) for p in baselines]
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    body: list[str] = []
    images: list[Path] = []
    notes: list[str] = []
    search = searches[0] if searches else None
    evaluation = evaluations[0] if evaluations else None
    page_title = title or _title(search, evaluation)
    body.append(h.heading(1, page_title))
    stamp = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    body.append(h.paragraph(f"written by latbench on {stamp} from {', '.join(str(r.path) for r in loaded)}",
                            "lead"))  # fmt: skip
    if search is not None:
        body += _search_section(search, baseline_results, out, images, notes)
    if evaluation is not None:
        body += _evaluation_section(evaluation, out, images)
    body += _provenance(loaded, baseline_results, command)
    for note in notes:
        body.insert(2, h.paragraph(note, "note"))
    path = out / REPORT_FILE
    with atomic_output(path) as tmp:
        Path(tmp).write_text(h.page(page_title, body), encoding="utf-8")
    return ReportFiles(path, tuple(images), tuple(notes))


def _title(search: Results | None, evaluation: Results | None) -> str:
    if search is not None:
        doc = search.document
        target = doc["latency"].get("target", "?")
        return f"latbench search: {doc['space'].get('name', 'space')} on {target}"
    assert evaluation is not None
    return f"latbench predictor evaluation: {evaluation.document['target']}"


# --- search ----------------------------------------------------------------------------------
def _arch(data: Any) -> Arch | None:
    try:
        return Arch.from_dict(data) if isinstance(data, dict) else None
    except (ValueError, TypeError, KeyError):
        return None


def _label(row: dict[str, Any]) -> str:
    arch = _arch(row.get("arch"))
    return arch.short_label if arch is not None else f"trial {row['number']}"


def _evaluated(row: dict[str, Any]) -> bool:
    return row["state"] == "COMPLETE" and not row["skipped"]


def _num(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _fmt(value: Any, spec: str = ".3f") -> str:
    number = _num(value)
    return "" if number is None else format(number, spec)


def _workload(doc: dict[str, Any]) -> Workload | None:
    try:
        return Workload.from_dict(doc["latency"]["workload"])
    except (KeyError, TypeError, ValueError):
        return None


def _search_section(
    search: Results, baselines: list[Results], out: Path, images: list[Path], notes: list[str]
) -> list[str]:
    doc = search.document
    settings = doc["settings"]
    budget = _num(settings.get("budget_ms"))
    trials = [t for t in doc["trials"] if isinstance(t, dict)]
    evaluated = [t for t in trials if _evaluated(t)]
    workload = _workload(doc)
    target = doc["latency"].get("target", "?")
    where = f"batch {workload.batch}, sequence {workload.seq_len}" if workload else "the search's workload"
    parts = [h.heading(2, "Search", "search")]
    rejected_n = sum(1 for t in trials if t["skipped"])
    parts.append(
        h.paragraph(
            f"{doc['space'].get('name', 'space')}: {len(evaluated)} students evaluated with the "
            f"{settings.get('sampler', '?')} sampler, {rejected_n} rejected by the predictor without training"
            + (f", latency budget {budget:g} ms" if budget else "")
            + f"; latency of {target} at {where}, from the {doc['latency'].get('predictor', '?')} predictor."
        )
    )
    # the front
    teacher = _teacher_mark(doc.get("teacher"))
    pareto_rows = [p for p in doc["pareto"] if isinstance(p, dict)]
    pareto_numbers = {p["number"] for p in pareto_rows}
    points = [
        figures.Point(_label(t), float(t["accuracy"]), float(t["latency_ms"]))
        for t in evaluated
        if t["number"] not in pareto_numbers
        and _num(t.get("accuracy")) is not None
        and _num(t.get("latency_ms"))
    ]
    rejected = [float(t["latency_ms"]) for t in trials if t["skipped"] and _num(t.get("latency_ms"))]
    pareto = [_pareto_point(p) for p in pareto_rows]
    front_png = out / "front.png"
    figures.front_plot(
        front_png,
        title=f"Accuracy–latency front: {doc['space'].get('name', 'space')} on {target}",
        trials=points,
        rejected_ms=rejected,
        pareto=pareto,
        teacher=teacher,
        budget_ms=budget,
    )
    images.append(front_png)
    parts.append(
        h.image(
            front_png,
            "accuracy against latency of every trial and the Pareto set",
            "Grey: every evaluated student (proxy accuracy). Blue: the Pareto set at predicted latency "
            "with the predictor's 90% interval; orange diamonds: the same students measured on the target; "
            "green triangles: their accuracy after full distillation. Red star: the teacher. Dashed: the "
            "latency budget.",
        )
    )
    # hypervolume
    curves = {f"{settings.get('sampler', 'search')} (this search)": _per_evaluated(doc)}
    for b in baselines:
        bdoc = b.document
        if [float(v) for v in bdoc["reference"]] != [float(v) for v in doc["reference"]]:
            notes.append(
                f"baseline {b.path} has another reference point ({bdoc['reference']}); its hypervolume "
                "is not comparable and is left out"
            )
            continue
        name = f"{bdoc['settings'].get('sampler', 'search')} (baseline)"
        while name in curves:
            name += "'"
        curves[name] = _per_evaluated(bdoc)
    hv_png = out / "hypervolume.png"
    ref = (float(doc["reference"][0]), float(doc["reference"][1]))
    figures.hypervolume_plot(
        hv_png, title="Hypervolume against evaluated trials", curves=curves, reference=ref
    )
    images.append(hv_png)
    caption = "Area dominated by the front, bounded by the reference point; higher is better."
    if len(curves) == 1:
        caption += " No baseline search was given (latbench report --baseline RANDOM/search.json)."
    parts.append(h.image(hv_png, "hypervolume against the number of evaluated trials", caption))
    rows = []
    for name, curve in curves.items():
        rows.append([name, len(curve), _fmt(curve[-1] if curve else None, ".4g")])
    parts.append(h.table(["search", "evaluated trials", "final hypervolume"], rows))
    # the Pareto table
    parts.append(h.heading(3, f"Pareto set ({len(pareto_rows)} students)"))
    parts.append(h.table(*_pareto_table(pareto_rows, workload, doc.get("teacher")), text_columns=2))
    # breakdown
    parts += _breakdown(search, pareto_rows, workload, out, images, notes)
    return parts


def _per_evaluated(doc: dict[str, Any]) -> list[float]:
    """Hypervolume after each evaluated trial (over-budget trials cost nothing and are skipped)."""
    rows = sorted((t for t in doc["trials"] if isinstance(t, dict)), key=lambda t: t["number"])
    curve = [float(v) for v in doc["hypervolume"]]
    if len(curve) != len(rows):
        return curve
    return [v for t, v in zip(rows, curve, strict=True) if _evaluated(t)]


def _teacher_mark(data: Any) -> figures.TeacherMark | None:
    if not isinstance(data, dict) or _num(data.get("accuracy")) is None:
        return None
    arch = _arch(data.get("arch"))
    measured = data.get("measured") if isinstance(data.get("measured"), dict) else None
    predicted = data.get("predicted") if isinstance(data.get("predicted"), dict) else None
    source = measured or predicted
    if source is None or _num(source.get("ms")) is None:
        return None
    label = arch.short_label if arch else "teacher"
    return figures.TeacherMark(label, float(data["accuracy"]), float(source["ms"]), measured is not None)


def _measured_ms(row: dict[str, Any]) -> float | None:
    final = row.get("final_latency")
    if isinstance(final, dict) and _num(final.get("ms")) is not None:
        return float(final["ms"])
    return _num(row.get("measured_ms"))


def _pareto_point(row: dict[str, Any]) -> figures.ParetoPoint:
    predicted = _num(row.get("predicted_ms")) or float(row["latency_ms"])
    final = row.get("final") if isinstance(row.get("final"), dict) else None
    return figures.ParetoPoint(
        label=_label(row),
        accuracy=float(row["accuracy"]),
        final_accuracy=_num(final.get("accuracy")) if final else None,
        predicted_ms=predicted,
        predicted_low_ms=_num(row.get("predicted_low_ms")) or predicted,
        predicted_high_ms=_num(row.get("predicted_high_ms")) or predicted,
        measured_ms=_measured_ms(row),
    )


def _typical_and_tail(latency: dict[str, Any]) -> str:
    """A measurement's median and 90th percentile beside its latency figure (the minimum):
    what a loaded machine does. Empty for estimates written before they were kept."""
    median, p90 = _num(latency.get("median_ms")), _num(latency.get("p90_ms"))
    return "" if median is None or p90 is None else f"{median:.3f} · {p90:.3f}"


def _pareto_table(
    rows: list[dict[str, Any]], workload: Workload | None, teacher: Any
) -> tuple[list[str], list[list[object]]]:
    header = [
        "trial", "student", "params (M)", "GFLOPs", "predicted ms [90%]", "measured ms (IQR)",
        "median · p90 ms", "error", "proxy acc.", "final acc.", "label loyalty", "INT8 acc.", "INT8 loyalty",
    ]  # fmt: skip
    body: list[list[object]] = []
    for row in rows:
        arch = _arch(row.get("arch"))
        final = row.get("final") if isinstance(row.get("final"), dict) else {}
        metrics = final.get("metrics", {}) if isinstance(final.get("metrics"), dict) else {}
        measured = _measured_ms(row)
        final_latency = row.get("final_latency") if isinstance(row.get("final_latency"), dict) else {}
        iqr = _num(final_latency.get("iqr_ms")) if final_latency else _num(row.get("measured_iqr_ms"))
        predicted = _num(row.get("predicted_ms"))
        body.append([
            row["number"],
            _label(row),
            f"{arch.params / 1e6:.3f}" if arch else "",
            f"{arch.flops(workload) / 1e9:.3f}" if arch and workload else "",
            "" if predicted is None else
            f"{predicted:.3f} [{_fmt(row.get('predicted_low_ms'))}–{_fmt(row.get('predicted_high_ms'))}]",
            "" if measured is None else f"{measured:.3f}" + (f" ({iqr:.3f})" if iqr is not None else ""),
            _typical_and_tail(final_latency),
            "" if measured is None or predicted is None else f"{(predicted / measured - 1) * 100:+.1f}%",
            _fmt(row.get("accuracy")),
            _fmt(final.get("accuracy")),
            _fmt(metrics.get("label_loyalty")),
            _fmt(metrics.get("int8_accuracy")),
            _fmt(metrics.get("int8_label_loyalty")),
        ])  # fmt: skip
    if isinstance(teacher, dict):
        arch = _arch(teacher.get("arch"))
        predicted = teacher.get("predicted") if isinstance(teacher.get("predicted"), dict) else {}
        measured = teacher.get("measured") if isinstance(teacher.get("measured"), dict) else {}
        p_ms, m_ms = _num(predicted.get("ms")), _num(measured.get("ms"))
        body.append([
            "teacher",
            arch.short_label if arch else "",
            f"{arch.params / 1e6:.3f}" if arch else "",
            f"{arch.flops(workload) / 1e9:.3f}" if arch and workload else "",
            "" if p_ms is None else f"{p_ms:.3f}",
            "" if m_ms is None else f"{m_ms:.3f}" + (f" ({_fmt(measured.get('iqr_ms'))})"
                                                     if _num(measured.get("iqr_ms")) is not None else ""),
            _typical_and_tail(measured),
            "" if p_ms is None or m_ms is None else f"{(p_ms / m_ms - 1) * 100:+.1f}%",
            _fmt(teacher.get("accuracy")), "", "", "", "",
        ])  # fmt: skip
    return header, body


def _breakdown(
    search: Results,
    rows: list[dict[str, Any]],
    workload: Workload | None,
    out: Path,
    images: list[Path],
    notes: list[str],
) -> list[str]:
    from latbench.predictors.breakdown import operator_times, predictor_table, scaled_to
    from latbench.predictors.io import load_predictor

    archs = [(_label(r), _arch(r.get("arch")), _num(r.get("predicted_ms")), _measured_ms(r)) for r in rows]
    # a student priced at zero (a file from before predictors kept a non-negative offset)
    # has no shares to split: it is left out of the breakdown
    archs = [a for a in archs if a[1] is not None and a[2] is not None and a[2] > 0]
    if not archs or workload is None:
        return []
    saved = Path(str(search.document["latency"].get("predictor_file", "")))
    candidates = [saved, search.path.parent / saved.name] if saved.name else []
    found = next((p for p in candidates if p.is_file()), None)
    if found is None:
        notes.append(f"no per-operator breakdown: the predictor file {saved} is not here")
        return []
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a fingerprint mismatch does not matter for shares
        table = predictor_table(load_predictor(found).predictor)
    if table is None:
        notes.append(f"no per-operator breakdown: predictor {found.name} keeps no lookup table of operators")
        return []
    labels, parts, measured, raw_ratio = [], [], [], []
    try:
        for label, arch, predicted, m in archs:
            assert arch is not None and predicted is not None
            times = operator_times(table, arch, workload)
            raw_ratio.append(sum(times.values()) * 1e3 / predicted)
            parts.append({k: v * 1e3 for k, v in scaled_to(times, predicted / 1e3).items()})
            labels.append(label)
            measured.append(m)
    except ValueError as exc:
        notes.append(f"no per-operator breakdown: {exc}")
        return []
    path = out / "breakdown.png"
    figures.breakdown_plot(path, title="Where the Pareto students' time goes (predicted, by operator)",
                           students=labels, parts_ms=parts, measured_ms=measured)  # fmt: skip
    images.append(path)
    low, high = min(raw_ratio), max(raw_ratio)
    caption = (
        "Each bar is a student's predicted latency split by operator, in the shares of the measured "
        f"operators in the predictor's lookup table ({found.name}); the black tick is the measured "
        f"latency. Unscaled, the operators add up to {low:.0%}–{high:.0%} of the prediction: the rest is "
        "what fused blocks save or the glue between operators costs."
    )
    header = ["student", *parts[0].keys()]
    body = [[label, *(f"{v:.3f}" for v in p.values())] for label, p in zip(labels, parts, strict=True)]
    return [
        h.heading(3, "Latency breakdown"),
        h.image(path, "stacked bars of per-operator latency of the Pareto students", caption),
        h.paragraph("Predicted milliseconds per operator:"),
        h.table(header, body),
    ]


# --- evaluation ------------------------------------------------------------------------------
_ACCURACY_COLUMNS = (
    ("n", "n", "d"),
    ("within_5pct", "±5%", "%"),
    ("within_10pct", "±10%", "%"),
    ("mape_pct", "MAPE %", ".1f"),
    ("rmspe_pct", "RMSPE %", ".1f"),
    ("kendall_tau", "Kendall τ", ".3f"),
    ("p95_error_pct", "p95 error %", ".1f"),
    ("median_error_pct", "bias %", "+.1f"),
)


def _cell(value: Any, spec: str) -> str:
    number = _num(value)
    if number is None:
        return ""
    if spec == "%":
        return f"{number * 100:.1f}%"
    if spec == "d":
        return str(int(number))
    return format(number, spec)


def _evaluation_section(evaluation: Results, out: Path, images: list[Path]) -> list[str]:
    from latbench.reports.parity import parity_plot

    doc = evaluation.document
    parts = [h.heading(2, "Latency predictors", "predictors")]
    parts.append(h.paragraph(f"Target {doc['target']}: each predictor fitted on one share of the measured "
                             "encoders and scored on the rest, beside the noise floor (the same encoders "
                             "measured twice)."))  # fmt: skip
    for name, split in doc["splits"].items():
        floor = split.get("noise_floor") if isinstance(split.get("noise_floor"), dict) else None
        scored = {p: s for p, s in split["predictors"].items() if isinstance(s, dict) and s.get("accuracy")}
        measured = [float(v) for v in split["measured_ms"]]
        parts.append(h.heading(3, f"{name} split: {split.get('test', len(measured))} held-out encoders"))
        if scored and measured:
            path = out / f"parity-{_safe(name)}.png"
            floor_text = (
                f"noise floor: median {floor['median_pct']:.1f}%, ±10%: {floor['within_10pct'] * 100:.1f}%"
                if floor and _num(floor.get("median_pct")) is not None
                else "noise floor: not measured"
            )
            parity_plot(measured, {p: s["predicted_ms"] for p, s in scored.items()}, path,
                        title=f"{doc['target']}\n{name} split", noise_floor_text=floor_text)  # fmt: skip
            images.append(path)
            parts.append(h.image(path, f"predicted against measured latency, {name} split",
                                 "Predicted against measured latency (log axes); grey: ±10% of the "
                                 "measurement."))  # fmt: skip
        header = ["predictor", *(title for _, title, _ in _ACCURACY_COLUMNS), "note"]
        rows: list[list[object]] = []
        if floor:
            rows.append(["noise floor (re-measured)", _cell(floor.get("n"), "d"), "",
                         _cell(floor.get("within_10pct"), "%"), _cell(floor.get("mape_pct"), ".1f"),
                         "", "", "", "", f"median {_fmt(floor.get('median_pct'), '.1f')}%, "
                         f"p90 {_fmt(floor.get('p90_pct'), '.1f')}%"])  # fmt: skip
        for predictor, s in split["predictors"].items():
            if not isinstance(s, dict):
                continue
            acc = s.get("accuracy") if isinstance(s.get("accuracy"), dict) else None
            if acc is None:
                rows.append(
                    [predictor, *([""] * len(_ACCURACY_COLUMNS)), f"not fitted: {s.get('error', '')}"]
                )
                continue
            extra = f"{s['extrapolated']} extrapolated" if s.get("extrapolated") else ""
            rows.append([predictor, *(_cell(acc.get(k), spec) for k, _, spec in _ACCURACY_COLUMNS), extra])
        parts.append(h.table(header, rows))
    return parts


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in name) or "split"


# --- provenance ------------------------------------------------------------------------------
def _provenance(loaded: list[Results], baselines: list[Results], command: Sequence[str]) -> list[str]:
    parts = [h.heading(2, "Provenance", "provenance")]
    for r in [*loaded, *baselines]:
        doc = r.document
        items: list[tuple[str, object]] = [("file", r.path)]
        if doc.get("command"):
            items.append(("command", " ".join(map(str, doc["command"]))))
        if doc.get("latbench"):
            items.append(("latbench", doc["latbench"]))
        for lib, version in (doc.get("libraries") or {}).items():
            items.append((lib, version))
        if r.kind == "search":
            items += [("study", doc.get("study")), ("storage", doc.get("storage"))]
            items += [(f"setting {k}", v) for k, v in doc["settings"].items()]
            items += [(f"objective {k}", v) for k, v in doc["objective"].items() if k != "teacher_arch"]
            latency = doc["latency"]
            items += [(f"latency {k}", v) for k, v in latency.items() if k != "fingerprint"]
            fingerprint = latency.get("fingerprint") or {}
            measured = doc.get("measured") or {}
            if measured:
                items += [(f"measured {k}", v) for k, v in measured.items() if k != "fingerprint"]
                fingerprint = measured.get("fingerprint") or fingerprint
        else:
            items += [("target", doc["target"])]
            items += [(f"setting {k}", v) for k, v in (doc.get("settings") or {}).items()]
            fingerprint = doc.get("fingerprint") or {}
        items += [(f"fingerprint {k}", v) for k, v in fingerprint.items()]
        parts.append(
            h.heading(3, f"{'Baseline search' if r in baselines else r.kind.capitalize()}: {r.path.name}")
        )
        parts.append(h.facts(items))
    report_items: list[tuple[str, object]] = [("python", platform.python_version())]
    if command:
        report_items.insert(0, ("command", " ".join(command)))
    parts.append(h.heading(3, "This report"))
    parts.append(h.facts(report_items))
    return parts
