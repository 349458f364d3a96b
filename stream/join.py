"""Partition-local join of predictions with their outcomes, with a time-to-live in event time.

Predictions and outcomes are co-partitioned by ``request_id``, so one `JoinStore` per source
partition sees both sides of every request. Either side may arrive first; the side that waits
is kept until the partition's event-time watermark passes its ``ts`` plus the maximum label
delay, then it expires and is counted. The store does no I/O and reads no clock: time is the
largest event ``ts`` seen, so a replay of the same input gives the same joins and expiries.

Both sides are records: the validated events as ``decode_records`` gives them
(`PredictionRecord`, `OutcomeRecord`), read only by their ``ts`` and ``request_id``. A join
returns the (prediction, outcome) pair; `labeled_id` is the labeled event's id.

The store also nets its own changes for a changelog (`take_changes`): per side and request
id, the entry now waiting or None (it was joined or expired), for what changed since the last
take. An entry stored and removed between two takes is left out. The netting runs in the same
pass as the join and in the order things happen, so an outcome sent twice, the copy arriving
in the batch that joins the first, is written as waiting, as it is in the store. The caller
that persists the store takes them at each checkpoint; until then they hold one entry per
request id changed.

Examples
--------
>>> from driftline.schemas.codec import OutcomeRecord, PredictionRecord
>>> store = JoinStore(max_label_delay_s=60.0)
>>> store.add_predictions([PredictionRecord("e1", 0.0, "m", "1", "r1", {}, 0.5)])
[]
>>> [(p.request_id, o.outcome) for p, o in store.add_outcomes([OutcomeRecord("o1", 5.0, "r1", "m", 1.0)])]
[('r1', 1.0)]
>>> store.stats
JoinStats(hits=1, outcome_first=0, duplicates=0, expired_predictions=0, expired_outcomes=0)
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol

__all__ = ["Changes", "Expired", "JoinStats", "JoinStore", "Joinable", "labeled_id"]


class Joinable(Protocol):
    """What the join reads of a validated prediction or outcome."""

    @property
    def ts(self) -> float: ...

    @property
    def request_id(self) -> str: ...


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

    predictions: list[Joinable]
    outcomes: list[Joinable]


@dataclass(frozen=True, slots=True)
class Changes:
    """What changed per side since the last `JoinStore.take_changes`: request id -> the entry now
    waiting, or None where one that was written before is gone (joined or expired)."""

    predictions: dict[str, Joinable | None]
    outcomes: dict[str, Joinable | None]


class _Netted:
    """One side's net changes: ``written`` as `Changes` gives them, ``fresh`` the ids first stored since
    the last take (removing one of those writes nothing)."""

    __slots__ = ("fresh", "written")

    def __init__(self) -> None:
        self.written: dict[str, Joinable | None] = {}
        self.fresh: set[str] = set()

    def removed(self, request_ids: Iterable[str]) -> None:
        written, fresh = self.written, self.fresh
        for request_id in request_ids:
            if request_id in fresh:
                fresh.remove(request_id)
                del written[request_id]
            else:
                written[request_id] = None


def labeled_id(prediction_event_id: str, outcome_event_id: str) -> str:
    """The labeled event's id: depends only on the two inputs' ids, so a replay gives the same one.

    Equal to ``deterministic_id("labeled", prediction_event_id, outcome_event_id)``, written
    out because it runs once per labeled event (half the cost).

    Examples
    --------
    >>> from driftline.schemas.events import deterministic_id
    >>> labeled_id("p1", "o1") == deterministic_id("labeled", "p1", "o1")
    True
    """
    return hashlib.sha256(f"labeled\x1f{prediction_event_id}\x1f{outcome_event_id}".encode()).hexdigest()[:32]


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
        self._predictions: dict[str, Joinable] = {}
        self._outcomes: dict[str, Joinable] = {}
        self._prediction_changes = _Netted()
        self._outcome_changes = _Netted()
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

    @property
    def changed(self) -> bool:
        """Something changed since the last `take_changes`."""
        return bool(self._prediction_changes.written or self._outcome_changes.written)

    def take_changes(self) -> Changes:
        """The net changes since the last call (see the module docstring); the netting starts again."""
        changes = Changes(self._prediction_changes.written, self._outcome_changes.written)
        self._prediction_changes, self._outcome_changes = _Netted(), _Netted()
        return changes

    def add_predictions(self, records: Iterable[Joinable]) -> list[tuple[Joinable, Joinable]]:
        """Store predictions; those whose outcome already waits are joined and returned as pairs."""
        joined, duplicates = self._add(records, self._predictions, self._outcomes, self._prediction_changes,
                                       self._outcome_changes, prediction_side=True)
        self.stats.outcome_first += len(joined)
        self.stats.duplicates += duplicates
        return joined

    def add_outcomes(self, records: Iterable[Joinable]) -> list[tuple[Joinable, Joinable]]:
        """Join outcomes with their waiting prediction; the others wait for theirs."""
        joined, duplicates = self._add(records, self._outcomes, self._predictions, self._outcome_changes,
                                       self._prediction_changes, prediction_side=False)
        self.stats.hits += len(joined)
        self.stats.duplicates += duplicates
        return joined

    def _add(
        self, records: Iterable[Joinable], same: dict[str, Joinable], other: dict[str, Joinable],
        same_changes: _Netted, other_changes: _Netted, *, prediction_side: bool,
    ) -> tuple[list[tuple[Joinable, Joinable]], int]:
        """One loop for both sides and their changes (the hot path): pairs are always (prediction, outcome).

        This pass only removes from the other side, so its removals are netted after the loop, in order.
        """
        joined: list[tuple[Joinable, Joinable]] = []
        matched: list[str] = []
        duplicates = 0
        max_ts = self._max_ts
        pop = other.pop
        written, fresh = same_changes.written, same_changes.fresh
        for record in records:
            ts = record.ts
            if ts > max_ts:
                max_ts = ts
            request_id = record.request_id
            match = pop(request_id, None)
            if match is not None:
                joined.append((record, match) if prediction_side else (match, record))
                matched.append(request_id)
            elif request_id in same:
                duplicates += 1
            else:
                same[request_id] = record
                if request_id not in written:
                    fresh.add(request_id)
                written[request_id] = record
        other_changes.removed(matched)
        self._max_ts = max_ts
        return joined, duplicates

    def expire(self) -> Expired:
        """Drop what waited longer than the label delay behind the watermark, and say what.

        Entries are scanned in arrival order and the scan stops at the first one still
        young, so the cost follows what expires, not what is held; an entry that arrived
        out of order waits for the ones before it.
        """
        horizon = self._max_ts - self.max_label_delay_s
        old_predictions = _pop_older(self._predictions, horizon)
        old_outcomes = _pop_older(self._outcomes, horizon)
        self._prediction_changes.removed(record.request_id for record in old_predictions)
        self._outcome_changes.removed(record.request_id for record in old_outcomes)
        self.stats.expired_predictions += len(old_predictions)
        self.stats.expired_outcomes += len(old_outcomes)
        return Expired(old_predictions, old_outcomes)

    def restore(self, predictions: Iterable[Joinable], outcomes: Iterable[Joinable]) -> None:
        """Put back the pending entries read from a changelog, without counting them as new or changed."""
        for pending, records in ((self._predictions, predictions), (self._outcomes, outcomes)):
            for record in records:
                pending[record.request_id] = record
                self._max_ts = max(self._max_ts, record.ts)


def _pop_older(pending: dict[str, Joinable], horizon: float) -> list[Joinable]:
    expired: list[Joinable] = []
    for record in pending.values():
        if record.ts >= horizon:
            break
        expired.append(record)
    for record in expired:
        del pending[record.request_id]
    return expired
