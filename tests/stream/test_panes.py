"""Stage 1: pane assignment, lateness, closing exactly once, heartbeats, persistence."""

from __future__ import annotations

import numpy as np
import orjson
import pytest
from streamsim import comparable, labeled_events, prediction_events

from driftline.schemas.codec import encode
from driftline.schemas.events import PredictionEvent
from driftline.schemas.profiles import PanePartial, ReferenceProfile
from driftline.stream import PaneAggregator, build_reference
from driftline.stream.columns import columns_from_events
from driftline.stream.panes import OTHER_MODELS, UNMONITORED_MODELS_KEPT
from driftline.stream.reference import events_to_frame

PANE_S = 60.0


@pytest.fixture(scope="module")
def profile() -> ReferenceProfile:
    rng = np.random.default_rng(0)
    return build_reference(prediction_events(rng, n=2000, t0=0, t1=1), model="m", model_version="1",
                           task="regression")


@pytest.fixture(scope="module")
def classifier() -> ReferenceProfile:
    events = labeled_events(np.random.default_rng(1), n=2000, t0=0, t1=1, accuracy=0.9)
    return build_reference(events, model="m", model_version="1", task="classification")


def _event(i: int, ts: float, model: str = "m") -> PredictionEvent:
    return PredictionEvent(event_id=f"e{i}", ts=ts, model=model, model_version="1", request_id=f"r{i}",
                           features={"x00": float(i % 7), "x01": None, "city": "oslo"}, prediction=0.5)


def _agg(profile: ReferenceProfile, **kw) -> PaneAggregator:
    return PaneAggregator({"m": profile}, pane_s=PANE_S, allowed_lateness_s=kw.pop("lateness", 30.0), source="s",
                          **kw)


@pytest.mark.parametrize(("ts", "pane_start"), [(0.0, 0.0), (59.999, 0.0), (60.0, 60.0), (119.0, 60.0),
                                                (-1.0, -60.0), (1e9 + 5, 1e9 - 40.0)])
def test_events_fall_into_their_pane(profile: ReferenceProfile, ts: float, pane_start: float) -> None:
    agg = _agg(profile, heartbeats=False)
    agg.add_predictions([_event(0, ts)])
    agg.add_predictions([_event(1, ts + 10_000)])
    first = agg.close_panes()[0]
    assert (first.pane_start, first.n_events, first.pane_end) == (pane_start, 1, pane_start + PANE_S)


def test_late_events_are_counted_not_applied(profile: ReferenceProfile) -> None:
    agg = _agg(profile, heartbeats=False)
    agg.add_predictions([_event(0, 200.0)])  # watermark 170: panes ending at or before 170 are closed
    agg.add_predictions([_event(1, 100.0), _event(2, 119.0), _event(3, 125.0), _event(4, 150.0)])
    assert agg.counters.late == {"m": 2}
    assert agg.counters.applied == {"m": 3}
    agg.add_predictions([_event(5, 400.0)])
    partials = agg.close_panes()
    assert [(p.pane_start, p.n_events) for p in partials] == [(120.0, 2), (180.0, 1)]
    assert partials[0].n_late == 2 and partials[1].n_late == 0  # reported once, with the next partial


def test_panes_close_exactly_once_under_shuffled_out_of_order_input(profile: ReferenceProfile) -> None:
    """Shuffled within the lateness, cut into random batches, closed at random moments: same partials."""
    rng = np.random.default_rng(3)
    events = prediction_events(rng, n=3000, t0=0, t1=3000)

    def run(order: np.ndarray, cuts: np.ndarray) -> list[PanePartial]:
        agg = _agg(profile, lateness=600.0, heartbeats=False)
        out: list[PanePartial] = []
        for chunk in np.split(order, cuts):
            agg.add_predictions([events[i] for i in chunk])
            out.extend(agg.close_panes())
        agg.add_predictions([_event(10**6, 10_000.0)])
        out.extend(agg.close_panes())
        assert agg.counters.late == {}
        return [p for p in out if p.pane_start < 3000]

    in_order = run(np.arange(3000), np.arange(100, 3000, 100))
    # local shuffle: each event moves by at most ~300 positions (= 300 s), well within the lateness
    jitter = np.argsort(np.arange(3000) + rng.uniform(0, 300, size=3000))
    shuffled = run(jitter, np.sort(rng.choice(np.arange(1, 3000), size=40, replace=False)))
    assert len(in_order) == 50 and [p.pane_start for p in in_order] == [i * PANE_S for i in range(50)]
    assert len({p.pane_start for p in shuffled}) == len(shuffled)  # no pane twice
    assert [comparable(p) for p in shuffled] == [comparable(p) for p in in_order]  # same sketches, same samples


