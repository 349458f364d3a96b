"""Kafka adapters on the real broker: read a compacted changelog to its end, typed errors."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from confluent_kafka import KafkaError, Producer, TopicPartition

from driftline.config import KafkaSettings
from driftline.consumers.common.kafka import (
    KafkaBrokerError,
    consumer_config,
    ensure_changelog,
    partition_count,
    read_to_end,
)


@pytest.mark.integration
def test_read_to_end_returns_every_record_of_the_partitions(kafka, topic_factory: Callable[..., str]) -> None:
    topic = topic_factory("changelog", partitions=2, compact=True)
    producer = Producer(kafka.client_config())
    for i in range(50):
        producer.produce(topic, f"v{i}".encode(), f"k{i}".encode(), partition=i % 2)
    producer.flush(10)
    settings = KafkaSettings(bootstrap_servers=kafka.bootstrap)
    records = read_to_end(settings, [TopicPartition(topic, 1)])
    assert [r.value() for r in records] == [f"v{i}".encode() for i in range(1, 50, 2)]
    assert partition_count(settings, topic) == 2


@pytest.mark.integration
def test_ensure_changelog_is_idempotent(kafka, topic_prefix: str) -> None:
    settings = KafkaSettings(bootstrap_servers=kafka.bootstrap)
    name = f"{topic_prefix}x-changelog"
    ensure_changelog(settings, name, 3)
    ensure_changelog(settings, name, 3)
    assert partition_count(settings, name) == 3
    with pytest.raises(KeyError, match="does not exist"):
        partition_count(settings, f"{topic_prefix}missing")


def test_consumer_defaults_store_no_offsets_and_read_committed() -> None:
    config = consumer_config(KafkaSettings(client={"security.protocol": "PLAINTEXT"}), "g", **{"fetch.max.bytes": 1})
    assert config["enable.auto.offset.store"] is False and config["enable.auto.commit"] is False
    assert config["isolation.level"] == "read_committed"
    assert config["security.protocol"] == "PLAINTEXT" and config["fetch.max.bytes"] == 1


def test_broker_error_is_typed() -> None:
    error = KafkaBrokerError(KafkaError(KafkaError.TOPIC_AUTHORIZATION_FAILED))
    assert not error.retriable and "TOPIC_AUTHORIZATION_FAILED" in str(error)
