"""The drift report of one window: a self-contained HTML page and a PNG summary.

For humans reading an alert and for the MLflow run of a retraining: per feature, the
reference and current distributions over the reference's bins beside the test that judged
them, and the model's performance against its reference. Plots are drawn with matplotlib's
Agg canvas on `Figure` objects (no pyplot, no global backend state); the only files written
are the two in the directory the caller names.
"""

from __future__ import annotations

import base64
import html
import io
import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from driftline.schemas.events import FeatureResult, MetricResult

if TYPE_CHECKING:
    from driftline.stream.windows import WindowResult

__all__ = [
    "HTML_NAME",
    "PNG_NAME",
    "FeatureView",
    "ReportFiles",
    "feature_views",
    "render_report",
    "render_window_report",
]

HTML_NAME = "drift_report.html"
PNG_NAME = "drift_summary.png"
_REFERENCE_COLOUR, _CURRENT_COLOUR = "#4c72b0", "#dd8452"


@dataclass(frozen=True)
class FeatureView:
    """What the report shows of one feature: its binned distributions and its test result.

    Parameters
    ----------
    name : feature name (or ``"prediction"``).
    kind : "numeric" or "categorical".
    labels : one name per bin (e.g. ``"[0.5, 1.2)"`` or a category).
    reference_counts, current_counts : counts per bin, aligned with ``labels``.
    result : the test that judged the feature on this window.
    others : further evidence on the feature (e.g. PSI, Jensen-Shannon), shown in the table.

    Examples
    --------
    >>> result = FeatureResult(feature="age", test="ks", statistic=0.2, p_value=0.001, threshold=0.05,
    ...                        drifted=True, n_reference=100, n_current=100)
    >>> FeatureView("age", "numeric", ["< 30", ">= 30"], [60, 40], [35, 65], result).current_share().tolist()
    [0.35, 0.65]
    """

    name: str
    kind: str
    labels: Sequence[str]  # stored as tuples, so a view is immutable and hashable
    reference_counts: Sequence[float]
    current_counts: Sequence[float]
    result: FeatureResult
    others: Sequence[FeatureResult] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "others", tuple(self.others))
        object.__setattr__(self, "labels", tuple(str(label) for label in self.labels))
        object.__setattr__(self, "reference_counts", tuple(float(c) for c in self.reference_counts))
        object.__setattr__(self, "current_counts", tuple(float(c) for c in self.current_counts))
        if not len(self.labels) == len(self.reference_counts) == len(self.current_counts):
            raise ValueError(
                f"feature {self.name!r}: {len(self.labels)} labels, {len(self.reference_counts)} reference and "
                f"{len(self.current_counts)} current counts; they must align"
            )
        if any(c < 0 for c in (*self.reference_counts, *self.current_counts)):
            raise ValueError(f"feature {self.name!r}: counts must be >= 0")

    def reference_share(self) -> np.ndarray:
        """Reference counts as shares of their total (zeros when empty)."""
        return _shares(self.reference_counts)

    def current_share(self) -> np.ndarray:
        """Current counts as shares of their total (zeros when empty)."""
        return _shares(self.current_counts)

    def drift_rank(self) -> tuple[bool, float, float]:
        """Sort key, most drifted first: drifted, then smallest p-value, then largest score."""
        p_value = self.result.p_adjusted if self.result.p_adjusted is not None else self.result.p_value
        score = self.result.score if self.result.score is not None else self.result.statistic
        return (not self.result.drifted, 1.0 if p_value is None else p_value, -score)


@dataclass(frozen=True)
class ReportFiles:
    """The files of one report."""

    html: Path
    png: Path


def _shares(counts: Sequence[float]) -> np.ndarray:
    values = np.asarray(counts, dtype=np.float64)
    total = values.sum()
    return values / total if total > 0 else np.zeros_like(values)


def _number(value: float | None, digits: int = 3) -> str:
    return "—" if value is None else f"{value:.{digits}g}"


