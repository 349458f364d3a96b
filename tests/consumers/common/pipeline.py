"""Helpers for the end-to-end tests of ingest and monitor on the real broker.

A `Pipeline` is one driftline topic set under a unique prefix with short event-time windows
(panes of 10 s, windows of 60 s every 30 s); it feeds the simulator's stream into
`predictions`/`outcomes`, publishes reference profiles, and reads outputs back
(``read_committed``, as any downstream consumer would).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from confluent_kafka import TopicPartition
from pydantic import BaseModel

from driftline.config import DriftlineConfig, load_config
from driftline.consumers.common.http import MetricsServer
from driftline.consumers.common.kafka import read_to_end
from driftline.consumers.common.references import publish_profile
from driftline.consumers.ingest.app import IngestApp, IngestSummary
from driftline.consumers.monitor.app import MonitorApp, MonitorSummary
from driftline.producers.client import DriftlineProducer
from driftline.producers.publish import publish
from driftline.producers.scenarios import DriftScenario
from driftline.producers.simulator import ModelSpec, Simulator
from driftline.schemas.codec import RawMessage, decode_one
from driftline.schemas.events import DriftAlert
from driftline.stream.reference import build_reference
from driftline.topics import ensure_topics

SHIFT_AT_S = 300.0
WINDOW_S = 60.0
TASKS = {"a": "classification", "b": "regression"}
MAX_PAYLOAD_BYTES = 8192

SECTIONS: dict[str, dict[str, Any]] = {
    "ingest": {"pane_s": 10.0, "allowed_lateness_s": 10.0, "commit_interval_s": 0.5, "poll_timeout_s": 0.2,
               "max_label_delay_s": 3600.0, "max_payload_bytes": MAX_PAYLOAD_BYTES, "session_timeout_s": 6.0,
               "transaction_timeout_s": 10.0, "idle_after_s": 0.5},
    "monitor": {"pane_s": 10.0, "allowed_lateness_s": 10.0, "window_s": 60.0, "step_s": 30.0, "min_samples": 100,
                "hysteresis_windows": 2, "concept_drop_threshold": 0.1,
                "commit_interval_s": 0.5, "poll_timeout_s": 0.2, "cooldown_s": 0.0,
                "session_timeout_s": 6.0, "transaction_timeout_s": 10.0},
}


@dataclass
class Pipeline:
    bootstrap: str
    prefix: str
    partitions: int = 2
    run: str = field(default_factory=lambda: uuid.uuid4().hex[:8])

    def sections(self, **extra: dict[str, Any]) -> dict[str, dict[str, Any]]:
        sections: dict[str, dict[str, Any]] = {
            "kafka": {"bootstrap_servers": self.bootstrap, "topic_prefix": self.prefix, "partitions": self.partitions},
            "ingest": {**SECTIONS["ingest"], "group_id": f"ingest-{self.run}"},
            "monitor": {**SECTIONS["monitor"], "group_id": f"monitor-{self.run}"},
            "metrics": {"host": "127.0.0.1", "ingest_port": 0, "monitor_port": 0},
        }
        for name, values in extra.items():
            sections[name] = {**sections.get(name, {}), **values}
        return sections

    def config(self, **extra: dict[str, Any]) -> DriftlineConfig:
        return load_config(None, **self.sections(**extra))

    def write_config(self, path: Path, **extra: dict[str, Any]) -> Path:
        """The same configuration as a TOML file, for `driftline ingest --config` subprocesses."""
        lines: list[str] = []
        for section, values in self.sections(**extra).items():
            lines.append(f"[{section}]")
            for key, value in values.items():
                lines.append(f"{key} = {value!r}" if not isinstance(value, str) else f'{key} = "{value}"')
        path.write_text("\n".join(lines) + "\n")
        return path

    def create_topics(self) -> None:
        ensure_topics(self.config().kafka)

    def delete_topics(self) -> None:
        """Remove every topic of this set (driftline topics and the services' changelogs)."""
        from confluent_kafka.admin import AdminClient

        admin = AdminClient({"bootstrap.servers": self.bootstrap})
        ours = [t for t in admin.list_topics(timeout=10).topics if t.startswith(self.prefix)]
        if ours:
            for future in admin.delete_topics(ours).values():
                future.result(timeout=30)

    def publish_references(self, sim: Simulator, tasks: dict[str, str], n: int = 2000) -> None:
        settings = self.config().kafka
        for model, task in tasks.items():
            profile = build_reference(sim.reference_frame(model, n), model=model, model_version="1", task=task)
            publish_profile(settings, profile)

    def feed(self, sim: Simulator, n_predictions: int) -> int:
        """Produce the simulator's stream through the SDK; returns how many records were sent."""
        producer = DriftlineProducer(self.config().kafka, client_overrides={"linger.ms": 20})
        summary = publish(sim, producer, n_predictions, batch_size=5000, flush_timeout_s=30)
        assert (summary.undelivered, summary.delivery_errors) == (0, 0)
        return summary.total

    def read(self, name: str, event_type: type[BaseModel] | None = None, *, topic: str | None = None) -> list[Any]:
        """Every committed record of a topic, decoded into ``event_type`` when given."""
        cfg = self.config()
        topic = topic or cfg.kafka.topic(name)
        from confluent_kafka.admin import AdminClient

        metadata = AdminClient({"bootstrap.servers": self.bootstrap}).list_topics(topic, timeout=10)
        partitions = [TopicPartition(topic, p) for p in metadata.topics[topic].partitions]
        records = read_to_end(cfg.kafka, partitions)
        if event_type is None:
            return records
        decoded = [decode_one(RawMessage(r.value()), event_type) for r in records]
        assert all(isinstance(d, event_type) for d in decoded), "undecodable record in a driftline topic"
        return decoded


def free_port() -> int:
    """A free TCP port, for a subprocess's /metrics endpoint."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def simulator(malformed_fraction: float = 0.0, scenario: DriftScenario | None = None) -> Simulator:
    """Model ``a`` (classification) with a sudden covariate shift at 300 s (or ``scenario``), ``b`` without."""
    models = [
        ModelSpec("a", "churn", scenario=scenario or DriftScenario("sudden", shift_at_s=SHIFT_AT_S)),
        ModelSpec("b", "eta"),
    ]
    return Simulator(models, seed=11, events_per_s=20.0, label_delay_s=5.0, malformed_fraction=malformed_fraction,
                     oversize_bytes=MAX_PAYLOAD_BYTES + 1)


@contextmanager
def referenced_pipeline(bootstrap: str) -> Iterator[tuple[Pipeline, Simulator]]:
    """A fresh topic set with the references of `simulator()` published, and that simulator; deleted after."""
    pipeline = Pipeline(bootstrap, f"test{uuid.uuid4().hex[:8]}.")
    pipeline.create_topics()
    try:
        sim = simulator()
        pipeline.publish_references(sim, TASKS)
        yield pipeline, sim
    finally:
        pipeline.delete_topics()


def stream_records(sim: Simulator, n_predictions: int) -> list[tuple[str, bytes, bytes]]:
    """The simulator's stream as (``predictions`` or ``outcomes``, key, value), in event-time order."""
    return [record for batch in sim.batches(n_predictions, batch_size=n_predictions)
            for record in zip(batch.kinds, batch.keys, batch.values, strict=True)]


def metric_value(app: IngestApp | MonitorApp, name: str, **labels: str) -> float:
    """The sum of a service's samples called ``name`` that carry ``labels``."""
    return sum(sample.value for metric in app.metrics.registry.collect() for sample in metric.samples
               if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()))


