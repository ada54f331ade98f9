"""`python -m stack`: generate certificates, render configuration, build images, run the lab.

Exit status: 0 done, 1 build or lab failure, 2 usage or settings error, 3 no Docker engine.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from stack import images, lab, ports, queue
from stack.credentials import load_or_create_credentials
from stack.errors import LabFailed, StackError
from stack.layout import SERVICES, BuildLayout
from stack.pki import ensure_pki
from stack.render import closed_services, render_compose_env, render_contexts, render_target
from stack.settings import Settings, SettingsError, load_settings

console = Console(stderr=True, highlight=False, width=None if sys.stderr.isatty() else 120)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m stack", description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, help="settings file (default: mailstack.toml)")
    parser.add_argument("--build-dir", type=Path, default=Path("build"), help="default: build/")
    sub = parser.add_subparsers(dest="command", required=True)
    for name, text in [
        ("render", "certificates and configuration only (no Docker needed)"),
        ("build", "render, then build both images"),
        ("up", "build, start the lab, wait until healthy, print how to use it"),
    ]:
        cmd = sub.add_parser(name, help=text)
        cmd.add_argument("--force-pki", action="store_true", help="replace CA and certificates")
        if name != "render":
            cmd.add_argument("--no-cache", action="store_true", help="build the images from the base image, no layer cache")
    sub.add_parser("down", help="stop the lab; mail and queue volumes are kept")
    sub.add_parser("clean", help="stop the lab, delete its volumes and the build folder")
    sub.add_parser("queue", help="what waits in Postfix's queue, and why")
    return parser


def show_queue(settings: Settings, layout: BuildLayout) -> None:
    summary = queue.summarize(queue.parse_postqueue_json(lab.postqueue_json(layout, settings.compose_project)))
    out = Console(highlight=False, width=None if sys.stdout.isatty() else 120)
    if not summary.total:
        out.print("The queue is empty: all accepted mail has been delivered.")
        return
    out.print(", ".join(f"{count} {name}" for name, count in sorted(summary.by_queue.items())) + " in the queue")
    table = Table(title="Why mail is waiting", show_lines=True)
    table.add_column("recipients", justify="right")
    table.add_column("reason (Postfix)")
    table.add_column("what to do")
    for deferral in summary.deferrals:
        table.add_row(str(deferral.count), deferral.reason, deferral.hint.format(project=settings.compose_project))
    if summary.deferrals:
        out.print(table)
    if summary.dovecot_involved:
        errors = queue.problem_lines(lab.logs(layout, settings.compose_project, "dovecot"))
        if errors:
            out.print("Last errors in the Dovecot log:")
            for line in errors:
                out.print(f"  {line}", soft_wrap=True)


def _step(text: str) -> None:
    console.print(f"[green]✓[/] {escape(text)}")


def render_all(settings: Settings, layout: BuildLayout, force_pki: bool) -> None:
    report = ensure_pki(layout.pki.directory, settings.hostname, force=force_pki)
    for action in report.actions:
        _step(action)
    credentials = load_or_create_credentials(layout.credentials, settings.addresses, settings.password_rounds)
    render_contexts(settings, layout, credentials)
    render_compose_env(settings, layout)
    render_target(settings, layout, credentials)
    _step(f"configuration rendered into {layout.root}/context (users: {', '.join(settings.addresses)})")


def build_all(settings: Settings, layout: BuildLayout, no_cache: bool = False) -> None:
    client = images.connect()
    images.require_base_image(client, settings.base_image)
    for service in SERVICES:
        with console.status(f"building {service} image…") as status:
            image_id, changed = images.build_image(
                client, settings, layout, service, no_cache=no_cache,
                on_line=lambda line, name=service: status.update(f"{name}: {line[:100]}"),
            )
        _step(f"{service} image {'built' if changed else 'unchanged'} ({image_id[7:19]})")


def require_free_ports(settings: Settings) -> None:
    """Before anything changes: a taken host port leaves the running lab and build/ as they were."""
    wanted = settings.host_ports.model_dump()
    busy = ports.taken(wanted, ports.published_by(images.connect(), settings.compose_project))
    if busy:
        service, port = next(iter(busy.items()))
        raise LabFailed(f"{ports.taken_message(service, port)}\nNothing was changed: a running lab keeps running "
                        "as it was, and build/ keeps its settings.")


def print_summary(settings: Settings, layout: BuildLayout) -> None:
    credentials = load_or_create_credentials(layout.credentials, settings.addresses, settings.password_rounds)
    passwords = {address: c.password for address, c in credentials.items()}
    ports = settings.host_ports
    closed = closed_services(settings)
    table = Table(title="mailstack lab on 127.0.0.1", show_lines=False)
    for column in ("port", "service", "security"):
        table.add_column(column)
    rows = [
        (ports.smtp, "smtp", "relay in for " + settings.mail_domain + ": STARTTLS offered, no AUTH"),
        (ports.submissions, "submissions", "implicit TLS, AUTH required"),
        (ports.submission, "submission", "STARTTLS required before AUTH"),
        (ports.imaps, "imaps", "implicit TLS"),
        (ports.pop3s, "pop3s", "implicit TLS"),
        (ports.imap, "imap", "closed" if "imap" in closed else "STARTTLS required before LOGIN"),
        (ports.pop3, "pop3", "closed" if "pop3" in closed else "STLS required before USER/PASS"),
    ]
    for port, service, security in rows:
        table.add_row(str(port), service, security)
    out = Console(highlight=False)
    out.print(table)
    user, other = settings.addresses[0], settings.addresses[-1]
    ca = layout.pki.root_cert.resolve()
    name = settings.hostname
    out.print(f"Test account: [bold]{user}[/]  password: [bold]{passwords[user]}[/]")
    out.print(f"  (all accounts: {layout.credentials})")
    out.print(f"CA to trust:  {ca}")
    out.print("Send (implicit TLS on 465):")
    out.print(
        f"  printf 'Subject: hello\\r\\n\\r\\nhi\\r\\n' | curl -sS --ssl-reqd --cacert {ca} "
        f"--resolve {name}:{ports.submissions}:127.0.0.1 --url smtps://{name}:{ports.submissions} "
        f"--user '{user}:{passwords[user]}' --mail-from {user} --mail-rcpt {other} -T -",
        soft_wrap=True,
    )
    out.print("Read (IMAPS on 993):")
    out.print(
        f"  curl -sS --cacert {ca} --resolve {name}:{ports.imaps}:127.0.0.1 "
        f"--user '{other}:{passwords[other]}' 'imaps://{name}:{ports.imaps}/INBOX;UID=*'",
        soft_wrap=True,
    )


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    layout = BuildLayout(args.build_dir)
    try:
        settings = load_settings(args.config)
        if args.command == "down":
            lab.down(layout, settings.compose_project)
            _step(f"lab {settings.compose_project} stopped (mail and queue volumes kept)")
            return 0
        if args.command == "queue":
            show_queue(settings, layout)
            return 0
        if args.command == "clean":
            lab.down(layout, settings.compose_project, volumes=True)
            removed, kept = images.remove_images(settings)
            others = layout.remove_generated()
            where = (f"{layout.root}/ removed" if not others else
                     f"mailstack's files in {layout.root}/ removed; kept what mailstack did not write there: "
                     f"{', '.join(others)}")
            _step(f"lab {settings.compose_project} stopped, volumes deleted, images removed "
                  f"({', '.join(removed) or 'none'}), {where}")
            for image in kept:
                console.print(f"[yellow]kept image[/] {escape(image)}")
            return 0
        if args.command == "up":
            require_free_ports(settings)
        render_all(settings, layout, args.force_pki)
        if args.command in ("build", "up"):
            build_all(settings, layout, no_cache=args.no_cache)
        if args.command == "up":
            with console.status("starting the lab and waiting until both services are healthy…"):
                lab.up(layout, settings.compose_project, settings.host_ports)
            _step("lab is up and healthy")
            print_summary(settings, layout)
    except SettingsError as exc:
        console.print(f"[red]settings error:[/] {escape(str(exc))}")
        return 2
    except StackError as exc:
        console.print(f"[red]error:[/] {escape(str(exc))}")
        return exc.exit_code
    except OSError as exc:  # e.g. --build-dir names a file, or a folder that cannot be written
        where = f" ({exc.filename})" if exc.filename else ""
        console.print(f"[red]error:[/] {escape((exc.strerror or str(exc)) + where)}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
