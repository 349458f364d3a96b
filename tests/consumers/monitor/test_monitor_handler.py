"""MonitorHandler without Kafka: watermark over all sources, alerts, restore from its changelog."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import orjson
import pandas as pd
import pytest

from driftline.config import MonitorSettings
from driftline.consumers.common.metrics import OTHER_FEATURES, Metrics
from driftline.consumers.monitor.exporter import DriftExporter
from driftline.consumers.monitor.handler import MonitorHandler
from driftline.schemas.codec import encode
from driftline.schemas.events import PredictionEvent
from driftline.schemas.profiles import PanePartial, ReferenceProfile
from driftline.stream.panes import PaneAggregator
from driftline.stream.reference import build_reference

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "stream"))
from streamsim import accuracy_drop_panes

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


def test_consumed_pane_bytes_go_to_the_changelog_as_they_came(profile: ReferenceProfile) -> None:
    """Given the consumed JSON, the changelog holds it unchanged, and a restore from it repeats the same alerts."""
    source0, source1 = partials(profile, "0", seed=1), partials(profile, "1", seed=2)
    straight = MonitorHandler(SETTINGS, {"m": profile}, n_sources=2)
    expected = [a.alert_id for batch in (source0, source1) for a in straight.handle(batch).alerts]

    # indented: not the bytes `encode` would write again
    consumed = [orjson.dumps(orjson.loads(encode(p)), option=orjson.OPT_INDENT_2) for p in source0]
    first = MonitorHandler(SETTINGS, {"m": profile}, n_sources=2)
    out = first.handle(source0, consumed)
    assert [value for key, value in out.changelog if key.startswith(b"pane")] == consumed
    restored = MonitorHandler.restore(SETTINGS, {"m": profile}, out.changelog, n_sources=2)
    assert [a.alert_id for a in out.alerts + restored.handle(source1).alerts] == expected


def test_restore_carries_the_loss_monitor_on_without_feeding_it_kept_panes_again() -> None:
    """The early signal (ADWIN on the per-row loss) after a restart is the one an uninterrupted monitor gives."""
    reference, panes = accuracy_drop_panes(n_reference=3000, n_per_half=2000, drop_at=600.0, accuracy_after=0.7,
                                           pane_s=60.0)
    before, after = [p for p in panes if p.pane_start < 600], [p for p in panes if p.pane_start >= 600]
    settings = MonitorSettings(pane_s=60.0, window_s=120.0, step_s=60.0, allowed_lateness_s=0.0, min_samples=100,
                               hysteresis_windows=1, cooldown_s=0.0)

    def later(handler: MonitorHandler) -> tuple[list[tuple[float, tuple[str, ...]]], int]:
        out = handler.handle(after)
        evaluator = handler.models["m"].evaluator
        assert evaluator is not None
        return ([(e.result.window_end, e.result.early_signals) for e in out.evaluations],
                evaluator.loss_state()["loss_monitor"]["n"])

    straight = MonitorHandler(settings, {"m": reference}, n_sources=1)
    straight.handle(before)
    expected = later(straight)
    assert any(s.startswith("concept:") for _, signals in expected[0] for s in signals)

    first = MonitorHandler(settings, {"m": reference}, n_sources=1)
    changelog = first.handle(before).changelog
    assert later(MonitorHandler.restore(settings, {"m": reference}, changelog, n_sources=1)) == expected
    # a model record without it (as written before the loss monitor was checkpointed) starts a fresh one
    old = [(key, orjson.dumps({k: v for k, v in orjson.loads(value).items() if k in ("alert_state", "last_window_end")})
            if key.startswith(b"model") and value is not None else value) for key, value in changelog]
    assert later(MonitorHandler.restore(settings, {"m": reference}, old, n_sources=1)) != expected


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
