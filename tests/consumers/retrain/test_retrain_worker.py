"""The worker on the real broker and MLflow: one alert, one run, one version, one decision."""

from __future__ import annotations

import threading

import mlflow
import mlflow.models
import pandas as pd
import pytest
from confluent_kafka import Producer
from mlflow.tracking import MlflowClient
from retrain_helpers import classification_events, make_alert, produce, read_all, unique_model

from driftline.config import DriftlineConfig
from driftline.consumers.common.metrics import Metrics
from driftline.consumers.common.signals import StopFlag
from driftline.consumers.retrain.app import run_worker
from driftline.schemas.events import ModelEvent
from driftline.stream.reference import build_reference

pytestmark = pytest.mark.integration


def run_in_thread(cfg: DriftlineConfig, max_alerts: int, metrics: Metrics) -> tuple[threading.Thread, StopFlag, list]:
    stop, committed = StopFlag(), []
    thread = threading.Thread(
        target=lambda: committed.append(run_worker(cfg, stop=stop, max_alerts=max_alerts, metrics=metrics)),
        daemon=True,
    )
    thread.start()
    return thread, stop, committed


def runs_of(client: MlflowClient, cfg: DriftlineConfig, model: str, alert_id: str) -> list:
    experiment = client.get_experiment_by_name(f"{cfg.retrain.experiment_prefix}{model}")
    return client.search_runs([experiment.experiment_id], filter_string=f"tags.`driftline.alert_id` = '{alert_id}'")


def test_one_alert_gives_one_run_one_version_one_decision_even_when_redelivered(
    retrain_config: DriftlineConfig, kafka, mlflow_server: str
) -> None:
    cfg = retrain_config
    model = unique_model("churn")
    events = classification_events(1000, model=model, serving_noise=0.4)
    produce(kafka.bootstrap, cfg.kafka.topic("labeled"), events)
    baseline = classification_events(1000, model=model, seed=5, shift=-1.0)
    reference = build_reference(
        pd.DataFrame([{**e.features, "prediction": e.prediction.label, "outcome": e.outcome} for e in baseline]),
        model=model, model_version="1", task="classification",
    )
    produce(kafka.bootstrap, cfg.kafka.topic("references"), [reference])
    alert = make_alert(model, events)
    produce(kafka.bootstrap, cfg.kafka.topic("alerts"), [make_alert(model, events, action="none", salt="x"), alert])
    broken = Producer({"bootstrap.servers": kafka.bootstrap})
    broken.produce(cfg.kafka.topic("alerts"), b"{not json", key=model.encode())
    broken.flush(10)

    metrics = Metrics("retrain-test")
    thread, _stop, committed = run_in_thread(cfg, 3, metrics)
    thread.join(timeout=120)
    assert committed == [3]
    assert read_all(kafka.bootstrap, cfg.kafka.topic("dlq")) == [b"{not json"]
    assert metrics.registry.get_sample_value(
        "driftline_events_rejected_total", {"service": "retrain", "reason": "malformed_json"}) == 1

    client = MlflowClient(mlflow_server)
    runs = runs_of(client, cfg, model, alert.alert_id)
    assert len(runs) == 1
    run = runs[0]
    assert run.data.tags["driftline.drift_kind"] == "data"
    assert run.data.tags["driftline.reference_id"] == "ref-1"
    assert "driftline.data_span" in run.data.tags and "driftline.code_version" in run.data.tags
    assert run.data.metrics["candidate_accuracy"] > 0.7
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"alert.json", "drift_report.md", "drift_report.html", "drift_summary.png", "reference.json"} <= artifacts
    versions = client.search_model_versions(f"name = '{model}'")
    assert [v.version for v in versions] == ["1"]
    assert client.get_model_version_by_alias(model, "champion").version == "1"
    mlflow.set_tracking_uri(mlflow_server)
    logged = mlflow.models.get_model_info(f"models:/{model}/1")
    assert logged.signature is not None and logged.signature.inputs.input_names() == ["plan", "x1", "x2", "x3"]
    assert logged.saved_input_example_info["artifact_path"] == "input_example.json"
    decisions = [ModelEvent.model_validate_json(v) for v in read_all(kafka.bootstrap, cfg.kafka.topic("models"))]
    assert [(d.action, d.version, d.alert_id) for d in decisions] == [("promoted", "1", alert.alert_id)]
    assert len(read_all(kafka.bootstrap, cfg.kafka.topic("references"))) == 2  # the old one, then v1's
    assert metrics.registry.get_sample_value(
        "driftline_retrain_runs_total", {"model": model, "outcome": "promoted"}) == 1
    assert metrics.registry.get_sample_value(
        "driftline_retrain_runs_total", {"model": model, "outcome": "ignored"}) == 1

    # the same alert again (a producer retry or replay): found by its tag, nothing new
    produce(kafka.bootstrap, cfg.kafka.topic("alerts"), [alert])
    thread, _stop, committed = run_in_thread(cfg, 1, metrics)
    thread.join(timeout=60)
    assert committed == [1]
    assert len(runs_of(client, cfg, model, alert.alert_id)) == 1
    assert len(client.search_model_versions(f"name = '{model}'")) == 1
    assert len(read_all(kafka.bootstrap, cfg.kafka.topic("models"))) == 1
    assert metrics.registry.get_sample_value(
        "driftline_retrain_runs_total", {"model": model, "outcome": "duplicate"}) == 1
