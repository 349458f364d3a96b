"""docker-compose.yml and the Dockerfile, checked without a Docker engine (and with one when it answers)."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from driftline.config import load_config

REPO = Path(__file__).resolve().parents[2]
DRIFTLINE_SERVICES = {"ingest": 9464, "monitor": 9465, "retrain-worker": 9466, "ab-analyzer": 9467}


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return yaml.safe_load((REPO / "docker-compose.yml").read_text())


def _image_is_pinned(image: str) -> bool:
    """A tag (not `latest`) or a digest; the registry host may carry a port."""
    if "@sha256:" in image:
        return True
    name, _, tag = image.rpartition(":")
    return bool(name) and "/" not in tag and tag not in {"", "latest"}


@pytest.mark.parametrize(
    ("image", "pinned"),
    [("apache/kafka:4.1.1", True), ("grafana/grafana:latest", False), ("postgres", False),
     ("localhost:5000/driftline", False), ("quay.io/minio/mc:RELEASE.2024-11-21T17-21-54Z", True),
     ("x/y@sha256:" + "a" * 64, True)],
)
def test_image_pinning_rule(image: str, pinned: bool) -> None:
    assert _image_is_pinned(image) is pinned


def test_every_image_is_pinned(compose: dict[str, Any]) -> None:
    for name, service in compose["services"].items():
        assert "image" in service, f"{name} has no image (builds must still name and tag their image)"
        assert _image_is_pinned(service["image"]), f"{name}: {service['image']}"


def test_the_stack_has_every_required_component(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert services["kafka"]["image"].startswith("apache/kafka:")
    assert "broker,controller" in services["kafka"]["environment"]["KAFKA_PROCESS_ROLES"]  # KRaft
    mlflow_args = " ".join(services["mlflow"]["command"])
    assert "postgresql://" in mlflow_args and "s3://" in mlflow_args
    assert services["mlflow"]["environment"]["MLFLOW_S3_ENDPOINT_URL"] == "http://minio:9000"
    assert services["postgres"]["image"].startswith("postgres:")
    assert "minio/minio:" in services["minio"]["image"]
    assert services["prometheus"]["image"].startswith("prom/prometheus:")
    assert services["grafana"]["image"].startswith("grafana/grafana:")
    for name in DRIFTLINE_SERVICES:
        assert services[name]["command"][0] == name


def test_driftline_services_have_healthchecks_and_ordered_start(compose: dict[str, Any]) -> None:
    services = compose["services"]
    for name, port in DRIFTLINE_SERVICES.items():
        service = services[name]
        assert "/healthz" in " ".join(service["healthcheck"]["test"]), name
        assert service["environment"]["DRIFTLINE_HEALTH_PORT"] == str(port), name
        conditions = {dep: spec["condition"] for dep, spec in service["depends_on"].items()}
        assert conditions["kafka"] == "service_healthy", name
        assert conditions["topics"] == "service_completed_successfully", name
    assert services["retrain-worker"]["depends_on"]["mlflow"]["condition"] == "service_healthy"
    assert services["mlflow"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    for name in ("kafka", "postgres", "minio", "mlflow", "prometheus", "grafana"):
        assert services[name]["healthcheck"]["test"], name


def test_driftline_commands_exist_in_the_cli(compose: dict[str, Any], cli_options) -> None:
    commands = [service["command"] for service in compose["services"].values()
                if service.get("image", "").startswith("driftline:")]
    assert len(commands) == 5  # topics create + four services
    for command in commands:
        cli_options([word for word in command if not word.startswith("-")])


def test_depends_on_names_existing_services(compose: dict[str, Any]) -> None:
    services = compose["services"]
    for name, service in services.items():
        for dependency in service.get("depends_on", {}):
            assert dependency in services, f"{name} depends on unknown {dependency}"


def test_every_mounted_file_exists(compose: dict[str, Any]) -> None:
    mounts = 0
    for name, service in compose["services"].items():
        for volume in service.get("volumes", []):
            source = volume.split(":", 1)[0]
            if source.startswith((".", "/")):
                mounts += 1
                assert (REPO / source).exists(), f"{name} mounts missing {source}"
        build = service.get("build")
        if build:
            context = REPO / (build if isinstance(build, str) else build.get("context", "."))
            dockerfile = build.get("dockerfile", "Dockerfile") if isinstance(build, dict) else "Dockerfile"
            assert (context / dockerfile).is_file(), f"{name} builds from missing {context / dockerfile}"
    assert mounts >= 5


def test_mounted_driftline_config_is_valid(compose: dict[str, Any]) -> None:
    cfg = load_config(REPO / "deploy" / "compose" / "driftline.toml")
    assert cfg.kafka.bootstrap_servers == "kafka:9092"
    prometheus = yaml.safe_load((REPO / "deploy/prometheus/prometheus.yml").read_text())
    targets = {t for job in prometheus["scrape_configs"] for g in job["static_configs"] for t in g["targets"]}
    expected = {
        f"ingest:{cfg.metrics.ingest_port}", f"monitor:{cfg.metrics.monitor_port}",
        f"retrain-worker:{cfg.metrics.retrain_port}", f"ab-analyzer:{cfg.metrics.ab_port}",
    }
    assert expected <= targets
    assert {name: int(compose["services"][name]["environment"]["DRIFTLINE_HEALTH_PORT"])
            for name in DRIFTLINE_SERVICES} == DRIFTLINE_SERVICES


def _docker_engine_answers() -> bool:
    if shutil.which("docker") is None:
        return False
    info = subprocess.run(["docker", "info", "--format", "{{.ServerVersion}}"], capture_output=True, text=True,
                          check=False, timeout=20)
    compose_plugin = subprocess.run(["docker", "compose", "version"], capture_output=True, text=True,
                                    check=False, timeout=20)
    return info.returncode == 0 and compose_plugin.returncode == 0


def test_docker_compose_config_validates() -> None:
    if not _docker_engine_answers():
        pytest.skip("no Docker engine (or no compose plugin) answers here; the structural checks above ran")
    done = subprocess.run(["docker", "compose", "-f", str(REPO / "docker-compose.yml"), "config", "--quiet"],
                          capture_output=True, text=True, check=False, timeout=60, cwd=REPO)
    assert done.returncode == 0, done.stderr


# --- Dockerfile --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def dockerfile() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined."""
    text = re.sub(r"\\\n", " ", (REPO / "Dockerfile").read_text())
    instructions = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keyword, _, rest = line.partition(" ")
            instructions.append((keyword.upper(), rest.strip()))
    return instructions


