"""Session fixtures for the real servers the integration tests run against.

- ``kafka``: ``KAFKA_BOOTSTRAP_SERVERS`` when set (an existing cluster); testcontainers' Kafka
  when ``DRIFTLINE_TEST_DOCKER=1`` and a Docker engine answers; otherwise a local broker from
  the Maven jars on free ports in a temp dir, stopped at the end.
- ``mlflow_server``: ``MLFLOW_TRACKING_URI`` when set, otherwise a local server the same way.
- ``topic_factory``: unique topic names per test, created with the partitions asked for.
- ``manual_clock``: a clock for code that takes one (``clock=``): the test sets ``now``.
"""

from __future__ import annotations

import contextlib
import os
import socket
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest

from driftline.config import load_config
from driftline.local.kafka import LocalKafka
from driftline.local.mlflow_server import LocalMlflow


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass(frozen=True)
class KafkaCluster:
    bootstrap: str

    def client_config(self, **extra: object) -> dict[str, object]:
        return {"bootstrap.servers": self.bootstrap, **extra}


def _docker_kafka() -> Iterator[KafkaCluster] | None:
    if os.environ.get("DRIFTLINE_TEST_DOCKER") != "1":
        return None
    try:
        import docker  # type: ignore[import-untyped]

        docker.from_env().ping()
    except Exception:
        return None
    from testcontainers.kafka import KafkaContainer

    def run() -> Iterator[KafkaCluster]:
        with KafkaContainer("apache/kafka:4.1.1").with_kraft() as container:
            yield KafkaCluster(container.get_bootstrap_server())

    return run()


@pytest.fixture(scope="session")
def kafka(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KafkaCluster]:
    existing = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    if existing:
        yield KafkaCluster(existing)
        return
    docker_run = _docker_kafka()
    if docker_run is not None:
        yield from docker_run
        return
    local = load_config().local  # the same jar cache `make jars` fills
    broker = LocalKafka(
        version=local.kafka_version,
        cache_dir=local.cache_dir,
        data_dir=tmp_path_factory.mktemp("kafka"),
        port=free_port(),
        controller_port=free_port(),
        heap="768M",
    )
    broker.start()
    try:
        yield KafkaCluster(broker.bootstrap)
    finally:
        broker.stop()


@pytest.fixture(scope="session")
def mlflow_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The tracking URI of a real MLflow server."""
    existing = os.environ.get("MLFLOW_TRACKING_URI")
    if existing:
        yield existing
        return
    server = LocalMlflow(data_dir=tmp_path_factory.mktemp("mlflow"), port=free_port())
    server.start()
    try:
        yield server.tracking_uri
    finally:
        server.stop()


@pytest.fixture
def topic_factory(kafka: KafkaCluster) -> Iterator[Callable[..., str]]:
    """Create uniquely named topics: ``topic_factory("predictions", partitions=3, compact=False)``."""
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient(kafka.client_config())
    created: list[str] = []

    def make(stem: str = "t", *, partitions: int = 1, compact: bool = False) -> str:
        name = f"test.{stem}.{uuid.uuid4().hex[:10]}"
        config = {"cleanup.policy": "compact"} if compact else {}
        futures = admin.create_topics([NewTopic(name, partitions, 1, config=config)])
        futures[name].result(timeout=30)
        created.append(name)
        return name

    yield make
    if created:
        for future in admin.delete_topics(created).values():
            with contextlib.suppress(Exception):
                future.result(timeout=30)


@pytest.fixture
def topic_prefix(kafka: KafkaCluster) -> str:
    """A unique prefix so a test's full driftline topic set does not collide with others."""
    return f"test{uuid.uuid4().hex[:8]}."


class ManualClock:
    """A clock a test moves by hand: calling it returns ``now``."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def manual_clock() -> ManualClock:
    return ManualClock()
