"""The JSON Schema files: in step with the pydantic classes, and they accept the simulator's output."""

from __future__ import annotations

import json

import jsonschema
import orjson
import pytest

from driftline.producers.simulator import Simulator
from driftline.schemas import EVENT_TYPES
from driftline.schemas.events import PredictionEvent
from driftline.schemas.generate import SCHEMA_DIR, schema_path, schema_text


def _validator(name: str) -> jsonschema.Draft202012Validator:
    schema = json.loads((SCHEMA_DIR / f"{name}.schema.json").read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


@pytest.mark.parametrize("event_type", EVENT_TYPES, ids=lambda t: t.__name__)
def test_generated_file_matches_its_class(event_type: type) -> None:
    path = schema_path(event_type)
    assert path.is_file(), f"{path.name} missing: run python -m driftline.schemas.generate"
    assert path.read_text() == schema_text(event_type), (
        f"{path.name} is stale: run python -m driftline.schemas.generate"
    )


def test_a_changed_class_no_longer_matches_its_file() -> None:
    class PredictionEvent2(PredictionEvent):
        extra_field: int = 0

    PredictionEvent2.__name__ = "PredictionEvent"
    assert schema_path(PredictionEvent2).read_text() != schema_text(PredictionEvent2)


def test_simulator_output_validates_against_the_json_schemas() -> None:
    validators = {"predictions": _validator("PredictionEvent"), "outcomes": _validator("OutcomeEvent")}
    sim = Simulator(seed=21, missing_fraction=0.05)
    checked = 0
    for batch in sim.batches(1500, 500):
        for kind, value in zip(batch.kinds, batch.values, strict=True):
            validators[kind].validate(orjson.loads(value))
            checked += 1
    assert checked == 3000


def test_the_schemas_reject_what_the_decoder_rejects() -> None:
    validator = _validator("PredictionEvent")
    event = orjson.loads(next(Simulator(["churn"], seed=22).batches(1)).values[0])
    validator.validate(event)
    for broken in ({**event, "model": ""}, {**event, "unexpected": 1}, {k: v for k, v in event.items() if k != "ts"},
                   {**event, "schema_version": 2}, {**event, "features": {"x": [1]}}):
        assert not validator.is_valid(broken), broken


def test_reference_events_validate_as_labeled_events() -> None:
    validator = _validator("LabeledEvent")
    for model in ("churn", "eta", "race"):
        for event in Simulator(seed=23).reference_events(model, 20):
            validator.validate(orjson.loads(event.model_dump_json(exclude_none=True)))
