"""Start and stop the real stack a benchmark runs against.

A fresh PostgreSQL database, one Redis database (flushed), gunicorn with the
project's own config, and Celery workers on demand. Every process is started
in its own session and stopped by its process-group id, so nothing outlives
the run, also on an error or Ctrl-C.
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

import psycopg2
import redis
from psycopg2 import sql

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
PG_ADMIN_DSN = os.environ.get("BENCH_PG_ADMIN_DSN", "host=127.0.0.1 port=5432 user=postgres dbname=postgres")
PG_URL_BASE = os.environ.get("BENCH_PG_URL_BASE", "postgres://postgres@127.0.0.1:5432")
REDIS_URL_BASE = os.environ.get("BENCH_REDIS_URL_BASE", "redis://127.0.0.1:6379")
STOP_TIMEOUT_SECONDS = 20


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def stop_process(proc: subprocess.Popen, timeout: float = STOP_TIMEOUT_SECONDS) -> None:
    """Stop a process started with start_new_session: TERM its group, then KILL it."""
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        pass
    try:
        # The group also holds children (gunicorn or Celery pool processes).
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait()


def children_of(pid: int) -> list[int]:
    """Return the direct children of a process, from /proc."""
    found: list[int] = []
    task_dir = Path(f"/proc/{pid}/task")
    if not task_dir.exists():
        return found
    for task in task_dir.iterdir():
        try:
            found += [int(c) for c in (task / "children").read_text().split()]
        except OSError:
            continue
    return sorted(set(found))


def memory_kib(pid: int) -> dict[str, int]:
    """Return VmHWM (peak RSS) and VmRSS of a process in KiB."""
    values = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, rest = line.partition(":")
        if key in ("VmHWM", "VmRSS"):
            values[key] = int(rest.split()[0])
    return values


class Stack:
    """The processes and stores of one benchmark run; use as a context manager."""

    def __init__(self, out_dir: Path, db_name: str, redis_db: int, keep_db: bool = False):
        self.out_dir = out_dir
        self.db_name = db_name
        self.redis_db = redis_db
        self.keep_db = keep_db
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.media_root = tempfile.mkdtemp(prefix="bench-media-")
        self.database_url = f"{PG_URL_BASE}/{db_name}"
        self.redis_url = f"{REDIS_URL_BASE}/{redis_db}"
        self.gunicorn: subprocess.Popen | None = None
        self.workers: list[subprocess.Popen] = []
        self._logs: list = []
        self.env = self._environment()

    def _environment(self) -> dict[str, str]:
        env = dict(os.environ)
        # The Makefile exports its embedded (SQLite, debug) defaults; the bench replaces them.
        env.update(
            {
                "DATABASE_URL": self.database_url,
                "REDIS_URL": self.redis_url,
                "DJANGO_DEBUG": "0",
                "DJANGO_SECRET_KEY": secrets.token_urlsafe(50),
                "DJANGO_SECURE_SSL_REDIRECT": "0",
                "DJANGO_SETTINGS_MODULE": "config.settings",
                "MEDIA_ROOT": self.media_root,
                "GUNICORN_BIND": f"127.0.0.1:{self.port}",
                "BENCH_VIEWS": "1",
                "PYTHONUNBUFFERED": "1",
            }
        )
        return env

    # --- stores -------------------------------------------------------------

    def create_database(self) -> None:
        """Drop and create the bench database, then apply the migrations."""
        self._drop_database()
        self._admin(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(self.db_name)))
        subprocess.run(
            [sys.executable, "manage.py", "migrate", "--noinput", "-v", "0"], cwd=ROOT, env=self.env, check=True
        )

    def _drop_database(self) -> None:
        self._admin(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(self.db_name)))

    @staticmethod
    def _admin(statement: sql.Composable) -> None:
        # CREATE/DROP DATABASE cannot run in a transaction block.
        conn = psycopg2.connect(PG_ADMIN_DSN)
        try:
            conn.autocommit = True
            with conn.cursor() as cur:
                cur.execute(statement)
        finally:
            conn.close()

    def flush_redis(self) -> None:
        """Empty the bench's Redis database (queued task messages, cache, throttles)."""
        client = redis.Redis.from_url(self.redis_url)
        client.flushdb()
        client.close()

    # --- processes ----------------------------------------------------------

    def _spawn(self, args: list[str], log_name: str, extra_env: dict | None = None) -> subprocess.Popen:
        log = open(self.out_dir / log_name, "ab")
        self._logs.append(log)
        env = {**self.env, **(extra_env or {})}
        return subprocess.Popen(
            args,
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )

    def start_gunicorn(self) -> None:
        """Start gunicorn with config/gunicorn.conf.py and wait until /api/health answers."""
        self.gunicorn = self._spawn(
            [str(BIN / "gunicorn"), "-c", "config/gunicorn.conf.py", "config.wsgi"], "gunicorn.log"
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.gunicorn.poll() is not None:
                raise RuntimeError(f"gunicorn exited with {self.gunicorn.returncode}; see {self.out_dir}/gunicorn.log")
            try:
                with urllib.request.urlopen(f"{self.base_url}/api/health", timeout=2) as response:
                    if response.status == 200:
                        return
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            time.sleep(0.2)
        raise RuntimeError("gunicorn did not answer /api/health within 60 s")

    def gunicorn_workers(self) -> int:
        return len(children_of(self.gunicorn.pid)) if self.gunicorn else 0

    def start_worker(self, concurrency: int, extra_env: dict | None = None, tag: str = "") -> subprocess.Popen:
        """Start a Celery worker with `concurrency` prefork pool processes; wait until it is ready."""
        log_name = f"celery{tag}.log"
        proc = self._spawn(
            [
                str(BIN / "celery"),
                "-A",
                "config",
                "worker",
                "--loglevel=INFO",
                "--pool=prefork",
                f"--concurrency={concurrency}",
                "--without-gossip",
                "--without-mingle",
                "-n",
                f"bench{tag}-{os.getpid()}@%h",
            ],
            log_name,
            extra_env,
        )
        self.workers.append(proc)
        log_path = self.out_dir / log_name
        start_size = log_path.stat().st_size if log_path.exists() else 0
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"the Celery worker exited with {proc.returncode}; see {log_path}")
            with open(log_path, "rb") as log:
                log.seek(start_size)
                ready = b" ready." in log.read()
            if ready and len(children_of(proc.pid)) >= concurrency:
                return proc
            time.sleep(0.2)
        raise RuntimeError("the Celery worker was not ready within 120 s")

    def stop_worker(self, proc: subprocess.Popen) -> None:
        stop_process(proc)
        if proc in self.workers:
            self.workers.remove(proc)

    def meter(self):
        """Return a CpuMeter that counts this stack's processes as the benchmark's own."""
        from noise import CpuMeter

        def pgids() -> list[int]:
            own = [os.getpgrp()]
            if self.gunicorn is not None:
                own.append(self.gunicorn.pid)
            return own + [w.pid for w in self.workers]

        return CpuMeter(pgids, self.db_name)

    def close(self) -> None:
        """Stop everything this stack started and remove what it created."""
        # A second Ctrl-C must not cut the clean-up short.
        previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
        try:
            self._close()
        finally:
            signal.signal(signal.SIGINT, previous)

    def _close(self) -> None:
        for proc in list(self.workers):
            self.stop_worker(proc)
        if self.gunicorn is not None:
            stop_process(self.gunicorn)
            self.gunicorn = None
        for log in self._logs:
            log.close()
        try:
            self.flush_redis()
        except redis.RedisError as exc:
            print(f"bench: could not flush Redis db {self.redis_db}: {exc}", file=sys.stderr)
        if not self.keep_db:
            try:
                self._drop_database()
            except psycopg2.Error as exc:
                print(f"bench: could not drop database {self.db_name}: {exc}", file=sys.stderr)
        shutil.rmtree(self.media_root, ignore_errors=True)

    def __enter__(self) -> Stack:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()