def test_batches_in_or_out_of_time_order_give_the_same_partials(profile: ReferenceProfile) -> None:
    events = prediction_events(np.random.default_rng(12), n=600, t0=0.0, t1=290.0)
    ordered, shuffled = _agg(profile, heartbeats=False), _agg(profile, heartbeats=False)
    ordered.add_predictions(events)  # in time order: each pane's rows are a view
    shuffled.add_predictions([events[i] for i in np.random.default_rng(3).permutation(len(events))])
    expected = ordered.close_panes()
    assert [p.pane_start for p in expected] == [0.0, 60.0, 120.0, 180.0] and all(p.n_events for p in expected)
    assert [comparable(p) for p in shuffled.close_panes()] == [comparable(p) for p in expected]


def test_a_batch_of_several_models_is_split_by_model(profile: ReferenceProfile) -> None:
    agg = _agg(profile, heartbeats=False)
    agg.add_predictions([_event(i, float(i), model="m" if i % 3 else "other") for i in range(90)])
    assert agg.counters.applied == {"m": 60} and agg.counters.unmonitored == {"other": 30}


def test_column_batches_of_several_models_share_one_watermark_as_events_do(profile: ReferenceProfile) -> None:
    # "other" runs far ahead in event time; judged one model at a time, "m" would come out late
    events = [_event(0, 5000.0, model="other"), _event(1, 10.0)]
    by_events = _agg(profile, heartbeats=False)
    by_events.add_predictions(events)
    by_columns = _agg(profile, heartbeats=False)
    other = columns_from_events(events[:1], profile)
    by_columns.add_column_batches({"other": other, "m": columns_from_events(events[1:], profile)})
    assert by_columns.counters == by_events.counters
    assert by_columns.counters.applied == {"m": 1} and by_columns.counters.late == {}


def test_unmonitored_models_are_counted(profile: ReferenceProfile) -> None:
    agg = _agg(profile)
    agg.add_predictions([_event(0, 1.0, model="other"), _event(1, 2.0)])
    assert agg.counters.unmonitored == {"other": 1} and agg.counters.applied == {"m": 1}


def test_unmonitored_model_names_are_bounded_in_the_counts_and_the_state(profile: ReferenceProfile) -> None:
    """A producer that writes an id into ``model``: past the cap, the names fold into one count."""
    agg = _agg(profile)
    agg.add_predictions([_event(i, 1.0 + i / 1000, model=f"id-{i}") for i in range(UNMONITORED_MODELS_KEPT + 50)])
    counts = agg.counters.unmonitored
    assert len(counts) == UNMONITORED_MODELS_KEPT + 1
    assert counts[OTHER_MODELS] == 50 and counts["id-0"] == 1 and sum(counts.values()) == UNMONITORED_MODELS_KEPT + 50
    restored = _agg(profile)
    restored.load_dict(orjson.loads(orjson.dumps(agg.to_dict())))
    restored.add_predictions([_event(999, 2.0, model="one-more")])
    assert len(restored.counters.unmonitored) == UNMONITORED_MODELS_KEPT + 1
    assert restored.counters.unmonitored[OTHER_MODELS] == 51


def test_heartbeats_mark_quiet_panes(profile: ReferenceProfile) -> None:
    agg = _agg(profile, lateness=0.0)
    agg.add_predictions([_event(0, 10.0)])
    assert agg.close_panes() == []  # no heartbeat for the quiet time before the first pane
    agg.add_predictions([_event(1, 200.0)])
    partials = agg.close_panes()
    assert [(p.pane_start, p.n_events) for p in partials] == [(0.0, 1), (120.0, 0)]
    assert partials[1].features == {} and partials[1].prediction is None
    assert agg.close_panes() == []  # nothing new


