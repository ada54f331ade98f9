"""Deliberately weakened labs, to show that each check fails on the server that breaks it.

A variant is the lab's own images with a few configuration files replaced through a
compose override (bind mounts), so no image is rebuilt. Each names the check ids that must
fail; every other check must still pass, which shows the harness flags exactly what broke.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from dataclasses import replace as replace_field
from pathlib import Path

from harness.policy import Tls
from harness.target import Target



def append(lines: str) -> Callable[[str], str]:
    return lambda text: text + "\n# --- weakened for a harness test ---\n" + lines + "\n"


def set_parameters(values: dict[str, str]) -> Callable[[str], str]:
    """Change `name = value` lines of main.cf in place (appending a repeat makes every
    Postfix command warn), adding those that are absent."""

    def edit(text: str) -> str:
        lines = text.splitlines()
        for name, value in values.items():
            hits = [i for i, line in enumerate(lines) if line.split("=", 1)[0].strip() == name]
            for i in hits:
                lines[i] = f"{name} = {value}"
            if not hits:
                lines.append(f"{name} = {value}")
        return "\n".join(lines) + "\n"

    return edit


def replace(old: str, new: str) -> Callable[[str], str]:
    def edit(text: str) -> str:
        if old not in text:
            raise ValueError(f"variant edit: {old!r} not found")
        return text.replace(old, new)

    return edit


@dataclass(frozen=True)
class Edit:
    service: str  # compose service
    container_path: str  # file replaced in the container
    source: str  # file under the build folder it starts from
    transform: Callable[[str], str] = lambda text: text


@dataclass(frozen=True)
class Variant:
    name: str
    breaks: str
    edits: tuple[Edit, ...]
    must_fail: frozenset[str]
    # For a policy the server does not meet (rather than a server that is broken).
    policy: Callable[[Target], Target] = lambda target: target


def _main_cf(transform: Callable[[str], str]) -> Edit:
    return Edit("postfix", "/etc/postfix/main.cf", "context/postfix/conf/main.cf", transform)


SMTP_PORTS = ("smtp.25", "smtp.465", "smtp.587")
LOGIN_PORTS = ("smtp.465", "smtp.587", "imap.993", "pop3.995", "imap.143", "pop3.110")


def _dovecot_conf(transform: Callable[[str], str]) -> Edit:
    return Edit("dovecot", "/etc/dovecot/dovecot.conf", "context/dovecot/conf/dovecot.conf", transform)


def _new_file(service: str, container_path: str, content: str) -> Edit:
    # Any rendered file will do as a starting point: the transform ignores it.
    return Edit(service, container_path, "context/postfix/conf/vmailbox", lambda _text: content)


def _imap_143_closed(target: Target) -> Target:
    services = dict(target.services)
    services["imap"] = replace_field(services["imap"], tls=Tls.CLOSED)
    return replace_field(target, services=services)

VARIANTS = [
    Variant(
        "tls10-allowed",
        "Postfix accepts TLS 1.0 and 1.1",
        (_main_cf(set_parameters({
            "smtpd_tls_protocols": ">=TLSv1",
            "smtpd_tls_mandatory_protocols": ">=TLSv1",
            "smtpd_tls_exclude_ciphers": "aNULL",
            "tls_high_cipherlist": "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES128-SHA:@SECLEVEL=0",
        })),),
        frozenset(f"{p}.tls-versions" for p in SMTP_PORTS),
    ),
    Variant(
        "auth-before-starttls",
        "587 offers and accepts AUTH before STARTTLS",
        (Edit("postfix", "/etc/postfix/master.cf", "context/postfix/conf/master.cf", replace(
            "  -o smtpd_tls_security_level=encrypt\n  -o smtpd_sasl_auth_enable=yes\n  -o smtpd_tls_auth_only=yes\n",
            "  -o smtpd_tls_security_level=may\n  -o smtpd_sasl_auth_enable=yes\n  -o smtpd_tls_auth_only=no\n",
        )),),
        frozenset({"smtp.587.auth-before-tls"}),
    ),
    Variant(
        "open-relay",
        "port 25 relays for anyone",
        (_main_cf(set_parameters({
            # The classic mistake: every client trusted. (Postfix refuses a relay restriction
            # list without a reachable reject, so "permit" alone is not even possible.) The
            # bare-newline exclusions, which default to $mynetworks, stay as they were.
            "mynetworks": "0.0.0.0/0",
            "smtpd_forbid_bare_newline_exclusions": "127.0.0.0/8",
        })),),
        frozenset({"smtp.25.no-open-relay"}),
    ),
    Variant(
        "smuggling-unprotected",
        "bookworm's defaults: bare newlines and unauthenticated pipelining allowed",
        (_main_cf(set_parameters({
            "smtpd_forbid_bare_newline": "no",
            "smtpd_forbid_unauth_pipelining": "no",
            "smtpd_data_restrictions": "",
        })),),
        frozenset({"smtp.25.smtp-smuggling"}),
    ),
    Variant(
        "leaf-without-chain",
        "Postfix serves its certificate without the intermediate",
        (Edit("postfix", "/etc/postfix/tls/fullchain.pem", "pki/server.pem"),),
        frozenset(f"{p}.full-chain" for p in SMTP_PORTS),
    ),
    Variant(
        "plaintext-login-143",
        "Dovecot allows LOGIN on 143 before STARTTLS",
        (_dovecot_conf(append("protocol imap {\n  ssl = yes\n  disable_plaintext_auth = no\n}")),),
        frozenset({"imap.143.auth-before-tls"}),
    ),
    Variant(
        "auth-on-25",
        "port 25 offers AUTH (after STARTTLS, as smtpd_tls_auth_only allows)",
        (_main_cf(set_parameters({"smtpd_sasl_auth_enable": "yes"})),),
        frozenset({"smtp.25.no-auth"}),
    ),
    Variant(
        "broken-mechanism",
        "CRAM-MD5 advertised, which SHA512-CRYPT hashes can never satisfy",
        (_dovecot_conf(set_parameters({"auth_mechanisms": "plain login cram-md5"})),),
        frozenset(f"{p}.auth-mechanisms" for p in LOGIN_PORTS),
    ),
    Variant(
        "any-password",
        "a fallback passdb that accepts any password",
        (_dovecot_conf(append("passdb {\n  driver = static\n  args = nopassword=y\n}")),),
        frozenset(f"{p}.wrong-password" for p in LOGIN_PORTS),
    ),
    Variant(
        "unlisted-recipients",
        "unknown local recipients accepted at RCPT (they would bounce later)",
        (_main_cf(set_parameters({
            "smtpd_reject_unlisted_recipient": "no",
            "smtpd_recipient_restrictions": "reject_non_fqdn_recipient",
        })),),
        frozenset(f"{p}.unknown-recipient" for p in SMTP_PORTS),
    ),
    Variant(
        "body-rewritten",
        "body_checks rules change one line of ASCII and of UTF-8 bodies in transit",
        (
            _new_file("postfix", "/etc/postfix/body_checks",
                      "/^line 0001 /   REPLACE line 0001 rewritten\n/^Gr[^ ]* aus /   REPLACE rewritten aus \n"),
            _main_cf(set_parameters({"body_checks": "regexp:/etc/postfix/body_checks"})),
        ),
        frozenset(f"smtp.{p}.{c}" for p in (465, 587) for c in ("delivery", "delivery-8bit")),
    ),
    Variant(
        "size-below-policy",
        "the server refuses mail below the size the policy promises",
        (_main_cf(set_parameters({"message_size_limit": "5242880"})),),
        frozenset({"smtp.465.size-near-limit"}),
    ),
    Variant(
        "size-above-policy",
        "the server accepts mail above the size the policy allows",
        (_main_cf(set_parameters({"message_size_limit": "20971520"})),),
        frozenset({"smtp.465.size-over-limit"}),
    ),
    Variant(
        "open-when-closed",
        "143 answers although the policy says it is closed",
        (),
        frozenset({"imap.143.closed"}),
        policy=_imap_143_closed,
    ),
]


def write_override(variant: Variant, build_dir: Path, directory: Path) -> Path:
    """Write the edited files and a compose override that mounts them; return its path."""
    directory.mkdir(parents=True, exist_ok=True)
    services: dict[str, dict[str, list[str]]] = {}
    for number, edit in enumerate(variant.edits):
        edited = directory / f"{number}-{Path(edit.container_path).name}"
        edited.write_text(edit.transform((build_dir / edit.source).read_text()))
        edited.chmod(0o644)
        services.setdefault(edit.service, {"volumes": []})["volumes"].append(
            f"{edited.resolve()}:{edit.container_path}:ro"
        )
    override = directory / "compose.override.yaml"  # JSON is YAML: no YAML library needed
    override.write_text(json.dumps({"services": services}, indent=2))
    return override
