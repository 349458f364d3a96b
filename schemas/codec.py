"""orjson codec and the batch decoders that never raise.

`decode_batch` turns raw Kafka messages into good events and `Reject`s. A reject keeps the
original bytes and says why, so the caller can forward it to the dead-letter topic with
`Reject.dlq_headers()` and count it by reason.

`decode_records` is the ingest hot path for predictions and outcomes: msgspec parses each
event and checks its shape in one pass (exact key set, JSON types, string lengths; a nested
prediction or outcome is then checked in Python), accepting only what the pydantic model
accepts, with pydantic's values, and the event is kept as a `PredictionRecord` or
`OutcomeRecord` (a slotted msgspec Struct). Anything it is unsure about goes through
`decode_one`, so accept/reject decisions and reject reasons are those of the pydantic models;
msgspec refuses NaN, Infinity and numbers that overflow a double, so every float it returns is
finite. A prediction that waits for its outcome is kept as a `PendingPrediction`, its
labeled event's JSON already written but for the outcome's part, which `labeled_json` adds.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Hashable, Iterable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Annotated, Any, Generic, Literal, NamedTuple, Protocol, TypeVar

import msgspec
import orjson
from pydantic import BaseModel, ValidationError

from driftline.schemas.events import (
    SCHEMA_VERSION,
    ClassPrediction,
    LabeledEvent,
    OutcomeEvent,
    PredictionEvent,
    RankedItem,
    RankingOutcome,
    RankingPrediction,
)
from driftline.schemas.profiles import (
    CategoricalSketchData,
    NumericBlockData,
    NumericSketchData,
    PanePartial,
    SampleData,
)

__all__ = [
    "DecodeResult",
    "MessageView",
    "OutcomeRecord",
    "PendingPrediction",
    "PredictionRecord",
    "RawMessage",
    "Record",
    "RecordBatch",
    "Reject",
    "RejectReason",
    "decode_batch",
    "decode_one",
    "decode_records",
    "encode",
    "labeled_json",
    "pending_prediction",
    "prediction_json",
]

E = TypeVar("E", bound=BaseModel)

SUPPORTED_SCHEMA_VERSIONS = frozenset({SCHEMA_VERSION})
_DETAIL_LIMIT = 500


class RejectReason(StrEnum):
    MALFORMED_JSON = "malformed_json"
    SCHEMA_VIOLATION = "schema_violation"
    NON_FINITE = "non_finite"
    PAYLOAD_TOO_LARGE = "payload_too_large"
    UNKNOWN_SCHEMA_VERSION = "unknown_schema_version"
    UNKNOWN_MODEL = "unknown_model"
    TS_IN_FUTURE = "ts_in_future"


class RawMessage(NamedTuple):
    """The parts of a Kafka message the decoder needs; independent of the client library.

    A named tuple: made once per consumed record, at a third of a frozen dataclass's cost.
    """

    value: bytes | None
    key: bytes | None = None
    topic: str = ""
    partition: int = -1
    offset: int = -1
    headers: tuple[tuple[str, bytes], ...] = ()

    def raw(self) -> RawMessage:
        return self


class MessageView(Protocol):
    """What `decode_records` reads of a message: value and offset, and the whole `RawMessage` for a reject.

    `RawMessage` is one; a consumer may hand in a view that reads the rest of a message only
    when it is rejected (most never are).
    """

    @property
    def value(self) -> bytes | None: ...

    @property
    def offset(self) -> int: ...

    def raw(self) -> RawMessage: ...


@dataclass(frozen=True, slots=True)
class Reject:
    """A message that could not be accepted, with the reason and the original bytes."""

    reason: RejectReason
    detail: str
    message: RawMessage

    def dlq_headers(self) -> list[tuple[str, bytes]]:
        """Headers for the dead-letter record: why, and where the original came from."""
        m = self.message
        return [
            *m.headers,
            ("driftline.reason", self.reason.value.encode()),
            ("driftline.detail", self.detail[:_DETAIL_LIMIT].encode()),
            ("driftline.source.topic", m.topic.encode()),
            ("driftline.source.partition", str(m.partition).encode()),
            ("driftline.source.offset", str(m.offset).encode()),
        ]


@dataclass(slots=True)
class DecodeResult(Generic[E]):
    events: list[E] = field(default_factory=list)
    messages: list[RawMessage] = field(default_factory=list)
    rejects: list[Reject] = field(default_factory=list)


# Events whose fields hold only JSON types (str, float, int, None, dicts and lists of them) and
# models of this set, so orjson can write their fields directly: half the cost of model_dump.
# Pane partials too: ingest writes one per pane, model and source, with samples of ~10^3 floats.
_PLAIN_JSON_MODELS = frozenset(
    {PredictionEvent, OutcomeEvent, LabeledEvent, ClassPrediction, RankingPrediction, RankedItem, RankingOutcome,
     PanePartial, NumericSketchData, CategoricalSketchData, NumericBlockData, SampleData}
)


def _set_fields(model: BaseModel) -> dict[str, Any]:
    """A plain model's fields without the None ones, as ``model_dump(exclude_none=True)`` gives them."""
    if type(model) not in _PLAIN_JSON_MODELS:
        raise TypeError(f"{type(model).__name__} is not a plain JSON model")
    return {name: value for name, value in model.__dict__.items() if value is not None}


