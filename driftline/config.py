"""One configuration model for every driftline service, validated once at start-up.

Sources, later wins: defaults, ``driftline.toml`` (or the file named by ``--config`` /
``DRIFTLINE_CONFIG``), then ``DRIFTLINE_<SECTION>__<KEY>`` environment variables, e.g.
``DRIFTLINE_KAFKA__BOOTSTRAP_SERVERS=broker:9092``. Kafka client settings under
``[kafka.client]`` are passed through to librdkafka unchanged (security.protocol, sasl.*, ssl.*).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

__all__ = [
    "ABSettings",
    "ConfigError",
    "DriftlineConfig",
    "IngestSettings",
    "KafkaSettings",
    "LocalSettings",
    "MetricsSettings",
    "MonitorSettings",
    "ProducerSettings",
    "RetrainSettings",
    "TransactionalServiceSettings",
    "load_config",
]

DEFAULT_CONFIG_FILE = "driftline.toml"
TOPIC_NAMES = (
    "predictions",
    "outcomes",
    "labeled",
    "panes",
    "alerts",
    "models",
    "references",
    "experiments",
    "ab-results",
    "dlq",
)


class ConfigError(ValueError):
    """Raised with a readable, multi-line message when the configuration is invalid."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# librdkafka settings the services set themselves: exactly-once (offsets stored only when outputs
# are durable, read committed, idempotent and transactional writes, fencing) and the join (range
# assignment keeps co-partitioned inputs on one member) rest on them.
DRIFTLINE_CLIENT_SETTINGS = frozenset({
    "group.id", "group.instance.id", "transactional.id", "enable.auto.commit", "enable.auto.offset.store",
    "auto.offset.reset", "isolation.level", "partition.assignment.strategy", "enable.idempotence",
    "enable.partition.eof",
})


class KafkaSettings(_Section):
    bootstrap_servers: str = "127.0.0.1:9092"
    topic_prefix: str = "driftline."
    partitions: int = Field(6, ge=1)
    replication_factor: int = Field(1, ge=1)
    client: dict[str, str | int | float | bool] = Field(
        default_factory=dict, description="librdkafka settings passed through (SASL, TLS, tuning, ...)"
    )

    @field_validator("client")
    @classmethod
    def _leaves_driftline_settings_alone(
            cls, client: dict[str, str | int | float | bool]) -> dict[str, str | int | float | bool]:
        owned = sorted(DRIFTLINE_CLIENT_SETTINGS & client.keys())
        if owned:
            raise ValueError(f"{', '.join(owned)}: set by driftline itself (its exactly-once delivery and the "
                             "join rely on them); remove from [kafka.client]")
        return client

    def topic(self, name: str) -> str:
        """Full topic name for one of the design's logical topics."""
        if name not in TOPIC_NAMES:
            raise KeyError(f"unknown topic {name!r}; known: {', '.join(TOPIC_NAMES)}")
        return f"{self.topic_prefix}{name}"

    def client_config(self, **overrides: Any) -> dict[str, Any]:
        """librdkafka configuration: bootstrap + pass-through settings + per-client overrides."""
        return {"bootstrap.servers": self.bootstrap_servers, **self.client, **overrides}


class ProducerSettings(_Section):
    """The producer SDK: batching defaults and PII masking applied before anything is sent."""

    linger_ms: int = Field(20, ge=0, description="wait this long to fill a batch (throughput vs latency)")
    batch_size_bytes: int = Field(1_000_000, ge=1, description="librdkafka batch.size")
    compression: Literal["none", "gzip", "snappy", "lz4", "zstd"] = "lz4"
    queue_max_messages: int = Field(500_000, ge=1, description="local queue before produce() must wait")
    pii_drop: list[str] = Field(default_factory=list, description="feature names never sent")
    pii_hash: list[str] = Field(default_factory=list, description="feature names sent as hmac-sha256(salt, value)")
    pii_salt: SecretStr | None = Field(None, description="key of the hmac; required when pii_hash is set")

    @model_validator(mode="after")
    def _masking_is_consistent(self) -> ProducerSettings:
        if self.pii_hash and (self.pii_salt is None or not self.pii_salt.get_secret_value()):
            raise ValueError("producer.pii_hash needs producer.pii_salt (the hmac key)")
        both = sorted(set(self.pii_drop) & set(self.pii_hash))
        if both:
            raise ValueError(f"features both dropped and hashed: {', '.join(both)}")
        return self


