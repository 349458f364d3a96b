"""`driftline simulate`: publish realistic prediction and outcome streams with drift scenarios."""

from __future__ import annotations

import signal
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from driftline.options import ConfigOption, config_or_exit

if TYPE_CHECKING:
    from driftline.producers.publish import SimulationSummary
    from driftline.producers.simulator import ModelSpec

__all__ = ["parse_models", "register"]

_BROKER_MAX_MESSAGE_BYTES = 1_048_588  # Kafka's default message.max.bytes


def parse_models(
    models: str,
    scenarios: list[str],
    *,
    version: str = "1",
    shift_at_s: float = 600.0,
    ramp_s: float = 600.0,
    period_s: float = 600.0,
    magnitude: float = 1.0,
) -> list[ModelSpec]:
    """Model specs from ``churn,eta,fraud:churn`` and scenarios ``MODEL=KIND`` or ``KIND`` (all models)."""
    from driftline.producers.scenarios import DriftScenario
    from driftline.producers.simulator import ModelSpec

    names = [part.strip() for part in models.split(",") if part.strip()]
    if not names:
        raise ValueError("--models names no model")
    chosen: dict[str, str] = {}
    for item in scenarios:
        target, _, kind = item.rpartition("=")
        for name in ([target] if target else [n.partition(":")[0] for n in names]):
            chosen[name] = kind
    known = {n.partition(":")[0] for n in names}
    unknown = sorted(set(chosen) - known)
    if unknown:
        raise ValueError(f"--scenario names models not in --models: {', '.join(unknown)}")
    return [
        ModelSpec.parse(text, version=version, scenario=DriftScenario(
            chosen.get(text.partition(":")[0], "none"), shift_at_s=shift_at_s, ramp_s=ramp_s,  # type: ignore[arg-type]
            period_s=period_s, magnitude=magnitude))
        for text in names
    ]


def _print_summary(summary: SimulationSummary, reference_paths: dict[str, Path]) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    table = Table(title="driftline simulate: sent")
    for column in ("model", "predictions", "outcomes"):
        table.add_column(column, justify="left" if column == "model" else "right")
    for model in sorted({model for model, _ in summary.records}):
        sent = summary.records
        table.add_row(model, f"{sent[(model, 'predictions')]:,}", f"{sent[(model, 'outcomes')]:,}")
    console.print(table)
    malformed = ", ".join(f"{kind}={count}" for kind, count in sorted(summary.malformed.items())) or "none"
    console.print(f"records {summary.total:,} in {summary.elapsed_s:.2f} s = {summary.rate_per_s:,.0f} records/s; "
                  f"event time spanned {summary.event_time_span_s:,.0f} s")
    console.print(f"malformed (on purpose) {sum(summary.malformed.values()):,}: {malformed}")
    console.print(f"delivery errors {summary.delivery_errors}, undelivered at exit {summary.undelivered}")
    if summary.interrupted:
        console.print("interrupted: stopped early on Ctrl-C")
    for model, path in reference_paths.items():
        console.print(f"reference sample of {model}: {path}")


