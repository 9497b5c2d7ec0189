"""Real processes for fault drills: a cuttable TCP proxy, gunicorn, a private Redis.

Everything listens on loopback and is stopped by its context manager.
"""

import os
import selectors
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until(condition: Callable[[], bool], timeout: float, interval: float = 0.05, what: str = "condition"):
    """Poll until condition() is truthy; raise AssertionError after the deadline."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


class TcpProxy:
    """Forward a loopback port to a target; `cut()` drops every connection and refuses new ones."""

    def __init__(self, target_port: int, target_host: str = "127.0.0.1"):
        self.target = (target_host, target_port)
        self.port = free_port()
        self._listener: socket.socket | None = None
        self._conns: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._blackhole = False

    def start(self) -> "TcpProxy":
        self._stop.clear()
        self._listener = socket.socket()
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind(("127.0.0.1", self.port))
        self._listener.listen(64)
        threading.Thread(target=self._accept, daemon=True).start()
        return self

    def _accept(self) -> None:
        listener = self._listener
        while not self._stop.is_set():
            try:
                client, _ = listener.accept()
            except OSError:
                return
            if self._blackhole:
                # Accept and say nothing, like a host whose packets vanish.
                with self._lock:
                    self._conns.add(client)
                continue
            try:
                upstream = socket.create_connection(self.target, timeout=2)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._conns.update((client, upstream))
            threading.Thread(target=self._pipe, args=(client, upstream), daemon=True).start()

    def _pipe(self, a: socket.socket, b: socket.socket) -> None:
        sel = selectors.DefaultSelector()
        sel.register(a, selectors.EVENT_READ, b)
        sel.register(b, selectors.EVENT_READ, a)
        try:
            while not self._stop.is_set():
                for key, _ in sel.select(timeout=0.2):
                    data = key.fileobj.recv(65536)
                    if not data:
                        return
                    key.data.sendall(data)
        except OSError:
            return
        finally:
            sel.close()
            for sock in (a, b):
                self._close(sock)

    def _close(self, sock: socket.socket) -> None:
        with self._lock:
            self._conns.discard(sock)
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        sock.close()

    def cut(self) -> None:
        """Refuse new connections and reset the open ones, as a dead server would."""
        self._stop.set()
        if self._listener is not None:
            try:
                # Wakes the thread blocked in accept(); close() alone would not.
                self._listener.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            self._listener.close()
            self._listener = None
        with self._lock:
            conns = list(self._conns)
        for sock in conns:
            self._close(sock)

    def blackhole(self) -> None:
        """Drop the open connections; accept new ones but never answer them."""
        self.cut()
        self._blackhole = True
        self.start()

    def restore(self) -> None:
        """Forward connections again."""
        self.cut()
        self._blackhole = False
        self.start()


@contextmanager
def tcp_proxy(target_port: int) -> Iterator[TcpProxy]:
    proxy = TcpProxy(target_port).start()
    try:
        yield proxy
    finally:
        proxy.cut()


def _stop_process_group(proc: subprocess.Popen, grace: float = 10) -> None:
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(grace)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait(5)


def app_env(**overrides: str) -> dict[str, str]:
    """Return an environment for a child process of the app, with these overrides."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST")}
    env.update({"DJANGO_SETTINGS_MODULE": "config.settings", "PYTHONPATH": str(ROOT)})
    env.update(overrides)
    return env


@contextmanager
def gunicorn(env: dict[str, str], workers: int = 2, log_path: Path | None = None) -> Iterator[str]:
    """Serve the app with gunicorn on a free loopback port; yield its base URL."""
    with gunicorn_process(env, workers, log_path) as (base, _proc):
        yield base


def kill_process_group(proc: subprocess.Popen) -> None:
    """SIGKILL the process and its children, as a power cut would, and reap it."""
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(10)


@contextmanager
def gunicorn_process(
    env: dict[str, str], workers: int = 2, log_path: Path | None = None
) -> Iterator[tuple[str, subprocess.Popen]]:
    """Like `gunicorn`, but yield (base URL, the master's Popen) for drills that kill it."""
    port = free_port()
    env = {**env, "GUNICORN_BIND": f"127.0.0.1:{port}", "GUNICORN_WORKERS": str(workers)}
    log = open(log_path, "wb") if log_path else subprocess.DEVNULL
    proc = subprocess.Popen(
        [str(VENV_BIN / "gunicorn"), "-c", "config/gunicorn.conf.py", "config.wsgi"],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"

    def serving() -> bool:
        if proc.poll() is not None:
            raise AssertionError(f"gunicorn exited with {proc.returncode}")
        try:
            return requests.get(f"{base}/api/health", timeout=1).status_code == 200
        except requests.RequestException:
            return False

    try:
        wait_until(serving, 30, what="gunicorn to serve")
        yield base, proc
    finally:
        _stop_process_group(proc)
        if log_path:
            log.close()


class RedisServer:
    """A private redis-server on a free loopback port, stoppable and restartable."""

    def __init__(self):
        self.port = free_port()
        self.proc: subprocess.Popen | None = None
        self.binary = shutil.which("redis-server") or "/usr/bin/redis-server"

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> "RedisServer":
        self.proc = subprocess.Popen(
            [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        wait_until(self._answers, 10, what="redis-server to answer")
        return self

    def _answers(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def stop(self) -> None:
        if self.proc is not None:
            _stop_process_group(self.proc, grace=5)
            self.proc = None


@contextmanager
def redis_server() -> Iterator[RedisServer]:
    server = RedisServer().start()
    try:
        yield server
    finally:
        server.stop()
