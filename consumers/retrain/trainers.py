"""Built-in trainers and the ``module:function`` loader for custom ones.

A trainer is any callable ``trainer(frame, spec) -> model``: ``frame`` is the training part
of the frame built by `driftline.consumers.retrain.data.build_frame` (features, target,
``ts``; ``group_id`` for ranking), ``spec`` a `TrainingSpec`. The model it returns must take
a dataframe of the spec's feature columns: ``predict(X)`` gives labels (classification),
numbers (regression) or scores (ranking); classifiers should also offer ``predict_proba``
and ``classes_`` so ROC AUC can be computed. Models are logged with ``mlflow.sklearn``, so
they must pickle (a class defined at module level of an importable module).

Built in: `sklearn_trainer` (tabular classification and regression, histogram gradient
boosting), `ranking_trainer` (LightGBM lambdarank on grouped data), `river_trainer`
(a Hoeffding adaptive tree learnt online, row by row in time order) and `auto_trainer`
(the default: the first two, chosen by the task). The first two can be
tuned with Optuna (TPE) on a time-ordered validation split of the training data.
"""

from __future__ import annotations

import importlib
import logging
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder

from driftline.consumers.retrain.data import Task, time_split
from driftline.consumers.retrain.evaluation import evaluate, model_inputs

__all__ = [
    "RiverEstimator",
    "Trainer",
    "TrainingSpec",
    "auto_trainer",
    "load_trainer",
    "ranking_trainer",
    "river_trainer",
    "sklearn_trainer",
    "target_column",
]

log = logging.getLogger(__name__)

Trainer = Callable[[pd.DataFrame, "TrainingSpec"], Any]


@dataclass(frozen=True)
class TrainingSpec:
    """What a trainer needs besides the data.

    Parameters
    ----------
    task
        ``classification``, ``regression`` or ``ranking``.
    features
        Input columns, in the order the model will be given them.
    primary_metric, higher_is_better
        What tuning optimises (the same metric the promotion policy compares).
    params
        Trainer-specific hyperparameters from ``retrain.trainer_params``; they override defaults.
    seed
        Seed for every random choice (model and tuner).
    optuna_trials, optuna_timeout_s
        Tuning budget; 0 trials means no tuning.
    """

    task: Task
    features: list[str]
    primary_metric: str
    higher_is_better: bool
    params: Mapping[str, Any] = field(default_factory=dict)
    seed: int = 0
    optuna_trials: int = 0
    optuna_timeout_s: float = 60.0


def target_column(task: Task) -> str:
    """The frame column a trainer learns: ``relevance`` for ranking, else ``outcome``."""
    return "relevance" if task == "ranking" else "outcome"


def load_trainer(reference: str) -> Trainer:
    """Import a trainer named ``package.module:function``."""
    module_name, sep, attribute = reference.partition(":")
    if not sep or not module_name or not attribute:
        raise ValueError(f"trainer must look like 'package.module:function', got {reference!r}")
    module = importlib.import_module(module_name)
    try:
        trainer = getattr(module, attribute)
    except AttributeError:
        raise ValueError(f"module {module_name!r} has no trainer {attribute!r}") from None
    if not callable(trainer):
        raise ValueError(f"{reference!r} is not callable")
    return trainer


# --- scikit-learn ------------------------------------------------------------------------


def _preprocessor(frame: pd.DataFrame, features: list[str]) -> ColumnTransformer:
    """Numbers pass through (gradient boosting handles NaN); strings are one-hot encoded."""
    numeric = [c for c in features if pd.api.types.is_numeric_dtype(frame[c]) and not pd.api.types.is_bool_dtype(
        frame[c])]
    categorical = [c for c in features if c not in numeric]
    encoder = OneHotEncoder(handle_unknown="infrequent_if_exist", max_categories=64, sparse_output=False)
    return ColumnTransformer(
        [("numeric", "passthrough", numeric), ("categorical", encoder, categorical)],
        verbose_feature_names_out=False,
    )


