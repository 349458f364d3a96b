"""Event types (pydantic, the single source of truth), their JSON Schema files, and the codec."""

from driftline.schemas.codec import (
    DecodeResult,
    RawMessage,
    Reject,
    RejectReason,
    decode_batch,
    decode_one,
    encode,
)
from driftline.schemas.events import (
    SCHEMA_VERSION,
    ABResult,
    ClassPrediction,
    DriftAlert,
    Experiment,
    FeatureResult,
    LabeledEvent,
    MetricResult,
    ModelEvent,
    OutcomeEvent,
    PredictionEvent,
    RankedItem,
    RankingOutcome,
    RankingPrediction,
    deterministic_id,
)
from driftline.schemas.profiles import PanePartial, ReferenceProfile

__all__ = [
    "EVENT_TYPES",
    "SCHEMA_VERSION",
    "ABResult",
    "ClassPrediction",
    "DecodeResult",
    "DriftAlert",
    "Experiment",
    "FeatureResult",
    "LabeledEvent",
    "MetricResult",
    "ModelEvent",
    "OutcomeEvent",
    "PanePartial",
    "PredictionEvent",
    "RankedItem",
    "RankingOutcome",
    "RankingPrediction",
    "RawMessage",
    "ReferenceProfile",
    "Reject",
    "RejectReason",
    "decode_batch",
    "decode_one",
    "deterministic_id",
    "encode",
]

# Every event that crosses Kafka; each has a generated json/<Name>.schema.json.
EVENT_TYPES = (
    PredictionEvent,
    OutcomeEvent,
    LabeledEvent,
    DriftAlert,
    ModelEvent,
    Experiment,
    ABResult,
    ReferenceProfile,
    PanePartial,
)
