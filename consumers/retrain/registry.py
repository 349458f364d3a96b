"""The MLflow adapter: runs keyed by alert, model versions, aliases and stages, backup and restore.

Everything the worker and the ``models``/``registry`` commands ask of MLflow goes through
`MlflowRegistry`, so the decision flow (`handler`) can be tested against a fake and MLflow's
API details live in one place.

Conventions in MLflow
---------------------
- One experiment per model, named ``<experiment_prefix><model>``; one run per alert, tagged
  ``driftline.alert_id``. ``driftline.status`` is ``started`` while the run is being written
  and ``done`` once the decision is recorded; ``driftline.published`` is set after the
  decision reached Kafka and the alert was committed.
- The registered model has the model's name. Aliases ``champion`` and ``challenger`` name
  versions; stages (Production, Staging, Archived) are kept in step for older clients.
  A promoted version carries ``driftline.previous_champion`` so it can be rolled back.
- Lease: registered-model tags ``driftline.lease.owner`` and ``driftline.lease.expires_ts``.
"""

from __future__ import annotations

import logging
import tempfile
import time
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import requests
from mlflow.entities import Metric, Param, RunTag
from mlflow.exceptions import MlflowException, RestException
from mlflow.tracking import MlflowClient

__all__ = [
    "ALIAS_CHALLENGER",
    "ALIAS_CHAMPION",
    "BACKUP_FORMAT",
    "LeaseBusy",
    "MlflowRegistry",
    "RunRecord",
    "VersionInfo",
    "is_transient",
]

log = logging.getLogger(__name__)

ALIAS_CHAMPION = "champion"
ALIAS_CHALLENGER = "challenger"
BACKUP_FORMAT = "driftline-registry-backup/1"
TAG_ALERT = "driftline.alert_id"
TAG_STATUS = "driftline.status"
TAG_PUBLISHED = "driftline.published"
TAG_EVENT = "driftline.model_event"
TAG_PREVIOUS = "driftline.previous_champion"
TAG_REFERENCE = "driftline.reference_logged"
TAG_LEASE_OWNER = "driftline.lease.owner"
TAG_LEASE_EXPIRES = "driftline.lease.expires_ts"
_SERVER_KEPT_SCHEMES = frozenset({"", "file", "mlflow-artifacts", "http", "https", "runs", "models"})
_PIP_PACKAGES = ("scikit-learn", "numpy", "pandas", "scipy", "lightgbm", "river")


class LeaseBusy(RuntimeError):
    """Another worker holds the model's retrain lease; try again after it expires."""


@dataclass(frozen=True, slots=True)
class RunRecord:
    """What the registry knows about the run of one alert."""

    run_id: str
    status: str
    published: bool
    model_event: str | None
    reference_artifact: bool


@dataclass(frozen=True, slots=True)
class VersionInfo:
    """One model version as the CLI shows it."""

    model: str
    version: str
    stage: str
    aliases: tuple[str, ...]
    run_id: str | None
    created_ts: float
    tags: dict[str, str]


def _is_not_found(exc: MlflowException) -> bool:
    return exc.error_code == "RESOURCE_DOES_NOT_EXIST"


def _pip_requirements() -> list[str]:
    pins = []
    for package in _PIP_PACKAGES:
        try:
            pins.append(f"{package}=={metadata.version(package)}")
        except metadata.PackageNotFoundError:
            continue
    return pins


