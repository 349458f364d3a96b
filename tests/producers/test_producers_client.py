"""The producer SDK against the real broker: a 100 000-event round trip, masking, back-pressure, errors."""

from __future__ import annotations

import time
import uuid
from typing import Any

import orjson
import pytest
from confluent_kafka import Consumer

from driftline.config import KafkaSettings, ProducerSettings
from driftline.consumers.common.metrics import Metrics
from driftline.producers import DriftlineProducer
from driftline.producers.publish import publish
from driftline.producers.simulator import ModelSpec, Simulator
from driftline.schemas import OutcomeEvent, PredictionEvent, RawMessage, decode_batch
from driftline.schemas.events import ClassPrediction, RankingPrediction


def _consume_all(settings: KafkaSettings, topic: str, expected: int, timeout_s: float = 60.0) -> list[RawMessage]:
    consumer = Consumer(settings.client_config(**{
        "group.id": f"test-{uuid.uuid4().hex[:8]}", "auto.offset.reset": "earliest", "enable.auto.commit": False,
    }))
    consumer.subscribe([topic])
    messages: list[RawMessage] = []
    deadline = time.monotonic() + timeout_s
    try:
        while len(messages) < expected and time.monotonic() < deadline:
            for msg in consumer.consume(num_messages=10_000, timeout=1.0):
                assert msg.error() is None, msg.error()
                messages.append(RawMessage(msg.value(), msg.key(), msg.topic(), msg.partition(), msg.offset(),
                                           tuple(msg.headers() or ())))
    finally:
        consumer.close()
    return messages


def _plain_prediction(event: dict[str, Any]) -> Any:
    """The value a prediction service would hold, so the SDK's conversion is exercised."""
    prediction = event["prediction"]
    if isinstance(prediction, float):
        return prediction
    if "label" in prediction:
        return prediction["label"], prediction["probabilities"]
    return {item["item_id"]: item["score"] for item in prediction["items"]}


@pytest.mark.integration
def test_100k_events_round_trip_equal(kafka_settings: KafkaSettings) -> None:
    n = 100_000
    # Races (70+ features each) are a small share so the test stays fast; all prediction forms occur.
    models = [ModelSpec("churn", "churn"), ModelSpec("eta", "eta"), ModelSpec("race", "race", weight=0.05)]
    simulated = [orjson.loads(v) for b in Simulator(models, seed=31, missing_fraction=0.02).batches(n, 20_000)
                 for k, v in zip(b.kinds, b.values, strict=True) if k == "predictions"]
    assert len(simulated) == n
    sent: dict[str, PredictionEvent] = {}
    started = time.perf_counter()
    with DriftlineProducer(kafka_settings) as producer:
        for e in simulated:
            event = producer.log_prediction(
                e["model"], e["model_version"], e["request_id"], e["features"], _plain_prediction(e),
                ts=e["ts"], event_id=e["event_id"], entity_id=e.get("entity_id"),
            )
            sent[event.event_id] = event
        assert producer.flush(60) == 0
    produce_s = time.perf_counter() - started
    assert producer.stats.delivered == n and producer.stats.errors == 0

    started = time.perf_counter()
    messages = _consume_all(kafka_settings, kafka_settings.topic("predictions"), n)
    result = decode_batch(messages, PredictionEvent)
    consume_s = time.perf_counter() - started
    print(f"\nSDK produce {n / produce_s:,.0f} events/s (validate+encode+send+flush); "
          f"consume+decode {n / consume_s:,.0f} events/s")
    assert not result.rejects
    received = {event.event_id: event for event in result.events}
    assert len(result.events) == n and received == sent
    for message, event in zip(result.messages, result.events, strict=True):
        assert message.key == event.request_id.encode()
    kinds = {type(e.prediction) for e in received.values()}
    assert kinds == {float, ClassPrediction, RankingPrediction}


