"""Reference profiles: the baseline of one model version, built from a reference sample.

`build_reference` accepts a DataFrame (feature columns plus ``prediction``, and optionally
``outcome``, ``score`` (classification: probability of the positive class for binary
models, of the predicted class otherwise) and ``group_id`` for rankings),
a pyarrow table, a CSV or parquet path, or an iterable of PredictionEvent / LabeledEvent.
For rankings one row is one ranked item.
"""

from __future__ import annotations

import hashlib
from collections.abc import Collection, Iterable
from pathlib import Path
from typing import Any, Literal

import numpy as np
import orjson
import pandas as pd

from driftline.schemas.events import (
    ClassPrediction,
    LabeledEvent,
    PredictionEvent,
    RankingOutcome,
    RankingPrediction,
)
from driftline.schemas.profiles import CategoricalFeatureProfile, NumericFeatureProfile, ReferenceProfile
from driftline.stream.sketch import CategoricalBins, NumericBins

__all__ = [
    "RESERVED_COLUMNS",
    "binary_positive",
    "build_reference",
    "classification_score",
    "events_to_frame",
    "profile_id",
    "read_sample",
]

Task = Literal["classification", "regression", "ranking"]
ReferenceSample = pd.DataFrame | str | Path | Iterable[PredictionEvent | LabeledEvent] | Any

RESERVED_COLUMNS = frozenset(
    {"prediction", "outcome", "score", "group_id", "item_id", "ts", "event_id", "request_id", "model",
     "model_version", "variant", "entity_id"}
)
MAX_OTHER_CATEGORIES = 10_000


def build_reference(
    sample: ReferenceSample,
    *,
    model: str,
    model_version: str,
    task: Task,
    feature_names: list[str] | None = None,
    n_bins: int = 20,
    top_k: int = 50,
    sample_size: int = 1000,
    seed: int = 0,
    created_ts: float = 0.0,
) -> ReferenceProfile:
    """Profile a reference sample: bins, moments and a sample per feature, predictions, performance.

    Parameters
    ----------
    sample
        DataFrame, pyarrow table, CSV/parquet path, or iterable of PredictionEvent/LabeledEvent.
    feature_names
        Features to monitor; default every non-reserved column. Numeric columns (bool
        excluded) get quantile bins, the others a category table.
    n_bins
        Equal-frequency bins per numeric feature (two open ends are added).
    top_k
        Categories kept by name per categorical feature; the rest of the reference is ``other``.
    sample_size
        Values kept per numeric feature for exact tests (KS, Wasserstein).
    seed
        Seed of the sample draw; same input and seed, same profile and ``reference_id``.
    created_ts
        Stored as is (time is an argument, not read from a clock).

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> df = pd.DataFrame({"age": rng.normal(40, 10, 500), "city": rng.choice(["a", "b"], 500),
    ...                    "prediction": rng.normal(size=500), "outcome": rng.normal(size=500)})
    >>> p = build_reference(df, model="m", model_version="1", task="regression")
    >>> sorted(p.features), len(p.features["age"].counts), sorted(p.performance)
    (['age', 'city'], 22, ['mae', 'rmse'])
    """
    if n_bins < 1 or top_k < 1 or sample_size < 1:
        raise ValueError("n_bins, top_k and sample_size must be >= 1")
    frame = read_sample(sample)
    if "prediction" not in frame.columns:
        raise ValueError("the reference sample needs a 'prediction' column")
    names = feature_names if feature_names is not None else [c for c in frame.columns if c not in RESERVED_COLUMNS]
    missing = [n for n in names if n not in frame.columns]
    if missing:
        raise ValueError(f"features not in the reference sample: {missing}")
    rng = np.random.default_rng(seed)
    features = {name: _profile_column(frame[name], n_bins=n_bins, top_k=top_k, sample_size=sample_size, rng=rng)
                for name in names}
    prediction_column = frame["prediction"].astype(str) if task == "classification" else frame["prediction"]
    prediction = _profile_column(prediction_column, n_bins=n_bins, top_k=max(top_k, 1000), sample_size=sample_size,
                                 rng=rng)
    content: dict[str, Any] = {
        "model": model, "model_version": model_version, "created_ts": float(created_ts), "task": task,
        "n_samples": len(frame), "features": {k: v.model_dump(mode="json") for k, v in features.items()},
        "prediction": prediction.model_dump(mode="json"), "prediction_score": None,
        "performance": _performance(frame, task),
    }
    if task == "classification" and "score" in frame.columns and frame["score"].notna().any():
        score = _numeric_profile(frame["score"].to_numpy(dtype=float, na_value=np.nan), n_bins=n_bins,
                                 sample_size=sample_size, rng=rng)
        content["prediction_score"] = score.model_dump(mode="json")
    return ReferenceProfile(reference_id=profile_id(content), **content)


