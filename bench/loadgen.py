"""Drive HTTP load with wrk (a separate C process) and read its figures back."""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
from dataclasses import asdict, dataclass
from pathlib import Path

WRK_DIR = Path(__file__).resolve().parent / "wrk"
# Generous: at 64 connections on two cores a slow POST queues for seconds,
# and a timed-out request would vanish from the latency figures.
WRK_TIMEOUT = "30s"


@dataclass
class LoadResult:
    """One wrk run: throughput and latency percentiles (milliseconds)."""

    connections: int
    threads: int
    seconds: float
    requests: int
    rps: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    mean_ms: float
    max_ms: float
    errors: dict
    command: str
    noise: dict | None = None

    def as_dict(self) -> dict:
        return asdict(self)


def ensure_wrk() -> str:
    """Return the wrk binary, installing the Debian package first if it is missing (needs root)."""
    found = shutil.which("wrk")
    if found:
        return found
    print("bench: wrk is missing; installing the Debian package (apt-get install -y wrk)", flush=True)
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "update", "-qq"], check=True, env=env)
    subprocess.run(["apt-get", "install", "-y", "-qq", "wrk"], check=True, env=env)
    found = shutil.which("wrk")
    if not found:
        raise RuntimeError("wrk could not be installed; install it with: apt-get install -y wrk")
    return found


def run_wrk(
    url: str,
    script: str,
    connections: int,
    seconds: float,
    env: dict[str, str],
    shown_env: dict[str, str] | None = None,
    meter=None,
) -> LoadResult:
    """Run wrk against url for `seconds` with a Lua script from bench/wrk/."""
    threads = max(1, min(2, connections))
    args = [
        ensure_wrk(),
        f"-t{threads}",
        f"-c{connections}",
        f"-d{seconds:g}s",
        f"--timeout={WRK_TIMEOUT}",
        "-s",
        str(WRK_DIR / script),
        url,
    ]
    run_env = {**os.environ, **env, "BENCH_WRK_DIR": str(WRK_DIR)}
    if meter is not None:
        meter.start()
    proc = subprocess.Popen(args, env=run_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        stdout, stderr = proc.communicate(timeout=seconds + 120)
    except BaseException:
        proc.kill()
        proc.wait()
        raise
    noise = meter.stop() if meter is not None else None
    if proc.returncode != 0:
        raise RuntimeError(f"wrk failed ({proc.returncode}): {stderr.strip() or stdout.strip()}")
    line = next((ln for ln in stdout.splitlines() if ln.startswith("BENCH_JSON ")), None)
    if line is None:
        raise RuntimeError(f"wrk printed no figures:\n{stdout}\n{stderr}")
    data = json.loads(line.removeprefix("BENCH_JSON "))
    duration = data["duration_us"] / 1e6
    shown = " ".join(f"{k}={shlex.quote(v)}" for k, v in (shown_env or {}).items())
    command = " ".join(
        [shown, "BENCH_WRK_DIR=bench/wrk", "wrk", *args[1:-3], "-s", f"bench/wrk/{script}", shlex.quote(url)]
    ).strip()
    return LoadResult(
        connections=connections,
        threads=threads,
        seconds=round(duration, 2),
        requests=data["requests"],
        rps=round(data["requests"] / duration, 1) if duration else 0.0,
        p50_ms=data["p50_us"] / 1000,
        p90_ms=data["p90_us"] / 1000,
        p99_ms=data["p99_us"] / 1000,
        mean_ms=round(data["mean_us"] / 1000, 3),
        max_ms=data["max_us"] / 1000,
        errors=data["errors"],
        command=command,
        noise=noise,
    )
