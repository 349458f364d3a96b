"""PartitionState without Kafka: joins, panes, rejects, and a changelog restore that changes nothing."""

from __future__ import annotations

import msgspec
import numpy as np
import orjson
import pytest

from driftline.config import IngestSettings
from driftline.consumers.ingest.handler import IngestOutputs, PartitionState
from driftline.producers.simulator import Simulator
from driftline.schemas.codec import PredictionRecord, RawMessage, RejectReason, encode, prediction_json
from driftline.schemas.events import LabeledEvent, OutcomeEvent, PredictionEvent
from driftline.stream.reference import build_reference

encode_record = msgspec.json.encode
SETTINGS = IngestSettings(pane_s=10.0, allowed_lateness_s=5.0, max_label_delay_s=600.0)


def stream(malformed_fraction: float = 0.0) -> tuple[Simulator, list[tuple[list[RawMessage], list[RawMessage]]]]:
    sim = Simulator(["churn"], seed=3, events_per_s=20.0, label_delay_s=5.0, malformed_fraction=malformed_fraction)
    batches = []
    for batch in sim.batches(1200, batch_size=200):
        predictions = [RawMessage(v, k, "predictions") for kind, k, v in zip(batch.kinds, batch.keys, batch.values,
                                                                            strict=True) if kind == "predictions"]
        outcomes = [RawMessage(v, k, "outcomes") for kind, k, v in zip(batch.kinds, batch.keys, batch.values,
                                                                      strict=True) if kind == "outcomes"]
        batches.append((predictions, outcomes))
    return sim, batches


def profiles(sim: Simulator) -> dict:
    return {"churn": build_reference(sim.reference_frame("churn", 1000), model="churn", model_version="1",
                                     task="classification")}


def run(state: PartitionState, batches: list[tuple[list[RawMessage], list[RawMessage]]]) -> list[IngestOutputs]:
    """Every batch, then one call with both inputs at their end (releases what is held)."""
    outputs = [state.handle(p, o) for p, o in batches]
    return [*outputs, state.handle([], [], predictions_idle=True, outcomes_idle=True)]


def labeled(outputs: list[IngestOutputs]) -> list[LabeledEvent]:
    """The labeled records of every output, validated by the model (keys are the models)."""
    events = [LabeledEvent.model_validate_json(value) for out in outputs for _, value in out.labeled]
    assert [key for out in outputs for key, _ in out.labeled] == [e.model.encode() for e in events]
    return events


def test_joins_every_outcome_and_closes_panes() -> None:
    sim, batches = stream()
    state = PartitionState(0, SETTINGS, profiles(sim))
    outputs = run(state, batches)
    events = labeled(outputs)
    assert len(events) == sum(len(o) for _, o in batches) == 1200
    assert len({e.event_id for e in events}) == 1200
    panes = [p for out in outputs for p in out.panes]
    assert panes and all(p.source == "0" and p.model == "churn" for p in panes)
    assert sum(p.n_events for p in panes) > 1000
    assert len({p.pane_start for p in panes}) == len(panes)  # each pane closed once
    assert sum(p.n_late for p in panes) == 0


def test_delivery_order_does_not_change_the_results() -> None:
    """All predictions first, then all outcomes (a restart catching up): same joins, same panes, nothing late."""
    sim, batches = stream()
    interleaved = run(PartitionState(0, SETTINGS, profiles(sim)), batches)
    skewed_batches = [(p, []) for p, _ in batches] + [([], o) for _, o in batches]
    skewed = run(PartitionState(0, SETTINGS, profiles(sim)), skewed_batches)
    assert sorted(e.event_id for e in labeled(skewed)) == sorted(e.event_id for e in labeled(interleaved))
    def panes(outputs: list[IngestOutputs]) -> list[dict]:
        return sorted((p.model_dump() for out in outputs for p in out.panes), key=lambda p: p["pane_start"])

    assert panes(skewed) == panes(interleaved)  # sketches and labeled samples included
    assert all(p["n_late"] == 0 for p in panes(skewed))


def test_malformed_records_become_rejects() -> None:
    sim, batches = stream(malformed_fraction=0.05)
    state = PartitionState(0, SETTINGS, profiles(sim))
    rejects = [r for out in run(state, batches) for r in out.rejects]
    assert rejects
    assert {r.reason.value for r in rejects} <= {"malformed_json", "schema_violation", "non_finite",
                                                "payload_too_large", "unknown_schema_version"}


