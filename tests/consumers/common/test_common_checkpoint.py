"""Checkpoint: offsets only move forward, expiry by count and time, commit steps in order."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest
from confluent_kafka import KafkaError

from driftline.consumers.common.checkpoint import Checkpoint
from driftline.consumers.common.kafka import DeliveryFailed


@dataclass
class FakeMessage:
    _topic: str
    _partition: int
    _offset: int

    def topic(self) -> str:
        return self._topic

    def partition(self) -> int:
        return self._partition

    def offset(self) -> int:
        return self._offset


@dataclass
class Recorder:
    calls: list[tuple[str, Any]] = field(default_factory=list)

    def consumer_group_metadata(self) -> str:
        return "group-metadata"

    def commit(self, *, offsets: list[Any], asynchronous: bool) -> None:
        self.calls.append(("commit", sorted((tp.topic, tp.partition, tp.offset) for tp in offsets)))

    def flush(self) -> int:
        self.calls.append(("flush", None))
        return 0

    def send_offsets_to_transaction(self, positions: list[Any], metadata: str) -> None:
        self.calls.append(("send_offsets", sorted((tp.topic, tp.partition, tp.offset) for tp in positions)))

    def commit_transaction(self) -> None:
        self.calls.append(("commit_transaction", None))

    def begin_transaction(self) -> None:
        self.calls.append(("begin_transaction", None))


def test_offsets_only_move_forward_and_commit_in_order(manual_clock) -> None:
    recorder, clock = Recorder(), manual_clock
    checkpoint = Checkpoint(recorder, recorder, interval_s=1.0, transactional=False, clock=clock)  # type: ignore[arg-type]
    for offset in (5, 7, 6):
        checkpoint.store_offset(FakeMessage("t", 0, offset))  # type: ignore[arg-type]
    assert [(tp.partition, tp.offset) for tp in checkpoint.positions()] == [(0, 8)]
    assert checkpoint.commit() == 3
    assert recorder.calls == [("flush", None), ("commit", [("t", 0, 8)])]
    assert checkpoint.empty()


def test_transactional_commit_sends_offsets_then_commits_then_begins(manual_clock) -> None:
    recorder = Recorder()
    checkpoint = Checkpoint(recorder, recorder, interval_s=1.0, clock=manual_clock)  # type: ignore[arg-type]
    checkpoint.store_offset(FakeMessage("t", 2, 10))  # type: ignore[arg-type]
    checkpoint.commit()
    assert [name for name, _ in recorder.calls] == ["send_offsets", "commit_transaction", "begin_transaction"]
    assert recorder.calls[0][1] == [("t", 2, 11)]


def test_expired_by_time_or_count(manual_clock) -> None:
    clock = manual_clock
    checkpoint = Checkpoint(Recorder(), Recorder(), interval_s=2.0, max_messages=2, clock=clock)  # type: ignore[arg-type]
    assert not checkpoint.expired()
    clock.now = 2.5
    assert checkpoint.expired()
    checkpoint.commit()
    checkpoint.store_offset(FakeMessage("t", 0, 0))  # type: ignore[arg-type]
    assert not checkpoint.expired()
    checkpoint.store_offset(FakeMessage("t", 0, 1))  # type: ignore[arg-type]
    assert checkpoint.expired()


def test_failed_delivery_blocks_the_offset_commit(manual_clock) -> None:
    recorder = Recorder()
    checkpoint = Checkpoint(recorder, recorder, interval_s=1.0, transactional=False, clock=manual_clock)  # type: ignore[arg-type]
    checkpoint.store_offset(FakeMessage("t", 0, 0))  # type: ignore[arg-type]
    checkpoint.on_delivery(KafkaError(KafkaError._MSG_TIMED_OUT), None)  # type: ignore[arg-type]
    with pytest.raises(DeliveryFailed):
        checkpoint.commit()
    assert [name for name, _ in recorder.calls] == ["flush"]


def test_rejects_bad_interval() -> None:
    with pytest.raises(ValueError, match="interval_s"):
        Checkpoint(Recorder(), Recorder(), interval_s=0)  # type: ignore[arg-type]
