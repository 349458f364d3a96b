"""Ingest on the real broker: input that no decoder can parse goes to `dlq` and the service goes on."""

from __future__ import annotations

import sys
import uuid
from pathlib import Path

import pytest

from driftline.consumers.common.signals import StopFlag
from driftline.consumers.ingest.app import IngestApp
from driftline.producers.client import DriftlineProducer

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "common"))
from pipeline import TASKS, Pipeline, simulator

DEEP_ARRAYS = b"[" * 2_000 + b"]" * 2_000  # 4 kB: past orjson's nesting limit and Python's stack
DEEP_OBJECTS = b'{"event_id":' + b'{"x":' * 1_100 + b"1" + b"}" * 1_100 + b"}"  # 6.6 kB, under the tests' 8 kB limit


@pytest.mark.integration
def test_nesting_too_deep_to_parse_goes_to_dlq_and_ingest_goes_on(kafka) -> None:
    pipeline = Pipeline(kafka.bootstrap, f"test{uuid.uuid4().hex[:8]}.")
    pipeline.create_topics()
    try:
        sim = simulator()
        pipeline.publish_references(sim, TASKS)
        records = [record for batch in sim.batches(500, batch_size=500)
                   for record in zip(batch.kinds, batch.keys, batch.values, strict=True)]
        cfg = pipeline.config(ingest={"idle_after_s": 0.5})
        producer = DriftlineProducer(cfg.kafka)
        half = len(records) // 2
        for kind, key, value in records[:half]:
            producer.produce_raw(producer.topics[kind], key, value)
        for kind, value in (("predictions", DEEP_ARRAYS), ("outcomes", DEEP_OBJECTS)):
            producer.produce_raw(producer.topics[kind], b"deep", value)
        for kind, key, value in records[half:]:
            producer.produce_raw(producer.topics[kind], key, value)
        assert producer.flush(30) == 0

        summary = IngestApp(cfg, stop=StopFlag()).run(timeout_s=60, until_idle=True)

        assert summary.consumed == len(records) + 2
        assert summary.rejected == 2
        assert summary.labeled == sum(kind == "outcomes" for kind, _, _ in records)
        dead = pipeline.read("dlq")
        assert sorted(r.value() for r in dead) == sorted([DEEP_ARRAYS, DEEP_OBJECTS])
        assert {dict(r.headers())["driftline.reason"] for r in dead} == {b"malformed_json"}
    finally:
        pipeline.delete_topics()
