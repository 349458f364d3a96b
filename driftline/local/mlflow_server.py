"""A local MLflow tracking server on SQLite with a local artifact store."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

import requests

from driftline.local.process import LocalServiceError, ManagedProcess, port_is_free

__all__ = ["LocalMlflow", "MlflowStatus"]


@dataclass(frozen=True)
class MlflowStatus:
    running: bool
    pid: int | None
    tracking_uri: str


@dataclass(frozen=True)
class LocalMlflow:
    data_dir: Path
    port: int = 5000
    start_timeout_s: float = 90.0

    @property
    def tracking_uri(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def process(self) -> ManagedProcess:
        return ManagedProcess("mlflow", self.data_dir)

    def status(self) -> MlflowStatus:
        pid = self.process.pid()
        return MlflowStatus(running=pid is not None, pid=pid, tracking_uri=self.tracking_uri)

    def start(self) -> MlflowStatus:
        current = self.status()
        if current.running:
            return current
        if not port_is_free(self.port):
            raise LocalServiceError(f"port {self.port} is taken; choose another with --port")
        data = self.data_dir.resolve()
        (data / "artifacts").mkdir(parents=True, exist_ok=True)
        pid = self.process.start(
            [
                sys.executable, "-m", "mlflow", "server",
                "--backend-store-uri", f"sqlite:///{data / 'mlflow.db'}",
                "--artifacts-destination", str(data / "artifacts"),
                "--serve-artifacts",
                "--host", "127.0.0.1",
                "--port", str(self.port),
                "--workers", "1",
            ],
            ready=self._ready,
            timeout_s=self.start_timeout_s,
            env={"MLFLOW_ENABLE_TELEMETRY": "false", "DO_NOT_TRACK": "true"},
        )
        return MlflowStatus(running=True, pid=pid, tracking_uri=self.tracking_uri)

    def stop(self) -> bool:
        return self.process.stop()

    def _ready(self) -> bool:
        try:
            return requests.get(f"{self.tracking_uri}/health", timeout=1.0).ok
        except requests.RequestException:
            return False
