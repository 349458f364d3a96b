"""The exactly-once service shell on the real broker: state restored from the changelog, outputs atomic."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import pytest
from confluent_kafka import Message, Producer, TopicPartition

from driftline.config import DriftlineConfig, load_config
from driftline.consumers.common.kafka import raise_for_msg_error, read_to_end
from driftline.consumers.common.metrics import Metrics
from driftline.consumers.common.service import TransactionalService
from driftline.consumers.common.signals import StopFlag
from driftline.schemas.profiles import ReferenceProfile
from driftline.topics import ensure_topics

pytestmark = pytest.mark.integration


@dataclass
class Tally:
    """A partition's state: how many records it has seen (restored from the changelog)."""

    seen: int = 0

    def set_profile(self, profile: ReferenceProfile) -> None:
        """Profiles do not matter to a tally."""


@dataclass(slots=True)
class TallySummary:
    consumed: int = 0
    commits: int = 0


class TallyService(TransactionalService[Tally, TallySummary]):
    """Counts `predictions` per partition; forwards each record to `labeled` with its running count."""

    def __init__(self, cfg: DriftlineConfig, *extra_inputs: str) -> None:
        super().__init__(cfg, cfg.ingest, Metrics("ingest"), StopFlag(), TallySummary(), instance_id="t",
                         inputs=[cfg.kafka.topic("predictions"), *extra_inputs],
                         consumer_overrides={"enable.partition.eof": True})
        self.at_end: set[int] = set()

    def _restore(self, partition: int, records: list[tuple[bytes, bytes | None]]) -> Tally:
        return Tally(int(records[-1][1] or b"0") if records else 0)

    def _handle(self, messages: Sequence[Message]) -> None:
        for message in messages:
            if not raise_for_msg_error(message):
                self.at_end.add(message.partition())
                continue
            state = self.states[message.partition()]
            state.seen += 1
            self.clients.produce(self.cfg.kafka.topic("labeled"), str(state.seen).encode(), message.value())
            self.clients.produce(self.changelog, str(state.seen).encode(), b"seen", message.partition())
            self.clients.checkpoint.store_offset(message)
            self.summary.consumed += 1

    def _idle(self) -> bool:
        return bool(self.states) and self.at_end >= set(self.states)


def tally_setup(kafka, topic_prefix: str, commit_interval_s: float) -> tuple[DriftlineConfig, Callable[[range], None]]:
    """A one-partition topic set for the tally, and a function that sends values to its `predictions`."""
    cfg = load_config(None, kafka={"bootstrap_servers": kafka.bootstrap, "topic_prefix": topic_prefix,
                                   "partitions": 1},
                      ingest={"group_id": f"{topic_prefix}tally", "commit_interval_s": commit_interval_s,
                              "poll_timeout_s": 0.2})
    ensure_topics(cfg.kafka)
    producer = Producer({"bootstrap.servers": kafka.bootstrap})

    def send(values: range) -> None:
        for value in values:
            producer.produce(cfg.kafka.topic("predictions"), str(value).encode())
        producer.flush(10)

    return cfg, send


def test_state_is_restored_from_the_changelog_and_outputs_are_committed_once(kafka, topic_prefix: str) -> None:
    cfg, send = tally_setup(kafka, topic_prefix, commit_interval_s=0.2)
    send(range(5))
    first = TallyService(cfg).run(until_idle=True, timeout_s=60)
    send(range(5, 8))
    summary = TallyService(cfg).run(until_idle=True, timeout_s=60)

    assert (first.consumed, summary.consumed) == (5, 3)  # the committed offsets held: nothing read twice
    assert summary.commits >= 1
    labeled = read_to_end(cfg.kafka, [TopicPartition(cfg.kafka.topic("labeled"), 0)])
    # each record once, and the second run's counts go on from the changelog (6, 7, 8), not from 1
    assert [(m.key(), m.value()) for m in labeled] == [(str(i).encode(), str(i + 1).encode()) for i in range(8)]


def test_a_poll_that_finds_nothing_commits_before_the_interval(kafka, topic_prefix: str) -> None:
    """Caught up, the service commits at once: its readers do not wait out ``commit_interval_s``."""
    cfg, send = tally_setup(kafka, topic_prefix, commit_interval_s=600.0)
    send(range(3))
    service = TallyService(cfg)
    runner = threading.Thread(target=service.run, kwargs={"timeout_s": 120})
    runner.start()
    try:
        deadline, visible = time.monotonic() + 30, []
        while len(visible) < 3 and time.monotonic() < deadline:
            visible = read_to_end(cfg.kafka, [TopicPartition(cfg.kafka.topic("labeled"), 0)])
            time.sleep(0.2)
        assert runner.is_alive()  # still running, far inside its 600 s commit interval
        assert [(m.key(), m.value()) for m in visible] == [(b"0", b"1"), (b"1", b"2"), (b"2", b"3")]
    finally:
        service.stop.set()
        runner.join(60)


def test_inputs_of_different_partition_counts_are_refused_at_start(kafka, topic_prefix: str, topic_factory) -> None:
    cfg = load_config(None, kafka={"bootstrap_servers": kafka.bootstrap, "topic_prefix": topic_prefix,
                                   "partitions": 1}, ingest={"group_id": f"{topic_prefix}tally"})
    ensure_topics(cfg.kafka)
    with pytest.raises(RuntimeError, match="same partition count"):
        TallyService(cfg, topic_factory("wide", partitions=2)).run(timeout_s=10)
