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

import logging
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import KafkaException, Message, TopicPartition

from driftline.config import DriftlineConfig
from driftline.consumers.common.http import MetricsServer
from driftline.consumers.common.kafka import ConsumedBatch, InputKey, raise_for_msg_error, split_consumed
from driftline.consumers.common.metrics import Metrics
from driftline.consumers.common.service import TransactionalService
from driftline.consumers.common.signals import StopFlag
from driftline.consumers.ingest.handler import IngestOutputs, PartitionState
from driftline.consumers.ingest.native import split_consumed as native_split
from driftline.schemas.codec import MessageView, encode

__all__ = ["CONSUMER_REQUIRED", "IdleInputs", "IngestApp", "IngestSummary", "consumer_tuning"]

log = logging.getLogger("driftline.ingest")

# Tuning, which a `[kafka.client]` value replaces: large fetches (a batch of 5 000 predictions is
# ~2.5 MB of JSON), and `consumer_tuning` adds a prefetch of about one batch per partition.
_CONSUMER_TUNING = {"fetch.max.bytes": 52_428_800, "max.partition.fetch.bytes": 10_485_760}
# How many batches the input ahead in event time may hold before `IngestApp._pace` pauses it. A pause
# costs its prefetch (fetched again on resume) and holding costs memory and what a restart reads
# again. With 1, two ingest processes in bench/e2e_bench.py ran at 102-117 k events/s (15.9-13.5 µs
# of machine CPU per event); with 4 at 114-128 k (14.2-13.6 µs), ingest's peak memory unchanged.
_HELD_BATCHES_BEFORE_PAUSE = 4
_NOTHING: tuple[tuple[()], tuple[()], tuple[()]] = ((), (), ())  # an input without a message in a poll
# Required: the end-of-partition events tell ingest when an input is idle.
CONSUMER_REQUIRED = {"enable.partition.eof": True}


def consumer_tuning(cfg: DriftlineConfig) -> dict[str, Any]:
    """Ingest's tuning on top of the common consumer settings (`[kafka.client]` still wins over it).

    ``queued.min.messages`` is ``ingest.batch_size`` (librdkafka prefetches up to 100 000
    messages per partition by default). `IngestApp._pace` pauses the input that is ahead, and
    librdkafka drops what it had prefetched for a paused partition and fetches it again on
    resume: with a prefetch of one batch little is fetched twice. In ``bench/e2e_bench.py``
    (~70 pauses per 10^6 + 10^6 events, when the hold limit was one batch) the machine's CPU
    per event fell ~7 % (six and eight alternated runs, 14.6-16.1 against 16.0-17.5 µs).
    """
    return {**_CONSUMER_TUNING, "queued.min.messages": cfg.ingest.batch_size}


@dataclass(slots=True)
class IngestSummary:
    """What a `run` did, for tests and the exit log line."""

    consumed: int = 0
    labeled: int = 0
    panes: int = 0
    rejected: int = 0
    commits: int = 0


@dataclass
class IdleInputs:
    """Which input partitions count as idle: at their end for ``idle_after_s`` of wall time.

    A live stream reaches its end whenever its consumer catches up with its producer, so the
    end alone is a passing state. Were it taken as idleness at once, the other stream's held
    events would be released up to its own progress, and this stream's next events, a moment
    later, would be late for their panes (outcomes lost to the labeled sketches). Like Flink's
    ``withIdleness``, a partition therefore stops holding the other back only after it has
    stayed at its end for a grace period; `pending` names those whose idleness the handler
    has not been told yet.
    """

    idle_after_s: float
    clock: Callable[[], float] = time.monotonic
    _end_since: dict[InputKey, float] = field(default_factory=dict)
    _told: set[InputKey] = field(default_factory=set)  # idle, and the handler was called with it idle

    def reached_end(self, key: InputKey) -> None:
        self._end_since.setdefault(key, self.clock())

    def received(self, key: InputKey) -> None:
        self._end_since.pop(key, None)
        self._told.discard(key)

    def at_end(self, key: InputKey) -> bool:
        return key in self._end_since

    def idle(self, key: InputKey) -> bool:
        since = self._end_since.get(key)
        return since is not None and self.clock() - since >= self.idle_after_s

    def told(self, key: InputKey) -> None:
        """The handler was called with ``key`` idle."""
        self._told.add(key)

    def pending(self, partitions: Sequence[int]) -> list[int]:
        """Partitions with an input that turned idle since the handler last saw them."""
        return [p for p in partitions if any(self.idle(k) and k not in self._told for k in ((True, p), (False, p)))]

    def all_idle(self, partitions: Sequence[int]) -> bool:
        """Every input of ``partitions`` idle and the handler told so: nothing is held back any longer."""
        keys = [(is_predictions, p) for p in partitions for is_predictions in (True, False)]
        return bool(keys) and all(key in self._told for key in keys)

    def forget(self, partition: int) -> None:
        for key in ((True, partition), (False, partition)):
            self._end_since.pop(key, None)
            self._told.discard(key)


