"""MonitorHandler without Kafka: watermark over all sources, alerts, restore from its changelog."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from driftline.config import MonitorSettings
from driftline.consumers.common.metrics import OTHER_FEATURES, Metrics
from driftline.consumers.monitor.exporter import DriftExporter
from driftline.consumers.monitor.handler import MonitorHandler
from driftline.schemas.events import PredictionEvent
from driftline.schemas.profiles import PanePartial, ReferenceProfile
from driftline.stream.panes import PaneAggregator
from driftline.stream.reference import build_reference

SETTINGS = MonitorSettings(pane_s=10.0, window_s=60.0, step_s=30.0, allowed_lateness_s=0.0, min_samples=50,
                           hysteresis_windows=1, cooldown_s=0.0)


@pytest.fixture(scope="module")
def profile() -> ReferenceProfile:
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({f"x{i}": rng.normal(size=2000) for i in range(5)} | {"prediction": rng.normal(size=2000)})
    return build_reference(frame, model="m", model_version="1", task="regression")


def partials(profile: ReferenceProfile, source: str, seed: int, shift_at_s: float = 300.0) -> list[PanePartial]:
    """Panes of 600 s from one source; every feature shifts by 2 at ``shift_at_s``."""
    rng = np.random.default_rng(seed)
    aggregator = PaneAggregator({"m": profile}, pane_s=10.0, allowed_lateness_s=0.0, source=source)
    events = [
        PredictionEvent(event_id=f"{source}-{i}", ts=i * 0.5, model="m", model_version="1", request_id=f"{source}-{i}",
                        features={f"x{k}": float(rng.normal(2.0 if i * 0.5 >= shift_at_s else 0.0)) for k in range(5)},
                        prediction=float(rng.normal()))
        for i in range(1200)
    ]
    aggregator.add_predictions(events)
    return aggregator.close_panes()


def test_no_window_before_every_source_reported(profile: ReferenceProfile) -> None:
    handler = MonitorHandler(SETTINGS, {"m": profile}, n_sources=2)
    out = handler.handle(partials(profile, "0", seed=1))
    assert out.evaluations == [] and handler.watermark is None
    out = handler.handle(partials(profile, "1", seed=2))
    assert out.evaluations and handler.watermark is not None
    drifted = [a for a in out.alerts if a.kind == "data" and a.status == "drift"]
    assert drifted and min(a.window_end for a in drifted) > 300.0


def test_restore_from_changelog_repeats_no_alert_and_misses_none(profile: ReferenceProfile) -> None:
    source0, source1 = partials(profile, "0", seed=1), partials(profile, "1", seed=2)
    straight = MonitorHandler(SETTINGS, {"m": profile}, n_sources=2)
    expected = [a.alert_id for batch in (source0, source1[:30], source1[30:]) for a in straight.handle(batch).alerts]

    first = MonitorHandler(SETTINGS, {"m": profile}, n_sources=2)
    changelog: list[tuple[bytes, bytes | None]] = []
    alerts: list[str] = []
    for batch in (source0, source1[:30]):
        out = first.handle(batch)
        changelog.extend(out.changelog)
        alerts.extend(a.alert_id for a in out.alerts)
    restored = MonitorHandler.restore(SETTINGS, {"m": profile}, changelog, n_sources=2)
    alerts.extend(a.alert_id for a in restored.handle(source1[30:]).alerts)
    assert alerts == expected and len(set(alerts)) == len(alerts)


def test_exporter_bounds_feature_labels(profile: ReferenceProfile) -> None:
    handler = MonitorHandler(SETTINGS, {"m": profile}, n_sources=1)
    metrics = Metrics("monitor")
    exporter = DriftExporter(metrics, top_n=2)
    for evaluation in handler.handle(partials(profile, "0", seed=1)).evaluations:
        exporter.export(evaluation.result, evaluation.elapsed_s)
    features = {s.labels["feature"] for f in metrics.registry.collect() if f.name == "driftline_feature_drift_score"
                for s in f.samples}
    assert OTHER_FEATURES in features and len(features) == 3
    assert metrics.registry.get_sample_value("driftline_windows_evaluated_total", {"model": "m"}) > 0
