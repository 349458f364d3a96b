"""Stage 2 of the drift core: pane partials merged into sliding windows and tested.

Windows end on multiples of ``step_s`` (event time, aligned to the epoch) and cover
``[end - window_s, end)``; ``step_s == window_s`` gives tumbling windows. A window is
evaluated exactly once, when the watermark reaches its end; partials that arrive for a
pane whose windows were already evaluated are counted as late and not applied.

Per numeric feature: KS on the samples (p-value; Smirnov's asymptotic distribution, as
scipy's ``ks_2samp(method="asymp")``, computed for all features and the prediction in one
vectorised pass), PSI and Jensen-Shannon on the bins, Wasserstein on the samples. Per
categorical feature: chi-square (p-value), PSI, Jensen-Shannon and the rate of categories
the reference never saw. A feature drifts when
its p-value, adjusted across the window's features (Benjamini-Hochberg by default), is
below ``alpha`` *and* its PSI reaches ``min_effect``: huge windows make every p-value tiny,
the effect floor keeps trivial shifts from counting. A window also has data drift when a
categorical feature floods with categories the reference never saw (``new_category_rate``),
or when a feature's share of nulls rises by ``null_rate_increase`` or more (chi-square on
null / non-null counts, Bonferroni across features), however few features that touches:
both usually mean an upstream change, and a feature that turned all-null has no values
left for the other tests.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import stats

from driftline.schemas.events import FeatureResult, MetricResult
from driftline.schemas.profiles import (
    CategoricalFeatureProfile,
    NumericFeatureProfile,
    NumericSketchData,
    PanePartial,
    ReferenceProfile,
    SketchData,
)
from driftline.stream.concept import ConceptDriftTest, LabeledSketch, LossMonitor
from driftline.stream.correction import Correction, adjust_p_values
from driftline.stream.drift import (
    PSI,
    BinnedScores,
    ChiSquareTest,
    JensenShannon,
    SampleStatistics,
    Statistic,
    Wasserstein,
    binned_scores,
    ks_p_values,
    sample_statistics,
)
from driftline.stream.panes import ProfileBins
from driftline.stream.sketch import (
    CategoricalSketch,
    NumericBlock,
    NumericSketch,
    Sketch,
    merge_sketches,
    sketch_from_data,
)

__all__ = ["DataDriftResult", "Histogram", "WindowEvaluator", "WindowResult", "window_ends"]

PRIMARY_TESTS = frozenset({"ks", "chi2"})


@dataclass(frozen=True, slots=True)
class Histogram:
    """Reference and current counts of one feature on the reference's bins (for reports)."""

    kind: str
    labels: tuple[str, ...]
    reference_counts: tuple[int, ...]
    current_counts: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class DataDriftResult:
    """Data drift of one window: every test result, the drifted features, the ratio, the verdict.

    ``sufficient`` is False when the window held fewer than ``min_samples`` events; then
    nothing was tested and the verdict carries no information.
    """

    results: tuple[FeatureResult, ...]
    drifted_features: tuple[str, ...]
    n_tested: int
    drift_ratio: float
    drifted: bool
    sufficient: bool
    new_category_features: tuple[str, ...] = ()
    null_features: tuple[str, ...] = ()

    def primary(self) -> list[FeatureResult]:
        """The per-feature decisions (KS or chi-square, with adjusted p-values)."""
        return [r for r in self.results if r.test in PRIMARY_TESTS]


@dataclass(frozen=True, slots=True)
class WindowResult:
    """Everything one window's evaluation found, with its evidence."""

    model: str
    model_version: str
    reference_id: str
    window_start: float
    window_end: float
    n_events: int
    n_reference: int
    n_late: int
    n_labeled: int
    correction: str
    data: DataDriftResult
    prediction: tuple[FeatureResult, ...]
    concept: tuple[MetricResult, ...] = ()
    early_signals: tuple[str, ...] = ()
    histograms: Mapping[str, Histogram] = field(default_factory=dict)

    @property
    def prediction_drifted(self) -> bool:
        """Whether the prediction distribution drifted (its primary test's verdict)."""
        return any(r.drifted for r in self.prediction if r.test in PRIMARY_TESTS)

    @property
    def concept_drifted(self) -> bool:
        """Whether any performance metric dropped significantly."""
        return any(m.dropped for m in self.concept)


