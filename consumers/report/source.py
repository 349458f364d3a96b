"""What `driftline report` reads from Kafka: the model's reference and its pane partials.

A thin adapter around the pure `builder`. The latest profile comes from the compacted
`references` topic through `ReferenceBook`, as the services load it. `panes` may hold days of
partials of every model, so it is read in two passes by a group-less reader that never moves
the monitor's offsets, and holds one record at a time: `scan_panes` keeps only the header of
each of the model's records (key = model), `read_partials` then decodes just the partials
`builder.select_window` chose, reading from the first of them.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import orjson
from confluent_kafka import OFFSET_BEGINNING, Message, TopicPartition
from confluent_kafka.admin import AdminClient

from driftline.config import KafkaSettings
from driftline.consumers.common.kafka import make_reader, read_range, to_raw, topic_partitions
from driftline.consumers.common.references import ReferenceBook
from driftline.consumers.report.builder import ReportError
from driftline.schemas.codec import decode_batch
from driftline.schemas.profiles import PanePartial, ReferenceProfile

__all__ = ["PaneRead", "PaneRecord", "PaneScan", "latest_profile", "read_partials", "scan_panes"]


@dataclass(frozen=True, slots=True)
class PaneRecord:
    """The header of one partial on `panes` and where it lies (a `builder.PaneHeader`)."""

    model: str
    reference_id: str
    source: str
    pane_start: float
    pane_s: float
    n_events: int
    partition: int
    offset: int

    @property
    def pane_end(self) -> float:
        return self.pane_start + self.pane_s


@dataclass(frozen=True, slots=True)
class PaneScan:
    """Headers of the model's records on ``topic`` and how many could not be read."""

    topic: str
    records: list[PaneRecord]
    n_rejected: int


@dataclass(frozen=True, slots=True)
class PaneRead:
    """Decoded partials, and how many of the chosen records failed validation."""

    partials: list[PanePartial]
    n_rejected: int


def _partitions(settings: KafkaSettings, logical: str, timeout_s: float) -> list[TopicPartition]:
    """Every partition of a driftline topic; `ReportError` when it does not exist.

    The metadata probe keeps librdkafka quiet: an unreachable broker is one `KafkaException`
    for the command to print, not a connection log line every 50 ms until the timeout.
    """
    try:
        return topic_partitions(AdminClient(settings.client_config(log_level=0)), settings.topic(logical),
                                timeout_s=timeout_s)
    except KeyError as exc:
        raise ReportError(exc.args[0]) from None


def latest_profile(settings: KafkaSettings, model: str, *, timeout_s: float = 30.0) -> ReferenceProfile:
    """The model's current reference profile; `ReportError` when `references` holds none."""
    _partitions(settings, "references", timeout_s)
    book = ReferenceBook(settings)
    try:
        profiles = book.load()
    finally:
        book.close()
    profile = profiles.get(model)
    if profile is None:
        known = ", ".join(sorted(profiles)) or "none"
        raise ReportError(f"no reference profile for model {model!r} on {settings.topic('references')} "
                          f"(models with one: {known}); run `driftline reference build`")
    return profile


def _records(
    settings: KafkaSettings, starts: Sequence[TopicPartition], ends: dict[tuple[str, int], int] | None,
    timeout_s: float,
) -> Iterator[Message]:
    """Records from ``starts`` up to (not including) ``ends`` (default: the current end), one at a time."""
    consumer = make_reader(settings, "driftline-report")
    try:
        yield from read_range(consumer, starts, ends, timeout_s=timeout_s, batch=1000)
    finally:
        consumer.close()


def scan_panes(settings: KafkaSettings, model: str, *, timeout_s: float = 120.0) -> PaneScan:
    """The header of every record of ``model`` on `panes`, up to the end offsets at the start of the scan."""
    partitions = _partitions(settings, "panes", min(timeout_s, 30.0))
    topic = partitions[0].topic
    key = model.encode()
    records: list[PaneRecord] = []
    rejected = 0
    for message in _records(settings, [TopicPartition(topic, tp.partition, OFFSET_BEGINNING) for tp in partitions],
                            None, timeout_s):
        if message.key() != key:
            continue
        try:
            data = orjson.loads(message.value() or b"")
            records.append(PaneRecord(model=data["model"], reference_id=data["reference_id"], source=data["source"],
                                      pane_start=float(data["pane_start"]), pane_s=float(data["pane_s"]),
                                      n_events=int(data["n_events"]), partition=message.partition(),
                                      offset=message.offset()))
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
            rejected += 1
    return PaneScan(topic, records, rejected)


def read_partials(
    settings: KafkaSettings, topic: str, chosen: Sequence[PaneRecord], *, timeout_s: float = 120.0,
    max_payload_bytes: int = 16_777_216,
) -> PaneRead:
    """Decode the ``chosen`` records of `panes` (``topic``), in the order given, reading from the first to the last."""
    if not chosen:
        return PaneRead([], 0)
    wanted = {(r.partition, r.offset): i for i, r in enumerate(chosen)}
    starts: dict[int, int] = {}
    ends: dict[tuple[str, int], int] = {}
    for record in chosen:
        starts[record.partition] = min(starts.get(record.partition, record.offset), record.offset)
        ends[(topic, record.partition)] = max(ends.get((topic, record.partition), 0), record.offset + 1)
    picked = sorted(((wanted[(m.partition(), m.offset())], to_raw(m))
                     for m in _records(settings, [TopicPartition(topic, p, o) for p, o in starts.items()], ends,
                                       timeout_s)
                     if (m.partition(), m.offset()) in wanted), key=lambda pair: pair[0])
    decoded = decode_batch((raw for _, raw in picked), PanePartial, max_payload_bytes=max_payload_bytes)
    return PaneRead(decoded.events, len(decoded.rejects) + len(chosen) - len(picked))
