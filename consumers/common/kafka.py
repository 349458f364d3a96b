"""Thin adapters over confluent-kafka: explicit defaults, lazy clients, typed errors.

Nothing here touches the network until a client is first used, so a service can be built
(and its configuration rejected) without a broker. Offsets are never stored automatically:
the service says what is done through `Checkpoint`.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, Producer, TopicPartition

from driftline.config import KafkaSettings
from driftline.schemas.codec import RawMessage

__all__ = [
    "DeliveryFailed",
    "KafkaBrokerError",
    "consumer_config",
    "ensure_changelog",
    "make_consumer",
    "make_producer",
    "partition_count",
    "producer_config",
    "raise_for_msg_error",
    "read_to_end",
    "to_raw",
]


class KafkaBrokerError(RuntimeError):
    """A message or client error from the broker that the service cannot skip."""

    def __init__(self, error: KafkaError) -> None:
        super().__init__(f"{error.name()}: {error.str()}")
        self.error = error
        self.retriable = error.retriable()
        self.fatal = error.fatal()


class DeliveryFailed(RuntimeError):
    """Some produced records were not acknowledged; offsets must not be committed."""


def consumer_config(settings: KafkaSettings, group_id: str, **overrides: Any) -> dict[str, Any]:
    """librdkafka consumer settings with driftline's defaults (manual offsets, read committed).

    ``fetch.queue.backoff.ms``: when its prefetch queue is full librdkafka waits this long
    before it fetches again (default 1 s). A service catching up on a backlog drains a full
    queue in milliseconds, then sat idle for the rest of the second: with 10 ms the no-op
    exactly-once pipeline of ``bench/ingest_ceiling_bench.py`` went from about 170 k to about
    500 k events/s, and ``driftline ingest`` in ``bench/e2e_bench.py`` from 50-52 k to 62-63 k
    (77 k on a longer backlog).
    """
    defaults: dict[str, Any] = {
        "group.id": group_id,
        "enable.auto.commit": False,
        "enable.auto.offset.store": False,
        "auto.offset.reset": "earliest",
        "isolation.level": "read_committed",
        "partition.assignment.strategy": "range",
        "fetch.queue.backoff.ms": 10,
    }
    return settings.client_config(**{**defaults, **overrides})


def producer_config(settings: KafkaSettings, **overrides: Any) -> dict[str, Any]:
    """librdkafka producer settings with driftline's defaults (idempotent, batched, compressed)."""
    defaults: dict[str, Any] = {
        "enable.idempotence": True,
        "linger.ms": 20,
        "compression.type": "lz4",
        "batch.size": 1_000_000,
    }
    return settings.client_config(**{**defaults, **overrides})


def make_consumer(settings: KafkaSettings, group_id: str, **overrides: Any) -> Consumer:
    return Consumer(consumer_config(settings, group_id, **overrides))


def make_producer(settings: KafkaSettings, **overrides: Any) -> Producer:
    return Producer(producer_config(settings, **overrides))


def raise_for_msg_error(message: Message) -> bool:
    """True for a usable message, False for a partition-EOF notice; raise on any other error."""
    error = message.error()
    if error is None:
        return True
    if error.code() == KafkaError._PARTITION_EOF:
        return False
    raise KafkaBrokerError(error)


def to_raw(message: Message) -> RawMessage:
    """The library-independent view of a message that the decoder and the DLQ need."""
    headers = message.headers()
    return RawMessage(
        value=message.value(),
        key=message.key(),
        topic=message.topic() or "",
        partition=message.partition() or 0,
        offset=message.offset() or 0,
        headers=tuple((k, v if v is not None else b"") for k, v in headers) if headers else (),
    )


def read_to_end(
    settings: KafkaSettings, partitions: Iterable[TopicPartition], *, timeout_s: float = 30.0, **overrides: Any
) -> list[Message]:
    """Every committed record of the given partitions from their start to the current end.

    Used to restore state from a compacted changelog and to load compacted topics
    (references). Runs its own group-less consumer, so it never moves the caller's offsets.
    """
    import time

    wanted = list(partitions)
    if not wanted:
        return []
    consumer = Consumer(
        consumer_config(
            settings, "driftline-reader", **{"enable.partition.eof": True, "fetch.max.bytes": 52_428_800, **overrides}
        )
    )
    try:
        ends: dict[tuple[str, int], int] = {}
        starts: list[TopicPartition] = []
        for tp in wanted:
            low, high = consumer.get_watermark_offsets(tp, timeout=timeout_s)
            if high > low:
                ends[(tp.topic, tp.partition)] = high
                starts.append(TopicPartition(tp.topic, tp.partition, low))
        if not starts:
            return []
        consumer.assign(starts)
        records: list[Message] = []
        deadline = time.monotonic() + timeout_s
        remaining = set(ends)
        while remaining:
            if time.monotonic() > deadline:
                raise TimeoutError(f"reading {sorted(remaining)} to the end took over {timeout_s} s")
            for message in consumer.consume(num_messages=10_000, timeout=0.5):
                where = (message.topic(), message.partition())
                if raise_for_msg_error(message):
                    records.append(message)
                    if message.offset() + 1 >= ends[where]:
                        remaining.discard(where)
                else:
                    remaining.discard(where)
        return records
    finally:
        consumer.close()


def partition_count(settings: KafkaSettings, topic: str, *, timeout_s: float = 30.0) -> int:
    """Number of partitions of an existing topic; `KeyError` when it does not exist."""
    from confluent_kafka.admin import AdminClient

    metadata = AdminClient(settings.client_config()).list_topics(topic, timeout=timeout_s)
    described = metadata.topics.get(topic)
    if described is None or described.error is not None or not described.partitions:
        raise KeyError(f"topic {topic!r} does not exist; run `driftline topics create`")
    return len(described.partitions)


def ensure_changelog(settings: KafkaSettings, topic: str, partitions: int, *, timeout_s: float = 30.0) -> None:
    """Create a compacted changelog topic with ``partitions`` partitions unless it exists."""
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient(settings.client_config())
    if topic in admin.list_topics(timeout=timeout_s).topics:
        return
    new = NewTopic(
        topic, partitions, settings.replication_factor, config={"cleanup.policy": "compact", "segment.ms": "600000"}
    )
    try:
        admin.create_topics([new])[topic].result(timeout=timeout_s)
    except KafkaException as exc:
        if exc.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
            raise
