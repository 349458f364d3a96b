"""Consumer lag from the client's cached watermarks, on the real broker."""

from __future__ import annotations

import time

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition

from driftline.consumers.common.lag import consumer_lag, export_lag
from driftline.consumers.common.metrics import Metrics

pytestmark = pytest.mark.integration


def test_lag_is_high_watermark_minus_position(kafka, topic_factory) -> None:
    topic = topic_factory("lag")
    producer = Producer(kafka.client_config())
    for i in range(100):
        producer.produce(topic, str(i).encode())
    assert producer.flush(10) == 0
    consumer = Consumer(kafka.client_config(**{"group.id": f"lag-{topic}", "enable.auto.commit": False}))
    consumer.assign([TopicPartition(topic, 0, 0)])
    try:
        consumed: list = []
        deadline = time.monotonic() + 20
        while len(consumed) < 40 and time.monotonic() < deadline:
            consumed += consumer.consume(num_messages=40 - len(consumed), timeout=1.0)
        assert len(consumed) == 40
        assert consumer_lag(consumer) == {(topic, 0): 60}
        metrics = Metrics("test")
        export_lag(consumer, metrics)
        value = metrics.registry.get_sample_value(
            "driftline_consumer_lag", {"service": "test", "topic": topic, "partition": "0"}
        )
        assert value == 60
    finally:
        consumer.close()
