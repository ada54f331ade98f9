"""The expected behaviour of each port, as data: RFC 8314 by default, overridable per service.

The stack renders this from the same settings as the server configuration, so a change of
policy changes configuration and checks together; a user can write one for another server.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Tls(StrEnum):
    IMPLICIT = "implicit"  # TLS from the first byte (RFC 8314 s3.3)
    STARTTLS = "starttls"  # cleartext greeting, upgrade required before any login
    CLOSED = "closed"  # nothing may listen


class Role(StrEnum):
    RELAY_IN = "relay-in"  # MX: unauthenticated mail for local users only, never AUTH
    SUBMISSION = "submission"  # authenticated users send mail
    ACCESS = "access"  # users read mail (IMAP, POP3)


@dataclass(frozen=True)
class ServicePolicy:
    """One service on one port and what it must do."""

    name: str
    protocol: str  # smtp, imap or pop3
    standard_port: int  # names the checks, whatever host port it is published on
    port: int
    tls: Tls
    role: Role

    @property
    def label(self) -> str:
        return f"{self.protocol}.{self.standard_port}"

    @property
    def speaks_tls(self) -> bool:
        return self.tls is not Tls.CLOSED


# service -> (protocol, standard port, default TLS, role): RFC 8314 with STARTTLS-only 143/110.
RFC8314: dict[str, tuple[str, int, Tls, Role]] = {
    "smtp": ("smtp", 25, Tls.STARTTLS, Role.RELAY_IN),
    "submissions": ("smtp", 465, Tls.IMPLICIT, Role.SUBMISSION),
    "submission": ("smtp", 587, Tls.STARTTLS, Role.SUBMISSION),
    "imaps": ("imap", 993, Tls.IMPLICIT, Role.ACCESS),
    "pop3s": ("pop3", 995, Tls.IMPLICIT, Role.ACCESS),
    "imap": ("imap", 143, Tls.STARTTLS, Role.ACCESS),
    "pop3": ("pop3", 110, Tls.STARTTLS, Role.ACCESS),
}


def service_policy(name: str, port: int, tls: Tls | str | None = None) -> ServicePolicy:
    """The RFC 8314 policy of a named service on a host port, with an optional TLS override."""
    protocol, standard_port, default_tls, role = RFC8314[name]
    return ServicePolicy(name, protocol, standard_port, port, Tls(tls) if tls else default_tls, role)
