"""The A/B analyzer against the real broker: experiment + labeled events in, a conclusion out."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest
import requests
from confluent_kafka import Consumer, Producer

from driftline.config import load_config
from driftline.consumers.ab.app import ABAnalyzer
from driftline.consumers.common.http import MetricsServer
from driftline.consumers.common.signals import StopFlag
from driftline.schemas.codec import encode
from driftline.schemas.events import ABResult, ClassPrediction, Experiment, LabeledEvent, VariantSpec
from driftline.topics import ensure_topics

pytestmark = pytest.mark.integration


def test_analyzer_concludes_for_the_better_arm(kafka, topic_prefix) -> None:
    cfg = load_config(
        kafka={"bootstrap_servers": kafka.bootstrap, "topic_prefix": topic_prefix, "partitions": 2},
        ab={"publish_interval_s": 0.5},
    )
    ensure_topics(cfg.kafka)
    rng = np.random.default_rng(7)
    producer = Producer(cfg.kafka.client_config())
    experiment = Experiment(
        experiment_id="exp-ab", ts=1000.0, model="churn", metric="accuracy", min_samples_per_variant=400,
        variants=[VariantSpec(name="control", model_version="1", traffic=0.5),
                  VariantSpec(name="treatment", model_version="2", traffic=0.5)],
    )
    producer.produce(cfg.kafka.topic("experiments"), encode(experiment), key=b"exp-ab")
    for i in range(1000):
        variant, p_correct = ("control", 0.75) if i % 2 else ("treatment", 0.88)
        event = LabeledEvent(
            event_id=f"l{i}", ts=1000.0 + i, outcome_ts=1001.0 + i, model="churn",
            model_version="1" if variant == "control" else "2", request_id=f"r{i}", features={"x": float(i)},
            prediction=ClassPrediction(label="stay"), outcome="stay" if rng.random() < p_correct else "churn",
            variant=variant,
        )
        producer.produce(cfg.kafka.topic("labeled"), encode(event), key=b"churn")
    producer.produce(cfg.kafka.topic("labeled"), b"{not json", key=b"churn")
    assert producer.flush(10) == 0

    analyzer = ABAnalyzer(cfg)
    stop = StopFlag()
    with MetricsServer(analyzer.metrics.registry, host="127.0.0.1", port=0) as server:
        worker = threading.Thread(target=analyzer.run, args=(stop,), kwargs={"timeout_s": 60})
        worker.start()
        consumer = Consumer(cfg.kafka.client_config(**{"group.id": "t-ab", "auto.offset.reset": "earliest"}))
        consumer.subscribe([cfg.kafka.topic("ab-results")])
        final: ABResult | None = None
        deadline = time.monotonic() + 45
        while final is None and time.monotonic() < deadline:
            message = consumer.poll(0.5)
            if message is not None and not message.error():
                result = ABResult.model_validate_json(message.value())
                if result.conclusion != "insufficient_data":
                    final = result
        consumer.close()
        body = requests.get(f"http://127.0.0.1:{server.port}/metrics", timeout=5).text
        stop.set()
        worker.join(30)

    assert final is not None, "no concluded A/B result within 45 s"
    assert final.conclusion == "significant"
    assert final.winner == "treatment"
    assert {v.name: v.n for v in final.variants} == {"control": 500, "treatment": 500}
    assert 'driftline_ab_p_value{experiment="exp-ab"}' in body
    assert 'driftline_events_rejected_total{reason="malformed_json",service="ab"} 1.0' in body
