"""SASL client responses against the RFC examples."""

from __future__ import annotations

import base64

import pytest

from harness import sasl


def test_plain_sends_authzid_user_password() -> None:
    exchange = sasl.start("PLAIN", "tim", "tanstaaftanstaaf")
    assert base64.b64decode(exchange.send("")) == b"\0tim\0tanstaaftanstaaf"


def test_login_answers_user_then_password() -> None:
    exchange = sasl.start("LOGIN", "alice", "pw")
    assert exchange.send("VXNlcm5hbWU6") == base64.b64encode(b"alice").decode()
    assert exchange.send("UGFzc3dvcmQ6") == base64.b64encode(b"pw").decode()


def test_cram_md5_matches_rfc_2195() -> None:
    challenge = base64.b64encode(b"<1896.697170952@postoffice.reston.mci.net>").decode()
    exchange = sasl.start("CRAM-MD5", "tim", "tanstaaftanstaaf")
    assert base64.b64decode(exchange.send(challenge)) == b"tim b913a602c7eda7a495b4e6e7334d3890"


def test_unknown_mechanism_is_refused() -> None:
    with pytest.raises(sasl.UnsupportedMechanism):
        sasl.start("GSSAPI", "a", "b")
