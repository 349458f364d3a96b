"""Configuration: file, environment override, explicit override, and readable validation errors."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from typer.testing import CliRunner

from driftline.cli import app
from driftline.config import ConfigError, KafkaSettings, load_config


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No DRIFTLINE_* variable and no ./driftline.toml from the machine leaks into these tests."""
    for name in list(os.environ):
        if name.startswith("DRIFTLINE_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)


def _write(tmp_path: Path, text: str, name: str = "custom.toml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_defaults_without_a_file() -> None:
    cfg = load_config()
    assert cfg.kafka.topic("alerts") == "driftline.alerts"
    assert cfg.kafka.partitions >= 1


def test_file_values_are_read(tmp_path: Path) -> None:
    path = _write(tmp_path, '[kafka]\nbootstrap_servers = "b1:9092,b2:9092"\ntopic_prefix = "prod."\n'
                            '[kafka.client]\n"security.protocol" = "SASL_SSL"\n"sasl.mechanism" = "PLAIN"\n'
                            '[monitor]\nwindow_s = 600\nstep_s = 120\npane_s = 60\n')
    cfg = load_config(path)
    assert cfg.kafka.topic("predictions") == "prod.predictions"
    assert cfg.monitor.window_s == 600
    client = cfg.kafka.client_config(**{"group.id": "g"})
    assert client == {"bootstrap.servers": "b1:9092,b2:9092", "security.protocol": "SASL_SSL",
                      "sasl.mechanism": "PLAIN", "group.id": "g"}


def test_default_file_in_the_working_directory_and_driftline_config_variable(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _write(tmp_path, '[kafka]\ntopic_prefix = "cwd."\n', name="driftline.toml")
    assert load_config().kafka.topic_prefix == "cwd."
    other = _write(tmp_path, '[kafka]\ntopic_prefix = "env-file."\n')
    monkeypatch.setenv("DRIFTLINE_CONFIG", str(other))
    assert load_config().kafka.topic_prefix == "env-file."


def test_environment_overrides_the_file_and_arguments_override_both(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = _write(tmp_path, '[kafka]\nbootstrap_servers = "file:9092"\npartitions = 3\n')
    monkeypatch.setenv("DRIFTLINE_KAFKA__BOOTSTRAP_SERVERS", "env:9092")
    monkeypatch.setenv("DRIFTLINE_INGEST__BATCH_SIZE", "77")
    cfg = load_config(path)
    assert cfg.kafka.bootstrap_servers == "env:9092"
    assert cfg.kafka.partitions == 3  # the file still fills what the environment leaves alone
    assert cfg.ingest.batch_size == 77
    explicit = load_config(path, kafka={"bootstrap_servers": "arg:9092"})
    assert explicit.kafka.bootstrap_servers == "arg:9092"


def test_validation_errors_name_every_bad_key(tmp_path: Path) -> None:
    path = _write(tmp_path, '[kafka]\npartitions = 0\nbootstrap = "typo"\n[monitor]\nalpha = 2\n')
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    message = str(caught.value)
    assert message.startswith(f"invalid driftline configuration ({path}):")
    assert "kafka.partitions: Input should be greater than or equal to 1" in message
    assert "kafka.bootstrap: Extra inputs are not permitted" in message
    assert "monitor.alpha: Input should be less than 1" in message


def test_cross_field_rules_are_explained(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = _write(tmp_path, "[monitor]\npane_s = 60\nwindow_s = 90\n")
    with pytest.raises(ConfigError, match=r"window_s=90.0 must be a whole number of panes"):
        load_config(path)
    monkeypatch.setenv("DRIFTLINE_KAFKA__BOOTSTRAP_SERVERS", "  ")
    with pytest.raises(ConfigError, match="must name at least one broker"):
        load_config()


def test_bad_environment_value_is_reported_with_its_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DRIFTLINE_KAFKA__PARTITIONS", "many")
    with pytest.raises(ConfigError, match=r"kafka\.partitions: Input should be a valid integer"):
        load_config()


def test_missing_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(tmp_path / "absent.toml")


def test_settings_are_frozen_and_topics_checked() -> None:
    cfg = load_config()
    with pytest.raises(ValueError):
        cfg.kafka.partitions = 9  # type: ignore[misc]
    with pytest.raises(KeyError, match="unknown topic"):
        KafkaSettings().topic("predictionz")


def test_cli_prints_the_errors_and_exits_2(tmp_path: Path) -> None:
    path = _write(tmp_path, "[kafka]\npartitions = -1\n")
    result = CliRunner().invoke(app, ["topics", "create", "--config", str(path)])
    assert result.exit_code == 2
    assert "kafka.partitions: Input should be greater than or equal to 1" in result.output
