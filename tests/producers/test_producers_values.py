"""Plain values to event parts, and PII masking: pure code, no broker."""

from __future__ import annotations

import hashlib
import hmac

import numpy as np
import pytest

from driftline.config import ConfigError, KafkaSettings, ProducerSettings, load_config
from driftline.producers import DriftlineProducer, PiiMasker, clean_features, to_outcome, to_prediction
from driftline.schemas.events import ClassPrediction, RankingOutcome, RankingPrediction


def test_predictions_from_plain_values() -> None:
    assert to_prediction(3, group_id="g") == 3.0 and isinstance(to_prediction(np.float32(2.5), group_id="g"), float)
    assert to_prediction("spam", group_id="g") == ClassPrediction(label="spam")
    labelled = to_prediction(("1", {"0": 0.3, "1": 0.7}), group_id="g")
    assert isinstance(labelled, ClassPrediction) and labelled.probabilities == {"0": 0.3, "1": 0.7}
    ranking = to_prediction({"a": 1.0, "b": 3.0}, group_id="race-7")
    assert isinstance(ranking, RankingPrediction)
    assert ranking.group_id == "race-7" and [i.item_id for i in ranking.items] == ["b", "a"]
    with pytest.raises(TypeError):
        to_prediction(True, group_id="g")
    with pytest.raises(TypeError):
        to_prediction([1, 2], group_id="g")


def test_outcomes_from_plain_values() -> None:
    assert to_outcome(np.int64(4), group_id="g") == 4.0
    assert to_outcome("churned", group_id="g") == "churned"
    relevance = to_outcome({"3": 2, "1": 0}, group_id="race-7")
    assert relevance == RankingOutcome(group_id="race-7", relevance={"3": 2.0, "1": 0.0})
    with pytest.raises(TypeError):
        to_outcome(None, group_id="g")


def test_clean_features_unwraps_numpy_and_maps_nan_to_missing() -> None:
    cleaned = clean_features({"i": np.int32(2), "f": np.float64(0.5), "nan": np.nan, "none": None, "flag": False})
    assert cleaned == {"i": 2, "f": 0.5, "nan": None, "none": None, "flag": 0}
    assert type(cleaned["i"]) is int
    with pytest.raises(ValueError, match="infinite"):
        clean_features({"x": float("inf")})
    with pytest.raises(TypeError, match="list"):
        clean_features({"x": [1]})


def test_masker_drops_and_hashes_with_hmac_sha256() -> None:
    masker = PiiMasker(drop=["email"], hash=["user"], salt="k")
    masked = masker.mask({"email": "a@b", "user": "u-1", "missing_user": None, "age": 3})
    assert "email" not in masked
    assert masked["user"] == hmac.new(b"k", b"u-1", hashlib.sha256).hexdigest()
    assert masked["age"] == 3
    other_salt = PiiMasker(hash=["user"], salt="other").mask({"user": "u-1"})
    assert other_salt["user"] != masked["user"]
    assert masker.mask({"user": None}) == {"user": None}


def test_masker_refuses_hashing_without_salt_and_overlaps() -> None:
    with pytest.raises(ValueError, match="salt"):
        PiiMasker(hash=["user"])
    with pytest.raises(ValueError, match="both"):
        PiiMasker(drop=["user"], hash=["user"], salt="k")
    assert not PiiMasker().active


def test_sdk_masks_before_building_the_event() -> None:
    settings = ProducerSettings(pii_drop=["email"], pii_hash=["user"], pii_salt="k")
    producer = DriftlineProducer(KafkaSettings(bootstrap_servers="127.0.0.1:1"), settings)
    assert producer.masker.mask({"email": "x", "user": "u"}) == {"user": producer.masker.token("u")}
    assert producer.close(timeout_s=0) == 0  # nothing sent: no client was ever created


def test_producer_settings_from_config_and_environment(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "driftline.toml"
    path.write_text('[producer]\nlinger_ms = 5\npii_hash = ["user"]\npii_salt = "from-file"\n')
    monkeypatch.setenv("DRIFTLINE_PRODUCER__COMPRESSION", "zstd")
    cfg = load_config(path)
    assert cfg.producer.linger_ms == 5 and cfg.producer.compression == "zstd"
    assert cfg.producer.pii_salt is not None and cfg.producer.pii_salt.get_secret_value() == "from-file"
    assert "from-file" not in repr(cfg.producer)
    producer = DriftlineProducer.from_config(cfg, client_overrides={"client.id": "svc"})
    assert producer.client_config["linger.ms"] == 5 and producer.client_config["compression.type"] == "zstd"
    assert producer.client_config["client.id"] == "svc"
    path.write_text('[producer]\npii_hash = ["user"]\n')
    with pytest.raises(ConfigError, match="pii_salt"):
        load_config(path)