def profile_id(content: dict[str, Any]) -> str:
    """Content hash of a profile's fields (everything but ``reference_id`` and ``schema_version``).

    ``content`` is the JSON form with every field present, as ``ReferenceProfile.model_dump(mode="json")``
    gives it, so anyone can check a profile's id.
    """
    body = {k: v for k, v in content.items() if k not in ("reference_id", "schema_version")}
    return hashlib.sha256(orjson.dumps(body, option=orjson.OPT_SORT_KEYS)).hexdigest()[:32]


def read_sample(sample: ReferenceSample) -> pd.DataFrame:
    """Any accepted reference input as a DataFrame."""
    if isinstance(sample, pd.DataFrame):
        return sample
    if isinstance(sample, str | Path):
        path = Path(sample)
        if path.suffix.lower() in (".parquet", ".pq"):
            return pd.read_parquet(path)
        if path.suffix.lower() == ".csv":
            return pd.read_csv(path)
        raise ValueError(f"unsupported reference file {path} (use .csv or .parquet)")
    if hasattr(sample, "to_pandas"):  # pyarrow Table / RecordBatch
        return sample.to_pandas()
    return events_to_frame(sample)


def events_to_frame(events: Iterable[PredictionEvent | LabeledEvent]) -> pd.DataFrame:
    """Rows of features, ``prediction`` (and ``outcome``, ``score``, ``group_id``) from events.

    A ranking event becomes one row per ranked item (prediction = the item's score,
    outcome = its relevance, 0 when the outcome does not list it).
    """
    rows: list[dict[str, Any]] = []
    for event in events:
        base: dict[str, Any] = dict(event.features)
        outcome = event.outcome if isinstance(event, LabeledEvent) else None
        prediction = event.prediction
        if isinstance(prediction, RankingPrediction):
            relevance = outcome.relevance if isinstance(outcome, RankingOutcome) else {}
            for item in prediction.items:
                row = {**base, "prediction": item.score, "group_id": prediction.group_id}
                if outcome is not None:
                    row["outcome"] = relevance.get(item.item_id, 0.0)
                rows.append(row)
            continue
        if isinstance(prediction, ClassPrediction):
            base["prediction"] = prediction.label
            if prediction.probabilities:
                base["probabilities"] = prediction.probabilities
        else:
            base["prediction"] = prediction
        if outcome is not None:
            base["outcome"] = outcome
        rows.append(base)
    frame = pd.DataFrame(rows)
    if "probabilities" in frame.columns:
        labels = sorted({str(v) for v in frame["prediction"]} | {str(v) for v in frame.get("outcome", [])})
        positive = binary_positive(labels)
        frame["score"] = [classification_score(p, label, positive)
                          for p, label in zip(frame.pop("probabilities"), frame["prediction"], strict=True)]
    return frame


def binary_positive(labels: Collection[str]) -> str | None:
    """The positive class of a binary classifier: the last (greatest) of its two labels; None for any other count.

    Its probability is the score a binary classification is monitored by (`classification_score`).

    Examples
    --------
    >>> binary_positive(["yes", "no"]), binary_positive(["a", "b", "c"]), binary_positive(["a"])
    ('yes', None, None)
    """
    return max(labels) if len(labels) == 2 else None


