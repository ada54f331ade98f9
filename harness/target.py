"""What the harness checks: host, ports, CA and accounts, read from a JSON file."""

from __future__ import annotations

import json
import ssl
from dataclasses import dataclass, field, replace
from functools import cached_property
from pathlib import Path

from harness.errors import TargetError
from harness.policy import RFC8314, ServicePolicy, Tls, service_policy

SERVICES = tuple(RFC8314)
ALLOWED_HOSTS = ("127.0.0.1",)


@dataclass(frozen=True)
class Account:
    address: str
    password: str = field(repr=False)


@dataclass(frozen=True)
class Target:
    """A mail host as the harness sees it; ports are host ports."""

    host: str
    server_name: str
    mail_domain: str
    ca_file: Path
    services: dict[str, ServicePolicy]
    users: tuple[Account, ...]
    message_size_limit: int = 10 * 1024 * 1024
    intermediates: Path | None = None  # certificates a client may already hold

    def __post_init__(self) -> None:
        if self.host not in ALLOWED_HOSTS:
            raise TargetError(f"host {self.host!r} refused: the harness targets 127.0.0.1 only")
        missing = [s for s in SERVICES if s not in self.services]
        if missing:
            raise TargetError(f"target has no port for: {', '.join(missing)}")
        if len(self.users) < 2:
            raise TargetError("target needs at least two accounts (a sender and a recipient)")
        if not self.ca_file.is_file():
            raise TargetError(f"CA file {self.ca_file} does not exist")

    @property
    def ports(self) -> dict[str, int]:
        return {name: policy.port for name, policy in self.services.items()}

    @property
    def closed(self) -> frozenset[str]:
        return frozenset(name for name, policy in self.services.items() if policy.tls is Tls.CLOSED)

    def port(self, service: str) -> int:
        return self.services[service].port

    def is_open(self, service: str) -> bool:
        return self.services[service].tls is not Tls.CLOSED

    def with_ports(self, ports: dict[str, int]) -> Target:
        return replace(self, services={n: replace(p, port=ports[n]) for n, p in self.services.items()})

    @cached_property
    def tls_context(self) -> ssl.SSLContext:
        """Verifies chain and host name against the CA, as a client that may already hold
        the intermediates (like a browser's cache); TLS 1.2 at least. Shared: never change it."""
        return self.new_tls_context()

    def new_tls_context(self) -> ssl.SSLContext:
        """A new context like tls_context, for a caller that pins versions or suites."""
        context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(self.ca_file))
        if self.intermediates:
            context.load_verify_locations(cafile=str(self.intermediates))
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        return context

    @cached_property
    def roots_only_context(self) -> ssl.SSLContext:
        """Verifies against the CA file alone: the server must send every intermediate."""
        context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(self.ca_file))
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        return context


def load_target(path: Path) -> Target:
    """Parse a target file (as written by `python -m stack render`), with clear errors."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise TargetError(f"target file {path} does not exist (run `make up` or `python -m stack render`)") from exc
    except json.JSONDecodeError as exc:
        raise TargetError(f"target file {path} is not valid JSON: {exc}") from exc
    except (IsADirectoryError, PermissionError, UnicodeDecodeError) as exc:
        raise TargetError(f"target file {path} cannot be read: {exc.strerror if isinstance(exc, OSError) else exc}") from exc
    try:
        unknown = set(data["ports"]) - set(SERVICES)
        if unknown:
            raise TargetError(f"unknown services in target {path}: {', '.join(sorted(unknown))}")
        tls = dict(data.get("tls", {}))
        tls.update({name: Tls.CLOSED for name in data.get("closed", [])})
        return Target(
            host=data["host"],
            server_name=data["server_name"],
            mail_domain=data["mail_domain"],
            ca_file=Path(data["ca_file"]),
            services={n: service_policy(n, int(port), tls.get(n)) for n, port in data["ports"].items()},
            users=tuple(Account(u["address"], u["password"]) for u in data["users"]),
            message_size_limit=int(data.get("message_size_limit", 10 * 1024 * 1024)),
            intermediates=Path(data["intermediates_file"]) if data.get("intermediates_file") else None,
        )
    except (KeyError, TypeError, ValueError) as exc:
        if isinstance(exc, TargetError):
            raise
        raise TargetError(f"target file {path} is incomplete or invalid: {exc!r}") from exc
