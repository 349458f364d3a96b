"""The root CLI: every command documented, `--help` light, and `driftline simulate` end to end."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import click
import pandas as pd
import pytest
import typer
from confluent_kafka.admin import AdminClient
from typer.testing import CliRunner

from driftline.cli import app
from driftline.producers.cli import parse_models

HEAVY_MODULES = ("pandas", "scipy", "sklearn", "mlflow", "lightgbm", "optuna", "faust", "matplotlib", "river")


def _commands(group: click.Command, prefix: str = "driftline") -> list[tuple[str, click.Command]]:
    found = [(prefix, group)]
    if isinstance(group, click.Group):
        for name, command in group.commands.items():
            found.extend(_commands(command, f"{prefix} {name}"))
    return found


def test_every_command_has_a_one_line_help() -> None:
    for path, command in _commands(typer.main.get_command(app)):
        assert command.help and command.help.strip(), f"`{path}` has no docstring"
        assert command.help.strip().splitlines()[0].strip(), f"`{path}` has an empty first line"


def test_help_imports_no_heavy_library() -> None:
    code = ("import sys; import driftline.cli; "
            f"print(','.join(sorted(m for m in {HEAVY_MODULES!r} if m in sys.modules))); "
            "print(' '.join(sorted(m for m in sys.modules if m.startswith('driftline.'))))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    heavy, loaded = done.stdout.splitlines()
    assert heavy == "", f"`driftline --help` imports {heavy}; driftline modules loaded: {loaded}"


def test_parse_models_and_scenarios() -> None:
    specs = parse_models("churn,fraud:churn,eta", ["churn=sudden", "fraud=concept"], shift_at_s=30.0, magnitude=2.0)
    assert [(s.name, s.template, s.scenario.kind) for s in specs] == [
        ("churn", "churn", "sudden"), ("fraud", "churn", "concept"), ("eta", "eta", "none")]
    assert specs[0].scenario.shift_at_s == 30.0 and specs[0].scenario.magnitude == 2.0
    assert {s.scenario.kind for s in parse_models("churn,eta", ["gradual"])} == {"gradual"}
    with pytest.raises(ValueError, match="not in --models"):
        parse_models("churn", ["eta=sudden"])


def test_simulate_refuses_bad_options(tmp_path: Path) -> None:
    config = tmp_path / "driftline.toml"
    config.write_text("")
    result = CliRunner().invoke(app, ["simulate", "--config", str(config), "--scenario", "churn=wobbly"])
    assert result.exit_code == 2 and "unknown scenario 'wobbly'" in result.output


def _high_watermarks(bootstrap: str, topic: str) -> int:
    from confluent_kafka import Consumer, TopicPartition

    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "watermarks"})
    try:
        metadata = AdminClient({"bootstrap.servers": bootstrap}).list_topics(topic, timeout=10)
        partitions = metadata.topics[topic].partitions
        return sum(consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1] for p in partitions)
    finally:
        consumer.close()


@pytest.mark.integration
def test_simulate_publishes_what_its_summary_says(kafka, topic_prefix: str, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    config = tmp_path / "driftline.toml"
    config.write_text(f'[kafka]\nbootstrap_servers = "{kafka.bootstrap}"\ntopic_prefix = "{topic_prefix}"\n'
                      "partitions = 2\n[ingest]\nmax_payload_bytes = 4096\n")
    runner = CliRunner()
    try:
        assert runner.invoke(app, ["topics", "create", "--config", str(config)]).exit_code == 0
        result = runner.invoke(app, [
            "simulate", "--config", str(config), "--events", "3000", "--events-per-s", "50", "--rate", "20000",
            "--scenario", "churn=sudden", "--shift-at-s", "30", "--malformed-fraction", "0.01", "--seed", "5",
            "--reference-out", str(tmp_path / "refs"), "--reference-n", "300", "--no-progress",
        ])
        assert result.exit_code == 0, result.output
        assert "delivery errors 0, undelivered at exit 0" in result.output
        assert "payload_too_large=" in result.output
        predictions = _high_watermarks(kafka.bootstrap, f"{topic_prefix}predictions")
        outcomes = _high_watermarks(kafka.bootstrap, f"{topic_prefix}outcomes")
        assert predictions == 3000 and outcomes == 3000
        assert f"records {predictions + outcomes:,} in" in result.output
        for model in ("churn", "eta"):
            assert len(pd.read_parquet(tmp_path / "refs" / f"{model}.parquet")) == 300
        assert pd.read_parquet(tmp_path / "refs" / "race.parquet")["group_id"].nunique() == 300
    finally:
        admin = AdminClient({"bootstrap.servers": kafka.bootstrap})
        names = [n for n in admin.list_topics(timeout=10).topics if n.startswith(topic_prefix)]
        if names:
            for future in admin.delete_topics(names).values():
                future.exception(timeout=30)
