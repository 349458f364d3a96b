"""CLI options shared by every subcommand, and the one place a command turns them into config."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from driftline.config import ConfigError, DriftlineConfig, load_config

__all__ = ["ConfigOption", "config_or_exit"]

ConfigOption = Annotated[
    Path | None,
    typer.Option("--config", "-c", help="driftline.toml to read (default: $DRIFTLINE_CONFIG or ./driftline.toml)"),
]


def config_or_exit(path: Path | None, **overrides: Any) -> DriftlineConfig:
    """Load the configuration; on error print every bad key and exit 2."""
    try:
        return load_config(path, **overrides)
    except ConfigError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(2) from None