def window_ends(pane_start: float, *, pane_s: float, window_s: float, step_s: float) -> list[float]:
    """Ends of every window that contains the pane starting at ``pane_start``.

    A window ``[end - window_s, end)`` with ``end`` a multiple of ``step_s`` contains the pane
    when ``pane_start + pane_s <= end <= pane_start + window_s``.

    Examples
    --------
    >>> window_ends(120.0, pane_s=60, window_s=300, step_s=120)
    [240.0, 360.0]
    """
    pane = round(pane_start / pane_s)
    step, window = round(step_s / pane_s), round(window_s / pane_s)
    first, last = -(-(pane + 1) // step), (pane + window) // step
    return [float(k * step * pane_s) for k in range(first, last + 1)]


@dataclass(frozen=True, slots=True)
class _Reference:
    """One feature's reference as arrays, converted once: counts on the sketch's bins, sorted sample."""

    counts: np.ndarray
    n: int  # the sum of the counts
    sample: np.ndarray
    sample_std: float

    @classmethod
    def of(cls, profile: NumericFeatureProfile | CategoricalFeatureProfile, n_bins: int) -> _Reference:
        counts = np.asarray(profile.counts, dtype=np.int64)
        counts = np.append(counts, np.zeros(n_bins - len(counts), dtype=np.int64))  # categorical: no `unseen`
        sample = np.sort(np.asarray(getattr(profile, "sample", ()), dtype=float))
        return cls(counts, int(counts.sum()), sample, float(np.std(sample)) if len(sample) else 0.0)


@dataclass(frozen=True, slots=True)
class _Statistics:
    """The statistics of one group of sketches (a window's features, or its prediction), before any verdict."""

    references: Mapping[str, _Reference]
    numeric: dict[str, NumericSketch]  # the sketches with data, in the group's order
    categorical: dict[str, CategoricalSketch]
    samples: SampleStatistics  # of the numeric sketches
    scores: BinnedScores  # of the numeric, then the categorical sketches


@dataclass(slots=True)
class _MergedPane:
    numeric: NumericBlock | None  # the numeric features, feature-major
    categorical: dict[str, Sketch]
    predictions: dict[str, Sketch]  # "prediction", and "prediction_score" for scored classifiers
    labeled: LabeledSketch | None
    n_events: int
    n_late: int


class WindowEvaluator:
    """Merges the pane partials of one model (one reference) into windows and tests them.

    Parameters
    ----------
    profile
        The reference every partial is tested against; partials of another reference are
        counted (``n_foreign``) and ignored.
    window_s, step_s, pane_s
        Window length, slide and pane length in seconds; whole numbers of panes.
    allowed_lateness_s
        Default watermark lag behind the latest pane end seen (see `ready`).
    correction, alpha
        Multiple-testing correction across features and the level adjusted p-values meet.
    min_effect
        Minimum PSI for a feature (or the prediction) to count as drifted.
    drift_ratio_threshold
        Share of drifted features at which the window has data drift.
    min_samples
        Windows with fewer events are not tested.
    new_category_rate
        Share of never-seen categories in a drifted categorical feature that alone makes
        the window drifted.
    null_rate_increase
        Rise of a feature's null share (absolute, against the reference) that, when
        significant, alone makes the window drifted.
    sample_capacity
        Size of the window's merged sample per numeric feature (exact KS and Wasserstein).
        Partials of one pane from several sources merge into a pane sample of
        ``max(128, ceil(2 * sample_capacity / panes per window))`` values, which bounds the
        evaluator's memory and still lets a window fill its sample.
    concept_relative_drop
        Relative performance drop that counts as concept drift (`ConceptDriftTest`).
    loss_detector
        river detector ("adwin" or "page_hinkley") fed once per pane, in pane order, with the
        per-row losses of the pane's labeled sample (`LossMonitor`); a rise of the loss is an
        early signal of the window. None turns it off. Its state and the panes it has been fed
        are part of `to_dict`, so after `load_dict` it goes on where it stopped; a state without
        them (an older checkpoint, another detector, or one river cannot read) gives a fresh
        detector, which learns the panes still held on the next window.
    seed
        Seed of the concept test's bootstrap.

    Examples
    --------
    >>> import pandas as pd
    >>> from driftline.schemas.events import PredictionEvent
    >>> from driftline.stream.panes import PaneAggregator
    >>> from driftline.stream.reference import build_reference
    >>> rng = np.random.default_rng(3)
    >>> ref = build_reference(pd.DataFrame({"x": rng.normal(size=2000), "prediction": rng.normal(size=2000)}),
    ...                       model="m", model_version="1", task="regression")
    >>> agg = PaneAggregator({"m": ref}, pane_s=60, allowed_lateness_s=0, source="s")
    >>> shift = lambda t: 0.0 if t < 600 else 1.0
    >>> agg.add_predictions([PredictionEvent(event_id=str(t), ts=float(t), model="m", model_version="1",
    ...     request_id=str(t), features={"x": float(rng.normal(shift(t)))}, prediction=float(rng.normal()))
    ...     for t in range(0, 1200)])
    >>> ev = WindowEvaluator(ref, window_s=300, step_s=300, pane_s=60, allowed_lateness_s=0, min_samples=100)
    >>> for partial in agg.close_panes():
    ...     accepted = ev.add(partial)
    >>> [(r.window_end, r.data.drifted) for r in ev.ready()]
    [(300.0, False), (600.0, False), (900.0, True)]
    """

    def __init__(
        self,
        profile: ReferenceProfile,
        *,
        window_s: float = 3600.0,
        step_s: float = 300.0,
        pane_s: float = 60.0,
        allowed_lateness_s: float = 0.0,
        correction: Correction = "bh",
        alpha: float = 0.05,
        min_effect: float = 0.1,
        drift_ratio_threshold: float = 0.3,
        min_samples: int = 200,
        new_category_rate: float = 0.1,
        null_rate_increase: float = 0.1,
        sample_capacity: int = 2000,
        concept_relative_drop: float = 0.02,
        loss_detector: str | None = "adwin",
        seed: int = 0,
    ) -> None:
        for name, value in (("window_s", window_s), ("step_s", step_s)):
            if value <= 0 or abs(value / pane_s - round(value / pane_s)) > 1e-9:
                raise ValueError(f"{name}={value} must be a positive whole number of panes (pane_s={pane_s})")
        if step_s > window_s:
            raise ValueError(f"step_s={step_s} must not exceed window_s={window_s}")
        if not 0 < alpha < 1 or not 0 < drift_ratio_threshold <= 1 or min_effect < 0 or min_samples < 1:
            raise ValueError("need 0 < alpha < 1, 0 < drift_ratio_threshold <= 1, min_effect >= 0, min_samples >= 1")
        if correction not in ("bh", "bonferroni", "none"):
            raise ValueError(f"unknown correction {correction!r}")
        self.profile = profile
        self.window_s, self.step_s, self.pane_s = window_s, step_s, pane_s
        self.allowed_lateness_s = allowed_lateness_s
        self.correction: Correction = correction
        self.alpha = alpha
        self.min_effect = min_effect
        self.drift_ratio_threshold = drift_ratio_threshold
        self.min_samples = min_samples
        self.new_category_rate = new_category_rate
        self.null_rate_increase = null_rate_increase
        self.sample_capacity = sample_capacity
        self._pane_sample_capacity = max(128, math.ceil(2 * sample_capacity * pane_s / window_s))
        # every window start and end falls on a block boundary: windows merge whole cached blocks
        self._block_panes = math.gcd(round(window_s / pane_s), round(step_s / pane_s))
        self.concept_relative_drop = concept_relative_drop
        self.loss_detector = loss_detector
        self.seed = seed
        self._bins = ProfileBins.of(profile)
        self._references = {name: _Reference.of(f, self._bins.features[name].n_bins)
                            for name, f in profile.features.items()}
        numeric_samples = [self._references[name].sample for name in self._bins.numeric]
        # KS and Wasserstein of all numeric features against one cached 2-D array, when the sample sizes allow
        self._reference_samples: list[np.ndarray] | np.ndarray = (
            np.array(numeric_samples) if len({len(sample) for sample in numeric_samples}) == 1 else numeric_samples)
        # the reference side of every window's null-rate tests, in profile order
        self._null_reference = (np.array([f.n for f in profile.features.values()], dtype=float),
                                np.array([f.n_null for f in profile.features.values()], dtype=float))
        self._feature_rows = {name: row for row, name in enumerate(profile.features)}
        # the reference side of every window's histograms: the same each window
        self._histogram_axes = {
            name: ("numeric" if name in self._bins.numeric else "categorical", tuple(bins.labels()),
                   tuple(self._references[name].counts.tolist()))
            for name, bins in self._bins.features.items()
        }
        self._prediction_bins = {"prediction": self._bins.prediction}
        self._prediction_reference = {"prediction": _Reference.of(profile.prediction, self._bins.prediction.n_bins)}
        if profile.prediction_score is not None and self._bins.score is not None:
            self._prediction_bins["prediction_score"] = self._bins.score
            self._prediction_reference["prediction_score"] = _Reference.of(profile.prediction_score,
                                                                           self._bins.score.n_bins)
        self._reset()

    def _reset(self) -> None:
        self._panes: dict[int, _MergedPane] = {}
        # block index -> its panes' sketches merged (no labeled); merged only for a window being
        # evaluated, so its panes have ended at the evaluated watermark and later partials are late
        self._blocks: dict[int, _MergedPane] = {}
        self._max_pane_end = -math.inf
        self._evaluated_until = -math.inf  # every window ending at or before this is done
        self.n_late_partials = 0
        self.n_foreign = 0
        self._loss_monitor = LossMonitor(self.loss_detector) if self.loss_detector else None
        self._losses_fed_below = -math.inf  # panes with a lower index have fed the loss monitor

    # --- input --------------------------------------------------------------------------

    def add(self, partial: PanePartial) -> bool:
        """Merge one partial; False when it was counted and ignored (other reference, or late)."""
        if partial.model != self.profile.model or partial.reference_id != self.profile.reference_id:
            self.n_foreign += 1
            return False
        if abs(partial.pane_s - self.pane_s) > 1e-9:
            raise ValueError(f"partial pane_s={partial.pane_s} differs from pane_s={self.pane_s}")
        self._max_pane_end = max(self._max_pane_end, partial.pane_end)
        if partial.pane_end <= self._evaluated_until:
            self.n_late_partials += 1
            return False
        index = round(partial.pane_start / self.pane_s)
        incoming = self._from_partial(partial)
        current = self._panes.get(index)
        self._panes[index] = incoming if current is None else _merge_panes(
            current, incoming, sample_capacity=self._pane_sample_capacity)
        return True

    def _from_partial(self, partial: PanePartial) -> _MergedPane:
        stacked, block = self._bins.stacked, partial.numeric
        if stacked is not None and block is not None and tuple(block.features) == self._bins.numeric:
            numeric: NumericBlock | None = NumericBlock.from_block_data(block, stacked)
            sketches: Mapping[str, SketchData] = partial.features
        else:  # any other block is read feature by feature
            sketches = partial.sketches() if block is not None else partial.features
            numeric = self._numeric_from_data(sketches)
        categorical = {name: sketch_from_data(data, self._bins.features[name])
                       for name, data in sketches.items()
                       if name in self._bins.features and name not in self._bins.numeric}
        wire = {"prediction": partial.prediction, "prediction_score": partial.prediction_score}
        predictions = {name: sketch_from_data(data, self._prediction_bins[name])
                       for name, data in wire.items() if data is not None and name in self._prediction_bins}
        labeled = LabeledSketch.from_dict(partial.labeled) if partial.labeled is not None else None
        return _MergedPane(numeric, categorical, predictions, labeled, partial.n_events, partial.n_late)

    def _numeric_from_data(self, sketches: Mapping[str, SketchData]) -> NumericBlock | None:
        """The numeric features' sketches as one block (None when there is none, e.g. a heartbeat).

        A feature without a sketch becomes an empty sketch, which merges like an absent one.
        """
        stacked = self._bins.stacked
        data = [sketches.get(name) for name in self._bins.numeric]
        present: list[NumericSketchData] = []
        for d in data:
            if d is not None and not isinstance(d, NumericSketchData):
                raise ValueError(f"a {d.kind} sketch does not fit NumericBins")
            if d is not None:
                present.append(d)
        if stacked is None or not present:
            return None
        if len(present) == len(data):
            return NumericBlock.from_data(present, stacked)
        capacity = present[0].sample.capacity
        return NumericBlock.of_sketches(stacked, [
            NumericSketch.from_data(d, b) if isinstance(d, NumericSketchData) else NumericSketch.empty(b, capacity)
            for d, b in zip(data, stacked.bins, strict=True)
        ])

    def _features(self, merged: _MergedPane) -> dict[str, Sketch]:
        """Every feature's sketch of a merged pane or window, in profile order."""
        numeric = dict(zip(self._bins.numeric, merged.numeric.sketches(), strict=True)) if merged.numeric else {}
        return {name: numeric[name] if name in numeric else merged.categorical[name]
                for name in self._bins.features if name in numeric or name in merged.categorical}

    # --- output -------------------------------------------------------------------------

    @property
    def default_watermark(self) -> float:
        """Latest pane end seen minus the allowed lateness."""
        return self._max_pane_end - self.allowed_lateness_s

    def ready(self, watermark: float | None = None) -> list[WindowResult]:
        """Evaluate every window that ended at ``watermark`` and was not evaluated before, in order.

        Windows without any partial are skipped. ``watermark`` defaults to
        `default_watermark`; stage 2 usually passes the minimum over its sources.
        """
        wm = self.default_watermark if watermark is None else watermark
        if not self._panes or wm == -math.inf:
            return []
        last_end = math.floor(wm / self.step_s + 1e-9) * self.step_s
        results = []
        for end in self._due_ends(last_end):
            results.append(self._evaluate(end))
        if last_end > self._evaluated_until:
            self._evaluated_until = last_end
            horizon = round((last_end + self.step_s - self.window_s) / self.pane_s)
            for index in [i for i in self._panes if i < horizon]:
                del self._panes[index]
            for block in [b for b in self._blocks if b * self._block_panes < horizon]:
                del self._blocks[block]
        return results

    def _due_ends(self, last_end: float) -> list[float]:
        """Ends in ``(evaluated_until, last_end]`` of the windows holding at least one pane, in order.

        The ends `window_ends` gives for the panes, found from the step instead of pane by pane:
        the candidate multiples of the step between the first and last pane's windows, each
        kept when some pane lies inside its window.
        """
        if last_end <= self._evaluated_until:  # most calls: no window ended since the last one
            return []
        step, window = round(self.step_s / self.pane_s), round(self.window_s / self.pane_s)
        panes = sorted(self._panes)
        ends = []
        for k in range(-(-(panes[0] + 1) // step), (panes[-1] + window) // step + 1):
            end = float(k * step * self.pane_s)  # as window_ends computes it
            if end <= self._evaluated_until:
                continue
            if end > last_end:
                break
            first_pane = bisect.bisect_left(panes, k * step - window)  # a pane p with end - window <= p < end
            if first_pane < len(panes) and panes[first_pane] < k * step:
                ends.append(end)
        return ends

    def _evaluate(self, end: float) -> WindowResult:
        start = end - self.window_s
        first, stop = round(start / self.pane_s), round(end / self.pane_s)
        merged = self._merge_window(first, stop)
        loss_signals = self._feed_losses(stop)
        n_events = merged.n_events
        data, prediction, histograms = self._drift(merged)
        concept = self._concept(merged.labeled)
        return WindowResult(
            model=self.profile.model, model_version=self.profile.model_version,
            reference_id=self.profile.reference_id, window_start=start, window_end=end, n_events=n_events,
            n_reference=self.profile.n_samples, n_late=merged.n_late,
            n_labeled=merged.labeled.n if merged.labeled is not None else 0, correction=self.correction,
            data=data, prediction=tuple(prediction), concept=tuple(concept),
            early_signals=tuple(self._early_signals(data, merged) + loss_signals), histograms=histograms,
        )

    def _feed_losses(self, stop: int) -> list[str]:
        """Feed the loss monitor every pane before index ``stop`` not fed yet, in pane order."""
        if self._loss_monitor is None:
            return []
        signals = []
        for index in sorted(i for i in self._panes if self._losses_fed_below <= i < stop):
            labeled = self._panes[index].labeled
            if labeled is not None and labeled.n and self._loss_monitor.update(labeled.losses()):
                signals.append(f"concept: {self.loss_detector} saw the loss rise in the pane starting at "
                               f"{index * self.pane_s:g}")
        self._losses_fed_below = max(self._losses_fed_below, stop)
        return signals

    def _merge_window(self, first: int, stop: int) -> _MergedPane:
        """The panes ``first <= index < stop``: sketches from cached blocks of panes, labeled pane by pane.

        Consecutive windows share all blocks but one, so a window merges a few blocks instead
        of every pane. Counts add exactly and bottom-k samples merge associatively, so the
        result equals a merge of the panes themselves; the labeled sketches keep their pane order.
        """
        blocks = [self._block(b) for b in range(first // self._block_panes, stop // self._block_panes)]
        merged = self._merge_sketches(blocks)
        for index in sorted(i for i in self._panes if first <= i < stop):
            labeled = self._panes[index].labeled
            if labeled is not None:
                merged.labeled = labeled if merged.labeled is None else merged.labeled.merge(labeled)
        return merged

    def _block(self, block: int) -> _MergedPane:
        """The sketches of the panes of ``block`` merged, from the cache when no partial changed them."""
        merged = self._blocks.get(block)
        if merged is None:
            indices = range(block * self._block_panes, (block + 1) * self._block_panes)
            merged = self._merge_sketches([self._panes[i] for i in indices if i in self._panes])
            self._blocks[block] = merged
        return merged

    def _merge_sketches(self, panes: list[_MergedPane]) -> _MergedPane:
        """The sketches and counts of ``panes`` in one pass per feature (vectorised, not pane after pane)."""
        stacked = self._bins.stacked
        numeric = None if stacked is None else NumericBlock.merge_all(
            [p.numeric for p in panes if p.numeric is not None], bins=stacked, sample_capacity=self.sample_capacity)
        categorical = {
            name: merge_sketches([p.categorical[name] for p in panes if name in p.categorical], bins,
                                 self.sample_capacity)
            for name, bins in self._bins.features.items() if name not in self._bins.numeric
        }
        predictions = {
            name: merge_sketches([p.predictions[name] for p in panes if name in p.predictions], bins,
                                 self.sample_capacity)
            for name, bins in self._prediction_bins.items()
        }
        return _MergedPane(numeric, categorical, predictions, None, sum(p.n_events for p in panes),
                           sum(p.n_late for p in panes))

    # --- tests --------------------------------------------------------------------------

    def _drift(self, merged: _MergedPane) -> tuple[DataDriftResult, list[FeatureResult], dict[str, Histogram]]:
        """Data and prediction drift of a window, with the histograms.

        The statistics of the features and of the prediction come first, then their KS
        p-values from one `ks_p_values` call (most of whose cost is fixed per call), then
        each group's verdicts (`_judge`): the features adjusted with ``correction``, the
        prediction's tests with Bonferroni.
        """
        features = self._features(merged)
        histograms = {name: Histogram(*self._histogram_axes[name], tuple(sketch.counts.tolist()))
                      for name, sketch in features.items()}
        if merged.n_events < self.min_samples:
            return DataDriftResult((), (), 0, 0.0, False, sufficient=False), [], histograms
        data = self._statistics(features, self._references)
        prediction = self._statistics(merged.predictions, self._prediction_reference)
        p_values = ks_p_values(np.concatenate([data.samples.ks_statistic, prediction.samples.ks_statistic]),
                               np.concatenate([data.samples.effective_n, prediction.samples.effective_n]))
        results, drifted_features = self._judge(data, p_values[:len(data.numeric)], self.correction)
        n_tested = len(data.numeric) + len(data.categorical)
        ratio = len(drifted_features) / n_tested if n_tested else 0.0
        flooded = tuple(r.feature for r in results
                        if r.test == "new_category_rate" and r.drifted and r.feature in drifted_features)
        null_results = self._null_rates(features)
        results.extend(null_results)
        nulls = tuple(r.feature for r in null_results if r.drifted)
        drifted = (n_tested > 0 and ratio >= self.drift_ratio_threshold) or bool(flooded) or bool(nulls)
        data_result = DataDriftResult(tuple(results), tuple(drifted_features), n_tested, ratio, drifted,
                                      sufficient=True, new_category_features=flooded, null_features=nulls)
        prediction_results, _ = self._judge(prediction, p_values[len(data.numeric):], "bonferroni")
        return data_result, prediction_results, histograms

    def _statistics(self, sketches: Mapping[str, Sketch], references: Mapping[str, _Reference]) -> _Statistics:
        """The statistics of every sketch with data, before any p-value or verdict.

        KS and Wasserstein of all numeric sketches come from one vectorised pass
        (`sample_statistics`, equal to scipy's ``ks_2samp`` statistic and
        ``wasserstein_distance``), PSI and Jensen-Shannon of all sketches from another
        (`binned_scores`, equal to the test classes').
        """
        numeric = {name: s for name, s in sketches.items() if isinstance(s, NumericSketch) and s.n > 0}
        categorical = {name: s for name, s in sketches.items() if isinstance(s, CategoricalSketch) and s.n > 0}
        reference_samples: Sequence[np.ndarray] = [references[name].sample for name in numeric]
        if references is self._references and tuple(numeric) == self._bins.numeric:
            reference_samples = self._reference_samples
        samples = sample_statistics(reference_samples, [s.sample.values for s in numeric.values()],
                                    sorted_references=True)
        binned = {**numeric, **categorical}
        scores = binned_scores([references[name].counts for name in binned], [s.counts for s in binned.values()],
                               epsilon=PSI().epsilon)  # the floor of `_judge`'s PSI
        return _Statistics(references, numeric, categorical, samples, scores)

    def _judge(self, tested: _Statistics, p_values: np.ndarray,
               correction: Correction) -> tuple[list[FeatureResult], list[str]]:
        """Every test result of a group, feature by feature in name order, and the drifted features.

        A feature's first result is its primary test (KS, or chi-square for categories): it
        drifts when its p-value, adjusted across the group with ``correction``, is below
        ``alpha`` and its PSI reaches ``min_effect``. The adjusted p-values are known before
        the primary results are built, so each is built once, with its verdict; the other
        results are assembled by the test classes. ``p_values`` are the KS p-values of the
        group's numeric sketches, in order.
        """
        chi2 = ChiSquareTest(threshold=self.alpha)
        psi, js, wasserstein = PSI(threshold=self.min_effect or None), JensenShannon(), Wasserstein()
        references = tested.references
        primary: dict[str, tuple[str, Statistic, int, int]] = {}
        others: dict[str, list[FeatureResult]] = {}
        binned = {**tested.numeric, **tested.categorical}
        for name, sketch, psi_score, js_score in zip(binned, binned.values(), tested.scores.psi.tolist(),
                                                     tested.scores.jensen_shannon.tolist(), strict=True):
            n_reference, n_current = references[name].n, sum(sketch.counts.tolist())
            others[name] = [
                psi.judge(name, Statistic(psi_score, score=psi_score), n_reference=n_reference, n_current=n_current),
                js.judge(name, Statistic(js_score, score=js_score), n_reference=n_reference, n_current=n_current)]
        for (name, numeric), ks_statistic, p_value, distance in zip(
                tested.numeric.items(), tested.samples.ks_statistic.tolist(), p_values.tolist(),
                tested.samples.wasserstein.tolist(), strict=True):
            reference = references[name]
            n_ref, n_cur = len(reference.sample), len(numeric.sample.values)
            primary[name] = ("ks", Statistic(ks_statistic, p_value=p_value), n_ref, n_cur)
            score = distance / reference.sample_std if reference.sample_std > 0 else distance
            others[name].append(wasserstein.judge(name, Statistic(distance, score=score), n_reference=n_ref,
                                                  n_current=n_cur))
        for name, categorical in tested.categorical.items():
            reference = references[name]
            primary[name] = ("chi2", chi2.compute(reference.counts, categorical.counts), reference.n,
                             sum(categorical.counts.tolist()))
            unseen = categorical.unseen_rate
            others[name].append(FeatureResult(
                feature=name, test="new_category_rate", statistic=unseen, score=unseen,
                threshold=self.new_category_rate, drifted=unseen >= self.new_category_rate, n_reference=reference.n,
                n_current=categorical.n))
        names = sorted(primary)
        adjusted = adjust_p_values(np.array([primary[name][1].p_value for name in names], dtype=float), correction)
        results: list[FeatureResult] = []
        drifted_features = []
        for name, p_adjusted in zip(names, adjusted.tolist(), strict=True):
            test, statistic, n_reference, n_current = primary[name]
            drifted = bool(p_adjusted < self.alpha and (others[name][0].score or 0.0) >= self.min_effect)
            if drifted:
                drifted_features.append(name)
            results.append(FeatureResult(feature=name, test=test, statistic=statistic.statistic,
                                         p_value=statistic.p_value, p_adjusted=p_adjusted, threshold=self.alpha,
                                         drifted=drifted, n_reference=n_reference, n_current=n_current))
            results.extend(others[name])
        return results, drifted_features

    def _null_rates(self, sketches: Mapping[str, Sketch]) -> list[FeatureResult]:
        """Per feature with data: chi-square on (non-null, null) counts, Bonferroni across features.

        The 2 x 2 Pearson statistic of all features in one vectorised step (equal to
        ``scipy.stats.chi2_contingency(correction=False)``; no nulls on either side: 0, p = 1,
        and ``chi2.sf`` runs only for the features with nulls, usually none).
        """
        names = [name for name, s in sketches.items() if s.n + s.n_null > 0]
        if not names:
            return []
        ref_values, ref_nulls = self._null_reference
        if len(names) < len(ref_values):
            rows = [self._feature_rows[name] for name in names]
            ref_values, ref_nulls = ref_values[rows], ref_nulls[rows]
        cur_values = np.array([sketches[n].n for n in names], dtype=float)
        cur_nulls = np.array([sketches[n].n_null for n in names], dtype=float)
        ref_total, cur_total = ref_values + ref_nulls, cur_values + cur_nulls
        values_total, nulls_total = ref_values + cur_values, ref_nulls + cur_nulls
        denominator = ref_total * cur_total * values_total * nulls_total
        cross = ref_values * cur_nulls - ref_nulls * cur_values
        statistic = np.divide((ref_total + cur_total) * cross * cross, denominator, out=np.zeros(len(names)),
                              where=denominator > 0)
        p_values = np.ones(len(names))
        tested = np.flatnonzero(denominator > 0)
        if len(tested):
            p_values[tested] = stats.chi2.sf(statistic[tested], 1)
        p_adjusted = adjust_p_values(p_values, "bonferroni")
        increase = cur_nulls / cur_total - ref_nulls / np.maximum(ref_total, 1)
        drifted = (p_adjusted < self.alpha) & (increase >= self.null_rate_increase)
        return [
            FeatureResult(feature=name, test="null_rate", statistic=statistic_i, p_value=p, p_adjusted=p_adj,
                          score=score, threshold=self.null_rate_increase, drifted=drifted_i, n_reference=n_ref,
                          n_current=n_cur)
            for name, statistic_i, p, p_adj, score, drifted_i, n_ref, n_cur in zip(
                names, statistic.tolist(), p_values.tolist(), p_adjusted.tolist(), increase.tolist(),
                drifted.tolist(), ref_total.astype(int).tolist(), cur_total.astype(int).tolist(), strict=True)
        ]

    def _concept(self, labeled: LabeledSketch | None) -> list[MetricResult]:
        if labeled is None or labeled.n == 0 or not self.profile.performance:
            return []
        test = ConceptDriftTest(self.profile.task, self.profile.performance, relative_drop=self.concept_relative_drop,
                                alpha=self.alpha, min_samples=self.min_samples, seed=self.seed)
        return test.evaluate(labeled)

    def _early_signals(self, data: DataDriftResult, merged: _MergedPane) -> list[str]:
        signals = []
        if data.drifted_features and not data.drifted:
            signals.append(f"data: {len(data.drifted_features)} of {data.n_tested} features drifted "
                           f"({', '.join(data.drifted_features)}), below the {self.drift_ratio_threshold} ratio")
        for name, sketch in merged.categorical.items():
            if isinstance(sketch, CategoricalSketch) and sketch.n and sketch.unseen_rate >= self.new_category_rate:
                signals.append(f"new categories: {name} {sketch.unseen_rate:.1%} unseen in the reference")
        signals.extend(f"nulls: {r.feature} null share up {r.score:.1%} on the reference"
                       for r in data.results if r.test == "null_rate" and r.drifted)
        return signals

    # --- persistence --------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe state (merged panes, progress, loss monitor) for a changelog; the profile is not included."""
        return {
            "reference_id": self.profile.reference_id,
            "max_pane_end": None if self._max_pane_end == -math.inf else self._max_pane_end,
            "evaluated_until": None if self._evaluated_until == -math.inf else self._evaluated_until,
            "n_late_partials": self.n_late_partials, "n_foreign": self.n_foreign,
            "panes": [self._pane_state(index, pane) for index, pane in sorted(self._panes.items())],
            **self.loss_state(),
        }

    def loss_state(self) -> dict[str, Any]:
        """The loss monitor's checkpoint and the panes it has been fed (part of `to_dict`).

        Stage 2 keeps pane partials rather than evaluators in its changelog and rebuilds the
        evaluator from them; this is the one piece of state the partials cannot give back.
        """
        return {
            "loss_monitor": self._loss_monitor.to_dict() if self._loss_monitor is not None else None,
            "losses_fed_below": None if self._losses_fed_below == -math.inf else self._losses_fed_below,
        }

    def _pane_state(self, index: int, pane: _MergedPane) -> dict[str, Any]:
        return {
            "index": index, "n_events": pane.n_events, "n_late": pane.n_late,
            "features": {name: s.to_data().model_dump(mode="json") for name, s in self._features(pane).items()},
            "predictions": {name: s.to_data().model_dump(mode="json") for name, s in pane.predictions.items()},
            "labeled": pane.labeled.to_dict() if pane.labeled is not None else None,
        }

    def load_dict(self, state: Mapping[str, Any]) -> None:
        """Restore `to_dict` output; state of another reference is refused with ValueError."""
        if state["reference_id"] != self.profile.reference_id:
            raise ValueError(f"state is for reference {state['reference_id']}, not {self.profile.reference_id}")
        self._reset()
        self._max_pane_end = -math.inf if state["max_pane_end"] is None else state["max_pane_end"]
        self._evaluated_until = -math.inf if state["evaluated_until"] is None else state["evaluated_until"]
        self.n_late_partials, self.n_foreign = state["n_late_partials"], state["n_foreign"]
        for item in state["panes"]:
            partial = PanePartial(model=self.profile.model, model_version=self.profile.model_version,
                                  reference_id=self.profile.reference_id, source="state",
                                  pane_start=item["index"] * self.pane_s, pane_s=self.pane_s,
                                  n_events=item["n_events"], n_late=item["n_late"], features=item["features"],
                                  prediction=item["predictions"].get("prediction"),
                                  prediction_score=item["predictions"].get("prediction_score"), labeled=item["labeled"])
            self._panes[int(item["index"])] = self._from_partial(partial)
        self.load_loss_state(state)

    def load_loss_state(self, state: Mapping[str, Any]) -> None:
        """Restore `loss_state` output (its keys in ``state``); without them the monitor stays fresh."""
        monitor = state.get("loss_monitor")  # absent from checkpoints older than the monitor's state
        if (self._loss_monitor is not None and monitor is not None and monitor["detector"] == self.loss_detector
                and monitor["params"] == self._loss_monitor.params):
            self._loss_monitor = LossMonitor.from_dict(monitor)
            # a monitor that has seen no loss (e.g. an unreadable state) is fresh: it learns the panes still held
            if self._loss_monitor.n and state.get("losses_fed_below") is not None:
                self._losses_fed_below = state["losses_fed_below"]


def _merge_panes(a: _MergedPane, b: _MergedPane, *, sample_capacity: int) -> _MergedPane:
    """Two partials of the same pane (from two sources): the numeric blocks at once, the other sketches one by one."""
    numeric = a.numeric or b.numeric
    if a.numeric is not None and b.numeric is not None:
        numeric = NumericBlock.merge_all([a.numeric, b.numeric], bins=a.numeric.bins, sample_capacity=sample_capacity)
    categorical = dict(a.categorical)
    for name, sketch in b.categorical.items():
        categorical[name] = (categorical[name].merge(sketch, sample_capacity=sample_capacity) if name in categorical
                             else sketch)
    predictions = dict(a.predictions)
    for name, sketch in b.predictions.items():
        predictions[name] = (predictions[name].merge(sketch, sample_capacity=sample_capacity) if name in predictions
                             else sketch)
    labeled = b.labeled if a.labeled is None else a.labeled if b.labeled is None else a.labeled.merge(b.labeled)
    return _MergedPane(numeric, categorical, predictions, labeled, a.n_events + b.n_events, a.n_late + b.n_late)
