"""Model performance metrics for classification, regression and ranking.

One function, `compute_metrics`, gives the metrics driftline reports for a task, so the
monitor (concept drift), the retrain worker (candidate vs champion) and the A/B analyzer
all compare the same numbers. `PRIMARY_METRIC` names the metric each task is judged by and
`HIGHER_IS_BETTER` says which way is better for every metric name.

Conventions
-----------
- Classification, binary (at most two labels seen): precision, recall and F1 of the
  positive class, which is ``positive_label`` or else the lexicographically last label;
  ``scores`` are the probabilities of that positive class and add ROC AUC and log loss.
  More than two labels: macro averages over the labels seen; ROC AUC and log loss are not
  reported (scores are a binary notion here).
- Ranking: items of many groups in flat arrays; metrics are computed per group and averaged
  over groups. NDCG uses linear gains and averages over tied scores like
  `sklearn.metrics.ndcg_score`; MRR and MAP count an item as relevant when its relevance is
  > 0 and break tied scores by input order; a group without a relevant item scores 0.
  Negative relevance counts as 0 (not relevant): NDCG needs gains >= 0, and a stream must
  not fail on a label source that uses negative relevance.

Metrics that are undefined on the data (ROC AUC with one class) are left out of the result
rather than set to NaN, so every value is a finite float and JSON-safe.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from sklearn.metrics import (
    accuracy_score,
    mean_absolute_error,
    precision_recall_fscore_support,
    roc_auc_score,
    root_mean_squared_error,
)

__all__ = [
    "CLASSIFICATION_METRICS",
    "HIGHER_IS_BETTER",
    "PRIMARY_METRIC",
    "RANKING_METRICS",
    "REGRESSION_METRICS",
    "TASKS",
    "compute_metrics",
    "label_metrics",
    "positive_class",
    "ranking_group_metrics",
    "score_metrics",
]

TASKS = ("classification", "regression", "ranking")
CLASSIFICATION_METRICS = ("accuracy", "precision", "recall", "f1", "roc_auc", "log_loss")
REGRESSION_METRICS = ("mae", "rmse")
RANKING_METRICS = ("ndcg@3", "ndcg@5", "mrr", "map")

PRIMARY_METRIC: dict[str, str] = {"classification": "accuracy", "regression": "rmse", "ranking": "ndcg@5"}

HIGHER_IS_BETTER: dict[str, bool] = {
    "accuracy": True,
    "precision": True,
    "recall": True,
    "f1": True,
    "roc_auc": True,
    "log_loss": False,
    "mae": False,
    "rmse": False,
    "ndcg@3": True,
    "ndcg@5": True,
    "mrr": True,
    "map": True,
}

_PROBABILITY_EPS = float(np.finfo(np.float64).eps)  # the clipping sklearn's log_loss applies


def positive_class(labels: Sequence[str], positive_label: str | None = None) -> str | None:
    """The positive class of a binary task, or None when more than two labels make it multi-class.

    Parameters
    ----------
    labels : the labels seen (true and predicted).
    positive_label : the caller's choice; else the lexicographically last label.

    Examples
    --------
    >>> positive_class(["no", "yes"]), positive_class(["a", "b"], "a"), positive_class(["a", "b", "c"])
    ('yes', 'a', None)
    """
    seen = set(labels) | ({positive_label} if positive_label is not None else set())
    if len(seen) > 2:
        return None
    if positive_label is not None:
        return positive_label
    return max(seen) if seen else None


def label_metrics(
    y_true: np.ndarray,
    y_pred: np.ndarray,
    *,
    positive_label: str | None = None,
    sample_weight: np.ndarray | None = None,
) -> dict[str, float]:
    """Accuracy, precision, recall and F1 of predicted labels (weights let counts stand for rows).

    Binary: scores of the positive class (`positive_class`), leaving out precision when
    nothing was predicted positive, recall when no row is truly positive, and F1 when both
    (0/0 is no evidence of a bad model: a fraud window may hold no fraud); multi-class:
    macro averages over the labels seen.
    """
    y_true = np.asarray(y_true, dtype=str)
    y_pred = np.asarray(y_pred, dtype=str)
    if y_true.size == 0:
        return {}
    labels = sorted(set(np.unique(y_true)) | set(np.unique(y_pred)))
    positive = positive_class(labels, positive_label)
    if positive is not None:
        precision, recall, f1, _ = precision_recall_fscore_support(
            y_true, y_pred, labels=[positive], average=None, sample_weight=sample_weight, zero_division=0.0
        )
        weight = np.ones(y_true.size) if sample_weight is None else np.asarray(sample_weight, dtype=np.float64)
        predicted_positive, truly_positive = weight[y_pred == positive].sum(), weight[y_true == positive].sum()
        defined = {"precision": predicted_positive > 0, "recall": truly_positive > 0,
                   "f1": predicted_positive + truly_positive > 0}
        precision, recall, f1 = precision[0], recall[0], f1[0]
    else:
        precision, recall, f1, _ = precision_recall_fscore_support(
            y_true, y_pred, labels=labels, average="macro", sample_weight=sample_weight, zero_division=0.0
        )
        defined = {"precision": True, "recall": True, "f1": True}
    result = {"accuracy": float(accuracy_score(y_true, y_pred, sample_weight=sample_weight))}
    for name, value in (("precision", precision), ("recall", recall), ("f1", f1)):
        if defined[name]:
            result[name] = float(value)
    return result


def score_metrics(is_positive: np.ndarray, scores: np.ndarray) -> dict[str, float]:
    """ROC AUC (when both classes occur) and log loss of positive-class probabilities."""
    is_positive = np.asarray(is_positive, dtype=bool)
    scores = np.asarray(scores, dtype=np.float64)
    if is_positive.size == 0:
        return {}
    probability_of_truth = np.clip(np.where(is_positive, scores, 1.0 - scores), _PROBABILITY_EPS, 1.0)
    result = {"log_loss": float(-np.log(probability_of_truth).mean())}
    if 0 < is_positive.sum() < is_positive.size:
        result["roc_auc"] = float(roc_auc_score(is_positive, scores))
    return result


def ranking_group_metrics(
    relevance: np.ndarray, scores: np.ndarray, groups: np.ndarray
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """NDCG@3, NDCG@5, MRR and average precision of every group, vectorised over all items.

    Parameters
    ----------
    relevance : true relevance per item, higher is better; below 0 counts as 0.
    scores : model score per item (higher ranks first).
    groups : group id per item.

    Returns
    -------
    group_ids : the distinct groups, sorted.
    values : metric name -> one value per group, aligned with ``group_ids``.

    Examples
    --------
    >>> ids, values = ranking_group_metrics([0, 1, 0, 2, 0], [0.9, 0.5, 0.1, 0.2, 0.8], ["a", "a", "a", "b", "b"])
    >>> ids.tolist(), values["mrr"].tolist()
    (['a', 'b'], [0.5, 0.5])
    """
    relevance = np.asarray(relevance, dtype=np.float64)
    scores = np.asarray(scores, dtype=np.float64)
    groups = np.asarray(groups)
    if not relevance.shape == scores.shape == groups.shape or relevance.ndim != 1:
        raise ValueError("relevance, scores and groups must be 1-d arrays of one length")
    relevance = np.maximum(relevance, 0.0)
    group_ids, group_code = np.unique(groups, return_inverse=True)
    n_groups = group_ids.size
    by_score = np.lexsort((-scores, group_code))  # stable: ties keep input order
    code = group_code[by_score]
    gain = relevance[by_score]
    group_start = np.flatnonzero(np.r_[True, code[1:] != code[:-1]]) if code.size else np.array([], dtype=int)
    group_size = np.diff(np.r_[group_start, code.size])
    position = np.arange(code.size) - np.repeat(group_start, group_size)
    discount = 1.0 / np.log2(position + 2.0)
    # tied scores share the mean gain of their tie block, as in sklearn's ndcg_score
    sorted_scores = scores[by_score]
    block_start = np.r_[True, (code[1:] != code[:-1]) | (sorted_scores[1:] != sorted_scores[:-1])]
    block = np.cumsum(block_start) - 1
    tie_mean_gain = (np.bincount(block, weights=gain) / np.bincount(block))[block]
    ideal_gain = relevance[np.lexsort((-relevance, group_code))]
    values: dict[str, np.ndarray] = {}
    for k in (3, 5):
        in_top_k = position < k
        dcg = np.bincount(code, weights=tie_mean_gain * discount * in_top_k, minlength=n_groups)
        ideal_dcg = np.bincount(code, weights=ideal_gain * discount * in_top_k, minlength=n_groups)
        values[f"ndcg@{k}"] = np.divide(dcg, ideal_dcg, out=np.zeros(n_groups), where=ideal_dcg > 0)
    relevant = (gain > 0).astype(np.float64)
    reciprocal_rank = np.zeros(n_groups)
    np.maximum.at(reciprocal_rank, code, relevant / (position + 1.0))
    values["mrr"] = reciprocal_rank
    relevant_so_far = np.cumsum(relevant)
    relevant_so_far -= np.repeat(relevant_so_far[group_start] - relevant[group_start], group_size)
    precision_sum = np.bincount(code, weights=relevant * relevant_so_far / (position + 1.0), minlength=n_groups)
    n_relevant = np.bincount(code, weights=relevant, minlength=n_groups)
    values["map"] = np.divide(precision_sum, n_relevant, out=np.zeros(n_groups), where=n_relevant > 0)
    return group_ids, values


def compute_metrics(
    task: str,
    y_true: Sequence | np.ndarray,
    y_pred: Sequence | np.ndarray,
    *,
    scores: Sequence[float] | np.ndarray | None = None,
    groups: Sequence | np.ndarray | None = None,
    positive_label: str | None = None,
) -> dict[str, float]:
    """The performance metrics of one task on one set of labeled rows.

    Parameters
    ----------
    task : "classification", "regression" or "ranking".
    y_true : true labels (str), true values, or relevance per item.
    y_pred : predicted labels, predicted values, or model score per item.
    scores : classification only: probability of the positive class per row (binary).
    groups : ranking only: group id per item.
    positive_label : binary classification: the positive class (default: lexicographically last label).

    Returns
    -------
    Metric name -> value; names are keys of `HIGHER_IS_BETTER`. Empty input gives ``{}``.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> y = rng.normal(size=300)
    >>> m = compute_metrics("regression", y, y + rng.normal(scale=0.5, size=300))
    >>> round(m["mae"], 3), round(m["rmse"], 3)
    (0.386, 0.488)
    >>> truth = rng.choice(["cat", "dog"], size=300)
    >>> compute_metrics("classification", truth, truth)["f1"]
    1.0
    """
    if task not in TASKS:
        raise ValueError(f"task must be one of {TASKS}, got {task!r}")
    y_true = np.asarray(y_true)
    y_pred = np.asarray(y_pred)
    if y_true.shape != y_pred.shape or y_true.ndim != 1:
        raise ValueError(f"y_true and y_pred must be 1-d arrays of one length, got {y_true.shape} and {y_pred.shape}")
    if y_true.size == 0:
        return {}
    if task == "regression":
        return {
            "mae": float(mean_absolute_error(y_true, y_pred)),
            "rmse": float(root_mean_squared_error(y_true, y_pred)),
        }
    if task == "ranking":
        if groups is None:
            raise ValueError("ranking metrics need the group id of every item")
        _, per_group = ranking_group_metrics(y_true, y_pred, np.asarray(groups))
        return {name: float(values.mean()) for name, values in per_group.items()}
    y_true = y_true.astype(str)
    y_pred = y_pred.astype(str)
    result = label_metrics(y_true, y_pred, positive_label=positive_label)
    if scores is not None:
        scores = np.asarray(scores, dtype=np.float64)
        if scores.shape != y_true.shape:
            raise ValueError("scores must hold one positive-class probability per row")
        positive = positive_class(sorted(set(np.unique(y_true)) | set(np.unique(y_pred))), positive_label)
        if positive is not None:
            result.update(score_metrics(y_true == positive, scores))
    return result
