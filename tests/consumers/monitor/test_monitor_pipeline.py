"""Simulator -> broker -> ingest -> monitor -> alerts, on the real broker with short event-time windows.

Model ``a`` (classification) gets a sudden covariate shift at 300 s of event time, model ``b``
(regression) none. Panes of 10 s, windows of 60 s every 30 s, hysteresis of two windows.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from driftline.producers.scenarios import DriftScenario
from driftline.schemas.events import LabeledEvent

# The end-to-end helpers live beside the common adapters' tests.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "common"))
from pipeline import SHIFT_AT_S, WINDOW_S, Run, run_pipeline, simulator


@pytest.fixture(scope="module")
def covariate_run(kafka) -> Iterator[Run]:
    import uuid

    run = run_pipeline(kafka.bootstrap, f"test{uuid.uuid4().hex[:8]}.", simulator(malformed_fraction=0.01))
    yield run
    run.pipeline.delete_topics()


@pytest.mark.integration
def test_sudden_shift_alerts_for_a_within_two_windows_and_never_for_b(covariate_run: Run) -> None:
    run = covariate_run
    assert run.ingest.consumed == run.sent
    start_ts = simulator().start_ts
    data_alerts = [a for a in run.alerts if a.kind == "data" and a.status == "drift"]
    assert [a.model for a in data_alerts if a.model == "b"] == []
    first_a = min((a for a in data_alerts if a.model == "a"), key=lambda a: a.window_end)
    assert first_a.window_end <= start_ts + SHIFT_AT_S + 2 * WINDOW_S
    assert first_a.window_end > start_ts + SHIFT_AT_S  # nothing before the shift
    assert first_a.results and any(r.drifted for r in first_a.results)
    assert len({a.alert_id for a in run.alerts}) == len(run.alerts)


@pytest.mark.integration
def test_every_outcome_is_joined_into_labeled(covariate_run: Run) -> None:
    labeled = covariate_run.pipeline.read("labeled", LabeledEvent)
    assert len(labeled) == len({e.event_id for e in labeled}) == covariate_run.ingest.labeled
    assert covariate_run.ingest.labeled > 11_000  # 12 000 outcomes, minus the malformed ones


@pytest.mark.integration
def test_malformed_records_land_in_dlq_and_are_counted_by_reason(covariate_run: Run) -> None:
    run = covariate_run
    dead = run.pipeline.read("dlq")
    assert len(dead) == run.ingest.rejected > 0
    reasons = {dict(r.headers())["driftline.reason"].decode() for r in dead}
    for reason in reasons:
        count = sum(dict(r.headers())["driftline.reason"].decode() == reason for r in dead)
        line = f'driftline_events_rejected_total{{reason="{reason}",service="ingest"}} {float(count)}'
        assert line in run.metrics_text
    assert 'driftline_join_total{result="hit"}' in run.metrics_text


@pytest.mark.integration
def test_replaying_the_input_gives_the_same_alert_ids(kafka, covariate_run: Run) -> None:
    import uuid

    replay = run_pipeline(kafka.bootstrap, f"test{uuid.uuid4().hex[:8]}.", simulator(malformed_fraction=0.01))
    replay.pipeline.delete_topics()
    assert sorted(a.alert_id for a in replay.alerts) == sorted(a.alert_id for a in covariate_run.alerts)
    assert replay.alerts


@pytest.mark.integration
def test_labels_only_drift_raises_a_concept_alert_naming_the_metric(kafka) -> None:
    import uuid

    sim = simulator(scenario=DriftScenario("concept", shift_at_s=SHIFT_AT_S))
    run = run_pipeline(kafka.bootstrap, f"test{uuid.uuid4().hex[:8]}.", sim)
    run.pipeline.delete_topics()
    concept = [a for a in run.alerts if a.kind == "concept" and a.status == "drift"]
    assert concept and {a.model for a in concept} == {"a"}
    dropped = [m for m in concept[0].metrics if m.dropped]
    assert dropped and dropped[0].relative_drop > 0 and dropped[0].metric
    assert not [a for a in run.alerts if a.kind == "data" and a.model == "a" and a.status == "drift"]