class IngestApp(TransactionalService[PartitionState, IngestSummary]):
    """Composition root of stage 1: a `PartitionState` per source partition, pacing, metrics.

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
        super().__init__(
            cfg, cfg.ingest, metrics or Metrics("ingest"), stop or StopFlag(), IngestSummary(),
            instance_id=instance_id or cfg.ingest.instance_id,
            inputs=[cfg.kafka.topic("predictions"), cfg.kafka.topic("outcomes")],
            consumer_tuning=consumer_tuning(cfg),
            consumer_overrides=CONSUMER_REQUIRED,
        )
        self.settings = cfg.ingest
        self.topics = {name: cfg.kafka.topic(name) for name in ("predictions", "outcomes", "labeled", "panes")}
        self._inputs = IdleInputs(cfg.ingest.idle_after_s)
        self._paused: set[InputKey] = set()  # paused: far ahead of the other
        self._pending_out: dict[str, int] = defaultdict(int)

    def _restore(self, partition: int, records: list[tuple[bytes, bytes | None]]) -> PartitionState:
        assert self._references is not None
        return PartitionState.restore(partition, self.settings, self._references.profiles, records)

    def _handle(self, messages: Sequence[Message]) -> None:
        split = native_split if native_split is not None and self.settings.native else split_consumed
        inputs, at_end, errors = split(messages, self.topics["predictions"])
        for message in errors:
            raise_for_msg_error(message)  # a partition-EOF notice (that input is at its end) returns; others raise
        by_partition = {partition: (ConsumedBatch(*inputs.get((True, partition), _NOTHING)),
                                    ConsumedBatch(*inputs.get((False, partition), _NOTHING)))
                        for partition in dict.fromkeys(partition for _, partition in at_end)}
        for key, ended in at_end.items():
            if ended:
                self._inputs.reached_end(key)
            else:
                self._inputs.received(key)
        consumed = sum(len(p) + len(o) for p, o in by_partition.values())
        self.clients.checkpoint.count(consumed)  # their offsets are stored at commit: `_before_commit`
        for partition, (predictions, outcomes) in by_partition.items():
            if partition not in self.states:  # assignment callbacks always come first; guard against a broker surprise
                raise RuntimeError(f"message from unassigned partition {partition}")
            self._handle_partition(partition, predictions, outcomes)
        self._release_idle()
        self.summary.consumed += consumed
        self._refresh_gauges()

    def _handle_partition(self, partition: int, predictions: Sequence[MessageView],
                          outcomes: Sequence[MessageView]) -> None:
        state = self.states[partition]
        idle = {key: self._inputs.idle(key) for key in ((True, partition), (False, partition))}
        out = state.handle(predictions, outcomes, predictions_idle=idle[True, partition],
                           outcomes_idle=idle[False, partition], wall_clock_s=time.time())
        for key in (key for key, is_idle in idle.items() if is_idle):
            self._inputs.told(key)
        self._emit(out)
        self._pace(partition, state)

    def _release_idle(self) -> None:
        """Hand every partition whose input has just turned idle to its handler, so it releases what it held."""
        for partition in self._inputs.pending(list(self.states)):
            self._handle_partition(partition, [], [])

    def _pace(self, partition: int, state: PartitionState) -> None:
        """Pause the input that is ahead in event time while it holds over a few batches; resume it after.

        When catching up, Kafka hands out one topic far ahead of the other (outcomes are small, so
        a fetch holds many more of them). What is held stays in memory, and the committed offsets
        wait at its first event, so a restart reads it all again; pausing the stream that is
        ahead keeps that to a few batches (`_HELD_BATCHES_BEFORE_PAUSE`). Only the stream ahead
        is ever paused, so the other always flows (and at its end releases the hold); pausing
        only stops fetching: no record is skipped. An empty poll resumes everything
        (`_resume_all`): the paused stream is then the only work left.
        """
        consumer = self.clients.consumer
        limit = self.settings.batch_size * _HELD_BATCHES_BEFORE_PAUSE
        predictions_ahead = state.prediction_progress_ts > state.outcome_progress_ts
        outcomes_ahead = state.outcome_progress_ts > state.prediction_progress_ts
        for is_predictions, held, ahead in ((True, state.held_predictions, predictions_ahead),
                                            (False, state.held_outcomes, outcomes_ahead)):
            key = (is_predictions, partition)
            ahead = ahead and not self._inputs.at_end((not is_predictions, partition))  # else nothing to wait for
            if key not in self._paused and ahead and len(held) > limit:
                self._paused.add(key)
                consumer.pause([self._input_partition(is_predictions, partition)])
            elif key in self._paused and (not ahead or len(held) <= limit // 2):
                self._paused.discard(key)
                consumer.resume([self._input_partition(is_predictions, partition)])

    def _resume_all(self) -> None:
        self.clients.consumer.resume([self._input_partition(*key) for key in self._paused])
        self._paused.clear()

    def _input_partition(self, is_predictions: bool, partition: int) -> TopicPartition:
        return TopicPartition(self.topics["predictions" if is_predictions else "outcomes"], partition)

    def _idle(self) -> bool:
        """Every assigned input partition idle (consumed to its end for ``idle_after_s``), so nothing held back."""
        return self._inputs.all_idle(list(self.states))

    def _emit(self, out: IngestOutputs) -> None:
        # a pending changelog counts as one output: the commit must happen even when nothing else was produced
        self.clients.checkpoint.add_outputs(len(out.labeled) + len(out.panes) + len(out.rejects) + out.state_changed)
        m, service = self.metrics, self.metrics.service
        m.events_in.labels(service=service, topic=self.topics["predictions"]).inc(out.predictions_in)
        m.events_in.labels(service=service, topic=self.topics["outcomes"]).inc(out.outcomes_in)
        self._produce_all(self.topics["labeled"], out.labeled)
        for partial in out.panes:
            self._produce(self.topics["panes"], encode(partial), partial.model.encode())
            m.panes_emitted.labels(model=partial.model).inc()
        for reject in out.rejects:
            self.dlq.send(reject)
        self._pending_out[self.topics["labeled"]] += len(out.labeled)
        self._pending_out[self.topics["panes"]] += len(out.panes)
        m.join.labels(result="hit").inc(out.join_hits)
        m.join.labels(result="outcome_first").inc(out.join_outcome_first)
        m.join.labels(result="expired").inc(out.join_expired)
        for model, late in out.late_by_model.items():
            m.late_events.labels(service=service, model=model).inc(late)
        for model, count in out.unmonitored_by_model.items():
            m.unmonitored_events.labels(model=model).inc(count)
        self.summary.labeled += len(out.labeled)
        self.summary.panes += len(out.panes)
        self.summary.rejected += len(out.rejects)

    def _produce_all(self, topic: str, records: list[tuple[bytes, bytes | None]], partition: int = -1) -> None:
        """Produce (key, value) records into the open transaction; one call per record, no Python frame between."""
        produce = self.clients.producer.produce
        for key, value in records:
            try:
                produce(topic, value, key, partition)
            except BufferError:  # local queue full: wait for it as `_produce` does
                self._produce(topic, value, key, None if partition == -1 else partition)

    def _produce(self, topic: str, value: bytes | None, key: bytes, partition: int | None = None) -> None:
        self.clients.produce(topic, value, key, partition)

    def _refresh_gauges(self) -> None:
        if not self.states:
            return
        states = self.states.values()
        self.metrics.join_store_size.labels(kind="predictions").set(sum(s.join.pending_predictions for s in states))
        self.metrics.join_store_size.labels(kind="outcomes").set(sum(s.join.pending_outcomes for s in states))
        watermarks = [s.panes.watermark for s in states if s.panes.watermark != float("-inf")]
        if watermarks:
            self.metrics.watermark_seconds.labels(service=self.metrics.service).set(min(watermarks))

    def _before_commit(self) -> None:
        """Each partition's state changes since the last commit go into the transaction being committed,
        with the input offsets up to its first event still held (`PartitionState.committable_offsets`)."""
        checkpoint = self.clients.checkpoint
        for partition, state in self.states.items():
            self._produce_all(self.changelog, state.changelog(), partition)
            for topic, offset in zip((self.topics["predictions"], self.topics["outcomes"]),
                                     state.committable_offsets(), strict=True):
                if offset is not None:
                    checkpoint.store_position(topic, partition, offset)

    def _committed(self) -> None:
        for topic, count in self._pending_out.items():
            self.metrics.events_out.labels(service=self.metrics.service, topic=topic).inc(count)
        self._pending_out.clear()

    def _on_empty_poll(self) -> None:
        if self._paused:
            self._resume_all()
        self._release_idle()

    def _forget(self, partition: int) -> None:
        paused = [key for key in self._paused if key[1] == partition]
        if paused and self._clients is not None:  # a partition that comes back must not come back paused
            try:
                self._clients.consumer.resume([self._input_partition(*key) for key in paused])
            except KafkaException as exc:  # lost rather than revoked: the service stops anyway
                log.warning("could not resume %s: %s", paused, exc)
        self._paused.difference_update(paused)
        self._inputs.forget(partition)


def serve(cfg: DriftlineConfig, *, stop: StopFlag, instance_id: str | None = None) -> IngestSummary:
    """Run stage 1 with its `/metrics` and `/healthz` until a signal stops it."""
    app = IngestApp(cfg, instance_id=instance_id, stop=stop)
    with MetricsServer(app.metrics.registry, host=cfg.metrics.host, port=cfg.metrics.ingest_port, health=app.health):
        return app.run()
