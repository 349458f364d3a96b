"""JoinStore: either side first, TTL in event time, duplicates, restore; the labeled id."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from driftline.schemas.codec import OutcomeRecord, PredictionRecord
from driftline.schemas.events import deterministic_id
from driftline.stream.join import JoinStore, labeled_id


def prediction(i: int, ts: float) -> PredictionRecord:
    return PredictionRecord(f"p{i}", ts, "m", "1", f"r{i}", {"x": float(i)}, 0.5)


def outcome(i: int, ts: float) -> OutcomeRecord:
    return OutcomeRecord(f"o{i}", ts, f"r{i}", "m", 1.0)


def test_prediction_first_joins_on_outcome() -> None:
    store = JoinStore(max_label_delay_s=100)
    assert store.add_predictions([prediction(1, 10.0)]) == []
    joined = store.add_outcomes([outcome(1, 20.0)])
    assert [(p.request_id, p.ts, o.ts) for p, o in joined] == [("r1", 10.0, 20.0)]
    assert store.stats.hits == 1 and store.pending_predictions == 0


def test_outcome_first_joins_on_prediction() -> None:
    store = JoinStore(max_label_delay_s=100)
    assert store.add_outcomes([outcome(1, 20.0)]) == []
    joined = store.add_predictions([prediction(1, 10.0)])
    assert [(p.event_id, o.event_id) for p, o in joined] == [("p1", "o1")]  # always (prediction, outcome)
    assert store.stats.outcome_first == 1 and store.pending_outcomes == 0


def test_expiry_in_event_time_counts_and_returns_what_expired() -> None:
    store = JoinStore(max_label_delay_s=50)
    store.add_predictions([prediction(1, 0.0), prediction(2, 40.0)])
    store.add_outcomes([outcome(9, 45.0)])
    assert store.expire().predictions == []
    store.add_predictions([prediction(3, 60.0)])  # horizon 10: r1 expires, r2 and outcome r9 wait
    expired = store.expire()
    assert [e.request_id for e in expired.predictions] == ["r1"]
    assert expired.outcomes == []
    assert store.stats.expired_predictions == 1
    assert store.add_outcomes([outcome(1, 61.0)]) == []  # too late: waits as an outcome instead


def test_duplicate_request_is_counted_not_joined_twice() -> None:
    store = JoinStore(max_label_delay_s=100)
    store.add_predictions([prediction(1, 1.0), prediction(1, 2.0)])
    assert store.stats.duplicates == 1
    assert len(store.add_outcomes([outcome(1, 3.0)])) == 1


@given(prediction_id=st.text(min_size=1, max_size=40), outcome_id=st.text(min_size=1, max_size=40))
def test_labeled_id_is_the_deterministic_id_of_both_ids(prediction_id: str, outcome_id: str) -> None:
    """Same ids as before the fast path, so a replay over older labeled records gives the same ids."""
    assert labeled_id(prediction_id, outcome_id) == deterministic_id("labeled", prediction_id, outcome_id)


def test_restore_puts_back_pending_sides() -> None:
    store = JoinStore(max_label_delay_s=100)
    store.restore([prediction(1, 1.0)], [outcome(2, 2.0)])
    assert store.stats.hits == 0 and store.watermark == 2.0
    assert len(store.add_outcomes([outcome(1, 3.0)])) == 1
    assert len(store.add_predictions([prediction(2, 1.5)])) == 1


def test_rejects_bad_delay() -> None:
    with pytest.raises(ValueError, match="max_label_delay_s"):
        JoinStore(max_label_delay_s=0)


def test_changes_net_what_was_stored_and_removed_between_takes() -> None:
    store = JoinStore(max_label_delay_s=50)
    store.restore([prediction(0, 0.0)], [])
    assert not store.changed  # restored entries are in the changelog already
    store.add_predictions([prediction(1, 1.0), prediction(2, 2.0), prediction(1, 3.0)])  # r1 twice: stored once
    store.add_outcomes([outcome(2, 4.0), outcome(0, 5.0)])  # r2 stored and joined before a take: nothing
    changes = store.take_changes()
    assert changes.predictions == {"r1": store._predictions["r1"], "r0": None} and changes.outcomes == {}
    assert not store.changed and store.take_changes() == type(changes)({}, {})
    store.add_outcomes([outcome(1, 6.0), outcome(3, 7.0)])
    store.add_predictions([prediction(9, 100.0)])  # horizon 50: the outcome r3 expires
    store.expire()
    changes = store.take_changes()
    assert changes.predictions == {"r1": None, "r9": store._predictions["r9"]}  # r1 was written before
    assert changes.outcomes == {}  # r3 stored and expired between two takes


@settings(max_examples=200, deadline=None)
@given(steps=st.lists(st.tuples(st.sampled_from(["p", "o", "expire", "take"]), st.integers(0, 5),
                                st.floats(0.0, 100.0)), max_size=60))
def test_the_changes_taken_rebuild_what_the_store_holds(steps: list[tuple[str, int, float]]) -> None:
    """Replaying every take onto a map (None deletes) gives the store's waiting entries, whatever the order
    of joins, repeats, expiries and takes: what a restore from the changelog relies on."""
    store = JoinStore(max_label_delay_s=30)
    logged: dict[tuple[str, str], object] = {}

    def take() -> None:
        changes = store.take_changes()
        for side, entries in (("p", changes.predictions), ("o", changes.outcomes)):
            for request_id, entry in entries.items():
                if entry is None:
                    assert (side, request_id) in logged  # a tombstone only for what was written
                    del logged[side, request_id]
                else:
                    logged[side, request_id] = entry

    for serial, (kind, request, ts) in enumerate(steps):
        if kind == "p":
            store.add_predictions([PredictionRecord(f"p{serial}", ts, "m", "1", f"r{request}", {}, 0.5)])
        elif kind == "o":
            store.add_outcomes([OutcomeRecord(f"o{serial}", ts, f"r{request}", "m", 1.0)])
        elif kind == "expire":
            store.expire()
        else:
            take()
    take()
    held = {("p", k): v for k, v in store._predictions.items()} | {("o", k): v for k, v in store._outcomes.items()}
    assert logged.keys() == held.keys() and all(logged[key] is held[key] for key in held)
