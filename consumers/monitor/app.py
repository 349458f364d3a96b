"""`driftline monitor`, stage 2: pane partials -> sliding windows -> drift tests -> alerts.

Runtime: a confluent-kafka consumer group with Kafka transactions, not faust-streaming (see
BENCHMARKS.md, "End to end"): the panes it reads are written transactionally by ingest and
must be read ``read_committed``; the alerts, the state changelog and the input offsets are
committed in one transaction, so a crash neither loses nor repeats an alert.

State lives in the compacted changelog ``<prefix>monitor-<group>-changelog``; partition p
holds the state of the models whose panes arrive on `panes` partition p (both keyed by
model): the pane partials still inside a future window, and per model the alert-policy state
(hysteresis, cooldown), the per-source watermarks and the last evaluated window. It is
restored on partition assignment, so state follows rebalances.

Watermark: ingest emits a partial for every (source partition, model, pane) it closes, empty
ones included (heartbeats). The sources are the partitions of `predictions`; a window is
evaluated once the minimum over all sources of their latest closed pane end passes its end
(see `MonitorHandler`).
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from confluent_kafka import Consumer, Message, TopicPartition

from driftline.config import DriftlineConfig
from driftline.consumers.common.dlq import DeadLetterWriter
from driftline.consumers.common.http import MetricsServer
from driftline.consumers.common.kafka import (
    ensure_changelog,
    partition_count,
    raise_for_msg_error,
    read_to_end,
    to_raw,
)
from driftline.consumers.common.lag import export_lag
from driftline.consumers.common.metrics import Metrics
from driftline.consumers.common.references import ReferenceBook
from driftline.consumers.common.signals import StopFlag
from driftline.consumers.common.transactional import TransactionalClients
from driftline.consumers.monitor.exporter import DriftExporter
from driftline.consumers.monitor.handler import MonitorHandler, MonitorOutputs
from driftline.schemas.codec import RawMessage, decode_batch, encode
from driftline.schemas.profiles import PanePartial, ReferenceProfile

__all__ = ["MonitorApp", "MonitorSummary", "changelog_topic", "serve"]

log = logging.getLogger("driftline.monitor")

_LAG_INTERVAL_S = 5.0
_STALL_S = 60.0


def changelog_topic(cfg: DriftlineConfig) -> str:
    """Name of the monitor's state changelog, one per consumer group."""
    return f"{cfg.kafka.topic_prefix}monitor-{cfg.monitor.group_id}-changelog"


@dataclass(slots=True)
class MonitorSummary:
    """What a `run` did, for tests and the exit log line."""

    consumed: int = 0
    windows: int = 0
    alerts: int = 0
    rejected: int = 0
    commits: int = 0


