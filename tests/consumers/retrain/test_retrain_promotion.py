"""Promotion on the real broker and MLflow: better becomes champion, worse stays challenger, rollback."""

from __future__ import annotations

import dataclasses

import pandas as pd
import pytest
from mlflow.tracking import MlflowClient
from retrain_helpers import classification_events, make_alert, produce, unique_model

from driftline.config import DriftlineConfig
from driftline.consumers.retrain.app import build_handler
from driftline.consumers.retrain.handler import RetrainHandler
from driftline.consumers.retrain.registry import MlflowRegistry
from driftline.consumers.retrain.trainers import TrainingSpec, ranking_trainer, river_trainer, sklearn_trainer
from driftline.producers.simulator import Simulator
from driftline.schemas.events import ModelEvent

pytestmark = pytest.mark.integration


def one_feature_trainer(frame: pd.DataFrame, spec: TrainingSpec):  # type: ignore[no-untyped-def]
    """A deliberately weak model: sees x2 only."""
    return sklearn_trainer(frame, dataclasses.replace(spec, features=["x2"]))


def with_trainer(handler: RetrainHandler, trainer) -> RetrainHandler:  # type: ignore[no-untyped-def]
    return RetrainHandler(handler.settings, handler.registry, handler.source, trainer, owner="test-worker")


def stage(client: MlflowClient, model: str, version: str) -> str:
    return client.get_model_version(model, version).current_stage


def test_better_candidate_is_promoted_worse_stays_challenger_and_rollback_restores(
    retrain_config: DriftlineConfig, kafka, mlflow_server: str
) -> None:
    cfg = retrain_config
    model = unique_model("churn")
    events = classification_events(1000, model=model, serving_noise=0.45)
    produce(kafka.bootstrap, cfg.kafka.topic("labeled"), events)
    base = build_handler(cfg, owner="test-worker")
    weak, strong = with_trainer(base, one_feature_trainer), with_trainer(base, sklearn_trainer)
    client = MlflowClient(mlflow_server)

    first = weak.handle(make_alert(model, events, salt="1"))  # beats the serving predictions (55 %)
    assert (first.outcome, first.version) == ("promoted", "1")
    second = strong.handle(make_alert(model, events, salt="2"))
    assert (second.outcome, second.version) == ("promoted", "2"), second.reason
    assert second.metrics["accuracy"] > second.champion_metrics["accuracy"]
    assert client.get_model_version_by_alias(model, "champion").version == "2"
    assert (stage(client, model, "1"), stage(client, model, "2")) == ("Archived", "Production")

    third = weak.handle(make_alert(model, events, salt="3"))
    assert (third.outcome, third.version) == ("challenger", "3")
    assert "does not beat the champion" in third.reason
    assert client.get_model_version_by_alias(model, "challenger").version == "3"
    assert client.get_model_version_by_alias(model, "champion").version == "2"
    assert stage(client, model, "3") == "Staging"
    event = ModelEvent.model_validate_json(third.outputs[0].value)
    assert (event.action, event.previous_champion) == ("challenger", "2")
    assert [o.topic for o in third.outputs] == ["models"]  # no new reference for a challenger

    restored, demoted = MlflowRegistry(mlflow_server).rollback(model)
    assert (restored, demoted) == ("1", "2")
    assert client.get_model_version_by_alias(model, "champion").version == "1"
    assert (stage(client, model, "1"), stage(client, model, "2")) == ("Production", "Archived")


def test_min_metric_keeps_a_candidate_from_promotion(retrain_config: DriftlineConfig, kafka) -> None:
    cfg = retrain_config.model_copy(update={"retrain": retrain_config.retrain.model_copy(
        update={"min_metric": 0.99, "primary_metric": "accuracy"})})
    model = unique_model("churn")
    events = classification_events(600, model=model)
    produce(kafka.bootstrap, cfg.kafka.topic("labeled"), events)
    result = build_handler(cfg, owner="test-worker").handle(make_alert(model, events))
    assert result.outcome == "challenger"
    assert "misses the minimum 0.9900" in result.reason


def test_an_interrupted_run_and_its_version_are_replaced(retrain_config: DriftlineConfig, kafka,
                                                         mlflow_server: str) -> None:
    model = unique_model("churn")
    events = classification_events(500, model=model)
    produce(kafka.bootstrap, retrain_config.kafka.topic("labeled"), events)
    alert = make_alert(model, events)
    handler = build_handler(retrain_config, owner="test-worker")
    registry = handler.registry
    crashed = registry.start_run(model, "crashed", {"driftline.alert_id": alert.alert_id}, {})
    registry.ensure_registered_model(model)
    registry.client.create_model_version(model, f"runs:/{crashed}/model", run_id=crashed)

    result = handler.handle(alert)
    assert result.outcome == "promoted" and result.run_id != crashed
    client = MlflowClient(mlflow_server)
    assert [v.version for v in client.search_model_versions(f"name = '{model}'")] == ["2"]
    assert registry.find_run(model, alert.alert_id).run_id == result.run_id


@pytest.mark.parametrize(("template", "trainer"), [("race", ranking_trainer), ("churn", river_trainer)])
def test_ranking_and_river_champions_load_back_from_the_registry(
    retrain_config: DriftlineConfig, kafka, template: str, trainer
) -> None:  # type: ignore[no-untyped-def]
    model = unique_model(template)
    events = [e.model_copy(update={"model": model})
              for e in Simulator([template], seed=4).reference_events(template, 400)]
    produce(kafka.bootstrap, retrain_config.kafka.topic("labeled"), events)
    handler = with_trainer(build_handler(retrain_config, owner="test-worker"), trainer)
    first = handler.handle(make_alert(model, events, salt="1"))
    handler.registry.promote(model, first.version)  # whatever the policy said: v1 is the champion to load
    second = handler.handle(make_alert(model, events, salt="2"))
    assert second.version == "2"
    assert second.champion_metrics == pytest.approx(first.metrics)  # loaded from MLflow, same holdout


def test_the_registry_lease_keeps_a_second_worker_out_until_it_expires(mlflow_server: str) -> None:
    from driftline.consumers.retrain.registry import LeaseBusy

    registry = MlflowRegistry(mlflow_server)
    model = unique_model("leased")
    registry.acquire_lease(model, "worker-a", now_ts=1000.0, lease_s=60.0)
    registry.acquire_lease(model, "worker-a", now_ts=1010.0, lease_s=60.0)  # its own lease: renewed
    with pytest.raises(LeaseBusy, match="worker-a"):
        registry.acquire_lease(model, "worker-b", now_ts=1020.0, lease_s=60.0)
    registry.acquire_lease(model, "worker-b", now_ts=1071.0, lease_s=60.0)  # expired: taken over
    registry.release_lease(model, "worker-a")  # not the holder: no effect
    with pytest.raises(LeaseBusy):
        registry.acquire_lease(model, "worker-a", now_ts=1080.0, lease_s=60.0)
    registry.release_lease(model, "worker-b")
    registry.acquire_lease(model, "worker-a", now_ts=1081.0, lease_s=60.0)
