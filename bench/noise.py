"""How much CPU processes outside the benchmark used while it measured.

The machine may be shared (other test suites, editors). Every measurement
records the CPU the whole machine spent (/proc/stat) minus the CPU of the
processes the benchmark runs: this process, the process groups it started
(gunicorn, Celery, wrk) and the PostgreSQL backends serving its database.
"""

from __future__ import annotations

import os
from pathlib import Path

TICKS = os.sysconf("SC_CLK_TCK")
CORES = os.cpu_count() or 1


def _machine_ticks() -> tuple[int, int]:
    """Return (process-attributable busy ticks, stolen ticks) of the whole machine."""
    fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    user, nice, system, _idle, _iowait, _irq, _softirq, steal = (int(v) for v in fields[:8])
    # Interrupt time is left out: the loopback traffic the benchmark makes is part of it.
    return user + nice + system, steal


def _stat(pid: int) -> list[str] | None:
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name may hold spaces; fields after it are fixed.
    return raw[raw.rindex(")") + 2 :].split()


def _ours(pgids: set[int], db_name: str) -> dict[int, int]:
    """Return CPU ticks (own + reaped children) of every process that belongs to the benchmark."""
    ticks: dict[int, int] = {}
    helpers: dict[int, tuple[int, int]] = {}  # parallel query worker pid -> (leader pid, ticks)
    me = os.getpid()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        pid = int(entry.name)
        fields = _stat(pid)
        if fields is None:
            continue
        # fields[2] is the process group; [11..14] utime, stime, cutime, cstime.
        used = sum(int(v) for v in fields[11:15])
        role = _postgres_role(pid, db_name)
        if pid == me or int(fields[2]) in pgids or role == "backend":
            ticks[pid] = used
        elif isinstance(role, int):
            helpers[pid] = (role, used)
    for pid, (leader, used) in helpers.items():
        if leader in ticks:
            ticks[pid] = used
    return ticks


def _postgres_role(pid: int, db_name: str) -> str | int | None:
    """Return "backend" for a PostgreSQL process serving db_name, a leader pid for a parallel worker."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return None
    if not cmdline.startswith("postgres: "):
        return None
    # "postgres: 15/main: postgres bench 127.0.0.1(40000) idle", "... autovacuum worker bench",
    # "... parallel worker for PID 1234" (a helper of a backend running a parallel plan).
    if f" {db_name} " in cmdline + " ":
        return "backend"
    marker = "parallel worker for PID "
    if marker in cmdline:
        leader = cmdline.split(marker, 1)[1].split()[0]
        return int(leader) if leader.isdigit() else None
    return None


class CpuMeter:
    """Measure the CPU used outside the benchmark between start() and stop()."""

    def __init__(self, pgids_source, db_name: str):
        self._pgids_source = pgids_source
        self._db_name = db_name

    def start(self) -> None:
        self._busy0, self._steal0 = _machine_ticks()
        self._ours0 = _ours(set(self._pgids_source()), self._db_name)
        self._wall0 = os.times().elapsed

    def stop(self) -> dict:
        busy1, steal1 = _machine_ticks()
        busy, steal = busy1 - self._busy0, steal1 - self._steal0
        ours1 = _ours(set(self._pgids_source()), self._db_name)
        wall = os.times().elapsed - self._wall0
        ours = sum(t - self._ours0.get(pid, 0) for pid, t in ours1.items())
        foreign = max(0, busy - ours)
        capacity = wall * TICKS * CORES
        return {
            "machine_busy_pct": round(100 * busy / capacity, 1) if capacity else 0.0,
            "foreign_pct": round(100 * foreign / capacity, 1) if capacity else 0.0,
            "steal_pct": round(100 * steal / capacity, 1) if capacity else 0.0,
        }
