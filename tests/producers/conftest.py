"""A full driftline topic set per test, created with `ensure_topics` and deleted afterwards."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import pytest

from driftline.config import KafkaSettings
from driftline.topics import ensure_topics


@pytest.fixture
def kafka_settings(kafka, topic_prefix: str) -> Iterator[KafkaSettings]:  # type: ignore[no-untyped-def]
    """KafkaSettings on the test broker with a unique prefix; its topics exist (3 partitions)."""
    from confluent_kafka.admin import AdminClient

    settings = KafkaSettings(bootstrap_servers=kafka.bootstrap, topic_prefix=topic_prefix, partitions=3)
    names = list(ensure_topics(settings))
    yield settings
    for future in AdminClient(kafka.client_config()).delete_topics(names).values():
        with contextlib.suppress(Exception):
            future.result(timeout=30)