def _utc(ts: float) -> str:
    return datetime.fromtimestamp(ts, tz=UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _draw_feature(axes: Axes, feature: FeatureView) -> None:
    positions = np.arange(len(feature.labels))
    axes.bar(positions - 0.2, feature.reference_share(), width=0.4, color=_REFERENCE_COLOUR, label="reference")
    axes.bar(positions + 0.2, feature.current_share(), width=0.4, color=_CURRENT_COLOUR, label="current")
    axes.set_xticks(positions, feature.labels, rotation=45, ha="right", fontsize=7)
    axes.set_ylabel("share")
    verdict = "DRIFT" if feature.result.drifted else "ok"
    p_value = feature.result.p_adjusted if feature.result.p_adjusted is not None else feature.result.p_value
    axes.set_title(
        f"{feature.name} ({feature.kind}) — {feature.result.test} {verdict}, p={_number(p_value)}", fontsize=9
    )
    axes.legend(fontsize=7)


def _draw_metrics(axes: Axes, metrics: Sequence[MetricResult]) -> None:
    positions = np.arange(len(metrics))
    for offset, values, colour, label in (
        (0.2, [m.reference for m in metrics], _REFERENCE_COLOUR, "reference"),
        (-0.2, [m.current for m in metrics], _CURRENT_COLOUR, "current"),
    ):
        axes.bar_label(axes.barh(positions + offset, values, height=0.4, color=colour, label=label), fmt="%.3g",
                       fontsize=7)
    axes.set_yticks(positions, [f"{m.metric}{' (dropped)' if m.dropped else ''}" for m in metrics], fontsize=8)
    axes.set_title("model performance", fontsize=9)
    axes.legend(fontsize=7)


def _png_bytes(figure: Figure) -> bytes:
    FigureCanvasAgg(figure)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=90)
    return buffer.getvalue()


def _feature_png(feature: FeatureView) -> bytes:
    figure = Figure(figsize=(6.0, 3.2), layout="constrained")
    _draw_feature(figure.add_subplot(), feature)
    return _png_bytes(figure)


def _summary_png(
    model: str, window: str, features: Sequence[FeatureView], metrics: Sequence[MetricResult], panels: int
) -> bytes:
    shown: list[FeatureView | Sequence[MetricResult]] = list(features[:panels])
    if metrics:
        shown.append(metrics)
    columns = min(3, max(1, len(shown)))
    rows = max(1, math.ceil(len(shown) / columns))
    figure = Figure(figsize=(5.0 * columns, 3.4 * rows + 0.6), layout="constrained")
    figure.suptitle(f"{model}: {window}", fontsize=11)
    grid = figure.subplots(rows, columns, squeeze=False)
    for axes, item in zip(grid.flat, shown, strict=False):
        if isinstance(item, FeatureView):
            _draw_feature(axes, item)
        else:
            _draw_metrics(axes, item)
    for axes in grid.flat[len(shown) :]:
        axes.set_axis_off()
    if not shown:
        grid.flat[0].text(0.5, 0.5, "no features or metrics in this window", ha="center", va="center")
    return _png_bytes(figure)


def _feature_table(features: Sequence[FeatureView]) -> str:
    header = (
        "<tr><th>feature</th><th>kind</th><th>test</th><th>statistic</th><th>p-value</th><th>p adjusted</th>"
        "<th>score</th><th>threshold</th><th>drifted</th><th>n reference</th><th>n current</th><th>other evidence</th>"
        "</tr>"
    )
    rows = []
    for feature in features:
        r = feature.result
        others = ", ".join(
            f"{html.escape(o.test)} {_number(o.score if o.score is not None else o.statistic)}"
            f"{' (drifted)' if o.drifted else ''}"
            for o in feature.others
        )
        rows.append(
            f"<tr class=\"{'drift' if r.drifted else 'ok'}\"><td>{html.escape(feature.name)}</td>"
            f"<td>{html.escape(feature.kind)}</td><td>{html.escape(r.test)}</td><td>{_number(r.statistic)}</td>"
            f"<td>{_number(r.p_value)}</td><td>{_number(r.p_adjusted)}</td><td>{_number(r.score)}</td>"
            f"<td>{_number(r.threshold)}</td><td>{'yes' if r.drifted else 'no'}</td>"
            f"<td>{r.n_reference}</td><td>{r.n_current}</td><td>{others}</td></tr>"
        )
    return f"<table>{header}{''.join(rows)}</table>"


def _metric_table(metrics: Sequence[MetricResult]) -> str:
    header = (
        "<tr><th>metric</th><th>reference</th><th>current</th><th>relative drop</th><th>test</th>"
        "<th>p-value</th><th>interval</th><th>dropped</th><th>n</th></tr>"
    )
    rows = [
        f"<tr class=\"{'drift' if m.dropped else 'ok'}\"><td>{html.escape(m.metric)}</td>"
        f"<td>{_number(m.reference, 4)}</td><td>{_number(m.current, 4)}</td><td>{m.relative_drop:.1%}</td>"
        f"<td>{html.escape(m.significance_test)}</td><td>{_number(m.p_value)}</td>"
        f"<td>[{_number(m.ci_low, 4)}, {_number(m.ci_high, 4)}]</td><td>{'yes' if m.dropped else 'no'}</td>"
        f"<td>{m.n}</td></tr>"
        for m in metrics
    ]
    return f"<table>{header}{''.join(rows)}</table>"


