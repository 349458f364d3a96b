"""Seeded labeled data, configs and Kafka helpers for the retrain tests."""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import numpy as np
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from driftline.config import DriftlineConfig, load_config
from driftline.schemas.codec import encode
from driftline.schemas.events import (
    ClassPrediction,
    DriftAlert,
    FeatureResult,
    LabeledEvent,
    RankedItem,
    RankingOutcome,
    RankingPrediction,
    deterministic_id,
)


def classification_events(
    n: int, *, model: str = "churn", start_ts: float = 1_700_000_000.0, seed: int = 0, shift: float = 0.0,
    serving_noise: float = 0.35,
) -> list[LabeledEvent]:
    """A churn-like binary task; the serving model is right about (1 - serving_noise) of the time."""
    rng = np.random.default_rng(seed)
    events = []
    for i in range(n):
        x1, x2 = rng.normal(shift, 1.0), rng.normal(0.0, 1.0)
        plan = str(rng.choice(["basic", "pro", "team"]))
        logit = 1.8 * x1 - 1.2 * x2 + (0.8 if plan == "basic" else -0.4)
        label = "yes" if rng.random() < 1 / (1 + np.exp(-logit)) else "no"
        served = label if rng.random() > serving_noise else ("no" if label == "yes" else "yes")
        events.append(LabeledEvent(
            event_id=f"{model}-{seed}-{i}", ts=start_ts + i, outcome_ts=start_ts + i + 60, model=model,
            model_version="1", request_id=f"r-{seed}-{i}",
            features={"x1": float(x1), "x2": float(x2), "plan": plan, "x3": None if i % 17 == 0 else float(i % 5)},
            prediction=ClassPrediction(label=served), outcome=label,
        ))
    return events


def regression_events(n: int, *, model: str = "eta", start_ts: float = 1_700_000_000.0, seed: int = 0
                      ) -> list[LabeledEvent]:
    rng = np.random.default_rng(seed)
    events = []
    for i in range(n):
        distance, load = rng.uniform(1, 20), rng.uniform(0, 1)
        truth = 3.0 * distance + 10 * load + rng.normal(0, 1)
        events.append(LabeledEvent(
            event_id=f"{model}-{seed}-{i}", ts=start_ts + i, outcome_ts=start_ts + i + 60, model=model,
            model_version="1", request_id=f"r-{seed}-{i}", features={"distance": float(distance), "load": float(load)},
            prediction=float(3.0 * distance), outcome=float(truth),
        ))
    return events


def ranking_events(n_races: int, *, model: str = "races", start_ts: float = 1_700_000_000.0, seed: int = 0,
                   runners: int = 6) -> list[LabeledEvent]:
    """Races: per-runner features as ``runner.<runner>.<feature>``, relevance = runners - finishing position."""
    rng = np.random.default_rng(seed)
    events = []
    for race in range(n_races):
        ids = [f"h{j}" for j in range(runners)]
        form = rng.normal(size=runners)
        weight = rng.uniform(50, 60, size=runners)
        strength = 2.0 * form - 0.2 * (weight - 55) + rng.normal(scale=0.7, size=runners)
        order = np.argsort(-strength)
        relevance = {ids[j]: float(runners - int(np.where(order == j)[0][0]) - 1) for j in range(runners)}
        served = rng.normal(size=runners) + 0.3 * form
        features: dict[str, float | str | None] = {"going": str(rng.choice(["firm", "soft"]))}
        for j, runner in enumerate(ids):
            features[f"runner.{runner}.form"] = float(form[j])
            features[f"runner.{runner}.weight"] = float(weight[j])
        events.append(LabeledEvent(
            event_id=f"{model}-{seed}-{race}", ts=start_ts + race, outcome_ts=start_ts + race + 600, model=model,
            model_version="1", request_id=f"race-{seed}-{race}", features=features,
            prediction=RankingPrediction(group_id=f"race-{seed}-{race}",
                                         items=[RankedItem(item_id=r, score=float(s)) for r, s in zip(ids, served,
                                                                                                      strict=True)]),
            outcome=RankingOutcome(group_id=f"race-{seed}-{race}", relevance=relevance),
        ))
    return events