def test_heartbeats_cover_monitored_models_this_source_never_saw(profile: ReferenceProfile) -> None:
    agg = PaneAggregator({"m": profile, "n": profile.model_copy(update={"model": "n"})}, pane_s=60.0,
                         allowed_lateness_s=0.0, source="ingest-0")
    agg.add_predictions([_event(0, 10.0)])
    assert agg.close_panes() == []
    agg.add_predictions([_event(1, 200.0)])
    partials = agg.close_panes()
    assert [(p.model, p.pane_start, p.n_events) for p in partials] == [("m", 0.0, 1), ("m", 120.0, 0), ("n", 120.0, 0)]
    agg.add_predictions([_event(2, 260.0)])
    assert [(p.model, p.pane_start) for p in agg.close_panes()] == [("m", 180.0), ("n", 180.0)]


def test_set_profile_starts_new_panes_on_the_new_reference(profile: ReferenceProfile) -> None:
    agg = _agg(profile, lateness=0.0, heartbeats=False)
    agg.add_predictions([_event(0, 10.0)])
    frame = events_to_frame(prediction_events(np.random.default_rng(9), n=500, t0=0, t1=1))
    newer = build_reference(frame, model="m", model_version="2", task="regression")
    agg.set_profile(newer)
    agg.add_predictions([_event(1, 20.0), _event(2, 500.0)])
    partials = agg.close_panes()
    assert sorted((p.reference_id, p.model_version, p.n_events) for p in partials) == sorted(
        [(profile.reference_id, "1", 1), (newer.reference_id, "2", 1)])


def test_a_pane_open_when_the_features_change_closes_with_its_own_reference(profile: ReferenceProfile) -> None:
    """A new reference that drops a feature: the pane begun on the old one still closes, with the old features."""
    agg = _agg(profile, lateness=0.0, heartbeats=False)
    agg.add_predictions([_event(0, 10.0)])
    frame = events_to_frame(prediction_events(np.random.default_rng(9), n=500, t0=0, t1=1))
    dropped = sorted(profile.features)[0]
    newer = build_reference(frame.drop(columns=[dropped]), model="m", model_version="2", task="regression")
    agg.set_profile(newer)
    agg.add_predictions([_event(1, 20.0), _event(2, 500.0)])
    old, new = sorted(agg.close_panes(), key=lambda p: p.model_version)
    assert old.reference_id == profile.reference_id
    assert dropped in {*old.features, *(old.numeric.features if old.numeric else [])}
    assert new.reference_id == newer.reference_id
    assert dropped not in {*new.features, *(new.numeric.features if new.numeric else [])}


def test_partials_survive_the_wire_and_state_survives_a_restart(profile: ReferenceProfile) -> None:
    rng = np.random.default_rng(5)
    events = prediction_events(rng, n=600, t0=0, t1=300)
    reference = _agg(profile)
    reference.add_predictions(events)
    expected = reference.close_panes()

    first = _agg(profile)
    first.add_predictions(events[:300])
    early = first.close_panes()
    state = orjson.loads(orjson.dumps(first.to_dict()))
    restarted = _agg(profile)
    restarted.load_dict(state)
    restarted.add_predictions(events[300:])
    got = early + restarted.close_panes()
    assert [comparable(p) for p in got] == [comparable(p) for p in expected]
    assert restarted.counters == reference.counters
    assert all(PanePartial.model_validate(orjson.loads(encode(p))) == p for p in got)


def test_labeled_events_feed_the_panes_labeled_sketch(classifier: ReferenceProfile) -> None:
    from driftline.stream.concept import LabeledSketch

    rng = np.random.default_rng(6)
    labeled = labeled_events(rng, n=500, t0=0, t1=120, accuracy=0.8)
    agg = _agg(classifier, lateness=0.0)
    agg.add_batch([], labeled)
    agg.add_predictions([_event(0, 1000.0)])
    partials = [p for p in agg.close_panes() if p.labeled]
    assert [p.pane_start for p in partials] == [0.0, 60.0]
    merged = LabeledSketch.from_dict(partials[0].labeled).merge(LabeledSketch.from_dict(partials[1].labeled))
    assert merged.n == 500 and agg.counters.labeled == {"m": 500}
    assert merged.metrics()["accuracy"] == pytest.approx(0.8, abs=0.06)
    assert "roc_auc" in merged.metrics()


def test_bad_settings_are_refused(profile: ReferenceProfile) -> None:
    with pytest.raises(ValueError):
        PaneAggregator({"m": profile}, pane_s=0, allowed_lateness_s=0, source="s")
    with pytest.raises(ValueError):
        PaneAggregator({"m": profile}, pane_s=60, allowed_lateness_s=-1, source="s")
