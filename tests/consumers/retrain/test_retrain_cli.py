"""The registry commands and the one-shot retrain, through the CLI, on the real broker and MLflow."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pandas as pd
import pytest
from mlflow.tracking import MlflowClient
from retrain_helpers import (
    classification_events,
    make_alert,
    make_config,
    produce,
    read_all,
    unique_model,
    write_config,
)
from typer.testing import CliRunner

from driftline.cli import app
from driftline.consumers.retrain.app import build_handler
from driftline.consumers.retrain.trainers import sklearn_trainer
from driftline.local.mlflow_server import LocalMlflow
from driftline.schemas.codec import encode
from driftline.schemas.events import ModelEvent
from driftline.stream.reference import build_reference

pytestmark = pytest.mark.integration
runner = CliRunner()


def invoke(*args: str) -> str:
    result = runner.invoke(app, list(args))
    assert result.exit_code == 0, result.output
    return result.output


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def two_versions(kafka, mlflow_server: str, topic_prefix: str, tmp_path: Path) -> tuple[str, Path]:
    """A model whose v1 (one feature) was replaced as champion by v2 (all features)."""
    import dataclasses

    cfg = make_config(kafka.bootstrap, mlflow_server, topic_prefix)
    model = unique_model("churn")
    events = classification_events(800, model=model, serving_noise=0.45)
    produce(kafka.bootstrap, cfg.kafka.topic("labeled"), events)
    handler = build_handler(cfg, owner="test")
    handler.trainer = lambda frame, spec: sklearn_trainer(frame, dataclasses.replace(spec, features=["x2"]))
    assert handler.handle(make_alert(model, events, salt="1")).outcome == "promoted"
    handler.trainer = sklearn_trainer
    assert handler.handle(make_alert(model, events, salt="2")).outcome == "promoted"
    return model, write_config(tmp_path / "driftline.toml", kafka.bootstrap, mlflow_server, topic_prefix)


def test_models_commands(two_versions: tuple[str, Path], kafka, mlflow_server: str, topic_prefix: str) -> None:
    model, config = two_versions
    client = MlflowClient(mlflow_server)
    listed = invoke("models", "list", "-c", str(config))
    assert model in listed
    shown = invoke("models", "show", model, "-c", str(config))
    assert "champion" in shown and "Archived" in shown and "accuracy=" in shown
    compared = invoke("models", "compare", model, "1", "2", "-c", str(config))
    assert "accuracy" in compared and "v2" in compared

    assert "v1 is champion again" in invoke("models", "rollback", model, "-c", str(config))
    assert client.get_model_version_by_alias(model, "champion").version == "1"
    decisions = [ModelEvent.model_validate_json(v) for v in read_all(kafka.bootstrap, f"{topic_prefix}models")]
    assert [(d.action, d.version, d.previous_champion) for d in decisions] == [("rolled_back", "1", "2")]
    assert len(read_all(kafka.bootstrap, f"{topic_prefix}references")) == 1  # v1's reference, back in force

    invoke("models", "promote", model, "2", "-c", str(config))
    assert client.get_model_version_by_alias(model, "champion").version == "2"
    assert client.get_model_version(model, "1").current_stage == "Archived"
    invoke("models", "archive", model, "2", "-c", str(config), "--no-publish")
    assert client.get_model_version(model, "2").current_stage == "Archived"
    assert client.get_registered_model(model).aliases == {}


def test_registry_backup_restores_into_a_fresh_server(two_versions: tuple[str, Path], tmp_path: Path) -> None:
    model, config = two_versions
    backup = tmp_path / "registry.json"
    invoke("registry", "backup", str(backup), "-c", str(config), "--model", model)
    document = json.loads(backup.read_text())
    assert [m["name"] for m in document["models"]] == [model]

    fresh = LocalMlflow(data_dir=tmp_path / "fresh", port=free_port())
    fresh.start()
    try:
        assert "restored 1 model(s), 2 version(s)" in invoke("registry", "restore", str(backup), "-c", str(config),
                                                               "--tracking-uri", fresh.tracking_uri)
        again = tmp_path / "again.json"
        invoke("registry", "backup", str(again), "--tracking-uri", fresh.tracking_uri, "-c", str(config))
    finally:
        fresh.stop()
    restored = json.loads(again.read_text())

    def comparable(doc: dict) -> list:
        """What a restore keeps: everything but where the files are and the source run id (now a tag)."""
        moved = {"run_id", "source", "artifact_uri"}
        return [{**m, "versions": [
            {**{k: x for k, x in v.items() if k not in moved},
             "tags": {k: t for k, t in v["tags"].items() if k != "driftline.source_run_id"}}
            for v in m["versions"]]} for m in doc["models"]]

    assert comparable(restored) == comparable(document)
    assert [v["tags"]["driftline.source_run_id"] for v in restored["models"][0]["versions"]] == [
        v["run_id"] for v in document["models"][0]["versions"]]
    assert restored["models"][0]["aliases"] == {"champion": "2"}
    assert [v["stage"] for v in restored["models"][0]["versions"]] == ["Archived", "Production"]


def test_one_shot_retrain_from_the_latest_alert(kafka, mlflow_server: str, topic_prefix: str, tmp_path: Path) -> None:
    cfg = make_config(kafka.bootstrap, mlflow_server, topic_prefix)
    config = write_config(tmp_path / "driftline.toml", kafka.bootstrap, mlflow_server, topic_prefix)
    model = unique_model("churn")
    events = classification_events(700, model=model, serving_noise=0.4)
    produce(kafka.bootstrap, cfg.kafka.topic("labeled"), events)
    produce(kafka.bootstrap, cfg.kafka.topic("alerts"), [make_alert(model, events)])  # drift ratio 0.5

    calm = invoke("retrain", "--model", model, "-c", str(config), "--drift-threshold", "0.6")
    assert "no_drift" in calm
    output = invoke("retrain", "--model", model, "-c", str(config), "--drift-threshold", "0.3",
                    "--min-accuracy", "0.6", "--summary")
    assert "promoted" in output and "accuracy" in output and "0.500" in output
    decisions = [ModelEvent.model_validate_json(v) for v in read_all(kafka.bootstrap, cfg.kafka.topic("models"))]
    assert [d.action for d in decisions] == ["promoted"]


def test_one_shot_retrain_computes_drift_against_the_reference(
    kafka, mlflow_server: str, topic_prefix: str, tmp_path: Path
) -> None:
    cfg = make_config(kafka.bootstrap, mlflow_server, topic_prefix)
    config = write_config(tmp_path / "driftline.toml", kafka.bootstrap, mlflow_server, topic_prefix)
    model = unique_model("churn")
    baseline = classification_events(1500, model=model, seed=1)
    reference = build_reference(
        pd.DataFrame([{**e.features, "prediction": e.prediction.label, "outcome": e.outcome} for e in baseline]),
        model=model, model_version="1", task="classification",
    )
    produce(kafka.bootstrap, cfg.kafka.topic("references"), [reference])
    shifted = classification_events(900, model=model, seed=2, shift=2.0)  # x1 moved by two standard deviations
    produce(kafka.bootstrap, cfg.kafka.topic("labeled"), shifted)
    assert encode(reference)

    output = invoke("retrain", "--model", model, "-c", str(config), "--drift-threshold", "0.2", "--lookback-s", "600",
                    "--summary")
    assert "computed" in output, output
    assert "promoted" in output or "challenger" in output, output
