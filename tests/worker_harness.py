"""Helpers for the pipeline and worker tests: a real Celery worker process, and transcript checks.

`Workers` starts `celery -A config worker` as a subprocess in its own process
group, against the test database, the test's Redis database and a storage
folder the test also reads, waits until the worker says it is ready, and
stops or kills it. The transcript checks (word error rate, SubRip and WebVTT
parsers) read what the pipeline wrote the way a user's tools would.
"""

from __future__ import annotations

import itertools
import os
import re
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import NamedTuple, TypeVar
from urllib.parse import quote

import redis
from celery import Celery

PROJECT_DIR = Path(__file__).resolve().parent.parent
CELERY = Path(sys.executable).with_name("celery")
WORKER_ARGS = [
    "-A", "config", "worker", "--pool=prefork", "--concurrency=1", "-Q", "celery",
    "--without-heartbeat", "--without-mingle", "--without-gossip", "-l", "INFO",
]  # fmt: skip
WORKER_READY_SECONDS = 60
WORKER_STOP_SECONDS = 15

T = TypeVar("T")


def wait_until(check: Callable[[], T], timeout: float, describe: Callable[[], str] = lambda: "", interval=0.05) -> T:
    """Return the first truthy result of `check`, polling until `timeout` seconds; fail the test after."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"not reached within {timeout} s. {describe()}")
        time.sleep(interval)


def database_url(settings_dict: Mapping) -> str:
    """Return a postgres:// URL for a Django database settings dict (the test database's)."""
    credentials = quote(settings_dict["USER"] or "", safe="")
    if settings_dict.get("PASSWORD"):
        credentials += ":" + quote(settings_dict["PASSWORD"], safe="")
    host = settings_dict["HOST"] or "127.0.0.1"
    port = settings_dict["PORT"] or "5432"
    return f"postgres://{credentials}@{host}:{port}/{quote(settings_dict['NAME'], safe='')}"


def reset_broker(app: Celery, redis_url: str) -> None:
    """Empty the Redis database, then declare the task queues again.

    FLUSHDB also drops kombu's exchange bindings; a publisher that declared the
    queue before would otherwise route its next messages nowhere.
    """
    redis.Redis.from_url(redis_url).flushdb()
    with app.connection_for_write() as connection:
        for queue in app.amqp.queues.values():
            queue(connection.default_channel).declare()


def queue_length(redis_url: str, queue: str = "celery") -> int:
    """Return how many messages wait in a Celery queue on Redis."""
    return redis.Redis.from_url(redis_url).llen(queue)


@contextmanager
def celery_broker(app: Celery, url: str) -> Iterator[None]:
    """Publish through another broker URL inside the block (a dead one simulates Redis down).

    Celery reads `broker_url` once into a cached connection pool, so the pool
    is set aside and rebuilt for the block, then put back.
    """
    saved = app.conf.broker_url, app._pool, app.amqp._producer_pool
    app.conf.broker_url, app._pool, app.amqp._producer_pool = url, None, None
    try:
        yield
    finally:
        if app._pool is not None:
            app._pool.force_close_all()
        app.conf.broker_url, app._pool, app.amqp._producer_pool = saved


class WorkerProcess:
    """One `celery worker` subprocess and its log file."""

    def __init__(self, env: Mapping[str, str], log_path: Path):
        self.log_path = log_path
        with open(log_path, "wb") as log:
            self.process = subprocess.Popen(
                [str(CELERY), *WORKER_ARGS, "-n", f"test-{uuid.uuid4().hex[:8]}@%h"],
                cwd=PROJECT_DIR,
                env=dict(env),
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group, so the pool children die with it
            )

    @property
    def pid(self) -> int:
        return self.process.pid

    def log(self) -> str:
        """Return everything the worker has logged so far."""
        return self.log_path.read_text(errors="replace")

    def log_tail(self, lines: int = 40) -> str:
        return "worker log tail:\n" + "\n".join(self.log().splitlines()[-lines:])

    def alive(self) -> bool:
        return self.process.poll() is None

    def wait_ready(self, timeout: float = WORKER_READY_SECONDS) -> None:
        """Wait until the worker logs that it is ready; fail with its log if it exits or stalls."""
        wait_until(lambda: " ready." in self.log() or not self.alive(), timeout, self.log_tail)
        if not self.alive():
            raise AssertionError(f"the worker exited with {self.process.returncode}. {self.log_tail()}")

    def task_result(self, task_id: str, timeout: float) -> str:
        """Wait for the worker to log the task's outcome; return its return value (e.g. 'done')."""
        pattern = re.compile(rf"\[{re.escape(task_id)}\] succeeded in [\d.]+s: '(\w+)'")
        match = wait_until(lambda: pattern.search(self.log()), timeout, self.log_tail)
        return match.group(1)

    def pool_children(self) -> list[int]:
        """Return the pids of the worker's pool processes (its direct children)."""
        children = []
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                fields = stat.read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue  # exited while we looked
            if int(fields[1]) == self.pid:
                children.append(int(stat.parent.name))
        return children

    def kill(self) -> None:
        """SIGKILL the whole worker at once, as a crashed machine or OOM kill would."""
        self._signal_group(signal.SIGKILL)
        self.process.wait(timeout=WORKER_STOP_SECONDS)

    def stop(self) -> None:
        """Stop the worker: SIGTERM, then SIGKILL if it has not exited by the deadline."""
        self._signal_group(signal.SIGTERM)
        try:
            self.process.wait(timeout=WORKER_STOP_SECONDS)
        except subprocess.TimeoutExpired:
            pass
        # Also reaps pool children left behind by a main process that already exited.
        self._signal_group(signal.SIGKILL)
        self.process.wait(timeout=WORKER_STOP_SECONDS)

    def _signal_group(self, signum: int) -> None:
        try:
            os.killpg(self.pid, signum)
        except ProcessLookupError:
            pass  # the whole group has exited


