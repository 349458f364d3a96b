"""Wire forms of the drift core's state: reference profiles and pane partials.

A `ReferenceProfile` is the baseline one model version is tested against; it travels on the
compacted ``references`` topic. A `PanePartial` is one source's sketch of one model over one
event-time pane; stage 1 (ingest) emits them on ``panes`` and stage 2 (monitor) merges them
into windows. Both are plain data: the maths lives in ``driftline.stream``.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from driftline.schemas.events import Event

__all__ = [
    "CategoricalFeatureProfile",
    "CategoricalSketchData",
    "FeatureProfile",
    "NumericBlockData",
    "NumericFeatureProfile",
    "NumericSketchData",
    "PanePartial",
    "ReferenceProfile",
    "SampleData",
    "SketchData",
]

Task = Literal["classification", "regression", "ranking"]


class _Part(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class NumericFeatureProfile(_Part):
    """Reference distribution of one numeric feature.

    ``edges`` are the reference quantiles (minimum and maximum included); the bins are
    ``(-inf, edges[0])``, ``[edges[i-1], edges[i])`` ..., ``[edges[-2], edges[-1]]`` and
    ``(edges[-1], +inf)``, so ``counts`` has ``len(edges) + 1`` entries and the two open ends
    are empty in the reference: values outside the reference range show up there.
    """

    kind: Literal["numeric"] = "numeric"
    edges: list[float] = Field(min_length=2)
    counts: list[int]
    n: int = Field(ge=0, description="non-null values")
    n_null: int = Field(0, ge=0)
    mean: float
    std: float = Field(ge=0.0)
    min: float
    max: float
    sample: list[float] = Field(default_factory=list, description="uniform sample for exact tests")


class CategoricalFeatureProfile(_Part):
    """Reference distribution of one categorical feature: top-k categories plus ``other``.

    ``counts`` has ``len(categories) + 1`` entries, the last one being ``other`` (reference
    categories outside the top-k, listed up to a bound in ``other_categories``). A value in
    neither list is ``unseen``: new since the reference.
    """

    kind: Literal["categorical"] = "categorical"
    categories: list[str]
    counts: list[int]
    other_categories: list[str] = Field(default_factory=list)
    n: int = Field(ge=0, description="non-null values")
    n_null: int = Field(0, ge=0)


FeatureProfile = Annotated[NumericFeatureProfile | CategoricalFeatureProfile, Field(discriminator="kind")]


class ReferenceProfile(Event):
    """The baseline one model version is tested against; ``reference_id`` hashes the rest."""

    reference_id: str = Field(min_length=1)
    model: str = Field(min_length=1)
    model_version: str = Field(min_length=1)
    created_ts: float
    task: Task
    n_samples: int = Field(ge=0)
    features: dict[str, FeatureProfile]
    prediction: FeatureProfile
    prediction_score: NumericFeatureProfile | None = Field(
        None, description="classification: probability of the positive class (binary) or of the predicted class")
    performance: dict[str, float] = Field(default_factory=dict)


class SampleData(_Part):
    """A bounded uniform sample: the values whose random key is below ``threshold``, at most capacity."""

    values: list[float] = Field(default_factory=list)
    keys: list[float] = Field(default_factory=list)
    threshold: float = Field(1.0, ge=0.0, le=1.0)
    capacity: int = Field(ge=1)


class NumericSketchData(_Part):
    """Wire form of a numeric pane sketch on the reference bins."""

    kind: Literal["numeric"] = "numeric"
    counts: list[int]
    n: int = Field(ge=0)
    n_null: int = Field(0, ge=0)
    mean: float = 0.0
    m2: float = Field(0.0, ge=0.0, description="sum of squared deviations from the mean")
    min: float | None = None
    max: float | None = None
    sample: SampleData


class CategoricalSketchData(_Part):
    """Wire form of a categorical pane sketch: reference categories, ``other``, then ``unseen``."""

    kind: Literal["categorical"] = "categorical"
    counts: list[int]
    n: int = Field(ge=0)
    n_null: int = Field(0, ge=0)


SketchData = Annotated[NumericSketchData | CategoricalSketchData, Field(discriminator="kind")]


class NumericBlockData(_Part):
    """Wire form of the numeric sketches of several features over the same events, their samples' keys once.

    While no sampled value is null, every numeric feature of a pane has seen the same events
    and its sample holds the same keys: one list of keys and one flat list of values
    (row-major, one row per feature) carry them once instead of once per feature, which
    halves the size and the cost of a partial. Once a null made the samples differ,
    ``thresholds`` gives each feature's own threshold, ``keys`` every key some feature's
    sample holds, and a feature's row has None at the keys its sample lacks. Feature ``i``'s
    sketch is entry ``i`` of every list; `sketches` gives the per-feature `NumericSketchData`.
    """

    features: list[str] = Field(min_length=1)
    counts: list[list[int]]
    n: list[int] = Field(description="non-null values per feature")
    n_null: list[int]
    mean: list[float]
    m2: list[float] = Field(description="sum of squared deviations from the mean, per feature")
    min: list[float]
    max: list[float]
    keys: list[float] = Field(description="the samples' keys, ascending")
    values: list[float | None] = Field(
        description="the samples' values, len(features) rows of len(keys), row after row; None where a "
                    "feature's own sample lacks the key (only with thresholds)")
    threshold: float = Field(1.0, ge=0.0, le=1.0, description="the shared sample's threshold (without thresholds)")
    thresholds: list[float] | None = Field(None, description="each feature's own sample threshold, once they differ")
    capacity: int = Field(ge=1)

    @model_validator(mode="after")
    def _consistent(self) -> NumericBlockData:
        n_features = len(self.features)
        if len(set(self.features)) != n_features:
            raise ValueError("feature names must be unique")
        per_feature = (self.counts, self.n, self.n_null, self.mean, self.m2, self.min, self.max)
        if any(len(column) != n_features for column in per_feature):
            raise ValueError("every per-feature list needs one entry per feature")
        if len(self.values) != n_features * len(self.keys):
            raise ValueError("values must hold one row of len(keys) values per feature")
        if any(n < 0 for n in self.n) or any(n < 0 for n in self.n_null) or any(m2 < 0 for m2 in self.m2):
            raise ValueError("counts and m2 must not be negative")
        if self.thresholds is None:
            if None in self.values:
                raise ValueError("values may be None only beside thresholds (samples that differ)")
        elif len(self.thresholds) != n_features or not all(0.0 <= t <= 1.0 for t in self.thresholds):
            raise ValueError("thresholds needs one threshold in [0, 1] per feature")
        return self

    def sketches(self) -> dict[str, NumericSketchData]:
        """The per-feature wire forms (what a `PanePartial` carried before blocks)."""
        k = len(self.keys)
        samples = []
        for i in range(len(self.features)):
            row = self.values[i * k:(i + 1) * k]
            if self.thresholds is None:
                samples.append(SampleData(values=row, keys=self.keys, threshold=self.threshold,
                                          capacity=self.capacity))
            else:
                held = [(key, value) for key, value in zip(self.keys, row, strict=True) if value is not None]
                samples.append(SampleData(values=[v for _, v in held], keys=[key for key, _ in held],
                                          threshold=self.thresholds[i], capacity=self.capacity))
        return {
            name: NumericSketchData(counts=self.counts[i], n=self.n[i], n_null=self.n_null[i], mean=self.mean[i],
                                    m2=self.m2[i], min=self.min[i] if self.n[i] else None,
                                    max=self.max[i] if self.n[i] else None, sample=sample)
            for i, (name, sample) in enumerate(zip(self.features, samples, strict=True))
        }


class PanePartial(Event):
    """One source's sketch of one model over one event-time pane ``[pane_start, pane_start + pane_s)``.

    Empty partials (``n_events == 0``) are heartbeats: they tell stage 2 the source's
    watermark has passed the pane. The numeric features' sketches travel in ``numeric`` when
    each has a value (the usual case), else one by one in ``features``; a feature is
    in one of the two, never both (`sketches` gives all of them per feature).
    """

    model: str = Field(min_length=1)
    model_version: str = Field(min_length=1)
    reference_id: str = Field(min_length=1)
    source: str = Field(min_length=1)
    pane_start: float
    pane_s: float = Field(gt=0.0)
    n_events: int = Field(ge=0)
    n_late: int = Field(0, ge=0)
    features: dict[str, SketchData] = Field(default_factory=dict)
    numeric: NumericBlockData | None = Field(None, description="numeric features sharing one sample")
    prediction: SketchData | None = None
    prediction_score: NumericSketchData | None = None
    labeled: dict[str, Any] | None = Field(None, description="serialised LabeledSketch (concept drift)")

    @model_validator(mode="after")
    def _features_once(self) -> PanePartial:
        if self.numeric is not None and not self.features.keys().isdisjoint(self.numeric.features):
            raise ValueError("a feature is either in numeric or in features, not in both")
        return self

    @property
    def pane_end(self) -> float:
        """End of the pane (exclusive)."""
        return self.pane_start + self.pane_s

    def sketches(self) -> dict[str, SketchData]:
        """Every feature's sketch in its per-feature wire form, the block's unpacked."""
        return {**self.numeric.sketches(), **self.features} if self.numeric is not None else dict(self.features)
