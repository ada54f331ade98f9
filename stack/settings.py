"""The single settings source: every certificate, config file and harness target derives from it.

Values come from a TOML file (``mailstack.toml`` by default) and are overridden by
``MAILSTACK_*`` environment variables (nested fields with ``__``, e.g.
``MAILSTACK_HOST_PORTS__SMTP=2525``). Validation reports every problem at once.
"""

from __future__ import annotations

import difflib
import os
import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, model_validator
from pydantic_settings import (
    BaseSettings,
    SettingsError as PydanticSettingsError,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

DEFAULT_CONFIG_FILE = Path("mailstack.toml")

_LABEL = r"(?!-)[a-z0-9-]{1,63}(?<!-)"
_DOMAIN_RE = re.compile(rf"^{_LABEL}(\.{_LABEL})+$")
# Docker's reference grammar: path components of lower-case alphanumerics joined by one
# separator (., _, __ or dashes); a base image may add a registry host[:port], a tag, a digest.
_IMAGE_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_IMAGE_PATH = rf"^{_IMAGE_COMPONENT}(?:/{_IMAGE_COMPONENT})*$"
_IMAGE_REFERENCE = (rf"^(?:[a-zA-Z0-9.-]+(?::[0-9]+)?/)?{_IMAGE_COMPONENT}(?:/{_IMAGE_COMPONENT})*"
                    r"(?::[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?(?:@sha256:[a-f0-9]{64})?$")
# A dot-atom local part: no leading, trailing or doubled dot (RFC 5322 s3.4.1).
_LOCAL_PART_RE = re.compile(r"^(?=.{1,64}$)[a-z0-9][a-z0-9_-]*(?:\.[a-z0-9_-]+)*$")


class SettingsError(ValueError):
    """Settings are missing, unreadable or invalid; the message lists every problem."""


def _domain(value: str) -> str:
    normal = value.strip().lower()
    if len(normal) > 253 or not _DOMAIN_RE.match(normal):
        raise ValueError(f"{value!r} is not a fully qualified domain name (e.g. example.test)")
    return normal


def _local_part(value: str) -> str:
    normal = value.strip().lower()
    if not _LOCAL_PART_RE.match(normal):
        raise ValueError(f"{value!r} is not a valid user name: letters, digits, '_' or '-', and single dots "
                         "between them (at most 64 characters)")
    return normal


def _common_name(value: str) -> str:
    if len(value) > 64:
        raise ValueError(f"is {len(value)} characters; at most 64, as it is the certificate's common name")
    return value


def _image_path(value: str) -> str:
    if len(value) > 200 or not re.match(_IMAGE_PATH, value):
        raise ValueError(f"{value!r} is not a Docker image name (e.g. 'mailstack' or 'team/mailstack': lower-case "
                         "letters and digits, single '.', '_' or '-' between them, '/' between parts)")
    return value


def _image_reference(value: str) -> str:
    if len(value) > 255 or not re.match(_IMAGE_REFERENCE, value):
        raise ValueError(f"{value!r} is not a Docker image reference (e.g. 'debian:bookworm-slim' or "
                         "'registry.example:5000/debian:bookworm-slim')")
    return value


DomainName = Annotated[str, AfterValidator(_domain)]
LocalPart = Annotated[str, AfterValidator(_local_part)]
Port = Annotated[int, Field(ge=1, le=65535)]


class HostPorts(BaseModel):
    """Host ports on 127.0.0.1 that publish each container port; change them when one is taken."""

    model_config = ConfigDict(extra="forbid")

    smtp: Port = 25
    submissions: Port = 465
    submission: Port = 587
    imaps: Port = 993
    pop3s: Port = 995
    imap: Port = 143
    pop3: Port = 110

    @model_validator(mode="after")
    def _distinct(self) -> HostPorts:
        seen: dict[int, str] = {}
        for name, port in self.model_dump().items():
            if port in seen:
                raise ValueError(f"host port {port} is used by both {seen[port]} and {name}")
            seen[port] = name
        return self


class QueueRetry(BaseModel):
    """When Postfix retries deferred mail (seconds).

    Postfix's defaults (300/300/4000) are tuned for remote hosts; here the usual cause of a
    deferral is the local Dovecot restarting, so accepted mail should move within seconds
    of its return. Retries still back off, doubling up to maximal_backoff.
    """

    model_config = ConfigDict(extra="forbid")

    queue_run_delay: int = Field(default=10, ge=1, le=3600, description="how often the deferred queue is scanned")
    minimal_backoff: int = Field(default=10, ge=1, le=3600, description="first retry after a deferral")
    maximal_backoff: int = Field(default=300, ge=1, le=86400, description="longest wait between two retries")

    @model_validator(mode="after")
    def _ordered(self) -> QueueRetry:
        if not self.queue_run_delay <= self.minimal_backoff <= self.maximal_backoff:
            raise ValueError("need queue_run_delay <= minimal_backoff <= maximal_backoff (Postfix's rule)")
        return self


class Settings(BaseSettings):
    """What a lab operator chooses; everything else is derived."""

    model_config = SettingsConfigDict(
        env_prefix="MAILSTACK_",
        env_nested_delimiter="__",
        extra="forbid",
        toml_file=DEFAULT_CONFIG_FILE,
    )

    mail_domain: DomainName = "example.test"
    hostname: Annotated[DomainName, AfterValidator(_common_name)] = "mail.example.test"
    users: list[LocalPart] = Field(default_factory=lambda: ["alice", "bob"], min_length=1)
    imap_plaintext: bool = Field(
        default=True, description="143 open with STARTTLS required before login; false closes it"
    )
    pop3_plaintext: bool = Field(
        default=True, description="110 open with STLS required before login; false closes it"
    )
    message_size_limit: int = Field(default=10 * 1024 * 1024, ge=1024 * 1024, le=512 * 1024 * 1024)
    host_ports: HostPorts = Field(default_factory=HostPorts)
    queue_retry: QueueRetry = Field(default_factory=QueueRetry)
    dovecot_service: Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9.-]*$")] = "dovecot"
    password_rounds: int = Field(
        default=5000,
        ge=5000,
        le=1_000_000,
        description="SHA512-CRYPT rounds; 5000 is Dovecot's own default and costs ~2 ms per login",
    )
    image_prefix: Annotated[str, AfterValidator(_image_path)] = "mailstack"
    compose_project: Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_-]*$")] = Field(
        default="mailstack", description="compose project name: run two labs side by side with two names"
    )
    base_image: Annotated[str, AfterValidator(_image_reference)] = "debian:bookworm-slim"

    @model_validator(mode="after")
    def _unique_users(self) -> Settings:
        duplicates = sorted({u for u in self.users if self.users.count(u) > 1})
        if duplicates:
            raise ValueError(f"users listed twice: {', '.join(duplicates)}")
        return self

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Environment beats the file so that CI and tests can override one value.
        return init_settings, env_settings, TomlConfigSettingsSource(settings_cls)

    @property
    def addresses(self) -> list[str]:
        return [f"{user}@{self.mail_domain}" for user in self.users]


