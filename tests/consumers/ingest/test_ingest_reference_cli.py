"""`driftline reference build`: from a file and from `labeled`, published on the compacted `references`."""

from __future__ import annotations

import sys
import uuid
from pathlib import Path

import pytest
from typer.testing import CliRunner

from driftline.cli import app
from driftline.consumers.common.references import ReferenceBook
from driftline.producers.simulator import Simulator
from driftline.schemas.codec import encode

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "common"))
from pipeline import Pipeline


@pytest.mark.integration
def test_build_from_files_and_from_labeled_then_publish(kafka, tmp_path: Path) -> None:
    pipeline = Pipeline(kafka.bootstrap, f"test{uuid.uuid4().hex[:8]}.")
    pipeline.create_topics()
    config = pipeline.write_config(tmp_path / "driftline.toml")
    sim = Simulator(["churn"], seed=1)
    parquet = sim.write_references(tmp_path, 500)["churn"]
    runner = CliRunner()
    built = runner.invoke(app, ["reference", "build", "--model", "churn", "--task", "classification",
                                "--from", str(parquet), "--config", str(config), "--out", str(tmp_path / "p.json")])
    assert built.exit_code == 0, built.output
    assert "500 samples" in built.output and (tmp_path / "p.json").stat().st_size > 0

    events = sim.reference_events("churn", 300)
    lines = tmp_path / "labeled.jsonl"
    lines.write_bytes(b"\n".join(encode(e) for e in events))
    from_lines = runner.invoke(app, ["reference", "build", "-m", "churn", "--task", "classification", "--from",
                                     str(lines), "--no-publish", "--config", str(config)])
    assert from_lines.exit_code == 0 and "300 samples" in from_lines.output

    from confluent_kafka import Producer

    producer = Producer({"bootstrap.servers": kafka.bootstrap})
    for event in events:
        producer.produce(pipeline.config().kafka.topic("labeled"), encode(event), b"churn")
    producer.flush(10)
    span = [str(events[0].ts), str(events[-1].ts + 1)]
    from_topic = runner.invoke(app, ["reference", "build", "-m", "churn", "--task", "classification",
                                     "--from-labeled", *span, "--version", "2", "--config", str(config)])
    assert from_topic.exit_code == 0, from_topic.output
    book = ReferenceBook(pipeline.config().kafka)
    try:
        profiles = book.load()
    finally:
        book.close()
    assert profiles["churn"].model_version == "2" and profiles["churn"].n_samples == 300

    neither = runner.invoke(app, ["reference", "build", "-m", "churn", "--task", "classification",
                                  "--config", str(config)])
    assert neither.exit_code == 2
    pipeline.delete_topics()
