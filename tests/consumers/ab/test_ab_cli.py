"""`driftline ab create|status` against the real broker."""

from __future__ import annotations

from pathlib import Path

import pytest
from confluent_kafka import Producer
from typer.testing import CliRunner

from driftline.cli import app
from driftline.config import load_config
from driftline.consumers.common.kafka import read_to_end, topic_partitions
from driftline.demo import write_toml
from driftline.schemas.codec import RawMessage, decode_one, encode
from driftline.schemas.events import ABResult, Experiment, VariantResult
from driftline.topics import ensure_topics

pytestmark = pytest.mark.integration


def test_create_publishes_the_experiment_and_status_reads_every_partition_the_broker_has(
    kafka, topic_prefix: str, tmp_path: Path
) -> None:
    created = load_config(kafka={"bootstrap_servers": kafka.bootstrap, "topic_prefix": topic_prefix, "partitions": 3})
    ensure_topics(created.kafka)
    # the configuration now says 1 partition (changed after the topics were made): status must still see all 3
    config = write_toml(tmp_path / "driftline.toml", {"kafka": {
        "bootstrap_servers": kafka.bootstrap, "topic_prefix": topic_prefix, "partitions": 1}})
    runner = CliRunner()

    result = runner.invoke(app, ["ab", "create", "--id", "exp-cli", "--model", "churn", "--variant", "control=1:0.5",
                                 "--variant", "treatment=2:0.5", "--config", str(config)])
    assert result.exit_code == 0, result.output
    from confluent_kafka.admin import AdminClient

    topic = created.kafka.topic("experiments")
    stored = [decode_one(RawMessage(m.value()), Experiment) for m in read_to_end(
        created.kafka, topic_partitions(AdminClient(created.kafka.client_config()), topic))]
    assert [(e.experiment_id, [v.name for v in e.variants]) for e in stored] == [("exp-cli", ["control", "treatment"])]

    missing = runner.invoke(app, ["ab", "status", "exp-cli", "--config", str(config)])
    assert missing.exit_code == 1 and "no results yet" in missing.output

    snapshot = ABResult(experiment_id="exp-cli", ts=1.0, model="churn", metric="accuracy", test="two-proportion z",
                        statistic=3.1, p_value=0.002, winner="treatment", conclusion="significant", variants=[
                            VariantResult(name="control", model_version="1", n=600, value=0.75, ci_low=0.71,
                                          ci_high=0.78),
                            VariantResult(name="treatment", model_version="2", n=600, value=0.86, ci_low=0.83,
                                          ci_high=0.89)])
    producer = Producer(created.kafka.client_config())
    producer.produce(created.kafka.topic("ab-results"), encode(snapshot), key=b"exp-cli", partition=2)
    assert producer.flush(10) == 0
    found = runner.invoke(app, ["ab", "status", "exp-cli", "--config", str(config)])
    assert found.exit_code == 0, found.output
    assert "significant, winner treatment" in found.output and "0.8600" in found.output


def test_status_says_when_the_results_topic_does_not_exist(kafka, tmp_path: Path) -> None:
    config = write_toml(tmp_path / "driftline.toml", {"kafka": {
        "bootstrap_servers": kafka.bootstrap, "topic_prefix": "never-created.", "partitions": 1}})
    result = CliRunner().invoke(app, ["ab", "status", "exp", "--config", str(config)])
    assert result.exit_code == 1
    assert "does not exist" in result.output and "driftline topics create" in result.output
