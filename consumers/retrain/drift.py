"""Drift seen from the retrain side: the latest alert and reference of a model, and a window re-tested.

`check_window` runs the monitor's own pane aggregator and window evaluator over labeled
events, so the one-shot ``driftline retrain`` and the worker's drift report judge a window
exactly as stage 2 does. The two readers scan the small, keyed `alerts` and compacted
`references` topics.
"""

from __future__ import annotations

from collections.abc import Sequence

from confluent_kafka import Consumer

from driftline.config import KafkaSettings, MonitorSettings
from driftline.consumers.common.kafka import consumer_config, raise_for_msg_error, read_to_end, topic_partitions
from driftline.consumers.monitor.handler import evaluator_for
from driftline.schemas.codec import RawMessage, decode_one
from driftline.schemas.events import DriftAlert, LabeledEvent, PredictionEvent
from driftline.schemas.profiles import ReferenceProfile
from driftline.stream import PaneAggregator, WindowResult

__all__ = ["check_window", "latest_alert", "latest_reference", "values_by_key"]


def values_by_key(settings: KafkaSettings, topic: str, key: str) -> list[bytes]:
    """Values of the records keyed ``key`` on a topic, oldest first (read to its end)."""
    probe = Consumer(consumer_config(settings, "driftline-retrain-probe"))
    try:
        partitions = topic_partitions(probe, topic, missing_ok=True)
    finally:
        probe.close()
    records = read_to_end(settings, partitions)
    keyed = [m for m in records if raise_for_msg_error(m) and m.key() == key.encode() and m.value() is not None]
    return [m.value() for m in sorted(keyed, key=lambda m: m.timestamp()[1])]


def latest_alert(settings: KafkaSettings, model: str) -> DriftAlert | None:
    """The newest (by window end) decodable alert for the model on `alerts`."""
    decoded = (decode_one(RawMessage(value=v), DriftAlert) for v in values_by_key(settings, settings.topic("alerts"),
                                                                                   model))
    alerts = [a for a in decoded if isinstance(a, DriftAlert)]
    return max(alerts, key=lambda a: a.window_end) if alerts else None


def latest_reference(settings: KafkaSettings, model: str) -> ReferenceProfile | None:
    """The model's current reference profile: the last one on `references`."""
    values = values_by_key(settings, settings.topic("references"), model)
    return ReferenceProfile.model_validate_json(values[-1]) if values else None


def check_window(profile: ReferenceProfile, events: Sequence[LabeledEvent], monitor: MonitorSettings,
                 window_s: float) -> WindowResult | None:
    """The monitor's verdict on the last complete window of ``events`` (pure: event time only).

    Panes and windows use the monitor's settings; the window slides by one pane and is
    ``window_s`` long (rounded to whole panes). None when no window had enough events.
    """
    if not events:
        return None
    pane_s = monitor.pane_s
    window_s = max(pane_s, round(window_s / pane_s) * pane_s)
    aggregator = PaneAggregator({profile.model: profile}, pane_s=pane_s, allowed_lateness_s=0.0,
                                source="retrain", heartbeats=False)
    predictions = [PredictionEvent(event_id=e.event_id, ts=e.ts, model=e.model, model_version=e.model_version,
                                   request_id=e.request_id, features=e.features, prediction=e.prediction)
                   for e in events]
    aggregator.add_batch(predictions, list(events))
    # the monitor's evaluator, sliding by one pane, with no lateness (event time only) and at most len(events) samples
    evaluator = evaluator_for(profile, monitor.model_copy(update={
        "window_s": window_s, "step_s": pane_s, "allowed_lateness_s": 0.0,
        "min_samples": min(monitor.min_samples, len(events)),
    }))
    for partial in aggregator.close_panes():
        evaluator.add(partial)
    results = [r for r in evaluator.ready(aggregator.watermark) if r.data.sufficient]
    return results[-1] if results else None
