"""`make down`, a rebuild and `make up` keep every mailbox and the queue (named volumes), a
Maildir left by an earlier image is converted to sdbox without a message or a UID lost, and a
`make up` that cannot publish its ports leaves the running lab and build/ as they were.

This drives `python -m stack` (what the Makefile runs) with a project, image names and host
ports of its own, so the user's lab and the other tests' labs are left alone.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.accounting import Fate, Sent, account
from harness.conftest import HARNESS_BUILD
from harness.lab import LabUnavailable, free_port, run_stack, user_image_prefix
from harness.census import census, expected_by_recipient, mailbox_status, uids_above
from harness.imap import open_imaps
from harness.message import TestMessage, body_sha256, make_message
from harness.readiness import wait_until_ready
from harness.smtp import relay_in, submit
from harness.target import SERVICES, Target, load_target

pytestmark = [pytest.mark.e2e, pytest.mark.own_lab]

DELIVERED, QUEUED = 12, 6


class StackCli:
    """`python -m stack` for one build dir and one set of settings overrides."""

    def __init__(self, build_dir: Path, env: dict[str, str]) -> None:
        self.build_dir, self.env = build_dir, env
        self.project = env["MAILSTACK_COMPOSE_PROJECT"]

    def __call__(self, *args: str, **extra_env: str) -> str:
        return run_stack(self.build_dir, *args, env={**self.env, **extra_env})

    def compose(self, *args: str) -> str:
        done = subprocess.run(["docker", "compose", "-p", self.project, *args], capture_output=True, text=True)
        assert done.returncode == 0, f"docker compose {' '.join(args)}: {done.stderr}"
        return done.stdout

    def image(self, service: str) -> str:
        return f"{self.env['MAILSTACK_IMAGE_PREFIX']}/{service}:latest"

    def image_id(self, service: str) -> str:
        done = subprocess.run(["docker", "image", "inspect", "-f", "{{.Id}}", self.image(service)],
                              capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
        return done.stdout.strip()

    def target(self) -> Target:
        return load_target(self.build_dir / "target.json")


@pytest.fixture
def stack_cli() -> Iterator[StackCli]:
    prefix = user_image_prefix()
    env = {
        "MAILSTACK_COMPOSE_PROJECT": f"mailstack-persist-{os.getpid()}",
        "MAILSTACK_IMAGE_PREFIX": f"{prefix}-persist",
        **{f"MAILSTACK_HOST_PORTS__{service.upper()}": str(free_port()) for service in SERVICES},
    }
    cli = StackCli(HARNESS_BUILD / "persist", env)
    try:
        yield cli
    finally:
        cli("clean")  # containers, volumes and this test's images


def sent_record(message: TestMessage, service: str) -> Sent:
    return Sent(message.token, message.recipient, service, body_sha256(message.raw), time.monotonic())


async def test_down_rebuild_up_keeps_mailboxes_and_queue(stack_cli: StackCli) -> None:
    stack_cli("up")
    target = stack_cli.target()
    await wait_until_ready(target)
    sender, recipient = target.users[0], target.users[1]

    delivered = [make_message(sender.address, recipient.address, via=f"before-down-{n}") for n in range(DELIVERED)]
    for n, message in enumerate(delivered):
        await submit(target, ("submissions", "submission")[n % 2], sender, message)
    found = await census(target, expected_by_recipient(delivered), deadline_s=30)
    assert len(found.imap) == DELIVERED

    # Mail still in the queue when the lab goes down: accepted on 25 while Dovecot is stopped.
    stack_cli.compose("stop", "dovecot")
    queued = [make_message("someone@sender.example", recipient.address, via=f"queued-{n}") for n in range(QUEUED)]
    for message in queued:
        await relay_in(target, message)
    in_queue = [json.loads(line) for line in stack_cli.compose("exec", "-T", "postfix", "postqueue", "-j").splitlines()]
    assert len(in_queue) == QUEUED, in_queue

    images_before = {service: stack_cli.image_id(service) for service in ("postfix", "dovecot")}
    stack_cli("down")
    # A changed setting and new certificates: both images are rebuilt, the containers recreated.
    stack_cli("up", "--force-pki", MAILSTACK_MESSAGE_SIZE_LIMIT=str(12 * 1024 * 1024))
    for service, image in images_before.items():
        assert stack_cli.image_id(service) != image, f"{service} image was not rebuilt"

    target = stack_cli.target()  # new CA
    await wait_until_ready(target)
    everything = delivered + queued
    found = await census(target, expected_by_recipient(everything), deadline_s=60)
    sent = [sent_record(m, "submissions") for m in delivered] + [sent_record(m, "smtp") for m in queued]
    result = account(sent, found.imap, found.pop3)
    assert result.count(Fate.DELIVERED) == len(everything), {f.value: result.count(f) for f in Fate}


def maildir_run(cli: StackCli, script: str, stdin: bytes = b"") -> str:
    """A shell script as root in a one-off container of the lab's Dovecot image, on its mail
    volume (Dovecot itself stopped): how an earlier image's Maildir is put in place."""
    done = subprocess.run(["docker", "run", "--rm", "-i", "-v", f"{cli.project}_mail:/var/mail", "--entrypoint", "sh",
                           cli.image("dovecot"), "-c", script], input=stdin, capture_output=True)
    assert done.returncode == 0, done.stderr.decode()
    return done.stdout.decode()


def mail_home(address: str) -> tuple[str, str]:
    """The user's home in the mail volume, and the prefix that runs a command there as vmail."""
    local, domain = address.split("@")
    home = f"/var/mail/{domain}/{local}"
    return home, f"setpriv --reuid vmail --regid vmail --clear-groups env HOME={home} USER={address}"


