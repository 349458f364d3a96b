"""Commands of the monitor services: `driftline ingest`, `driftline monitor`, `driftline reference build`."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated, Literal

import typer

from driftline.options import ConfigOption, config_or_exit

__all__ = ["register"]

InstanceOption = Annotated[
    str | None,
    typer.Option("--instance", help="stable name of this process in its group (default from the config)"),
]
LogLevelOption = Annotated[str, typer.Option("--log-level", help="DEBUG, INFO, WARNING or ERROR")]


def _logging(level: str) -> None:
    logging.basicConfig(level=level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")


def ingest(config: ConfigOption = None, instance: InstanceOption = None, log_level: LogLevelOption = "INFO") -> None:
    """Stage 1: join predictions with outcomes into `labeled`, emit pane partials, reject to `dlq`."""
    from driftline.consumers.common.signals import StopFlag
    from driftline.consumers.ingest.app import serve

    _logging(log_level)
    cfg = config_or_exit(config)
    serve(cfg, stop=StopFlag().install(), instance_id=instance)


def monitor(config: ConfigOption = None, instance: InstanceOption = None, log_level: LogLevelOption = "INFO") -> None:
    """Stage 2: merge pane partials into windows, test them, publish drift alerts on `alerts`."""
    from driftline.consumers.common.signals import StopFlag
    from driftline.consumers.monitor.app import serve

    _logging(log_level)
    cfg = config_or_exit(config)
    serve(cfg, stop=StopFlag().install(), instance_id=instance)


def reference_build(
    model: Annotated[str, typer.Option("--model", "-m", help="model name")],
    task: Annotated[Literal["classification", "regression", "ranking"], typer.Option("--task")],
    source: Annotated[
        Path | None,
        typer.Option("--from", help="CSV, parquet, or JSON Lines of PredictionEvent/LabeledEvent"),
    ] = None,
    from_labeled: Annotated[
        tuple[float, float] | None,
        typer.Option("--from-labeled", help="read `labeled` for event time [START END) (epoch seconds)"),
    ] = None,
    version: Annotated[str, typer.Option("--version", help="model version the profile belongs to")] = "1",
    out: Annotated[Path | None, typer.Option("--out", help="also write the profile as JSON here")] = None,
    publish: Annotated[bool, typer.Option("--publish/--no-publish", help="publish on `references`")] = True,
    config: ConfigOption = None,
) -> None:
    """Build a model's reference profile and publish it on the compacted `references` topic."""
    from driftline.consumers.common.references import encode_profile, publish_profile
    from driftline.consumers.ingest.reference import load_sample
    from driftline.stream.reference import build_reference

    cfg = config_or_exit(config)
    if (source is None) == (from_labeled is None):
        typer.echo("give exactly one of --from FILE or --from-labeled START END", err=True)
        raise typer.Exit(2)
    sample = load_sample(cfg, model, source=source, labeled_span=from_labeled)
    profile = build_reference(sample, model=model, model_version=version, task=task)
    if out is not None:
        out.write_bytes(encode_profile(profile))
    if publish:
        publish_profile(cfg.kafka, profile)
    typer.echo(
        f"reference {profile.reference_id} for {model} v{version}: {profile.n_samples} samples, "
        f"{len(profile.features)} features{' (published)' if publish else ''}"
    )


def register(app: typer.Typer) -> None:
    """Add `ingest`, `monitor` and `reference build` to the root CLI."""
    app.command("ingest")(ingest)
    app.command("monitor")(monitor)
    reference = typer.Typer(help="Reference profiles: the baseline each model version is tested against.")
    reference.command("build")(reference_build)
    app.add_typer(reference, name="reference")
