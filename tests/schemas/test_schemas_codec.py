"""The batch decoder: every reject reason, and valid events of every prediction/outcome form."""

from __future__ import annotations

import orjson
import pytest

from driftline.schemas import (
    ClassPrediction,
    OutcomeEvent,
    PredictionEvent,
    RankedItem,
    RankingOutcome,
    RankingPrediction,
    RawMessage,
    Reject,
    RejectReason,
    decode_batch,
    decode_one,
    encode,
)
from driftline.schemas.codec import decode_records

PREDICTIONS = {
    "regression": 12.5,
    "label": ClassPrediction(label="cat"),
    "label_with_probabilities": ClassPrediction(label="1", probabilities={"0": 0.2, "1": 0.8}),
    "ranking": RankingPrediction(group_id="race-1", items=[RankedItem(item_id="3", score=2.0),
                                                           RankedItem(item_id="1", score=-0.5)]),
}
OUTCOMES = {
    "regression": 13.0,
    "label": "dog",
    "ranking": RankingOutcome(group_id="race-1", relevance={"3": 1.0, "1": 0.0}),
}


def _prediction(prediction: object = 1.0, **changes: object) -> PredictionEvent:
    fields = {"event_id": "e1", "ts": 1_700_000_000.5, "model": "m", "model_version": "1", "request_id": "r1",
              "features": {"x": 1.5, "n": 3, "c": "red", "missing": None}, "prediction": prediction, **changes}
    return PredictionEvent.model_validate(fields)


def _raw(value: bytes | None, **fields: object) -> RawMessage:
    return RawMessage(value=value, key=b"r1", topic="t", partition=2, offset=41, **fields)  # type: ignore[arg-type]


@pytest.mark.parametrize("form", sorted(PREDICTIONS))
def test_valid_predictions_round_trip(form: str) -> None:
    event = _prediction(PREDICTIONS[form], variant="b", entity_id="race-1")
    decoded = decode_one(_raw(encode(event)), PredictionEvent)
    assert decoded == event
    assert type(decoded.prediction) is type(PREDICTIONS[form])  # type: ignore[union-attr]


@pytest.mark.parametrize("form", sorted(OUTCOMES))
def test_valid_outcomes_round_trip(form: str) -> None:
    event = OutcomeEvent(event_id="o1", ts=1.0, request_id="r1", model="m", outcome=OUTCOMES[form])
    decoded = decode_one(_raw(encode(event)), OutcomeEvent)
    assert decoded == event
    assert type(decoded.outcome) is type(OUTCOMES[form])  # type: ignore[union-attr]


def _payload(**changes: object) -> bytes:
    data = orjson.loads(encode(_prediction()))
    data.update(changes)
    return orjson.dumps(data)


REJECTS = {
    RejectReason.MALFORMED_JSON: [b'{"event_id": "e1", ', b"\xff\xfe", None, b"not json"],
    RejectReason.SCHEMA_VIOLATION: [
        _payload(model=None),
        _payload(unexpected="field"),
        _payload(features={"x": [1, 2]}),
        _payload(prediction={"label": ""}),
        b"[1, 2, 3]",
        _payload(ts="yesterday"),
    ],
    RejectReason.NON_FINITE: [
        _payload()[:-1] + b',"extra":NaN}',
        _payload().replace(b'"ts":1700000000.5', b'"ts":Infinity'),
        _payload().replace(b'"x":1.5', b'"x":-Infinity'),
    ],
    RejectReason.PAYLOAD_TOO_LARGE: [_payload(features={"blob": "x" * 2000})],
    RejectReason.UNKNOWN_SCHEMA_VERSION: [_payload(schema_version=2), _payload(schema_version="1")],
}


@pytest.mark.parametrize(("reason", "value"), [(r, v) for r, values in REJECTS.items() for v in values])
def test_each_bad_message_is_rejected_with_its_reason(reason: RejectReason, value: bytes | None) -> None:
    decoded = decode_one(_raw(value), PredictionEvent, max_payload_bytes=1024)
    assert isinstance(decoded, Reject)
    assert decoded.reason is reason, decoded.detail
    assert decoded.message.value == value
    assert decoded.detail