# --- Kafka and MLflow helpers --------------------------------------------------------------

RETRAIN_TOPICS = ("labeled", "alerts", "models", "references", "dlq")


def make_config(bootstrap: str, tracking_uri: str, prefix: str, **retrain: object) -> DriftlineConfig:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    names = [f"{prefix}{name}" for name in RETRAIN_TOPICS]
    existing = set(admin.list_topics(timeout=30).topics)
    futures = admin.create_topics([NewTopic(n, 1, 1) for n in names if n not in existing])
    for future in futures.values():
        future.result(timeout=30)
    settings = {"tracking_uri": tracking_uri, "experiment_prefix": f"{prefix}", "cooldown_s": 0.0,
                "min_samples": 200, "poll_timeout_s": 0.2, "mlflow_retry_initial_s": 0.5,
                "mlflow_retry_max_s": 2.0, "read_timeout_s": 30.0, "train_threads": 1, **retrain}
    return load_config(None, kafka={"bootstrap_servers": bootstrap, "topic_prefix": prefix, "partitions": 1},
                       retrain=settings, metrics={"host": "127.0.0.1", "retrain_port": 0})


def unique_model(stem: str) -> str:
    return f"{stem}-{uuid.uuid4().hex[:8]}"


def produce(bootstrap: str, topic: str, events: list, key_of=lambda e: e.model) -> None:  # type: ignore[no-untyped-def]
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 20})
    for event in events:
        producer.produce(topic, encode(event), key=key_of(event).encode())
    assert producer.flush(30) == 0


def read_all(bootstrap: str, topic: str, timeout_s: float = 10.0) -> list[bytes]:
    """Every record value of a one-partition topic, from the start to the current end."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"reader-{uuid.uuid4().hex}",
                         "enable.auto.commit": False, "auto.offset.reset": "earliest"})
    try:
        _low, high = consumer.get_watermark_offsets(TopicPartition(topic, 0), timeout=timeout_s)
        consumer.assign([TopicPartition(topic, 0, 0)])
        values: list[bytes] = []
        deadline = time.monotonic() + timeout_s
        while len(values) < high and time.monotonic() < deadline:
            message = consumer.poll(0.5)
            if message is not None and message.error() is None:
                values.append(message.value())
        return values
    finally:
        consumer.close()


def make_alert(model: str, events: list[LabeledEvent], *, kind: str = "data", action: str = "retrain",
               salt: str = "") -> DriftAlert:
    window_end = max(e.ts for e in events) + 1
    return DriftAlert(
        alert_id=deterministic_id(model, "1", window_end, kind, salt), ts=window_end, model=model,
        model_version="1", kind=kind, window_start=window_end - 600, window_end=window_end,
        results=[FeatureResult(feature="x1", test="ks", statistic=0.31, p_value=1e-9, p_adjusted=1e-8, score=0.4,
                               threshold=0.05, drifted=True, n_reference=1000, n_current=600)],
        drift_ratio=0.5, severity="critical", n_current=600, n_reference=1000, reference_id="ref-1", action=action,
    )


def write_config(path: Path, bootstrap: str, tracking_uri: str, prefix: str, **retrain: object) -> Path:
    """A driftline.toml for CLI tests (retrain overrides as TOML scalars)."""
    lines = ["[kafka]", f'bootstrap_servers = "{bootstrap}"', f'topic_prefix = "{prefix}"', "partitions = 1", "",
             "[retrain]", f'tracking_uri = "{tracking_uri}"', f'experiment_prefix = "{prefix}"', "cooldown_s = 0.0",
             "min_samples = 200", "train_threads = 1"]
    lines += [f"{key} = {value!r}".replace("'", '"') for key, value in retrain.items()]
    path.write_text("\n".join(lines) + "\n")
    return path