def _tabular_pipeline(frame: pd.DataFrame, spec: TrainingSpec, params: Mapping[str, Any]) -> Pipeline:
    estimator_cls = HistGradientBoostingClassifier if spec.task == "classification" else HistGradientBoostingRegressor
    defaults = {"max_iter": 150, "learning_rate": 0.1, "early_stopping": False, "random_state": spec.seed}
    return Pipeline([
        ("prepare", _preprocessor(frame, spec.features)),
        ("model", estimator_cls(**{**defaults, **params})),
    ])


def _tune(
    spec: TrainingSpec,
    frame: pd.DataFrame,
    suggest: Callable[[Any], dict[str, Any]],
    fit: Callable[[pd.DataFrame, Mapping[str, Any]], Any],
) -> dict[str, Any]:
    """Optuna TPE search on a time-ordered validation split; returns the best parameters."""
    import optuna

    fit_part, validation = time_split(frame, 0.2, task=spec.task)

    def objective(trial: Any) -> float:
        model = fit(fit_part, {**spec.params, **suggest(trial)})
        value = evaluate(model, validation, spec.task, spec.features).get(spec.primary_metric, math.nan)
        return value if math.isfinite(value) else (-math.inf if spec.higher_is_better else math.inf)

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(
        direction="maximize" if spec.higher_is_better else "minimize",
        sampler=optuna.samplers.TPESampler(seed=spec.seed),
    )
    study.optimize(objective, n_trials=spec.optuna_trials, timeout=spec.optuna_timeout_s)
    log.info("optuna: %d trials, best %s=%.4f with %s", len(study.trials), spec.primary_metric, study.best_value,
             study.best_params)
    return study.best_params


def sklearn_trainer(frame: pd.DataFrame, spec: TrainingSpec) -> Pipeline:
    """Histogram gradient boosting for tabular classification or regression.

    Strings are one-hot encoded (at most 64 categories per feature, rare ones pooled),
    missing numbers are handled by the trees. ``spec.params`` go to the estimator
    (``max_iter``, ``learning_rate``, ``max_leaf_nodes``, ...).
    """
    if spec.task not in ("classification", "regression"):
        raise ValueError(f"sklearn_trainer handles classification and regression, not {spec.task}")

    def fit(part: pd.DataFrame, params: Mapping[str, Any]) -> Pipeline:
        pipeline = _tabular_pipeline(part, spec, params)
        return pipeline.fit(model_inputs(part, spec.features), part[target_column(spec.task)])

    params: dict[str, Any] = dict(spec.params)
    if spec.optuna_trials > 0:
        params.update(_tune(spec, frame, lambda trial: {
            "learning_rate": trial.suggest_float("learning_rate", 0.02, 0.3, log=True),
            "max_leaf_nodes": trial.suggest_int("max_leaf_nodes", 8, 64, log=True),
            "min_samples_leaf": trial.suggest_int("min_samples_leaf", 5, 100, log=True),
            "l2_regularization": trial.suggest_float("l2_regularization", 1e-6, 1.0, log=True),
        }, fit))
    return fit(frame, params)


# --- learning to rank --------------------------------------------------------------------


def _group_sizes(groups: pd.Series) -> list[int]:
    """Lengths of the consecutive runs of equal group ids (LightGBM's ``group``)."""
    starts = groups.ne(groups.shift()).cumsum()
    return starts.value_counts(sort=False).sort_index().tolist()


