"""Wall time of `mailstack check` against a running lab, next to testssl.sh on the same ports.

Usage: .venv/bin/python -m benchmarks.conformance_time [build/target.json]
Prints both times and the ratio. testssl.sh is Debian's package (`apt-get install testssl.sh`);
it checks TLS only, so it does less than `mailstack check`, which also checks authentication,
relay, protocol attacks and delivery.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

from benchmarks.common import save

# testssl's STARTTLS protocol names per service; implicit-TLS ports take none.
STARTTLS = {"smtp": "smtp", "submission": "smtp", "imap": "imap", "pop3": "pop3"}


def timed(command: list[str]) -> tuple[float, int]:
    started = time.monotonic()
    done = subprocess.run(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.monotonic() - started, done.returncode


def main() -> int:
    target_file = Path(sys.argv[1] if len(sys.argv) > 1 else "build/target.json")
    target = json.loads(target_file.read_text())
    mailstack = Path(sys.executable).with_name("mailstack")
    check_s, check_rc = timed([str(mailstack), "check", "--target", str(target_file)])
    print(f"mailstack check, all ports, all checks: {check_s:6.1f} s (exit {check_rc})")

    testssl = shutil.which("testssl") or shutil.which("testssl.sh")
    if not testssl:
        print("testssl.sh not installed (apt-get install testssl.sh): no baseline")
        return 1
    closed = set(target.get("closed", [])) | {n for n, t in target.get("tls", {}).items() if t == "closed"}
    total = 0.0
    for service, port in target["ports"].items():
        if service in closed:
            continue
        extra = ["-t", STARTTLS[service]] if service in STARTTLS else []
        seconds, _ = timed([testssl, "--quiet", "--color", "0", "--warnings", "off", *extra, f"127.0.0.1:{port}"])
        total += seconds
        print(f"testssl.sh {service:<12} port {port:<6}: {seconds:6.1f} s")
    print(f"testssl.sh, same ports, TLS only:        {total:6.1f} s")
    print(f"ratio testssl.sh / mailstack check:     {total / check_s:6.1f}x")
    print(f"saved {save('conformance', {'check_s': check_s, 'check_exit': check_rc, 'testssl_s': total})}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
