"""Concept drift: model performance on labeled rows against the reference performance.

Three pieces, each usable on its own:

- `LabeledSketch` accumulates the labeled rows of one pane (prediction joined with its
  outcome) into exact sufficient statistics plus a bounded uniform sample. It is mergeable,
  so stage 1 builds one per pane and partition and stage 2 merges them into windows.
- `ConceptDriftTest` compares a window's metrics with the reference performance and says
  which metric dropped: by more than a relative threshold *and* significantly (a one-sided
  binomial test for accuracy, a bootstrap for the other metrics; the result names which).
- `LossMonitor` runs river's ADWIN or PageHinkley on the per-event loss as an early signal.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import logging
import math
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import numpy as np
from river import drift as river_drift
from scipy.stats import beta, binomtest

from driftline.schemas.events import MetricResult
from driftline.stream.kernels import resampled_statistics
from driftline.stream.performance import (
    CLASSIFICATION_METRICS,
    HIGHER_IS_BETTER,
    RANKING_METRICS,
    REGRESSION_METRICS,
    TASKS,
    positive_class,
    ranking_group_metrics,
)

__all__ = ["TASK_METRICS", "ConceptDriftTest", "LabeledSketch", "LossMonitor"]

TASK_METRICS: dict[str, tuple[str, ...]] = {
    "classification": CLASSIFICATION_METRICS,
    "regression": REGRESSION_METRICS,
    "ranking": RANKING_METRICS,
}
_RESERVOIR_COLUMNS: dict[str, tuple[str, ...]] = {
    "classification": ("true", "pred", "score"),
    "regression": ("true", "pred"),
    "ranking": RANKING_METRICS,
}
_STRING_COLUMNS = frozenset({"true", "pred"})
_PROBABILITY_EPS = float(np.finfo(np.float64).eps)
_BOOTSTRAP_CELLS = 2_000_000  # resampled values held at once by the bootstrap
_ROWS_STREAM = 1  # the bootstrap's row draws: `_resample_rows`

log = logging.getLogger(__name__)


def _batch_digest(*arrays: np.ndarray) -> int:
    """A content hash of one batch: seeds its reservoir keys, so equal seeds on different panes differ."""
    digest = hashlib.blake2b(digest_size=8)
    for array in arrays:
        digest.update(np.ascontiguousarray(array).tobytes())
    return int.from_bytes(digest.digest(), "little")


class LabeledSketch:
    """Mergeable accumulator of the labeled rows of one pane, for performance metrics.

    Exact sufficient statistics: confusion counts per (true, predicted) label pair and
    per-true-label log-loss sums (classification), sums of absolute and squared errors
    (regression), per-group metric sums (ranking; a group is the items of one labeled event,
    so the items of a group must arrive in one `update`). Beside them a bounded uniform
    sample of rows (per-group metric values for ranking) feeds ROC AUC and the bootstrap:
    every row gets a pseudo-random key and the sketch keeps the ``capacity`` smallest keys,
    so the merge of two samples is again a uniform sample of the union, weighted by counts,
    and merging is associative and commutative. Keys come from ``seed`` and a hash of the
    batch, so the same input gives the same sketch.

    Parameters
    ----------
    task : "classification", "regression" or "ranking".
    capacity : size of the row sample.
    seed : seed of the sample keys.
    positive_label : binary classification: the class ``scores`` are probabilities of
        (default: the lexicographically last label seen).

    Examples
    --------
    >>> rng = np.random.default_rng(7)
    >>> truth = rng.choice(["no", "yes"], size=600)
    >>> predicted = np.where(rng.random(600) < 0.9, truth, np.where(truth == "yes", "no", "yes"))
    >>> first, second = LabeledSketch.empty("classification"), LabeledSketch.empty("classification")
    >>> first.update(truth[:300], predicted[:300])
    >>> second.update(truth[300:], predicted[300:])
    >>> window = first.merge(second)
    >>> window.n, round(window.metrics()["accuracy"], 3)
    (600, 0.908)
    """

    def __init__(
        self, task: str, *, capacity: int = 2000, seed: int = 0, positive_label: str | None = None
    ) -> None:
        if task not in TASKS:
            raise ValueError(f"task must be one of {TASKS}, got {task!r}")
        if capacity < 1:
            raise ValueError(f"capacity must be >= 1, got {capacity}")
        if seed < 0:
            raise ValueError(f"seed must be >= 0, got {seed}")
        self.task = task
        self.capacity = capacity
        self.seed = seed
        self.positive_label = positive_label
        self._reset()

    @classmethod
    def empty(
        cls, task: str, *, capacity: int = 2000, seed: int = 0, positive_label: str | None = None
    ) -> LabeledSketch:
        """A sketch with no rows yet."""
        return cls(task, capacity=capacity, seed=seed, positive_label=positive_label)

    def _reset(self) -> None:
        self._n = 0
        self._confusion: dict[tuple[str, str], int] = {}
        self._n_scored = 0
        self._neg_log_p: dict[str, float] = {}  # per true label: sum of -log(score)
        self._neg_log_q: dict[str, float] = {}  # per true label: sum of -log(1 - score)
        self._abs_error_sum = 0.0
        self._squared_error_sum = 0.0
        self._n_items = 0
        self._group_sums = dict.fromkeys(RANKING_METRICS, 0.0)
        self._keys = np.empty(0, dtype=np.float64)
        self._sample = {
            column: np.empty(0, dtype=str if column in _STRING_COLUMNS and self.task == "classification" else float)
            for column in _RESERVOIR_COLUMNS[self.task]
        }

    @property
    def n(self) -> int:
        """Labeled rows seen (groups for ranking)."""
        return self._n

    @property
    def n_items(self) -> int:
        """Ranking: items seen over all groups."""
        return self._n_items

    def __repr__(self) -> str:
        return f"LabeledSketch(task={self.task!r}, n={self._n}, capacity={self.capacity}, seed={self.seed})"

    # --- updates --------------------------------------------------------------------------

    def update(
        self,
        y_true: Sequence | np.ndarray,
        y_pred: Sequence | np.ndarray,
        *,
        scores: Sequence[float] | np.ndarray | None = None,
        groups: Sequence | np.ndarray | None = None,
    ) -> None:
        """Add one batch of labeled rows (items with their ``groups`` for ranking); inputs are not changed.

        Classification ``scores`` are positive-class probabilities in [0, 1], given for all
        rows of a batch or none.
        """
        if self.task == "classification":
            self._update_classification(np.asarray(y_true, dtype=str), np.asarray(y_pred, dtype=str), scores)
        elif self.task == "regression":
            self._update_regression(np.asarray(y_true, dtype=np.float64), np.asarray(y_pred, dtype=np.float64))
        else:
            if groups is None:
                raise ValueError("ranking rows need the group id of every item")
            self._update_ranking(
                np.asarray(y_true, dtype=np.float64), np.asarray(y_pred, dtype=np.float64), np.asarray(groups)
            )

    @staticmethod
    def _check_shapes(*arrays: np.ndarray) -> None:
        if arrays[0].ndim != 1 or any(array.shape != arrays[0].shape for array in arrays):
            raise ValueError(f"inputs must be 1-d arrays of one length, got {[a.shape for a in arrays]}")

    def _update_classification(
        self, y_true: np.ndarray, y_pred: np.ndarray, scores: Sequence[float] | np.ndarray | None
    ) -> None:
        self._check_shapes(y_true, y_pred)
        if scores is None:
            score = np.full(y_true.size, np.nan)
        else:
            score = np.asarray(scores, dtype=np.float64)
            self._check_shapes(y_true, score)
            if not np.all((score >= 0.0) & (score <= 1.0)):
                raise ValueError("scores must be probabilities in [0, 1]")
        if y_true.size == 0:
            return
        labels, codes = np.unique(np.concatenate([y_true, y_pred]), return_inverse=True)
        n_labels = labels.size
        true_code, pred_code = codes[: y_true.size], codes[y_true.size :]
        pair_counts = np.bincount(true_code * n_labels + pred_code, minlength=n_labels * n_labels)
        for pair in np.flatnonzero(pair_counts):
            key = (str(labels[pair // n_labels]), str(labels[pair % n_labels]))
            self._confusion[key] = self._confusion.get(key, 0) + int(pair_counts[pair])
        if scores is not None:
            neg_log_p = np.bincount(true_code, weights=-np.log(np.clip(score, _PROBABILITY_EPS, 1.0)))
            neg_log_q = np.bincount(true_code, weights=-np.log(np.clip(1.0 - score, _PROBABILITY_EPS, 1.0)))
            for code in np.flatnonzero(np.bincount(true_code)):
                label = str(labels[code])
                self._neg_log_p[label] = self._neg_log_p.get(label, 0.0) + float(neg_log_p[code])
                self._neg_log_q[label] = self._neg_log_q.get(label, 0.0) + float(neg_log_q[code])
            self._n_scored += y_true.size
        keys = self._batch_keys(y_true.size, y_true, y_pred, score)
        self._n += y_true.size
        self._offer(keys, {"true": y_true, "pred": y_pred, "score": score})

    def _update_regression(self, y_true: np.ndarray, y_pred: np.ndarray) -> None:
        self._check_shapes(y_true, y_pred)
        if not (np.all(np.isfinite(y_true)) and np.all(np.isfinite(y_pred))):
            raise ValueError("regression values must be finite")
        if y_true.size == 0:
            return
        error = y_pred - y_true
        self._abs_error_sum += float(np.abs(error).sum())
        self._squared_error_sum += float(np.square(error).sum())
        keys = self._batch_keys(y_true.size, y_true, y_pred)
        self._n += y_true.size
        self._offer(keys, {"true": y_true, "pred": y_pred})

    def _update_ranking(self, relevance: np.ndarray, item_scores: np.ndarray, groups: np.ndarray) -> None:
        group_ids, per_group = ranking_group_metrics(relevance, item_scores, groups)
        if group_ids.size == 0:
            return
        for name, values in per_group.items():
            self._group_sums[name] += float(values.sum())
        keys = self._batch_keys(group_ids.size, relevance, item_scores, group_ids.astype(str))
        self._n += group_ids.size
        self._n_items += relevance.size
        self._offer(keys, per_group)

    def _batch_keys(self, size: int, *arrays: np.ndarray) -> np.ndarray:
        entropy = [self.seed, _batch_digest(*arrays), self._n]
        return np.random.default_rng(np.random.SeedSequence(entropy)).random(size)

    def _offer(self, keys: np.ndarray, rows: Mapping[str, np.ndarray]) -> None:
        """Keep the ``capacity`` rows with the smallest keys, ordered by key (a canonical form)."""
        all_keys = np.concatenate([self._keys, keys])
        columns = {name: np.concatenate([self._sample[name], rows[name]]) for name in self._sample}
        if all_keys.size > self.capacity:
            kept = np.argpartition(all_keys, self.capacity - 1)[: self.capacity]
        else:
            kept = np.arange(all_keys.size)
        kept = kept[np.argsort(all_keys[kept], kind="stable")]
        self._keys = all_keys[kept]
        self._sample = {name: values[kept] for name, values in columns.items()}

    def merge(self, other: LabeledSketch) -> LabeledSketch:
        """A new sketch of both inputs' rows; neither input changes."""
        if (other.task, other.capacity, other.positive_label) != (self.task, self.capacity, self.positive_label):
            raise ValueError(f"cannot merge {self!r} (positive_label={self.positive_label!r}) with {other!r}")
        merged = LabeledSketch(self.task, capacity=self.capacity, seed=self.seed, positive_label=self.positive_label)
        merged._n = self._n + other._n
        merged._n_scored = self._n_scored + other._n_scored
        merged._n_items = self._n_items + other._n_items
        merged._abs_error_sum = self._abs_error_sum + other._abs_error_sum
        merged._squared_error_sum = self._squared_error_sum + other._squared_error_sum
        for mine, theirs, target in (
            (self._confusion, other._confusion, merged._confusion),
            (self._neg_log_p, other._neg_log_p, merged._neg_log_p),
            (self._neg_log_q, other._neg_log_q, merged._neg_log_q),
            (self._group_sums, other._group_sums, merged._group_sums),
        ):
            for key in sorted(mine.keys() | theirs.keys()):
                target[key] = mine.get(key, 0) + theirs.get(key, 0)
        merged._keys, merged._sample = self._keys, dict(self._sample)
        merged._offer(other._keys, other._sample)
        return merged

    # --- read-outs ------------------------------------------------------------------------

    def confusion_matrix(self) -> tuple[list[str], np.ndarray]:
        """The labels seen (sorted) and counts[i, j] of rows with true label i predicted as j."""
        labels = sorted({label for pair in self._confusion for label in pair})
        index = {label: i for i, label in enumerate(labels)}
        counts = np.zeros((len(labels), len(labels)), dtype=np.int64)
        for (true_label, pred_label), count in self._confusion.items():
            counts[index[true_label], index[pred_label]] = count
        return labels, counts

    def sample(self) -> dict[str, np.ndarray]:
        """A copy of the row sample: classification true/pred/score (NaN: no score), regression true/pred,
        ranking one metric value per group."""
        return {name: values.copy() for name, values in self._sample.items()}

    def losses(self) -> np.ndarray:
        """Per-row loss of the row sample, for `LossMonitor`: 0/1 error (classification),
        absolute error (regression), 1 - NDCG@5 per group (ranking).

        The sample of a pane is a uniform subsample in random order, so feeding the panes'
        losses in pane order gives the detector an event-time ordered stream at pane resolution.
        """
        if self.task == "classification":
            return (self._sample["true"] != self._sample["pred"]).astype(np.float64)
        if self.task == "regression":
            return np.abs(self._sample["pred"] - self._sample["true"])
        return 1.0 - self._sample["ndcg@5"]

    def positive(self) -> str | None:
        """Binary classification: the positive class; None when more than two labels were seen."""
        return positive_class(self.confusion_matrix()[0], self.positive_label)

    def metrics(self) -> dict[str, float]:
        """The task's metrics over every row seen (ROC AUC from the row sample: exact while n <= capacity).

        Log loss and ROC AUC need a binary task whose rows all carry scores. Accuracy,
        precision, recall and F1 come from the confusion counts and ROC AUC from the Mann-Whitney
        count, the formulas the bootstrap resamples (`label_metrics` and sklearn's
        ``roc_auc_score`` give the same values; the tests hold them to it) without sklearn's
        input checks, which took more than the arithmetic at every window.
        """
        if self._n == 0:
            return {}
        if self.task == "regression":
            return {"mae": self._abs_error_sum / self._n, "rmse": math.sqrt(self._squared_error_sum / self._n)}
        if self.task == "ranking":
            return {name: total / self._n for name, total in self._group_sums.items()}
        labels, counts = self.confusion_matrix()
        positive = positive_class(labels, self.positive_label)
        if positive is not None and positive not in labels:  # a configured positive class no row has
            labels, counts = [*labels, positive], np.pad(counts, ((0, 1), (0, 1)))
        point = _confusion_metrics(counts[None], labels.index(positive) if positive is not None else None)
        result = {name: float(values[0]) for name, values in point.items() if not math.isnan(values[0])}
        if positive is not None and self._n_scored == self._n:
            neg_log_likelihood = self._neg_log_p.get(positive, 0.0) + sum(
                total for label, total in self._neg_log_q.items() if label != positive
            )
            result["log_loss"] = neg_log_likelihood / self._n
            is_positive = self._sample["true"] == positive
            if 0 < is_positive.sum() < is_positive.size:
                scores = self._sample["score"]
                result["roc_auc"] = float(_auc_replicates(is_positive, scores, np.arange(len(scores))[None])[0])
        return result

    # --- serialisation --------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe state (orjson-serialisable); `from_dict` restores an equal sketch."""
        state: dict[str, Any] = {
            "task": self.task,
            "capacity": self.capacity,
            "seed": self.seed,
            "positive_label": self.positive_label,
            "n": self._n,
        }
        if self.task == "classification":
            state["confusion"] = [[true, pred, count] for (true, pred), count in sorted(self._confusion.items())]
            state["n_scored"] = self._n_scored
            state["log_loss_sums"] = [
                [label, self._neg_log_p[label], self._neg_log_q[label]] for label in sorted(self._neg_log_p)
            ]
        elif self.task == "regression":
            state["abs_error_sum"] = self._abs_error_sum
            state["squared_error_sum"] = self._squared_error_sum
        else:
            state["n_items"] = self._n_items
            state["group_sums"] = dict(self._group_sums)
        sample: dict[str, list] = {"key": self._keys.tolist()}
        for name, values in self._sample.items():
            if name in _STRING_COLUMNS and self.task == "classification":
                sample[name] = values.tolist()
            else:
                sample[name] = np.where(np.isnan(values), None, values).tolist()  # NaN (no score) -> null
        state["sample"] = sample
        return state

    @classmethod
    def from_dict(cls, state: Mapping[str, Any]) -> LabeledSketch:
        """Rebuild a sketch from `to_dict` output."""
        sketch = cls(
            state["task"], capacity=state["capacity"], seed=state["seed"], positive_label=state["positive_label"]
        )
        sketch._n = int(state["n"])
        if sketch.task == "classification":
            sketch._confusion = {(true, pred): int(count) for true, pred, count in state["confusion"]}
            sketch._n_scored = int(state["n_scored"])
            sketch._neg_log_p = {label: float(p) for label, p, _ in state["log_loss_sums"]}
            sketch._neg_log_q = {label: float(q) for label, _, q in state["log_loss_sums"]}
        elif sketch.task == "regression":
            sketch._abs_error_sum = float(state["abs_error_sum"])
            sketch._squared_error_sum = float(state["squared_error_sum"])
        else:
            sketch._n_items = int(state["n_items"])
            sketch._group_sums = {name: float(state["group_sums"][name]) for name in RANKING_METRICS}
        sample = state["sample"]
        sketch._keys = np.asarray(sample["key"], dtype=np.float64)
        for name in sketch._sample:
            if name in _STRING_COLUMNS and sketch.task == "classification":
                # the width given, numpy copies the labels in one pass (it otherwise first finds it): 0.13 against
                # 0.20 ms a column of 2 000, and the monitor reads two per partial
                labels = sample[name]
                sketch._sample[name] = np.array(labels, dtype=f"<U{max(1, max(map(len, labels), default=0))}")
            else:
                sketch._sample[name] = np.array(sample[name], dtype=np.float64)  # null -> NaN
        return sketch