def register(app: typer.Typer) -> None:
    """Add ``driftline simulate`` to the root CLI."""

    @app.command("simulate")
    def simulate(
        config: ConfigOption = None,
        models: Annotated[str, typer.Option(help="comma list: churn, eta, race, or NAME:TEMPLATE")] = "churn,eta,race",
        events: Annotated[int, typer.Option(min=0, help="predictions to send over all models")] = 10_000,
        rate: Annotated[float, typer.Option(min=0, help="records per wall-clock second; 0 = max")] = 0.0,
        events_per_s: Annotated[float, typer.Option(min=0.001, help="predictions per event-time second")] = 100.0,
        scenario: Annotated[list[str] | None, typer.Option(
            help="MODEL=KIND or KIND for all; none|sudden|gradual|recurring|concept|new_category|prediction_shift",
        )] = None,
        shift_at_s: Annotated[float, typer.Option(help="event-time offset where drift starts")] = 600.0,
        ramp_s: Annotated[float, typer.Option(help="gradual: seconds to full drift")] = 600.0,
        period_s: Annotated[float, typer.Option(help="recurring: on/off period")] = 600.0,
        magnitude: Annotated[float, typer.Option(min=0, help="drift strength (1 = clearly visible)")] = 1.0,
        label_delay_s: Annotated[float, typer.Option(min=0, help="mean outcome delay, event time")] = 60.0,
        outcome_fraction: Annotated[float, typer.Option(min=0, max=1)] = 1.0,
        missing_fraction: Annotated[float, typer.Option(min=0, max=1)] = 0.01,
        malformed_fraction: Annotated[float, typer.Option(min=0, max=1, help="records broken on purpose")] = 0.0,
        malformed_kinds: Annotated[str | None, typer.Option(help="comma list; default all five (see docs)")] = None,
        seed: int = 0,
        start_ts: Annotated[float | None, typer.Option(help="event time of the first prediction; default now")] = None,
        model_version: str = "1",
        batch_size: Annotated[int, typer.Option(min=1)] = 10_000,
        reference_out: Annotated[Path | None, typer.Option(help="write <model>.parquet no-drift samples here")] = None,
        reference_n: Annotated[int, typer.Option(min=1, help="events (races) per reference sample")] = 5_000,
        progress: Annotated[bool, typer.Option(help="show a progress bar")] = True,
    ) -> None:
        """Publish simulated predictions and outcomes with drift, label delay and malformed records."""
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        from driftline.producers.client import DriftlineProducer
        from driftline.producers.publish import SimulationSummary, publish
        from driftline.producers.simulator import MALFORMED_KINDS, Simulator

        cfg = config_or_exit(config)
        oversize_bytes = cfg.ingest.max_payload_bytes + 1
        too_big_for_broker = oversize_bytes + 1024 > _BROKER_MAX_MESSAGE_BYTES
        if malformed_kinds:
            kinds = tuple(k.strip() for k in malformed_kinds.split(",") if k.strip())
        else:
            # An oversize record the broker itself refuses would be a delivery error, not a DLQ test.
            kinds = tuple(k for k in MALFORMED_KINDS if not (too_big_for_broker and k == "payload_too_large"))
        if malformed_fraction > 0 and too_big_for_broker:
            verb = "expect delivery errors for" if "payload_too_large" in kinds else "not sending"
            typer.secho(f"warning: {verb} payload_too_large records: {oversize_bytes:,} bytes (ingest."
                        "max_payload_bytes + 1) exceed a default broker's message.max.bytes; lower "
                        "ingest.max_payload_bytes to exercise that reject", fg=typer.colors.YELLOW, err=True)
        try:
            specs = parse_models(models, scenario or [], version=model_version, shift_at_s=shift_at_s,
                                 ramp_s=ramp_s, period_s=period_s, magnitude=magnitude)
            simulator = Simulator(
                specs, seed=seed, start_ts=time.time() if start_ts is None else start_ts,
                events_per_s=events_per_s, label_delay_s=label_delay_s, outcome_fraction=outcome_fraction,
                missing_fraction=missing_fraction, malformed_fraction=malformed_fraction, malformed_kinds=kinds,
                oversize_bytes=oversize_bytes,
            )
        except ValueError as exc:
            typer.secho(f"error: {exc}", fg=typer.colors.RED, err=True)
            raise typer.Exit(2) from None
        references = simulator.write_references(reference_out, reference_n) if reference_out else {}
        overrides = {}
        if malformed_fraction > 0 and "payload_too_large" in kinds:
            overrides["message.max.bytes"] = max(1_000_000, oversize_bytes + 65_536)
        summary = SimulationSummary()
        previous_handler = signal.signal(signal.SIGTERM, signal.default_int_handler)  # stop like Ctrl-C
        try:
            if events > 0:
                with DriftlineProducer.from_config(cfg, client_overrides=overrides) as producer:
                    columns = (TextColumn("simulate"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
                    with Progress(*columns, disable=not progress) as bar:
                        task = bar.add_task("predictions", total=events)
                        summary = publish(simulator, producer, events, rate_per_s=rate, batch_size=batch_size,
                                          on_progress=lambda done: bar.update(task, completed=done))
        finally:
            signal.signal(signal.SIGTERM, previous_handler)
        _print_summary(summary, references)
        if summary.interrupted:
            raise typer.Exit(130)
        if summary.delivery_errors or summary.undelivered:
            raise typer.Exit(1)
