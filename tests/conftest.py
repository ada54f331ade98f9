"""Unit tests see no MAILSTACK_* variables from the shell that runs them."""

from __future__ import annotations

import os

import pytest


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("MAILSTACK_"):
            monkeypatch.delenv(name)