@dataclass
class Run:
    pipeline: Pipeline
    sent: int
    ingest: IngestSummary
    monitor: MonitorSummary
    alerts: list[DriftAlert]
    metrics_text: str


def run_monitor(pipeline: Pipeline, n_panes: int) -> tuple[MonitorSummary, list[DriftAlert]]:
    summary = MonitorApp(pipeline.config()).run(max_messages=n_panes, timeout_s=60)
    return summary, pipeline.read("alerts", DriftAlert)


def run_pipeline(bootstrap: str, prefix: str, sim: Simulator, n_predictions: int = 12_000) -> Run:
    """The whole stream through an in-process ingest, then an in-process monitor; scrapes ingest's /metrics."""
    import requests

    pipeline = Pipeline(bootstrap, prefix)
    pipeline.create_topics()
    pipeline.publish_references(sim, TASKS)
    sent = pipeline.feed(sim, n_predictions)
    ingest = IngestApp(pipeline.config())
    with MetricsServer(ingest.metrics.registry, host="127.0.0.1", port=0, health=ingest.health) as server:
        ingest_summary = ingest.run(until_idle=True, timeout_s=90)
        metrics_text = requests.get(f"http://127.0.0.1:{server.port}/metrics", timeout=5).text
    monitor_summary, alerts = run_monitor(pipeline, ingest_summary.panes)
    return Run(pipeline, sent, ingest_summary, monitor_summary, alerts, metrics_text)