class LocalSettings(_Section):
    """The no-Docker development stack: a real Kafka broker from Maven jars and an MLflow server."""

    kafka_version: str = "4.1.1"
    cache_dir: Path = Path("~/.cache/driftline").expanduser()
    data_dir: Path = Path("var/local")
    kafka_port: int = Field(9092, ge=1, le=65535)
    controller_port: int = Field(9093, ge=1, le=65535)
    kafka_heap: str = "1G"
    mlflow_port: int = Field(5000, ge=1, le=65535)
    start_timeout_s: float = Field(90.0, gt=0)


class TransactionalServiceSettings(_Section):
    """Settings of a service that commits outputs, state changelog and offsets in one Kafka transaction."""

    group_id: str = Field(min_length=1)
    batch_size: int = Field(1000, ge=1, description="records consumed per batch")
    poll_timeout_s: float = Field(0.5, gt=0)
    commit_interval_s: float = Field(
        1.0, gt=0, description="transaction length: outputs, state and offsets (and a poll that finds nothing commits)")
    session_timeout_s: float = Field(10.0, ge=6, description="group session; a dead member's partitions move after it")
    transaction_timeout_s: float = Field(30.0, gt=0, description="broker aborts a dead producer's transaction after it")
    restore_timeout_s: float = Field(120.0, gt=0, description="longest changelog read when partitions are assigned")
    instance_id: str = Field("0", min_length=1, description="stable name of this process in the group (fencing)")


class IngestSettings(TransactionalServiceSettings):
    group_id: str = Field("driftline-ingest", min_length=1)
    batch_size: int = Field(5000, ge=1)
    max_payload_bytes: int = Field(1_048_576, ge=64)
    max_label_delay_s: float = Field(86_400.0, gt=0)
    pane_s: float = Field(60.0, gt=0)
    allowed_lateness_s: float = Field(120.0, ge=0)
    idle_after_s: float = Field(
        5.0, ge=0, description="wall-clock seconds an input partition must stay at its end before it counts as "
        "idle and stops holding the other stream back")
    max_future_s: float | None = Field(
        86_400.0, gt=0, description="an event whose ts is further ahead of the wall clock than this goes to dlq "
        "(ts_in_future): one such event, e.g. in milliseconds, would make every later event late; none = no limit")
    native: bool = Field(
        True, description="the native hot path (driftline-native, built by make install) when it is installed: "
        "polls split by input partition, predictions and outcomes in driftline's own JSON form scanned into columns "
        "and records, labeled records written in Rust; the same outputs as the Python path, which false forces")


class MonitorSettings(TransactionalServiceSettings):
    group_id: str = Field("driftline-monitor", min_length=1)
    window_s: float = Field(3600.0, gt=0)
    step_s: float = Field(300.0, gt=0)
    pane_s: float = Field(60.0, gt=0)
    allowed_lateness_s: float = Field(120.0, ge=0)
    correction: Literal["bh", "bonferroni", "none"] = "bh"
    alpha: float = Field(0.05, gt=0, lt=1)
    drift_ratio_threshold: float = Field(0.3, gt=0, le=1)
    min_effect: float = Field(0.1, ge=0, description="minimum PSI for a feature to count as drifted")
    concept_drop_threshold: float = Field(0.02, ge=0, description="relative metric drop")
    hysteresis_windows: int = Field(2, ge=1)
    cooldown_s: float = Field(3600.0, ge=0)
    min_samples: int = Field(200, ge=1)
    top_features_metrics: int = Field(20, ge=1, description="features exported per model as labels")

    @model_validator(mode="after")
    def _window_is_made_of_panes(self) -> MonitorSettings:
        for name, value in (("window_s", self.window_s), ("step_s", self.step_s)):
            ratio = value / self.pane_s
            if abs(ratio - round(ratio)) > 1e-9:
                raise ValueError(f"{name}={value} must be a whole number of panes (pane_s={self.pane_s})")
        if self.step_s > self.window_s:
            raise ValueError(f"step_s={self.step_s} must not exceed window_s={self.window_s}")
        return self


