"""Window results as Prometheus series, with bounded label cardinality.

Per-feature series (score and p-value per test) exist only for the top-N features of a model
by drift score in its last window; the others are folded into ``feature="_other"`` (highest
score, lowest p-value). Series of features that left the top N are removed, so a model never
holds more than N + 1 feature label values.
"""

from __future__ import annotations

import contextlib
from collections import defaultdict

from driftline.consumers.common.metrics import OTHER_FEATURES, Metrics
from driftline.schemas.events import FeatureResult
from driftline.stream.windows import WindowResult

__all__ = ["DriftExporter"]


def _score(result: FeatureResult) -> float:
    return result.score if result.score is not None else result.statistic


class DriftExporter:
    """Sets the monitor's per-window gauges and counters from each `WindowResult`."""

    def __init__(self, metrics: Metrics, *, top_n: int) -> None:
        if top_n < 1:
            raise ValueError(f"top_n must be >= 1, got {top_n}")
        self.metrics = metrics
        self.top_n = top_n
        self._series: dict[str, set[tuple[str, str]]] = defaultdict(set)  # model -> {(feature, test)}

    def export(self, result: WindowResult, elapsed_s: float) -> None:
        m, model = self.metrics, result.model
        m.windows_evaluated.labels(model=model).inc()
        m.window_evaluation_seconds.labels(model=model).observe(elapsed_s)
        m.window_samples.labels(model=model, kind="data").set(result.n_events)
        m.window_samples.labels(model=model, kind="labeled").set(result.n_labeled)
        m.drift_ratio.labels(model=model, kind="data").set(result.data.drift_ratio)
        if result.prediction:
            share = sum(r.drifted for r in result.prediction) / len(result.prediction)
            m.drift_ratio.labels(model=model, kind="prediction").set(share)
        for metric in result.concept:
            m.window_metric.labels(model=model, metric=metric.metric).set(metric.current)
        self._export_features(model, [*result.data.results, *result.prediction])

    def _export_features(self, model: str, results: list[FeatureResult]) -> None:
        by_feature: dict[str, list[FeatureResult]] = defaultdict(list)
        for result in results:
            by_feature[result.feature].append(result)
        ranked = sorted(by_feature, key=lambda f: (-max(_score(r) for r in by_feature[f]), f))
        kept = set(ranked[: self.top_n])
        folded: dict[str, tuple[float, float | None]] = {}  # test -> (max score, min p)
        series: set[tuple[str, str]] = set()
        for feature, feature_results in by_feature.items():
            for r in feature_results:
                p_value = r.p_adjusted if r.p_adjusted is not None else r.p_value
                if feature in kept:
                    self._set(model, feature, r.test, _score(r), p_value)
                    series.add((feature, r.test))
                else:
                    score, low_p = folded.get(r.test, (float("-inf"), None))
                    if p_value is not None:
                        low_p = p_value if low_p is None else min(low_p, p_value)
                    folded[r.test] = (max(score, _score(r)), low_p)
        for test, (score, low_p) in folded.items():
            self._set(model, OTHER_FEATURES, test, score, low_p)
            series.add((OTHER_FEATURES, test))
        for feature, test in self._series[model] - series:
            for gauge in (self.metrics.feature_drift_score, self.metrics.feature_p_value):
                with contextlib.suppress(KeyError):  # a test without p-value has no p-value series
                    gauge.remove(model, feature, test)
        self._series[model] = series

    def _set(self, model: str, feature: str, test: str, score: float, p_value: float | None) -> None:
        self.metrics.feature_drift_score.labels(model=model, feature=feature, test=test).set(score)
        if p_value is not None:
            self.metrics.feature_p_value.labels(model=model, feature=feature, test=test).set(p_value)
