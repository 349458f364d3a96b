"""Prometheus: the shipped config and rules pass promtool, and a real server scrapes a real driftline endpoint."""

from __future__ import annotations

import re
import shutil
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml

from driftline.consumers.common.http import MetricsServer
from driftline.consumers.common.metrics import Metrics

PROMETHEUS_DIR = Path(__file__).resolve().parents[2] / "deploy" / "prometheus"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_for(check: Callable[[], Any], timeout_s: float, what: str) -> Any:
    """Poll ``check`` until it returns something truthy; fail with ``what`` after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.25)
    pytest.fail(f"timed out after {timeout_s:.0f}s waiting for {what}")


def test_promtool_accepts_the_alert_rules(promtool: str) -> None:
    done = subprocess.run([promtool, "check", "rules", str(PROMETHEUS_DIR / "alerts.yml")],
                          capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    assert re.search(r"SUCCESS: (\d+) rules found", done.stdout)


def test_promtool_accepts_the_config(promtool: str) -> None:
    done = subprocess.run([promtool, "check", "config", str(PROMETHEUS_DIR / "prometheus.yml")],
                          capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stdout + done.stderr


def test_promtool_rejects_a_broken_rule(promtool: str, tmp_path: Path) -> None:
    # the two checks above can fail: a rule with a syntax error is refused
    broken = tmp_path / "broken.yml"
    broken.write_text(yaml.safe_dump({"groups": [{"name": "x", "rules": [
        {"alert": "Broken", "expr": "sum by (model (driftline_drift_ratio) > 0.5"}]}]}))
    done = subprocess.run([promtool, "check", "rules", str(broken)], capture_output=True, text=True, check=False)
    assert done.returncode != 0


def test_config_scrapes_every_service_port() -> None:
    from driftline.config import MetricsSettings

    config = yaml.safe_load((PROMETHEUS_DIR / "prometheus.yml").read_text())
    targets = {t for job in config["scrape_configs"] for group in job["static_configs"] for t in group["targets"]}
    ports = MetricsSettings()
    for port in (ports.ingest_port, ports.monitor_port, ports.retrain_port, ports.ab_port):
        assert any(target.endswith(f":{port}") for target in targets), port


@pytest.fixture
def prometheus_server(prometheus_binary: str, tmp_path: Path) -> Iterator[Callable[[int], str]]:
    """Start a real Prometheus scraping 127.0.0.1:<port> every second with driftline's rules; yield its URL."""
    processes: list[subprocess.Popen[bytes]] = []

    def start(target_port: int) -> str:
        shutil.copy(PROMETHEUS_DIR / "alerts.yml", tmp_path / "alerts.yml")
        config = {
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "rule_files": ["alerts.yml"],
            "scrape_configs": [
                {"job_name": "driftline-test", "static_configs": [{"targets": [f"127.0.0.1:{target_port}"]}]}
            ],
        }
        (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config))
        port = _free_port()
        log = (tmp_path / "prometheus.log").open("wb")
        processes.append(subprocess.Popen(
            [prometheus_binary, f"--config.file={tmp_path / 'prometheus.yml'}",
             f"--storage.tsdb.path={tmp_path / 'data'}", f"--web.listen-address=127.0.0.1:{port}",
             "--log.level=warn"],
            stdout=log, stderr=subprocess.STDOUT,
        ))
        url = f"http://127.0.0.1:{port}"

        def ready() -> bool:
            if processes[-1].poll() is not None:
                pytest.fail(f"prometheus exited: {(tmp_path / 'prometheus.log').read_text()[-2000:]}")
            try:
                return requests.get(f"{url}/-/ready", timeout=1).ok
            except requests.RequestException:
                return False

        _wait_for(ready, 30, "prometheus to be ready")
        return url

    yield start
    for process in processes:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _query(url: str, expr: str) -> dict[str, Any]:
    return requests.get(f"{url}/api/v1/query", params={"query": expr}, timeout=5).json()


def _firing(url: str, alert: str) -> list[dict[str, Any]]:
    alerts = requests.get(f"{url}/api/v1/alerts", timeout=5).json()["data"]["alerts"]
    return [a for a in alerts if a["labels"]["alertname"] == alert and a["state"] == "firing"]


@pytest.mark.integration
def test_prometheus_scrapes_driftline_and_evaluates_dashboard_and_rules(
    prometheus_server: Callable[[int], str], dashboard_queries: list[tuple[str, str]]
) -> None:
    metrics = Metrics("test")
    drift_alerts = metrics.alerts.labels(model="churn", kind="data", severity="warning", status="drift")
    metrics.mlflow_up.set(1)
    with MetricsServer(metrics.registry, host="127.0.0.1", port=0) as endpoint:
        url = prometheus_server(endpoint.port)

        # driftline's metrics arrive through Prometheus' query API
        result = _wait_for(lambda: _query(url, "driftline_build_info")["data"]["result"], 30,
                           "driftline_build_info in Prometheus")
        assert result[0]["metric"]["service"] == "test"
        assert result[0]["metric"]["job"] == "driftline-test"

        # every dashboard query is valid PromQL for this server (Grafana variables filled in)
        for where, expr in dashboard_queries:
            concrete = (expr.replace("$__rate_interval", "1m").replace("$__range", "1h")
                        .replace("$model", ".*").replace("$experiment", ".*"))
            answer = _query(url, concrete)
            assert answer["status"] == "success", f"{where}: {answer.get('error')}"

        # the rules load in a real server and evaluate without errors
        def rules_evaluated() -> list[dict[str, Any]]:
            groups = requests.get(f"{url}/api/v1/rules", timeout=5).json()["data"]["groups"]
            rules = [rule for group in groups for rule in group["rules"]]
            return rules if rules and all(rule.get("lastEvaluation", "").startswith("20") for rule in rules) else []

        rules = _wait_for(rules_evaluated, 30, "every rule to be evaluated")
        assert all(rule["health"] == "ok" for rule in rules), [r for r in rules if r["health"] != "ok"]

        # an alert published by the monitor fires DriftlineDataDrift once Prometheus has seen the counter move
        _wait_for(lambda: _query(url, "driftline_alerts_total")["data"]["result"], 30, "the alerts counter at 0")
        drift_alerts.inc()
        firing = _wait_for(lambda: _firing(url, "DriftlineDataDrift"), 30, "DriftlineDataDrift to fire")
        assert firing[0]["labels"]["model"] == "churn"
        assert not _firing(url, "DriftlineConceptDrift")