class Workers:
    """At most one running worker at a time, started on demand and replaced after a kill."""

    def __init__(self, env: Mapping[str, str], log_dir: Path):
        self.env = dict(env)
        self.log_dir = log_dir
        self.current: WorkerProcess | None = None
        self.started = 0

    def running(self) -> WorkerProcess:
        """Return the ready worker, starting a new one if there is none or it died."""
        if self.current is None or not self.current.alive():
            if self.current is not None:
                self.current.stop()
            self.started += 1
            self.current = WorkerProcess(self.env, self.log_dir / f"worker-{self.started}.log")
            self.current.wait_ready()
        return self.current

    def stop(self) -> None:
        if self.current is not None:
            self.current.stop()
            self.current = None


# --- Transcript checks ------------------------------------------------------------

# The 12-word sentence of speech_en.wav comes out of tiny.en with no error on
# this machine. 0.2 allows two wrong words for numeric drift across CPUs and
# CTranslate2 builds; a broken pipeline (wrong audio, truncated decode, text
# of another job) scores 0.5 or more.
MAX_WORD_ERROR_RATE = 0.2


def normalised_words(text: str) -> list[str]:
    """Return lowercase words with punctuation removed."""
    return re.sub(r"[^\w\s']", " ", text.lower()).split()


def word_error_rate(reference: str, hypothesis: str) -> float:
    """Return the word-level Levenshtein distance divided by the reference length."""
    ref, hyp = normalised_words(reference), normalised_words(hypothesis)
    distances = list(range(len(hyp) + 1))
    for i, ref_word in enumerate(ref, start=1):
        diagonal, distances[0] = distances[0], i
        for j, hyp_word in enumerate(hyp, start=1):
            substitution = diagonal + (ref_word != hyp_word)
            diagonal, distances[j] = distances[j], min(distances[j] + 1, distances[j - 1] + 1, substitution)
    return distances[len(hyp)] / max(len(ref), 1)


class Cue(NamedTuple):
    start_ms: int
    end_ms: int
    text: str


_SRT_TIMING = re.compile(r"(\d{2}):([0-5]\d):([0-5]\d),(\d{3}) --> (\d{2}):([0-5]\d):([0-5]\d),(\d{3})")
_VTT_TIMING = re.compile(r"(\d{2}):([0-5]\d):([0-5]\d)\.(\d{3}) --> (\d{2}):([0-5]\d):([0-5]\d)\.(\d{3})")


def _times(match: re.Match) -> tuple[int, int]:
    h1, m1, s1, ms1, h2, m2, s2, ms2 = map(int, match.groups())
    return ((h1 * 60 + m1) * 60 + s1) * 1000 + ms1, ((h2 * 60 + m2) * 60 + s2) * 1000 + ms2


def _blocks(text: str) -> list[list[str]]:
    if "\r" in text:
        raise ValueError("subtitle lines must end with \\n only")
    return [block.split("\n") for block in text.strip("\n").split("\n\n") if block]


def parse_srt(text: str) -> list[Cue]:
    """Parse SubRip strictly: cues numbered 1, 2, 3…, a timing line, then text; raise ValueError if not."""
    cues = []
    for expected, lines in enumerate(_blocks(text), start=1):
        if len(lines) < 3 or lines[0] != str(expected):
            raise ValueError(f"cue {expected}: expected its number, a timing line and text, got {lines!r}")
        timing = _SRT_TIMING.fullmatch(lines[1])
        if timing is None or not all(line.strip() for line in lines[2:]):
            raise ValueError(f"cue {expected}: bad timing line or empty text in {lines!r}")
        cues.append(Cue(*_times(timing), " ".join(lines[2:])))
    return cues


def parse_vtt(text: str) -> list[Cue]:
    """Parse WebVTT strictly: the WEBVTT header, then timing line and text per cue; raise ValueError if not."""
    blocks = _blocks(text)
    if not blocks or blocks[0] != ["WEBVTT"]:
        raise ValueError("a WebVTT file starts with a line 'WEBVTT' alone")
    cues = []
    for lines in blocks[1:]:
        if lines and "-->" not in lines[0]:
            lines = lines[1:]  # an optional cue identifier
        timing = _VTT_TIMING.fullmatch(lines[0]) if lines else None
        if timing is None or len(lines) < 2 or not all(line.strip() for line in lines[1:]):
            raise ValueError(f"bad cue {lines!r}")
        if "-->" in " ".join(lines[1:]):
            raise ValueError(f"cue text must not contain '-->': {lines!r}")
        cues.append(Cue(*_times(timing), " ".join(lines[1:])))
    return cues


def assert_cues_in_order(cues: list[Cue], duration_ms: int) -> None:
    """Assert every cue has positive length within the audio, and each starts after the previous one ends."""
    assert cues, "no cues"
    for cue in cues:
        assert 0 <= cue.start_ms < cue.end_ms <= duration_ms + 1000, cue
    starts = [cue.start_ms for cue in cues]
    assert starts == sorted(starts), starts
    for previous, cue in itertools.pairwise(cues):
        assert previous.end_ms <= cue.start_ms, f"cues overlap: {previous} {cue}"
