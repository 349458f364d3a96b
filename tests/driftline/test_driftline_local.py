"""`driftline kafka|mlflow start/status/stop` through the CLI, on free ports in a temp dir.

Each lifecycle starts a real service (a Kafka broker from the cached jars, an MLflow server),
so these are the slowest foundation tests; they never touch the shared development servers.
"""

from __future__ import annotations

import os
import re
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from driftline.cli import app

runner = CliRunner()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat")
    return not (stat.exists() and stat.read_text().split(")")[-1].split()[0] == "Z")


def _processes_mentioning(text: str) -> list[int]:
    """Live processes whose command line contains ``text`` (e.g. our data dir)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if text in cmdline and _alive(int(entry.name)):
            found.append(int(entry.name))
    return found


def _pid(output: str) -> int:
    match = re.search(r"pid (\d+)", output)
    assert match, output
    return int(match.group(1))


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "driftline.toml"
    path.write_text('[local]\nkafka_heap = "384M"\nstart_timeout_s = 120\n')
    return path


@pytest.fixture
def data_dir(tmp_path: Path) -> Iterator[Path]:
    """Our services' state; whatever a failed test left running is stopped by its pid file."""
    path = tmp_path / "local"
    yield path
    for name in ("kafka", "mlflow"):
        runner.invoke(app, [name, "stop", "--data-dir", str(path)])


@pytest.mark.integration
def test_kafka_lifecycle(config: Path, data_dir: Path) -> None:
    port, controller = _free_port(), _free_port()
    common = ["--config", str(config), "--data-dir", str(data_dir)]
    start = ["kafka", "start", *common, "--port", str(port), "--controller-port", str(controller)]

    not_yet = runner.invoke(app, ["kafka", "status", *common])
    assert not_yet.exit_code == 1 and "kafka not running" in not_yet.output

    first = runner.invoke(app, start)
    assert first.exit_code == 0, first.output
    pid = _pid(first.output)
    assert f"kafka started (pid {pid}) at 127.0.0.1:{port}" in first.output
    with socket.create_connection(("127.0.0.1", port), timeout=5):
        pass

    second = runner.invoke(app, start)
    assert second.exit_code == 0
    assert f"kafka already running (pid {pid})" in second.output

    status = runner.invoke(app, ["kafka", "status", *common])
    assert status.exit_code == 0 and f"kafka running (pid {pid})" in status.output

    # Another broker wanting the same port: one clear line, no traceback.
    other = runner.invoke(app, ["kafka", "start", "--config", str(config), "--data-dir", str(data_dir.parent / "b"),
                                "--port", str(port), "--controller-port", str(_free_port())])
    assert other.exit_code == 1
    assert other.output.strip().splitlines() == [
        f"error: port {port} is taken; choose another with --port/--controller-port"]

    stop = runner.invoke(app, ["kafka", "stop", *common])
    assert stop.exit_code == 0 and "kafka stopped" in stop.output
    assert not _alive(pid)
    assert _processes_mentioning(str(data_dir)) == []
    after = runner.invoke(app, ["kafka", "status", *common])
    assert after.exit_code == 1 and "kafka not running" in after.output
    assert "kafka was not running" in runner.invoke(app, ["kafka", "stop", *common]).output


@pytest.mark.integration
def test_mlflow_lifecycle(config: Path, data_dir: Path) -> None:
    port = _free_port()
    common = ["--config", str(config), "--data-dir", str(data_dir)]

    first = runner.invoke(app, ["mlflow", "start", *common, "--port", str(port)])
    assert first.exit_code == 0, first.output
    pid = _pid(first.output)
    assert f"mlflow started (pid {pid}) at http://127.0.0.1:{port}" in first.output

    second = runner.invoke(app, ["mlflow", "start", *common, "--port", str(port)])
    assert second.exit_code == 0 and f"mlflow already running (pid {pid})" in second.output
    status = runner.invoke(app, ["mlflow", "status", *common])
    assert status.exit_code == 0 and f"mlflow running (pid {pid})" in status.output

    other = runner.invoke(app, ["mlflow", "start", "--config", str(config), "--data-dir", str(data_dir.parent / "b"),
                                "--port", str(port)])
    assert other.exit_code == 1
    assert other.output.strip().splitlines() == [f"error: port {port} is taken; choose another with --port"]

    stop = runner.invoke(app, ["mlflow", "stop", *common])
    assert stop.exit_code == 0 and "mlflow stopped" in stop.output
    assert not _alive(pid)
    assert _processes_mentioning(str(data_dir)) == []
    after = runner.invoke(app, ["mlflow", "status", *common])
    assert after.exit_code == 1 and "mlflow not running" in after.output


def test_cluster_ids_never_start_with_a_dash() -> None:
    """The storage tool reads a leading "-" as an option: one random base64 id in 64 would fail to format."""
    from driftline.local.kafka import _cluster_id

    ids = [_cluster_id() for _ in range(2000)]
    assert not any(i.startswith("-") for i in ids) and {len(i) for i in ids} == {22} and len(set(ids)) == 2000
