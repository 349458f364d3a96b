"""The dead-letter writer: bad input is never dropped silently and never crashes a consumer.

A `Reject` from the decoder goes to the ``dlq`` topic as it came in (original key and bytes)
with headers saying why and where from (`Reject.dlq_headers`), and is counted in
``driftline_events_rejected{service, reason}``. The writer uses the service's own producer,
so in a transactional service the dead letters commit or abort with the batch.
"""

from __future__ import annotations

from collections.abc import Iterable

from driftline.consumers.common.kafka import SupportsProduce, produce_waiting
from driftline.consumers.common.metrics import Metrics
from driftline.schemas.codec import Reject

__all__ = ["DeadLetterWriter"]


class DeadLetterWriter:
    """Forward rejected messages to the dead-letter topic and count them by reason.

    Parameters
    ----------
    producer
        A confluent-kafka `Producer` (the service's own, transactional or not).
    topic
        The full dead-letter topic name, e.g. ``cfg.kafka.topic("dlq")``.
    metrics
        The service's metric catalog; ``events_rejected`` is labelled with ``metrics.service``.
    """

    def __init__(self, producer: SupportsProduce, topic: str, metrics: Metrics) -> None:
        self.producer = producer
        self.topic = topic
        self.metrics = metrics

    def send(self, reject: Reject) -> None:
        """Produce the original key and bytes with the reject's headers; count it by reason."""
        message = reject.message
        produce_waiting(self.producer, self.topic, message.value, message.key, headers=reject.dlq_headers())
        self.metrics.events_rejected.labels(self.metrics.service, reject.reason.value).inc()

    def send_all(self, rejects: Iterable[Reject]) -> int:
        """`send` each reject; returns how many were sent."""
        count = 0
        for reject in rejects:
            self.send(reject)
            count += 1
        return count
