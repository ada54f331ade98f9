"""Independent clients (OpenSSL's s_client and curl, not this harness's code) agree:
every TLS port verifies against the CA for the host name, and mail goes in and out."""

from __future__ import annotations

import asyncio
import shutil
import subprocess

import pytest

from harness.imap import open_imaps
from harness.message import body_sha256, make_message
from harness.target import Target

pytestmark = pytest.mark.e2e

# service -> s_client arguments (implicit TLS has none; STARTTLS names the protocol)
TLS_PORTS = {
    "submissions": [],
    "imaps": [],
    "pop3s": [],
    "smtp": ["-starttls", "smtp"],
    "submission": ["-starttls", "smtp"],
    "imap": ["-starttls", "imap"],
    "pop3": ["-starttls", "pop3"],
}


def tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"`{name}` is needed for this test: apt-get install {name}")
    return path


async def run(*command: str, stdin: bytes = b"") -> subprocess.CompletedProcess[bytes]:
    process = await asyncio.create_subprocess_exec(
        *command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    out, err = await asyncio.wait_for(process.communicate(stdin), 20)
    return subprocess.CompletedProcess(command, process.returncode or 0, out, err)


@pytest.mark.parametrize("service", sorted(TLS_PORTS))
async def test_openssl_verifies_chain_and_name(target: Target, service: str) -> None:
    if not target.is_open(service):
        refused = await run(tool("openssl"), "s_client", "-connect", f"{target.host}:{target.port(service)}",
                            *TLS_PORTS[service], stdin=b"")
        assert refused.returncode != 0, f"{service} is closed by policy but completed a handshake"
        return
    done = await run(
        tool("openssl"), "s_client", "-connect", f"{target.host}:{target.port(service)}",
        "-servername", target.server_name, "-verify_hostname", target.server_name,
        "-CAfile", str(target.ca_file), "-verify_return_error", "-brief", *TLS_PORTS[service],
        stdin=b"",
    )
    report = done.stderr.decode(errors="replace")
    assert "Verification: OK" in report, report
    assert "Protocol version: TLSv1.3" in report, report
    assert f"Verified peername: {target.server_name}" in report, report


async def test_curl_sends_over_465_and_reads_over_993(target: Target) -> None:
    sender, recipient = target.users[0], target.users[1]
    message = make_message(sender.address, recipient.address, via="curl")
    name = target.server_name
    common = ["-sS", "--cacert", str(target.ca_file), "--max-time", "20"]
    sent = await run(
        tool("curl"), *common, "--ssl-reqd",
        "--resolve", f"{name}:{target.port('submissions')}:{target.host}",
        "--url", f"smtps://{name}:{target.port('submissions')}",
        "--user", f"{sender.address}:{sender.password}",
        "--mail-from", sender.address, "--mail-rcpt", recipient.address, "-T", "-",
        stdin=message.raw,
    )
    assert sent.returncode == 0, sent.stderr.decode()

    imap = await open_imaps(target, recipient)
    try:
        await imap.wait_for(message.token, 20)
        (number,) = await imap.find(message.token)
    finally:
        await imap.logout()
    read = await run(
        tool("curl"), *common,
        "--resolve", f"{name}:{target.port('imaps')}:{target.host}",
        "--user", f"{recipient.address}:{recipient.password}",
        f"imaps://{name}:{target.port('imaps')}/INBOX;MAILINDEX={number}",
    )
    assert read.returncode == 0, read.stderr.decode()
    assert body_sha256(read.stdout) == message.body_sha256
