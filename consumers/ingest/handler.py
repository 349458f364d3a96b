"""The work of stage 1 for one source partition, without Kafka: decode, align, join, pane sketches.

`PartitionState` owns the partition's `JoinStore` and `PaneAggregator`. `handle` turns one
batch of raw predictions and outcomes into outputs (labeled events, closed pane partials,
changelog records, rejects); the service loop only moves bytes.

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

Changelog (what `restore` rebuilds this state from)
    ``p:<request_id>`` -> the raw prediction bytes from arrival until it is joined or
    expired, then a tombstone; ``o:<request_id>`` likewise for outcomes; ``panes`` -> the
    aggregator's open panes (``PaneAggregator.to_dict``) and the release point. An entry with
    ``ts`` at or above the release point was still held; below it, it waits in the join store.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import orjson

from driftline.config import IngestSettings
from driftline.schemas.codec import RawMessage, Reject, decode_batch, decode_one
from driftline.schemas.events import LabeledEvent, OutcomeEvent, PredictionEvent
from driftline.schemas.profiles import PanePartial, ReferenceProfile
from driftline.stream.join import JoinStore
from driftline.stream.panes import PaneAggregator

__all__ = ["PANES_KEY", "IngestOutputs", "PartitionState"]

PANES_KEY = b"panes"
_PREDICTION_PREFIX = b"p:"
_OUTCOME_PREFIX = b"o:"


def _prediction_key(event: PredictionEvent | OutcomeEvent) -> bytes:
    return _PREDICTION_PREFIX + event.request_id.encode()


def _outcome_key(event: PredictionEvent | OutcomeEvent) -> bytes:
    return _OUTCOME_PREFIX + event.request_id.encode()


@dataclass(slots=True)
class IngestOutputs:
    """Everything one batch of one partition produces, plus the counts the service exports."""

    labeled: list[LabeledEvent] = field(default_factory=list)
    panes: list[PanePartial] = field(default_factory=list)
    changelog: list[tuple[bytes, bytes | None]] = field(default_factory=list)
    rejects: list[Reject] = field(default_factory=list)
    predictions_in: int = 0
    outcomes_in: int = 0
    join_hits: int = 0
    join_outcome_first: int = 0
    join_expired: int = 0
    late_by_model: dict[str, int] = field(default_factory=dict)


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
        self.panes = PaneAggregator(
            profiles, pane_s=settings.pane_s, allowed_lateness_s=settings.allowed_lateness_s, source=str(partition)
        )
        self.held_predictions: list[PredictionEvent] = []
        self.held_outcomes: list[OutcomeEvent] = []
        self.prediction_progress_ts = -math.inf
        self.outcome_progress_ts = -math.inf
        self.released_below_ts = -math.inf

    def set_profile(self, profile: ReferenceProfile) -> None:
        self.panes.set_profile(profile)

    def handle(
        self,
        predictions: Sequence[RawMessage],
        outcomes: Sequence[RawMessage],
        *,
        predictions_idle: bool = False,
        outcomes_idle: bool = False,
    ) -> IngestOutputs:
        """Decode a batch, release what both streams have passed, join and aggregate it.

        ``predictions_idle`` / ``outcomes_idle``: that input partition is at its end, so it
        must not hold the other back. Rejects are returned, never raised.
        """
        out = IngestOutputs(predictions_in=len(predictions), outcomes_in=len(outcomes))
        changes = _Changes()
        limit = self.settings.max_payload_bytes
        decoded = decode_batch(predictions, PredictionEvent, max_payload_bytes=limit)
        decoded_outcomes = decode_batch(outcomes, OutcomeEvent, max_payload_bytes=limit)
        out.rejects.extend(decoded.rejects)
        out.rejects.extend(decoded_outcomes.rejects)
        for event, raw in zip(decoded.events, decoded.messages, strict=True):
            changes.put(_prediction_key(event), raw.value)
            self.prediction_progress_ts = max(self.prediction_progress_ts, event.ts)
        for outcome, raw in zip(decoded_outcomes.events, decoded_outcomes.messages, strict=True):
            changes.put(_outcome_key(outcome), raw.value)
            self.outcome_progress_ts = max(self.outcome_progress_ts, outcome.ts)
        self.held_predictions.extend(decoded.events)
        self.held_outcomes.extend(decoded_outcomes.events)

        horizon = min(
            math.inf if predictions_idle else self.prediction_progress_ts,
            math.inf if outcomes_idle else self.outcome_progress_ts,
        )
        late_before = self.panes.counters.late
        stats = self.join.stats
        hits, outcome_first = stats.hits, stats.outcome_first
        released = self._release(horizon)
        for chunk_predictions, chunk_outcomes in self._chunks(*released):
            self._apply(chunk_predictions, chunk_outcomes, out, changes)

        expired = self.join.expire()
        for event in expired.predictions:
            changes.delete(_prediction_key(event))
        for outcome in expired.outcomes:
            changes.delete(_outcome_key(outcome))
        out.join_expired = len(expired.predictions)
        out.join_hits = stats.hits - hits
        out.join_outcome_first = stats.outcome_first - outcome_first
        out.panes = self.panes.close_panes()
        out.late_by_model = {
            model: count - late_before.get(model, 0)
            for model, count in self.panes.counters.late.items()
            if count != late_before.get(model, 0)
        }
        if changes.records or out.panes or released[0] or released[1]:
            released_below_ts = _finite_or_none(self.released_below_ts)
            snapshot = {"aggregator": self.panes.to_dict(), "released_below_ts": released_below_ts}
            changes.put(PANES_KEY, orjson.dumps(snapshot))
        out.changelog = list(changes.records.items())
        return out

    def _release(self, horizon: float) -> tuple[list[PredictionEvent], list[OutcomeEvent]]:
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
        predictions = sorted((e for e in self.held_predictions if e.ts < below), key=lambda e: e.ts)
        outcomes = sorted((e for e in self.held_outcomes if e.ts < below), key=lambda e: e.ts)
        if predictions:
            self.held_predictions = [e for e in self.held_predictions if e.ts >= below]
        if outcomes:
            self.held_outcomes = [e for e in self.held_outcomes if e.ts >= below]
        return predictions, outcomes

    def _chunks(
        self, predictions: list[PredictionEvent], outcomes: list[OutcomeEvent]
    ) -> Iterable[tuple[list[PredictionEvent], list[OutcomeEvent]]]:
        """Released events grouped by event-time chunk (no wider than the allowed lateness), in order."""
        merged = heapq.merge(
            ((math.floor(e.ts / self.chunk_s), 0, e) for e in predictions),
            ((math.floor(e.ts / self.chunk_s), 1, e) for e in outcomes),
            key=lambda item: item[0],
        )
        current: int | None = None
        chunk: tuple[list[PredictionEvent], list[OutcomeEvent]] = ([], [])
        for index, side, event in merged:
            if index != current and (chunk[0] or chunk[1]):
                yield chunk
                chunk = ([], [])
            current = index
            chunk[side].append(event)  # type: ignore[arg-type]
        if chunk[0] or chunk[1]:
            yield chunk

    def _apply(
        self,
        predictions: list[PredictionEvent],
        outcomes: list[OutcomeEvent],
        out: IngestOutputs,
        changes: _Changes,
    ) -> None:
        joined = self.join.add_predictions(predictions)
        if predictions:
            self.panes.add_predictions(predictions)
        joined.extend(self.join.add_outcomes(outcomes))
        for event in joined:
            changes.delete(_prediction_key(event))
            changes.delete(_outcome_key(event))
        if joined:
            self.panes.add_labeled(joined)
        out.labeled.extend(joined)

    @classmethod
    def restore(
        cls,
        partition: int,
        settings: IngestSettings,
        profiles: Mapping[str, ReferenceProfile],
        records: Iterable[tuple[bytes, bytes | None]],
    ) -> PartitionState:
        """Rebuild a partition's state from its changelog records (oldest first)."""
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
        waiting_predictions: list[PredictionEvent] = []
        waiting_outcomes: list[OutcomeEvent] = []
        for key, value in latest.items():
            if value is None:
                continue
            if key.startswith(_PREDICTION_PREFIX):
                event = decode_one(RawMessage(value), PredictionEvent, max_payload_bytes=limit)
                if isinstance(event, PredictionEvent):
                    held = event.ts >= released_below_ts
                    (state.held_predictions if held else waiting_predictions).append(event)
                    state.prediction_progress_ts = max(state.prediction_progress_ts, event.ts)
            elif key.startswith(_OUTCOME_PREFIX):
                outcome = decode_one(RawMessage(value), OutcomeEvent, max_payload_bytes=limit)
                if isinstance(outcome, OutcomeEvent):
                    held = outcome.ts >= released_below_ts
                    (state.held_outcomes if held else waiting_outcomes).append(outcome)
                    state.outcome_progress_ts = max(state.outcome_progress_ts, outcome.ts)
        state.join.restore(waiting_predictions, waiting_outcomes)
        return state


class _Changes:
    """One batch's net changelog writes; a key written and deleted within the batch is not written at all."""

    def __init__(self) -> None:
        self.records: dict[bytes, bytes | None] = {}
        self._fresh: set[bytes] = set()

    def put(self, key: bytes, value: bytes | None) -> None:
        if key not in self.records:
            self._fresh.add(key)
        self.records[key] = value

    def delete(self, key: bytes) -> None:
        if key in self._fresh:
            del self.records[key]
            self._fresh.discard(key)
        else:
            self.records[key] = None


def _finite_or_none(value: float) -> float | None:
    return value if math.isfinite(value) else None
