"""An input partition at its end holds the other stream back until it has been idle for a while."""

from __future__ import annotations

import sys
import threading
import time
from pathlib import Path

import pytest

from driftline.consumers.common.signals import StopFlag
from driftline.consumers.ingest.app import IdleInputs, IngestApp
from driftline.producers.client import DriftlineProducer

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "common"))
from pipeline import metric_value, referenced_pipeline, stream_records


def test_an_input_is_idle_only_after_staying_at_its_end_for_the_grace_period(manual_clock) -> None:
    clock = manual_clock
    inputs = IdleInputs(5.0, clock)
    outcomes_0, predictions_0 = (False, 0), (True, 0)
    inputs.reached_end(outcomes_0)
    clock.now += 4.9
    assert inputs.at_end(outcomes_0) and not inputs.idle(outcomes_0)
    assert inputs.pending([0]) == []
    inputs.reached_end(outcomes_0)  # a second end event does not restart the grace period
    clock.now += 0.1
    assert inputs.idle(outcomes_0)
    assert inputs.pending([0, 1]) == [0]
    inputs.told(outcomes_0)
    assert inputs.pending([0]) == []  # the handler has released what the idle input held back
    assert not inputs.all_idle([0])  # predictions of partition 0 still flow
    inputs.reached_end(predictions_0)
    clock.now += 5.0
    inputs.told(predictions_0)
    assert inputs.all_idle([0])


def test_a_record_ends_idleness_and_a_new_end_starts_a_new_grace_period(manual_clock) -> None:
    clock = manual_clock
    inputs = IdleInputs(2.0, clock)
    key = (False, 3)
    inputs.reached_end(key)
    clock.now += 3.0
    inputs.told(key)
    inputs.received(key)
    assert not inputs.at_end(key) and not inputs.idle(key) and inputs.pending([3]) == []
    inputs.reached_end(key)
    clock.now += 1.0
    assert not inputs.idle(key)
    clock.now += 1.0
    assert inputs.pending([3]) == [3]
    inputs.forget(3)
    assert not inputs.at_end(key) and inputs.pending([3]) == []


def test_zero_grace_is_idle_at_the_end(manual_clock) -> None:
    inputs = IdleInputs(0.0, manual_clock)
    inputs.reached_end((True, 0))
    assert inputs.idle((True, 0))


@pytest.mark.integration
@pytest.mark.parametrize(("idle_after_s", "outcomes_late"), [(0.0, True), (4.0, False)])
def test_outcomes_a_moment_behind_their_predictions_still_reach_their_panes(
    kafka, idle_after_s: float, outcomes_late: bool
) -> None:
    """A live stream: every prediction is in Kafka, the outcomes follow a second after ingest read them.

    Taking the outcomes' end of partition as idleness at once (grace 0, the old behaviour)
    releases all predictions, moves the watermark to their end, and makes the outcomes late
    for their panes; with a grace period they are held for and joined into their panes.
    """
    with referenced_pipeline(kafka.bootstrap) as (pipeline, sim):
        records = stream_records(sim, 3000)
        cfg = pipeline.config(ingest={"idle_after_s": idle_after_s})
        producer = DriftlineProducer(cfg.kafka)
        send = {kind: [(key, value) for k, key, value in records if k == kind] for kind in ("predictions", "outcomes")}
        for key, value in send["predictions"]:
            producer.produce_raw(producer.topics["predictions"], key, value)
        assert producer.flush(30) == 0
        stop = StopFlag()
        app = IngestApp(cfg, stop=stop)

        def outcomes_after_the_predictions_were_read() -> None:
            deadline = time.monotonic() + 60
            while app.summary.consumed < len(send["predictions"]) and time.monotonic() < deadline:
                time.sleep(0.05)
            time.sleep(1.0)
            for key, value in send["outcomes"]:
                producer.produce_raw(producer.topics["outcomes"], key, value)
            assert producer.flush(30) == 0
            while app.summary.consumed < len(records) and time.monotonic() < deadline:
                time.sleep(0.05)
            time.sleep(idle_after_s + 1.0)  # every input idle: everything released
            stop.set()

        sender = threading.Thread(target=outcomes_after_the_predictions_were_read, daemon=True)
        sender.start()
        summary = app.run(timeout_s=90)
        sender.join(timeout=5)
        assert summary.consumed == len(records)
        assert summary.labeled == len(send["outcomes"]) > 0  # the join itself never misses
        late = metric_value(app, "driftline_late_events_total")
        assert (late > 0) is outcomes_late, late

