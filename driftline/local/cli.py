"""`driftline kafka ...` and `driftline mlflow ...`: the local no-Docker stack."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer

from driftline.local.kafka import LocalKafka
from driftline.local.mlflow_server import LocalMlflow
from driftline.local.process import LocalServiceError, tail
from driftline.options import ConfigOption, config_or_exit

__all__ = ["local_kafka", "local_mlflow", "register"]

PortOption = Annotated[int | None, typer.Option("--port", help="listener port (default from config)")]
DataDirOption = Annotated[Path | None, typer.Option("--data-dir", help="state and logs (default var/local)")]


def local_kafka(config: Path | None, port: int | None = None, data_dir: Path | None = None,
                controller_port: int | None = None) -> LocalKafka:
    local = config_or_exit(config).local
    return LocalKafka(
        version=local.kafka_version,
        cache_dir=local.cache_dir,
        data_dir=(data_dir or local.data_dir) / "kafka",
        port=port or local.kafka_port,
        controller_port=controller_port or local.controller_port,
        heap=local.kafka_heap,
        start_timeout_s=local.start_timeout_s,
    )


def local_mlflow(config: Path | None, port: int | None = None, data_dir: Path | None = None) -> LocalMlflow:
    local = config_or_exit(config).local
    return LocalMlflow(
        data_dir=(data_dir or local.data_dir) / "mlflow",
        port=port or local.mlflow_port,
        start_timeout_s=local.start_timeout_s,
    )


def _fail(exc: LocalServiceError) -> None:
    typer.secho(f"error: {exc}", fg=typer.colors.RED, err=True)
    raise typer.Exit(1)


def _start(service: LocalKafka | LocalMlflow, name: str, address: str) -> None:
    """Start in the background unless running already; ``address`` names the endpoint attribute."""
    before = service.status()
    if before.running:
        typer.echo(f"{name} already running (pid {before.pid}) at {getattr(before, address)}")
        return
    try:
        status = service.start()
    except LocalServiceError as exc:
        _fail(exc)
    typer.echo(f"{name} started (pid {status.pid}) at {getattr(status, address)}")


def _stop_and_status_commands(group: typer.Typer, name: str, make: Callable[..., Any], address: str) -> None:
    """`stop` and `status` for one local service."""

    @group.command("stop")
    def stop(config: ConfigOption = None, data_dir: DataDirOption = None) -> None:
        """Stop the process this project started (by its pid file only)."""
        stopped = make(config, data_dir=data_dir).stop()
        typer.echo(f"{name} stopped" if stopped else f"{name} was not running")

    @group.command("status")
    def status(config: ConfigOption = None, data_dir: DataDirOption = None) -> None:
        """Say whether it runs; exit 1 when it does not."""
        current = make(config, data_dir=data_dir).status()
        if not current.running:
            typer.echo(f"{name} not running")
            raise typer.Exit(1)
        typer.echo(f"{name} running (pid {current.pid}) at {getattr(current, address)}")


def register(app: typer.Typer) -> None:
    kafka = typer.Typer(help="Local single-node Apache Kafka broker (KRaft) from Maven jars, no Docker.",
                        no_args_is_help=True)
    mlflow = typer.Typer(help="Local MLflow tracking server on SQLite with a local artifact store.",
                         no_args_is_help=True)
    _stop_and_status_commands(kafka, "kafka", local_kafka, "bootstrap")
    _stop_and_status_commands(mlflow, "mlflow", local_mlflow, "tracking_uri")

    @kafka.command("start")
    def kafka_start(config: ConfigOption = None, port: PortOption = None,
                    controller_port: Annotated[int | None, typer.Option(help="KRaft controller port")] = None,
                    data_dir: DataDirOption = None) -> None:
        """Fetch the jars once, format storage, start the broker and wait until it answers."""
        _start(local_kafka(config, port, data_dir, controller_port), "kafka", "bootstrap")

    @mlflow.command("start")
    def mlflow_start(config: ConfigOption = None, port: PortOption = None, data_dir: DataDirOption = None) -> None:
        """Start the MLflow tracking server in the background and wait until /health answers."""
        _start(local_mlflow(config, port, data_dir), "mlflow", "tracking_uri")

    @kafka.command("logs")
    def kafka_logs(config: ConfigOption = None, data_dir: DataDirOption = None,
                   lines: Annotated[int, typer.Option("--lines", "-n")] = 40) -> None:
        """Print the last lines of the broker's log."""
        typer.echo(tail(local_kafka(config, data_dir=data_dir).server_log, lines))

    app.add_typer(kafka, name="kafka")
    app.add_typer(mlflow, name="mlflow")
