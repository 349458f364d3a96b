"""Composition root of the retrain worker: configuration, clients, handler, loop, metrics, signals.

Guard against two workers retraining one model at once: alerts are keyed by model, so one
partition, hence one member of the consumer group, owns each model (Kafka's assignment is
the guard); a lease in registered-model tags (`MlflowRegistry.acquire_lease`) covers what
the group cannot, e.g. a one-shot ``driftline retrain`` running beside the worker.
"""

from __future__ import annotations

import logging
import os
import socket
from typing import Any

from driftline.config import DriftlineConfig, RetrainSettings
from driftline.consumers.common.http import MetricsServer
from driftline.consumers.common.kafka import make_consumer, make_producer
from driftline.consumers.common.metrics import Metrics
from driftline.consumers.common.signals import StopFlag
from driftline.consumers.retrain.data import LabeledReader
from driftline.consumers.retrain.drift import latest_reference
from driftline.consumers.retrain.handler import RetrainHandler
from driftline.consumers.retrain.loop import RetrainLoop
from driftline.consumers.retrain.registry import MlflowRegistry
from driftline.consumers.retrain.trainers import load_trainer

__all__ = ["build_handler", "configure_mlflow_client", "run_worker", "worker_name"]

log = logging.getLogger(__name__)


def configure_mlflow_client(settings: RetrainSettings) -> None:
    """Short MLflow client retries: the worker does its own backoff and must notice an outage quickly.

    MLflow's own ``MLFLOW_HTTP_REQUEST_*`` variables, when set, win over the config.
    """
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", str(settings.mlflow_http_retries))
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", "1")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", str(int(settings.mlflow_http_timeout_s)))
    os.environ.setdefault("MLFLOW_ENABLE_TELEMETRY", "false")


def worker_name() -> str:
    """This process in the registry lease: host and pid."""
    return f"{socket.gethostname()}:{os.getpid()}"


def build_handler(cfg: DriftlineConfig, *, owner: str | None = None) -> RetrainHandler:
    """The handler with its real adapters: MLflow registry, `labeled` reader, configured trainer."""
    settings = cfg.retrain
    registry = MlflowRegistry(settings.tracking_uri, experiment_prefix=settings.experiment_prefix)
    source = LabeledReader(cfg.kafka, cfg.kafka.topic("labeled"), timeout_s=settings.read_timeout_s)
    return RetrainHandler(
        settings, registry, source, load_trainer(settings.trainer), owner=owner or worker_name(),
        references=lambda model: latest_reference(cfg.kafka, model), monitor=cfg.monitor,
    )


def run_worker(
    cfg: DriftlineConfig,
    *,
    stop: StopFlag | None = None,
    max_alerts: int | None = None,
    metrics: Metrics | None = None,
) -> int:
    """Run the worker until SIGTERM/SIGINT (or ``stop``); returns the number of alerts committed."""
    settings = cfg.retrain
    configure_mlflow_client(settings)
    stop = stop or StopFlag().install()
    metrics = metrics or Metrics("retrain")
    handler = build_handler(cfg)
    registry = handler.registry
    max_poll_interval_ms = int(settings.max_handle_s * 1000)
    consumer = make_consumer(cfg.kafka, settings.group_id, **{"max.poll.interval.ms": max_poll_interval_ms})
    producer = make_producer(cfg.kafka)
    topics = {name: cfg.kafka.topic(name) for name in ("alerts", "models", "references", "dlq")}

    loop = RetrainLoop(
        consumer, producer, handler, topics=topics, metrics=metrics, stop=stop, mlflow_ping=registry.ping,
        mark_published=registry.mark_published, poll_timeout_s=settings.poll_timeout_s,
        retry_initial_s=settings.mlflow_retry_initial_s, retry_max_s=settings.mlflow_retry_max_s,
    )

    def health() -> tuple[bool, dict[str, Any]]:
        # Alive while MLflow is away (alerts wait, uncommitted); the detail says so without a new call.
        return True, {"mlflow_up": loop.mlflow_up, "tracking_uri": registry.tracking_uri}

    loop.set_mlflow_up(registry.ping())
    log.info("retrain worker %s: alerts from %s, MLflow at %s", handler.owner, topics["alerts"], registry.tracking_uri)
    with MetricsServer(metrics.registry, host=cfg.metrics.host, port=cfg.metrics.retrain_port, health=health):
        try:
            return loop.run(max_alerts=max_alerts)
        finally:
            producer.flush(10)
            consumer.close()
