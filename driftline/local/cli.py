"""`driftline kafka ...` and `driftline mlflow ...`: the local no-Docker stack."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from driftline.local.kafka import LocalKafka
from driftline.local.mlflow_server import LocalMlflow
from driftline.local.process import LocalServiceError, tail
from driftline.options import ConfigOption, config_or_exit

__all__ = ["local_kafka", "local_mlflow", "register"]

PortOption = Annotated[int | None, typer.Option("--port", help="listener port (default from config)")]
DataDirOption = Annotated[Path | None, typer.Option("--data-dir", help="state and logs (default var/local)")]


def local_kafka(config: Path | None, port: int | None = None, controller_port: int | None = None,
                data_dir: Path | None = None) -> LocalKafka:
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


def register(app: typer.Typer) -> None:
    kafka = typer.Typer(help="Local single-node Apache Kafka broker (KRaft) from Maven jars, no Docker.",
                        no_args_is_help=True)
    mlflow = typer.Typer(help="Local MLflow tracking server on SQLite with a local artifact store.",
                         no_args_is_help=True)

    @kafka.command("start")
    def kafka_start(config: ConfigOption = None, port: PortOption = None,
                    controller_port: Annotated[int | None, typer.Option()] = None,
                    data_dir: DataDirOption = None) -> None:
        """Fetch the jars once, format storage, start the broker and wait until it answers."""
        broker = local_kafka(config, port, controller_port, data_dir)
        before = broker.status()
        if before.running:
            typer.echo(f"kafka already running (pid {before.pid}) at {before.bootstrap}")
            return
        try:
            status = broker.start()
        except LocalServiceError as exc:
            _fail(exc)
        typer.echo(f"kafka started (pid {status.pid}) at {status.bootstrap}")

    @kafka.command("stop")
    def kafka_stop(config: ConfigOption = None, data_dir: DataDirOption = None) -> None:
        """Stop the broker this project started (by its pid file only)."""
        stopped = local_kafka(config, data_dir=data_dir).stop()
        typer.echo("kafka stopped" if stopped else "kafka was not running")

    @kafka.command("status")
    def kafka_status(config: ConfigOption = None, data_dir: DataDirOption = None) -> None:
        """Say whether the local broker runs; exit 1 when it does not."""
        status = local_kafka(config, data_dir=data_dir).status()
        if status.running:
            typer.echo(f"kafka running (pid {status.pid}) at {status.bootstrap}")
        else:
            typer.echo("kafka not running")
            raise typer.Exit(1)

    @kafka.command("logs")
    def kafka_logs(config: ConfigOption = None, data_dir: DataDirOption = None,
                   lines: Annotated[int, typer.Option("--lines", "-n")] = 40) -> None:
        """Print the last lines of the broker's log."""
        typer.echo(tail(local_kafka(config, data_dir=data_dir).server_log, lines))

    @mlflow.command("start")
    def mlflow_start(config: ConfigOption = None, port: PortOption = None,
                     data_dir: DataDirOption = None) -> None:
        """Start the MLflow tracking server in the background and wait until /health answers."""
        server = local_mlflow(config, port, data_dir)
        before = server.status()
        if before.running:
            typer.echo(f"mlflow already running (pid {before.pid}) at {before.tracking_uri}")
            return
        try:
            status = server.start()
        except LocalServiceError as exc:
            _fail(exc)
        typer.echo(f"mlflow started (pid {status.pid}) at {status.tracking_uri}")

    @mlflow.command("stop")
    def mlflow_stop(config: ConfigOption = None, data_dir: DataDirOption = None) -> None:
        """Stop the MLflow server this project started."""
        stopped = local_mlflow(config, data_dir=data_dir).stop()
        typer.echo("mlflow stopped" if stopped else "mlflow was not running")

    @mlflow.command("status")
    def mlflow_status(config: ConfigOption = None, data_dir: DataDirOption = None) -> None:
        """Say whether the local MLflow server runs; exit 1 when it does not."""
        status = local_mlflow(config, data_dir=data_dir).status()
        if status.running:
            typer.echo(f"mlflow running (pid {status.pid}) at {status.tracking_uri}")
        else:
            typer.echo("mlflow not running")
            raise typer.Exit(1)

    app.add_typer(kafka, name="kafka")
    app.add_typer(mlflow, name="mlflow")
