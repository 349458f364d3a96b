"""Wire forms of the drift core's state: reference profiles and pane partials.

A `ReferenceProfile` is the baseline one model version is tested against; it travels on the
compacted ``references`` topic. A `PanePartial` is one source's sketch of one model over one
event-time pane; stage 1 (ingest) emits them on ``panes`` and stage 2 (monitor) merges them
into windows. Both are plain data: the maths lives in ``driftline.stream``.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from driftline.schemas.events import Event

__all__ = [
    "CategoricalFeatureProfile",
    "CategoricalSketchData",
    "FeatureProfile",
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


class PanePartial(Event):
    """One source's sketch of one model over one event-time pane ``[pane_start, pane_start + pane_s)``.

    Empty partials (``n_events == 0``) are heartbeats: they tell stage 2 the source's
    watermark has passed the pane.
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
    prediction: SketchData | None = None
    prediction_score: NumericSketchData | None = None
    labeled: dict[str, Any] | None = Field(None, description="serialised LabeledSketch (concept drift)")

    @property
    def pane_end(self) -> float:
        """End of the pane (exclusive)."""
        return self.pane_start + self.pane_s
