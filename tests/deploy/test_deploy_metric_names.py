"""The dashboard and the alert rules may only query metrics the services really export."""

from __future__ import annotations

import re
from typing import Any

import pytest

from driftline.consumers.common.metrics import METRIC_NAMES

# Series Prometheus itself writes for every scrape target; not exported by driftline, always present.
PROMETHEUS_SYNTHETIC = frozenset({"up"})

_KEYWORDS = frozenset(
    {"by", "without", "on", "ignoring", "group_left", "group_right", "bool", "offset", "and", "or", "unless",
     "inf", "nan"}
)
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'')
_MATCHERS = re.compile(r"\{[^{}]*\}")
_RANGE = re.compile(r"\[[^\]]*\]")
_GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")
_VARIABLE = re.compile(r"\$\{[^}]*\}|\$\w+")
_IDENTIFIER = re.compile(r"(?<![\w.])([A-Za-z_:][\w:]*)(\s*\()?")
_LABEL_VALUES = re.compile(r"label_values\(\s*([A-Za-z_:][\w:]*)")


def metric_names(expr: str) -> set[str]:
    """Metric names a PromQL expression reads: identifiers that are not functions, keywords or labels."""
    text = _STRING.sub('""', expr)
    text = _MATCHERS.sub("", text)
    text = _RANGE.sub("", text)
    text = _GROUPING.sub("", text)
    text = _VARIABLE.sub("", text)
    return {
        match.group(1)
        for match in _IDENTIFIER.finditer(text)
        if match.group(2) is None and match.group(1).lower() not in _KEYWORDS
    }


@pytest.mark.parametrize(
    ("expr", "expected"),
    [
        ('sum by (model, le) (rate(driftline_x_bucket{model=~"$model", le!="+Inf"}[$__rate_interval]))',
         {"driftline_x_bucket"}),
        ("histogram_quantile(0.99, sum by (le) (rate(a_bucket[5m]))) > 1e-9", {"a_bucket"}),
        ('a_total / on (service) group_left (topic) clamp_min(b_total offset 5m, 1) and bool up', {"a_total",
                                                                                                   "b_total", "up"}),
        ('max without (instance) (c) unless d{job="sum(e)"}', {"c", "d"}),
        ("time() - max(driftline_watermark_seconds) * 1000", {"driftline_watermark_seconds"}),
    ],
)
def test_metric_names_finds_exactly_the_metrics(expr: str, expected: set[str]) -> None:
    assert metric_names(expr) == expected


def test_catalog_has_the_exported_sample_names() -> None:
    # the check below is only as good as the catalog: it must list sample names, suffixes included
    assert {"driftline_alerts_total", "driftline_window_evaluation_seconds_bucket", "driftline_build_info"} <= (
        METRIC_NAMES
    )
    assert "driftline_alerts" not in METRIC_NAMES


def test_every_dashboard_query_uses_exported_metrics(dashboard_queries: list[tuple[str, str]]) -> None:
    assert len(dashboard_queries) >= 20
    unknown = {
        where: sorted(metric_names(expr) - METRIC_NAMES) for where, expr in dashboard_queries
        if metric_names(expr) - METRIC_NAMES
    }
    assert not unknown, f"queries use metrics no driftline service exports: {unknown}"
    assert all(metric_names(expr) for _, expr in dashboard_queries), "a query reads no metric at all"


def test_dashboard_variables_use_exported_metrics(dashboard: dict[str, Any]) -> None:
    queries = [v["definition"] for v in dashboard["templating"]["list"] if v["type"] == "query"]
    assert queries
    for query in queries:
        names = set(_LABEL_VALUES.findall(query))
        assert names and names <= METRIC_NAMES, query


def test_dashboard_covers_the_issue_topics(dashboard_queries: list[tuple[str, str]]) -> None:
    used = set().union(*(metric_names(expr) for _, expr in dashboard_queries))
    wanted = {
        "driftline_feature_drift_score",  # drift score per feature
        "driftline_drift_ratio",
        "driftline_alerts_total",
        "driftline_consumer_lag",
        "driftline_events_in_total",  # throughput
        "driftline_window_metric",  # model performance
        "driftline_ab_variant_metric",  # A/B
        "driftline_retrain_runs_total",
    }
    assert wanted <= used, sorted(wanted - used)


def test_dashboard_panels_use_the_provisioned_datasource(dashboard: dict[str, Any], repo) -> None:
    import yaml

    provisioned = yaml.safe_load((repo / "deploy/grafana/provisioning/datasources/prometheus.yml").read_text())
    uid = provisioned["datasources"][0]["uid"]
    variable = next(v for v in dashboard["templating"]["list"] if v["name"] == "datasource")
    assert variable["current"]["value"] == uid
    panels = [p for p in dashboard["panels"] if p["type"] != "row"]
    assert all(p["datasource"]["uid"] == "${datasource}" for p in panels)
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids)), "panel ids must be unique"


def test_every_alert_rule_uses_exported_metrics(alert_rules: list[dict[str, Any]]) -> None:
    allowed = METRIC_NAMES | PROMETHEUS_SYNTHETIC
    for rule in alert_rules:
        names = metric_names(rule["expr"])
        assert names, f"{rule['alert']} reads no metric"
        assert names <= allowed, f"{rule['alert']} uses {sorted(names - allowed)}"
        assert names - PROMETHEUS_SYNTHETIC or rule["alert"] == "DriftlineServiceDown"


def test_alert_rules_cover_the_issue(alert_rules: list[dict[str, Any]]) -> None:
    names = {rule["alert"] for rule in alert_rules}
    assert {
        "DriftlineDataDrift",
        "DriftlineConceptDrift",
        "DriftlineConsumerLagHigh",
        "DriftlineDeadLetterRateHigh",
        "DriftlineRetrainFailures",
        "DriftlineMlflowUnreachable",
    } <= names
    for rule in alert_rules:
        assert rule["labels"]["severity"] in {"info", "warning", "critical"}, rule["alert"]
        assert rule["annotations"]["summary"] and rule["annotations"]["description"], rule["alert"]
