"""Partition-local join of predictions with their outcomes, with a time-to-live in event time.

Predictions and outcomes are co-partitioned by ``request_id``, so one `JoinStore` per source
partition sees both sides of every request. Either side may arrive first; the side that waits
is kept until the partition's event-time watermark passes its ``ts`` plus the maximum label
delay, then it expires and is counted. The store does no I/O and reads no clock: time is the
largest event ``ts`` seen, so a replay of the same input gives the same joins and expiries.

Examples
--------
>>> from driftline.schemas.events import OutcomeEvent, PredictionEvent
>>> store = JoinStore(max_label_delay_s=60.0)
>>> p = PredictionEvent(event_id="e1", ts=0.0, model="m", model_version="1", request_id="r1",
...                     features={"x": 1.0}, prediction=0.5)
>>> store.add_predictions([p])
[]
>>> o = OutcomeEvent(event_id="o1", ts=5.0, request_id="r1", model="m", outcome=1.0)
>>> [(e.request_id, e.outcome) for e in store.add_outcomes([o])]
[('r1', 1.0)]
>>> store.stats
JoinStats(hits=1, outcome_first=0, duplicates=0, expired_predictions=0, expired_outcomes=0)
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import TypeVar

from driftline.schemas.events import LabeledEvent, OutcomeEvent, PredictionEvent, deterministic_id

__all__ = ["Expired", "JoinStats", "JoinStore", "join_event"]

_Pending = TypeVar("_Pending", PredictionEvent, OutcomeEvent)


@dataclass(slots=True)
class JoinStats:
    """Counts since the store was made; the service exports them as metrics."""

    hits: int = 0
    outcome_first: int = 0
    duplicates: int = 0
    expired_predictions: int = 0
    expired_outcomes: int = 0


@dataclass(frozen=True, slots=True)
class Expired:
    """What `JoinStore.expire` removed, so the caller can tombstone its changelog entries."""

    predictions: list[PredictionEvent]
    outcomes: list[OutcomeEvent]


def join_event(prediction: PredictionEvent, outcome: OutcomeEvent) -> LabeledEvent:
    """The labeled event of one request; its id depends only on the two inputs' ids.

    Built without re-validation (``model_construct``): both inputs are validated events and
    every field is copied as is, so validating again would only cost time on the hot path.
    """
    return LabeledEvent.model_construct(
        event_id=deterministic_id("labeled", prediction.event_id, outcome.event_id),
        ts=prediction.ts,
        outcome_ts=outcome.ts,
        model=prediction.model,
        model_version=prediction.model_version,
        request_id=prediction.request_id,
        features=prediction.features,
        prediction=prediction.prediction,
        outcome=outcome.outcome,
        variant=prediction.variant,
        entity_id=prediction.entity_id,
    )


class JoinStore:
    """Pending predictions and outcomes of one source partition, keyed by ``request_id``.

    Parameters
    ----------
    max_label_delay_s
        How long (event time) one side waits for the other before it expires.
    """

    def __init__(self, max_label_delay_s: float) -> None:
        if max_label_delay_s <= 0:
            raise ValueError(f"max_label_delay_s must be > 0, got {max_label_delay_s}")
        self.max_label_delay_s = max_label_delay_s
        self._reset()

    def _reset(self) -> None:
        self._predictions: dict[str, PredictionEvent] = {}
        self._outcomes: dict[str, OutcomeEvent] = {}
        self._max_ts = float("-inf")
        self.stats = JoinStats()

    @property
    def watermark(self) -> float:
        """Largest event ``ts`` seen on either side (``-inf`` before any event)."""
        return self._max_ts

    @property
    def pending_predictions(self) -> int:
        return len(self._predictions)

    @property
    def pending_outcomes(self) -> int:
        return len(self._outcomes)

    def add_predictions(self, events: Iterable[PredictionEvent]) -> list[LabeledEvent]:
        """Store predictions; those whose outcome already waits are joined and returned."""
        joined: list[LabeledEvent] = []
        for event in events:
            self._max_ts = max(self._max_ts, event.ts)
            outcome = self._outcomes.pop(event.request_id, None)
            if outcome is not None:
                self.stats.outcome_first += 1
                joined.append(join_event(event, outcome))
            elif event.request_id in self._predictions:
                self.stats.duplicates += 1
            else:
                self._predictions[event.request_id] = event
        return joined

    def add_outcomes(self, events: Iterable[OutcomeEvent]) -> list[LabeledEvent]:
        """Join outcomes with their waiting prediction; the others wait for theirs."""
        joined: list[LabeledEvent] = []
        for event in events:
            self._max_ts = max(self._max_ts, event.ts)
            prediction = self._predictions.pop(event.request_id, None)
            if prediction is not None:
                self.stats.hits += 1
                joined.append(join_event(prediction, event))
            elif event.request_id in self._outcomes:
                self.stats.duplicates += 1
            else:
                self._outcomes[event.request_id] = event
        return joined

    def expire(self) -> Expired:
        """Drop what waited longer than the label delay behind the watermark, and say what.

        Entries are scanned in arrival order and the scan stops at the first one still
        young, so the cost follows what expires, not what is held; an entry that arrived
        out of order waits for the ones before it.
        """
        horizon = self._max_ts - self.max_label_delay_s
        old_predictions = _pop_older(self._predictions, horizon)
        old_outcomes = _pop_older(self._outcomes, horizon)
        self.stats.expired_predictions += len(old_predictions)
        self.stats.expired_outcomes += len(old_outcomes)
        return Expired(old_predictions, old_outcomes)

    def restore(self, predictions: Iterable[PredictionEvent], outcomes: Iterable[OutcomeEvent]) -> None:
        """Put back the pending entries read from a changelog, without counting them as new."""
        for event in predictions:
            self._predictions[event.request_id] = event
            self._max_ts = max(self._max_ts, event.ts)
        for event in outcomes:
            self._outcomes[event.request_id] = event
            self._max_ts = max(self._max_ts, event.ts)


def _pop_older(pending: dict[str, _Pending], horizon: float) -> list[_Pending]:
    expired: list[_Pending] = []
    for event in pending.values():
        if event.ts >= horizon:
            break
        expired.append(event)
    for event in expired:
        del pending[event.request_id]
    return expired