class RetrainSettings(_Section):
    group_id: str = "driftline-retrain"
    trainer: str = Field("driftline.consumers.retrain.trainers:auto_trainer", description="module:function")
    span_s: float = Field(7 * 86_400.0, gt=0, description="training data read back from `labeled`")
    holdout_fraction: float = Field(0.2, gt=0, lt=1)
    min_samples: int = Field(500, ge=10)
    primary_metric: str | None = None
    min_metric: float | None = None
    min_improvement: float = Field(0.01, ge=0, description="relative improvement over the champion")
    cooldown_s: float = Field(3600.0, ge=0)
    optuna_trials: int = Field(0, ge=0)
    optuna_timeout_s: float = Field(60.0, gt=0)
    mlflow_retry_max_s: float = Field(30.0, gt=0)
    mlflow_retry_initial_s: float = Field(0.5, gt=0, description="first backoff when MLflow does not answer")
    mlflow_http_retries: int = Field(1, ge=0, description="MLflow client retries per call (the worker backs off)")
    mlflow_http_timeout_s: float = Field(30.0, gt=0)
    tracking_uri: str | None = Field(None, description="MLflow server; default: MLFLOW_TRACKING_URI")
    experiment_prefix: str = Field("driftline/", description="one MLflow experiment per model: <prefix><model>")
    trainer_params: dict[str, str | int | float | bool] = Field(default_factory=dict)
    seed: int = 0
    max_training_rows: int = Field(200_000, ge=10, description="the most recent rows of the span are kept")
    poll_timeout_s: float = Field(1.0, gt=0)
    read_timeout_s: float = Field(120.0, gt=0, description="reading the span back from `labeled`")
    lease_s: float = Field(1800.0, gt=0, description="registry lease guarding one model's retrain")
    max_handle_s: float = Field(1800.0, ge=60, description="longest retrain before the group evicts the worker")
    train_threads: int = Field(1, ge=0, description="OpenMP/BLAS threads while training; 0: all cores")


class ABSettings(_Section):
    group_id: str = "driftline-ab"
    batch_size: int = Field(5000, ge=1)
    publish_interval_s: float = Field(10.0, gt=0, description="how often ABResult snapshots are published")


class MetricsSettings(_Section):
    host: str = "0.0.0.0"
    ingest_port: int = 9464
    monitor_port: int = 9465
    retrain_port: int = 9466
    ab_port: int = 9467


class DriftlineConfig(BaseSettings):
    """Every setting driftline reads. Settings are frozen: services never mutate them."""

    model_config = SettingsConfigDict(
        env_prefix="DRIFTLINE_",
        env_nested_delimiter="__",
        extra="forbid",
        frozen=True,
        toml_file=None,
    )

    kafka: KafkaSettings = KafkaSettings()
    producer: ProducerSettings = ProducerSettings()
    local: LocalSettings = LocalSettings()
    ingest: IngestSettings = IngestSettings()
    monitor: MonitorSettings = MonitorSettings()
    retrain: RetrainSettings = RetrainSettings()
    ab: ABSettings = ABSettings()
    metrics: MetricsSettings = MetricsSettings()

    @field_validator("kafka")
    @classmethod
    def _bootstrap_not_empty(cls, value: KafkaSettings) -> KafkaSettings:
        if not value.bootstrap_servers.strip():
            raise ValueError("kafka.bootstrap_servers must name at least one broker")
        return value

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Precedence: explicit arguments, then the environment, then the TOML file.
        return init_settings, env_settings, TomlConfigSettingsSource(settings_cls)


def load_config(path: str | Path | None = None, **overrides: Any) -> DriftlineConfig:
    """Load and validate the configuration, or raise `ConfigError` naming every bad key.

    ``path`` defaults to ``$DRIFTLINE_CONFIG`` then ``./driftline.toml`` when it exists.
    Keyword overrides (section dicts) win over file and environment; tests use them.
    """
    chosen = path or os.environ.get("DRIFTLINE_CONFIG")
    if chosen is None and Path(DEFAULT_CONFIG_FILE).is_file():
        chosen = DEFAULT_CONFIG_FILE
    if chosen is not None and not Path(chosen).is_file():
        raise ConfigError(f"config file not found: {chosen}")

    class _FromFile(DriftlineConfig):
        model_config = SettingsConfigDict(toml_file=chosen)

    try:
        return _FromFile(**overrides)
    except ValidationError as exc:
        lines = [f"invalid driftline configuration ({chosen or 'defaults + environment'}):"]
        for err in exc.errors():
            where = ".".join(str(part) for part in err["loc"])
            lines.append(f"  {where}: {err['msg']}")
        raise ConfigError("\n".join(lines)) from None
