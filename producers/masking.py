"""PII masking applied to features before they leave the prediction service.

Personal data should never reach Kafka: configured features are either dropped or replaced
by a keyed hash (hmac-sha256 with a secret salt). The hash keeps a feature usable for drift
monitoring (same input, same token; new categories still show up) without being reversible
by anyone who lacks the salt.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable, Mapping

from driftline.schemas.events import FeatureValue

__all__ = ["PiiMasker"]


class PiiMasker:
    """Drop or hash named features of one event.

    Parameters
    ----------
    drop
        Feature names removed from every event.
    hash
        Feature names replaced by ``hmac-sha256(salt, str(value))`` as a hex string; ``None``
        stays ``None`` so missing values are still counted as missing.
    salt
        The hmac key; required when ``hash`` names any feature.

    Examples
    --------
    >>> masker = PiiMasker(drop=["email"], hash=["customer_id"], salt="s3cret")
    >>> masked = masker.mask({"email": "a@b.c", "customer_id": "C-17", "age": 41})
    >>> sorted(masked), masked["age"], len(masked["customer_id"])
    (['age', 'customer_id'], 41, 64)
    >>> masked["customer_id"] == masker.mask({"customer_id": "C-17"})["customer_id"]
    True
    """

    def __init__(self, drop: Iterable[str] = (), hash: Iterable[str] = (), salt: str | bytes | None = None) -> None:
        self.drop = frozenset(drop)
        self.hash = frozenset(hash)
        if self.hash and not salt:
            raise ValueError("hashing PII features needs a salt (producer.pii_salt)")
        overlap = self.drop & self.hash
        if overlap:
            raise ValueError(f"features both dropped and hashed: {', '.join(sorted(overlap))}")
        self._key = salt.encode() if isinstance(salt, str) else (salt or b"")

    @property
    def active(self) -> bool:
        """True when masking changes anything, so the SDK can skip it otherwise."""
        return bool(self.drop or self.hash)

    def token(self, value: FeatureValue) -> str | None:
        """The keyed hash of one value (hex), or None for a missing value."""
        if value is None:
            return None
        return hmac.new(self._key, str(value).encode(), hashlib.sha256).hexdigest()

    def mask(self, features: Mapping[str, FeatureValue]) -> dict[str, FeatureValue]:
        """A new feature dict without dropped features and with hashed ones tokenised."""
        if not self.active:
            return dict(features)
        return {
            name: (self.token(value) if name in self.hash else value)
            for name, value in features.items()
            if name not in self.drop
        }
