"""Catching up on a backlog: the input ahead in event time is paused, and nothing is lost or repeated."""

from __future__ import annotations

import re
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from driftline.config import ConfigError, load_config
from driftline.consumers.common.transactional import TransactionalClients
from driftline.consumers.ingest.app import CONSUMER_REQUIRED, IngestApp, consumer_tuning
from driftline.consumers.ingest.handler import PartitionState
from driftline.schemas.events import LabeledEvent

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "common"))
from pipeline import Pipeline, referenced_pipeline

N_PREDICTIONS = 6000


@pytest.fixture
def backlog(kafka) -> Iterator[tuple[Pipeline, int]]:
    with referenced_pipeline(kafka.bootstrap) as (pipeline, sim):
        yield pipeline, pipeline.feed(sim, N_PREDICTIONS) - N_PREDICTIONS


class _CountingPauses(IngestApp):
    """The app, counting the pauses `_pace` makes."""

    pauses = 0

    def _pace(self, partition: int, state: PartitionState) -> None:
        before = len(self._paused)
        super()._pace(partition, state)
        self.pauses += len(self._paused) > before


@pytest.mark.integration
def test_backlog_pauses_the_stream_ahead_and_labels_every_outcome_once(backlog: tuple[Pipeline, int]) -> None:
    pipeline, n_outcomes = backlog
    app = _CountingPauses(pipeline.config(ingest={"batch_size": 300, "commit_interval_s": 0.3}))
    summary = app.run(until_idle=True, timeout_s=120)
    assert app.pauses > 0  # a fetch hands out far more of the small outcomes than of the predictions
    assert not app._paused  # resumed by the end
    labeled = pipeline.read("labeled", LabeledEvent)
    assert summary.labeled == len(labeled) == len({e.event_id for e in labeled}) == n_outcomes > 0


def _ingest_consumer(**sections: dict) -> dict:
    cfg = load_config(None, **sections)
    consumer, _ = TransactionalClients.client_configs(cfg.kafka, group_id="g", instance_id="i", session_timeout_s=10,
                                                      transaction_timeout_s=60, consumer_tuning=consumer_tuning(cfg),
                                                      **CONSUMER_REQUIRED)
    return consumer


def test_ingest_prefetches_about_one_batch_per_partition_unless_kafka_client_says_otherwise() -> None:
    """A paused partition loses its prefetch (librdkafka), so ingest prefetches a batch, not 100 000 messages."""
    consumer = _ingest_consumer(ingest={"batch_size": 4000})
    assert consumer["queued.min.messages"] == 4000 and consumer["max.partition.fetch.bytes"] == 10_485_760
    assert consumer["enable.partition.eof"] is True and consumer["isolation.level"] == "read_committed"
    tuned = _ingest_consumer(ingest={"batch_size": 4000},
                             kafka={"client": {"queued.min.messages": 50_000, "max.partition.fetch.bytes": 1_048_576}})
    assert tuned["queued.min.messages"] == 50_000 and tuned["max.partition.fetch.bytes"] == 1_048_576
    with pytest.raises(ConfigError, match=re.escape("enable.partition.eof: set by driftline itself")):
        load_config(None, kafka={"client": {"enable.partition.eof": False}})
