"""The /metrics and /healthz server, scraped over real HTTP."""

from __future__ import annotations

import requests

from driftline.consumers.common.http import MetricsServer
from driftline.consumers.common.metrics import Metrics


def test_metrics_and_health_over_http() -> None:
    metrics = Metrics("test")
    metrics.events_rejected.labels(service="test", reason="malformed_json").inc(3)
    healthy = {"value": True}
    with MetricsServer(
        metrics.registry, host="127.0.0.1", port=0, health=lambda: (healthy["value"], {"partitions": [0]})
    ) as server:
        base = f"http://127.0.0.1:{server.port}"
        body = requests.get(f"{base}/metrics", timeout=5).text
        assert 'driftline_events_rejected_total{reason="malformed_json",service="test"} 3.0' in body
        reply = requests.get(f"{base}/healthz", timeout=5)
        assert reply.status_code == 200 and reply.json() == {"status": "ok", "partitions": [0]}
        healthy["value"] = False
        assert requests.get(f"{base}/healthz", timeout=5).status_code == 503
        assert requests.get(f"{base}/nope", timeout=5).status_code == 404


def test_failing_health_check_is_unhealthy_not_a_crash() -> None:
    def broken() -> tuple[bool, dict[str, object]]:
        raise RuntimeError("boom")

    with MetricsServer(Metrics("t").registry, host="127.0.0.1", port=0, health=broken) as server:
        reply = requests.get(f"http://127.0.0.1:{server.port}/healthz", timeout=5)
        assert reply.status_code == 503 and "boom" in reply.json()["error"]