def encode(event: BaseModel) -> bytes:
    """Serialise an event to JSON bytes with orjson.

    The hot events (predictions, outcomes, labeled events, pane partials) go straight from their
    fields to orjson; the others through ``model_dump(mode="json")``. Both give the same bytes.
    """
    if type(event) in _PLAIN_JSON_MODELS:
        return orjson.dumps(_set_fields(event), default=_set_fields)
    return orjson.dumps(event.model_dump(mode="json", exclude_none=True))


def _has_non_finite(obj: Any) -> bool:
    if isinstance(obj, float):
        return not math.isfinite(obj)
    if isinstance(obj, dict):
        return any(_has_non_finite(v) for v in obj.values())
    if isinstance(obj, list):
        return any(_has_non_finite(v) for v in obj)
    return False


def decode_one(
    message: RawMessage, event_type: type[E], *, max_payload_bytes: int = 1_048_576
) -> E | Reject:
    """Decode one message into ``event_type`` or a `Reject`; never raises."""
    value = message.value
    if value is None:
        return Reject(RejectReason.MALFORMED_JSON, "empty message (null value)", message)
    if len(value) > max_payload_bytes:
        return Reject(
            RejectReason.PAYLOAD_TOO_LARGE, f"{len(value)} bytes > limit {max_payload_bytes}", message
        )
    try:
        data = orjson.loads(value)
    except orjson.JSONDecodeError as exc:
        # orjson refuses NaN/Infinity literals; tell those apart from broken JSON. Nesting deeper
        # than orjson's 1 024 levels exhausts Python's recursion limit here: broken JSON too.
        try:
            if _has_non_finite(json.loads(value)):
                return Reject(RejectReason.NON_FINITE, "NaN or Infinity in payload", message)
        except (ValueError, UnicodeDecodeError, RecursionError):
            pass
        return Reject(RejectReason.MALFORMED_JSON, str(exc), message)
    if not isinstance(data, dict):
        return Reject(RejectReason.SCHEMA_VIOLATION, f"expected a JSON object, got {type(data).__name__}", message)
    version = data.get("schema_version", SCHEMA_VERSION)
    if not isinstance(version, Hashable) or version not in SUPPORTED_SCHEMA_VERSIONS:
        return Reject(
            RejectReason.UNKNOWN_SCHEMA_VERSION,
            f"schema_version {version!r} not in {sorted(SUPPORTED_SCHEMA_VERSIONS)}",
            message,
        )
    try:
        return event_type.model_validate(data)
    except ValidationError as exc:
        errors = exc.errors(include_url=False)
        if any(e["type"] == "finite_number" for e in errors):
            return Reject(RejectReason.NON_FINITE, "NaN or Infinity in payload", message)
        first = errors[0]
        where = ".".join(str(p) for p in first["loc"])
        detail = f"{len(errors)} error(s); {where}: {first['msg']}"
        return Reject(RejectReason.SCHEMA_VIOLATION, detail, message)


