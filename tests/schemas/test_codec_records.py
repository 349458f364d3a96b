"""`decode_records` (the ingest hot path) decides exactly as the pydantic path (`decode_batch`) does.

Valid events, then the same events broken in every way a producer can break them: the
simulator's malformed kinds, wrong JSON types (bools, ints for floats, strings, nulls,
lists), missing and extra keys, too-long and empty names, probabilities outside [0, 1],
literals orjson refuses (NaN, Infinity, 1e400, lone surrogates), unicode, oversize payloads.
"""

from __future__ import annotations

import gc
import json
from typing import Any

import msgspec
import orjson
import pytest
from codec_strategies import feature_values, finite_floats, names, outcomes, predictions
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from driftline.producers.simulator import Simulator
from driftline.schemas import codec
from driftline.schemas.codec import OutcomeRecord, PredictionRecord, RawMessage, decode_batch, decode_records, encode
from driftline.schemas.events import OutcomeEvent, PredictionEvent

MAX_PAYLOAD_BYTES = 2048

floats = finite_floats
# Values that sit on a boundary of what pydantic accepts or converts, for a field of any type.
tricky = st.sampled_from([
    True, False, 0, 1, -1, 2, 2**63, 2**64, 0.0, -0.0, 0.5, 1.0, 1.5, -0.5, 1e308, 5e-324, "", "1", "0.5", "x" * 256,
    "x" * 257, "é" * 256, "é" * 257, "\x00", "🙂", None, [], {}, [1.0], {"label": "a"}, {"group_id": "g"},
])
prediction_dicts = st.fixed_dictionaries(
    {"event_id": names, "ts": floats, "model": names, "model_version": names, "request_id": names,
     "features": st.dictionaries(st.text(max_size=6), feature_values(floats), max_size=5),
     "prediction": predictions(floats)},
    optional={"schema_version": st.just(1), "variant": st.none() | names, "entity_id": st.none() | names},
)
outcome_dicts = st.fixed_dictionaries(
    {"event_id": names, "ts": floats, "request_id": names, "model": names, "outcome": outcomes(floats)},
    optional={"schema_version": st.just(1)},
)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats() | st.text(max_size=8) | names,
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=5), children, max_size=3),
    max_leaves=4,
)


def _containers(value: Any, found: list[Any]) -> list[Any]:
    """Every dict and list inside ``value`` (itself included): the places a mutation can hit."""
    if isinstance(value, dict | list):
        found.append(value)
        for child in value.values() if isinstance(value, dict) else value:
            _containers(child, found)
    return found


