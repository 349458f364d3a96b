"""driftline's events: one pydantic class per event is the single source of truth.

The JSON Schema files beside this module (``json/<EventName>.schema.json``) are generated
from these classes (``python -m driftline.schemas.generate``) so producers in any language
can validate, and a test fails when a class and its file disagree.

Times are event time: ``ts`` is epoch seconds (float) set by the producer.
"""

from __future__ import annotations

import hashlib
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "SCHEMA_VERSION",
    "ABResult",
    "ClassPrediction",
    "DriftAlert",
    "Event",
    "Experiment",
    "FeatureResult",
    "FeatureValue",
    "LabeledEvent",
    "MetricResult",
    "ModelEvent",
    "Outcome",
    "OutcomeEvent",
    "Prediction",
    "PredictionEvent",
    "RankedItem",
    "RankingOutcome",
    "RankingPrediction",
    "VariantResult",
    "VariantSpec",
    "deterministic_id",
]

SCHEMA_VERSION = 1

NonEmptyStr = Annotated[str, Field(min_length=1, max_length=256)]
FeatureValue = float | int | str | None


class Event(BaseModel):
    """Base of every event: strict shape, finite numbers only, a schema version."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False, ser_json_inf_nan="null")

    schema_version: Literal[1] = SCHEMA_VERSION


class _Part(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


# --- predictions and outcomes -----------------------------------------------------------


class ClassPrediction(_Part):
    """A class label, optionally with the class probabilities the model gave."""

    label: NonEmptyStr
    probabilities: dict[str, Annotated[float, Field(ge=0.0, le=1.0)]] | None = None


class RankedItem(_Part):
    item_id: NonEmptyStr
    score: float


class RankingPrediction(_Part):
    """A ranking of the items of one group (e.g. the runners of one race), with scores."""

    group_id: NonEmptyStr
    items: list[RankedItem] = Field(min_length=1)


class RankingOutcome(_Part):
    """Relevance per item of a ranked group; higher is better (e.g. runners - finishing position)."""

    group_id: NonEmptyStr
    relevance: dict[str, float] = Field(min_length=1)


Prediction = float | ClassPrediction | RankingPrediction
Outcome = float | str | RankingOutcome


class PredictionEvent(Event):
    """What a model saw and predicted for one request."""

    event_id: NonEmptyStr
    ts: float
    model: NonEmptyStr
    model_version: NonEmptyStr
    request_id: NonEmptyStr
    features: dict[str, FeatureValue]
    prediction: Prediction
    variant: NonEmptyStr | None = None
    entity_id: NonEmptyStr | None = None


class OutcomeEvent(Event):
    """What actually happened for a request; may arrive long after the prediction."""

    event_id: NonEmptyStr
    ts: float
    request_id: NonEmptyStr
    model: NonEmptyStr
    outcome: Outcome


class LabeledEvent(Event):
    """A prediction joined with its outcome: the training data of record."""

    event_id: NonEmptyStr
    ts: float = Field(description="event time of the prediction")
    outcome_ts: float
    model: NonEmptyStr
    model_version: NonEmptyStr
    request_id: NonEmptyStr
    features: dict[str, FeatureValue]
    prediction: Prediction
    outcome: Outcome
    variant: NonEmptyStr | None = None
    entity_id: NonEmptyStr | None = None


# --- alerts -----------------------------------------------------------------------------


class FeatureResult(_Part):
    """One test of one feature (or of the prediction) on one window, with its evidence."""

    feature: str
    test: str
    statistic: float
    p_value: float | None = None
    p_adjusted: float | None = None
    score: float | None = Field(None, description="effect size, e.g. PSI")
    threshold: float
    drifted: bool
    n_reference: int = Field(ge=0)
    n_current: int = Field(ge=0)


class MetricResult(_Part):
    """Performance of one metric on one window against the reference performance."""

    metric: str
    reference: float
    current: float
    relative_drop: float
    significance_test: str
    p_value: float | None = None
    ci_low: float | None = None
    ci_high: float | None = None
    dropped: bool
    n: int = Field(ge=0)


class DriftAlert(Event):
    """Published on the trigger topic; any retrain worker, in any language, may consume it."""

    alert_id: NonEmptyStr
    ts: float = Field(description="event time the alert refers to: the window end")
    model: NonEmptyStr
    model_version: NonEmptyStr
    kind: Literal["data", "prediction", "concept", "outcome"]
    status: Literal["drift", "recovered"] = "drift"
    window_start: float
    window_end: float
    results: list[FeatureResult] = Field(default_factory=list)
    metrics: list[MetricResult] = Field(default_factory=list)
    drift_ratio: float = Field(ge=0.0, le=1.0)
    severity: Literal["info", "warning", "critical"]
    n_current: int = Field(ge=0)
    n_reference: int = Field(ge=0)
    reference_id: str
    correction: str = "bh"
    action: Literal["retrain", "none"] = "none"
    early_signals: list[str] = Field(default_factory=list, description="e.g. ADWIN on per-event loss")


# --- models and experiments -------------------------------------------------------------


class ModelEvent(Event):
    """A registry decision, published on the compacted `models` topic."""

    event_id: NonEmptyStr
    ts: float
    model: NonEmptyStr
    version: NonEmptyStr
    action: Literal["registered", "promoted", "challenger", "rolled_back", "archived", "deferred"]
    previous_champion: str | None = None
    champion: str | None = Field(
        None,
        description="the champion version after this decision; every event names it, so the latest record per "
        "model on the compacted topic tells the champion even when it is a deferral or a challenger",
    )
    reason: str = ""
    run_id: str | None = None
    alert_id: str | None = None
    metrics: dict[str, float] = Field(default_factory=dict)
    champion_metrics: dict[str, float] = Field(default_factory=dict)


class VariantSpec(_Part):
    name: NonEmptyStr
    model_version: NonEmptyStr
    traffic: float = Field(gt=0.0, le=1.0)


class Experiment(Event):
    """An A/B test definition and its state, on the compacted `experiments` topic."""

    experiment_id: NonEmptyStr
    ts: float
    model: NonEmptyStr
    variants: list[VariantSpec] = Field(min_length=2)
    metric: str = "accuracy"
    alpha: float = Field(0.05, gt=0.0, lt=1.0)
    min_samples_per_variant: int = Field(500, ge=1)
    status: Literal["running", "concluded", "stopped"] = "running"


class VariantResult(_Part):
    name: str
    model_version: str
    n: int = Field(ge=0)
    value: float
    ci_low: float
    ci_high: float


class ABResult(Event):
    """One analysis snapshot of an experiment."""

    experiment_id: NonEmptyStr
    ts: float
    model: NonEmptyStr
    metric: str
    variants: list[VariantResult]
    test: str
    statistic: float
    p_value: float
    winner: str | None = None
    conclusion: Literal["running", "significant", "no_difference", "insufficient_data"]


def deterministic_id(*parts: object) -> str:
    """Stable id from its parts, so a replay of the same input yields the same id."""
    digest = hashlib.sha256("\x1f".join(str(p) for p in parts).encode()).hexdigest()
    return digest[:32]