def decode_batch(
    messages: Iterable[RawMessage], event_type: type[E], *, max_payload_bytes: int = 1_048_576
) -> DecodeResult[E]:
    """Decode a batch: good events (with their messages, index-aligned) and rejects."""
    result: DecodeResult[E] = DecodeResult()
    for message in messages:
        decoded = decode_one(message, event_type, max_payload_bytes=max_payload_bytes)
        if isinstance(decoded, Reject):
            result.rejects.append(decoded)
        else:
            result.events.append(decoded)
            result.messages.append(message)
    return result


# --- the ingest hot path: validated records instead of pydantic objects -----------------------

_NAME_MAX = 256
_CLASS_KEYS = frozenset({"label", "probabilities"})
_RANKING_PREDICTION_KEYS = frozenset({"group_id", "items"})
_RANKED_ITEM_KEYS = frozenset({"item_id", "score"})
_RANKING_OUTCOME_KEYS = frozenset({"group_id", "relevance"})
_FLOAT_TYPE = frozenset({float})


def _is_name(value: object) -> bool:
    """A `NonEmptyStr` as pydantic checks it: a str of 1 to 256 characters."""
    return type(value) is str and 0 < len(value) <= _NAME_MAX


def _is_prediction(value: Any) -> bool:
    """A prediction pydantic would keep as it is: a float, a ClassPrediction or RankingPrediction dict."""
    kind = type(value)
    if kind is float:
        return True
    if kind is not dict:
        return False  # ints and numeric strings are converted by pydantic: let it decide
    keys = value.keys()
    if "label" in keys:
        if not keys <= _CLASS_KEYS or not _is_name(value["label"]):
            return False
        probabilities = value.get("probabilities")
        if probabilities is None:
            return True
        if type(probabilities) is not dict:
            return False
        values = probabilities.values()
        return not values or (_FLOAT_TYPE.issuperset(map(type, values)) and min(values) >= 0.0 and max(values) <= 1.0)
    if keys != _RANKING_PREDICTION_KEYS or not _is_name(value["group_id"]):
        return False
    items = value["items"]
    if type(items) is not list or not items:
        return False
    return all(
        type(item) is dict and item.keys() == _RANKED_ITEM_KEYS and _is_name(item["item_id"])
        and type(item["score"]) is float
        for item in items
    )


def _is_outcome(value: Any) -> bool:
    """An outcome pydantic would keep as it is: a float, a str, or a RankingOutcome dict."""
    kind = type(value)
    if kind is float or kind is str:
        return True
    if kind is not dict or value.keys() != _RANKING_OUTCOME_KEYS:
        return False
    relevance = value["relevance"]
    return (_is_name(value["group_id"]) and type(relevance) is dict and len(relevance) > 0
            and _FLOAT_TYPE.issuperset(map(type, relevance.values())))


class PredictionRecord(msgspec.Struct, gc=False):
    """A validated `PredictionEvent` as ingest holds it: its JSON values in a slotted record.

    Not a pydantic object (no validation or conversion is left to do) and not a dict: a few
    hundred bytes fewer per held event, and, with ``gc=False``, nothing for the cyclic GC to
    walk (a record never refers back to itself). Together 6-12 % less CPU per event in
    ``bench/ingest_handler_bench.py`` (two sets of three alternated rounds: 7.3 against 8.4 and
    8.7 against 9.3 µs). The nested prediction stays the JSON object (dict) it was.
    """

    event_id: str
    ts: float
    model: str
    model_version: str
    request_id: str
    features: dict[str, Any]
    prediction: Any
    schema_version: int = SCHEMA_VERSION
    variant: str | None = None
    entity_id: str | None = None


