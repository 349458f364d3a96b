"""Thin adapters over confluent-kafka: explicit defaults, lazy clients, typed errors.

Nothing here touches the network until a client is first used, so a service can be built
(and its configuration rejected) without a broker. Offsets are never stored automatically:
the service says what is done through `Checkpoint`.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol, overload

from confluent_kafka import (
    OFFSET_BEGINNING,
    OFFSET_END,
    Consumer,
    KafkaError,
    KafkaException,
    Message,
    Producer,
    TopicPartition,
)

from driftline.config import KafkaSettings
from driftline.schemas.codec import RawMessage

if TYPE_CHECKING:
    from confluent_kafka.admin import AdminClient

__all__ = [
    "ConsumedBatch",
    "ConsumedMessage",
    "DeliveryFailed",
    "InputKey",
    "KafkaBrokerError",
    "consumer_config",
    "ensure_changelog",
    "make_consumer",
    "make_producer",
    "make_reader",
    "partition_count",
    "produce_and_wait",
    "produce_waiting",
    "producer_config",
    "raise_for_msg_error",
    "read_range",
    "read_to_end",
    "split_consumed",
    "to_raw",
    "topic_partitions",
    "watermark_offsets",
]

BUFFER_FULL_WAIT_S = 0.05
"""How long `produce_waiting` serves delivery reports when librdkafka's local queue is full."""

# A partition's leader is not known to every broker at once after its topic is created (or a
# leader moves): an offsets question asked then fails with one of these, and asked again succeeds.
_LEADERSHIP_MOVING = frozenset({KafkaError.NOT_LEADER_FOR_PARTITION, KafkaError.LEADER_NOT_AVAILABLE})
_LEADERSHIP_RETRY_S = 0.1


class KafkaBrokerError(RuntimeError):
    """A message or client error from the broker that the service cannot skip."""

    def __init__(self, error: KafkaError) -> None:
        super().__init__(f"{error.name()}: {error.str()}")
        self.error = error
        self.retriable = error.retriable()
        self.fatal = error.fatal()


class DeliveryFailed(RuntimeError):
    """Some produced records were not acknowledged; offsets must not be committed."""


# librdkafka settings in two kinds. Tuning: driftline's defaults, which `[kafka.client]` may
# change (a single host may prefer no compression, a WAN link more linger). Required: what the
# services' guarantees rest on (offsets stored only when outputs are durable, read committed,
# co-partitioned inputs on one member, idempotent writes); the configuration refuses them in
# `[kafka.client]` (`DRIFTLINE_CLIENT_SETTINGS`), and they are applied last all the same.
_CONSUMER_TUNING: dict[str, Any] = {"fetch.queue.backoff.ms": 10}
_CONSUMER_REQUIRED: dict[str, Any] = {
    "enable.auto.commit": False,
    "enable.auto.offset.store": False,
    "auto.offset.reset": "earliest",
    "isolation.level": "read_committed",
    "partition.assignment.strategy": "range",
}
_PRODUCER_TUNING: dict[str, Any] = {"linger.ms": 20, "compression.type": "lz4", "batch.size": 1_000_000}
_PRODUCER_REQUIRED: dict[str, Any] = {"enable.idempotence": True}


def consumer_config(settings: KafkaSettings, group_id: str, *, tuning: Mapping[str, Any] | None = None,
                    **overrides: Any) -> dict[str, Any]:
    """librdkafka consumer settings: driftline's tuning, then ``[kafka.client]``, then what is required.

    ``tuning`` adds the calling service's own tuning to driftline's (``[kafka.client]`` still
    wins over both). Required: manual offsets, read committed, range assignment
    (co-partitioned inputs go to one member), earliest reset; ``overrides`` are the calling
    service's own needs and win too.

    ``fetch.queue.backoff.ms``: when its prefetch queue is full librdkafka waits this long
    before it fetches again (default 1 s). A service catching up on a backlog drains a full
    queue in milliseconds, then sat idle for the rest of the second: with 10 ms the no-op
    exactly-once pipeline of ``bench/ingest_ceiling_bench.py`` went from about 170 k to about
    500 k events/s, and ``driftline ingest`` in ``bench/e2e_bench.py`` from 50-52 k to 62-63 k
    (77 k on a longer backlog).
    """
    required = {**_CONSUMER_REQUIRED, "group.id": group_id, **overrides}
    return {**_CONSUMER_TUNING, **(tuning or {}), **settings.client_config(**required)}


def producer_config(settings: KafkaSettings, **overrides: Any) -> dict[str, Any]:
    """librdkafka producer settings: driftline's tuning (batched, lz4), then ``[kafka.client]``, then idempotence."""
    return {**_PRODUCER_TUNING, **settings.client_config(**{**_PRODUCER_REQUIRED, **overrides})}


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


class ConsumedMessage:
    """A consumed message as `decode_records` reads it: the value now, the rest only for a reject.

    Made once per record on the ingest hot path, where `to_raw` (six calls into the client and
    a tuple) cost four times as much; only a rejected record needs its key, headers and position.
    """

    __slots__ = ("message", "offset", "value")

    def __init__(self, message: Message) -> None:
        self.message = message
        self.value: bytes | None = message.value()
        self.offset: int = message.offset()

    def raw(self) -> RawMessage:
        return to_raw(self.message)