_STYLE = """
body { font-family: sans-serif; margin: 2em; color: #222; }
table { border-collapse: collapse; margin: 1em 0; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 0.3em 0.6em; text-align: right; }
th:first-child, td:first-child { text-align: left; }
tr.drift td { background: #fde2e1; }
img { max-width: 100%; }
"""


def render_report(
    model: str,
    window_start: float,
    window_end: float,
    features: Sequence[FeatureView],
    metrics: Sequence[MetricResult],
    out_dir: Path,
    *,
    summary_panels: int = 6,
) -> ReportFiles:
    """Write the drift report of one window: ``drift_report.html`` and ``drift_summary.png`` in ``out_dir``.

    The HTML page is self-contained (plots embedded as base64 PNG): a summary, the table of
    feature tests and of performance metrics, then one plot per feature, most drifted first.
    The PNG shows the ``summary_panels`` most drifted features and the performance panel.

    Parameters
    ----------
    model : model name.
    window_start, window_end : the window ``[start, end)`` in event-time epoch seconds.
    features : one view per tested feature (and the prediction).
    metrics : concept drift results of the window (may be empty).
    out_dir : directory to write into; created if missing.
    summary_panels : features shown in the PNG summary.

    Examples
    --------
    >>> import tempfile
    >>> rng = np.random.default_rng(0)
    >>> result = FeatureResult(feature="amount", test="ks", statistic=0.31, p_value=2e-6, threshold=0.05,
    ...                        drifted=True, n_reference=400, n_current=400)
    >>> view = FeatureView("amount", "numeric", ["low", "mid", "high"], rng.multinomial(400, [0.3, 0.4, 0.3]),
    ...                    rng.multinomial(400, [0.1, 0.4, 0.5]), result)
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     files = render_report("fraud", 0.0, 3600.0, [view], [], Path(tmp))
    ...     print(files.html.name, files.png.name, "amount" in files.html.read_text())
    drift_report.html drift_summary.png True
    """
    if window_end < window_start:
        raise ValueError(f"window_end {window_end} is before window_start {window_start}")
    if summary_panels < 1:
        raise ValueError(f"summary_panels must be >= 1, got {summary_panels}")
    ranked = sorted(features, key=FeatureView.drift_rank)
    window = f"{_utc(window_start)} – {_utc(window_end)}"
    n_drifted = sum(f.result.drifted for f in ranked)
    n_dropped = sum(m.dropped for m in metrics)
    plots = "".join(
        f"<h3>{html.escape(f.name)}</h3><img alt=\"{html.escape(f.name)}\" src=\"data:image/png;base64,"
        f"{base64.b64encode(_feature_png(f)).decode()}\">"
        for f in ranked
    )
    page = (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        f"<title>Drift report: {html.escape(model)}</title><style>{_STYLE}</style></head><body>"
        f"<h1>Drift report: {html.escape(model)}</h1>"
        f"<p>Window {html.escape(window)} (event time, [start, end)). "
        f"{n_drifted} of {len(ranked)} features drifted; {n_dropped} of {len(metrics)} performance metrics dropped.</p>"
        f"<h2>Feature tests</h2>{_feature_table(ranked)}"
        f"<h2>Model performance</h2>{_metric_table(metrics) if metrics else '<p>No labeled rows tested.</p>'}"
        f"<h2>Distributions, reference vs current</h2>{plots}"
        "</body></html>\n"
    )
    out_dir.mkdir(parents=True, exist_ok=True)
    files = ReportFiles(html=out_dir / HTML_NAME, png=out_dir / PNG_NAME)
    files.html.write_text(page, encoding="utf-8")
    files.png.write_bytes(_summary_png(model, window, ranked, metrics, summary_panels))
    return files


def feature_views(window: WindowResult) -> list[FeatureView]:
    """The views of a `driftline.stream.windows.WindowResult`: every feature with a histogram and a primary test.

    Features the window did not test (too few events, no value seen) are left out; the
    table of the report says how many were tested.
    """
    primary = {result.feature: result for result in window.data.primary()}
    others: dict[str, list[FeatureResult]] = {}
    for result in window.data.results:
        if primary.get(result.feature) is not result:
            others.setdefault(result.feature, []).append(result)
    return [
        FeatureView(name, histogram.kind, histogram.labels, histogram.reference_counts, histogram.current_counts,
                    primary[name], tuple(others.get(name, ())))
        for name, histogram in sorted(window.histograms.items())
        if name in primary
    ]


def render_window_report(window: WindowResult, out_dir: Path, *, summary_panels: int = 6) -> ReportFiles:
    """`render_report` of one evaluated window (features with their histograms, concept metrics)."""
    return render_report(window.model, window.window_start, window.window_end, feature_views(window),
                         window.concept, out_dir, summary_panels=summary_panels)
