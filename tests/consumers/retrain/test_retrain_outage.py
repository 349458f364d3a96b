"""MLflow stopped while an alert arrives, then restarted: the alert waits, then gives exactly one run."""

from __future__ import annotations

import socket
import threading
import time
from pathlib import Path

import pytest
from confluent_kafka import Consumer, TopicPartition
from mlflow.tracking import MlflowClient
from retrain_helpers import classification_events, make_alert, make_config, produce, unique_model

from driftline.consumers.common.metrics import Metrics
from driftline.consumers.common.signals import StopFlag
from driftline.consumers.retrain.app import run_worker
from driftline.local.mlflow_server import LocalMlflow

pytestmark = pytest.mark.integration


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def committed_offset(bootstrap: str, group_id: str, topic: str) -> int:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group_id, "enable.auto.commit": False})
    try:
        return consumer.committed([TopicPartition(topic, 0)], timeout=10)[0].offset
    finally:
        consumer.close()


def wait_for(condition, timeout_s: float) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.2)
    return False


def test_alert_waits_for_mlflow_and_gives_exactly_one_run(
    kafka, topic_prefix: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    server = LocalMlflow(data_dir=tmp_path / "mlflow", port=free_port())
    server.start()
    server.stop()  # down before the alert arrives (the data dir now holds an initialised store)
    cfg = make_config(kafka.bootstrap, server.tracking_uri, topic_prefix)
    model = unique_model("churn")
    events = classification_events(600, model=model)
    produce(kafka.bootstrap, cfg.kafka.topic("labeled"), events)
    alert = make_alert(model, events)

    metrics, stop, committed = Metrics("retrain-test"), StopFlag(), []
    worker = threading.Thread(
        target=lambda: committed.append(run_worker(cfg, stop=stop, max_alerts=1, metrics=metrics)), daemon=True
    )
    worker.start()
    try:
        produce(kafka.bootstrap, cfg.kafka.topic("alerts"), [alert])
        assert wait_for(lambda: (metrics.registry.get_sample_value("driftline_mlflow_errors_total") or 0) >= 2, 30)
        assert metrics.registry.get_sample_value("driftline_mlflow_up") == 0
        assert committed_offset(kafka.bootstrap, cfg.retrain.group_id, cfg.kafka.topic("alerts")) < 0  # not committed
        assert worker.is_alive()

        server.start()
        worker.join(timeout=90)
        assert committed == [1]
    finally:
        stop.set()
        worker.join(timeout=10)
        try:
            client = MlflowClient(server.tracking_uri)
            experiment = client.get_experiment_by_name(f"{cfg.retrain.experiment_prefix}{model}")
            runs = client.search_runs([experiment.experiment_id],
                                      filter_string=f"tags.`driftline.alert_id` = '{alert.alert_id}'")
            versions = client.search_model_versions(f"name = '{model}'")
        finally:
            server.stop()
    assert len(runs) == 1 and runs[0].data.tags["driftline.status"] == "done"
    assert [v.version for v in versions] == ["1"]
    assert metrics.registry.get_sample_value("driftline_mlflow_up") == 1
    assert committed_offset(kafka.bootstrap, cfg.retrain.group_id, cfg.kafka.topic("alerts")) == 1
