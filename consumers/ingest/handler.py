"""The work of stage 1 for one source partition, without Kafka: decode, align, join, pane sketches.

`PartitionState` owns the partition's `JoinStore` and pane aggregator (`RecordPanes`).
`handle` turns one batch of raw predictions and outcomes into outputs (labeled records as
JSON bytes, closed pane partials, rejects); `changelog` gives the net state changes since its
last call, for the commit; the service loop only moves bytes.

The hot path holds no pydantic objects: events stay the validated records `decode_records`
returns (`PredictionRecord`, `OutcomeRecord`; pydantic decides only the events its msgspec
shape check is unsure about), they are held and released with numpy (``argsort`` on the held
times), sketched from columns, joined with dicts on ``request_id`` and written out with
`labeled_json`. With the native hot path (``ingest.native``, `consumers.ingest.native`) the
events in driftline's own JSON form are read in Rust instead (a prediction as a
`ScannedPrediction`: its feature columns, and its labeled event's JSON but for the outcome's
part, held in Rust) and the labeled records written there; every other event takes the path
above, in place. Once sketched, a prediction waits for its outcome as that JSON, not its
features as Python objects: a scanned prediction as itself, any other as a `PendingPrediction`
(in ``bench/ingest_handler_bench.py``'s stream about 0.9 and 1.1 kB a waiting prediction, against
1.6 as a record, and no cold dict to walk when its outcome comes, which may be hours later).

Event-time alignment
    The two input topics are consumed independently, so one batch may hold minutes of
    predictions and none of their outcomes (always so when catching up after a restart).
    Applied as they come, the outcomes would then be late for their panes and the results
    would depend on batch boundaries. Decoded events are therefore *held* until the other
    stream has caught up: event time is cut into chunks no wider than the allowed lateness,
    and a chunk is released whole, in ts order, once both streams have passed it (a stream
    at the end of its partition does not hold the other back). So a release is never late
    because of the order in which Kafka delivered it, and a replay gives the same joins and
    sketches whatever its batches (the idea of Kafka Streams' timestamp-synchronised
    processing).

Changelog and input offsets (what `restore` rebuilds this state from)
    Held events are not copied to the changelog: the input topics hold them already. The
    offsets a commit stores for an input stop at its first event still held
    (`committable_offsets`), so after a crash or a rebalance the inputs are read again from
    there. What was already applied among the events read again is told apart by event time:
    at a commit every event read with ``ts`` below the release point has been applied and
    every other one is still held, so `handle` drops an event read again (offset below the
    snapshot's ``consumed_until``) whose ``ts`` is below the snapshot's release point, and
    every reject read again (it went to the dead-letter topic before). The changelog keeps
    what only ingest has: ``p:<request_id>`` -> a prediction waiting in the join store for
    its outcome (written when it enters the store, a tombstone once it is joined or expired),
    ``o:<request_id>`` likewise for outcomes, and ``panes`` -> the aggregator's open panes
    (``PaneAggregator.to_dict``), the release point and the offsets consumed. The join store
    nets its changes over a whole commit interval, in the pass that joins
    (`JoinStore.take_changes`: an entry written and deleted within it is not written at all),
    and the snapshot is taken once per commit, not per batch. Holding events for the
    alignment used to write every one of them and its tombstone whenever it spanned a commit:
    1.97 changelog records per input event on a live-like stream (batches of 0.25 s, a commit
    a second, outcomes 5 s behind), now 0.42 (the predictions waiting for their label); 0.30
    against 0.02 in ``bench/e2e_bench.py``'s catch-up.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from operator import attrgetter
from typing import Any

import msgspec
import numpy as np
import orjson

from driftline.config import IngestSettings
from driftline.consumers.ingest.columnar import HeldPrediction, RecordPanes
from driftline.consumers.ingest.native import labeled_records, scan_outcomes
from driftline.schemas.codec import (
    MessageView,
    OutcomeRecord,
    PendingPrediction,
    PredictionRecord,
    RawMessage,
    Record,
    RecordBatch,
    Reject,
    decode_records,
    labeled_json,
    pending_prediction,
    prediction_json,
)
from driftline.schemas.events import OutcomeEvent, PredictionEvent
from driftline.schemas.profiles import PanePartial, ReferenceProfile
from driftline.stream.join import Joinable, JoinStore, labeled_id

__all__ = ["PANES_KEY", "IngestOutputs", "PartitionState"]

PANES_KEY = b"panes"
_PREDICTION_PREFIX = b"p:"
_OUTCOME_PREFIX = b"o:"
_NO_TS = np.empty(0)
_NO_OFFSETS = np.empty(0, dtype=np.int64)
_record_json = msgspec.json.Encoder().encode
_ts_of = attrgetter("ts")


@dataclass(slots=True)
class IngestOutputs:
    """Everything one batch of one partition produces, plus the counts the service exports.

    ``labeled`` holds (key, value) records for the `labeled` topic: the model, and the
    `LabeledEvent` as JSON. ``state_changed``: the next `PartitionState.changelog` has records.
    """

    labeled: list[tuple[bytes, bytes]] = field(default_factory=list)
    panes: list[PanePartial] = field(default_factory=list)
    rejects: list[Reject] = field(default_factory=list)
    state_changed: bool = False
    predictions_in: int = 0
    outcomes_in: int = 0
    join_hits: int = 0
    join_outcome_first: int = 0
    join_expired: int = 0
    late_by_model: dict[str, int] = field(default_factory=dict)
    unmonitored_by_model: dict[str, int] = field(default_factory=dict)


class PartitionState:
    """Held events, join store and open panes of one source partition.

    Parameters
    ----------
    partition
        The source partition; also the pane partials' ``source`` and the changelog partition.
    settings
        The ingest section: label delay, pane size, lateness, payload limit.
    profiles
        Reference profile per model, fixing the pane sketches' bins.
    """

    def __init__(self, partition: int, settings: IngestSettings, profiles: Mapping[str, ReferenceProfile]) -> None:
        self.partition = partition
        self.settings = settings
        self.chunk_s = settings.allowed_lateness_s if settings.allowed_lateness_s > 0 else settings.pane_s
        self.join = JoinStore(settings.max_label_delay_s)
        self.panes = RecordPanes(
            profiles, pane_s=settings.pane_s, allowed_lateness_s=settings.allowed_lateness_s, source=str(partition),
            native=settings.native,
        )
        self.held_predictions = _Held()
        self.held_outcomes = _Held()
        self.prediction_progress_ts = -math.inf
        self.outcome_progress_ts = -math.inf
        self.released_below_ts = -math.inf
        self.consumed_until: list[int | None] = [None, None]  # per input (predictions, outcomes): next offset
        self._replay: list[tuple[int, float] | None] = [None, None]  # per input: (read again below, applied below ts)
        self._changed = False

    def set_profile(self, profile: ReferenceProfile) -> None:
        self.panes.set_profile(profile)

    def handle(
        self,
        predictions: Sequence[MessageView],
        outcomes: Sequence[MessageView],
        *,
        predictions_idle: bool = False,
        outcomes_idle: bool = False,
        wall_clock_s: float | None = None,
    ) -> IngestOutputs:
        """Decode a batch, release what both streams have passed, join and aggregate it.

        ``predictions_idle`` / ``outcomes_idle``: that input partition is at its end, so it
        must not hold the other back. ``wall_clock_s``: now, for the ``max_future_s`` check
        (None: no check). Rejects are returned, never raised.
        """
        out = IngestOutputs(predictions_in=len(predictions), outcomes_in=len(outcomes))
        limit = self.settings.max_payload_bytes
        max_future_s = self.settings.max_future_s
        max_ts = math.inf if wall_clock_s is None or max_future_s is None else wall_clock_s + max_future_s
        decoded = self._read(0, predictions, self._decode(predictions, PredictionEvent, limit, max_ts))
        decoded_outcomes = self._read(1, outcomes, self._decode(outcomes, OutcomeEvent, limit, max_ts))
        out.rejects = decoded.rejects + decoded_outcomes.rejects
        self.prediction_progress_ts = self.held_predictions.add(decoded.records, decoded.offsets,
                                                                self.prediction_progress_ts)
        self.outcome_progress_ts = self.held_outcomes.add(decoded_outcomes.records, decoded_outcomes.offsets,
                                                          self.outcome_progress_ts)

        horizon = min(
            math.inf if predictions_idle else self.prediction_progress_ts,
            math.inf if outcomes_idle else self.outcome_progress_ts,
        )
        counters_before = self.panes.counters
        stats = self.join.stats
        hits, outcome_first = stats.hits, stats.outcome_first
        released_predictions, released_outcomes = self._release(horizon)
        for chunk_predictions, chunk_outcomes in self._chunks(released_predictions, released_outcomes):
            self._apply(chunk_predictions, chunk_outcomes, out)

        out.join_expired = len(self.join.expire().predictions)
        out.join_hits = stats.hits - hits
        out.join_outcome_first = stats.outcome_first - outcome_first
        out.panes = self.panes.close_panes()
        counters = self.panes.counters
        out.late_by_model = _increase(counters_before.late, counters.late)
        out.unmonitored_by_model = _increase(counters_before.unmonitored, counters.unmonitored)
        self._changed = self._changed or bool(
            self.join.changed or out.panes or released_predictions[0]
            or released_outcomes[0] or predictions or outcomes
        )
        out.state_changed = self._changed
        return out

    def _decode(self, messages: Sequence[MessageView], event_type: type[PredictionEvent] | type[OutcomeEvent],
                limit: int, max_ts: float) -> RecordBatch:
        """The native path's reading of each event it is sure of, `decode_records` for the others."""
        if not messages or not self.panes.native:
            return decode_records(messages, event_type, max_payload_bytes=limit, max_ts=max_ts)
        values = getattr(messages, "values", None)  # a ConsumedBatch read them while splitting the poll
        if values is None:
            values = [message.value for message in messages]
        if event_type is PredictionEvent:
            scanned = self.panes.scanner().scan(values, limit, max_ts)
        else:
            scanned = scan_outcomes(values, OutcomeRecord, limit, max_ts)
        if None not in scanned:
            offsets = getattr(messages, "offsets", None)
            return RecordBatch(scanned, list(offsets) if offsets is not None else [m.offset for m in messages])
        batch = RecordBatch()
        for message, record in zip(messages, scanned, strict=True):
            if record is None:  # the Python path decides, in place, so arrival order is kept
                decoded = decode_records([message], event_type, max_payload_bytes=limit, max_ts=max_ts)
                batch.records.extend(decoded.records)
                batch.offsets.extend(decoded.offsets)
                batch.rejects.extend(decoded.rejects)
            else:
                batch.records.append(record)
                batch.offsets.append(message.offset)
        return batch

    def _read(self, side: int, messages: Sequence[MessageView], decoded: RecordBatch) -> RecordBatch:
        """Note how far the input was read; of the events read again after a restore, keep only those still held."""
        if not messages:
            return decoded
        last = messages[-1].offset
        if last >= 0 and (self.consumed_until[side] is None or last + 1 > self.consumed_until[side]):
            self.consumed_until[side] = last + 1
        replay = self._replay[side]
        if replay is None:
            return decoded
        read_again_below, applied_below_ts = replay
        if last + 1 >= read_again_below:
            self._replay[side] = None
        kept = RecordBatch(rejects=[r for r in decoded.rejects if r.message.offset >= read_again_below])
        for record, offset in zip(decoded.records, decoded.offsets, strict=True):
            if offset >= read_again_below or record.ts >= applied_below_ts:
                kept.records.append(record)
                kept.offsets.append(offset)
        return kept

    def committable_offsets(self) -> tuple[int | None, int | None]:
        """Per input (predictions, outcomes): the offset a commit may store, the first event still held.

        Everything before it is applied and its effects are in the outputs and the changelog.
        None (store nothing, the committed offset stays): nothing read yet, or, after a restore,
        neither an event held nor the end of what is read again.
        """
        return self._committable(0, self.held_predictions), self._committable(1, self.held_outcomes)

    def _committable(self, side: int, held: _Held) -> int | None:
        return held.first_offset(self.consumed_until[side] if self._replay[side] is None else None)

    def changelog(self) -> list[tuple[bytes, bytes | None]]:
        """The net changelog writes since the last call, the pane snapshot last; what a commit must write."""
        if not self._changed:
            return []
        changes = self.join.take_changes()
        records = [*_changelog_records(_PREDICTION_PREFIX, changes.predictions, prediction_json),
                   *_changelog_records(_OUTCOME_PREFIX, changes.outcomes, _record_json)]
        snapshot = {"aggregator": self.panes.to_dict(), "released_below_ts": _finite_or_none(self.released_below_ts),
                    "consumed_until": self.consumed_until}
        records.append((PANES_KEY, orjson.dumps(snapshot)))
        self._changed = False
        return records

    def _release(self, horizon: float) -> tuple[tuple[list[Record], np.ndarray], tuple[list[Record], np.ndarray]]:
        """Take the held events of every whole chunk below ``horizon`` out of the hold, in ts order.

        Releasing whole chunks only makes each chunk's joins and sketches independent of
        where Kafka batches happened to end; when both inputs are at their end everything goes.
        """
        if horizon == math.inf:
            newest = max(self.prediction_progress_ts, self.outcome_progress_ts)
            cut = math.nextafter(newest, math.inf) if math.isfinite(newest) else -math.inf
        elif horizon == -math.inf:
            cut = -math.inf
        else:
            cut = math.floor(horizon / self.chunk_s) * self.chunk_s
        self.released_below_ts = max(self.released_below_ts, cut)
        below = self.released_below_ts
        return self.held_predictions.take_below(below), self.held_outcomes.take_below(below)

    def _chunks(
        self, predictions: tuple[list[Record], np.ndarray], outcomes: tuple[list[Record], np.ndarray]
    ) -> Iterator[tuple[list[Record], list[Record]]]:
        """Released events grouped by event-time chunk (no wider than the allowed lateness), in order."""
        prediction_records, prediction_ts = predictions
        outcome_records, outcome_ts = outcomes
        prediction_chunks = np.floor(prediction_ts / self.chunk_s)
        outcome_chunks = np.floor(outcome_ts / self.chunk_s)
        chunks = np.union1d(prediction_chunks, outcome_chunks)
        if len(chunks) <= 1:
            if prediction_records or outcome_records:
                yield prediction_records, outcome_records
            return
        prediction_ends = np.searchsorted(prediction_chunks, chunks, side="right").tolist()
        outcome_ends = np.searchsorted(outcome_chunks, chunks, side="right").tolist()
        prediction_start = outcome_start = 0
        for prediction_end, outcome_end in zip(prediction_ends, outcome_ends, strict=True):
            yield (prediction_records[prediction_start:prediction_end], outcome_records[outcome_start:outcome_end])
            prediction_start, outcome_start = prediction_end, outcome_end

    def _apply(self, predictions: list[Record], outcomes: list[Record], out: IngestOutputs) -> None:
        join = self.join
        self.panes.add_records(predictions)
        joined = join.add_predictions(map(_waiting, predictions))  # the sketches have the features: keep the rest
        joined.extend(join.add_outcomes(outcomes))  # each with a prediction that waited (perhaps put just above)
        if not joined:
            return
        if self.panes.native:
            rows, records, outcome_ts, models = labeled_records(joined)
            if None in records:  # values the native writer leaves to orjson
                records = [record or (p.model.encode(), labeled_json(event_id, p, o))
                           for record, (event_id, p, o) in zip(records, rows, strict=True)]
            self.panes.add_labeled_rows(rows, np.frombuffer(outcome_ts, dtype=np.float64), models)
        else:
            rows = [(labeled_id(p.event_id, o.event_id), p, o) for p, o in joined]
            records = [(p.model.encode(), labeled_json(event_id, p, o)) for event_id, p, o in rows]
            self.panes.add_labeled_rows(rows)
        out.labeled.extend(records)

    @classmethod
    def restore(
        cls,
        partition: int,
        settings: IngestSettings,
        profiles: Mapping[str, ReferenceProfile],
        records: Iterable[tuple[bytes, bytes | None]],
    ) -> PartitionState:
        """Rebuild a partition's state from its changelog records (oldest first).

        The events it held are not in them: the caller reads the inputs again from the offsets
        committed with those records, and `handle` drops what was applied before (module docstring).
        """
        latest: dict[bytes, bytes | None] = {}
        for key, value in records:
            latest[key] = value
        state = cls(partition, settings, profiles)
        snapshot = latest.pop(PANES_KEY, None)
        released_below_ts = -math.inf
        if snapshot is not None:
            data = orjson.loads(snapshot)
            state.panes.load_dict(data["aggregator"])
            if data["released_below_ts"] is not None:
                released_below_ts = float(data["released_below_ts"])
        state.released_below_ts = released_below_ts
        limit = settings.max_payload_bytes
        pending_predictions = decode_records(
            [RawMessage(v) for k, v in latest.items() if v is not None and k.startswith(_PREDICTION_PREFIX)],
            PredictionEvent, max_payload_bytes=limit,
        ).records
        pending_outcomes = decode_records(
            [RawMessage(v) for k, v in latest.items() if v is not None and k.startswith(_OUTCOME_PREFIX)],
            OutcomeEvent, max_payload_bytes=limit,
        ).records
        consumed_until = data.get("consumed_until") if snapshot is not None else None
        if consumed_until is None:  # written before held events were read again: they are in the changelog
            state.prediction_progress_ts = state.held_predictions.add(
                [r for r in pending_predictions if r.ts >= released_below_ts], [],
                max(map(_ts_of, pending_predictions), default=-math.inf))
            state.outcome_progress_ts = state.held_outcomes.add(
                [r for r in pending_outcomes if r.ts >= released_below_ts], [],
                max(map(_ts_of, pending_outcomes), default=-math.inf))
            pending_predictions = [r for r in pending_predictions if r.ts < released_below_ts]
            pending_outcomes = [r for r in pending_outcomes if r.ts < released_below_ts]
        else:
            state.consumed_until = list(consumed_until)
            state._replay = [None if until is None else (until, released_below_ts) for until in consumed_until]
        state.join.restore(map(pending_prediction, pending_predictions), pending_outcomes)
        return state


