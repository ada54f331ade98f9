"""Test-account credentials: generated once per lab, kept out of git and out of images.

The cleartext lives only in the git-ignored build folder (mode 0600), for the harness and
for the person running the lab. Images receive SHA512-CRYPT hashes only. A stored hash is
reused while it still matches, so re-rendering does not change the image (salts are random).
"""

from __future__ import annotations

import json
import os
import secrets
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path

from passlib.hash import sha512_crypt

from stack.files import write_atomic

SCHEME = "{SHA512-CRYPT}"


@dataclass(frozen=True)
class Credential:
    password: str
    password_hash: str

    def matches(self, rounds: int) -> bool:
        if not self.password_hash.startswith(SCHEME):
            return False
        crypt = self.password_hash[len(SCHEME) :]
        try:
            return sha512_crypt.from_string(crypt).rounds == rounds and sha512_crypt.verify(
                self.password, crypt
            )
        except ValueError:
            return False


def hash_password(password: str, rounds: int) -> str:
    """Dovecot's {SHA512-CRYPT} form of password."""
    return SCHEME + sha512_crypt.using(rounds=rounds).hash(password)


def _read(path: Path) -> dict[str, Credential]:
    """Stored credentials; anything unreadable or mistyped counts as absent (and is regenerated)."""
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        credentials = {address: Credential(**entry) for address, entry in raw.items()}
    except (OSError, ValueError, TypeError, AttributeError):
        return {}
    return {
        address: c
        for address, c in credentials.items()
        if isinstance(c.password, str) and isinstance(c.password_hash, str)
    }


def _write(path: Path, credentials: dict[str, Credential]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    os.chmod(path.parent, 0o700)
    write_atomic(path, json.dumps({a: asdict(c) for a, c in credentials.items()}, indent=2).encode(), 0o600)


def load_or_create_credentials(path: Path, addresses: Iterable[str], rounds: int) -> dict[str, Credential]:
    """A credential per address: kept when still valid, generated (and saved) otherwise."""
    known = _read(path)
    result: dict[str, Credential] = {}
    for address in addresses:
        current = known.get(address)
        if current is None:
            password = secrets.token_urlsafe(18)
            current = Credential(password, hash_password(password, rounds))
        elif not current.matches(rounds):
            current = Credential(current.password, hash_password(current.password, rounds))
        result[address] = current
    if result != known:
        _write(path, result)
    os.chmod(path, 0o600)
    return result
