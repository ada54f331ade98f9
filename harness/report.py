"""Views of one list of results: a console table, JSON and JUnit XML."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from collections import Counter
from pathlib import Path

from rich.console import Console
from rich.table import Table

from harness.checks import ALL_CHECKS, CheckResult, Status
from harness.target import Target

MARKS = {Status.PASS: "[green]✓[/]", Status.FAIL: "[red]✗[/]", Status.SKIP: "[yellow]–[/]", Status.ERROR: "[magenta]![/]"}


def summary(results: list[CheckResult]) -> dict[str, int]:
    counts = Counter(r.status.value for r in results)
    return {status.value: counts.get(status.value, 0) for status in Status}


def print_console(console: Console, target: Target, results: list[CheckResult], seconds: float) -> None:
    services = [s for s in target.services.values()]
    table = Table(title=f"{target.server_name} at {target.host}", header_style="bold")
    table.add_column("check", no_wrap=True, min_width=18)
    for service in services:
        table.add_column(f"{service.standard_port}\n{service.name}\n:{service.port}", justify="center")
    by_key = {(r.check, r.service): r for r in results}
    for check in ALL_CHECKS:
        cells = [MARKS[by_key[(check.name, s.name)].status] if (check.name, s.name) in by_key else "" for s in services]
        if any(cells):
            table.add_row(check.name, *cells)
    console.print(table)
    for result in results:
        if result.status in (Status.FAIL, Status.ERROR):
            console.print(f"[red]{result.status.value.upper()}[/] {result.id} (port {result.port}): {result.reason}")
            if result.dialogue:
                console.print("    " + result.dialogue.replace("\n", "\n    "), highlight=False, markup=False)
        elif result.status is Status.SKIP:
            console.print(f"[yellow]SKIP[/] {result.id}: {result.reason}")
    counts = summary(results)
    console.print(
        f"{counts['pass']} passed, {counts['fail']} failed, {counts['skip']} skipped, "
        f"{counts['error']} errors in {seconds:.1f} s"
    )


def to_json(target: Target, results: list[CheckResult], seconds: float) -> str:
    return json.dumps(
        {
            "target": {
                "host": target.host,
                "server_name": target.server_name,
                "services": {n: {"port": s.port, "tls": s.tls.value, "role": s.role.value} for n, s in target.services.items()},
            },
            "summary": summary(results),
            "seconds": round(seconds, 3),
            "results": [
                {
                    "id": r.id,
                    "check": r.check,
                    "service": r.service,
                    "port": r.port,
                    "status": r.status.value,
                    "reason": r.reason,
                    "seconds": round(r.seconds, 3),
                    "dialogue": r.dialogue,
                }
                for r in results
            ],
        },
        indent=2,
    )


def to_junit(results: list[CheckResult], seconds: float) -> str:
    counts = summary(results)
    suite = ET.Element(
        "testsuite",
        name="mailstack-check",
        tests=str(len(results)),
        failures=str(counts["fail"]),
        errors=str(counts["error"]),
        skipped=str(counts["skip"]),
        time=f"{seconds:.3f}",
    )
    for r in results:
        case = ET.SubElement(suite, "testcase", classname=r.id.rsplit(".", 1)[0], name=r.id, time=f"{r.seconds:.3f}")
        if r.status is Status.FAIL:
            ET.SubElement(case, "failure", message=r.reason).text = r.dialogue
        elif r.status is Status.ERROR:
            ET.SubElement(case, "error", message=r.reason).text = r.dialogue
        elif r.status is Status.SKIP:
            ET.SubElement(case, "skipped", message=r.reason)
        else:
            ET.SubElement(case, "system-out").text = r.reason
    return ET.tostring(suite, encoding="unicode", xml_declaration=True)


def write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
