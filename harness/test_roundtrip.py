"""Mail submitted over 465 and 587 comes back byte for byte over 993 and 995."""

from __future__ import annotations

import pytest

from harness.imap import fetch_delivered
from harness.mailbox import pop3_fetch
from harness.message import ID_HEADER, header, make_message, split_message
from harness.smtp import submit
from harness.target import Target

pytestmark = pytest.mark.e2e
DELIVERY_DEADLINE_S = 20.0


@pytest.mark.parametrize("service", ["submissions", "submission"])
async def test_round_trip_is_byte_exact(target: Target, service: str) -> None:
    sender, recipient = target.users[0], target.users[1]
    message = make_message(sender.address, recipient.address, via=service)

    reply = await submit(target, service, sender, message)
    assert reply.startswith("2.0.0 Ok: queued"), reply

    over_imap = await fetch_delivered(target, recipient, message.token, DELIVERY_DEADLINE_S)
    over_pop3 = await pop3_fetch(target, recipient, message.token, delete=True)

    assert over_imap == over_pop3, "IMAP and POP3 returned different bytes for one stored message"
    headers, body = split_message(over_imap)
    assert body == message.body, "body changed in transit"
    for name in ("From", "To", "Subject", "Date", "Message-ID", ID_HEADER):
        assert header(over_imap, name) == header(message.raw, name), name
    # RFC 3848: ESMTPSA = received over TLS with AUTH; Postfix records the TLS version too.
    assert b"with ESMTPSA" in headers and b"using TLSv1." in headers, headers.decode()