def _confusion_metrics(counts: np.ndarray, positive_index: int | None) -> dict[str, np.ndarray]:
    """Accuracy, precision, recall and F1 of stacked confusion matrices ``counts[b, true, pred]``.

    The same definitions as `label_metrics` (binary: the positive class, NaN where a ratio
    is 0/0; else macro over the labels present in each matrix), vectorised over the stack
    for the bootstrap.
    """
    true_positive = np.diagonal(counts, axis1=1, axis2=2).astype(np.float64)
    true_total = counts.sum(axis=2).astype(np.float64)
    pred_total = counts.sum(axis=1).astype(np.float64)
    zeros = np.zeros_like(true_positive)
    precision = np.divide(true_positive, pred_total, out=zeros.copy(), where=pred_total > 0)
    recall = np.divide(true_positive, true_total, out=zeros.copy(), where=true_total > 0)
    f1 = np.divide(2.0 * true_positive, true_total + pred_total, out=zeros.copy(), where=true_total + pred_total > 0)
    accuracy = true_positive.sum(axis=1) / counts.sum(axis=(1, 2))
    if positive_index is not None:
        column = positive_index
        return {
            "accuracy": accuracy,
            "precision": np.where(pred_total[:, column] > 0, precision[:, column], np.nan),
            "recall": np.where(true_total[:, column] > 0, recall[:, column], np.nan),
            "f1": np.where(true_total[:, column] + pred_total[:, column] > 0, f1[:, column], np.nan),
        }
    present = (true_total + pred_total) > 0
    n_present = present.sum(axis=1)
    return {
        "accuracy": accuracy,
        "precision": (precision * present).sum(axis=1) / n_present,
        "recall": (recall * present).sum(axis=1) / n_present,
        "f1": (f1 * present).sum(axis=1) / n_present,
    }


