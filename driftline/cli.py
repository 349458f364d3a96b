"""The `driftline` command: one entry point, a subcommand per service and tool.

Each package registers its own commands (``register(app)`` in its ``cli.py``); heavy imports
(Kafka clients, MLflow, scipy) happen inside the commands so ``driftline --help`` stays fast.
"""

from __future__ import annotations

import typer

from driftline import demo as demo_cli
from driftline import topics as topics_cli
from driftline.consumers import cli as consumers_cli
from driftline.consumers.ab import cli as ab_cli
from driftline.consumers.report import cli as report_cli
from driftline.consumers.retrain import cli as retrain_cli
from driftline.local import cli as local_cli
from driftline.producers import cli as producers_cli

app = typer.Typer(
    name="driftline",
    help="Kafka-native monitoring for ML models: drift windows, alerts, retraining, A/B tests.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

for module in (local_cli, topics_cli, producers_cli, consumers_cli, retrain_cli, ab_cli, report_cli, demo_cli):
    module.register(app)


if __name__ == "__main__":
    app()
