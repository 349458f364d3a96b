"""driftline's Prometheus metric catalog: every metric any service exports, in one place.

Each service builds one `Metrics` on its own `CollectorRegistry` (no global registry), so
tests can read values and several services can live in one process. The Grafana dashboard
and the alert rules in ``deploy/`` may only use names from `METRIC_NAMES`; a test checks it.

Label cardinality is bounded: per-feature series are exported only for the top-N features
of a model by drift score (``monitor.top_features_metrics``); the rest are folded into the
feature label ``_other``.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

__all__ = ["METRIC_NAMES", "OTHER_FEATURES", "Metrics"]

OTHER_FEATURES = "_other"

_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
_RETRAIN_BUCKETS = (1.0, 2.5, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0, 300.0, 600.0)


class Metrics:
    """All driftline metrics on one registry; a service touches only the ones it needs."""

    def __init__(self, service: str, registry: CollectorRegistry | None = None) -> None:
        self.service = service
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        self.build_info = Gauge("driftline_build_info", "Service and version", ["service", "version"], registry=r)
        # throughput and bad input
        self.events_in = Counter(
            "driftline_events_in", "Records consumed", ["service", "topic"], registry=r
        )
        self.events_out = Counter(
            "driftline_events_out", "Records produced and acknowledged", ["service", "topic"], registry=r
        )
        self.events_rejected = Counter(
            "driftline_events_rejected", "Records sent to the dead-letter topic", ["service", "reason"], registry=r
        )
        self.delivery_errors = Counter(
            "driftline_delivery_errors", "Produce requests the broker did not acknowledge", ["service"], registry=r
        )
        self.consumer_lag = Gauge(
            "driftline_consumer_lag", "High watermark minus position", ["service", "topic", "partition"], registry=r
        )
        # join and windows (ingest)
        self.join = Counter(
            "driftline_join", "Prediction/outcome join results (hit, outcome_first, expired)", ["result"], registry=r
        )
        self.join_store_size = Gauge("driftline_join_store_size", "Open joins held", ["kind"], registry=r)
        self.late_events = Counter(
            "driftline_late_events", "Events behind the watermark: counted, not applied", ["service", "model"],
            registry=r,
        )
        self.panes_emitted = Counter("driftline_panes_emitted", "Pane partials produced", ["model"], registry=r)
        self.unmonitored_events = Counter(
            "driftline_unmonitored_events", "Predictions and labeled rows of a model without a reference profile: "
            "joined and labeled, not monitored (past 100 such models, the others as model _other)", ["model"],
            registry=r,
        )
        # evaluation and drift (monitor)
        self.windows_evaluated = Counter(
            "driftline_windows_evaluated", "Windows evaluated", ["model"], registry=r
        )
        self.window_evaluation_seconds = Histogram(
            "driftline_window_evaluation_seconds", "Time to evaluate one window", ["model"],
            buckets=_LATENCY_BUCKETS, registry=r,
        )
        self.feature_drift_score = Gauge(
            "driftline_feature_drift_score", "Drift score (statistic or PSI) per feature, last window",
            ["model", "feature", "test"], registry=r,
        )
        self.feature_p_value = Gauge(
            "driftline_feature_p_value", "Adjusted p-value per feature, last window", ["model", "feature", "test"],
            registry=r,
        )
        self.drift_ratio = Gauge(
            "driftline_drift_ratio", "Share of drifted features, last window", ["model", "kind"], registry=r
        )
        self.window_metric = Gauge(
            "driftline_window_metric", "Model performance on the last labeled window", ["model", "metric"],
            registry=r,
        )
        self.window_samples = Gauge(
            "driftline_window_samples", "Events in the last evaluated window", ["model", "kind"], registry=r
        )
        self.alerts = Counter(
            "driftline_alerts", "Alerts published on the trigger topic", ["model", "kind", "severity", "status"],
            registry=r,
        )
        self.watermark_seconds = Gauge(
            "driftline_watermark_seconds", "Event-time watermark (epoch seconds)", ["service"], registry=r
        )
        # retraining and MLflow
        self.retrain_runs = Counter(
            "driftline_retrain_runs", "Retrain decisions (promoted, challenger, deferred, duplicate, failed)",
            ["model", "outcome"], registry=r,
        )
        self.retrain_failures = Counter(
            "driftline_retrain_failures", "Retrains that failed", ["model", "reason"], registry=r
        )
        self.retrain_duration_seconds = Histogram(
            "driftline_retrain_duration_seconds", "Alert received to version registered", ["model"],
            buckets=_RETRAIN_BUCKETS, registry=r,
        )
        self.mlflow_up = Gauge("driftline_mlflow_up", "1 when the last MLflow call succeeded", registry=r)
        self.mlflow_errors = Counter("driftline_mlflow_errors", "MLflow calls that failed", registry=r)
        self.model_promotions = Counter(
            "driftline_model_promotions", "Versions promoted to champion", ["model"], registry=r
        )
        # A/B tests
        self.ab_variant_metric = Gauge(
            "driftline_ab_variant_metric", "Metric per experiment arm", ["experiment", "variant", "metric"],
            registry=r,
        )
        self.ab_variant_samples = Gauge(
            "driftline_ab_variant_samples", "Labeled events per experiment arm", ["experiment", "variant"],
            registry=r,
        )
        self.ab_p_value = Gauge("driftline_ab_p_value", "p-value of the experiment's test", ["experiment"], registry=r)

        from driftline import __version__

        self.build_info.labels(service=service, version=__version__).set(1)


def _exported_names() -> frozenset[str]:
    suffixes = {"counter": ("_total",), "histogram": ("_bucket", "_count", "_sum"), "gauge": ("",)}
    names: set[str] = set()
    for family in Metrics("catalog").registry.collect():
        names.update(family.name + suffix for suffix in suffixes[family.type])
    return frozenset(names)


METRIC_NAMES: frozenset[str] = _exported_names()
"""Every sample name the services can export (``_total``, ``_bucket``, ... included)."""
