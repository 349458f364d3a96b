"""The dead-letter writer on the real broker: each reject reason lands in the dlq with its headers."""

from __future__ import annotations

import contextlib
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import orjson
import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, Message, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from driftline.consumers.common.dlq import DeadLetterWriter
from driftline.consumers.common.metrics import Metrics
from driftline.producers.simulator import Simulator
from driftline.schemas import PredictionEvent, RawMessage, decode_batch

MAX_PAYLOAD_BYTES = 2048
_GOOD = next(Simulator(["churn"], seed=41).batches(1)).values[0]
BAD_PAYLOADS = {
    "malformed_json": _GOOD[:40],
    "schema_violation": _GOOD.replace(b'"model":', b'"model_name":', 1),
    "non_finite": _GOOD[:-1] + b',"confidence":NaN}',
    "payload_too_large": _GOOD[:-1] + b',"padding":"' + b"x" * MAX_PAYLOAD_BYTES + b'"}',
    "unknown_schema_version": _GOOD.replace(b'"schema_version":1', b'"schema_version":99', 1),
}


def _read(bootstrap: str, topic: str, expected: int, timeout_s: float = 20.0) -> list[Message]:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "dlq-test", "enable.auto.commit": False})
    consumer.assign([TopicPartition(topic, 0, OFFSET_BEGINNING)])
    messages: list[Message] = []
    deadline = time.monotonic() + timeout_s
    try:
        while len(messages) < expected and time.monotonic() < deadline:
            for msg in consumer.consume(num_messages=100, timeout=0.5):
                assert msg.error() is None, msg.error()
                messages.append(msg)
    finally:
        consumer.close()
    return messages


@dataclass(frozen=True)
class DlqRun:
    source: str
    dlq: str
    accepted_keys: list[bytes]
    dead: dict[bytes, Message]
    metrics: Metrics


@pytest.fixture(scope="module")
def dlq_run(kafka) -> Iterator[DlqRun]:  # type: ignore[no-untyped-def]
    """One good and one bad message per reason through decode -> DeadLetterWriter -> dlq, read back."""
    admin = AdminClient(kafka.client_config())
    suffix = uuid.uuid4().hex[:10]
    source, dlq = f"test.dlq-source.{suffix}", f"test.dlq.{suffix}"
    for future in admin.create_topics([NewTopic(source, 1, 1), NewTopic(dlq, 1, 1)]).values():
        future.result(timeout=30)
    producer = Producer(kafka.client_config(**{"enable.idempotence": True}))
    producer.produce(source, value=_GOOD, key=b"req-good")
    for reason, payload in BAD_PAYLOADS.items():
        producer.produce(source, value=payload, key=f"req-{reason}".encode(), headers=[("traceparent", b"00-abc")])
    assert producer.flush(10) == 0
    raw = [RawMessage(m.value(), m.key(), m.topic(), m.partition(), m.offset(), tuple(m.headers() or ()))
           for m in _read(kafka.bootstrap, source, 1 + len(BAD_PAYLOADS))]
    result = decode_batch(raw, PredictionEvent, max_payload_bytes=MAX_PAYLOAD_BYTES)
    metrics = Metrics("ingest-test")
    assert DeadLetterWriter(producer, dlq, metrics).send_all(result.rejects) == len(result.rejects)
    assert producer.flush(10) == 0
    dead = {m.key(): m for m in _read(kafka.bootstrap, dlq, len(result.rejects))}
    yield DlqRun(source, dlq, [m.key or b"" for m in result.messages], dead, metrics)
    for future in admin.delete_topics([source, dlq]).values():
        with contextlib.suppress(Exception):
            future.result(timeout=30)


@pytest.mark.integration
def test_only_the_good_message_is_accepted(dlq_run: DlqRun) -> None:
    assert dlq_run.accepted_keys == [b"req-good"]
    assert len(dlq_run.dead) == len(BAD_PAYLOADS)


@pytest.mark.integration
@pytest.mark.parametrize("reason", sorted(BAD_PAYLOADS))
def test_reject_lands_in_dlq_with_its_reason(dlq_run: DlqRun, reason: str) -> None:
    dead = dlq_run.dead[f"req-{reason}".encode()]
    headers = dict(dead.headers() or [])
    assert dead.value() == BAD_PAYLOADS[reason]
    assert headers["driftline.reason"] == reason.encode()
    assert headers["driftline.source.topic"] == dlq_run.source.encode()
    assert headers["driftline.source.partition"] == b"0"
    assert headers["driftline.source.offset"] == str(1 + list(BAD_PAYLOADS).index(reason)).encode()
    assert headers["driftline.detail"]
    assert headers["traceparent"] == b"00-abc"
    assert dlq_run.metrics.registry.get_sample_value(
        "driftline_events_rejected_total", {"service": "ingest-test", "reason": reason}) == 1.0


def test_writer_waits_when_the_local_queue_is_full() -> None:
    """A full librdkafka queue (BufferError) is served by polling, then the send is retried."""

    class FullOnce:
        def __init__(self) -> None:
            self.produced: list[tuple[str, bytes | None]] = []
            self.polls = 0

        def produce(self, topic: str, value: bytes | None = None, key: bytes | None = None, **_: object) -> None:
            if self.polls == 0:
                raise BufferError("queue full")
            self.produced.append((topic, value))

        def poll(self, timeout: float = 0.0) -> int:
            self.polls += 1
            return 0

    rejects = decode_batch([RawMessage(b"{", b"k")], PredictionEvent).rejects
    fake = FullOnce()
    metrics = Metrics("t")
    DeadLetterWriter(fake, "dlq", metrics).send(rejects[0])
    assert fake.polls == 1 and fake.produced == [("dlq", b"{")]
    assert metrics.registry.get_sample_value("driftline_events_rejected_total",
                                             {"service": "t", "reason": "malformed_json"}) == 1.0
    assert orjson.loads(_GOOD)["model"] == "churn"
