"""Ingest on the real broker: input no decoder can parse goes to `dlq`, a model without a profile is counted."""

from __future__ import annotations

import sys
from pathlib import Path

import orjson
import pytest

from driftline.consumers.common.signals import StopFlag
from driftline.consumers.ingest.app import IngestApp
from driftline.producers.client import DriftlineProducer

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "common"))
from pipeline import metric_value, referenced_pipeline, stream_records

DEEP_ARRAYS = b"[" * 2_000 + b"]" * 2_000  # 4 kB: past orjson's nesting limit and Python's stack
DEEP_OBJECTS = b'{"event_id":' + b'{"x":' * 1_100 + b"1" + b"}" * 1_100 + b"}"  # 6.6 kB, under the tests' 8 kB limit


def _ghost(ts: float) -> list[tuple[str, bytes, bytes]]:
    """A prediction and its outcome for a model no reference profile names."""
    prediction = {"event_id": "g:p", "ts": ts, "model": "ghost", "model_version": "1", "request_id": "g",
                  "features": {"x": 1.0}, "prediction": 0.5}
    outcome = {"event_id": "g:o", "ts": ts + 1.0, "request_id": "g", "model": "ghost", "outcome": 0.4}
    return [("predictions", b"g", orjson.dumps(prediction)), ("outcomes", b"g", orjson.dumps(outcome))]


@pytest.mark.integration
def test_unparseable_input_goes_to_dlq_and_a_model_without_profile_is_counted(kafka) -> None:
    with referenced_pipeline(kafka.bootstrap) as (pipeline, sim):
        records = stream_records(sim, 500)
        half = len(records) // 2
        records[half:half] = _ghost(orjson.loads(records[half][2])["ts"])
        cfg = pipeline.config(ingest={"idle_after_s": 0.5})
        producer = DriftlineProducer(cfg.kafka)
        for kind, key, value in records[:half]:
            producer.produce_raw(producer.topics[kind], key, value)
        for kind, value in (("predictions", DEEP_ARRAYS), ("outcomes", DEEP_OBJECTS)):
            producer.produce_raw(producer.topics[kind], b"deep", value)
        for kind, key, value in records[half:]:
            producer.produce_raw(producer.topics[kind], key, value)
        assert producer.flush(30) == 0

        app = IngestApp(cfg, stop=StopFlag())
        summary = app.run(timeout_s=60, until_idle=True)

        assert summary.consumed == len(records) + 2
        assert summary.rejected == 2
        assert summary.labeled == sum(kind == "outcomes" for kind, _, _ in records)  # the ghost's included
        dead = pipeline.read("dlq")
        assert sorted(r.value() for r in dead) == sorted([DEEP_ARRAYS, DEEP_OBJECTS])
        assert {dict(r.headers())["driftline.reason"] for r in dead} == {b"malformed_json"}
        assert metric_value(app, "driftline_events_rejected_total", reason="malformed_json") == 2
        assert metric_value(app, "driftline_unmonitored_events_total", model="ghost") == 2  # prediction + labeled row

