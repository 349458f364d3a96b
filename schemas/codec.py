"""orjson codec and the batch decoder that never raises.

`decode_batch` turns raw Kafka messages into good events and `Reject`s. A reject keeps the
original bytes and says why, so the caller can forward it to the dead-letter topic with
`Reject.dlq_headers()` and count it by reason.
"""

from __future__ import annotations

import json
import math
from collections.abc import Hashable, Iterable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Generic, TypeVar

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

__all__ = [
    "DecodeResult",
    "RawMessage",
    "Reject",
    "RejectReason",
    "decode_batch",
    "decode_one",
    "encode",
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


@dataclass(frozen=True, slots=True)
class RawMessage:
    """The parts of a Kafka message the decoder needs; independent of the client library."""

    value: bytes | None
    key: bytes | None = None
    topic: str = ""
    partition: int = -1
    offset: int = -1
    headers: tuple[tuple[str, bytes], ...] = ()


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
_PLAIN_JSON_MODELS = frozenset(
    {PredictionEvent, OutcomeEvent, LabeledEvent, ClassPrediction, RankingPrediction, RankedItem, RankingOutcome}
)


def _set_fields(model: BaseModel) -> dict[str, Any]:
    """A plain model's fields without the None ones, as ``model_dump(exclude_none=True)`` gives them."""
    if type(model) not in _PLAIN_JSON_MODELS:
        raise TypeError(f"{type(model).__name__} is not a plain JSON model")
    return {name: value for name, value in model.__dict__.items() if value is not None}


def encode(event: BaseModel) -> bytes:
    """Serialise an event to JSON bytes with orjson.

    The hot events (predictions, outcomes, labeled events) go straight from their fields to
    orjson; the others through ``model_dump(mode="json")``. Both give the same bytes.
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
        # orjson refuses NaN/Infinity literals; tell those apart from broken JSON.
        try:
            lenient = json.loads(value)
        except (ValueError, UnicodeDecodeError):
            return Reject(RejectReason.MALFORMED_JSON, str(exc), message)
        if _has_non_finite(lenient):
            return Reject(RejectReason.NON_FINITE, "NaN or Infinity in payload", message)
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
