"""PartitionState without Kafka: joins, panes, rejects, and a changelog restore that changes nothing."""

from __future__ import annotations

import orjson
import pytest

from driftline.config import IngestSettings
from driftline.consumers.ingest.handler import IngestOutputs, PartitionState
from driftline.producers.simulator import Simulator
from driftline.schemas.codec import RawMessage, RejectReason
from driftline.schemas.events import LabeledEvent
from driftline.stream.reference import build_reference

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


@pytest.mark.parametrize("batches_per_commit", [1, 4])
def test_restore_from_changelog_continues_identically(batches_per_commit: int) -> None:
    """The changelog taken at each commit (netted over its batches) restores the state of that commit."""
    sim, batches = stream()
    refs = profiles(sim)
    straight = PartitionState(0, SETTINGS, refs)
    crashed = PartitionState(0, SETTINGS, refs)
    changelog: list[tuple[bytes, bytes | None]] = []
    half = len(batches) // 2
    for index, (predictions, outcomes) in enumerate(batches[:half]):
        straight.handle(predictions, outcomes)
        crashed.handle(predictions, outcomes)
        if (index + 1) % batches_per_commit == 0 or index == half - 1:
            changelog.extend(crashed.changelog())
    assert crashed.changelog() == []  # nothing changed since the last commit
    restored = PartitionState.restore(0, SETTINGS, refs, changelog)
    assert restored.join.pending_predictions == straight.join.pending_predictions > 0
    assert len(restored.held_predictions.records) == len(straight.held_predictions.records) > 0

    def rest(state: PartitionState) -> list[IngestOutputs]:
        return run(state, batches[half:])

    expected, actual = rest(straight), rest(restored)
    assert [e.event_id for e in labeled(actual)] == [e.event_id for e in labeled(expected)]
    panes = [p.model_dump() for out in actual for p in out.panes]
    assert panes == [p.model_dump() for out in expected for p in out.panes]
