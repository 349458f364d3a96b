"""Candidate and champion judged the same way: the task's metrics on the same holdout.

The numbers come from `driftline.stream.performance.compute_metrics`, the function the
monitor and the A/B analyzer use, so "better" means the same thing everywhere.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from driftline.consumers.retrain.data import Task
from driftline.stream.performance import compute_metrics, positive_class

__all__ = ["evaluate", "evaluate_predictions", "model_inputs", "serving_metrics"]


def model_inputs(frame: pd.DataFrame, features: list[str]) -> pd.DataFrame:
    """The feature columns as a model is served them: strings as objects with None for missing."""
    inputs = frame.reindex(columns=features)
    for column in features:
        if not pd.api.types.is_numeric_dtype(inputs[column]):
            inputs[column] = inputs[column].astype(object).where(inputs[column].notna(), None)
    return inputs


def _positive_scores(model: Any, inputs: pd.DataFrame, y_true: np.ndarray, y_pred: np.ndarray) -> np.ndarray | None:
    """Probability of the positive class for a binary task, when the model gives probabilities."""
    classes = getattr(model, "classes_", None)
    if classes is None or not hasattr(model, "predict_proba"):
        return None
    positive = positive_class(sorted(set(y_true) | set(y_pred)))
    class_names = [str(c) for c in classes]
    if positive is None or positive not in class_names:
        return None
    return np.asarray(model.predict_proba(inputs))[:, class_names.index(positive)]


def evaluate(model: Any, holdout: pd.DataFrame, task: Task, features: list[str]) -> dict[str, float]:
    """The task's metrics of ``model`` on ``holdout`` (a frame from `build_frame`)."""
    return evaluate_predictions(model, holdout, task, features)[0]


def evaluate_predictions(model: Any, holdout: pd.DataFrame, task: Task,
                         features: list[str]) -> tuple[dict[str, float], list[Any]]:
    """`evaluate`, and the predictions it judged (a new version's reference profile records them)."""
    if holdout.empty:
        return {}, []
    inputs = model_inputs(holdout, features)
    served = model.predict(inputs)
    predicted = np.asarray(served)
    if task == "ranking":
        metrics = compute_metrics("ranking", holdout["relevance"].to_numpy(dtype=float), predicted.astype(float),
                                  groups=holdout["group_id"].to_numpy())
    elif task == "regression":
        metrics = compute_metrics("regression", holdout["outcome"].to_numpy(dtype=float), predicted.astype(float))
    else:
        y_true = holdout["outcome"].astype(str).to_numpy()
        y_pred = predicted.astype(str)
        metrics = compute_metrics("classification", y_true, y_pred,
                                  scores=_positive_scores(model, inputs, y_true, y_pred))
    return metrics, list(served)


def serving_metrics(holdout: pd.DataFrame, task: Task) -> dict[str, float]:
    """Metrics of what production actually predicted on the holdout (the logged predictions).

    The champion baseline when the registry has no champion yet (a model trained outside
    driftline), so the first candidate must still beat the model that is serving.
    """
    if holdout.empty:
        return {}
    if task == "ranking":
        return compute_metrics("ranking", holdout["relevance"].to_numpy(dtype=float),
                               holdout["score"].to_numpy(dtype=float), groups=holdout["group_id"].to_numpy())
    if task == "regression":
        return compute_metrics("regression", holdout["outcome"].to_numpy(dtype=float),
                               pd.to_numeric(holdout["prediction"], errors="coerce").fillna(0.0).to_numpy())
    return compute_metrics("classification", holdout["outcome"].astype(str).to_numpy(),
                           holdout["prediction"].astype(str).to_numpy())