class OutcomeRecord(msgspec.Struct, gc=False):
    """A validated `OutcomeEvent` as ingest holds it; see `PredictionRecord`."""

    event_id: str
    ts: float
    request_id: str
    model: str
    outcome: Any
    schema_version: int = SCHEMA_VERSION


Record = PredictionRecord | OutcomeRecord

# The shapes `decode_records` lets through without pydantic, for msgspec, which checks them in C
# while it parses. They accept a subset of what the pydantic events accept, with the values
# pydantic would give (an int ``ts`` becomes a float in both); anything else fails here and goes
# to pydantic, and tests/schemas/test_codec_records.py holds the two to the same decisions.
# Ints are bounded to int64 (orjson reads ints past uint64 as floats: pydantic decides those); a nested
# prediction or outcome is only a dict here and `_is_prediction` / `_is_outcome` check it.
_Name = Annotated[str, msgspec.Meta(min_length=1, max_length=_NAME_MAX)]
_Int = Annotated[int, msgspec.Meta(ge=-(2**63), le=2**63 - 1)]


class _PlainPrediction(PredictionRecord, forbid_unknown_fields=True, gc=False):
    event_id: _Name
    ts: float
    model: _Name
    model_version: _Name
    request_id: _Name
    features: dict[str, float | _Int | str | None]
    prediction: float | dict[str, Any]
    schema_version: Literal[1] = SCHEMA_VERSION
    variant: _Name | None = None
    entity_id: _Name | None = None


class _PlainOutcome(OutcomeRecord, forbid_unknown_fields=True, gc=False):
    event_id: _Name
    ts: float
    request_id: _Name
    model: _Name
    outcome: float | str | dict[str, Any]
    schema_version: Literal[1] = SCHEMA_VERSION


def _plain_decoder(
    shape: type[Record], nested: str, nested_is_plain: Callable[[Any], bool]
) -> Callable[[bytes], Record | None]:
    """A decoder of one event type: its validated record, or None when pydantic must decide."""
    decode = msgspec.json.Decoder(shape).decode

    def plain(value: bytes) -> Record | None:
        try:
            record = decode(value)
        except (msgspec.MsgspecError, RecursionError):  # too deep a nesting: let decode_one say so
            return None
        inner = getattr(record, nested)  # a prediction or outcome: a dict only msgspec has not checked
        return record if type(inner) is not dict or nested_is_plain(inner) else None

    return plain


_PLAIN_DECODERS = {
    PredictionEvent: _plain_decoder(_PlainPrediction, "prediction", _is_prediction),
    OutcomeEvent: _plain_decoder(_PlainOutcome, "outcome", _is_outcome),
}
_RECORD_TYPES: dict[type[BaseModel], type[Record]] = {PredictionEvent: PredictionRecord, OutcomeEvent: OutcomeRecord}


@dataclass(slots=True)
class RecordBatch:
    """Validated events as records, index-aligned with their offsets, and the rejects."""

    records: list[Record] = field(default_factory=list)
    offsets: list[int] = field(default_factory=list)
    rejects: list[Reject] = field(default_factory=list)


