"""`driftline report`: one window's drift report (HTML + PNG) rebuilt from `references` and `panes`."""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from driftline.options import ConfigOption, config_or_exit

if TYPE_CHECKING:
    from driftline.schemas.events import FeatureResult
    from driftline.stream.windows import WindowResult

__all__ = ["parse_window_end", "register"]


def parse_window_end(text: str) -> float:
    """Epoch seconds from ``1764000000`` or ISO 8601 (``2026-11-24T06:00:00Z``; no zone means UTC)."""
    try:
        seconds = float(text)
    except ValueError:
        pass
    else:
        if not math.isfinite(seconds):
            raise typer.BadParameter(f"{text!r} is not a finite time")
        return seconds
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise typer.BadParameter(f"{text!r} is neither epoch seconds nor an ISO 8601 time") from None
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()


def _report_dir(root: Path, model: str, window_end: float) -> Path:
    """``root/<model>/<window end, UTC>``: one directory per window, so daily runs keep their history."""
    stamp = datetime.fromtimestamp(window_end, tz=UTC).strftime("%Y%m%dT%H%M%SZ")
    return root / re.sub(r"[^A-Za-z0-9._-]", "_", model) / stamp


def _most_drifted_first(result: FeatureResult) -> tuple[bool, float]:
    return not result.drifted, result.p_adjusted if result.p_adjusted is not None else 1.0


def _print_result(result: WindowResult, html: Path, png: Path, *, open_url: bool) -> None:
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    def utc(ts: float) -> str:
        return datetime.fromtimestamp(ts, tz=UTC).strftime("%Y-%m-%d %H:%M:%S")

    console = Console()
    data = result.data
    table = Table(title=f"{escape(result.model)} v{result.model_version}: {utc(result.window_start)} – "
                        f"{utc(result.window_end)} UTC, {result.n_events} events")
    for column in ("feature", "test", "statistic", "adjusted p", "drifted"):
        table.add_column(column, justify="left" if column in ("feature", "test") else "right")
    for section, results in (("data", data.primary()), ("model output", result.prediction)):
        table.add_section()
        for r in sorted((r for r in results if r.p_adjusted is not None), key=_most_drifted_first):
            table.add_row(escape(r.feature if section == "data" else f"{r.feature} (model output)"), r.test,
                          f"{r.statistic:.4g}", f"{r.p_adjusted:.3g}", "[bold red]yes[/]" if r.drifted else "no")
    console.print(table)
    if not data.sufficient:
        console.print(f"{result.n_events} events: fewer than monitor.min_samples, nothing was tested")
    else:
        console.print(f"data drift: {'YES' if data.drifted else 'no'} ({len(data.drifted_features)} of "
                      f"{data.n_tested} features, ratio {data.drift_ratio:.2f}); prediction drift: "
                      f"{'YES' if result.prediction_drifted else 'no'}; concept drift: "
                      f"{'YES' if result.concept_drifted else 'no'}")
    console.print(f"html: {html}\npng:  {png}", soft_wrap=True, highlight=False)
    if open_url:
        import webbrowser

        url = html.resolve().as_uri()
        if not webbrowser.open(url):
            console.print(f"no browser to open; the report is at {url}", soft_wrap=True, highlight=False)


def report(
    model: Annotated[str, typer.Option("--model", "-m", help="model name")],
    window_end: Annotated[
        str | None,
        typer.Option("--window-end", help="end of the window: epoch seconds or ISO 8601 (UTC), a multiple of step_s"),
    ] = None,
    last: Annotated[bool, typer.Option("--last", help="the last complete window with events (the default)")] = False,
    out: Annotated[
        Path, typer.Option("--out", help="root directory; the report goes to OUT/<model>/<window end>/")
    ] = Path("reports"),
    open_url: Annotated[bool, typer.Option("--open-url", help="open the HTML report in a browser")] = False,
    config: ConfigOption = None,
) -> None:
    """Write the drift report (HTML + PNG) of one window of a model, rebuilt from Kafka."""
    from confluent_kafka import KafkaError, KafkaException

    from driftline.consumers.common.kafka import KafkaBrokerError
    from driftline.consumers.report.builder import ReportError, evaluate_window, select_window
    from driftline.consumers.report.source import latest_profile, read_partials, scan_panes
    from driftline.stream.report import render_window_report

    if last and window_end is not None:
        typer.echo("give either --window-end or --last, not both", err=True)
        raise typer.Exit(2)
    end = parse_window_end(window_end) if window_end is not None else None
    cfg = config_or_exit(config)
    try:
        profile = latest_profile(cfg.kafka, model)
        scan = scan_panes(cfg.kafka, model, timeout_s=cfg.monitor.restore_timeout_s)
        chosen_end, chosen = select_window(profile, scan.records, cfg.monitor, window_end=end)
        panes = read_partials(cfg.kafka, scan.topic, chosen, timeout_s=cfg.monitor.restore_timeout_s)
        rejected = scan.n_rejected + panes.n_rejected
        if rejected:
            typer.echo(f"warning: {rejected} records of {model!r} on `panes` could not be decoded", err=True)
        result = evaluate_window(profile, panes.partials, cfg.monitor, chosen_end)
    except (ReportError, TimeoutError) as exc:
        typer.secho(f"error: {exc}", fg=typer.colors.RED, err=True)
        raise typer.Exit(1) from None
    except (KafkaException, KafkaBrokerError) as exc:
        error = exc.args[0] if exc.args else exc
        detail = error.str() if isinstance(error, KafkaError) else str(exc)
        typer.secho(f"error: Kafka at {cfg.kafka.bootstrap_servers}: {detail}", fg=typer.colors.RED, err=True)
        raise typer.Exit(1) from None
    files = render_window_report(result, _report_dir(out, model, result.window_end))
    _print_result(result, files.html, files.png, open_url=open_url)


def register(app: typer.Typer) -> None:
    """Add `report` to the root CLI."""
    app.command("report")(report)
