"""driftline.example.toml documents every key, and is itself a valid configuration."""

from __future__ import annotations

import tomllib
from pathlib import Path

from driftline.config import DriftlineConfig, load_config

EXAMPLE = Path(__file__).resolve().parents[3] / "driftline.example.toml"
# Keys shown commented out because they have no useful default value.
COMMENTED = {("producer", "pii_salt"), ("retrain", "primary_metric"), ("retrain", "min_metric"),
             ("retrain", "tracking_uri")}


def test_example_loads() -> None:
    cfg = load_config(EXAMPLE)
    assert cfg.ingest.group_id == "driftline-ingest"


def test_example_names_every_key() -> None:
    written = tomllib.loads(EXAMPLE.read_text())
    missing = []
    for section, field in DriftlineConfig.model_fields.items():
        assert field.annotation is not None
        for key in field.annotation.model_fields:
            if key not in written.get(section, {}) and (section, key) not in COMMENTED:
                missing.append(f"{section}.{key}")
    assert missing == [], f"document these in driftline.example.toml: {missing}"
