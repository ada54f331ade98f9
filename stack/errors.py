"""One failure vocabulary for the build; each message names the fix."""

from __future__ import annotations


class StackError(Exception):
    """Base of every error the build reports to a user (exit status in ``exit_code``)."""

    exit_code = 1


class EngineUnavailable(StackError, ConnectionError):
    """No Docker engine answers, or Compose v2 is missing."""

    exit_code = 3


class BuildFailed(StackError):
    """docker build failed; the message carries the build's last lines."""


class LabFailed(StackError):
    """docker compose could not bring the lab up healthy."""
