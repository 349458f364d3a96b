"""What is done, when to commit, and how: one object per service loop.

Two ways to commit, one interface:

- transactional (ingest, monitor): outputs and input offsets are committed atomically with
  ``send_offsets_to_transaction`` + ``commit_transaction``; downstream readers use
  ``read_committed``, so a crash leaves neither duplicates nor gaps.
- at-least-once: flush the producer, fail if any delivery failed, then commit offsets.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from confluent_kafka import Consumer, KafkaError, Message, Producer, TopicPartition

from driftline.consumers.common.kafka import DeliveryFailed

__all__ = ["Checkpoint"]


class Checkpoint:
    """Offsets of handled messages, flushed to Kafka when the interval or count is reached.

    Parameters
    ----------
    consumer, producer
        The service's clients; the producer must have ``transactional.id`` when
        ``transactional`` is true.
    interval_s, max_messages
        Commit when either is reached (`expired`).
    transactional
        Commit through the producer's transaction (exactly once) instead of flush-then-commit.
    clock
        Monotonic seconds; tests pass a fake.
    """

    def __init__(
        self,
        consumer: Consumer,
        producer: Producer,
        *,
        interval_s: float,
        max_messages: int = 100_000,
        transactional: bool = True,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if interval_s <= 0:
            raise ValueError(f"interval_s must be > 0, got {interval_s}")
        self.interval_s = interval_s
        self.max_messages = max_messages
        self.transactional = transactional
        self._consumer = consumer
        self._producer = producer
        self._clock = clock
        self._reset()

    def _reset(self) -> None:
        self._offsets: dict[tuple[str, int], int] = {}
        self._count = 0
        self._outputs = 0
        self._started = self._clock()
        self._delivery_errors: list[KafkaError] = []

    def on_delivery(self, error: KafkaError | None, _message: Message) -> None:
        """Delivery callback for every produce of this checkpoint's outputs."""
        if error is not None:
            self._delivery_errors.append(error)

    def store_offset(self, message: Message) -> None:
        """Mark a message as handled; offsets only move forward."""
        self.store_position(message.topic(), message.partition(), message.offset() + 1)
        self._count += 1

    def store_position(self, topic: str, partition: int, next_offset: int) -> None:
        """Set the offset to commit for a partition (the next to read); offsets only move forward.

        For a service that has read further than it has made durable (ingest holds events
        for the other stream): it counts what it handled with `count` and stores here, at
        commit time, the first offset it still needs.
        """
        where = (topic, partition)
        if next_offset > self._offsets.get(where, -1):
            self._offsets[where] = next_offset

    def count(self, handled: int) -> None:
        """Count handled messages whose offsets `store_position` will store."""
        self._count += handled

    def add_outputs(self, count: int) -> None:
        """Record outputs produced without new input (e.g. held events released at end of input)."""
        self._outputs += count

    def empty(self) -> bool:
        """Nothing handled and nothing produced since the last commit."""
        return self._count == 0 and self._outputs == 0

    def expired(self) -> bool:
        return self._count >= self.max_messages or self._clock() - self._started >= self.interval_s

    def positions(self) -> list[TopicPartition]:
        return [TopicPartition(topic, partition, offset) for (topic, partition), offset in self._offsets.items()]

    def commit(self) -> int:
        """Make the handled messages and their outputs durable; returns how many were committed.

        Steps: (1) transactional: send the offsets into the open transaction and commit it,
        then open the next one; at-least-once: flush the producer, check deliveries, commit
        the offsets synchronously. (2) start a new checkpoint.
        """
        committed = self._count
        if self.transactional:
            positions = self.positions()
            if positions:
                self._producer.send_offsets_to_transaction(positions, self._consumer.consumer_group_metadata())
            self._producer.commit_transaction()
            self._raise_delivery_errors()
            self._producer.begin_transaction()
        else:
            self._producer.flush()
            self._raise_delivery_errors()
            if self._offsets:
                self._consumer.commit(offsets=self.positions(), asynchronous=False)
        self._reset()
        return committed

    def abort(self) -> None:
        """Forget the open transaction (the consumer must seek back to the committed offsets)."""
        if self.transactional:
            self._producer.abort_transaction()
            self._producer.begin_transaction()
        self._reset()

    def _raise_delivery_errors(self) -> None:
        if self._delivery_errors:
            errors, self._delivery_errors = self._delivery_errors, []
            raise DeliveryFailed(f"{len(errors)} record(s) not acknowledged; first: {errors[0].str()}")
