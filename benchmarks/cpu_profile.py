"""Where the CPU goes during a measured run: per process name, per container, and the
benchmark's own client.

Why: a throughput ratio alone does not say what to remove. The split names the bottleneck
(password hashing in Dovecot's auth, LMTP delivery, Docker's port proxy, the Python client).
Process figures come from /proc, so a process that exits inside the window is missed; the
container totals come from the cgroup and count every process, exited or not.
"""

from __future__ import annotations

import os
import resource
import subprocess
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
CLIENT = "benchmark client (Python)"


def _container_names() -> dict[str, str]:
    """Full container id -> name, for labelling processes."""
    done = subprocess.run(["docker", "ps", "--no-trunc", "--format", "{{.ID}} {{.Names}}"],
                          capture_output=True, text=True)
    return dict(line.split(" ", 1) for line in done.stdout.splitlines() if " " in line)


def _container_id(pid: str) -> str | None:
    try:
        text = Path(f"/proc/{pid}/cgroup").read_text()
    except OSError:
        return None
    for line in text.splitlines():
        for part in line.split("/"):
            part = part.removeprefix("docker-").removesuffix(".scope")
            if len(part) == 64 and all(c in "0123456789abcdef" for c in part):
                return part
    return None


def _process_ticks(names: dict[str, str]) -> dict[str, tuple[str, int]]:
    """pid -> ("container: comm" or "host: comm", user+system ticks)."""
    ticks: dict[str, tuple[str, int]] = {}
    own = str(os.getpid())
    for pid in os.listdir("/proc"):
        if not pid.isdigit() or pid == own:
            continue
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            continue
        comm = stat[stat.index("(") + 1:stat.rindex(")")]
        if comm.startswith(("kworker/", "ksoftirqd/", "kdamond", "rcu_")):
            comm = "kernel threads"  # their names change with the work item; one line for all
        fields = stat[stat.rindex(")") + 2:].split()
        container = _container_id(pid)
        where = names.get(container, "other container") if container else "host"
        ticks[pid] = (f"{where}: {comm}", int(fields[11]) + int(fields[12]))
    return ticks


def cgroup_cpu_s(container_id: str) -> float | None:
    """CPU seconds of every process the container ever ran (cgroup v1 or v2), or None."""
    for path in (Path(f"/sys/fs/cgroup/cpuacct/docker/{container_id}/cpuacct.usage"),
                 Path(f"/sys/fs/cgroup/system.slice/docker-{container_id}.scope/cpu.stat")):
        if path.is_file() and path.name == "cpuacct.usage":
            return int(path.read_text()) / 1e9
        if path.is_file():
            fields = dict(line.split() for line in path.read_text().splitlines())
            return int(fields["usage_usec"]) / 1e6
    return None


def _self_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


@dataclass
class CpuProfile:
    """CPU seconds spent between start() and stop(), by process and by container."""

    by_process: Counter[str] = field(default_factory=Counter)
    by_container: dict[str, float] = field(default_factory=dict)
    _names: dict[str, str] = field(default_factory=dict)
    _before: dict[str, tuple[str, int]] = field(default_factory=dict)
    _before_containers: dict[str, float] = field(default_factory=dict)
    _before_self: float = 0.0

    def start(self) -> CpuProfile:
        self._names = _container_names()
        self._before = _process_ticks(self._names)
        self._before_containers = {cid: s for cid in self._names if (s := cgroup_cpu_s(cid)) is not None}
        self._before_self = _self_cpu_s()
        return self

    def stop(self) -> CpuProfile:
        self.by_process[CLIENT] += _self_cpu_s() - self._before_self
        for pid, (label, ticks) in _process_ticks(self._names).items():
            earlier = self._before.get(pid)
            spent = ticks - earlier[1] if earlier and earlier[0] == label else ticks
            if spent > 0:
                self.by_process[label] += spent / CLOCK_TICKS
        for cid, before in self._before_containers.items():
            after = cgroup_cpu_s(cid)
            if after is not None:
                self.by_container[self._names[cid]] = after - before
        return self

    def per_unit_ms(self, units: int, top: int = 12) -> dict[str, dict[str, float]]:
        """The biggest consumers in ms of CPU per message (or session), for RESULTS.md."""
        return {
            "processes": {label: 1000 * s / units for label, s in self.by_process.most_common(top)},
            "containers": {name: 1000 * s / units for name, s in sorted(self.by_container.items())},
        }