def ranking_trainer(frame: pd.DataFrame, spec: TrainingSpec) -> Pipeline:
    """LightGBM lambdarank on one row per item, grouped by ``group_id`` (e.g. runners of a race).

    Relevance is rounded to a non-negative integer grade (lambdarank's label); with grades
    above 30 the label gain becomes linear. ``spec.params`` go to ``LGBMRanker``.
    """
    from lightgbm import LGBMRanker

    if spec.task != "ranking":
        raise ValueError(f"ranking_trainer handles ranking, not {spec.task}")

    def fit(part: pd.DataFrame, params: Mapping[str, Any]) -> Pipeline:
        part = part.sort_values(["ts", "group_id"], kind="stable")
        grades = np.clip(np.rint(part["relevance"].to_numpy(dtype=float)), 0, None).astype(int)
        defaults: dict[str, Any] = {"objective": "lambdarank", "n_estimators": 100, "learning_rate": 0.1,
                                    "num_leaves": 31, "min_child_samples": 5, "random_state": spec.seed,
                                    "verbose": -1, "n_jobs": 1}
        if grades.max(initial=0) > 30:
            defaults["label_gain"] = list(range(int(grades.max()) + 1))
        pipeline = Pipeline([("prepare", _preprocessor(part, spec.features)),
                             ("model", LGBMRanker(**{**defaults, **params}))])
        return pipeline.fit(model_inputs(part, spec.features), grades, model__group=_group_sizes(part["group_id"]))

    params: dict[str, Any] = dict(spec.params)
    if spec.optuna_trials > 0:
        params.update(_tune(spec, frame, lambda trial: {
            "learning_rate": trial.suggest_float("learning_rate", 0.02, 0.3, log=True),
            "num_leaves": trial.suggest_int("num_leaves", 7, 63, log=True),
            "n_estimators": trial.suggest_int("n_estimators", 50, 300, log=True),
            "min_child_samples": trial.suggest_int("min_child_samples", 2, 50, log=True),
        }, fit))
    return fit(frame, params)


# --- river -------------------------------------------------------------------------------


class RiverEstimator(BaseEstimator):
    """A river model behind the scikit-learn interface, so it is evaluated and logged like the others.

    `fit` learns row by row in the frame's (time) order; missing values are left out of each
    row, as river expects. Classification uses a Hoeffding adaptive tree classifier,
    regression a Hoeffding adaptive tree regressor; both take numbers and strings.
    """

    def __init__(self, task: Task = "classification", seed: int = 0, grace_period: int = 100) -> None:
        self.task = task
        self.seed = seed
        self.grace_period = grace_period

    def _new_model(self) -> Any:
        from river import tree

        if self.task == "classification":
            return tree.HoeffdingAdaptiveTreeClassifier(grace_period=self.grace_period, seed=self.seed)
        if self.task == "regression":
            return tree.HoeffdingAdaptiveTreeRegressor(grace_period=self.grace_period, seed=self.seed)
        raise ValueError(f"river_trainer handles classification and regression, not {self.task}")

    @staticmethod
    def _rows(X: pd.DataFrame) -> list[dict[str, Any]]:
        return [{k: v for k, v in row.items() if v is not None and not (isinstance(v, float) and math.isnan(v))}
                for row in X.to_dict("records")]

    def fit(self, X: pd.DataFrame, y: Any) -> RiverEstimator:
        model = self._new_model()
        for row, target in zip(self._rows(X), y, strict=True):
            model.learn_one(row, target)
        self.model_ = model
        if self.task == "classification":
            self.classes_ = np.array(sorted({str(label) for label in y}), dtype=object)
        return self

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        predictions = [self.model_.predict_one(row) for row in self._rows(X)]
        if self.task == "classification":
            fallback = self.classes_[0]
            return np.array([fallback if p is None else p for p in predictions], dtype=object)
        return np.array([0.0 if p is None else p for p in predictions], dtype=float)

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        if self.task != "classification":
            raise AttributeError("predict_proba is only defined for classification")
        probabilities = [self.model_.predict_proba_one(row) for row in self._rows(X)]
        return np.array([[p.get(label, 0.0) for label in self.classes_] for p in probabilities], dtype=float)


def river_trainer(frame: pd.DataFrame, spec: TrainingSpec) -> RiverEstimator:
    """An online river model trained in time order (``spec.params``: ``grace_period``)."""
    estimator = RiverEstimator(task=spec.task, seed=spec.seed, **dict(spec.params))
    return estimator.fit(model_inputs(frame, spec.features), frame[target_column(spec.task)].tolist())


def auto_trainer(frame: pd.DataFrame, spec: TrainingSpec) -> Any:
    """`ranking_trainer` for ranking, `sklearn_trainer` otherwise: one setting serves every model."""
    return ranking_trainer(frame, spec) if spec.task == "ranking" else sklearn_trainer(frame, spec)