def decode_records(
    messages: Iterable[MessageView],
    event_type: type[PredictionEvent] | type[OutcomeEvent],
    *,
    max_payload_bytes: int = 1_048_576,
    max_ts: float = math.inf,
) -> RecordBatch:
    """Decode predictions or outcomes into records; same decisions and reasons as `decode_batch`.

    A record the msgspec shape accepts is kept as it decoded (pydantic would accept it with
    the same values); every other one goes through `decode_one`, and if pydantic accepts it
    after all, its validated, normalised form is kept (e.g. a bool feature stays a bool).
    A valid event whose ``ts`` is after ``max_ts`` is rejected as `RejectReason.TS_IN_FUTURE`:
    one such event would move the watermark past every event that follows it.
    """
    plain = _PLAIN_DECODERS[event_type]
    batch = RecordBatch()
    records, offsets = batch.records, batch.offsets
    for message in messages:
        value = message.value
        data = plain(value) if value is not None and len(value) <= max_payload_bytes else None
        if data is None:
            decoded = decode_one(message.raw(), event_type, max_payload_bytes=max_payload_bytes)
            if isinstance(decoded, Reject):
                batch.rejects.append(decoded)
                continue
            data = _record_of(decoded, _RECORD_TYPES[event_type])
        if data.ts > max_ts:
            batch.rejects.append(Reject(
                RejectReason.TS_IN_FUTURE,
                f"ts {data.ts!r} is after {max_ts!r}, the latest event time accepted now", message.raw()))
            continue
        records.append(data)
        offsets.append(message.offset)
    return batch


def _record_of(event: BaseModel, record_type: type[Record]) -> Record:
    """A validated event as the record `decode_records` keeps (nested models as their JSON objects)."""
    return msgspec.convert(orjson.loads(encode(event)), record_type)


class PendingPrediction(msgspec.Struct, gc=False):
    """A prediction as ingest keeps it once its pane sketches have it: what its labeled event needs.

    A prediction waits in the join store for its outcome (up to the maximum label delay), so
    this is what ingest holds the longest. Its features are only ever written out again, so
    they are kept as the labeled event's JSON, encoded once while the record is fresh in
    memory (``labeled_body``: model to prediction; ``labeled_tail``: variant and entity id,
    when set), not as a dict of Python objects: about half the memory, and `labeled_json`
    joins bytes instead of walking a dict that, by the time the outcome comes, is seldom in
    the CPU's caches. ``prediction`` stays the decoded value the labeled sketches read.
    """

    event_id: str
    ts: float
    model: str
    request_id: str
    prediction: Any
    labeled_body: bytes
    labeled_tail: bytes = b""


def pending_prediction(record: PredictionRecord) -> PendingPrediction:
    """The `PendingPrediction` of a decoded prediction."""
    body = orjson.dumps({"model": record.model, "model_version": record.model_version,
                         "request_id": record.request_id, "features": record.features,
                         "prediction": record.prediction})[1:-1]
    tail = b""
    if record.variant is not None or record.entity_id is not None:
        optional = (("variant", record.variant), ("entity_id", record.entity_id))
        tail = b"," + orjson.dumps({name: value for name, value in optional if value is not None})[1:-1]
    return PendingPrediction(record.event_id, record.ts, record.model, record.request_id, record.prediction, body, tail)


_EVENT_HEAD = b'{"schema_version":%d,"event_id":' % SCHEMA_VERSION


def labeled_json(event_id: str, prediction: PendingPrediction, outcome: OutcomeRecord) -> bytes:
    """The `LabeledEvent` of a prediction and its outcome, as the JSON bytes `encode` gives it.

    Fields in the model's order, optional ones only when set; no validation, since both
    were validated on the way in.
    """
    dumps = orjson.dumps
    return b"".join((_EVENT_HEAD, dumps(event_id), b',"ts":', dumps(prediction.ts), b',"outcome_ts":',
                     dumps(outcome.ts), b",", prediction.labeled_body, b',"outcome":', dumps(outcome.outcome),
                     prediction.labeled_tail, b"}"))


def prediction_json(prediction: PendingPrediction) -> bytes:
    """The `PredictionEvent` a pending prediction came from, as JSON (``decode_records`` reads it back)."""
    dumps = orjson.dumps
    return b"".join((_EVENT_HEAD, dumps(prediction.event_id), b',"ts":', dumps(prediction.ts), b",",
                     prediction.labeled_body, prediction.labeled_tail, b"}"))
