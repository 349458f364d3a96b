"""Reading `labeled` back by time (real broker) and re-testing a window (pure)."""

from __future__ import annotations

import pandas as pd
import pytest
from retrain_helpers import classification_events, produce

from driftline.config import KafkaSettings, MonitorSettings
from driftline.consumers.retrain.data import LabeledReader
from driftline.consumers.retrain.drift import check_window
from driftline.stream.reference import build_reference


@pytest.mark.integration
def test_reader_returns_one_models_events_in_the_span_oldest_first(kafka, topic_factory) -> None:  # type: ignore[no-untyped-def]
    topic = topic_factory("labeled", partitions=3)
    start = 1_700_000_000.0
    churn = classification_events(300, model="churn", start_ts=start)
    other = classification_events(100, model="other", start_ts=start)
    produce(kafka.bootstrap, topic, churn[::-1] + other)  # arrival order is not event-time order
    reader = LabeledReader(KafkaSettings(bootstrap_servers=kafka.bootstrap), topic, timeout_s=30)

    # The span is on the time each label became known (outcome_ts = ts + 60 in these events).
    span = reader.read("churn", start + 100, start + 200)
    assert [e.outcome_ts for e in span] == [start + 60 + i for i in range(40, 140)]
    assert [e.ts for e in span] == sorted(e.ts for e in span)  # oldest first
    assert {e.model for e in span} == {"churn"}
    latest = reader.read("churn", start, start + 300, max_events=50)
    assert [e.ts for e in latest] == [start + i for i in range(190, 240)]
    assert reader.read("churn", start + 1000, start + 2000) == []


def test_check_window_sees_a_shifted_feature_as_the_monitor_would() -> None:
    baseline = classification_events(2000, seed=1)
    reference = build_reference(
        pd.DataFrame([{**e.features, "prediction": e.prediction.label, "outcome": e.outcome} for e in baseline]),
        model="churn", model_version="1", task="classification",
    )
    monitor = MonitorSettings(min_samples=100)
    calm = check_window(reference, classification_events(900, seed=2), monitor, 600)
    shifted = check_window(reference, classification_events(900, seed=2, shift=2.0), monitor, 600)
    assert calm is not None and shifted is not None
    assert shifted.data.drifted_features == ("x1",)
    assert calm.data.drift_ratio < shifted.data.drift_ratio
    assert shifted.window_end - shifted.window_start == 600
    assert check_window(reference, [], monitor, 600) is None
