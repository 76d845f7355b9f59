"""Skip marks for tests that need an optional extra, so the core tier (``pip install -e ".[test]"``) skips
them with the install line instead of failing on an import."""

from __future__ import annotations

import importlib.util

import pytest


def needs(module: str, extra: str) -> pytest.MarkDecorator:
    """Skip unless ``module`` can be imported; the reason names the extra that installs it."""
    return pytest.mark.skipif(importlib.util.find_spec(module) is None,
                              reason=f"needs {module} (pip install -e '.[{extra}]')")
