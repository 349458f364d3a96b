"""The shell of an exactly-once service (ingest, monitor): clients, loop, rebalances, health.

A service consumes its input topics in one consumer group, keeps state per input partition,
and commits its outputs, the state changelog and the input offsets in one Kafka transaction
(`TransactionalClients`). This class owns everything that is the same for every such service:

- opening the clients, the reference book and the dead-letter writer, and closing them;
- the consume loop (batches, stop flag, limits for tests and replays) and when to commit: every
  ``commit_interval_s``, and at once when a poll comes back empty (the inputs are caught up, so
  holding the transaction open would only delay the outputs their readers wait for);
- rebalances: on assignment a partition's state is rebuilt from its changelog partition, on
  revocation the open transaction is committed first, on loss the service stops so that a
  restart restores from the changelog;
- consumer lag from a thread of its own, and ``/healthz`` (the loop still turns).

A subclass is the composition root of one service: it names its topics and supplies the
partition state (`_restore`) and the work of a batch (`_handle`).
"""

from __future__ import annotations

import gc
import logging
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any, Generic, Protocol, TypeVar

from confluent_kafka import Consumer, KafkaException, Message, TopicPartition

from driftline.config import DriftlineConfig, KafkaSettings, TransactionalServiceSettings
from driftline.consumers.common.dlq import DeadLetterWriter
from driftline.consumers.common.kafka import ensure_changelog, partition_count, read_to_end
from driftline.consumers.common.lag import export_lag
from driftline.consumers.common.metrics import Metrics
from driftline.consumers.common.references import ReferenceBook
from driftline.consumers.common.signals import StopFlag
from driftline.consumers.common.transactional import TransactionalClients
from driftline.schemas.profiles import ReferenceProfile

__all__ = ["ServiceSummary", "TransactionalService", "changelog_topic", "gc_for_streaming"]

log = logging.getLogger("driftline.service")

_LAG_INTERVAL_S = 5.0
_STALL_S = 60.0
# Young-generation size of the cyclic GC while the loop runs. Every event is a few fresh dicts (the
# decoded record, its features, a labeled record) that reference counting frees; at Python's default
# (700) the collector ran every ~200 events and re-walked the held records: ~25 % of ingest's time.
_GC_GEN0_THRESHOLD = 50_000


@contextmanager
def gc_for_streaming() -> Iterator[None]:
    """Fewer cyclic-GC passes while the loop runs, and none over the start-up objects (frozen); undone after."""
    thresholds = gc.get_threshold()
    gc.freeze()
    gc.set_threshold(_GC_GEN0_THRESHOLD, thresholds[1], thresholds[2])
    try:
        yield
    finally:
        gc.set_threshold(*thresholds)
        gc.unfreeze()


class _ProfileAware(Protocol):
    def set_profile(self, profile: ReferenceProfile) -> None: ...


class ServiceSummary(Protocol):
    """What the loop counts on a service's summary; each service adds its own counts."""

    consumed: int
    commits: int


PartitionStateT = TypeVar("PartitionStateT", bound=_ProfileAware)
SummaryT = TypeVar("SummaryT", bound=ServiceSummary)


def changelog_topic(kafka: KafkaSettings, service: str, group_id: str) -> str:
    """A service's state changelog, one per consumer group, like Kafka Streams' ``<app>-<store>-changelog``."""
    return f"{kafka.topic_prefix}{service}-{group_id}-changelog"


class _LagExporter(threading.Thread):
    """Exports consumer lag every ``interval_s`` from its own thread.

    Asked from the consume loop, the watermark lookups stalled it on a busy broker; librdkafka
    handles are thread-safe, and `stop` is called before the consumer closes.
    """

    def __init__(self, consumer: Consumer, metrics: Metrics, interval_s: float) -> None:
        super().__init__(name=f"{metrics.service}-lag", daemon=True)
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


