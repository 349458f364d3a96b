"""Kafka adapters: read a compacted changelog to its end (real broker), typed errors, the consumed-message view."""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest
from confluent_kafka import KafkaError, KafkaException, Message, Producer, TopicPartition
from pydantic import ValidationError

from driftline.config import DRIFTLINE_CLIENT_SETTINGS, KafkaSettings
from driftline.consumers.common.kafka import (
    _CONSUMER_REQUIRED,
    _PRODUCER_REQUIRED,
    ConsumedBatch,
    ConsumedMessage,
    KafkaBrokerError,
    consumer_config,
    ensure_changelog,
    partition_count,
    producer_config,
    read_to_end,
    split_consumed,
    to_raw,
    watermark_offsets,
)
from driftline.consumers.ingest import native
from driftline.schemas.codec import RawMessage, RejectReason, decode_records
from driftline.schemas.events import PredictionEvent


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


def test_kafka_client_settings_change_tuning_and_may_not_name_what_the_guarantees_need() -> None:
    """`[kafka.client]` goes over driftline's tuning; offset, isolation and the like settings are refused."""
    settings = KafkaSettings(client={"compression.type": "none", "fetch.queue.backoff.ms": 500, "linger.ms": 5})
    consumer, producer = consumer_config(settings, "g"), producer_config(settings)
    assert consumer["fetch.queue.backoff.ms"] == 500 and consumer["isolation.level"] == "read_committed"
    assert producer["compression.type"] == "none" and producer["linger.ms"] == 5
    assert producer["enable.idempotence"] is True
    defaults = producer_config(KafkaSettings())
    assert defaults["compression.type"] == "lz4" and defaults["linger.ms"] == 20
    refused = re.escape("enable.auto.commit, isolation.level: set by driftline itself")
    with pytest.raises(ValidationError, match=refused):
        KafkaSettings(client={"isolation.level": "read_uncommitted", "enable.auto.commit": True})


def test_every_setting_applied_last_is_one_the_configuration_refuses() -> None:
    required = {**_CONSUMER_REQUIRED, **_PRODUCER_REQUIRED, "group.id": "g", "transactional.id": "t",
                "group.instance.id": "i"}
    assert required.keys() <= DRIFTLINE_CLIENT_SETTINGS


def test_broker_error_is_typed() -> None:
    error = KafkaBrokerError(KafkaError(KafkaError.TOPIC_AUTHORIZATION_FAILED))
    assert not error.retriable and "TOPIC_AUTHORIZATION_FAILED" in str(error)


class _OffsetsAnswering:
    """Answers an offsets question with each of ``answers`` in turn: an error code is raised."""

    def __init__(self, *answers: int | tuple[int, int]) -> None:
        self.answers = list(answers)
        self.asked = 0

    def get_watermark_offsets(self, partition: TopicPartition, timeout: float) -> tuple[int, int]:
        answer = self.answers[self.asked]
        self.asked += 1
        if isinstance(answer, int):
            raise KafkaException(KafkaError(answer))
        return answer


def test_watermark_offsets_are_asked_again_while_leadership_moves() -> None:
    """Just after a topic is created its leader may be unknown: the question succeeds when asked again."""
    consumer = _OffsetsAnswering(KafkaError.NOT_LEADER_FOR_PARTITION, KafkaError.LEADER_NOT_AVAILABLE, (0, 5))
    assert watermark_offsets(consumer, TopicPartition("t", 0), timeout_s=5) == (0, 5)
    assert consumer.asked == 3


def test_watermark_offsets_raise_other_errors_at_once_and_leadership_errors_at_the_deadline() -> None:
    consumer = _OffsetsAnswering(KafkaError.TOPIC_AUTHORIZATION_FAILED, (0, 5))
    with pytest.raises(KafkaException, match="TOPIC_AUTHORIZATION_FAILED"):
        watermark_offsets(consumer, TopicPartition("t", 0), timeout_s=5)
    assert consumer.asked == 1
    moving = _OffsetsAnswering(*[KafkaError.NOT_LEADER_FOR_PARTITION] * 100)
    with pytest.raises(KafkaException, match="NOT_LEADER_FOR_PARTITION"):
        watermark_offsets(moving, TopicPartition("t", 0), timeout_s=0.35)
    assert 2 <= moving.asked <= 5


def test_a_poll_is_split_by_input_alike_in_python_and_in_rust() -> None:
    eof = KafkaError(KafkaError._PARTITION_EOF)
    messages = [Message(topic="p", partition=0, offset=0, value=b"a"),
                Message(topic="o", partition=0, offset=5, value=b"b"),
                Message(topic="p", partition=1, offset=3, value=None),
                Message(topic="p", partition=0, offset=1, value=b"c"),
                Message(topic="o", partition=0, offset=6, error=eof),
                Message(topic="p", partition=2, offset=9, error=eof),
                Message(topic="p", partition=3, offset=2, error=eof),
                Message(topic="p", partition=3, offset=2, value=b"d")]
    inputs, ends, errors = split_consumed(messages, "p")
    assert inputs == {(True, 0): ([b"a", b"c"], [0, 1], [messages[0], messages[3]]),
                      (False, 0): ([b"b"], [5], [messages[1]]), (True, 1): ([None], [3], [messages[2]]),
                      (True, 3): ([b"d"], [2], [messages[7]])}
    assert ends == {(True, 0): False, (False, 0): True, (True, 1): False, (True, 2): True, (True, 3): False}
    assert list(ends) == [(True, 0), (False, 0), (True, 1), (True, 2), (True, 3)]  # as they first came
    assert errors == messages[4:7]
    if native.AVAILABLE:
        native_inputs, native_ends, native_errors = native.split_consumed(messages, "p")
        assert (native_inputs, native_ends, native_errors) == (inputs, ends, errors)
        assert list(native_ends) == list(ends)
    batch = ConsumedBatch(*inputs[True, 0])
    assert len(batch) == 2 and (batch[-1].value, batch[-1].offset) == (b"c", 1)
    assert [view.raw() for view in batch[:1]] == [to_raw(messages[0])]


def test_a_consumed_message_rejected_by_the_decoder_keeps_where_it_came_from() -> None:
    """The lazy view reads only the value; a reject still carries key, headers and position to the DLQ."""
    good = Message(topic="predictions", partition=1, offset=7, key=b"r1", value=b"{}", headers=[("trace", b"t1")])
    view = ConsumedMessage(good)
    batch = decode_records([view], PredictionEvent)
    assert batch.records == []
    [reject] = batch.rejects
    assert reject.reason is RejectReason.SCHEMA_VIOLATION
    assert reject.message == RawMessage(b"{}", b"r1", "predictions", 1, 7, (("trace", b"t1"),))
    assert view.raw() == to_raw(good)