def _resampled(rows: np.ndarray, per_row: np.ndarray, auc_of: tuple[np.ndarray, np.ndarray] | None = None,
               ) -> tuple[np.ndarray, np.ndarray]:
    """Bootstrap statistics of the resamples in ``rows`` (indices into the sample), by `resampled_statistics`.

    Returns the mean of each row of ``per_row`` (resamples × rows) and, when ``auc_of`` gives
    (is_positive, scores) of the sample, each resample's ROC AUC (else an empty array).
    """
    rows = np.ascontiguousarray(rows, dtype=np.int16 if rows.dtype == np.int16 else np.int64)
    means = np.empty((len(rows), len(per_row)))
    if auc_of is None:
        order = run_ends = np.empty(0, dtype=np.intp)
        is_positive, auc = np.empty(0, dtype=bool), np.empty(0)
    else:
        is_positive, scores = auc_of
        order = np.argsort(scores, kind="stable").astype(np.intp)
        ordered = scores[order]
        run_ends = np.append(np.flatnonzero(ordered[1:] != ordered[:-1]) + 1, len(ordered)).astype(np.intp)
        auc = np.empty(len(rows))
    resampled_statistics(rows, np.ascontiguousarray(per_row, dtype=np.float64), means, order, run_ends,
                         np.ascontiguousarray(is_positive, dtype=bool), auc)
    return means, auc