class MlflowRegistry:
    """MLflow tracking and model registry, seen from driftline.

    Parameters
    ----------
    tracking_uri
        The MLflow server (``http://...``), or None for MLflow's own default (``MLFLOW_TRACKING_URI``).
    experiment_prefix
        Experiments are named ``<prefix><model>``.
    """

    def __init__(self, tracking_uri: str | None, *, experiment_prefix: str = "driftline/") -> None:
        import mlflow

        self.tracking_uri = tracking_uri or mlflow.get_tracking_uri()
        self.experiment_prefix = experiment_prefix
        self.client = MlflowClient(tracking_uri=self.tracking_uri)
        self._experiments: dict[str, str] = {}

    # --- health ------------------------------------------------------------------------

    def ping(self, timeout_s: float = 3.0) -> bool:
        """True when the tracking server answers its health check (or a cheap query)."""
        if self.tracking_uri.startswith(("http://", "https://")):
            try:
                return requests.get(f"{self.tracking_uri.rstrip('/')}/health", timeout=timeout_s).ok
            except requests.RequestException:
                return False
        try:
            self.client.search_experiments(max_results=1)
        except Exception:
            return False
        return True

    # --- runs --------------------------------------------------------------------------

    def experiment_id(self, model: str) -> str:
        """The model's experiment, created on first use."""
        if model not in self._experiments:
            name = f"{self.experiment_prefix}{model}"
            found = self.client.get_experiment_by_name(name)
            if found is None:
                try:
                    self._experiments[model] = self.client.create_experiment(name, tags={"driftline.model": model})
                except MlflowException as exc:  # created meanwhile by another worker
                    if exc.error_code != "RESOURCE_ALREADY_EXISTS":
                        raise
                    self._experiments[model] = self.client.get_experiment_by_name(name).experiment_id
            else:
                self._experiments[model] = found.experiment_id
        return self._experiments[model]

    def find_run(self, model: str, alert_id: str) -> RunRecord | None:
        """The (active) run made for ``alert_id``, if any."""
        runs = self.client.search_runs(
            [self.experiment_id(model)], filter_string=f"tags.`{TAG_ALERT}` = '{alert_id}'", max_results=5
        )
        if not runs:
            return None
        run = runs[0]
        tags = run.data.tags
        return RunRecord(
            run_id=run.info.run_id,
            status=tags.get(TAG_STATUS, "started"),
            published=tags.get(TAG_PUBLISHED) == "true",
            model_event=tags.get(TAG_EVENT),
            reference_artifact=tags.get(TAG_REFERENCE) == "true",
        )

    def discard_run(self, model: str, run_id: str) -> None:
        """Remove an unfinished attempt: the versions it registered, then the run itself."""
        for version in self.client.search_model_versions(f"name = '{model}' and run_id = '{run_id}'"):
            self.client.delete_model_version(model, version.version)
        self.client.delete_run(run_id)

    def last_retrain_ts(self, model: str) -> float | None:
        """Start time (epoch s) of the model's latest finished retrain run."""
        runs = self.client.search_runs(
            [self.experiment_id(model)], filter_string=f"tags.`{TAG_STATUS}` = 'done'",
            order_by=["attributes.start_time DESC"], max_results=1,
        )
        return runs[0].info.start_time / 1000.0 if runs else None

    def start_run(self, model: str, run_name: str, tags: Mapping[str, str], params: Mapping[str, Any]) -> str:
        run = self.client.create_run(self.experiment_id(model), run_name=run_name,
                                     tags={**tags, TAG_STATUS: "started"})
        self.client.log_batch(run.info.run_id, params=[Param(k, str(v)[:6000]) for k, v in params.items()])
        return run.info.run_id

    def log_metrics(self, run_id: str, metrics: Mapping[str, float]) -> None:
        now_ms = int(time.time() * 1000)
        safe = {name.replace("@", "_at_"): value for name, value in metrics.items()}
        self.client.log_batch(run_id, metrics=[Metric(k, float(v), now_ms, 0) for k, v in safe.items()])

    def set_tags(self, run_id: str, tags: Mapping[str, str]) -> None:
        self.client.log_batch(run_id, tags=[RunTag(k, v) for k, v in tags.items()])

    def log_text(self, run_id: str, text: str, artifact_file: str) -> None:
        self.client.log_text(run_id, text, artifact_file)

    def log_file(self, run_id: str, path: Path, artifact_path: str | None = None) -> None:
        self.client.log_artifact(run_id, str(path), artifact_path)

    def read_text(self, run_id: str, artifact_file: str) -> str:
        with tempfile.TemporaryDirectory() as tmp:
            local = self.client.download_artifacts(run_id, artifact_file, tmp)
            return Path(local).read_text()

    def reference_json(self, run_id: str) -> str | None:
        """The reference profile a driftline run logged for its version, if it did."""
        if self.client.get_run(run_id).data.tags.get(TAG_REFERENCE) != "true":
            return None
        return self.read_text(run_id, "reference.json")

    def finish_run(self, run_id: str, model_event_json: str, status: str = "FINISHED") -> None:
        """Record the decision on the run and close it: from now on the alert is done."""
        self.set_tags(run_id, {TAG_STATUS: "done", TAG_EVENT: model_event_json})
        self.client.set_terminated(run_id, status=status)

    def fail_run(self, model: str, run_id: str, reason: str) -> None:
        """Close a failed run (its alert counts as handled); a version it registered is archived."""
        for version in self.client.search_model_versions(f"name = '{model}' and run_id = '{run_id}'"):
            self.tag_version(model, str(version.version), {"driftline.decision": "failed"})
            self._transition(model, str(version.version), "Archived")
        self.set_tags(run_id, {TAG_STATUS: "failed", "driftline.reason": reason[:4000]})
        self.client.set_terminated(run_id, status="FAILED")

    def mark_published(self, run_id: str) -> None:
        self.client.set_tag(run_id, TAG_PUBLISHED, "true")

    # --- models ------------------------------------------------------------------------

    def log_model(self, run_id: str, model: Any, name: str, input_example: Any) -> str:
        """Log the model (signature and input example) in the run, register it, return the version.

        Serialised with cloudpickle: skops (MLflow's default) refuses gradient-boosting trees,
        LightGBM boosters and river models unless each type is trusted one by one; these models
        are written by this worker and loaded only from its own registry.
        """
        import mlflow
        import mlflow.sklearn
        from mlflow.models import infer_signature

        mlflow.set_tracking_uri(self.tracking_uri)
        signature = infer_signature(input_example, model.predict(input_example))
        with warnings.catch_warnings(), mlflow.start_run(run_id=run_id, log_system_metrics=False):
            warnings.simplefilter("ignore")
            info = mlflow.sklearn.log_model(
                model, name="model", signature=signature, input_example=input_example,
                registered_model_name=name, pip_requirements=_pip_requirements(),
                serialization_format=mlflow.sklearn.SERIALIZATION_FORMAT_CLOUDPICKLE,
            )
        version = str(info.registered_model_version)
        self.client.set_model_version_tag(name, version, "driftline.run_id", run_id)
        return version

    def tag_version(self, name: str, version: str, tags: Mapping[str, str]) -> None:
        for key, value in tags.items():
            self.client.set_model_version_tag(name, version, key, value)

    def ensure_registered_model(self, name: str) -> None:
        try:
            self.client.create_registered_model(name, tags={"driftline.model": name})
        except MlflowException as exc:
            if exc.error_code != "RESOURCE_ALREADY_EXISTS":
                raise

    def version_for_alias(self, name: str, alias: str) -> str | None:
        try:
            return str(self.client.get_model_version_by_alias(name, alias).version)
        except MlflowException as exc:
            if _is_not_found(exc) or exc.error_code == "INVALID_PARAMETER_VALUE":
                return None
            raise

    def load_version(self, name: str, version: str) -> Any:
        """The model object of a registered version (the sklearn flavour, as logged)."""
        import mlflow
        import mlflow.sklearn

        mlflow.set_tracking_uri(self.tracking_uri)
        return mlflow.sklearn.load_model(f"models:/{name}/{version}")

    def _transition(self, name: str, version: str, stage: str) -> None:
        with warnings.catch_warnings():  # deprecated in MLflow 3, kept in step for older clients
            warnings.simplefilter("ignore")
            self.client.transition_model_version_stage(name, version, stage, archive_existing_versions=False)

    def promote(self, name: str, version: str) -> str | None:
        """Make ``version`` the champion (Production); the old champion is Archived. Returns the old one."""
        previous = self.version_for_alias(name, ALIAS_CHAMPION)
        if previous == version:
            return None
        if previous is not None:
            self.client.set_model_version_tag(name, version, TAG_PREVIOUS, previous)
        self.client.set_registered_model_alias(name, ALIAS_CHAMPION, version)
        self._transition(name, version, "Production")
        if self.version_for_alias(name, ALIAS_CHALLENGER) == version:
            self.client.delete_registered_model_alias(name, ALIAS_CHALLENGER)
        if previous is not None:
            self._transition(name, previous, "Archived")
        return previous

    def make_challenger(self, name: str, version: str) -> None:
        """Name ``version`` the challenger (Staging), next to the champion."""
        self.client.set_registered_model_alias(name, ALIAS_CHALLENGER, version)
        self._transition(name, version, "Staging")

    def rollback(self, name: str) -> tuple[str, str]:
        """Restore the champion that the current one replaced; returns (restored, demoted)."""
        current = self.version_for_alias(name, ALIAS_CHAMPION)
        if current is None:
            raise ValueError(f"model {name!r} has no champion to roll back")
        tags = self.client.get_model_version(name, current).tags
        target = tags.get(TAG_PREVIOUS)
        if target is None:
            raise ValueError(f"champion v{current} of {name!r} replaced no earlier champion")
        self.client.set_registered_model_alias(name, ALIAS_CHAMPION, target)
        self._transition(name, target, "Production")
        self._transition(name, current, "Archived")
        self.client.set_model_version_tag(name, current, "driftline.rolled_back", "true")
        return target, current

    def archive(self, name: str, version: str) -> None:
        """Archive a version and drop any alias pointing at it."""
        for alias in self.client.get_model_version(name, version).aliases:
            self.client.delete_registered_model_alias(name, alias)
        self._transition(name, version, "Archived")

    # --- lease -------------------------------------------------------------------------

    def acquire_lease(self, name: str, owner: str, now_ts: float, lease_s: float) -> None:
        """Take the model's retrain lease or raise `LeaseBusy`.

        Belt and braces behind Kafka's partition ownership: MLflow has no compare-and-set,
        so the lease is written, then read back to confirm this owner won.
        """
        self.ensure_registered_model(name)
        tags = self.client.get_registered_model(name).tags
        holder, expires = tags.get(TAG_LEASE_OWNER), float(tags.get(TAG_LEASE_EXPIRES, "0") or 0)
        if holder not in (None, "", owner) and expires > now_ts:
            raise LeaseBusy(f"{name} is being retrained by {holder} until {expires:.0f}")
        self.client.set_registered_model_tag(name, TAG_LEASE_OWNER, owner)
        self.client.set_registered_model_tag(name, TAG_LEASE_EXPIRES, f"{now_ts + lease_s:.3f}")
        if self.client.get_registered_model(name).tags.get(TAG_LEASE_OWNER) != owner:
            raise LeaseBusy(f"{name}: lost the lease race")

    def release_lease(self, name: str, owner: str) -> None:
        tags = self.client.get_registered_model(name).tags
        if tags.get(TAG_LEASE_OWNER) == owner:
            self.client.delete_registered_model_tag(name, TAG_LEASE_OWNER)
            self.client.delete_registered_model_tag(name, TAG_LEASE_EXPIRES)

    # --- listing -----------------------------------------------------------------------

    def list_models(self) -> list[tuple[str, dict[str, str], int]]:
        """(name, aliases -> version, number of versions) of every registered model."""
        rows = []
        for registered in self.client.search_registered_models(max_results=1000):
            versions = self.client.search_model_versions(f"name = '{registered.name}'")
            rows.append((registered.name, dict(registered.aliases), len(versions)))
        return rows

    def versions(self, name: str) -> list[VersionInfo]:
        """Every version of a model, newest first."""
        found = self.client.search_model_versions(f"name = '{name}'")
        aliases = dict(self.client.get_registered_model(name).aliases) if found else {}  # search omits aliases
        infos = [
            VersionInfo(model=name, version=str(v.version), stage=v.current_stage or "None",
                        aliases=tuple(sorted(a for a, n in aliases.items() if str(n) == str(v.version))),
                        run_id=v.run_id, created_ts=v.creation_timestamp / 1000.0, tags=dict(v.tags))
            for v in found
        ]
        return sorted(infos, key=lambda v: int(v.version), reverse=True)

    def version_metrics(self, name: str, version: str) -> dict[str, float]:
        """The candidate metrics of the run that produced a version (``candidate_`` prefix removed)."""
        run_id = self.client.get_model_version(name, version).run_id
        if not run_id:
            return {}
        metrics = self.client.get_run(run_id).data.metrics
        return {k.removeprefix("candidate_").replace("_at_", "@"): v for k, v in metrics.items()
                if k.startswith("candidate_")}

    # --- backup and restore --------------------------------------------------------------

    def backup(self, names: Sequence[str] | None = None) -> dict[str, Any]:
        """The registry's models (or those named), versions, aliases and tags as one JSON-able document."""
        models = []
        for registered in self.client.search_registered_models(max_results=1000):
            if names is not None and registered.name not in names:
                continue
            full = self.client.get_registered_model(registered.name)
            versions = sorted(self.client.search_model_versions(f"name = '{registered.name}'"),
                              key=lambda v: int(v.version))
            models.append({
                "name": full.name,
                "description": full.description or "",
                "tags": dict(full.tags),
                "aliases": dict(full.aliases),
                "versions": [
                    {"version": str(v.version), "source": v.source, "artifact_uri": self._artifact_uri(v.source),
                     "run_id": v.run_id or "", "description": v.description or "",
                     "stage": v.current_stage or "None", "tags": dict(v.tags)}
                    for v in versions
                ],
            })
        return {"format": BACKUP_FORMAT, "tracking_uri": self.tracking_uri, "created_ts": time.time(),
                "models": models}

    def _artifact_uri(self, source: str) -> str:
        """Where a version's files are: MLflow 3 sources name a logged model (``models:/m-...``)."""
        if not source.startswith("models:/m-"):
            return source
        return self.client.get_logged_model(source.removeprefix("models:/")).artifact_location

    def restore(self, document: Mapping[str, Any]) -> int:
        """Recreate a backup in this (empty) registry, keeping version numbers; returns versions restored.

        Gaps in version numbers (deleted versions) are reproduced by creating and deleting a
        placeholder. A version whose files live in an object store (``s3://``, ``gs://``, ...)
        points at them again. One whose files were kept by the old server itself
        (``mlflow-artifacts:``, local paths) cannot: MLflow only registers such sources from a
        run of this server, so the version is registered from a run made for it in the
        experiment ``<prefix>registry-restore``, which records the original source and run id
        (also kept as version tag ``driftline.source_run_id``). Artifacts are not copied.
        """
        if document.get("format") != BACKUP_FORMAT:
            raise ValueError(f"not a driftline registry backup (format {document.get('format')!r})")
        restored = 0
        for model in document["models"]:
            name = model["name"]
            self.client.create_registered_model(name, tags=model["tags"], description=model["description"] or None)
            next_number = 1
            for version in model["versions"]:
                while next_number < int(version["version"]):
                    placeholder = self._restore_version(name, version, {}, "")
                    self.client.delete_model_version(name, placeholder)
                    next_number += 1
                tags = dict(version["tags"])
                if version["run_id"]:
                    tags["driftline.source_run_id"] = version["run_id"]
                created = self._restore_version(name, version, tags, version["description"])
                if created != version["version"]:
                    raise RuntimeError(f"{name}: restored v{created}, expected v{version['version']}")
                if version["stage"] not in ("", "None"):
                    self._transition(name, created, version["stage"])
                next_number += 1
                restored += 1
            for alias, number in model["aliases"].items():
                self.client.set_registered_model_alias(name, alias, str(number))
        return restored

    def _restore_version(self, name: str, version: Mapping[str, Any], tags: Mapping[str, str],
                         description: str) -> str:
        artifact_uri = version["artifact_uri"]
        if urlparse(artifact_uri).scheme not in _SERVER_KEPT_SCHEMES:
            created = self.client.create_model_version(name, artifact_uri, tags=dict(tags),
                                                       description=description or None)
            return str(created.version)
        run = self.client.create_run(
            self.experiment_id("registry-restore"), run_name=f"{name} v{version['version']}",
            tags={"driftline.restored_model": name, "driftline.restored_version": str(version["version"]),
                  "driftline.source_run_id": version["run_id"], "driftline.source": artifact_uri[:5000]},
        )
        self.client.set_terminated(run.info.run_id)
        created = self.client.create_model_version(name, f"runs:/{run.info.run_id}/model", run_id=run.info.run_id,
                                                   tags=dict(tags), description=description or None)
        return str(created.version)


def is_transient(exc: BaseException) -> bool:
    """Errors that mean "MLflow is not answering" rather than "this request is wrong"."""
    if isinstance(exc, requests.RequestException | ConnectionError | TimeoutError):
        return True
    if isinstance(exc, RestException):
        return exc.get_http_status_code() >= 500
    return isinstance(exc, MlflowException) and "API request to" in str(exc)
