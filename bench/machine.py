"""Describe the machine and the software a benchmark ran on."""

from __future__ import annotations

import os
import platform
import subprocess
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import redis
from django.db import connection

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = (
    "Django",
    "djangorestframework",
    "django-rest-knox",
    "gunicorn",
    "celery",
    "faster-whisper",
    "ctranslate2",
    "psycopg2-binary",
)


def _cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def _ram_gib() -> float:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            return round(int(line.split()[1]) / 1024 / 1024, 1)
    return 0.0


def _git(*args: str) -> str:
    try:
        return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return ""


def _version(package: str) -> str:
    try:
        return version(package)
    except PackageNotFoundError:
        return "-"


def _wrk_version() -> str:
    out = subprocess.run(["wrk", "-v"], capture_output=True, text=True)
    return (out.stdout or out.stderr).splitlines()[0].split(" [")[0] if (out.stdout or out.stderr) else "-"


def describe(stack) -> dict:
    """Return CPU, memory, OS, service versions, package versions and the commit."""
    with connection.cursor() as cur:
        cur.execute("SHOW server_version")
        pg_version = cur.fetchone()[0]
        cur.execute("SHOW shared_buffers")
        shared_buffers = cur.fetchone()[0]
    client = redis.Redis.from_url(stack.redis_url)
    redis_version = client.info("server")["redis_version"]
    client.close()
    return {
        "cpu": _cpu_model(),
        "cores": os.cpu_count(),
        "ram_gib": _ram_gib(),
        "kernel": platform.release(),
        "os": platform.freedesktop_os_release().get("PRETTY_NAME", platform.system()),
        "python": platform.python_version(),
        "postgres": pg_version,
        "postgres_shared_buffers": shared_buffers,
        "redis": redis_version,
        "wrk": _wrk_version(),
        "gunicorn_workers": stack.gunicorn_workers(),
        "packages": {name: _version(name) for name in PACKAGES},
        "commit": _git("rev-parse", "--short", "HEAD"),
        "dirty": bool(_git("status", "--porcelain", "--untracked-files=no")),
    }