class ConsumedBatch(Sequence[ConsumedMessage]):
    """One input partition's messages of a poll, their values and offsets read while splitting it.

    The decoders read ``values`` and ``offsets`` whole; an item is a `ConsumedMessage`, made only
    when asked for (a reject, or the last offset).
    """

    __slots__ = ("messages", "offsets", "values")

    def __init__(self, values: Sequence[bytes | None], offsets: Sequence[int], messages: Sequence[Message]) -> None:
        self.values = values
        self.offsets = offsets
        self.messages = messages

    def __len__(self) -> int:
        return len(self.messages)

    @overload
    def __getitem__(self, index: int) -> ConsumedMessage: ...

    @overload
    def __getitem__(self, index: slice) -> list[ConsumedMessage]: ...

    def __getitem__(self, index: int | slice) -> ConsumedMessage | list[ConsumedMessage]:
        if isinstance(index, slice):
            return [ConsumedMessage(message) for message in self.messages[index]]
        return ConsumedMessage(self.messages[index])


InputKey = tuple[bool, int]
"""An input partition: (is it the predictions topic, partition)."""


def split_consumed(messages: Sequence[Message], predictions_topic: str) -> tuple[
        dict[InputKey, tuple[list[bytes | None], list[int], list[Message]]], dict[InputKey, bool], list[Message]]:
    """One poll split by input partition in one pass: per input its (values, offsets, messages);
    per input whether its last message was an error (a partition-EOF notice, or one to raise);
    and the messages with an error. ``driftline_native.split_consumed`` does the same in Rust.
    """
    inputs: dict[InputKey, tuple[list[bytes | None], list[int], list[Message]]] = {}
    ends: dict[InputKey, bool] = {}
    errors: list[Message] = []
    for message in messages:
        key = (message.topic() == predictions_topic, message.partition())
        if message.error() is not None:
            ends[key] = True
            errors.append(message)
            continue
        ends[key] = False
        values, offsets, kept = inputs.get(key) or inputs.setdefault(key, ([], [], []))
        values.append(message.value())
        offsets.append(message.offset())
        kept.append(message)
    return inputs, ends, errors


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


class SupportsProduce(Protocol):
    """The part of confluent-kafka's `Producer` that `produce_waiting` needs."""

    def produce(self, topic: str, value: Any = ..., key: Any = ..., **kwargs: Any) -> None: ...

    def poll(self, timeout: float = ...) -> int: ...


def produce_waiting(
    producer: SupportsProduce, topic: str, value: str | bytes | None, key: str | bytes | None, *,
    wait_s: float = BUFFER_FULL_WAIT_S, **kwargs: Any,
) -> int:
    """``producer.produce``, waiting while librdkafka's local queue is full; returns how many times it waited.

    On `BufferError` it serves delivery reports for ``wait_s`` (which frees the queue) and
    tries again, instead of failing the caller. ``kwargs`` (partition, headers, on_delivery)
    go to ``produce``.
    """
    waits = 0
    while True:
        try:
            producer.produce(topic, value, key, **kwargs)
            return waits
        except BufferError:
            waits += 1
            producer.poll(wait_s)


def produce_and_wait(
    settings: KafkaSettings, records: Iterable[tuple[str, bytes | None, bytes | None]], *, what: str,
    timeout_s: float = 30.0,
) -> int:
    """Produce ``(topic, value, key)`` records with a producer of their own and wait for every acknowledgement.

    For one-off announcements (a reference profile, a registry decision), not a service's
    stream of outputs. Returns how many records were sent; raises `DeliveryFailed` naming
    ``what`` when the broker rejected one or some were still unacknowledged after ``timeout_s``.
    """
    errors: list[str] = []

    def on_delivery(error: KafkaError | None, _message: Message) -> None:
        if error is not None:
            errors.append(error.str())

    producer = make_producer(settings)
    sent = 0
    for topic, value, key in records:
        producer.produce(topic, value, key, on_delivery=on_delivery)
        sent += 1
    if producer.flush(timeout_s) > 0 or errors:
        detail = errors[0] if errors else f"no answer within {timeout_s:g} s"
        raise DeliveryFailed(f"{what} not acknowledged by the broker: {detail}")
    return sent


def topic_partitions(
    client: Consumer | AdminClient, topic: str, *, timeout_s: float = 30.0, missing_ok: bool = False
) -> list[TopicPartition]:
    """Every partition of ``topic`` in order, from the metadata of ``client`` (a `Consumer` or an `AdminClient`).

    `KeyError` when the topic does not exist (or its metadata holds an error); ``[]`` instead
    with ``missing_ok``.
    """
    described = client.list_topics(topic, timeout=timeout_s).topics.get(topic)
    if described is None or described.error is not None or not described.partitions:
        if missing_ok:
            return []
        raise KeyError(f"topic {topic!r} does not exist; run `driftline topics create`")
    return [TopicPartition(topic, p) for p in sorted(described.partitions)]