class _Held:
    """Decoded records waiting for the other stream (arrival order), with their times and offsets as arrays."""

    __slots__ = ("offsets", "records", "ts")

    def __init__(self) -> None:
        self.records: list[Record] = []
        self.ts = _NO_TS
        self.offsets = _NO_OFFSETS

    def __len__(self) -> int:
        return len(self.records)

    def add(self, records: list[Record], offsets: list[int], progress_ts: float) -> float:
        """Hold ``records`` (read at ``offsets``; none: restored from a changelog); returns ``progress_ts``
        moved to the newest time among them."""
        if not records:
            return progress_ts
        ts = np.fromiter(map(_ts_of, records), dtype=np.float64, count=len(records))
        positions = np.asarray(offsets, dtype=np.int64) if offsets else np.full(len(records), -1, dtype=np.int64)
        self.records.extend(records)
        self.ts = np.concatenate([self.ts, ts]) if len(self.ts) else ts
        self.offsets = np.concatenate([self.offsets, positions]) if len(self.offsets) else positions
        return max(progress_ts, float(ts.max()))

    def first_offset(self, consumed_until: int | None) -> int | None:
        """The offset of the first record held, or ``consumed_until`` when none is."""
        read = self.offsets[self.offsets >= 0] if len(self.offsets) else self.offsets
        return int(read.min()) if len(read) else consumed_until

    def take_below(self, cut: float) -> tuple[list[Record], np.ndarray]:
        """Remove and return the records with ``ts < cut``, in ts order (ties in arrival order)."""
        below = self.ts < cut
        n_below = int(np.count_nonzero(below))
        if n_below == 0:
            return [], _NO_TS
        if n_below == len(below):
            order = np.argsort(self.ts, kind="stable")
            records, self.records = self.records, []
            ts, self.ts, self.offsets = self.ts[order], _NO_TS, _NO_OFFSETS
        else:
            taken = np.flatnonzero(below)
            order = taken[np.argsort(self.ts[taken], kind="stable")]
            kept = np.flatnonzero(~below)
            records = self.records
            self.records = [records[i] for i in kept.tolist()]
            ts, self.ts, self.offsets = self.ts[order], self.ts[kept], self.offsets[kept]
        return [records[i] for i in order.tolist()], ts


def _changelog_records(prefix: bytes, entries: Mapping[str, Joinable | None],
                       encode: Callable[[Any], bytes]) -> list[tuple[bytes, bytes | None]]:
    """Changelog records of one side's net changes: its prefix plus the request id, the entry encoded or None."""
    return [(prefix + request_id.encode(), None if entry is None else encode(entry))
            for request_id, entry in entries.items()]


def _waiting(record: HeldPrediction) -> PendingPrediction | HeldPrediction:
    """What a prediction waits for its outcome as: a scanned one waits as itself (it holds its labeled JSON)."""
    return pending_prediction(record) if isinstance(record, PredictionRecord) else record


def _increase(before: Mapping[str, int], after: Mapping[str, int]) -> dict[str, int]:
    """What each count of ``after`` added to ``before``: the counts that moved."""
    return {key: count - before.get(key, 0) for key, count in after.items() if count != before.get(key, 0)}


def _finite_or_none(value: float) -> float | None:
    return value if math.isfinite(value) else None
