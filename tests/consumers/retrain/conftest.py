"""Fixtures of the retrain tests; the data and Kafka helpers live in ``retrain_helpers``."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from retrain_helpers import make_config
from threadpoolctl import threadpool_limits

from driftline.config import DriftlineConfig


@pytest.fixture
def retrain_config(kafka, mlflow_server: str, topic_prefix: str) -> DriftlineConfig:  # type: ignore[no-untyped-def]
    """A config on the test broker and MLflow with its own topic set (created) and experiment prefix."""
    return make_config(kafka.bootstrap, mlflow_server, topic_prefix)


@pytest.fixture(autouse=True)
def one_training_thread() -> Iterator[None]:
    """Gradient boosting on a busy 2-core machine: one OpenMP thread is ~10x faster than contention."""
    with threadpool_limits(limits=1):
        yield
