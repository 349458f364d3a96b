"""`driftline ab-analyzer` and `driftline ab create|status`."""

from __future__ import annotations

import time
from typing import Annotated

import typer

from driftline.options import ConfigOption, config_or_exit

__all__ = ["register"]


def _parse_variant(spec: str) -> dict[str, object]:
    """``name=version:traffic`` -> a VariantSpec dict, e.g. ``control=3:0.5``."""
    try:
        name, rest = spec.split("=", 1)
        version, traffic = rest.split(":", 1)
        return {"name": name, "model_version": version, "traffic": float(traffic)}
    except ValueError:
        raise typer.BadParameter(f"variant {spec!r} must look like name=version:traffic, e.g. control=3:0.5") from None


def register(app: typer.Typer) -> None:
    ab = typer.Typer(help="A/B tests between model variants: define experiments and read their results.",
                     no_args_is_help=True)

    @app.command("ab-analyzer")
    def ab_analyzer(config: ConfigOption = None) -> None:
        """Run the A/B analyzer: per-variant metrics from `labeled`, significance, `ab-results`."""
        from driftline.consumers.ab.app import run

        run(config_or_exit(config))

    @ab.command("create")
    def create(
        experiment_id: Annotated[str, typer.Option("--id", help="experiment id")],
        model: Annotated[str, typer.Option(help="model under test")],
        variant: Annotated[list[str], typer.Option(help="name=version:traffic; give two or more")],
        metric: Annotated[str, typer.Option(help="accuracy | mae | ndcg@5")] = "accuracy",
        alpha: Annotated[float, typer.Option(help="significance level")] = 0.05,
        min_samples: Annotated[int, typer.Option(help="labeled events per arm before concluding")] = 500,
        config: ConfigOption = None,
    ) -> None:
        """Publish an experiment definition on the compacted `experiments` topic."""
        from driftline.consumers.common.kafka import DeliveryFailed, produce_and_wait
        from driftline.schemas.codec import encode
        from driftline.schemas.events import Experiment

        cfg = config_or_exit(config)
        experiment = Experiment(
            experiment_id=experiment_id, ts=time.time(), model=model, metric=metric, alpha=alpha,
            min_samples_per_variant=min_samples, variants=[_parse_variant(v) for v in variant],
        )
        try:
            produce_and_wait(cfg.kafka, [(cfg.kafka.topic("experiments"), encode(experiment), experiment_id.encode())],
                             what="the experiment", timeout_s=10)
        except DeliveryFailed as error:
            typer.secho(f"error: {error}", fg=typer.colors.RED, err=True)
            raise typer.Exit(1) from None
        typer.echo(f"experiment {experiment_id} created for model {model} ({len(variant)} arms, metric {metric})")

    @ab.command("status")
    def status(experiment_id: Annotated[str, typer.Argument()], config: ConfigOption = None) -> None:
        """Print the latest result of an experiment from `ab-results`."""
        from confluent_kafka.admin import AdminClient
        from rich.console import Console
        from rich.table import Table

        from driftline.consumers.common.kafka import read_to_end, topic_partitions
        from driftline.schemas.codec import RawMessage, decode_one
        from driftline.schemas.events import ABResult

        cfg = config_or_exit(config)
        try:  # the broker's partitions: the topic may predate a change of `kafka.partitions`
            partitions = topic_partitions(AdminClient(cfg.kafka.client_config()), cfg.kafka.topic("ab-results"))
        except KeyError as error:
            typer.secho(f"error: {error.args[0]}", fg=typer.colors.RED, err=True)
            raise typer.Exit(1) from None
        latest: ABResult | None = None
        for message in read_to_end(cfg.kafka, partitions):
            if message.key() == experiment_id.encode():
                decoded = decode_one(RawMessage(message.value()), ABResult)
                if isinstance(decoded, ABResult):
                    latest = decoded
        if latest is None:
            typer.echo(f"no results yet for experiment {experiment_id}")
            raise typer.Exit(1)
        table = Table(title=f"{experiment_id}: {latest.metric}, {latest.test} p={latest.p_value:.4g}")
        for column in ("variant", "version", "n", latest.metric, "interval"):
            table.add_column(column)
        for v in latest.variants:
            table.add_row(v.name, v.model_version, str(v.n), f"{v.value:.4f}", f"[{v.ci_low:.4f}, {v.ci_high:.4f}]")
        console = Console()
        console.print(table)
        console.print(f"conclusion: {latest.conclusion}" + (f", winner {latest.winner}" if latest.winner else ""))

    app.add_typer(ab, name="ab")
