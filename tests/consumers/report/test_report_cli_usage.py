"""`driftline report` refuses bad usage before it reads any configuration or broker."""

from __future__ import annotations

from typer.testing import CliRunner

from driftline.cli import app


def test_window_end_and_last_exclude_each_other() -> None:
    done = CliRunner().invoke(app, ["report", "--model", "churn", "--last", "--window-end", "600"])
    assert done.exit_code == 2
    assert done.stderr.strip() == "give either --window-end or --last, not both"


def test_an_unreadable_window_end_is_a_usage_error() -> None:
    done = CliRunner().invoke(app, ["report", "--model", "churn", "--window-end", "yesterday"])
    assert done.exit_code == 2
    assert "'yesterday' is neither epoch seconds nor an ISO 8601 time" in done.stderr
