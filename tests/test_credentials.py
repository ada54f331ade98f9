"""Credentials: generated once, private, hashes stable while valid and Dovecot-compatible."""

from __future__ import annotations

import json
import stat
from pathlib import Path

from passlib.hash import sha512_crypt

from stack.credentials import SCHEME, load_or_create_credentials

ADDRESSES = ["alice@example.test", "bob@example.test"]


def test_generated_once_and_private(tmp_path: Path) -> None:
    path = tmp_path / "secrets" / "credentials.json"
    first = load_or_create_credentials(path, ADDRESSES, 5000)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert load_or_create_credentials(path, ADDRESSES, 5000) == first
    assert len({c.password for c in first.values()}) == 2 and all(len(c.password) >= 20 for c in first.values())


def test_hash_is_dovecot_sha512_crypt_of_the_password(tmp_path: Path) -> None:
    credential = load_or_create_credentials(tmp_path / "c.json", ADDRESSES, 5000)["alice@example.test"]
    assert credential.password_hash.startswith(SCHEME + "$6$")
    assert sha512_crypt.verify(credential.password, credential.password_hash[len(SCHEME) :])


def test_changed_rounds_rehash_but_keep_the_password(tmp_path: Path) -> None:
    path = tmp_path / "c.json"
    before = load_or_create_credentials(path, ADDRESSES, 5000)
    after = load_or_create_credentials(path, ADDRESSES, 10000)
    assert after["bob@example.test"].password == before["bob@example.test"].password
    assert "$6$rounds=10000$" in after["bob@example.test"].password_hash


def test_new_user_added_old_ones_kept_and_corrupt_file_regenerated(tmp_path: Path) -> None:
    path = tmp_path / "c.json"
    before = load_or_create_credentials(path, ADDRESSES[:1], 5000)
    after = load_or_create_credentials(path, ADDRESSES, 5000)
    assert after["alice@example.test"] == before["alice@example.test"]
    assert set(json.loads(path.read_text())) == set(ADDRESSES)
    path.write_text("{half")
    assert set(load_or_create_credentials(path, ADDRESSES, 5000)) == set(ADDRESSES)


def test_mistyped_entries_are_regenerated_not_crashed_on(tmp_path: Path) -> None:
    path = tmp_path / "c.json"
    path.write_text(json.dumps({"alice@example.test": {"password": 1, "password_hash": 2}}))
    credential = load_or_create_credentials(path, ADDRESSES[:1], 5000)["alice@example.test"]
    assert isinstance(credential.password, str) and credential.matches(5000)
