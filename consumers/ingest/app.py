"""`driftline ingest`, stage 1: predictions + outcomes -> labeled, panes, dlq; exactly once.

Delivery guarantee: Kafka transactions. Each commit interval the producer's transaction holds
the batch's labeled events, pane partials, dead letters, changelog records and the input
offsets (``send_offsets_to_transaction``); readers of `labeled`, `panes` and the changelog
use ``read_committed``. A crash therefore aborts the open transaction: its outputs vanish,
its offsets were never committed, and the restarted process replays the same input onto the
same state, so no labeled event is missing and none is duplicated.

State: one `PartitionState` per assigned source partition (join store + open panes), restored
on assignment from the compacted changelog topic ``<prefix>ingest-<group>-changelog``
(partition p holds source partition p's state). Partition state follows rebalances.

Stable identities: ``transactional.id`` and ``group.instance.id`` are ``<group>.<instance>``,
so a restarted instance fences its dead predecessor at once (no waiting for the transaction
or session timeout) and takes back its partitions without a rebalance.
"""

from __future__ import annotations

import gc
import logging
import threading
import time
from collections import defaultdict
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from confluent_kafka import Consumer, KafkaException, Message, Producer, TopicPartition

from driftline.config import DriftlineConfig
from driftline.consumers.common.checkpoint import Checkpoint
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
from driftline.consumers.ingest.handler import IngestOutputs, PartitionState
from driftline.schemas.codec import RawMessage, encode
from driftline.schemas.profiles import ReferenceProfile

__all__ = ["IngestApp", "IngestSummary", "changelog_topic"]

log = logging.getLogger("driftline.ingest")

_LAG_INTERVAL_S = 5.0
_STALL_S = 60.0
# Young-generation size of the cyclic GC while the loop runs. Every event is a few fresh dicts (the
# decoded record, its features, a labeled record) that reference counting frees; at Python's default
# (700) the collector ran every ~200 events and re-walked the held records: ~25 % of the handler's time.
_GC_GEN0_THRESHOLD = 50_000


@contextmanager
def _gc_for_streaming() -> Iterator[None]:
    """Fewer cyclic-GC passes while the loop runs, and none over the start-up objects (frozen); undone after."""
    thresholds = gc.get_threshold()
    gc.freeze()
    gc.set_threshold(_GC_GEN0_THRESHOLD, thresholds[1], thresholds[2])
    try:
        yield
    finally:
        gc.set_threshold(*thresholds)
        gc.unfreeze()


def changelog_topic(cfg: DriftlineConfig) -> str:
    """Name of ingest's state changelog: one per consumer group, like Kafka Streams' ``<app>-<store>-changelog``."""
    return f"{cfg.kafka.topic_prefix}ingest-{cfg.ingest.group_id}-changelog"


class _LagExporter(threading.Thread):
    """Exports consumer lag every ``interval_s`` from its own thread.

    The high watermarks are a broker round trip per partition (~0.2 s each on a busy broker):
    asked from the consume loop they stalled ingest for ~20 % of its time. librdkafka handles
    are thread-safe, and `stop` is called before the consumer closes.
    """

    def __init__(self, consumer: Consumer, metrics: Metrics, interval_s: float) -> None:
        super().__init__(name="ingest-lag", daemon=True)
        self._consumer = consumer
        self._metrics = metrics
        self._interval_s = interval_s
        self._stopped = threading.Event()

    def run(self) -> None:
        while not self._stopped.wait(self._interval_s):
            try:
                export_lag(self._consumer, self._metrics)
            except KafkaException as exc:  # a slow broker must not end the service over a gauge
                log.warning("consumer lag not exported: %s", exc)

    def stop(self) -> None:
        self._stopped.set()
        self.join()


@dataclass(slots=True)
class IngestSummary:
    """What a `run` did, for tests and the exit log line."""

    consumed: int = 0
    labeled: int = 0
    panes: int = 0
    rejected: int = 0
    commits: int = 0


