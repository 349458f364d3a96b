"""`driftline monitor`, stage 2: pane partials -> sliding windows -> drift tests -> alerts.

Runtime: a confluent-kafka consumer group with Kafka transactions, not faust-streaming (see
BENCHMARKS.md, "Stage 2 on faust-streaming: measured": the same core in a faust agent repeated
alerts after kill -9, under either processing guarantee): the panes it reads are written transactionally by ingest and
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
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

from confluent_kafka import Message

from driftline.config import DriftlineConfig
from driftline.consumers.common.http import MetricsServer
from driftline.consumers.common.kafka import partition_count, raise_for_msg_error, to_raw
from driftline.consumers.common.metrics import Metrics
from driftline.consumers.common.service import TransactionalService
from driftline.consumers.common.signals import StopFlag
from driftline.consumers.monitor.exporter import DriftExporter
from driftline.consumers.monitor.handler import MonitorHandler, MonitorOutputs
from driftline.schemas.codec import RawMessage, decode_batch, encode
from driftline.schemas.profiles import PanePartial

__all__ = ["MonitorApp", "MonitorSummary", "serve"]

log = logging.getLogger("driftline.monitor")


@dataclass(slots=True)
class MonitorSummary:
    """What a `run` did, for tests and the exit log line."""

    consumed: int = 0
    windows: int = 0
    alerts: int = 0
    rejected: int = 0
    commits: int = 0


class MonitorApp(TransactionalService[MonitorHandler, MonitorSummary]):
    """Composition root of stage 2: a `MonitorHandler` per panes partition, the drift exporter, metrics.

    Parameters
    ----------
    cfg
        Validated configuration.
    instance_id
        Stable name of this process within the group; ``monitor.instance_id`` by default.
    metrics
        Metric catalog; a fresh one on its own registry by default.
    stop
        Set to end `run` after the current batch (SIGTERM/SIGINT when installed).
    """

    def __init__(
        self,
        cfg: DriftlineConfig,
        *,
        instance_id: str | None = None,
        metrics: Metrics | None = None,
        stop: StopFlag | None = None,
    ) -> None:
        super().__init__(
            cfg, cfg.monitor, metrics or Metrics("monitor"), stop or StopFlag(), MonitorSummary(),
            instance_id=instance_id or cfg.monitor.instance_id, inputs=[cfg.kafka.topic("panes")],
        )
        self.settings = cfg.monitor
        self.topics = {name: cfg.kafka.topic(name) for name in ("panes", "alerts")}
        self._exporter = DriftExporter(self.metrics, top_n=self.settings.top_features_metrics)
        self._n_sources = 0
        self._pending_alerts = 0

    def _open(self) -> None:
        self._n_sources = partition_count(self.cfg.kafka, self.cfg.kafka.topic("predictions"))
        super()._open()

    def _restore(self, partition: int, records: list[tuple[bytes, bytes | None]]) -> MonitorHandler:
        assert self._references is not None
        return MonitorHandler.restore(self.settings, self._references.profiles, records, n_sources=self._n_sources)

    def _handle(self, messages: Sequence[Message]) -> None:
        by_partition: dict[int, list[RawMessage]] = defaultdict(list)
        for message in messages:
            if raise_for_msg_error(message):
                by_partition[message.partition()].append(to_raw(message))
                self.clients.checkpoint.store_offset(message)
        self.metrics.events_in.labels(service=self.metrics.service, topic=self.topics["panes"]).inc(len(messages))
        for partition, raws in by_partition.items():
            decoded = decode_batch(raws, PanePartial)
            for reject in decoded.rejects:
                self.dlq.send(reject)
            self.summary.rejected += len(decoded.rejects)
            handler = self.states.get(partition)
            if handler is None:
                raise RuntimeError(f"message from unassigned partition {partition}")
            self._emit(partition, handler.handle(decoded.events, [m.value for m in decoded.messages]))
        self.summary.consumed += len(messages)

    def _emit(self, partition: int, out: MonitorOutputs) -> None:
        for alert in out.alerts:
            self.clients.produce(self.topics["alerts"], encode(alert), alert.model.encode())
            self.metrics.alerts.labels(
                model=alert.model, kind=alert.kind, severity=alert.severity, status=alert.status
            ).inc()
        for key, value in out.changelog:
            self.clients.produce(self.changelog, value, key, partition)
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

    def _committed(self) -> None:
        self.metrics.events_out.labels(service=self.metrics.service, topic=self.topics["alerts"]).inc(
            self._pending_alerts
        )
        self._pending_alerts = 0


def serve(cfg: DriftlineConfig, *, stop: StopFlag, instance_id: str | None = None) -> MonitorSummary:
    """Run stage 2 with its `/metrics` and `/healthz` until a signal stops it."""
    app = MonitorApp(cfg, instance_id=instance_id, stop=stop)
    with MetricsServer(app.metrics.registry, host=cfg.metrics.host, port=cfg.metrics.monitor_port, health=app.health):
        return app.run()