def test_every_reject_reason_the_decoder_can_give_is_covered() -> None:
    # unknown_model is the services' call; ts_in_future needs the wall clock: decode_records (tested below)
    assert set(REJECTS) == set(RejectReason) - {RejectReason.UNKNOWN_MODEL, RejectReason.TS_IN_FUTURE}


def test_dlq_headers_carry_reason_detail_and_source() -> None:
    reject = decode_one(_raw(b"{", headers=(("trace", b"abc"),)), PredictionEvent)
    assert isinstance(reject, Reject)
    headers = dict(reject.dlq_headers())
    assert headers["trace"] == b"abc"
    assert headers["driftline.reason"] == b"malformed_json"
    assert headers["driftline.source.topic"] == b"t"
    assert headers["driftline.source.partition"] == b"2"
    assert headers["driftline.source.offset"] == b"41"
    long_detail = Reject(RejectReason.SCHEMA_VIOLATION, "d" * 5000, reject.message)
    assert len(dict(long_detail.dlq_headers())["driftline.detail"]) == 500


def test_decode_batch_keeps_good_events_aligned_with_their_messages() -> None:
    good = [_raw(encode(_prediction(request_id=f"r{i}"))) for i in range(3)]
    bad = [_raw(b"{"), _raw(_payload(schema_version=7))]
    result = decode_batch([good[0], bad[0], good[1], bad[1], good[2]], PredictionEvent)
    assert [e.request_id for e in result.events] == ["r0", "r1", "r2"]
    assert result.messages == good
    assert [r.reason for r in result.rejects] == [RejectReason.MALFORMED_JSON, RejectReason.UNKNOWN_SCHEMA_VERSION]


def test_encode_leaves_out_unset_optionals_and_is_compact() -> None:
    payload = orjson.loads(encode(_prediction()))
    assert "variant" not in payload and "entity_id" not in payload
    assert payload["schema_version"] == 1
    assert payload["features"]["missing"] is None


DEEP = {
    "arrays": b"[" * 2_000 + b"]" * 2_000,
    "objects_in_a_prediction": _payload()[:-1].replace(b'"prediction":1.0', b'"prediction":' + b'{"x":' * 100_000 + b"1"
                                                       + b"}" * 100_000),
    "nan_under_the_nesting": b'{"a":' * 5_000 + b"NaN" + b"}" * 5_000,
}


@pytest.mark.parametrize("name", sorted(DEEP))
@pytest.mark.parametrize("event_type", [PredictionEvent, OutcomeEvent])
def test_nesting_too_deep_to_parse_is_malformed_json_not_a_crash(name: str, event_type: type) -> None:
    """Past orjson's 1 024 levels the lenient re-parse ran out of Python's stack and raised."""
    value = DEEP[name]
    batch = decode_batch([_raw(value)], event_type, max_payload_bytes=10_000_000)
    records = decode_records([_raw(value)], event_type, max_payload_bytes=10_000_000)
    assert batch.events == records.records == []
    assert [r.reason for r in batch.rejects] == [r.reason for r in records.rejects] == [RejectReason.MALFORMED_JSON]


@pytest.mark.parametrize("event_type", [PredictionEvent, OutcomeEvent])
def test_an_event_after_the_latest_accepted_time_is_rejected_with_its_message(event_type: type) -> None:
    """Checked on both decoding paths: msgspec's, and pydantic's (an int ts is valid, normalised to a float)."""
    outcome = {"event_id": "o1", "ts": 1_700_000_000.5, "request_id": "r1", "model": "m", "outcome": "dog"}
    base = _payload() if event_type is PredictionEvent else orjson.dumps(outcome)
    as_int = base.replace(b'"ts":1700000000.5', b'"ts":1700000001')
    values = [base, as_int, base.replace(b'"ts":1700000000.5', b'"ts":1700000002.0')]
    batch = decode_records([_raw(v) for v in values], event_type, max_ts=1_700_000_001.0)
    assert [r.ts for r in batch.records] == [1_700_000_000.5, 1_700_000_001.0]
    [reject] = batch.rejects
    assert (reject.reason, reject.message.value, reject.message.offset) == (RejectReason.TS_IN_FUTURE, values[2], 41)
    assert "1700000002.0 is after 1700000001.0" in reject.detail
    assert decode_records([_raw(v) for v in values], event_type).rejects == []  # no limit by default