# MAILSTACK_* names that are not settings: read by the harness, the benchmarks, or compose
# (from build/compose.env), so a user may well have them exported.
OTHER_ENVIRONMENT = ("MAILSTACK_TARGET", "MAILSTACK_BUILD_DIR", "MAILSTACK_PROJECT", "MAILSTACK_POSTFIX_IMAGE",
                     "MAILSTACK_DOVECOT_IMAGE", "MAILSTACK_PORT_")


def _environment_names() -> list[str]:
    """Every MAILSTACK_* name a setting answers to (nested fields with __)."""
    names = []
    for name, field in Settings.model_fields.items():
        names.append(f"MAILSTACK_{name.upper()}")
        if isinstance(field.annotation, type) and issubclass(field.annotation, BaseModel):
            names += [f"MAILSTACK_{name.upper()}__{sub.upper()}" for sub in field.annotation.model_fields]
    return names


def unknown_environment(environ: Mapping[str, str]) -> list[str]:
    """MAILSTACK_* variables that no setting reads: a typo would otherwise be ignored in silence."""
    known = set(_environment_names())
    problems = []
    for key in sorted(environ):
        upper = key.upper()
        if not upper.startswith("MAILSTACK_") or upper in known or upper.startswith(OTHER_ENVIRONMENT):
            continue
        guess = difflib.get_close_matches(upper, sorted(known), n=1)
        problems.append(f"{key}" + (f" (did you mean {guess[0]}?)" if guess else ""))
    return problems


def load_settings(config_file: Path | None = None, **overrides: object) -> Settings:
    """Load and validate settings; raise SettingsError naming the file and every bad field."""
    path = config_file or DEFAULT_CONFIG_FILE
    unknown = unknown_environment(os.environ)
    if unknown:
        raise SettingsError("unknown MAILSTACK_* environment variables (no setting reads them):\n"
                            + "\n".join(f"  - {problem}" for problem in unknown))
    if path.exists() and not path.is_file():
        raise SettingsError(f"settings file {path} is not a file")
    if config_file is not None and not path.is_file():
        raise SettingsError(f"settings file {path} does not exist")
    if path.is_file():
        try:
            tomllib.loads(path.read_text(encoding="utf-8"))
        except tomllib.TOMLDecodeError as exc:
            raise SettingsError(f"{path} is not valid TOML: {exc}") from exc
        except UnicodeDecodeError as exc:
            raise SettingsError(f"{path} is not UTF-8 text: {exc}") from exc

    class _FromFile(Settings):
        model_config = SettingsConfigDict(toml_file=path)

    try:
        return _FromFile(**overrides)
    except PydanticSettingsError as exc:  # an environment value that is not valid JSON
        raise SettingsError(
            f"invalid settings in the MAILSTACK_* environment: {exc} "
            '(lists and tables take JSON, e.g. MAILSTACK_USERS=\'["alice","bob"]\')'
        ) from exc
    except ValidationError as exc:
        problems = "\n".join(
            f"  - {'.'.join(str(p) for p in err['loc']) or '(settings)'}: {err['msg']}"
            + (f" (got {err['input']!r})" if err["type"] not in ("value_error", "missing", "extra_forbidden") else "")
            for err in exc.errors()
        )
        raise SettingsError(
            f"invalid settings (from {path} and MAILSTACK_* environment):\n{problems}"
        ) from exc
