"""`up` checks host ports before it changes anything: what counts as taken, and what it says."""

from __future__ import annotations

import re
import socket
from collections.abc import Iterator

import pytest

from stack import ports
from stack.settings import HostPorts


@pytest.fixture
def listening() -> Iterator[int]:
    """A port another process holds, as a mail server or a second lab would."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock.getsockname()[1]


def test_a_port_another_process_listens_on_is_taken(listening: int) -> None:
    free = ports.free_port()
    assert ports.taken({"smtp": listening, "imaps": free}, own=set()) == {"smtp": listening}


def test_the_labs_own_published_ports_are_not_taken(listening: int) -> None:
    assert ports.taken({"smtp": listening}, own={listening}) == {}


def test_the_message_names_the_service_and_a_port_free_now(listening: int) -> None:
    message = ports.taken_message("submissions", listening)
    assert f"host port {listening} (submissions) is already taken" in message
    suggested = int(re.search(r"MAILSTACK_HOST_PORTS__SUBMISSIONS=(\d+) make up", message).group(1))  # type: ignore[union-attr]
    assert suggested != listening and ports.taken({"x": suggested}, own=set()) == {}


def test_a_port_no_service_uses_is_named_without_one() -> None:
    assert ports.service_of(HostPorts(smtp=2525), 2525) == "smtp"
    assert ports.service_of(HostPorts(), 2525) is None
    assert "MAILSTACK_HOST_PORTS__<SERVICE>=" in ports.taken_message(None, 2525)
