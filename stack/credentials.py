"""Test-account passwords: generated once per lab, kept out of git and out of images.

The cleartext lives only in the git-ignored build folder (mode 0600), for the harness and
for the person running the lab. Images receive SHA512-CRYPT hashes only.
"""

from __future__ import annotations

import json
import os
import secrets
from collections.abc import Iterable
from pathlib import Path

from passlib.hash import sha512_crypt


def load_or_create_passwords(path: Path, addresses: Iterable[str]) -> dict[str, str]:
    """Return a password per address, generating (and saving) those not yet known."""
    known: dict[str, str] = {}
    if path.is_file():
        try:
            known = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError:
            known = {}
    wanted = list(addresses)
    passwords = {a: known.get(a) or secrets.token_urlsafe(18) for a in wanted}
    if passwords != known:
        path.parent.mkdir(parents=True, exist_ok=True)
        os.chmod(path.parent, 0o700)
        tmp = path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(passwords, handle, indent=2)
        os.replace(tmp, path)
    os.chmod(path, 0o600)
    return passwords


def hash_password(password: str, rounds: int) -> str:
    """Dovecot's {SHA512-CRYPT} form of password."""
    return "{SHA512-CRYPT}" + sha512_crypt.using(rounds=rounds).hash(password)
