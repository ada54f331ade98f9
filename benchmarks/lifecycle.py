"""Lab lifecycle: `make up` from nothing (base image present), warm, and with nothing
changed; image sizes against the base image; resident memory of the idle stack and under load.

Usage: .venv/bin/python -m benchmarks.lifecycle [--cold] [--load 1000] [--make-test]

--cold first stops the lab (volumes kept), then times `python -m stack up --no-cache`: both images
built from the base image, as on a fresh machine. Saves
build/bench/lifecycle.json. --make-test also times `make test` (8-10 minutes; `make bench` asks
for it), after the other figures, so its labs do not disturb them.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import threading
import time
from pathlib import Path

from benchmarks.common import BUILD, REPO_ROOT, compose_env, docker, save

MB = 1024 * 1024


def timed_make(*targets: str) -> float:
    started = time.monotonic()
    subprocess.run(["make", *targets], cwd=REPO_ROOT, check=True, stdout=subprocess.DEVNULL)
    return time.monotonic() - started


def image_size(name: str) -> int:
    return int(docker("image", "inspect", "-f", "{{.Size}}", name))


def stack_rss_bytes(project: str) -> int:
    """Resident memory of both containers: the proportional set size (PSS) of every process,
    so libraries shared by many smtpd or imap processes count once, not once per process."""
    total = 0
    for container_id in docker("compose", "-p", project, "ps", "-q").split():
        for row in docker("top", container_id, "-o", "pid").splitlines()[1:]:
            try:
                rollup = Path(f"/proc/{row.strip()}/smaps_rollup").read_text()
            except OSError:
                continue  # ended since docker top listed it
            total += sum(int(line.split()[1]) * 1024 for line in rollup.splitlines() if line.startswith("Pss:"))
    return total


def rss_under_load(project: str, messages: int) -> int:
    """The highest RSS sampled while `mailstack load` runs against the lab."""
    peak = 0
    done = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not done.is_set():
            peak = max(peak, stack_rss_bytes(project))
            time.sleep(0.5)

    sampler = threading.Thread(target=sample)
    sampler.start()
    try:
        subprocess.run([sys.executable, "-m", "harness", "load", "--target", str(BUILD / "target.json"),
                        "-n", str(messages), "-c", "20"], cwd=REPO_ROOT, check=True, stdout=subprocess.DEVNULL)
    finally:
        done.set()
        sampler.join()
    return peak


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cold", action="store_true", help="remove the lab's images first")
    parser.add_argument("--load", type=int, default=1000, help="messages for the memory-under-load figure")
    parser.add_argument("--make-test", action="store_true",
                        help="also time `make test` (every unit and end-to-end test, its own labs; 8-10 minutes)")
    args = parser.parse_args()
    figures: dict[str, float] = {}
    if args.cold:
        subprocess.run(["make", "down"], cwd=REPO_ROOT, check=True, stdout=subprocess.DEVNULL)
        started = time.monotonic()
        subprocess.run([sys.executable, "-m", "stack", "up", "--no-cache"], cwd=REPO_ROOT, check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        figures["up_cold_s"] = time.monotonic() - started
    subprocess.run(["make", "down"], cwd=REPO_ROOT, check=True, stdout=subprocess.DEVNULL)
    figures["up_warm_s"] = timed_make("up")
    figures["up_unchanged_s"] = timed_make("up")

    env = compose_env()
    base = image_size("debian:bookworm-slim")
    for service in ("postfix", "dovecot"):
        size = image_size(env[f"MAILSTACK_{service.upper()}_IMAGE"])
        figures[f"{service}_image_mb"] = size / MB
        figures[f"{service}_above_base_mb"] = (size - base) / MB
    figures["base_image_mb"] = base / MB

    project = env["MAILSTACK_PROJECT"]
    time.sleep(10)  # idle: let start-up work settle
    figures["idle_pss_mb"] = stack_rss_bytes(project) / MB
    figures["load_peak_pss_mb"] = rss_under_load(project, args.load) / MB
    test_exit = 0
    if args.make_test:
        started = time.monotonic()
        test_exit = subprocess.run(["make", "test"], cwd=REPO_ROOT, stdout=subprocess.DEVNULL,
                                   stderr=subprocess.DEVNULL).returncode
        figures["make_test_s"] = time.monotonic() - started

    for name, value in figures.items():
        unit = "s" if name.endswith("_s") else "MB"
        print(f"{name:22} {value:8.1f} {unit}")
    print(f"saved {save('lifecycle', {'figures': figures, 'make_test_exit': test_exit})}")
    if test_exit:
        print(f"make test FAILED (exit {test_exit}): its time is not a passing run's")
    return 1 if test_exit else 0


if __name__ == "__main__":
    raise SystemExit(main())