@pytest.mark.integration
def test_outcomes_and_pii_masking_reach_the_broker_masked(kafka_settings: KafkaSettings) -> None:
    settings = ProducerSettings(pii_drop=["email"], pii_hash=["customer_id"], pii_salt="pepper")
    metrics = Metrics("sdk-test")
    with DriftlineProducer(kafka_settings, settings, metrics=metrics) as producer:
        sent = producer.log_prediction("churn", "3", "req-1", {"email": "a@b.c", "customer_id": "C-1", "age": 40},
                                       "1", ts=10.0)
        outcome = producer.log_outcome("race", "race-9", {"3": 2.0, "1": 0.0}, ts=11.0)
    [message] = _consume_all(kafka_settings, kafka_settings.topic("predictions"), 1)
    raw = orjson.loads(message.value or b"")
    assert set(raw["features"]) == {"customer_id", "age"}
    assert raw["features"]["customer_id"] == producer.masker.token("C-1") != "C-1"
    assert b"a@b.c" not in (message.value or b"") and b"C-1" not in (message.value or b"")
    assert decode_batch([message], PredictionEvent).events == [sent]
    [out] = decode_batch(_consume_all(kafka_settings, kafka_settings.topic("outcomes"), 1), OutcomeEvent).events
    assert out == outcome and out.outcome.group_id == "race-9"  # type: ignore[union-attr]
    out_total = metrics.registry.get_sample_value(
        "driftline_events_out_total", {"service": "sdk-test", "topic": kafka_settings.topic("predictions")})
    assert out_total == 1.0


@pytest.mark.integration
def test_a_full_local_queue_waits_instead_of_failing(kafka_settings: KafkaSettings) -> None:
    overrides = {"queue.buffering.max.messages": 50, "linger.ms": 50}
    with DriftlineProducer(kafka_settings, client_overrides=overrides) as producer:
        for i in range(2000):
            producer.produce_raw(kafka_settings.topic("outcomes"), f"k{i}", b"{}")
        assert producer.flush(30) == 0
    assert producer.stats.buffer_full_waits > 0
    assert producer.stats.delivered == 2000


@pytest.mark.integration
def test_delivery_errors_are_counted_not_raised(kafka_settings: KafkaSettings) -> None:
    metrics = Metrics("sdk-test")
    failures: list[str] = []
    producer = DriftlineProducer(
        kafka_settings, metrics=metrics, client_overrides={"message.timeout.ms": 1500},
        on_delivery_error=lambda error, message: failures.append(message.topic()),
    )
    missing_topic = f"{kafka_settings.topic_prefix}does-not-exist"
    for i in range(3):
        producer.produce_raw(missing_topic, f"k{i}", b"{}")
    producer.close(timeout_s=10)
    assert producer.stats.errors == 3 and producer.stats.delivered == 0
    assert failures == [missing_topic] * 3
    assert metrics.registry.get_sample_value("driftline_delivery_errors_total", {"service": "sdk-test"}) == 3.0


@pytest.mark.integration
def test_publish_keeps_to_the_wall_clock_rate_and_counts_what_it_sent(kafka_settings: KafkaSettings) -> None:
    sim = Simulator(["churn", "eta"], seed=32, events_per_s=20.0, label_delay_s=1.0, malformed_fraction=0.05,
                    malformed_kinds=["malformed_json"])
    with DriftlineProducer(kafka_settings) as producer:
        summary = publish(sim, producer, 2000, rate_per_s=8000.0)
    assert summary.total == 4000 and summary.delivery_errors == 0 and summary.undelivered == 0
    assert summary.records[("churn", "predictions")] + summary.records[("eta", "predictions")] == 2000
    assert summary.records[("churn", "outcomes")] == summary.records[("churn", "predictions")]
    assert 100 < summary.malformed["malformed_json"] < 300
    assert summary.elapsed_s >= 0.45, "4000 records at 8000/s cannot take less than half a second"
    assert 90 < summary.event_time_span_s < 120  # 2000 predictions at 20 per event-time second, plus label delay
