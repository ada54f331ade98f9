"""Errors of the harness; each says which step on which port went wrong."""

from __future__ import annotations


class HarnessError(Exception):
    """Base of every harness error."""


class StepTimeout(HarnessError, TimeoutError):
    """A network step did not finish in time."""

    def __init__(self, step: str, port: int, seconds: float) -> None:
        super().__init__(f"timed out after {seconds:g} s: {step} on port {port}")
        self.step, self.port, self.seconds = step, port, seconds


class ProtocolError(HarnessError):
    """The server answered something the protocol does not allow here."""


class TargetError(HarnessError, ValueError):
    """The target description is missing or invalid."""
