"""Plain Python values to the event parts of driftline's schemas.

Prediction services hold numbers, labels, numpy scalars and dicts, not pydantic objects. These
helpers give the SDK one documented mapping:

============================================  ==============================================
value                                          becomes
============================================  ==============================================
int, float, numpy number                      regression prediction / outcome (float)
str                                           class label (`ClassPrediction` / str outcome)
``(label, {class: probability})``             `ClassPrediction` with probabilities
``{item_id: score}`` (prediction)             `RankingPrediction`, items sorted by score
``{item_id: relevance}`` (outcome)            `RankingOutcome`
`ClassPrediction`, `RankingPrediction`, ...   passed through
============================================  ==============================================

Rankings need a group id (e.g. the race); it defaults to the request id.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from numbers import Real
from typing import Any

from driftline.schemas.events import (
    ClassPrediction,
    FeatureValue,
    Outcome,
    Prediction,
    RankedItem,
    RankingOutcome,
    RankingPrediction,
)

__all__ = ["class_prediction", "clean_features", "ranking_prediction", "to_outcome", "to_prediction"]


def class_prediction(label: str, probabilities: Mapping[str, float] | None = None) -> ClassPrediction:
    """A class label with optional class probabilities.

    Examples
    --------
    >>> class_prediction("1", {"0": 0.25, "1": 0.75}).label
    '1'
    """
    probs = None if probabilities is None else {str(k): float(v) for k, v in probabilities.items()}
    return ClassPrediction(label=str(label), probabilities=probs)


def ranking_prediction(group_id: str, scores: Mapping[str, float]) -> RankingPrediction:
    """A ranking from item scores, best first (ties keep the given order).

    Examples
    --------
    >>> [i.item_id for i in ranking_prediction("race-1", {"a": 0.1, "b": 0.7, "c": 0.3}).items]
    ['b', 'c', 'a']
    """
    ordered = sorted(scores.items(), key=lambda pair: -float(pair[1]))
    return RankingPrediction(
        group_id=group_id, items=[RankedItem(item_id=str(item), score=float(score)) for item, score in ordered]
    )


def _is_number(value: Any) -> bool:
    return isinstance(value, Real) and not isinstance(value, bool)


def to_prediction(value: Any, *, group_id: str) -> Prediction:
    """Map a plain prediction value to the schema's prediction (see the module table)."""
    if isinstance(value, ClassPrediction | RankingPrediction):
        return value
    if _is_number(value):
        return float(value)
    if isinstance(value, str):
        return ClassPrediction(label=value)
    if isinstance(value, tuple) and len(value) == 2 and isinstance(value[1], Mapping):
        return class_prediction(value[0], value[1])
    if isinstance(value, Mapping):
        return ranking_prediction(group_id, value)
    raise TypeError(f"cannot turn a {type(value).__name__} into a prediction (number, label, (label, probs), "
                    "{item: score})")


def to_outcome(value: Any, *, group_id: str) -> Outcome:
    """Map a plain outcome value to the schema's outcome (see the module table)."""
    if isinstance(value, RankingOutcome):
        return value
    if _is_number(value):
        return float(value)
    if isinstance(value, str):
        return value
    if isinstance(value, Mapping):
        return RankingOutcome(group_id=group_id, relevance={str(k): float(v) for k, v in value.items()})
    raise TypeError(f"cannot turn a {type(value).__name__} into an outcome (number, label, {{item: relevance}})")


def _clean_value(name: str, value: Any) -> FeatureValue:
    """The slow path of `clean_features`: numpy scalars, booleans, non-finite floats, bad types."""
    if hasattr(value, "item") and not isinstance(value, str):
        value = value.item()
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, float):
        if math.isnan(value):
            return None
        if math.isinf(value):
            raise ValueError(f"feature {name!r} is infinite")
        return value
    if value is None or isinstance(value, int | str):
        return value
    raise TypeError(f"feature {name!r}: {type(value).__name__} is not a number, string or None")


def clean_features(features: Mapping[str, Any]) -> dict[str, FeatureValue]:
    """Features as JSON-safe scalars: numpy scalars unwrapped, NaN and None both mean missing.

    Infinity is refused (ValueError): it is a bug upstream, not a missing value.

    Examples
    --------
    >>> import numpy as np
    >>> clean_features({"a": np.int64(3), "b": float("nan"), "c": "x", "d": True})
    {'a': 3, 'b': None, 'c': 'x', 'd': 1}
    """
    cleaned: dict[str, FeatureValue] = {}
    for name, value in features.items():
        kind = type(value)
        # Exact-type checks first: plain str, int and finite float are nearly all values.
        if not (kind is str or kind is int or value is None or (kind is float and math.isfinite(value))):
            value = _clean_value(name, value)
        cleaned[name] = value
    return cleaned