def _final_stage(dockerfile: list[tuple[str, str]]) -> list[tuple[str, str]]:
    last_from = max(i for i, (keyword, _) in enumerate(dockerfile) if keyword == "FROM")
    return dockerfile[last_from:]


def test_dockerfile_is_slim_and_pinned(dockerfile: list[tuple[str, str]]) -> None:
    stages = [args.split() for keyword, args in dockerfile if keyword == "FROM"]
    python = [stage[0] for stage in stages if stage[-1] != "native"]
    assert python and all(base == "python:3.11-slim" for base in python)
    native = [stage[0] for stage in stages if stage[-1] == "native"]  # the Rust scanner's build stage
    assert all(re.fullmatch(r"rust:\d+\.\d+-slim-bookworm", base) for base in native)
    installs = [args for keyword, args in dockerfile if keyword == "RUN" and "pip install" in args]
    assert installs and all("--no-cache-dir" in args for args in installs)


def test_dockerfile_runs_as_non_root_with_healthcheck_and_entrypoint(dockerfile: list[tuple[str, str]]) -> None:
    final = _final_stage(dockerfile)
    users = [args for keyword, args in final if keyword == "USER"]
    assert users and users[-1].split(":")[0] not in {"root", "0"}
    healthchecks = [args for keyword, args in final if keyword == "HEALTHCHECK"]
    assert len(healthchecks) == 1 and "/healthz" in healthchecks[0]
    assert ("ENTRYPOINT", '["driftline"]') in final


def test_dockerfile_copies_only_existing_sources(dockerfile: list[tuple[str, str]]) -> None:
    ignored = {line.strip() for line in (REPO / ".dockerignore").read_text().splitlines()
               if line.strip() and not line.startswith("#")}
    for keyword, args in dockerfile:
        if keyword != "COPY" or args.startswith("--from"):
            continue
        *sources, _destination = args.split()
        for source in sources:
            assert (REPO / source).exists(), f"COPY {source}: not in the repository"
            assert source.rstrip("/") not in ignored, f"COPY {source}: excluded by .dockerignore"


def test_mlflow_image_matches_the_client_version() -> None:
    from importlib.metadata import version

    text = (REPO / "deploy" / "mlflow" / "Dockerfile").read_text()
    pinned = re.search(r'"mlflow==([\w.]+)"', text)
    assert pinned and pinned.group(1) == version("mlflow")
    assert re.search(r"^USER (?!root)", text, re.MULTILINE)
