"""`encode`'s direct path for the hot events gives the bytes ``model_dump(mode="json")`` gives; `labeled_json` too,
and a pending prediction's JSON decodes back to the record it was made of."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from codec_strategies import feature_values, finite_floats, names, outcomes, predictions
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import BaseModel

from driftline.schemas import LabeledEvent, OutcomeEvent, PredictionEvent
from driftline.schemas.codec import (
    RawMessage,
    Reject,
    decode_one,
    decode_records,
    encode,
    labeled_json,
    pending_prediction,
    prediction_json,
)
from driftline.schemas.events import deterministic_id
from driftline.stream.join import labeled_id


def _reference_encode(event: BaseModel) -> bytes:
    return orjson.dumps(event.model_dump(mode="json", exclude_none=True))


numbers = finite_floats | st.integers(-(2**53), 2**53)
prediction_events = st.builds(
    lambda prediction, features, variant, entity_id: PredictionEvent.model_validate({
        "event_id": "e1", "ts": 1.5, "model": "m", "model_version": "1", "request_id": "r1",
        "features": features, "prediction": prediction, "variant": variant, "entity_id": entity_id}),
    predictions(numbers), st.dictionaries(st.text(max_size=6), feature_values(numbers), max_size=5), st.none() | names,
    st.none() | names,
)
outcome_events = st.builds(
    lambda outcome: OutcomeEvent(event_id="o1", ts=2.0, request_id="r1", model="m", outcome=outcome),
    outcomes(numbers))


@settings(max_examples=200, deadline=None)
@given(prediction=prediction_events, outcome=outcome_events)
def test_hot_events_encode_as_model_dump_does(prediction: PredictionEvent, outcome: OutcomeEvent) -> None:
    labeled = joined(prediction, outcome)
    for event in (prediction, outcome, labeled):
        assert encode(event) == _reference_encode(event)
        assert type(event).model_validate_json(encode(event)) == event


def joined(prediction: PredictionEvent, outcome: OutcomeEvent) -> LabeledEvent:
    """The labeled event as the object path builds it: validated from both events' fields."""
    return LabeledEvent(
        event_id=deterministic_id("labeled", prediction.event_id, outcome.event_id), ts=prediction.ts,
        outcome_ts=outcome.ts, model=prediction.model, model_version=prediction.model_version,
        request_id=prediction.request_id, features=prediction.features, prediction=prediction.prediction,
        outcome=outcome.outcome, variant=prediction.variant, entity_id=prediction.entity_id,
    )


@settings(max_examples=300, deadline=None)
@given(prediction=prediction_events, outcome=outcome_events)
def test_labeled_json_is_the_labeled_event_of_the_object_path(prediction: PredictionEvent,
                                                              outcome: OutcomeEvent) -> None:
    """From the records ingest keeps: same event, same id, same bytes as `encode`."""
    expected = joined(prediction, outcome)
    event_id = labeled_id(prediction.event_id, outcome.event_id)
    [prediction_record] = decode_records([RawMessage(encode(prediction))], PredictionEvent).records
    [outcome_record] = decode_records([RawMessage(encode(outcome))], OutcomeEvent).records
    fast = labeled_json(event_id, pending_prediction(prediction_record), outcome_record)
    assert LabeledEvent.model_validate_json(fast) == expected
    assert fast == encode(expected)


@settings(max_examples=200, deadline=None)
@given(prediction=prediction_events)
def test_a_pending_prediction_is_written_as_its_event(prediction: PredictionEvent) -> None:
    """What the join changelog stores of a waiting prediction restores the record it was made of."""
    [record] = decode_records([RawMessage(encode(prediction))], PredictionEvent).records
    written = prediction_json(pending_prediction(record))
    assert PredictionEvent.model_validate_json(written) == prediction
    assert decode_records([RawMessage(written)], PredictionEvent).records == [record]


def test_none_feature_values_stay_and_none_fields_are_left_out() -> None:
    labeled = LabeledEvent(event_id="l", ts=1.0, outcome_ts=2.0, model="m", model_version="1", request_id="r",
                           features={"x": None}, prediction=0.5, outcome=1.0)
    assert encode(labeled) == _reference_encode(labeled)
    assert b'"x":null' in encode(labeled)
    assert b"variant" not in encode(labeled)


@pytest.mark.parametrize("version", [[], {}, [1]])
def test_unhashable_schema_version_is_a_reject_not_a_crash(version: Any) -> None:
    payload = orjson.dumps({"event_id": "o1", "ts": 1.0, "request_id": "r", "model": "m", "outcome": 1.0,
                            "schema_version": version})
    got = decode_one(RawMessage(payload), OutcomeEvent)
    assert isinstance(got, Reject)
    assert got.reason == "unknown_schema_version"


def test_pane_partials_encode_as_model_dump_does() -> None:
    """Every shape ingest writes: classification, regression and ranking panes, shared and per-feature
    samples (nulls), heartbeats, and a partial a reader validated back."""
    from driftline.config import IngestSettings
    from driftline.consumers.ingest.handler import PartitionState
    from driftline.producers.simulator import ModelSpec, Simulator
    from driftline.schemas.profiles import PanePartial
    from driftline.stream.reference import build_reference

    sim = Simulator([ModelSpec("a", "churn"), ModelSpec("b", "eta"), ModelSpec("r", "race")], seed=3,
                    events_per_s=20.0, label_delay_s=5.0, missing_fraction=0.1)
    tasks = {"a": "classification", "b": "regression", "r": "ranking", "idle": "regression"}
    profiles = {model: build_reference(sim.reference_frame(model if model != "idle" else "b", 500), model=model,
                                       model_version="1", task=task) for model, task in tasks.items()}
    state = PartitionState(0, IngestSettings(pane_s=10.0, allowed_lateness_s=5.0), profiles)
    partials = []
    for batch in sim.batches(1500, batch_size=300):
        split: dict[str, list[RawMessage]] = {"predictions": [], "outcomes": []}
        for kind, value in zip(batch.kinds, batch.values, strict=True):
            split[kind].append(RawMessage(value))
        partials += state.handle(split["predictions"], split["outcomes"]).panes
    partials += state.handle([], [], predictions_idle=True, outcomes_idle=True).panes
    assert {p.model for p in partials} == set(tasks) and any(p.n_events == 0 for p in partials)
    assert any(p.numeric is not None and p.numeric.thresholds is not None for p in partials)
    for partial in partials:
        assert encode(partial) == _reference_encode(partial)
        again = PanePartial.model_validate_json(encode(partial))
        assert encode(again) == _reference_encode(again) == encode(partial)