def partition_count(settings: KafkaSettings, topic: str, *, timeout_s: float = 30.0) -> int:
    """Number of partitions of an existing topic; `KeyError` when it does not exist."""
    from confluent_kafka.admin import AdminClient

    return len(topic_partitions(AdminClient(settings.client_config()), topic, timeout_s=timeout_s))


def make_reader(settings: KafkaSettings, group_id: str = "driftline-reader", **overrides: Any) -> Consumer:
    """A consumer for `read_range`: partition-EOF notices on, large fetches; it is only ever assigned."""
    defaults = {"enable.partition.eof": True, "fetch.max.bytes": 52_428_800}
    return Consumer(consumer_config(settings, group_id, **{**defaults, **overrides}))


def read_range(
    consumer: Consumer,
    starts: Iterable[TopicPartition],
    ends: Mapping[tuple[str, int], int] | None = None,
    *,
    timeout_s: float = 30.0,
    batch: int = 10_000,
    poll_s: float = 0.5,
) -> Iterator[Message]:
    """Assign ``consumer`` and yield each partition's records from its offset in ``starts`` up to its end.

    The end (not included) is ``ends[(topic, partition)]``, by default the partition's end
    offset when the read begins. A start may be `OFFSET_BEGINNING` (the partition's first
    record) or `OFFSET_END` (nothing to read). A partition is done at its end or at a
    partition-EOF notice (`make_reader` turns them on: after a transaction marker the last
    record lies before the end offset). The consumer is never subscribed and never commits,
    so no group's offsets move. Records come as the consumer delivers them, ``batch`` per
    ``consume`` call of up to ``poll_s``; `TimeoutError` when the read takes over ``timeout_s``.
    """
    wanted: dict[tuple[str, int], int] = {}
    assignment: list[TopicPartition] = []
    for tp in starts:
        where = (tp.topic, tp.partition)
        start, end = tp.offset, None if ends is None else ends[where]
        if end is None or start in (OFFSET_BEGINNING, OFFSET_END):
            low, high = watermark_offsets(consumer, TopicPartition(tp.topic, tp.partition), timeout_s=timeout_s)
            start = {OFFSET_BEGINNING: low, OFFSET_END: high}.get(start, start)
            end = high if end is None else end
        if start < 0:
            raise ValueError(f"read_range needs absolute start offsets, got {tp}")
        if start < end:
            wanted[where] = end
            assignment.append(TopicPartition(tp.topic, tp.partition, start))
    if not wanted:
        return
    consumer.assign(assignment)
    deadline = time.monotonic() + timeout_s
    while wanted:
        if time.monotonic() > deadline:
            raise TimeoutError(f"reading {_partition_names(wanted)} took over {timeout_s:g} s")
        for message in consumer.consume(num_messages=batch, timeout=poll_s):
            usable = raise_for_msg_error(message)
            where = (message.topic(), message.partition())
            end = wanted.get(where)
            if end is None:  # done already: a record past the end, or a notice
                continue
            if usable and message.offset() < end:
                yield message
            if not usable or message.offset() + 1 >= end:
                del wanted[where]


def _partition_names(where: Iterable[tuple[str, int]]) -> str:
    """``"t partitions [0, 2]"`` (per topic, comma-separated), for messages."""
    by_topic: dict[str, list[int]] = {}
    for topic, partition in sorted(where):
        by_topic.setdefault(topic, []).append(partition)
    return ", ".join(f"{topic} partitions {partitions}" for topic, partitions in by_topic.items())


def watermark_offsets(consumer: Consumer, partition: TopicPartition, *, timeout_s: float = 30.0) -> tuple[int, int]:
    """The partition's (low, high) offsets, asked again while its leadership is moving, up to ``timeout_s``.

    A service restoring from a changelog it has just created would otherwise fail at start
    with ``NOT_LEADER_FOR_PARTITION``; any other error is raised at once.
    """
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            return consumer.get_watermark_offsets(partition, timeout=max(deadline - time.monotonic(), 0.0))
        except KafkaException as exc:
            if exc.args[0].code() not in _LEADERSHIP_MOVING or time.monotonic() + _LEADERSHIP_RETRY_S > deadline:
                raise
        time.sleep(_LEADERSHIP_RETRY_S)


def read_to_end(
    settings: KafkaSettings, partitions: Iterable[TopicPartition], *, timeout_s: float = 30.0, **overrides: Any
) -> list[Message]:
    """Every committed record of the given partitions from their start to the current end.

    Used to restore state from a compacted changelog and to load compacted topics
    (references). Runs its own group-less consumer, so it never moves the caller's offsets.
    """
    wanted = [TopicPartition(tp.topic, tp.partition, OFFSET_BEGINNING) for tp in partitions]
    if not wanted:
        return []
    consumer = make_reader(settings, **overrides)
    try:
        return list(read_range(consumer, wanted, timeout_s=timeout_s))
    finally:
        consumer.close()


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
