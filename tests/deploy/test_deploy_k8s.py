"""Example Kubernetes manifests: kubeconform when installed, structural checks always."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from driftline.config import load_config

K8S = Path(__file__).resolve().parents[2] / "deploy" / "k8s"
SERVICES = {"ingest": 9464, "monitor": 9465, "retrain-worker": 9466, "ab-analyzer": 9467}


@pytest.fixture(scope="module")
def documents() -> list[dict[str, Any]]:
    docs = []
    for path in sorted(K8S.glob("*.yaml")):
        if path.name == "kustomization.yaml":
            continue
        docs.extend(doc for doc in yaml.safe_load_all(path.read_text()) if doc)
    return docs


def _pod_spec(doc: dict[str, Any]) -> dict[str, Any]:
    if doc["kind"] == "CronJob":
        return doc["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    return doc["spec"]["template"]["spec"]


def test_every_document_has_api_version_kind_and_metadata(documents: list[dict[str, Any]]) -> None:
    assert documents
    for doc in documents:
        assert doc.get("apiVersion") and doc.get("kind"), doc
        assert doc["metadata"]["name"], doc
        if doc["kind"] != "Namespace":
            assert doc["metadata"]["namespace"] == "driftline", doc["metadata"]["name"]


def test_kustomization_lists_every_manifest() -> None:
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    listed = set(kustomization["resources"])
    present = {p.name for p in K8S.glob("*.yaml")} - {"kustomization.yaml"}
    assert listed == present


def test_deployments_have_pinned_images_probes_and_resources(documents: list[dict[str, Any]]) -> None:
    deployments = {d["metadata"]["name"]: d for d in documents if d["kind"] == "Deployment"}
    assert set(deployments) == {f"driftline-{name}" for name in SERVICES}
    for name, port in SERVICES.items():
        deployment = deployments[f"driftline-{name}"]
        assert deployment["spec"]["selector"]["matchLabels"].items() <= (
            deployment["spec"]["template"]["metadata"]["labels"].items()
        )
        pod = _pod_spec(deployment)
        assert pod["securityContext"]["runAsNonRoot"] is True
        (container,) = pod["containers"]
        assert container["args"][0] == name
        assert {p["containerPort"] for p in container["ports"]} == {port}
        for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
            assert container[probe]["httpGet"]["path"] == "/healthz", (name, probe)
        assert container["resources"]["requests"]["cpu"] and container["resources"]["requests"]["memory"]
        assert container["resources"]["limits"]["memory"]


def test_replicated_services_give_each_pod_its_own_instance_id(documents: list[dict[str, Any]]) -> None:
    # two pods with one instance id would share a transactional.id and fence each other forever
    for deployment in (d for d in documents if d["kind"] == "Deployment" and d["spec"]["replicas"] > 1):
        name = deployment["spec"]["template"]["metadata"]["labels"]["app.kubernetes.io/component"]
        (container,) = _pod_spec(deployment)["containers"]
        env = {e["name"]: e for e in container.get("env", [])}
        key = f"DRIFTLINE_{name.upper().replace('-', '_')}__INSTANCE_ID"
        assert env[key]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name", name


def test_services_expose_the_metrics_port(documents: list[dict[str, Any]]) -> None:
    services = {d["metadata"]["name"]: d for d in documents if d["kind"] == "Service"}
    deployments = {d["metadata"]["name"]: d for d in documents if d["kind"] == "Deployment"}
    for name, port in SERVICES.items():
        service = services[f"driftline-{name}"]
        assert service["spec"]["ports"][0]["port"] == port
        labels = deployments[f"driftline-{name}"]["spec"]["template"]["metadata"]["labels"]
        assert service["spec"]["selector"].items() <= labels.items()


def test_every_container_image_is_pinned_and_limited(documents: list[dict[str, Any]]) -> None:
    containers = [c for d in documents if d["kind"] in {"Deployment", "CronJob"} for c in _pod_spec(d)["containers"]]
    assert len(containers) >= 6
    for container in containers:
        image = container["image"]
        assert ":" in image and not image.endswith(":latest"), image
        assert container["resources"]["requests"] and container["resources"]["limits"], container["name"]
        assert container["securityContext"]["allowPrivilegeEscalation"] is False


def test_cronjobs_run_the_daily_report_and_weekly_retrain(documents: list[dict[str, Any]]) -> None:
    cronjobs = [d for d in documents if d["kind"] == "CronJob"]
    by_component = {d["metadata"]["labels"]["app.kubernetes.io/component"]: d for d in cronjobs}
    schedules = {name: d["spec"]["schedule"] for name, d in by_component.items()}
    assert schedules["drift-report"].split()[2:] == ["*", "*", "*"]  # every day
    assert schedules["retrain-weekly"].split()[2:4] == ["*", "*"] and schedules["retrain-weekly"].split()[4] != "*"
    (report,) = _pod_spec(by_component["drift-report"])["containers"]
    assert report["args"][:3] == ["report", "--model", "churn"] and "--out" in report["args"]
    assert report["args"][report["args"].index("--out") + 1] in {m["mountPath"] for m in report["volumeMounts"]}
    (retrain,) = _pod_spec(by_component["retrain-weekly"])["containers"]
    assert retrain["args"][:3] == ["retrain", "--model", "churn"] and "--force" in retrain["args"]
    for cronjob in cronjobs:
        assert _pod_spec(cronjob)["restartPolicy"] in {"Never", "OnFailure"}


def test_configmap_holds_a_valid_driftline_toml(documents: list[dict[str, Any]], tmp_path: Path) -> None:
    configmap = next(d for d in documents if d["kind"] == "ConfigMap" and d["metadata"]["name"] == "driftline-config")
    config_file = tmp_path / "driftline.toml"
    config_file.write_text(configmap["data"]["driftline.toml"])
    cfg = load_config(config_file)
    assert cfg.kafka.replication_factor == 3
    assert (cfg.metrics.ingest_port, cfg.metrics.monitor_port, cfg.metrics.retrain_port, cfg.metrics.ab_port) == (
        tuple(SERVICES.values())
    )


def test_kubeconform_validates_the_manifests() -> None:
    kubeconform = shutil.which("kubeconform")
    if kubeconform is None:
        pytest.skip("kubeconform not installed; the structural checks above ran")
    done = subprocess.run(
        [kubeconform, "-strict", "-summary", "-skip", "Kustomization", str(K8S)],
        capture_output=True, text=True, check=False, timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_every_command_in_the_manifests_exists_in_the_cli(documents: list[dict[str, Any]], cli_options) -> None:
    containers = [c for d in documents if d["kind"] in {"Deployment", "CronJob"} for c in _pod_spec(d)["containers"]]
    for container in containers:
        options = cli_options(container["args"][:1])
        flags = [w.split("=", 1)[0] for w in container["args"] if w.startswith("--")]
        assert set(flags) <= options, f"{container['name']}: unknown options {sorted(set(flags) - options)}"
