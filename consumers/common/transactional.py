"""The exactly-once client pair shared by ingest and monitor: one consumer, one transactional producer.

``transactional.id`` and ``group.instance.id`` are both ``<group>.<instance>``: a restarted
instance fences its dead predecessor at once (its open transaction is aborted by
``init_transactions``) and takes back its partitions without waiting for a rebalance.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from confluent_kafka import Consumer, Producer

from driftline.config import KafkaSettings
from driftline.consumers.common.checkpoint import Checkpoint
from driftline.consumers.common.kafka import consumer_config, produce_waiting, producer_config

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
        consumer_tuning: Mapping[str, Any] | None = None,
        **consumer_overrides: Any,
    ) -> TransactionalClients:
        consumer_settings, producer_settings = cls.client_configs(
            kafka, group_id=group_id, instance_id=instance_id, session_timeout_s=session_timeout_s,
            transaction_timeout_s=transaction_timeout_s, consumer_tuning=consumer_tuning, **consumer_overrides,
        )
        producer = Producer(producer_settings)
        producer.init_transactions(30)
        producer.begin_transaction()
        consumer = Consumer(consumer_settings)
        checkpoint = Checkpoint(consumer, producer, interval_s=commit_interval_s, transactional=True)
        return cls(consumer, producer, checkpoint)

    @staticmethod
    def client_configs(
        kafka: KafkaSettings,
        *,
        group_id: str,
        instance_id: str,
        session_timeout_s: float,
        transaction_timeout_s: float,
        consumer_tuning: Mapping[str, Any] | None = None,
        **consumer_overrides: Any,
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        """The librdkafka settings `build` gives its consumer and producer (benches time the same clients)."""
        name = f"{group_id}.{instance_id}"
        producer = producer_config(
            kafka, **{"transactional.id": name, "transaction.timeout.ms": int(transaction_timeout_s * 1000)}
        )
        consumer = consumer_config(
            kafka,
            group_id,
            tuning=consumer_tuning,
            **{"group.instance.id": name, "session.timeout.ms": int(session_timeout_s * 1000), **consumer_overrides},
        )
        return consumer, producer

    def produce(self, topic: str, value: bytes | None, key: bytes | None, partition: int | None = None) -> None:
        """Produce into the open transaction, waiting while the local queue is full."""
        kwargs: dict[str, Any] = {} if partition is None else {"partition": partition}
        produce_waiting(self.producer, topic, value, key, **kwargs)

    def close(self) -> None:
        """Leave the group (revocation commits the last transaction), then flush the producer."""
        try:
            self.consumer.close()
        finally:
            self.producer.flush(10)
