"""`driftline topics create`: every topic, co-partitioned, compacted where the design says, idempotent."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import pytest
from confluent_kafka.admin import AdminClient, ConfigResource, NewTopic
from typer.testing import CliRunner

from driftline.cli import app
from driftline.config import TOPIC_NAMES, KafkaSettings
from driftline.topics import COMPACTED_TOPICS, check_topics, ensure_topics


@pytest.fixture
def admin(kafka) -> AdminClient:  # type: ignore[no-untyped-def]
    return AdminClient(kafka.client_config())


@pytest.fixture
def settings(kafka, topic_prefix: str, admin: AdminClient) -> Iterator[KafkaSettings]:  # type: ignore[no-untyped-def]
    settings = KafkaSettings(bootstrap_servers=kafka.bootstrap, topic_prefix=topic_prefix, partitions=4)
    yield settings
    names = [n for n in admin.list_topics(timeout=10).topics if n.startswith(topic_prefix)]
    if names:
        for future in admin.delete_topics(names).values():
            with contextlib.suppress(Exception):
                future.result(timeout=30)


def _config_file(tmp_path: Path, settings: KafkaSettings) -> Path:
    path = tmp_path / "driftline.toml"
    path.write_text(f'[kafka]\nbootstrap_servers = "{settings.bootstrap_servers}"\n'
                    f'topic_prefix = "{settings.topic_prefix}"\npartitions = {settings.partitions}\n')
    return path


@pytest.mark.integration
def test_ensure_topics_creates_all_then_changes_nothing(settings: KafkaSettings, admin: AdminClient) -> None:
    first = ensure_topics(settings)
    assert first == {settings.topic(name): "created" for name in TOPIC_NAMES}
    assert ensure_topics(settings) == {settings.topic(name): "exists" for name in TOPIC_NAMES}
    topics = admin.list_topics(timeout=10).topics
    for name in TOPIC_NAMES:
        assert len(topics[settings.topic(name)].partitions) == 4
    resources = [ConfigResource(ConfigResource.Type.TOPIC, settings.topic(name)) for name in TOPIC_NAMES]
    for resource, future in admin.describe_configs(resources).items():
        policy = future.result(timeout=10)["cleanup.policy"].value
        logical = resource.name[len(settings.topic_prefix):]
        assert policy == ("compact" if logical in COMPACTED_TOPICS else "delete"), resource.name
    assert all(check.ok for check in check_topics(settings))


@pytest.mark.integration
def test_cli_create_and_check(settings: KafkaSettings, admin: AdminClient, tmp_path: Path) -> None:
    config = _config_file(tmp_path, settings)
    runner = CliRunner()
    missing = runner.invoke(app, ["topics", "create", "--check", "--config", str(config)])
    assert missing.exit_code == 1 and "missing" in missing.output

    # A predictions topic made by hand with the wrong partition count breaks co-partitioning.
    admin.create_topics([NewTopic(settings.topic("predictions"), 2, 1)])[settings.topic("predictions")].result(30)
    created = runner.invoke(app, ["topics", "create", "--config", str(config)])
    assert created.exit_code == 0, created.output
    assert f"{settings.topic('predictions')}: exists" in created.output
    assert f"{settings.topic('outcomes')}: created" in created.output
    again = runner.invoke(app, ["topics", "create", "--config", str(config)])
    assert again.exit_code == 0 and "created" not in again.output

    wrong = runner.invoke(app, ["topics", "create", "--check", "--config", str(config)])
    assert wrong.exit_code == 1
    assert f"{settings.topic('predictions')}: wrong (partitions 2, expected 4)" in wrong.output
    assert f"{settings.topic('outcomes')}: ok" in wrong.output


def test_cli_says_clearly_when_kafka_is_unreachable(tmp_path: Path) -> None:
    config = tmp_path / "driftline.toml"
    config.write_text('[kafka]\nbootstrap_servers = "127.0.0.1:1"\n')
    result = CliRunner().invoke(app, ["topics", "create", "--check", "--timeout-s", "1", "--config", str(config)])
    assert result.exit_code == 1
    assert "error: Kafka at 127.0.0.1:1" in result.output