class TransactionalService(Generic[PartitionStateT, SummaryT]):
    """Clients, loop and rebalances of an exactly-once service; subclasses add the work.

    Parameters
    ----------
    cfg
        Validated configuration.
    settings
        The service's section (group, batch size, commit interval, timeouts, instance id).
    metrics
        The service's metric catalog.
    stop
        Set to end `run` after the current batch.
    summary
        The service's counts; the loop adds what it consumed and committed.
    instance_id
        Stable name of this process within the group (fencing and static membership).
    inputs
        Topics consumed; their partitions are the state's partitions. The compacted
        changelog (`changelog_topic`) has as many: partition p holds input partition p's state.
    consumer_tuning, consumer_overrides
        librdkafka settings of this service's consumer: tuning (``[kafka.client]`` may change
        it) and what the service needs.
    """

    def __init__(
        self,
        cfg: DriftlineConfig,
        settings: TransactionalServiceSettings,
        metrics: Metrics,
        stop: StopFlag,
        summary: SummaryT,
        *,
        instance_id: str,
        inputs: Sequence[str],
        consumer_tuning: dict[str, Any] | None = None,
        consumer_overrides: dict[str, Any] | None = None,
    ) -> None:
        self.cfg = cfg
        self.settings = settings
        self.metrics = metrics
        self.stop = stop
        self.summary = summary
        self.instance_id = instance_id
        self.inputs = list(inputs)
        self.changelog = changelog_topic(cfg.kafka, metrics.service, settings.group_id)
        self.states: dict[int, PartitionStateT] = {}
        self._consumer_tuning = consumer_tuning or {}
        self._consumer_overrides = consumer_overrides or {}
        self._last_loop = time.monotonic()
        self._failed_on_lost = False
        self._clients: TransactionalClients | None = None
        self._references: ReferenceBook | None = None
        self._dlq: DeadLetterWriter | None = None
        self._lag: _LagExporter | None = None

    # --- what a service supplies ----------------------------------------------------------

    def _restore(self, partition: int, records: list[tuple[bytes, bytes | None]]) -> PartitionStateT:
        """The state of an input partition rebuilt from its changelog records, oldest first."""
        raise NotImplementedError

    def _handle(self, messages: Sequence[Message]) -> None:
        """The work of one consumed batch: decode, update state, produce into the open transaction."""
        raise NotImplementedError

    def _before_commit(self) -> None:
        """Called before each commit: produce what must be in this transaction (e.g. the state's changes)."""

    def _committed(self) -> None:
        """Called after each commit: count what it made durable."""

    def _on_empty_poll(self) -> None:
        """Called when a poll returned nothing: every input is caught up."""

    def _forget(self, partition: int) -> None:
        """Drop what the service keeps of a partition besides its state (rebalances)."""

    def _idle(self) -> bool:
        """True when the service has nothing left to read (``run(until_idle=True)``)."""
        return False

    # --- clients ----------------------------------------------------------------------------

    @property
    def clients(self) -> TransactionalClients:
        assert self._clients is not None, "the service is not open"
        return self._clients

    @property
    def dlq(self) -> DeadLetterWriter:
        assert self._dlq is not None, "the service is not open"
        return self._dlq

    def _open(self) -> None:
        kafka = self.cfg.kafka
        counts = {topic: partition_count(kafka, topic) for topic in self.inputs}
        if len(set(counts.values())) != 1:  # partition p of the state and the changelog is partition p of each input
            raise RuntimeError(f"the inputs must have the same partition count: {counts}")
        ensure_changelog(kafka, self.changelog, counts[self.inputs[0]])
        self._references = ReferenceBook(kafka, on_update=self._on_profile)
        self._references.load()
        self._clients = TransactionalClients.build(
            kafka,
            group_id=self.settings.group_id,
            instance_id=self.instance_id,
            commit_interval_s=self.settings.commit_interval_s,
            session_timeout_s=self.settings.session_timeout_s,
            transaction_timeout_s=self.settings.transaction_timeout_s,
            consumer_tuning=self._consumer_tuning,
            **self._consumer_overrides,
        )
        self._dlq = DeadLetterWriter(self._clients.producer, kafka.topic("dlq"), self.metrics)
        self._clients.consumer.subscribe(
            self.inputs, on_assign=self._on_assign, on_revoke=self._on_revoke, on_lost=self._on_lost
        )
        self._lag = _LagExporter(self._clients.consumer, self.metrics, _LAG_INTERVAL_S)
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

    # --- the loop ---------------------------------------------------------------------------

    def run(
        self, *, timeout_s: float | None = None, max_messages: int | None = None, until_idle: bool = False
    ) -> SummaryT:
        """Consume until stopped or a limit is met; commit and close; return the summary.

        Limits (tests, batch replays): ``timeout_s`` of wall time, ``max_messages`` consumed,
        or ``until_idle`` (see `_idle`).
        """
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        self._open()
        assert self._clients is not None and self._references is not None
        try:
            with gc_for_streaming():
                self._loop(deadline, max_messages, until_idle=until_idle)
            if not self._clients.checkpoint.empty():
                self._commit()
        finally:
            self._close()
        log.info("%s stopped: %s", self.metrics.service, self.summary)
        return self.summary

    def _loop(self, deadline: float | None, max_messages: int | None, *, until_idle: bool) -> None:
        """Consume, handle, commit when due or caught up; until stopped or a `run` limit is met."""
        assert self._clients is not None and self._references is not None
        consumer, checkpoint = self._clients.consumer, self._clients.checkpoint
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
            else:
                self._on_empty_poll()
            if until_idle and self._idle():
                break
            self._references.poll()
            if not checkpoint.empty() and (checkpoint.expired() or not messages):
                self._commit()

    def _commit(self) -> None:
        self._before_commit()
        self.clients.checkpoint.commit()
        self._committed()
        self.summary.commits += 1

    # --- rebalances and references ------------------------------------------------------------

    def _on_assign(self, _consumer: Consumer, partitions: list[TopicPartition]) -> None:
        assert self._references is not None
        new = sorted({tp.partition for tp in partitions} - set(self.states))
        started = time.monotonic()
        records: dict[int, list[tuple[bytes, bytes | None]]] = {p: [] for p in new}
        wanted = [TopicPartition(self.changelog, p) for p in new]
        for message in read_to_end(self.cfg.kafka, wanted, timeout_s=self.settings.restore_timeout_s):
            records[message.partition()].append((message.key(), message.value()))
        for partition in new:
            self.states[partition] = self._restore(partition, records[partition])
        log.info("%s assigned partitions %s; restored %d changelog records in %.2f s", self.metrics.service,
                 new, sum(len(r) for r in records.values()), time.monotonic() - started)

    def _on_revoke(self, _consumer: Consumer, partitions: list[TopicPartition]) -> None:
        if self._clients is not None and not self._clients.checkpoint.empty():
            self._commit()
        for partition in {tp.partition for tp in partitions}:
            self.states.pop(partition, None)
            self._forget(partition)

    def _on_lost(self, _consumer: Consumer, partitions: list[TopicPartition]) -> None:
        # The group moved on without us; our open transaction will be fenced. Stop and restart clean.
        for partition in {tp.partition for tp in partitions}:
            self.states.pop(partition, None)
            self._forget(partition)
        self._failed_on_lost = True

    def _on_profile(self, profile: ReferenceProfile) -> None:
        for state in self.states.values():
            state.set_profile(profile)

    def health(self) -> tuple[bool, dict[str, Any]]:
        """Healthy while the loop turns; reports the assigned partitions."""
        stalled_s = time.monotonic() - self._last_loop
        return stalled_s < _STALL_S, {"partitions": sorted(self.states), "stalled_s": round(stalled_s, 1)}
