"""`/metrics` (Prometheus text format) and `/healthz` for every service, on one small thread.

Built on prometheus-client's exposition of the service's own registry, plus a health
callback that returns whether the service is healthy and a JSON-able detail.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import orjson
from prometheus_client import CollectorRegistry
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest

__all__ = ["HealthCheck", "MetricsServer"]

HealthCheck = Callable[[], tuple[bool, dict[str, Any]]]


def _always_healthy() -> tuple[bool, dict[str, Any]]:
    return True, {}


class MetricsServer:
    """Serve ``/metrics`` and ``/healthz``; ``port=0`` picks a free port (see `port`).

    Use as a context manager: started on enter, stopped on exit.
    """

    def __init__(
        self, registry: CollectorRegistry, *, host: str, port: int, health: HealthCheck = _always_healthy
    ) -> None:
        self.registry = registry
        self.host = host
        self.requested_port = port
        self.health = health
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("server not started")
        return self._server.server_address[1]

    def start(self) -> MetricsServer:
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                path = self.path.split("?", 1)[0]
                if path == "/metrics":
                    self._reply(200, CONTENT_TYPE_LATEST, generate_latest(owner.registry))
                elif path == "/healthz":
                    try:
                        healthy, detail = owner.health()
                    except Exception as exc:  # a failing check is an unhealthy service, not a crash
                        healthy, detail = False, {"error": repr(exc)}
                    body = orjson.dumps({"status": "ok" if healthy else "unhealthy", **detail})
                    self._reply(200 if healthy else 503, "application/json", body)
                else:
                    self._reply(404, "text/plain", b"not found\n")

            def _reply(self, status: int, content_type: str, body: bytes) -> None:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:  # scrapes are not news
                return

        self._server = ThreadingHTTPServer((self.host, self.requested_port), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="metrics-http", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> MetricsServer:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()
