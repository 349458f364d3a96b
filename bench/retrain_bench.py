"""Alert to registered model version: how long the retrain worker takes on demo-like data.

For each of the simulator's models (churn: classification, eta: regression, race: ranking)
the bench publishes ``--rows`` labeled events (the simulator's wire form) on a fresh topic
set, publishes one drift alert, runs the real worker (Kafka consumer group, MLflow runs and
registry) until it commits the alert, and reports, from the alert's publication:

- registered: the new model version's creation time in MLflow (goal under 60 s);
- decided: the decision's arrival on the `models` topic.

Needs a broker and an MLflow server (``driftline kafka start`` / ``driftline mlflow start``)::

    .venv/bin/python bench/retrain_bench.py --bootstrap 127.0.0.1:9092 --tracking-uri http://127.0.0.1:5000
"""

from __future__ import annotations

import argparse
import os
import platform
import threading
import time
import uuid

from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic
from mlflow.tracking import MlflowClient
from rich.console import Console
from rich.table import Table

from driftline.config import load_config
from driftline.consumers.common.metrics import Metrics
from driftline.consumers.common.signals import StopFlag
from driftline.consumers.retrain.app import run_worker
from driftline.producers.simulator import Simulator
from driftline.schemas.codec import encode
from driftline.schemas.events import DriftAlert, FeatureResult, ModelEvent, deterministic_id

TOPICS = ("labeled", "alerts", "models", "references", "dlq")


def bench_model(model: str, rows: int, bootstrap: str, tracking_uri: str, threads: int) -> dict[str, object]:
    prefix = f"bench{uuid.uuid4().hex[:8]}."
    admin = AdminClient({"bootstrap.servers": bootstrap})
    for future in admin.create_topics([NewTopic(f"{prefix}{t}", 1, 1) for t in TOPICS]).values():
        future.result(timeout=30)
    name = f"{model}-{uuid.uuid4().hex[:6]}"
    events = [e.model_copy(update={"model": name}) for e in Simulator([model], seed=11).reference_events(model, rows)]
    cfg = load_config(None, kafka={"bootstrap_servers": bootstrap, "topic_prefix": prefix, "partitions": 1},
                      retrain={"tracking_uri": tracking_uri, "experiment_prefix": prefix, "cooldown_s": 0.0,
                               "min_samples": 100, "train_threads": threads},
                      metrics={"host": "127.0.0.1", "retrain_port": 0})
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 50})
    for event in events:
        producer.produce(cfg.kafka.topic("labeled"), encode(event), key=name.encode())
    producer.flush(60)

    stop, committed = StopFlag(), []
    worker = threading.Thread(target=lambda: committed.append(
        run_worker(cfg, stop=stop, max_alerts=1, metrics=Metrics("bench"))), daemon=True)
    worker.start()
    time.sleep(3.0)  # let the worker join its group, so the figure is the handling, not the start-up
    window_end = max(e.ts for e in events) + 1
    alert = DriftAlert(
        alert_id=deterministic_id("bench", name, window_end), ts=window_end, model=name, model_version="1",
        kind="data", window_start=window_end - 3600, window_end=window_end,
        results=[FeatureResult(feature="f", test="ks", statistic=0.3, p_value=1e-6, threshold=0.05, drifted=True,
                               n_reference=1000, n_current=1000)],
        drift_ratio=0.5, severity="critical", n_current=1000, n_reference=1000, reference_id="bench", action="retrain",
    )
    published_at = time.time()
    producer.produce(cfg.kafka.topic("alerts"), encode(alert), key=name.encode())
    producer.flush(30)
    decided_at, decision = _await_decision(bootstrap, cfg.kafka.topic("models"))
    worker.join(timeout=300)
    version = MlflowClient(tracking_uri).get_model_version(name, decision.version)
    return {
        "model": model, "task": {"churn": "classification", "eta": "regression", "race": "ranking"}[model],
        "rows": len(events), "registered_s": version.creation_timestamp / 1000.0 - published_at,
        "decided_s": decided_at - published_at, "decision": decision.action,
        "metric": {k: round(v, 4) for k, v in decision.metrics.items() if k in ("accuracy", "rmse", "ndcg@5")},
    }


def _await_decision(bootstrap: str, topic: str, timeout_s: float = 300.0) -> tuple[float, ModelEvent]:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"bench-{uuid.uuid4().hex}",
                         "auto.offset.reset": "earliest"})
    consumer.assign([TopicPartition(topic, 0, 0)])
    try:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            message = consumer.poll(0.05)
            if message is not None and message.error() is None:
                return time.time(), ModelEvent.model_validate_json(message.value())
        raise TimeoutError(f"no decision on {topic} within {timeout_s} s")
    finally:
        consumer.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bootstrap", default=os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092"))
    parser.add_argument("--tracking-uri", default=os.environ.get("MLFLOW_TRACKING_URI", "http://127.0.0.1:5000"))
    parser.add_argument("--rows", type=int, default=5000, help="labeled events per model (races: groups)")
    parser.add_argument("--threads", type=int, default=1, help="training threads (retrain.train_threads); 0: all")
    parser.add_argument("--models", nargs="+", default=["churn", "eta", "race"])
    args = parser.parse_args()
    os.environ.setdefault("MLFLOW_ENABLE_TELEMETRY", "false")

    table = Table(title=f"retrain: alert -> registered version ({platform.machine()}, {os.cpu_count()} cpu, "
                        f"train_threads={args.threads or 'all'}, {args.rows} rows)")
    for column in ("model", "task", "labeled rows", "alert->registered (s)", "alert->decision (s)", "decision",
                   "holdout"):
        table.add_column(column)
    for model in args.models:
        row = bench_model(model, args.rows, args.bootstrap, args.tracking_uri, args.threads)
        table.add_row(str(row["model"]), str(row["task"]), str(row["rows"]), f"{row['registered_s']:.1f}",
                      f"{row['decided_s']:.1f}", str(row["decision"]), str(row["metric"]))
    Console(width=160).print(table)


if __name__ == "__main__":
    main()