@st.composite
def payloads(draw: st.DrawFn, records: st.SearchStrategy[dict[str, Any]]) -> bytes:
    """A JSON payload: a valid record, or one broken in the JSON or in the bytes."""
    data = draw(records)
    action = draw(st.sampled_from(["none", "replace", "replace", "replace", "delete", "add", "bytes"]))
    if action in ("replace", "delete", "add"):
        container = draw(st.sampled_from(_containers(data, [])))
        if isinstance(container, dict):
            keys = list(container)
            if action == "add" or not keys:
                container[draw(st.text(max_size=8))] = draw(json_values)
            elif action == "delete":
                del container[draw(st.sampled_from(keys))]
            else:
                container[draw(st.sampled_from(keys))] = draw(tricky | json_values)
        elif container:
            container[draw(st.integers(0, len(container) - 1))] = draw(tricky | json_values)
    value = json.dumps(data, ensure_ascii=draw(st.booleans())).encode()  # NaN/Infinity literals for non-finite floats
    if action != "bytes":
        return value
    return draw(st.sampled_from([
        value[: len(value) // 2],  # the simulator's malformed kinds
        value.replace(b'"model":', b'"model_name":', 1),
        value[:-1] + b',"confidence":NaN}',
        value[:-1] + b',"padding":"' + b"x" * MAX_PAYLOAD_BYTES + b'"}',
        value.replace(b'"schema_version": 1', b'"schema_version": 99', 1),
        value.replace(b'"ts": ', b'"ts": 1e400, "x": ', 1),
        value.replace(b'"ts": ', b'"ts": -Infinity, "x": ', 1),
        value[:-1] + b',"s":"\\ud800"}',
        b"[1, 2]", b"null", b"", b"\xff\xfe",
    ]))


def assert_same_decisions(values: list[bytes], event_type: type[PredictionEvent] | type[OutcomeEvent]) -> None:
    messages = [RawMessage(value, b"k", "t", 0, offset) for offset, value in enumerate(values)]
    reference = decode_batch(messages, event_type, max_payload_bytes=MAX_PAYLOAD_BYTES)
    fast = decode_records(messages, event_type, max_payload_bytes=MAX_PAYLOAD_BYTES)
    assert fast.rejects == reference.rejects  # same messages, reasons and details
    assert fast.offsets == [m.offset for m in reference.messages]
    record_type = PredictionRecord if event_type is PredictionEvent else OutcomeRecord
    assert all(type(record) is record_type or isinstance(record, record_type) for record in fast.records)
    fields = [msgspec.structs.asdict(record) for record in fast.records]
    assert [event_type.model_validate(record) for record in fields] == reference.events
    # the record holds pydantic's values with pydantic's types (True == 1.0 in Python, not here)
    assert [typed(record) for record in fields] == [typed(orjson.loads(encode(e))) for e in reference.events]


def typed(value: Any) -> Any:
    """``value`` with every scalar tagged by its type; None fields dropped, schema_version implied."""
    if isinstance(value, dict):
        return ("dict", sorted((k, typed(v)) for k, v in value.items() if v is not None and k != "schema_version"))
    if isinstance(value, list):
        return ("list", [typed(v) for v in value])
    return (type(value).__name__, value)


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(values=st.lists(payloads(prediction_dicts), min_size=1, max_size=4))
def test_predictions_fast_path_decides_as_pydantic(values: list[bytes]) -> None:
    assert_same_decisions(values, PredictionEvent)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(values=st.lists(payloads(outcome_dicts), min_size=1, max_size=4))
def test_outcomes_fast_path_decides_as_pydantic(values: list[bytes]) -> None:
    assert_same_decisions(values, OutcomeEvent)


@pytest.mark.parametrize(("event_type", "payload"), [
    (PredictionEvent, {"ts": 1}),  # int for float: pydantic converts, the record keeps the float
    (PredictionEvent, {"prediction": 1}),
    (PredictionEvent, {"prediction": "0.5"}),
    (PredictionEvent, {"prediction": {"label": "a", "probabilities": {"a": 1}}}),
    (PredictionEvent, {"prediction": {"label": "a", "probabilities": {"a": 1.5}}}),
    (PredictionEvent, {"prediction": True}),
    (PredictionEvent, {"ts": True}),
    (PredictionEvent, {"features": {"x": True}}),
    (PredictionEvent, {"schema_version": 1.0}),
    (PredictionEvent, {"schema_version": True}),
    (PredictionEvent, {"variant": None, "entity_id": "e"}),
    (PredictionEvent, {"variant": "", "entity_id": "e"}),
    (PredictionEvent, {"model_version": "v" * 257}),
    (PredictionEvent, {"prediction": {"group_id": "g", "items": []}}),
    (PredictionEvent, {"prediction": {"group_id": "g", "items": [{"item_id": "a", "score": 1}]}}),
    (PredictionEvent, {"prediction": {"group_id": "g", "items": [{"item_id": "a", "score": 1.0, "x": 1}]}}),
    (OutcomeEvent, {"outcome": 1}),
    (OutcomeEvent, {"outcome": True}),
    (OutcomeEvent, {"outcome": {"group_id": "g", "relevance": {}}}),
    (OutcomeEvent, {"ts": False}),
    (OutcomeEvent, {"schema_version": True}),
    (OutcomeEvent, {"outcome": {"group_id": "g", "relevance": {"a": 2}}}),
])
def test_boundary_values_decide_as_pydantic_and_keep_its_values(event_type: type, payload: dict[str, Any]) -> None:
    """Ints, bools and numeric strings pydantic converts or refuses; empty lists; names at the length limit."""
    base: dict[str, Any] = {"event_id": "e", "ts": 1.5, "request_id": "r", "model": "m"}
    if event_type is PredictionEvent:
        base |= {"model_version": "1", "features": {"x": 1.0}, "prediction": 0.5}
    else:
        base |= {"outcome": "yes"}
    value = json.dumps(base | payload).encode()
    assert_same_decisions([value], event_type)


def test_simulator_records_never_reach_pydantic(monkeypatch: pytest.MonkeyPatch) -> None:
    """The fast path is the path: valid records of every task skip `decode_one`."""
    sim = Simulator(["churn", "eta", "race"], seed=2, events_per_s=50.0, label_delay_s=1.0)
    batch = next(iter(sim.batches(600, batch_size=1200)))
    calls: list[RawMessage] = []
    monkeypatch.setattr(codec, "decode_one", lambda message, *a, **k: calls.append(message))
    for kind, event_type in (("predictions", PredictionEvent), ("outcomes", OutcomeEvent)):
        values = [RawMessage(v) for k, v in zip(batch.kinds, batch.values, strict=True) if k == kind]
        records = decode_records(values, event_type).records
        assert len(records) == len(values) > 100
        assert not any(map(gc.is_tracked, records))  # held by the thousand: nothing for the cyclic GC to walk
    assert calls == []
