"""Every check, in report order. Ids are stable: ``<protocol>.<standard port>.<check>``."""

from harness.checks import attacks, auth, delivery, relay, tls_quality, transport
from harness.checks.base import Check, CheckResult, Outcome, Status

ALL_CHECKS: list[Check] = [
    *transport.CHECKS,
    *tls_quality.CHECKS,
    *auth.CHECKS,
    *relay.CHECKS,
    *attacks.CHECKS,
    *delivery.CHECKS,
]

__all__ = ["ALL_CHECKS", "Check", "CheckResult", "Outcome", "Status"]
