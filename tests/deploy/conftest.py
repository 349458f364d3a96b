"""Shared views of the deploy/ files: the repository root, the dashboard's and the rules' queries."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"


def _dashboard_queries(dashboard: dict[str, Any]) -> list[tuple[str, str]]:
    """(where, PromQL) for every panel target and annotation of a Grafana dashboard."""
    found: list[tuple[str, str]] = []

    def walk(panels: list[dict[str, Any]]) -> None:
        for panel in panels:
            walk(panel.get("panels", []))
            for target in panel.get("targets", []):
                found.append((f"panel {panel['title']!r} target {target['refId']}", target["expr"]))

    walk(dashboard["panels"])
    for annotation in dashboard.get("annotations", {}).get("list", []):
        if "expr" in annotation:
            found.append((f"annotation {annotation['name']!r}", annotation["expr"]))
    return found


@pytest.fixture(scope="session")
def repo() -> Path:
    return REPO


@pytest.fixture(scope="session")
def dashboard() -> dict[str, Any]:
    return json.loads((DEPLOY / "grafana" / "dashboards" / "driftline.json").read_text())


@pytest.fixture(scope="session")
def dashboard_queries(dashboard: dict[str, Any]) -> list[tuple[str, str]]:
    return _dashboard_queries(dashboard)


@pytest.fixture(scope="session")
def alert_rules() -> list[dict[str, Any]]:
    groups = yaml.safe_load((DEPLOY / "prometheus" / "alerts.yml").read_text())["groups"]
    return [rule for group in groups for rule in group["rules"]]


@pytest.fixture(scope="session")
def cli_options() -> Callable[[list[str]], set[str]]:
    """Options of ``driftline <words...>``; fails when that command does not exist in the CLI."""
    import typer

    from driftline.cli import app

    def options(words: list[str]) -> set[str]:
        command = typer.main.get_command(app)
        for word in words:
            assert word in getattr(command, "commands", {}), f"`driftline {' '.join(words)}` does not exist"
            command = command.commands[word]
        return {opt for param in command.params for opt in (*param.opts, *param.secondary_opts)}

    return options


@pytest.fixture(scope="session")
def promtool() -> str:
    path = shutil.which("promtool")
    if path is None:
        pytest.skip("promtool not installed (Debian package `prometheus`; `make test` installs it)")
    return path


@pytest.fixture(scope="session")
def prometheus_binary() -> str:
    path = shutil.which("prometheus")
    if path is None:
        pytest.skip("prometheus not installed (Debian package `prometheus`; `make test` installs it)")
    return path
