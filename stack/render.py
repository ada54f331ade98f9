"""Render every file the lab derives from settings: build contexts, compose env, harness target.

Templates live beside this module (``templates/<service>/``), named after their target
plus ``.j2``; files without ``.j2`` are copied as they are. Jinja's StrictUndefined turns
a typo in a template into an error instead of an empty setting.
"""

from __future__ import annotations

import json
import shutil

from jinja2 import Environment, PackageLoader, StrictUndefined

from stack.credentials import Credential
from stack.files import write_atomic
from stack.layout import SERVICES, BuildLayout
from stack.settings import Settings
from stack.tls_policy import TLS12_CIPHERS

LAB_HOST = "127.0.0.1"
# Container ports, fixed by the standards; only the host side is configurable.
CONTAINER_PORTS = {
    "smtp": 25,
    "submissions": 465,
    "submission": 587,
    "imaps": 993,
    "pop3s": 995,
    "imap": 143,
    "pop3": 110,
}
# RFC 8314: implicit TLS for submission and access; STARTTLS where cleartext must exist.
RFC8314_TLS = {
    "smtp": "starttls",
    "submissions": "implicit",
    "submission": "starttls",
    "imaps": "implicit",
    "pop3s": "implicit",
    "imap": "starttls",
    "pop3": "starttls",
}
# Files that hold secrets or keys get no permission for others.
_MODES = {"server.key": 0o600, "users": 0o640}
SCRIPT_SUFFIX = ".sh"  # scripts (health check, entrypoint) go next to the Dockerfile's conf/, executable


def image_name(settings: Settings, service: str) -> str:
    return f"{settings.image_prefix}/{service}:latest"


def closed_services(settings: Settings) -> list[str]:
    """Plaintext services that the settings switch off."""
    closed = []
    if not settings.imap_plaintext:
        closed.append("imap")
    if not settings.pop3_plaintext:
        closed.append("pop3")
    return closed


def _jinja() -> Environment:
    return Environment(
        loader=PackageLoader("stack", "templates"),
        undefined=StrictUndefined,
        keep_trailing_newline=True,
        autoescape=False,
    )


def template_values(settings: Settings, credentials: dict[str, Credential]) -> dict[str, object]:
    """Everything the templates may use; nothing else reaches them."""
    return {
        "hostname": settings.hostname,
        "mail_domain": settings.mail_domain,
        "addresses": settings.addresses,
        "users": [
            {"address": address, "password_hash": credentials[address].password_hash}
            for address in settings.addresses
        ],
        "imap_plaintext": settings.imap_plaintext,
        "pop3_plaintext": settings.pop3_plaintext,
        "message_size_limit": settings.message_size_limit,
        "dovecot_service": settings.dovecot_service,
        "queue_retry": settings.queue_retry.model_dump(),
        "tls12_ciphers": TLS12_CIPHERS,
    }


def render_service_config(service: str, values: dict[str, object]) -> dict[str, bytes]:
    """File name -> content for one service's templates (pure: no disk writes)."""
    env = _jinja()
    rendered: dict[str, bytes] = {}
    for name in sorted(env.list_templates()):
        folder, _, filename = name.partition("/")
        if folder != service:
            continue
        if filename.endswith(".j2"):
            rendered[filename[:-3]] = env.get_template(name).render(values).encode()
        else:
            source = env.loader.get_source(env, name)[0]  # type: ignore[union-attr]
            rendered[filename] = source.encode()
    return rendered


def render_contexts(settings: Settings, layout: BuildLayout, credentials: dict[str, Credential]) -> None:
    """Fill build/context/<service>/ with configuration, the server key and its chain."""
    values = template_values(settings, credentials)
    pki = layout.pki
    for service in SERVICES:
        context = layout.context(service)
        if context.exists():
            shutil.rmtree(context)
        for filename, content in render_service_config(service, values).items():
            if filename.endswith(SCRIPT_SUFFIX):
                write_atomic(context / filename, content, 0o755)
            else:
                write_atomic(context / "conf" / filename, content, _MODES.get(filename, 0o644))
        write_atomic(context / "tls" / "server.key", pki.server_key.read_bytes(), 0o600)
        write_atomic(context / "tls" / "fullchain.pem", pki.server_chain.read_bytes(), 0o644)
        write_atomic(context / "tls" / "server-rsa.key", pki.server_rsa_key.read_bytes(), 0o600)
        write_atomic(context / "tls" / "fullchain-rsa.pem", pki.server_rsa_chain.read_bytes(), 0o644)


def render_compose_env(settings: Settings, layout: BuildLayout) -> None:
    """Variables compose.yaml interpolates: image names and host ports."""
    lines = [
        f"MAILSTACK_POSTFIX_IMAGE={image_name(settings, 'postfix')}",
        f"MAILSTACK_DOVECOT_IMAGE={image_name(settings, 'dovecot')}",
        f"MAILSTACK_HOSTNAME={settings.hostname}",
        f"MAILSTACK_PROJECT={settings.compose_project}",
    ]
    for service, port in settings.host_ports.model_dump().items():
        lines.append(f"MAILSTACK_PORT_{service.upper()}={port}")
    write_atomic(layout.compose_env, ("\n".join(lines) + "\n").encode(), 0o644)


def render_target(settings: Settings, layout: BuildLayout, credentials: dict[str, Credential]) -> None:
    """The harness's view of the lab (it never imports stack/): mode 0600, it holds passwords."""
    target = {
        "host": LAB_HOST,
        "server_name": settings.hostname,
        "mail_domain": settings.mail_domain,
        "ca_file": str(layout.pki.root_cert.resolve()),
        "intermediates_file": str(layout.pki.intermediate_cert.resolve()),
        "message_size_limit": settings.message_size_limit,
        "ports": settings.host_ports.model_dump(),
        # The port policy the harness checks: RFC 8314, with 143/110 STARTTLS-only or closed.
        "tls": {**RFC8314_TLS, **{service: "closed" for service in closed_services(settings)}},
        "users": [{"address": a, "password": credentials[a].password} for a in settings.addresses],
    }
    write_atomic(layout.target, (json.dumps(target, indent=2) + "\n").encode(), 0o600)