class MonitorApp:
    """Composition root of stage 2: clients, handlers per panes partition, metrics; `run` is the loop."""

    def __init__(
        self,
        cfg: DriftlineConfig,
        *,
        instance_id: str | None = None,
        metrics: Metrics | None = None,
        stop: StopFlag | None = None,
    ) -> None:
        self.cfg = cfg
        self.settings = cfg.monitor
        self.instance_id = instance_id or cfg.monitor.instance_id
        self.metrics = metrics or Metrics("monitor")
        self.stop = stop or StopFlag()
        self.topics = {name: cfg.kafka.topic(name) for name in ("panes", "alerts", "dlq")}
        self.changelog = changelog_topic(cfg)
        self.summary = MonitorSummary()
        self._exporter = DriftExporter(self.metrics, top_n=self.settings.top_features_metrics)
        self._handlers: dict[int, MonitorHandler] = {}
        self._n_sources = 0
        self._pending_alerts = 0
        self._last_loop = time.monotonic()
        self._failed_on_lost = False
        self._clients: TransactionalClients | None = None
        self._references: ReferenceBook | None = None
        self._dlq: DeadLetterWriter | None = None

    def _open(self) -> None:
        kafka = self.cfg.kafka
        ensure_changelog(kafka, self.changelog, partition_count(kafka, self.topics["panes"]))
        self._n_sources = partition_count(kafka, kafka.topic("predictions"))
        self._references = ReferenceBook(kafka, on_update=self._on_profile)
        self._references.load()
        self._clients = TransactionalClients.build(
            kafka,
            group_id=self.settings.group_id,
            instance_id=self.instance_id,
            commit_interval_s=self.settings.commit_interval_s,
            session_timeout_s=self.settings.session_timeout_s,
            transaction_timeout_s=self.settings.transaction_timeout_s,
        )
        self._dlq = DeadLetterWriter(self._clients.producer, self.topics["dlq"], self.metrics)
        self._clients.consumer.subscribe(
            [self.topics["panes"]], on_assign=self._on_assign, on_revoke=self._on_revoke, on_lost=self._on_lost
        )

    def run(self, *, timeout_s: float | None = None, max_messages: int | None = None) -> MonitorSummary:
        """Consume until stopped, ``timeout_s`` passed or ``max_messages`` consumed; commit and close."""
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        self._open()
        assert self._clients is not None and self._references is not None
        consumer, checkpoint = self._clients.consumer, self._clients.checkpoint
        last_lag = 0.0
        try:
            while not self.stop.is_set():
                if deadline is not None and time.monotonic() >= deadline:
                    break
                if max_messages is not None and self.summary.consumed >= max_messages:
                    break
                if self._failed_on_lost:
                    raise RuntimeError("partitions lost (session expired): restart to restore from the changelog")
                messages = consumer.consume(self.settings.batch_size, self.settings.poll_timeout_s)
                self._last_loop = time.monotonic()
                if messages:
                    self._handle(messages)
                self._references.poll()
                if not checkpoint.empty() and checkpoint.expired():
                    self._commit()
                if self._last_loop - last_lag >= _LAG_INTERVAL_S:
                    export_lag(consumer, self.metrics)
                    last_lag = self._last_loop
            if not checkpoint.empty():
                self._commit()
        finally:
            try:
                self._clients.close()
            finally:
                self._references.close()
        log.info("monitor stopped: %s", self.summary)
        return self.summary

    def _handle(self, messages: Sequence[Message]) -> None:
        assert self._clients is not None and self._dlq is not None
        by_partition: dict[int, list[RawMessage]] = defaultdict(list)
        for message in messages:
            if raise_for_msg_error(message):
                by_partition[message.partition()].append(to_raw(message))
                self._clients.checkpoint.store_offset(message)
        self.metrics.events_in.labels(service=self.metrics.service, topic=self.topics["panes"]).inc(len(messages))
        for partition, raws in by_partition.items():
            decoded = decode_batch(raws, PanePartial)
            for reject in decoded.rejects:
                self._dlq.send(reject)
            self.summary.rejected += len(decoded.rejects)
            handler = self._handlers.get(partition)
            if handler is None:
                raise RuntimeError(f"message from unassigned partition {partition}")
            self._emit(partition, handler.handle(decoded.events))
        self.summary.consumed += len(messages)

    def _emit(self, partition: int, out: MonitorOutputs) -> None:
        assert self._clients is not None
        for alert in out.alerts:
            self._clients.produce(self.topics["alerts"], encode(alert), alert.model.encode())
            self.metrics.alerts.labels(
                model=alert.model, kind=alert.kind, severity=alert.severity, status=alert.status
            ).inc()
        for key, value in out.changelog:
            self._clients.produce(self.changelog, value, key, partition)
        for evaluation in out.evaluations:
            self._exporter.export(evaluation.result, evaluation.elapsed_s)
        if out.watermarks:  # one gauge per service: the slowest model's watermark is what matters
            self.metrics.watermark_seconds.labels(service=self.metrics.service).set(min(out.watermarks.values()))
        if out.mismatched_panes:  # ingest and monitor disagree on pane_s: counted, never merged
            self.metrics.events_rejected.labels(self.metrics.service, "pane_size_mismatch").inc(out.mismatched_panes)
            log.warning("%d pane partials with pane_s != monitor.pane_s=%s ignored", out.mismatched_panes,
                        self.settings.pane_s)
        self._pending_alerts += len(out.alerts)
        self.summary.windows += len(out.evaluations)
        self.summary.alerts += len(out.alerts)

    def _commit(self) -> None:
        assert self._clients is not None
        self._clients.checkpoint.commit()
        self.metrics.events_out.labels(service=self.metrics.service, topic=self.topics["alerts"]).inc(
            self._pending_alerts
        )
        self._pending_alerts = 0
        self.summary.commits += 1

    def _on_assign(self, _consumer: Consumer, partitions: list[TopicPartition]) -> None:
        assert self._references is not None
        new = sorted({tp.partition for tp in partitions} - set(self._handlers))
        records: dict[int, list[tuple[bytes, bytes | None]]] = {p: [] for p in new}
        wanted = [TopicPartition(self.changelog, p) for p in new]
        for message in read_to_end(self.cfg.kafka, wanted, timeout_s=self.settings.restore_timeout_s):
            records[message.partition()].append((message.key(), message.value()))
        for partition in new:
            self._handlers[partition] = MonitorHandler.restore(
                self.settings, self._references.profiles, records[partition], n_sources=self._n_sources
            )
        log.info("assigned panes partitions %s", new)

    def _on_revoke(self, _consumer: Consumer, partitions: list[TopicPartition]) -> None:
        if self._clients is not None and not self._clients.checkpoint.empty():
            self._commit()
        for partition in {tp.partition for tp in partitions}:
            self._handlers.pop(partition, None)

    def _on_lost(self, _consumer: Consumer, partitions: list[TopicPartition]) -> None:
        for partition in {tp.partition for tp in partitions}:
            self._handlers.pop(partition, None)
        self._failed_on_lost = True

    def _on_profile(self, profile: ReferenceProfile) -> None:
        for handler in self._handlers.values():
            handler.set_profile(profile)

    def health(self) -> tuple[bool, dict[str, Any]]:
        """Healthy while the loop turns; reports the assigned panes partitions."""
        stalled_s = time.monotonic() - self._last_loop
        return stalled_s < _STALL_S, {"partitions": sorted(self._handlers), "stalled_s": round(stalled_s, 1)}


def serve(cfg: DriftlineConfig, *, stop: StopFlag, instance_id: str | None = None) -> MonitorSummary:
    """Run stage 2 with its `/metrics` and `/healthz` until a signal stops it."""
    app = MonitorApp(cfg, instance_id=instance_id, stop=stop)
    with MetricsServer(app.metrics.registry, host=cfg.metrics.host, port=cfg.metrics.monitor_port, health=app.health):
        return app.run()
