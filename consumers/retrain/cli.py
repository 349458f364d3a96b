"""Commands: the retrain worker, the one-shot retrain, the model registry and its backups.

Heavy imports (MLflow, Kafka clients, scikit-learn) happen inside the commands, so
``driftline --help`` stays fast.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from driftline.options import ConfigOption, config_or_exit

__all__ = ["register"]

ModelArg = Annotated[str, typer.Argument(help="registered model name (= the model's name in events)")]
VersionArg = Annotated[str, typer.Argument(help="model version number")]
TrackingOption = Annotated[
    str | None,
    typer.Option("--tracking-uri", help="MLflow server (default: retrain.tracking_uri, then MLFLOW_TRACKING_URI)"),
]


def _registry(config: Path | None, tracking_uri: str | None):  # type: ignore[no-untyped-def]
    from driftline.consumers.retrain.registry import MlflowRegistry

    cfg = config_or_exit(config)
    uri = tracking_uri or cfg.retrain.tracking_uri
    return cfg, MlflowRegistry(uri, experiment_prefix=cfg.retrain.experiment_prefix)


def _publish_decision(cfg, registry, model: str, version: str, action: str, reason: str,  # type: ignore[no-untyped-def]
                      previous: str | None, *, publish: bool) -> None:
    """Every registry decision is a ModelEvent on `models`; a new champion's reference goes to `references`."""
    if not publish:
        return
    from driftline.consumers.retrain.announce import announce_decision

    try:
        sent = announce_decision(cfg, registry, model, version, action, reason, previous)
    except RuntimeError as exc:
        typer.echo(f"warning: registry changed but the decision was not published: {exc}", err=True)
        raise typer.Exit(1) from None
    typer.echo(f"published {action} v{version} on {cfg.kafka.topic('models')}"
               + (" and its reference on " + cfg.kafka.topic("references") if sent > 1 else ""))


PublishOption = Annotated[bool, typer.Option("--publish/--no-publish", help="announce the decision on `models`")]


