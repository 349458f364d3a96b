"""`driftline ab-analyzer`: per-variant metrics from `labeled`, significance, results on `ab-results`.

State is rebuilt from Kafka on every start instead of being committed: the analyzer reads the
compacted `experiments` topic and `labeled` from the beginning (bounded by its retention)
with a manual assignment, so a crash or restart yields the same arm statistics and the same
conclusions. Traffic here is small (labeled events of models under test), so the replay is cheap.
"""

from __future__ import annotations

import logging
import time

from confluent_kafka import OFFSET_BEGINNING, Consumer, Producer, TopicPartition

from driftline.config import DriftlineConfig
from driftline.consumers.ab.handler import ABHandler
from driftline.consumers.common.dlq import DeadLetterWriter
from driftline.consumers.common.http import MetricsServer
from driftline.consumers.common.kafka import (
    consumer_config,
    make_producer,
    raise_for_msg_error,
    to_raw,
    topic_partitions,
)
from driftline.consumers.common.metrics import Metrics
from driftline.consumers.common.signals import StopFlag
from driftline.schemas.codec import decode_batch, encode
from driftline.schemas.events import ABResult, Experiment, LabeledEvent

__all__ = ["ABAnalyzer", "run"]

log = logging.getLogger("driftline.ab")


class ABAnalyzer:
    """Composition root of the A/B analyzer: clients, handler, metrics and the loop."""

    def __init__(self, cfg: DriftlineConfig, metrics: Metrics | None = None) -> None:
        self.cfg = cfg
        self.metrics = metrics or Metrics("ab")
        self.handler = ABHandler()
        self.topics = {name: cfg.kafka.topic(name) for name in ("experiments", "labeled", "ab-results", "dlq")}
        self._event_time = 0.0

    def run(self, stop: StopFlag, *, timeout_s: float | None = None) -> None:
        """Consume until ``stop`` is set (or ``timeout_s`` passes), publishing snapshots periodically."""
        consumer = Consumer(consumer_config(self.cfg.kafka, self.cfg.ab.group_id))
        producer = make_producer(self.cfg.kafka)
        dlq = DeadLetterWriter(producer, self.topics["dlq"], self.metrics)
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        try:
            consumer.assign(self._all_partitions(consumer))
            last_publish = time.monotonic()
            while not stop.is_set() and (deadline is None or time.monotonic() < deadline):
                messages = [m for m in consumer.consume(self.cfg.ab.batch_size, 0.5) if raise_for_msg_error(m)]
                self._handle(messages, dlq)
                if time.monotonic() - last_publish >= self.cfg.ab.publish_interval_s:
                    self.publish(producer)
                    last_publish = time.monotonic()
            self.publish(producer)
        finally:
            producer.flush(10)
            consumer.close()

    def _all_partitions(self, consumer: Consumer) -> list[TopicPartition]:
        assignment = []
        for topic in (self.topics["experiments"], self.topics["labeled"]):
            try:
                partitions = topic_partitions(consumer, topic, timeout_s=10)
            except KeyError as exc:
                raise RuntimeError(exc.args[0]) from None
            assignment += [TopicPartition(topic, tp.partition, OFFSET_BEGINNING) for tp in partitions]
        return assignment

    def _handle(self, messages: list, dlq: DeadLetterWriter) -> None:
        by_topic: dict[str, list] = {self.topics["experiments"]: [], self.topics["labeled"]: []}
        for message in messages:
            by_topic[message.topic()].append(to_raw(message))
        for topic, event_type in ((self.topics["experiments"], Experiment), (self.topics["labeled"], LabeledEvent)):
            raws = by_topic[topic]
            if not raws:
                continue
            self.metrics.events_in.labels(service="ab", topic=topic).inc(len(raws))
            decoded = decode_batch(raws, event_type)
            dlq.send_all(decoded.rejects)
            if event_type is Experiment:
                for experiment in decoded.events:
                    self.handler.on_experiment(experiment)
            else:
                self.handler.on_labeled(decoded.events)
                if decoded.events:
                    self._event_time = max(self._event_time, max(e.ts for e in decoded.events))

    def publish(self, producer: Producer) -> list[ABResult]:
        """Publish one snapshot per running experiment and the definitions that concluded."""
        results, concluded = self.handler.snapshot(ts=self._event_time)
        for result in results:
            producer.produce(self.topics["ab-results"], encode(result), key=result.experiment_id.encode())
            self._export(result)
        for experiment in concluded:
            producer.produce(self.topics["experiments"], encode(experiment), key=experiment.experiment_id.encode())
            log.info("experiment %s concluded", experiment.experiment_id)
        if results or concluded:
            producer.flush(10)
            self.metrics.events_out.labels(service="ab", topic=self.topics["ab-results"]).inc(len(results))
        return results

    def _export(self, result: ABResult) -> None:
        for variant in result.variants:
            self.metrics.ab_variant_metric.labels(
                experiment=result.experiment_id, variant=variant.name, metric=result.metric
            ).set(variant.value)
            self.metrics.ab_variant_samples.labels(experiment=result.experiment_id, variant=variant.name).set(
                variant.n
            )
        self.metrics.ab_p_value.labels(experiment=result.experiment_id).set(result.p_value)


def run(cfg: DriftlineConfig) -> None:
    """Serve metrics and run the analyzer until SIGTERM/SIGINT."""
    analyzer = ABAnalyzer(cfg)
    stop = StopFlag().install()
    with MetricsServer(analyzer.metrics.registry, host=cfg.metrics.host, port=cfg.metrics.ab_port):
        analyzer.run(stop)
