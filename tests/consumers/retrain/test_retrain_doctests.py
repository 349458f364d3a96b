"""The examples in the retrain package's docstrings run (pytest collects doctests only under stream/, producers/)."""

from __future__ import annotations

import doctest
import importlib

import pytest


@pytest.mark.parametrize("module", ["policy", "data"])
def test_docstring_examples(module: str) -> None:
    result = doctest.testmod(importlib.import_module(f"driftline.consumers.retrain.{module}"))
    assert result.attempted > 0 and result.failed == 0
