"""Consumer lag per assigned partition: high watermark minus the consumer's position."""

from __future__ import annotations

from confluent_kafka import OFFSET_INVALID, Consumer

from driftline.consumers.common.metrics import Metrics

__all__ = ["consumer_lag", "export_lag"]


def consumer_lag(consumer: Consumer, *, timeout_s: float = 1.0) -> dict[tuple[str, int], int]:
    """Lag of each assigned partition; a partition without a position counts from its low mark.

    The watermarks are the ones librdkafka keeps from its fetch responses (``cached=True``): a
    fresh broker round trip per partition took ~0.2 s each and stalled the consume loops.
    Partitions not fetched yet have no known watermark and are left out.
    """
    assignment = consumer.assignment()
    if not assignment:
        return {}
    lags: dict[tuple[str, int], int] = {}
    for tp in consumer.position(assignment):
        low, high = consumer.get_watermark_offsets(tp, timeout=timeout_s, cached=True)
        if high < 0:
            continue
        position = tp.offset if tp.offset != OFFSET_INVALID and tp.offset >= 0 else low
        lags[(tp.topic, tp.partition)] = max(high - position, 0)
    return lags


def export_lag(consumer: Consumer, metrics: Metrics) -> None:
    """Set ``driftline_consumer_lag`` for every assigned partition."""
    for (topic, partition), lag in consumer_lag(consumer).items():
        metrics.consumer_lag.labels(service=metrics.service, topic=topic, partition=str(partition)).set(lag)