async def test_maildir_of_an_earlier_image_is_converted_once(stack_cli: StackCli) -> None:
    stack_cli("up")
    target = stack_cli.target()
    await wait_until_ready(target)
    recipient = target.users[1]
    home, as_vmail = mail_home(recipient.address)
    maildir = "-o mail_location=maildir:~/Maildir"

    stack_cli.compose("stop", "dovecot")
    maildir_run(stack_cli, f"install -d -o vmail -g vmail {home} && rm -rf {home}/sdbox")
    kept = [make_message("someone@sender.example", recipient.address, via=f"maildir-{n}") for n in range(3)]
    for message in kept:  # saved as an image before sdbox would have
        maildir_run(stack_cli, f"{as_vmail} doveadm {maildir} save", stdin=message.raw)
    before = maildir_run(stack_cli, f'{as_vmail} doveadm {maildir} mailbox status "uidvalidity uidnext" INBOX')
    # What a conversion stopped half-way leaves: it must be made again, not used.
    maildir_run(stack_cli, f"{as_vmail} sh -c 'mkdir -p {home}/sdbox.partial && echo half > {home}/sdbox.partial/x'")
    stack_cli.compose("start", "dovecot")
    await wait_until_ready(target)

    found = await census(target, expected_by_recipient(kept), deadline_s=30)
    result = account([sent_record(m, "smtp") for m in kept], found.imap, found.pop3)
    assert result.count(Fate.DELIVERED) == len(kept), {f.value: result.count(f) for f in Fate}
    session = await open_imaps(target, recipient)
    try:
        status = await mailbox_status(session)
        assert f"uidvalidity={status['UIDVALIDITY']}" in before and f"uidnext={status['UIDNEXT']}" in before, (
            f"UIDs renumbered: Maildir had {before.strip()}, sdbox has {status}")
        assert await uids_above(session, 0) == [1, 2, 3]
    finally:
        await session.logout()
    listing = stack_cli.compose("exec", "-T", "dovecot", "ls", home).split()
    assert "Maildir.converted" in listing and "Maildir" not in listing and "sdbox.partial" not in listing, listing
    stack_cli.compose("restart", "dovecot")  # once: a restart converts nothing
    await wait_until_ready(target)
    ours = [line for line in stack_cli.compose("logs", "dovecot").splitlines() if "mailstack:" in line]
    assert any(f"mailstack: {recipient.address} converted (INBOX messages=3)" in line for line in ours), ours
    assert sum("converting" in line for line in ours) == 1, ours


async def test_a_maildir_beside_a_converted_sdbox_stops_dovecot_until_resolved(stack_cli: StackCli) -> None:
    """An image from before sdbox run again after the conversion writes a new Maildir. Which
    mail wins is the admin's call: Dovecot does not start, and says what to do."""
    stack_cli("up")
    target = stack_cli.target()
    await wait_until_ready(target)
    recipient = target.users[1]
    in_sdbox = make_message(target.users[0].address, recipient.address, via="in-sdbox")
    await submit(target, "submissions", target.users[0], in_sdbox)
    home, as_vmail = mail_home(recipient.address)
    await census(target, expected_by_recipient([in_sdbox]), deadline_s=30)

    stack_cli.compose("stop", "dovecot")
    in_maildir = make_message("someone@sender.example", recipient.address, via="in-maildir")
    maildir_run(stack_cli, f"{as_vmail} doveadm -o mail_location=maildir:~/Maildir save", stdin=in_maildir.raw)
    stack_cli.compose("start", "dovecot")
    refusal = f"mailstack: {recipient.address} has mail in both {home}/Maildir and {home}/sdbox"
    give_up = time.monotonic() + 30
    while refusal not in (logs := stack_cli.compose("logs", "dovecot")) and time.monotonic() < give_up:
        await asyncio.sleep(0.5)
    assert refusal in logs and "Dovecot not started" in logs, logs[-2000:]

    stack_cli.compose("stop", "dovecot")
    maildir_run(stack_cli, f"mv {home}/Maildir {home}/Maildir.aside")  # the admin's choice
    stack_cli.compose("start", "dovecot")
    await wait_until_ready(target)
    found = await census(target, expected_by_recipient([in_sdbox]), deadline_s=30)
    result = account([sent_record(in_sdbox, "submissions")], found.imap, found.pop3)
    assert result.count(Fate.DELIVERED) == 1, {f.value: result.count(f) for f in Fate}
    saved = maildir_run(stack_cli, f"grep -rl {in_maildir.token} {home}/Maildir.aside")
    assert saved.strip(), "the Maildir's message is gone"


async def test_up_on_a_taken_port_keeps_the_running_lab_and_its_build(stack_cli: StackCli) -> None:
    stack_cli("up")
    target = stack_cli.target()
    before = (stack_cli.build_dir / "target.json").read_text()
    with socket.socket() as holder:  # another mail server, say
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        with pytest.raises(LabUnavailable) as failed:
            stack_cli("up", MAILSTACK_HOST_PORTS__SMTP=str(port))
    message = " ".join(str(failed.value).split())
    assert f"host port {port} (smtp) is already taken" in message and "Nothing was changed" in message, message
    assert (stack_cli.build_dir / "target.json").read_text() == before
    await wait_until_ready(target, 10)  # on its own ports still
    assert sorted(stack_cli.compose("ps", "--status", "running", "--services").split()) == ["dovecot", "postfix"]