def _resample_rows(seed: int, sample_size: int, n_boot: int) -> Iterator[np.ndarray]:
    """The bootstrap's resamples of a sample of ``sample_size`` rows, as indices, in chunks that bound memory.

    They depend on the seed and the sizes only: a stream of their own (not the one the confusion
    resamples draw from), so every window whose sample is full (its capacity, most windows) uses
    the same draws, made once (`_drawn_once`). Drawing them was a third of a window's test. The
    windows' samples are different rows, so reusing the draws is common random numbers across
    windows, not a dependence within one.
    """
    if n_boot * sample_size <= _BOOTSTRAP_CELLS:
        yield _drawn_once(seed, sample_size, n_boot)
    else:
        yield from _draw_rows(seed, sample_size, n_boot)


def _draw_rows(seed: int, sample_size: int, n_boot: int) -> Iterator[np.ndarray]:
    rng = np.random.default_rng([seed, _ROWS_STREAM])
    rows_per_chunk = max(1, _BOOTSTRAP_CELLS // sample_size)
    # int16 indices are drawn in 3.6 ms against 5.5 (2 x 10^6)
    index_type = np.int16 if sample_size <= np.iinfo(np.int16).max else np.int64
    for first in range(0, n_boot, rows_per_chunk):
        yield rng.integers(0, sample_size, size=(min(rows_per_chunk, n_boot - first), sample_size), dtype=index_type)


@functools.lru_cache(maxsize=4)
def _drawn_once(seed: int, sample_size: int, n_boot: int) -> np.ndarray:
    """`_draw_rows` when they fit in one chunk (at most ``_BOOTSTRAP_CELLS`` int16s: 4 MB); only ever read."""
    (rows,) = _draw_rows(seed, sample_size, n_boot)
    return rows


def _auc_replicates(is_positive: np.ndarray, scores: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """ROC AUC of each resample (a row of ``rows``: indices into the sample); NaN where one class is missing.

    Mann-Whitney U with mid-ranks depends only on how often each sample row was drawn, so
    `resampled_statistics` counts the draws and walks the scores once per resample instead of
    sorting it (7 against 28 ms at 1 000 x 2 000, which numpy took with a ``bincount`` and a
    ``cumsum`` of the counts); 2U is an integer, so the result equals the mid-rank formula
    value for value.
    """
    return _resampled(rows, np.empty((0, len(scores))), (is_positive, scores))[1]


class ConceptDriftTest:
    """Test a window's performance against the reference performance of the model.

    A metric has ``dropped`` when it is worse than the reference by more than
    ``relative_drop`` (relative to the reference; for lower-is-better metrics such as log
    loss, MAE and RMSE a rise counts as a drop) *and* the drop is significant at ``alpha``:

    - accuracy: one-sided exact binomial test of the correct count against the reference
      accuracy (``binomial_test``);
    - precision, recall, F1: bootstrap of the window's confusion counts (multinomial
      resampling, exact for the whole window; ``bootstrap_confusion``);
    - ROC AUC, log loss, MAE, RMSE, ranking metrics: bootstrap of the sketch's row sample
      (``bootstrap_sample``). When the window holds more rows than the sample, the spread is
      rescaled by sqrt(sample size / n) around the exact window value (ROC AUC, computed on
      the sample, is not rescaled).

    Several metrics tested on one window would raise false alarms more often than ``alpha``;
    with ``correction="bonferroni"`` (the default) each of the m metrics the window can compute
    is tested at ``alpha / m``, the reported ``p_value`` is the adjusted min(1, m p), and the
    test name says so (``"binomial_test+bonferroni(6)"``), so ``p_value < alpha`` reads as
    significant either way. ``ci_low``/``ci_high`` are a two-sided (1 - 2 level) interval, where
    level is ``alpha`` or ``alpha / m``: its bound on the worse side is the one-sided bound the
    test uses. Windows with fewer than ``min_samples`` rows get
    ``significance_test="insufficient_samples"`` and never drop.

    Parameters
    ----------
    task : "classification", "regression" or "ranking".
    reference_performance : metric name -> value on the reference data.
    relative_drop : smallest relative worsening that counts (0.02 = 2 %).
    alpha : significance level of the one-sided tests (family-wise with the correction).
    metrics : metrics to test; default: the task's metrics present in ``reference_performance``.
    min_samples : smallest window (rows; groups for ranking) that is tested.
    seed : seed of the bootstrap.
    n_boot : bootstrap resamples.
    correction : "bonferroni" over the metrics of one window, or "none".

    Examples
    --------
    >>> rng = np.random.default_rng(3)
    >>> truth = rng.choice(["no", "yes"], size=3000)
    >>> predicted = np.where(rng.random(3000) < 0.855, truth, np.where(truth == "yes", "no", "yes"))
    >>> window = LabeledSketch.empty("classification")
    >>> window.update(truth, predicted)
    >>> test = ConceptDriftTest("classification", {"accuracy": 0.90}, seed=0)
    >>> [(r.metric, round(r.current, 3), r.significance_test, r.dropped) for r in test.evaluate(window)]
    [('accuracy', 0.859, 'binomial_test', True)]
    """

    def __init__(
        self,
        task: str,
        reference_performance: Mapping[str, float],
        *,
        relative_drop: float = 0.02,
        alpha: float = 0.05,
        metrics: Sequence[str] | None = None,
        min_samples: int = 200,
        seed: int = 0,
        n_boot: int = 1000,
        correction: str = "bonferroni",
    ) -> None:
        if task not in TASKS:
            raise ValueError(f"task must be one of {TASKS}, got {task!r}")
        if not 0.0 <= relative_drop < 1.0:
            raise ValueError(f"relative_drop must be in [0, 1), got {relative_drop}")
        if not 0.0 < alpha < 0.5:
            raise ValueError(f"alpha must be in (0, 0.5), got {alpha}")
        if min_samples < 1:
            raise ValueError(f"min_samples must be >= 1, got {min_samples}")
        if correction not in ("bonferroni", "none"):
            raise ValueError(f"correction must be 'bonferroni' or 'none', got {correction!r}")
        if n_boot < 100:
            raise ValueError(f"n_boot must be >= 100, got {n_boot}")
        chosen = tuple(metrics) if metrics is not None else tuple(
            name for name in TASK_METRICS[task] if name in reference_performance
        )
        if not chosen:
            raise ValueError(f"no {task} metric to test: reference_performance has {sorted(reference_performance)}")
        for name in chosen:
            if name not in TASK_METRICS[task]:
                raise ValueError(f"{name!r} is not a {task} metric; choose from {TASK_METRICS[task]}")
            if name not in reference_performance or not math.isfinite(reference_performance[name]):
                raise ValueError(f"reference_performance needs a finite value for {name!r}")
        self.task = task
        self.reference_performance = {name: float(reference_performance[name]) for name in chosen}
        self.relative_drop = relative_drop
        self.alpha = alpha
        self.metrics = chosen
        self.min_samples = min_samples
        self.seed = seed
        self.n_boot = n_boot
        self.correction = correction

    def __repr__(self) -> str:
        return (
            f"ConceptDriftTest(task={self.task!r}, metrics={self.metrics}, relative_drop={self.relative_drop}, "
            f"alpha={self.alpha}, correction={self.correction!r}, min_samples={self.min_samples})"
        )

    def relative_worsening(self, metric: str, current: float) -> float:
        """How much worse ``current`` is than the reference, relative to it (negative: better).

        A reference of 0 makes the change absolute.
        """
        reference = self.reference_performance[metric]
        worsening = reference - current if HIGHER_IS_BETTER[metric] else current - reference
        return worsening / abs(reference) if reference != 0 else worsening

    def evaluate(self, sketch: LabeledSketch) -> list[MetricResult]:
        """One `MetricResult` per tested metric the window can compute (e.g. ROC AUC needs scores)."""
        if sketch.task != self.task:
            raise ValueError(f"a {sketch.task} sketch cannot be tested as {self.task}")
        current = sketch.metrics()
        available = [name for name in self.metrics if name in current]
        n_tests = len(available) if self.correction == "bonferroni" else 1
        level = self.alpha / n_tests
        rng = np.random.default_rng(self.seed)
        replicates = self._replicates(sketch, current, available, rng) if sketch.n >= self.min_samples else {}
        results = []
        for metric in available:
            reference, value = self.reference_performance[metric], current[metric]
            evidence: dict[str, Any] = {"significance_test": "insufficient_samples"}
            if sketch.n >= self.min_samples:
                evidence = (
                    self._binomial_evidence(sketch, reference, level)
                    if metric == "accuracy"
                    else self._bootstrap_evidence(metric, replicates[metric], level)
                )
                if n_tests > 1:
                    evidence["significance_test"] += f"+bonferroni({n_tests})"
                    if evidence.get("p_value") is not None:
                        evidence["p_value"] = min(1.0, evidence["p_value"] * n_tests)
            worsening = self.relative_worsening(metric, value)
            significant = evidence.get("p_value") is not None and evidence["p_value"] < self.alpha
            results.append(
                MetricResult(
                    metric=metric,
                    reference=reference,
                    current=value,
                    relative_drop=worsening,
                    dropped=bool(significant and worsening > self.relative_drop),
                    n=sketch.n,
                    **evidence,
                )
            )
        return results

    @staticmethod
    def _binomial_evidence(sketch: LabeledSketch, reference: float, level: float) -> dict[str, Any]:
        _, counts = sketch.confusion_matrix()
        correct, n = int(np.trace(counts)), int(counts.sum())
        p_value = binomtest(correct, n, min(max(reference, 0.0), 1.0), alternative="less").pvalue
        # Clopper-Pearson, the interval binomtest's proportion_ci(method="exact") finds by root search,
        # read off the beta quantiles directly (0.1 against 1.8 ms, equal to its solver's tolerance)
        low = 0.0 if correct == 0 else float(beta.ppf(level, correct, n - correct + 1))
        high = 1.0 if correct == n else float(beta.isf(level, correct + 1, n - correct))
        return {"significance_test": "binomial_test", "p_value": float(p_value), "ci_low": low, "ci_high": high}

    def _bootstrap_evidence(self, metric: str, replicates: tuple[str, np.ndarray], level: float) -> dict[str, Any]:
        test_name, values = replicates
        values = values[np.isfinite(values)]
        if values.size == 0:
            return {"significance_test": test_name}
        reference = self.reference_performance[metric]
        not_worse = values >= reference if HIGHER_IS_BETTER[metric] else values <= reference
        low, high = np.quantile(values, [level, 1.0 - level])
        return {
            "significance_test": test_name,
            "p_value": float((1 + not_worse.sum()) / (1 + values.size)),
            "ci_low": float(low),
            "ci_high": float(high),
        }

    def _replicates(
        self, sketch: LabeledSketch, current: Mapping[str, float], metrics: Sequence[str], rng: np.random.Generator
    ) -> dict[str, tuple[str, np.ndarray]]:
        """Bootstrap replicates of every metric but accuracy: metric -> (test name, values)."""
        wanted = set(metrics) - {"accuracy"}
        replicates: dict[str, tuple[str, np.ndarray]] = {}
        if wanted & {"precision", "recall", "f1"}:
            labels, counts = sketch.confusion_matrix()
            positive = sketch.positive()
            resampled = rng.multinomial(sketch.n, counts.ravel() / sketch.n, size=self.n_boot)
            per_metric = _confusion_metrics(
                resampled.reshape(self.n_boot, len(labels), len(labels)),
                labels.index(positive) if positive is not None else None,
            )
            for name in wanted & {"precision", "recall", "f1"}:
                replicates[name] = ("bootstrap_confusion", per_metric[name])
        sampled = wanted - {"precision", "recall", "f1"}
        if not sampled:
            return replicates
        sample = sketch.sample()
        sample_size = len(next(iter(sample.values())))
        if self.task == "regression":
            error = sample["pred"] - sample["true"]
            per_row = {"mae": np.abs(error), "rmse": np.square(error)}
        elif self.task == "ranking":
            per_row = {name: sample[name] for name in RANKING_METRICS}
        else:
            is_positive = sample["true"] == sketch.positive()
            probability_of_truth = np.where(is_positive, sample["score"], 1.0 - sample["score"])
            per_row = {"log_loss": -np.log(np.clip(probability_of_truth, _PROBABILITY_EPS, 1.0))}
        averaged = sorted(sampled - {"roc_auc"})
        per_row_matrix = np.array([per_row[name] for name in averaged], dtype=np.float64).reshape(len(averaged), -1)
        auc_of = (is_positive, sample["score"]) if "roc_auc" in sampled else None
        chunks: dict[str, list[np.ndarray]] = {name: [] for name in sorted(sampled)}
        for rows in _resample_rows(self.seed, sample_size, self.n_boot):
            means, auc = _resampled(rows, per_row_matrix, auc_of)
            for name, column in zip(averaged, means.T, strict=True):
                chunks[name].append(column)
            if auc_of is not None:
                chunks["roc_auc"].append(auc)
        shrink = math.sqrt(sample_size / sketch.n)
        for name, values in chunks.items():
            resampled = np.concatenate(values)
            if name == "roc_auc":
                replicates[name] = ("bootstrap_sample", resampled)
                continue
            sample_value = per_row[name].mean()
            if name == "rmse":
                resampled, sample_value = np.sqrt(resampled), math.sqrt(sample_value)
            replicates[name] = ("bootstrap_sample", current[name] + (resampled - sample_value) * shrink)
        return replicates


class LossMonitor:
    """river's ADWIN or PageHinkley on the per-event loss: an early signal of concept drift.

    Feed it each model's labeled rows in event-time order as losses (0/1 error for
    classification, absolute error for regression, 1 - NDCG for rankings; stage 2 can feed
    `LabeledSketch.losses` of each pane once, in pane order). It reports only
    rises of the loss: PageHinkley runs in ``mode="up"`` unless told otherwise, and an ADWIN
    detection counts when ADWIN's new estimate is above the one before the change.

    The state is a river detector, which is sequential and *not mergeable*: stage 2 runs one
    monitor per model over the labeled rows of each pane, in event-time order; it is not
    carried in pane partials. `to_dict` / `from_dict` checkpoint it, so a restarted monitor
    goes on as if it never stopped.

    Parameters
    ----------
    detector : "adwin" or "page_hinkley".
    **params : passed to ``river.drift.ADWIN`` or ``river.drift.PageHinkley``.

    Examples
    --------
    >>> rng = np.random.default_rng(42)
    >>> losses = np.r_[rng.random(1000) < 0.1, rng.random(1000) < 0.3].astype(float)
    >>> LossMonitor("adwin").update(losses)
    [1183]
    """

    def __init__(self, detector: str = "adwin", **params: Any) -> None:
        if detector not in ("adwin", "page_hinkley"):
            raise ValueError(f"detector must be 'adwin' or 'page_hinkley', got {detector!r}")
        self.detector = detector
        self.params = {"mode": "up", **params} if detector == "page_hinkley" else dict(params)
        self._reset()

    def _reset(self) -> None:
        self._detector = (
            river_drift.ADWIN(**self.params) if self.detector == "adwin" else river_drift.PageHinkley(**self.params)
        )
        self._n = 0

    def reset(self) -> None:
        """Forget every loss seen, keep the settings."""
        self._reset()

    @property
    def n(self) -> int:
        """Losses seen since the last reset."""
        return self._n

    def __repr__(self) -> str:
        return f"LossMonitor(detector={self.detector!r}, params={self.params}, n={self._n})"

    def update(self, losses: Sequence[float] | np.ndarray) -> list[int]:
        """Feed losses in event-time order; return the positions in ``losses`` where a rise was detected."""
        values = np.asarray(losses, dtype=np.float64).tolist()
        self._n += len(values)
        if self.detector == "adwin":
            return self._update_adwin(values)
        fired = []
        for position, loss in enumerate(values):
            self._detector.update(loss)
            if self._detector.drift_detected:
                fired.append(position)
        return fired

    def _update_adwin(self, values: list[float]) -> list[int]:
        """ADWIN's ``update`` and ``estimation``, calling its Rust window directly.

        The monitor feeds every labeled row, so this is per event: river's Python wrapper
        (``update``, then ``estimation`` from two properties, before and after) cost 0.71 µs a
        loss, its window alone 0.20. The estimate before a loss is the one after the loss
        before it, as nothing changes the window in between. A loss after a detection goes
        through river's ``update``, which starts a fresh window first.
        """
        detector = self._detector
        window = detector._helper
        width = window.get_width()
        before = window.get_total() / width if width else 0.0
        fired = []
        for position, loss in enumerate(values):
            if detector._drift_detected:
                detector.update(loss)
                window, detected = detector._helper, detector._drift_detected
            else:
                detected = detector._drift_detected = window.update(loss)
            width = window.get_width()
            after = window.get_total() / width if width else 0.0
            if detected and after > before:
                fired.append(position)
            before = after
        return fired

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe state for a changelog: the settings and the detector's state, exactly.

        ADWIN keeps its window in river's Rust ``AdaptiveWindowing``, whose only exported state
        is its own byte encoding (``__getstate__``): it is carried as base64. PageHinkley's
        state is a few floats and a running mean, carried field by field.
        """
        detector = self._detector
        if self.detector == "adwin":
            state: dict[str, Any] = {"adwin": base64.b64encode(detector._helper.__getstate__()).decode("ascii")}
        else:
            state = {
                "mean_n": detector._x_mean.n, "mean": detector._x_mean._mean,
                "sum_increase": detector._sum_increase, "sum_decrease": detector._sum_decrease,
                # infinite until the first loss: JSON has no infinity
                "min_increase": None if detector._min_increase == math.inf else detector._min_increase,
                "max_decrease": detector._max_decrease,
            }
        state["drift_detected"] = detector.drift_detected  # a detection resets the detector on the next loss
        return {"detector": self.detector, "params": dict(self.params), "n": self._n, "state": state}

    @classmethod
    def from_dict(cls, state: Mapping[str, Any]) -> LossMonitor:
        """Restore `to_dict` output; a detector state it cannot read gives a fresh monitor and a warning.

        An unreadable state (another river version's byte format, a damaged record) must not stop
        the service: the early signal then restarts from nothing, as it did before checkpoints.
        Bad settings (``detector``, ``params``) raise as the constructor does.
        """
        monitor = cls(state["detector"], **state["params"])
        try:
            monitor._load_detector(state["state"])
            monitor._n = int(state["n"])
        except BaseException as error:  # a Rust panic on unreadable bytes is pyo3's PanicException, a BaseException
            if not isinstance(error, Exception) and type(error).__name__ != "PanicException":
                raise
            log.warning("unreadable %s state (%s: %s); the loss monitor starts afresh", monitor.detector,
                        type(error).__name__, error)
            monitor.reset()
        return monitor

    def _load_detector(self, state: Mapping[str, Any]) -> None:
        """Set the fresh detector's state to ``state``; raise when it does not read back as written."""
        detector = self._detector
        if self.detector == "adwin":
            raw = base64.b64decode(state["adwin"], validate=True)
            helper = detector._helper
            settings = helper.__getnewargs__()
            helper.__setstate__(raw)  # river's own unpickling path, fed only the bytes it wrote
            # the bytes hold the settings too; trailing or misread bytes show as a difference
            if helper.__getnewargs__() != settings or helper.__getstate__() != raw:
                raise ValueError("the ADWIN state does not read back as written")
        else:
            detector._x_mean.n, detector._x_mean._mean = float(state["mean_n"]), float(state["mean"])
            detector._sum_increase, detector._sum_decrease = float(state["sum_increase"]), float(state["sum_decrease"])
            detector._min_increase = math.inf if state["min_increase"] is None else float(state["min_increase"])
            detector._max_decrease = float(state["max_decrease"])
        detector._drift_detected = bool(state["drift_detected"])
