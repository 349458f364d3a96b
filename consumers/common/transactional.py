"""The exactly-once client pair shared by ingest and monitor: one consumer, one transactional producer.

``transactional.id`` and ``group.instance.id`` are both ``<group>.<instance>``: a restarted
instance fences its dead predecessor at once (its open transaction is aborted by
``init_transactions``) and takes back its partitions without waiting for a rebalance.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from confluent_kafka import Consumer, Producer

from driftline.config import KafkaSettings
from driftline.consumers.common.checkpoint import Checkpoint
from driftline.consumers.common.kafka import make_consumer, make_producer

__all__ = ["TransactionalClients"]


@dataclass(slots=True)
class TransactionalClients:
    """Consumer, transactional producer (with an open transaction) and their `Checkpoint`."""

    consumer: Consumer
    producer: Producer
    checkpoint: Checkpoint

    @classmethod
    def build(
        cls,
        kafka: KafkaSettings,
        *,
        group_id: str,
        instance_id: str,
        commit_interval_s: float,
        session_timeout_s: float,
        transaction_timeout_s: float,
        **consumer_overrides: Any,
    ) -> TransactionalClients:
        name = f"{group_id}.{instance_id}"
        producer = make_producer(
            kafka, **{"transactional.id": name, "transaction.timeout.ms": int(transaction_timeout_s * 1000)}
        )
        producer.init_transactions(30)
        producer.begin_transaction()
        consumer = make_consumer(
            kafka,
            group_id,
            **{"group.instance.id": name, "session.timeout.ms": int(session_timeout_s * 1000), **consumer_overrides},
        )
        checkpoint = Checkpoint(consumer, producer, interval_s=commit_interval_s, transactional=True)
        return cls(consumer, producer, checkpoint)

    def produce(self, topic: str, value: bytes | None, key: bytes | None, partition: int | None = None) -> None:
        """Produce into the open transaction, waiting while the local queue is full."""
        kwargs: dict[str, Any] = {} if partition is None else {"partition": partition}
        while True:
            try:
                self.producer.produce(topic, value, key, **kwargs)
                return
            except BufferError:
                self.producer.poll(0.05)

    def close(self) -> None:
        """Leave the group (revocation commits the last transaction), then flush the producer."""
        try:
            self.consumer.close()
        finally:
            self.producer.flush(10)