@pytest.mark.parametrize("check_the_clock", [True, False])
def test_an_event_time_far_in_the_future_is_rejected_instead_of_stalling_the_partition(check_the_clock: bool) -> None:
    """A prediction with its ts in milliseconds (~55 000 years ahead) waits in the hold until the inputs go
    idle (a pause in traffic); released then, it moves the watermark so far that every later event is late."""
    sim, batches = stream()
    first_predictions, first_outcomes = batches[0]
    in_millis = orjson.loads(first_predictions[0].value)
    in_millis.update(ts=in_millis["ts"] * 1000, request_id="ms", event_id="ms:p")
    batches[0] = ([RawMessage(orjson.dumps(in_millis), b"ms", "predictions", 0, 99), *first_predictions],
                  first_outcomes)
    now = orjson.loads(batches[-1][0][-1].value)["ts"]  # the stream's last prediction
    state = PartitionState(0, SETTINGS, profiles(sim))
    half = len(batches) // 2
    pause = ([], [])  # both inputs at their end for a while: everything held is released
    outputs = [state.handle(*step, predictions_idle=step is pause, outcomes_idle=step is pause,
                            wall_clock_s=now if check_the_clock else None)
               for step in [*batches[:half], pause, *batches[half:], pause]]
    rejects = [r for out in outputs for r in out.rejects]
    late = sum(n for out in outputs for n in out.late_by_model.values())
    if check_the_clock:
        assert [(r.reason, r.message.offset) for r in rejects] == [(RejectReason.TS_IN_FUTURE, 99)]
        assert "is after" in rejects[0].detail
        assert late == 0 and len(labeled(outputs)) == 1200
    else:
        assert rejects == [] and late > 1000  # the harm the check prevents


def test_events_of_models_without_a_profile_are_labeled_and_counted_by_model() -> None:
    sim, batches = stream()
    renamed = [([RawMessage(v.value.replace(b'"model":"churn"', b'"model":"ghost"')) for v in p], o)
               for p, o in batches]
    renamed = [(p, [RawMessage(v.value.replace(b'"model":"churn"', b'"model":"ghost"')) for v in o])
               for p, o in renamed]
    outputs = run(PartitionState(0, SETTINGS, profiles(sim)), renamed)
    assert len(labeled(outputs)) == 1200 and not any(out.panes for out in outputs)
    assert sum(out.unmonitored_by_model.get("ghost", 0) for out in outputs) == 2400  # predictions + labeled rows
    assert all(set(out.unmonitored_by_model) <= {"ghost"} for out in outputs)


def with_offsets(batches: list[tuple[list[RawMessage], list[RawMessage]]],
                 disorder_s: float = 0.0) -> tuple[list[RawMessage], list[RawMessage]]:
    """Each input's messages at offsets 0, 1, ... of its partition, up to ``disorder_s`` out of event-time order.

    Disorder is what many producers give; an event read after one still held may then already
    have been applied.
    """
    rng = np.random.default_rng(11)

    def arrival(messages: list[RawMessage]) -> list[RawMessage]:
        delays = rng.uniform(0.0, disorder_s, size=len(messages))
        order = np.argsort([orjson.loads(m.value)["ts"] + d for m, d in zip(messages, delays, strict=True)],
                           kind="stable")
        return [messages[i]._replace(offset=offset) for offset, i in enumerate(order.tolist())]

    return arrival([m for p, _ in batches for m in p]), arrival([m for _, o in batches for m in o])


def in_batches(predictions: list[RawMessage], outcomes: list[RawMessage],
               size: int) -> list[tuple[list[RawMessage], list[RawMessage]]]:
    end = max(len(predictions), len(outcomes))
    return [(predictions[i:i + size], outcomes[i:i + size]) for i in range(0, end, size)]


@pytest.mark.parametrize("batches_per_commit", [1, 4])
@pytest.mark.parametrize("disorder_s", [0.0, 3.0])
def test_restore_and_reading_again_from_the_committed_offsets_continue_identically(
    batches_per_commit: int, disorder_s: float
) -> None:
    """Changelog + the inputs read again from the offsets a commit stores give what an uninterrupted run gives.

    The held events are not in the changelog: the committed offsets stop at the first one, and of
    what is read again the events applied before the commit are dropped. Work after the last
    commit is lost (as a crash loses its open transaction) and read again in other batches.
    In event-time order the pane partials are equal value for value; out of order (3 s, within
    the lateness) which events a release takes depends on batch boundaries, also without a
    restart, so their counts are compared.
    """
    sim, batches = stream()
    refs = profiles(sim)
    predictions, outcomes = with_offsets(batches, disorder_s)
    straight_outputs = run(PartitionState(0, SETTINGS, refs), in_batches(predictions, outcomes, 200))
    crashed = PartitionState(0, SETTINGS, refs)
    changelog: list[tuple[bytes, bytes | None]] = []
    committed_outputs: list[IngestOutputs] = []
    since_commit: list[IngestOutputs] = []
    committed = (0, 0)
    steps = in_batches(predictions, outcomes, 200)
    for index, step in enumerate(steps[:4]):
        since_commit.append(crashed.handle(*step))
        if (index + 1) % batches_per_commit == 0:
            changelog.extend(crashed.changelog())
            committed = crashed.committable_offsets()
            committed_outputs.extend(since_commit)
            since_commit = []
    assert committed[0] < crashed.consumed_until[0] and len(crashed.held_predictions) > 0  # held: read again
    released_below_ts = crashed.released_below_ts
    crashed.handle(*steps[4])  # the crash loses this batch's work
    assert not any(value is not None and orjson.loads(value)["ts"] >= released_below_ts
                   for key, value in changelog if key != b"panes")  # held events are not in the changelog
    restored = PartitionState.restore(0, SETTINGS, refs, changelog)
    assert restored.committable_offsets() == (None, None)  # before it reads again, a commit keeps the offsets
    again = run(restored, in_batches(predictions[committed[0]:], outcomes[committed[1]:], 150))
    expected = sorted(e.event_id for e in labeled(straight_outputs))
    actual = [e.event_id for e in labeled(committed_outputs + again)]
    assert sorted(actual) == expected and len(set(actual)) == len(actual) == 1200  # none lost, none twice

    def panes(outputs: list[IngestOutputs]) -> list[dict]:
        dumps = sorted((p.model_dump() for out in outputs for p in out.panes), key=lambda p: p["pane_start"])
        return dumps if not disorder_s else [(p["pane_start"], p["n_events"], p["n_late"]) for p in dumps]

    assert panes(committed_outputs + again) == panes(straight_outputs)


