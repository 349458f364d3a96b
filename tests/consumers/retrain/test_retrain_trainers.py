"""Built-in trainers on seeded data: each learns more than the serving model knew, and the loader."""

from __future__ import annotations

import pickle

import pytest
from retrain_helpers import classification_events, ranking_events, regression_events

from driftline.consumers.retrain.data import build_frame, feature_columns, infer_task, time_split
from driftline.consumers.retrain.evaluation import evaluate, serving_metrics
from driftline.consumers.retrain.trainers import (
    TrainingSpec,
    load_trainer,
    ranking_trainer,
    river_trainer,
    sklearn_trainer,
)
from driftline.stream.performance import HIGHER_IS_BETTER, PRIMARY_METRIC


def prepared(events, **spec):  # type: ignore[no-untyped-def]
    task = infer_task(events)
    frame = build_frame(events, task)
    train, holdout = time_split(frame, 0.2, task=task)
    metric = PRIMARY_METRIC[task]
    return train, holdout, TrainingSpec(task, feature_columns(frame), metric, HIGHER_IS_BETTER[metric], **spec)


@pytest.mark.parametrize("trainer", [sklearn_trainer, river_trainer])
def test_classification_beats_the_serving_predictions(trainer) -> None:  # type: ignore[no-untyped-def]
    train, holdout, spec = prepared(classification_events(1500, serving_noise=0.35))
    model = trainer(train, spec)
    metrics = evaluate(model, holdout, spec.task, spec.features)
    assert metrics["accuracy"] > serving_metrics(holdout, spec.task)["accuracy"] + 0.03
    assert 0.5 < metrics["roc_auc"] <= 1.0  # probabilities of the positive class were used
    assert list(pickle.loads(pickle.dumps(model)).predict(holdout[spec.features].head(3))) == list(
        model.predict(holdout[spec.features].head(3)))


@pytest.mark.parametrize("trainer", [sklearn_trainer, river_trainer])
def test_regression_beats_the_serving_predictions(trainer) -> None:  # type: ignore[no-untyped-def]
    train, holdout, spec = prepared(regression_events(1500))
    metrics = evaluate(trainer(train, spec), holdout, spec.task, spec.features)
    assert metrics["rmse"] < serving_metrics(holdout, spec.task)["rmse"]


def test_ranking_trainer_learns_the_order() -> None:
    train, holdout, spec = prepared(ranking_events(250))
    metrics = evaluate(ranking_trainer(train, spec), holdout, spec.task, spec.features)
    assert metrics["ndcg@5"] > serving_metrics(holdout, spec.task)["ndcg@5"] + 0.05
    assert set(metrics) == {"ndcg@3", "ndcg@5", "mrr", "map"}


def test_optuna_tuning_is_seeded_and_bounded() -> None:
    train, _holdout, spec = prepared(classification_events(500), optuna_trials=2, optuna_timeout_s=30, seed=7)
    first = sklearn_trainer(train, spec)
    second = sklearn_trainer(train, spec)
    assert first.named_steps["model"].get_params() == second.named_steps["model"].get_params()
    assert first.named_steps["model"].learning_rate != 0.1  # a tuned value, not the default


def test_trainers_refuse_the_wrong_task() -> None:
    train, _holdout, spec = prepared(ranking_events(20))
    with pytest.raises(ValueError, match="classification and regression"):
        sklearn_trainer(train, spec)


def test_load_trainer() -> None:
    assert load_trainer("driftline.consumers.retrain.trainers:ranking_trainer") is ranking_trainer
    for bad in ("no_colon", "driftline.consumers.retrain.trainers:missing", "driftline.consumers.retrain:__all__"):
        with pytest.raises(ValueError):
            load_trainer(bad)
