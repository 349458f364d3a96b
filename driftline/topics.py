"""Create driftline's topics (`ensure_topics`) and check them: ``driftline topics create [--check]``.

Every topic of the design's table is created with ``kafka.partitions`` partitions, so
``predictions`` and ``outcomes`` are co-partitioned (the join is partition-local), and
``kafka.replication_factor`` replicas. ``models``, ``references`` and ``experiments`` are
compacted: their latest value per key is the state. Running it again changes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Literal

import typer

from driftline.config import TOPIC_NAMES, KafkaSettings
from driftline.options import ConfigOption, config_or_exit

if TYPE_CHECKING:
    from confluent_kafka.admin import AdminClient

__all__ = ["COMPACTED_TOPICS", "TopicCheck", "check_topics", "ensure_topics", "register"]

COMPACTED_TOPICS = frozenset({"models", "references", "experiments"})
DEFAULT_TIMEOUT_S = 30.0


@dataclass(frozen=True)
class TopicCheck:
    """One topic compared with what the configuration asks for."""

    name: str
    expected_partitions: int
    partitions: int | None  # None: the topic does not exist

    @property
    def ok(self) -> bool:
        return self.partitions == self.expected_partitions


def _topic_config(logical: str) -> dict[str, str]:
    return {"cleanup.policy": "compact"} if logical in COMPACTED_TOPICS else {}


def _admin(kafka: KafkaSettings) -> AdminClient:
    from confluent_kafka.admin import AdminClient

    return AdminClient(kafka.client_config())


def ensure_topics(kafka: KafkaSettings, *, timeout_s: float = DEFAULT_TIMEOUT_S) -> dict[str, str]:
    """Create the missing driftline topics; returns ``{full topic name: "created" | "exists"}``.

    Existing topics are left as they are (`check_topics` reports a wrong partition count).
    """
    from confluent_kafka import KafkaError, KafkaException
    from confluent_kafka.admin import NewTopic

    admin = _admin(kafka)
    existing = set(admin.list_topics(timeout=timeout_s).topics)
    result: dict[str, str] = {}
    wanted = []
    for logical in TOPIC_NAMES:
        name = kafka.topic(logical)
        if name in existing:
            result[name] = "exists"
        else:
            wanted.append(NewTopic(name, kafka.partitions, kafka.replication_factor, config=_topic_config(logical)))
    if wanted:
        for name, future in admin.create_topics(wanted, operation_timeout=timeout_s).items():
            try:
                future.result(timeout=timeout_s)
                result[name] = "created"
            except KafkaException as exc:
                if exc.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:  # created meanwhile by another process
                    raise
                result[name] = "exists"
    return {kafka.topic(logical): result[kafka.topic(logical)] for logical in TOPIC_NAMES}


def check_topics(kafka: KafkaSettings, *, timeout_s: float = DEFAULT_TIMEOUT_S) -> list[TopicCheck]:
    """Each driftline topic with its actual and expected partition count."""
    admin = _admin(kafka)
    topics = admin.list_topics(timeout=timeout_s).topics
    checks = []
    for logical in TOPIC_NAMES:
        name = kafka.topic(logical)
        meta = topics.get(name)
        if meta is None:
            # A cluster-wide listing can lag behind a just-created topic; ask for this one by name.
            meta = admin.list_topics(topic=name, timeout=timeout_s).topics.get(name)
            if meta is not None and meta.error is not None:
                meta = None
        checks.append(TopicCheck(name, kafka.partitions, None if meta is None else len(meta.partitions)))
    return checks


def register(app: typer.Typer) -> None:
    """Add ``driftline topics create`` to the root CLI."""
    topics = typer.Typer(help="driftline's Kafka topics.", no_args_is_help=True)

    @topics.command("create")
    def create(
        config: ConfigOption = None,
        check: Annotated[bool, typer.Option("--check", help="only check partition counts; exit 1 when wrong")] = False,
        timeout_s: Annotated[float, typer.Option(min=0.1, help="wait this long for the cluster")] = DEFAULT_TIMEOUT_S,
    ) -> None:
        """Create every driftline topic (idempotent), or check their partition counts with --check."""
        from confluent_kafka import KafkaException

        kafka = config_or_exit(config).kafka
        try:
            if check:
                bad = 0
                for item in check_topics(kafka, timeout_s=timeout_s):
                    state: Literal["ok", "missing", "wrong"] = (
                        "ok" if item.ok else "missing" if item.partitions is None else "wrong"
                    )
                    bad += state != "ok"
                    found = "-" if item.partitions is None else item.partitions
                    typer.echo(f"{item.name}: {state} (partitions {found}, expected {item.expected_partitions})")
                if bad:
                    raise typer.Exit(1)
                return
            for name, outcome in ensure_topics(kafka, timeout_s=timeout_s).items():
                typer.echo(f"{name}: {outcome}")
        except KafkaException as exc:
            typer.secho(f"error: Kafka at {kafka.bootstrap_servers}: {exc.args[0].str()}", fg=typer.colors.RED,
                        err=True)
            raise typer.Exit(1) from None

    app.add_typer(topics, name="topics")