def test_a_changelog_from_before_held_events_were_read_again_still_restores() -> None:
    """A snapshot without ``consumed_until`` (held events in the changelog, offsets committed past them)."""
    sim, batches = stream()
    refs = profiles(sim)
    predictions, outcomes = with_offsets(batches)
    steps = in_batches(predictions, outcomes, 200)
    state = PartitionState(0, SETTINGS, refs)
    for step in steps[:3]:
        state.handle(*step)
    records = [(key, value) for key, value in state.changelog() if key != b"panes"]
    snapshot = {"aggregator": state.panes.to_dict(), "released_below_ts": state.released_below_ts}
    held = [(b"p:" + r.request_id.encode(), encode_record(r) if isinstance(r, PredictionRecord) else prediction_json(r))
            for r in state.held_predictions.records]  # a scanned prediction holds its event's JSON
    held += [(b"o:" + r.request_id.encode(), encode_record(r)) for r in state.held_outcomes.records]
    old = PartitionState.restore(0, SETTINGS, refs, [*records, *held, (b"panes", orjson.dumps(snapshot))])
    assert len(old.held_predictions) == len(state.held_predictions) > 0
    assert old.join.pending_predictions == state.join.pending_predictions
    rest = in_batches(predictions[3 * 200:], outcomes[3 * 200:], 200)
    assert ([e.event_id for e in labeled(run(old, rest))] == [e.event_id for e in labeled(run(state, rest))])


@pytest.mark.parametrize("commit_between", [False, True])
def test_an_outcome_repeated_after_its_join_waits_in_the_changelog_as_in_the_store(commit_between: bool) -> None:
    """An outcome sent twice, the second copy in the batch that joins the first: the copy waits, and so must
    its changelog entry (a netting that dropped it restored the first copy, or nothing, after a crash)."""
    sim, _ = stream()
    refs = profiles(sim)
    prediction = PredictionEvent(event_id="p1", ts=0.5, model="churn", model_version="1", request_id="r1",
                                 features={"tenure_months": 3.0},
                                 prediction={"label": "1", "probabilities": {"0": 0.3, "1": 0.7}})
    first, copy = (OutcomeEvent(event_id=event_id, ts=ts, request_id="r1", model="churn", outcome="1")
                   for event_id, ts in (("o1", 1.0), ("o2", 1.5)))
    state = PartitionState(0, SETTINGS, refs)
    changelog = []
    state.handle([], [RawMessage(encode(first))], predictions_idle=True, outcomes_idle=True)
    if commit_between:
        changelog.extend(state.changelog())
    out = state.handle([RawMessage(encode(prediction))], [RawMessage(encode(copy))], predictions_idle=True,
                       outcomes_idle=True)
    changelog.extend(state.changelog())
    assert [e.outcome_ts for e in labeled([out])] == [1.0] and state.join.pending_outcomes == 1
    restored = PartitionState.restore(0, SETTINGS, refs, changelog)
    assert restored.join.pending_outcomes == 1 and restored.join.pending_predictions == 0
    later = PredictionEvent(**{**prediction.model_dump(), "event_id": "p2", "ts": 2.0})  # a repeated prediction
    expected = labeled([state.handle([RawMessage(encode(later))], [], predictions_idle=True, outcomes_idle=True)])
    actual = labeled([restored.handle([RawMessage(encode(later))], [], predictions_idle=True, outcomes_idle=True)])
    assert [(e.event_id, e.outcome_ts) for e in actual] == [(e.event_id, e.outcome_ts) for e in expected]
    assert [e.outcome_ts for e in expected] == [1.5]
