"""Ingest's native hot path (``driftline_native``, built from ``native/`` by `make install`), when installed.

Without it (no Rust toolchain where driftline was installed) every poll, prediction, outcome
and labeled record takes the Python path: the same outputs, byte for byte, more CPU per event. The
``ingest.native`` setting turns it off where it is installed.
"""

from __future__ import annotations

try:
    from driftline_native import (
        PredictionScanner,
        ScannedPrediction,
        labeled_columns,
        labeled_records,
        scan_outcomes,
        scanned_columns,
        split_consumed,
    )
except ImportError:  # pragma: no cover - the tests run with it built wherever cargo is
    PredictionScanner = ScannedPrediction = labeled_columns = labeled_records = scan_outcomes = scanned_columns = None
    split_consumed = None

__all__ = ["AVAILABLE", "PredictionScanner", "ScannedPrediction", "labeled_columns", "labeled_records", "scan_outcomes",
           "scanned_columns", "split_consumed"]

AVAILABLE = PredictionScanner is not None
"""Whether the native hot path is installed."""
