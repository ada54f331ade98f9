"""SASL client responses (PLAIN, LOGIN, CRAM-MD5), independent of the protocol carrying them."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac

SUPPORTED = ("PLAIN", "LOGIN", "CRAM-MD5")


class UnsupportedMechanism(ValueError):
    """The harness cannot speak this mechanism, so it cannot say whether it works."""


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def responses(mechanism: str, user: str, password: str):  # type: ignore[no-untyped-def]
    """A generator: send() it each server challenge (base64 text), it yields the reply."""
    if mechanism not in SUPPORTED:
        raise UnsupportedMechanism(mechanism)
    challenge = yield  # primed by next(); the first challenge arrives here
    if mechanism == "PLAIN":
        yield _b64(f"\0{user}\0{password}".encode())
    elif mechanism == "LOGIN":
        challenge = yield _b64(user.encode())
        yield _b64(password.encode())
    else:  # CRAM-MD5, RFC 2195
        try:
            nonce = base64.b64decode(challenge or "", validate=True)
        except binascii.Error:
            nonce = b""
        digest = hmac.new(password.encode(), nonce, hashlib.md5).hexdigest()
        yield _b64(f"{user} {digest}".encode())


def start(mechanism: str, user: str, password: str):  # type: ignore[no-untyped-def]
    exchange = responses(mechanism, user, password)
    next(exchange)
    return exchange