def classification_score(probabilities: object, label: str, positive: str | None) -> float | None:
    """The score a classification is monitored by: P(positive) for binary models, else P(predicted label).

    Examples
    --------
    >>> classification_score({"yes": 0.8, "no": 0.2}, "yes", "yes"), classification_score({"a": 0.6}, "a", None)
    (0.8, 0.6)
    """
    if not isinstance(probabilities, dict):
        return None
    return probabilities.get(positive if positive is not None else label)


def _is_numeric(column: pd.Series) -> bool:
    return pd.api.types.is_numeric_dtype(column) and not pd.api.types.is_bool_dtype(column)


def _profile_column(column: pd.Series, *, n_bins: int, top_k: int, sample_size: int,
                    rng: np.random.Generator) -> NumericFeatureProfile | CategoricalFeatureProfile:
    if _is_numeric(column):
        return _numeric_profile(column.to_numpy(dtype=float, na_value=np.nan), n_bins=n_bins,
                                sample_size=sample_size, rng=rng)
    return _categorical_profile(column, top_k=top_k)


def _numeric_profile(values: np.ndarray, *, n_bins: int, sample_size: int,
                     rng: np.random.Generator) -> NumericFeatureProfile:
    finite = values[np.isfinite(values)]
    n_null = len(values) - len(finite)
    if len(finite) == 0:
        raise ValueError("a numeric reference feature has no finite values")
    edges = np.unique(np.quantile(finite, np.linspace(0.0, 1.0, n_bins + 1)))
    if len(edges) == 1:
        edges = np.repeat(edges, 2)
    bins = NumericBins(edges)
    counts = np.bincount(bins.ids(finite), minlength=bins.n_bins)
    sample = finite if len(finite) <= sample_size else rng.choice(finite, size=sample_size, replace=False)
    return NumericFeatureProfile(
        edges=edges.tolist(), counts=counts.tolist(), n=len(finite), n_null=n_null, mean=float(finite.mean()),
        std=float(finite.std()), min=float(finite.min()), max=float(finite.max()), sample=np.sort(sample).tolist(),
    )


def _categorical_profile(column: pd.Series, *, top_k: int) -> CategoricalFeatureProfile:
    present = column.dropna().astype(str)
    frequencies = present.value_counts()
    # most frequent first, ties by name, so the profile (and its id) is deterministic
    ordered = sorted(frequencies.items(), key=lambda kv: (-kv[1], kv[0]))
    top = [name for name, _ in ordered[:top_k]]
    others = [name for name, _ in ordered[top_k:]]
    bins = CategoricalBins(top, other_categories=others[:MAX_OTHER_CATEGORIES])
    counts = np.bincount(bins.ids(present.to_numpy(dtype=object)), minlength=bins.n_bins)
    counts[bins.other] += counts[bins.unseen]  # reference categories beyond the listed bound are still `other`
    return CategoricalFeatureProfile(
        categories=top, counts=counts[: bins.unseen].tolist(), other_categories=others[:MAX_OTHER_CATEGORIES],
        n=len(present), n_null=len(column) - len(present),
    )


def _performance(frame: pd.DataFrame, task: Task) -> dict[str, float]:
    if "outcome" not in frame.columns:
        return {}
    from driftline.stream.performance import compute_metrics

    labeled = frame[frame["outcome"].notna()]
    if labeled.empty:
        return {}
    if task == "classification":
        scores = labeled["score"].to_numpy(dtype=float) if "score" in labeled.columns else None
        binary = len(set(labeled["prediction"].astype(str)) | set(labeled["outcome"].astype(str))) == 2
        if scores is not None and (not binary or np.isnan(scores).any()):
            scores = None  # ROC AUC and log loss need the positive-class probability of every row
        return compute_metrics(task, labeled["outcome"].astype(str).to_numpy(),
                               labeled["prediction"].astype(str).to_numpy(), scores=scores)
    groups = labeled["group_id"].astype(str).to_numpy() if task == "ranking" else None
    return compute_metrics(task, labeled["outcome"].to_numpy(dtype=float), labeled["prediction"].to_numpy(dtype=float),
                           groups=groups)