class IngestApp:
    """Composition root of stage 1: builds clients, state and metrics once; `run` is the loop.

    Parameters
    ----------
    cfg
        Validated configuration.
    instance_id
        Stable name of this process within the group (fencing and static membership);
        ``ingest.instance_id`` by default.
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
        self.cfg = cfg
        self.settings = cfg.ingest
        self.instance_id = instance_id or cfg.ingest.instance_id
        self.metrics = metrics or Metrics("ingest")
        self.stop = stop or StopFlag()
        self.topics = {name: cfg.kafka.topic(name) for name in ("predictions", "outcomes", "labeled", "panes", "dlq")}
        self.changelog = changelog_topic(cfg)
        self.summary = IngestSummary()
        self._states: dict[int, PartitionState] = {}
        self._at_end: dict[tuple[bool, int], bool] = {}  # (is predictions, partition) -> consumed to the end
        self._pending_out: dict[str, int] = defaultdict(int)
        self._last_loop = time.monotonic()
        self._failed_on_lost = False
        self._paused: set[tuple[bool, int]] = set()  # (is predictions, partition) paused: far ahead of the other
        self._clients: TransactionalClients | None = None
        self._consumer: Consumer | None = None
        self._producer: Producer | None = None
        self._checkpoint: Checkpoint | None = None
        self._references: ReferenceBook | None = None
        self._dlq: DeadLetterWriter | None = None
        self._lag: _LagExporter | None = None

    # --- composition -----------------------------------------------------------------

    def _open(self) -> None:
        kafka = self.cfg.kafka
        partitions = partition_count(kafka, self.topics["predictions"])
        outcome_partitions = partition_count(kafka, self.topics["outcomes"])
        if partitions != outcome_partitions:
            raise RuntimeError(
                f"predictions ({partitions}) and outcomes ({outcome_partitions}) must have the same partition count"
            )
        ensure_changelog(kafka, self.changelog, partitions)
        self._references = ReferenceBook(kafka, on_update=self._on_profile)
        self._references.load()
        self._clients = TransactionalClients.build(
            kafka,
            group_id=self.settings.group_id,
            instance_id=self.instance_id,
            commit_interval_s=self.settings.commit_interval_s,
            session_timeout_s=self.settings.session_timeout_s,
            transaction_timeout_s=self.settings.transaction_timeout_s,
            **{"fetch.max.bytes": 52_428_800, "max.partition.fetch.bytes": 10_485_760, "enable.partition.eof": True},
        )
        self._consumer, self._producer = self._clients.consumer, self._clients.producer
        self._checkpoint = self._clients.checkpoint
        self._dlq = DeadLetterWriter(self._producer, self.topics["dlq"], self.metrics)
        self._consumer.subscribe(
            [self.topics["predictions"], self.topics["outcomes"]],
            on_assign=self._on_assign,
            on_revoke=self._on_revoke,
            on_lost=self._on_lost,
        )
        self._lag = _LagExporter(self._consumer, self.metrics, _LAG_INTERVAL_S)
        self._lag.start()

    def _close(self) -> None:
        try:
            if self._lag is not None:
                self._lag.stop()
            if self._clients is not None:
                self._clients.close()  # revocation commits the last transaction (_on_revoke)
        finally:
            if self._references is not None:
                self._references.close()

    # --- the loop ----------------------------------------------------------------------

    def run(
        self, *, timeout_s: float | None = None, max_messages: int | None = None, until_idle: bool = False
    ) -> IngestSummary:
        """Consume until stopped or a limit is met; commit and close.

        Limits (tests, batch replays): ``timeout_s`` of wall time, ``max_messages`` consumed,
        or ``until_idle``: every assigned input partition has been read to its end.
        """
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        self._open()
        assert self._checkpoint is not None
        try:
            with _gc_for_streaming():
                self._loop(deadline, max_messages, until_idle=until_idle)
            if not self._checkpoint.empty():
                self._commit()
        finally:
            self._close()
        log.info("ingest stopped: %s", self.summary)
        return self.summary

    def _loop(self, deadline: float | None, max_messages: int | None, *, until_idle: bool) -> None:
        """Consume, handle, commit when due; until stopped or a `run` limit is met."""
        assert self._consumer is not None and self._checkpoint is not None and self._references is not None
        while not self.stop.is_set():
            if deadline is not None and time.monotonic() >= deadline:
                break
            if max_messages is not None and self.summary.consumed >= max_messages:
                break
            if self._failed_on_lost:
                raise RuntimeError("partitions lost (session expired): restart to restore from the changelog")
            messages = self._consumer.consume(self.settings.batch_size, self.settings.poll_timeout_s)
            self._last_loop = time.monotonic()
            if messages:
                self._handle(messages)
            elif self._paused:
                self._resume_all()
            if until_idle and self._idle():
                break
            self._references.poll()
            if not self._checkpoint.empty() and self._checkpoint.expired():
                self._commit()

    def _handle(self, messages: Sequence[Message]) -> None:
        assert self._checkpoint is not None
        predictions_topic = self.topics["predictions"]
        by_partition: dict[int, tuple[list[RawMessage], list[RawMessage]]] = defaultdict(lambda: ([], []))
        newest: dict[tuple[str, int], Message] = {}  # per input partition: its offsets only move forward
        for message in messages:
            is_predictions = message.topic() == predictions_topic
            partition = message.partition()
            if message.error() is not None and not raise_for_msg_error(message):
                self._at_end[(is_predictions, partition)] = True  # end of partition: it must not hold the other back
                by_partition[partition]
                continue
            self._at_end[(is_predictions, partition)] = False
            by_partition[partition][0 if is_predictions else 1].append(to_raw(message))
            newest[(message.topic(), partition)] = message
        for message in newest.values():  # the batch's last message per partition carries all its offsets
            self._checkpoint.store_offset(message)
        consumed = sum(len(p) + len(o) for p, o in by_partition.values())
        for partition, (predictions, outcomes) in by_partition.items():
            state = self._states.get(partition)
            if state is None:  # assignment callbacks always come first; guard against a broker surprise
                raise RuntimeError(f"message from unassigned partition {partition}")
            out = state.handle(
                predictions,
                outcomes,
                predictions_idle=self._at_end.get((True, partition), False),
                outcomes_idle=self._at_end.get((False, partition), False),
            )
            self._emit(out)
            self._pace(partition, state)
        self.summary.consumed += consumed
        self._refresh_gauges()

    def _pace(self, partition: int, state: PartitionState) -> None:
        """Pause the input that is ahead in event time while it holds over a batch of events; resume it after.

        When catching up, Kafka hands out one topic far ahead of the other (outcomes are small, so
        a fetch holds many more of them). Everything held at a commit is written to the changelog
        and deleted again at the next one; pausing the stream that is ahead keeps that churn to
        about a batch. Only the stream ahead is ever paused, so the other always flows (and at its
        end releases the hold); pausing only stops fetching: no record is skipped. An empty poll
        resumes everything (`_resume_all`): the paused stream is then the only work left.
        """
        assert self._consumer is not None
        limit = self.settings.batch_size
        predictions_ahead = state.prediction_progress_ts > state.outcome_progress_ts
        outcomes_ahead = state.outcome_progress_ts > state.prediction_progress_ts
        for is_predictions, held, ahead in ((True, state.held_predictions, predictions_ahead),
                                            (False, state.held_outcomes, outcomes_ahead)):
            key = (is_predictions, partition)
            ahead = ahead and not self._at_end.get((not is_predictions, partition), False)  # else nothing to wait for
            if key not in self._paused and ahead and len(held) > limit:
                self._paused.add(key)
                self._consumer.pause([self._input_partition(is_predictions, partition)])
            elif key in self._paused and (not ahead or len(held) <= limit // 2):
                self._paused.discard(key)
                self._consumer.resume([self._input_partition(is_predictions, partition)])

    def _resume_all(self) -> None:
        assert self._consumer is not None
        self._consumer.resume([self._input_partition(*key) for key in self._paused])
        self._paused.clear()

    def _input_partition(self, is_predictions: bool, partition: int) -> TopicPartition:
        return TopicPartition(self.topics["predictions" if is_predictions else "outcomes"], partition)

    def _idle(self) -> bool:
        """Every assigned input partition consumed to its end (and so nothing held back)."""
        wanted = [(is_predictions, p) for p in self._states for is_predictions in (True, False)]
        return bool(wanted) and all(self._at_end.get(key, False) for key in wanted)

    def _emit(self, out: IngestOutputs) -> None:
        assert self._dlq is not None and self._checkpoint is not None
        # a pending changelog counts as one output: the commit must happen even when nothing else was produced
        self._checkpoint.add_outputs(len(out.labeled) + len(out.panes) + len(out.rejects) + out.state_changed)
        m, service = self.metrics, self.metrics.service
        m.events_in.labels(service=service, topic=self.topics["predictions"]).inc(out.predictions_in)
        m.events_in.labels(service=service, topic=self.topics["outcomes"]).inc(out.outcomes_in)
        self._produce_all(self.topics["labeled"], out.labeled)
        for partial in out.panes:
            self._produce(self.topics["panes"], encode(partial), partial.model.encode())
            m.panes_emitted.labels(model=partial.model).inc()
        for reject in out.rejects:
            self._dlq.send(reject)
        self._pending_out[self.topics["labeled"]] += len(out.labeled)
        self._pending_out[self.topics["panes"]] += len(out.panes)
        m.join.labels(result="hit").inc(out.join_hits)
        m.join.labels(result="outcome_first").inc(out.join_outcome_first)
        m.join.labels(result="expired").inc(out.join_expired)
        for model, late in out.late_by_model.items():
            m.late_events.labels(service=service, model=model).inc(late)
        self.summary.labeled += len(out.labeled)
        self.summary.panes += len(out.panes)
        self.summary.rejected += len(out.rejects)

    def _produce_all(self, topic: str, records: list[tuple[bytes, bytes | None]], partition: int = -1) -> None:
        """Produce (key, value) records into the open transaction; one call per record, no Python frame between."""
        assert self._producer is not None
        produce = self._producer.produce
        for key, value in records:
            try:
                produce(topic, value, key, partition)
            except BufferError:  # local queue full: wait for it as `_produce` does
                self._produce(topic, value, key, None if partition == -1 else partition)

    def _produce(self, topic: str, value: bytes | None, key: bytes, partition: int | None = None) -> None:
        assert self._clients is not None
        self._clients.produce(topic, value, key, partition)

    def _commit(self) -> None:
        """Write each partition's state changes since the last commit, then commit them with outputs and offsets."""
        assert self._checkpoint is not None
        for partition, state in self._states.items():
            self._produce_all(self.changelog, state.changelog(), partition)
        self._checkpoint.commit()
        for topic, count in self._pending_out.items():
            self.metrics.events_out.labels(service=self.metrics.service, topic=topic).inc(count)
        self._pending_out.clear()
        self.summary.commits += 1

    def _refresh_gauges(self) -> None:
        if not self._states:
            return
        states = self._states.values()
        self.metrics.join_store_size.labels(kind="predictions").set(sum(s.join.pending_predictions for s in states))
        self.metrics.join_store_size.labels(kind="outcomes").set(sum(s.join.pending_outcomes for s in states))
        watermarks = [s.panes.watermark for s in states if s.panes.watermark != float("-inf")]
        if watermarks:
            self.metrics.watermark_seconds.labels(service=self.metrics.service).set(min(watermarks))

    # --- rebalances and references ------------------------------------------------------

    def _on_assign(self, _consumer: Consumer, partitions: list[TopicPartition]) -> None:
        assert self._references is not None
        new = sorted({tp.partition for tp in partitions} - set(self._states))
        started = time.monotonic()
        records: dict[int, list[tuple[bytes, bytes | None]]] = {p: [] for p in new}
        wanted = [TopicPartition(self.changelog, p) for p in new]
        for message in read_to_end(self.cfg.kafka, wanted, timeout_s=self.settings.restore_timeout_s):
            records[message.partition()].append((message.key(), message.value()))
        for partition in new:
            self._states[partition] = PartitionState.restore(
                partition, self.settings, self._references.profiles, records[partition]
            )
        log.info(
            "assigned source partitions %s; restored %d changelog records in %.2f s",
            new, sum(len(r) for r in records.values()), time.monotonic() - started,
        )

    def _on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        if self._checkpoint is not None and not self._checkpoint.empty():
            self._commit()
        revoked = {tp.partition for tp in partitions}
        paused = [key for key in self._paused if key[1] in revoked]
        if paused:  # a partition that comes back must not come back paused
            consumer.resume([self._input_partition(*key) for key in paused])
            self._paused.difference_update(paused)
        for partition in revoked:
            self._states.pop(partition, None)
            self._at_end.pop((True, partition), None)
            self._at_end.pop((False, partition), None)

    def _on_lost(self, _consumer: Consumer, partitions: list[TopicPartition]) -> None:
        # The group moved on without us; our open transaction will be fenced. Stop and restart clean.
        for partition in {tp.partition for tp in partitions}:
            self._states.pop(partition, None)
        self._failed_on_lost = True

    def _on_profile(self, profile: ReferenceProfile) -> None:
        for state in self._states.values():
            state.set_profile(profile)

    def health(self) -> tuple[bool, dict[str, Any]]:
        """Healthy while the loop turns; reports the assigned source partitions."""
        stalled_s = time.monotonic() - self._last_loop
        return stalled_s < _STALL_S, {"partitions": sorted(self._states), "stalled_s": round(stalled_s, 1)}


def serve(cfg: DriftlineConfig, *, stop: StopFlag, instance_id: str | None = None) -> IngestSummary:
    """Run stage 1 with its `/metrics` and `/healthz` until a signal stops it."""
    app = IngestApp(cfg, instance_id=instance_id, stop=stop)
    with MetricsServer(app.metrics.registry, host=cfg.metrics.host, port=cfg.metrics.ingest_port, health=app.health):
        return app.run()