def register(app: typer.Typer) -> None:
    """Add ``retrain-worker``, ``retrain``, ``models ...`` and ``registry ...`` to the root CLI."""
    models = typer.Typer(help="The model registry: champions, challengers, rollbacks.", no_args_is_help=True)
    registry_app = typer.Typer(help="Back up and restore the model registry.", no_args_is_help=True)
    app.add_typer(models, name="models")
    app.add_typer(registry_app, name="registry")

    @app.command("retrain-worker")
    def retrain_worker(
        config: ConfigOption = None,
        max_alerts: Annotated[int | None, typer.Option(help="stop after this many alerts (default: run on)")] = None,
        log_level: Annotated[str, typer.Option(help="logging level")] = "INFO",
    ) -> None:
        """Consume drift alerts and answer them with MLflow retrain runs (manual commits)."""
        import logging

        from driftline.consumers.retrain.app import run_worker

        cfg = config_or_exit(config)
        logging.basicConfig(level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
        committed = run_worker(cfg, max_alerts=max_alerts)
        typer.echo(f"retrain worker stopped after {committed} alert(s)")

    @app.command("retrain")
    def retrain(
        model: Annotated[str, typer.Option("--model", "-m", help="model to check and retrain")],
        config: ConfigOption = None,
        drift_threshold: Annotated[float, typer.Option(help="retrain when the drift ratio reaches this")] = 0.3,
        min_accuracy: Annotated[float | None, typer.Option(help="promote only at this accuracy or more")] = None,
        metric: Annotated[str | None, typer.Option(help="primary metric (default: the task's)")] = None,
        min_metric: Annotated[float | None, typer.Option(help="floor (ceiling for errors) of --metric")] = None,
        lookback_s: Annotated[float, typer.Option(help="recent labeled data to test when no alert is found")] = 3600.0,
        force: Annotated[bool, typer.Option(help="retrain even without drift")] = False,
        summary: Annotated[bool, typer.Option(help="print a summary table")] = False,
    ) -> None:
        """Check a model's current drift and retrain it when needed (one shot, e.g. from cron)."""
        from driftline.consumers.retrain.oneshot import print_summary, retrain_once

        cfg = config_or_exit(config)
        overrides: dict[str, object] = {}
        if min_accuracy is not None:
            overrides.update(primary_metric="accuracy", min_metric=min_accuracy)
        if metric is not None:
            overrides["primary_metric"] = metric
        if min_metric is not None:
            overrides["min_metric"] = min_metric
        cfg = cfg.model_copy(update={"retrain": cfg.retrain.model_copy(update=overrides)})
        try:
            report = retrain_once(cfg, model, drift_threshold=drift_threshold, lookback_s=lookback_s, force=force)
        except ValueError as exc:  # a policy that cannot apply (e.g. --min-accuracy for a regression)
            typer.echo(f"{model}: {exc}", err=True)
            raise typer.Exit(2) from None
        if summary:
            print_summary(report)
        else:
            typer.echo(f"{model}: {report.outcome} — {report.reason}")
        if report.outcome == "failed":
            raise typer.Exit(1)

    @models.command("list")
    def models_list(config: ConfigOption = None, tracking_uri: TrackingOption = None) -> None:
        """List registered models with their champion and challenger."""
        from rich.console import Console
        from rich.table import Table

        _cfg, registry = _registry(config, tracking_uri)
        table = Table("model", "champion", "challenger", "versions")
        for name, aliases, n_versions in registry.list_models():
            table.add_row(name, aliases.get("champion", "-"), aliases.get("challenger", "-"), str(n_versions))
        Console().print(table)

    @models.command("show")
    def models_show(model: ModelArg, config: ConfigOption = None, tracking_uri: TrackingOption = None) -> None:
        """Show every version of a model: stage, aliases, decision, metrics."""
        import datetime as dt

        from rich.console import Console
        from rich.table import Table

        _cfg, registry = _registry(config, tracking_uri)
        versions = registry.versions(model)
        if not versions:
            typer.echo(f"no versions of {model!r}", err=True)
            raise typer.Exit(1)
        table = Table("version", "stage", "aliases", "decision", "created (UTC)", "metrics", title=model)
        for v in versions:
            metrics = registry.version_metrics(model, v.version)
            shown = "\n".join(f"{k}={val:.4f}" for k, val in sorted(metrics.items()))
            created = dt.datetime.fromtimestamp(v.created_ts, dt.UTC).strftime("%Y-%m-%d %H:%M:%S")
            table.add_row(v.version, v.stage, ",".join(v.aliases) or "-", v.tags.get("driftline.decision", "-"),
                          created, shown)
        Console().print(table)

    @models.command("compare")
    def models_compare(model: ModelArg, version_a: VersionArg, version_b: VersionArg, config: ConfigOption = None,
                       tracking_uri: TrackingOption = None) -> None:
        """Compare the holdout metrics of two versions side by side."""
        from rich.console import Console
        from rich.table import Table

        from driftline.stream.performance import HIGHER_IS_BETTER

        _cfg, registry = _registry(config, tracking_uri)
        a, b = registry.version_metrics(model, version_a), registry.version_metrics(model, version_b)
        table = Table("metric", f"v{version_a}", f"v{version_b}", "better", title=f"{model}: holdout metrics")
        for name in sorted(set(a) | set(b)):
            va, vb = a.get(name), b.get(name)
            better = "-"
            if va is not None and vb is not None and va != vb:
                higher = HIGHER_IS_BETTER.get(name, True)
                better = f"v{version_a}" if (va > vb) == higher else f"v{version_b}"
            table.add_row(name, "-" if va is None else f"{va:.4f}", "-" if vb is None else f"{vb:.4f}", better)
        Console().print(table)

    @models.command("promote")
    def models_promote(model: ModelArg, version: VersionArg, config: ConfigOption = None,
                       tracking_uri: TrackingOption = None, publish: PublishOption = True) -> None:
        """Make a version the champion by hand (the old champion is archived)."""
        cfg, registry = _registry(config, tracking_uri)
        previous = registry.promote(model, version)
        registry.tag_version(model, version, {"driftline.decision": "promoted", "driftline.manual": "true"})
        typer.echo(f"{model}: v{version} is champion" + (f" (v{previous} archived)" if previous else ""))
        _publish_decision(cfg, registry, model, version, "promoted", "promoted by hand", previous, publish=publish)

    @models.command("rollback")
    def models_rollback(model: ModelArg, config: ConfigOption = None, tracking_uri: TrackingOption = None,
                        publish: PublishOption = True) -> None:
        """Restore the champion that the current one replaced."""
        cfg, registry = _registry(config, tracking_uri)
        try:
            restored, demoted = registry.rollback(model)
        except ValueError as exc:
            typer.echo(str(exc), err=True)
            raise typer.Exit(1) from None
        typer.echo(f"{model}: v{restored} is champion again (v{demoted} archived)")
        _publish_decision(cfg, registry, model, restored, "rolled_back", f"rolled back from v{demoted}", demoted,
                          publish=publish)

    @models.command("archive")
    def models_archive(model: ModelArg, version: VersionArg, config: ConfigOption = None,
                       tracking_uri: TrackingOption = None, publish: PublishOption = True) -> None:
        """Archive a version and remove its aliases."""
        cfg, registry = _registry(config, tracking_uri)
        registry.archive(model, version)
        typer.echo(f"{model}: v{version} archived")
        _publish_decision(cfg, registry, model, version, "archived", "archived by hand", None, publish=publish)

    @registry_app.command("backup")
    def registry_backup(
        path: Annotated[Path, typer.Argument(help="JSON file to write")],
        config: ConfigOption = None,
        tracking_uri: TrackingOption = None,
        model: Annotated[list[str] | None, typer.Option("--model", "-m", help="only these models (repeatable)")] = None,
    ) -> None:
        """Write the registry's models, versions, aliases and tags to a JSON file."""
        _cfg, registry = _registry(config, tracking_uri)
        document = registry.backup(model or None)
        path.write_text(json.dumps(document, indent=2, sort_keys=True))
        n_versions = sum(len(m["versions"]) for m in document["models"])
        typer.echo(f"backed up {len(document['models'])} model(s), {n_versions} version(s) to {path}")

    @registry_app.command("restore")
    def registry_restore(path: Annotated[Path, typer.Argument(help="JSON file written by `registry backup`")],
                         config: ConfigOption = None, tracking_uri: TrackingOption = None) -> None:
        """Recreate a backup in an empty registry (version numbers, stages, aliases and tags kept)."""
        _cfg, registry = _registry(config, tracking_uri)
        try:
            document = json.loads(path.read_text())
            restored = registry.restore(document)
        except (OSError, ValueError) as exc:
            typer.echo(f"cannot restore {path}: {exc}", err=True)
            raise typer.Exit(1) from None
        typer.echo(f"restored {len(document['models'])} model(s), {restored} version(s) from {path}")
