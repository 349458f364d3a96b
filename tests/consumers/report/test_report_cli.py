"""`driftline report` on the real broker: reference and pane partials in, HTML and PNG out."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from confluent_kafka import Producer
from matplotlib.image import imread
from report_stream import MODEL, SETTINGS, SHIFTED, partials, reference
from typer.testing import CliRunner

from driftline.cli import app
from driftline.config import DriftlineConfig, load_config
from driftline.consumers.common.references import publish_profile
from driftline.consumers.report.builder import select_window
from driftline.consumers.report.source import read_partials, scan_panes
from driftline.schemas.codec import encode
from driftline.topics import ensure_topics

pytestmark = pytest.mark.integration


@pytest.fixture
def cfg(kafka, topic_prefix: str, tmp_path: Path) -> Iterator[DriftlineConfig]:
    """A driftline topic set under a unique prefix, deleted afterwards."""
    from confluent_kafka.admin import AdminClient

    config = load_config(None, kafka={"bootstrap_servers": kafka.bootstrap, "topic_prefix": topic_prefix,
                                      "partitions": 2})
    created = list(ensure_topics(config.kafka))
    yield config
    for future in AdminClient(config.kafka.client_config()).delete_topics(created).values():
        with contextlib.suppress(Exception):
            future.result(timeout=30)


def _config_file(cfg: DriftlineConfig, path: Path) -> Path:
    monitor = "\n".join(f"{key} = {value!r}" for key, value in SETTINGS.model_dump(
        include={"pane_s", "window_s", "step_s", "allowed_lateness_s", "min_samples"}).items())
    path.write_text(f'[kafka]\nbootstrap_servers = "{cfg.kafka.bootstrap_servers}"\n'
                    f'topic_prefix = "{cfg.kafka.topic_prefix}"\npartitions = 2\n\n[monitor]\n{monitor}\n')
    return path


def test_report_from_kafka_names_the_shifted_features(cfg: DriftlineConfig, tmp_path: Path) -> None:
    profile = reference()
    publish_profile(cfg.kafka, profile)
    publish_profile(cfg.kafka, reference(model="fraud"))
    producer = Producer(cfg.kafka.client_config())
    panes = cfg.kafka.topic("panes")
    published = partials(profile)
    for partial in [*published, *partials(reference(model="fraud"), until_s=300.0)]:
        producer.produce(panes, encode(partial), partial.model.encode())
    producer.produce(panes, b"{not json", MODEL.encode())
    assert producer.flush(30) == 0
    config_file = _config_file(cfg, tmp_path / "driftline.toml")
    runner = CliRunner()

    done = runner.invoke(app, ["report", "--model", MODEL, "--out", str(tmp_path / "reports"),
                               "--config", str(config_file)])

    assert done.exit_code == 0, done.output
    assert "1 records of 'churn' on `panes` could not be decoded" in done.stderr
    assert "data drift: YES (2 of 5 features" in done.stdout
    folder = tmp_path / "reports" / MODEL / "19700101T001500Z"  # the window [600, 900) after the shift
    html = (folder / "drift_report.html").read_text()
    for feature in ("x0", "x1", "x2", "x3", "city"):
        drifted = feature in SHIFTED
        assert (f'<tr class="drift"><td>{feature}</td>' in html) is drifted, feature
        assert (f'<tr class="ok"><td>{feature}</td>' in html) is not drifted, feature
    png = folder / "drift_summary.png"
    assert png.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    pixels = imread(png)
    assert pixels.shape[0] > 100 and pixels.shape[1] > 100 and np.ptp(pixels) > 0
    assert str(folder / "drift_report.html") in done.stdout.replace("\n", "")

    missing = runner.invoke(app, ["report", "--model", "nobody", "--config", str(config_file)])
    assert missing.exit_code == 1
    assert missing.stderr.strip().splitlines() == [
        f"error: no reference profile for model 'nobody' on {cfg.kafka.topic('references')} "
        "(models with one: churn, fraud); run `driftline reference build`"
    ]

    not_yet = runner.invoke(app, ["report", "--model", MODEL, "--window-end", "1970-01-01T00:20:00Z",
                                  "--config", str(config_file)])
    assert not_yet.exit_code == 1
    assert not_yet.stderr.strip().splitlines()[-1] == (
        "error: the window ending 1970-01-01T00:20:00Z is not complete: every source's panes reach only "
        "1970-01-01T00:19:00Z"
    )

    scan = scan_panes(cfg.kafka, MODEL, timeout_s=30.0)
    assert (len(scan.records), scan.n_rejected) == (len(published), 1)
    end, chosen = select_window(profile, scan.records, SETTINGS)
    read = read_partials(cfg.kafka, scan.topic, chosen, timeout_s=30.0)
    assert end == 900.0 and read.n_rejected == 0
    assert [(p.source, p.pane_start) for p in read.partials] == [(r.source, r.pane_start) for r in chosen]
    assert {p.pane_start for p in read.partials} == {600.0, 660.0, 720.0, 780.0, 840.0}
