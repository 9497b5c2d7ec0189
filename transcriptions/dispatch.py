"""Hand a job to whoever runs it: Celery workers through Redis, or this process.

With REDIS_URL unset (the embedded default) jobs run on a background thread
of the serving process, so a single `make run` transcribes end to end, and
another thread of that process runs the recovery sweep that celery beat runs
otherwise: jobs a restart interrupted are picked up again.
"""

import logging
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor

from django.conf import settings
from django.db import DatabaseError, InterfaceError, connections

logger = logging.getLogger(__name__)

_local_executor: ThreadPoolExecutor | None = None
_local_lock = threading.Lock()
# Jobs waiting in or running on this process's executor: the sweep may find
# them "not taken" while they wait their turn, and must not queue them twice.
_local_jobs: set[str] = set()
_sweeper: threading.Thread | None = None
_sweeper_stop = threading.Event()


def _executor() -> ThreadPoolExecutor:
    global _local_executor
    # Request threads and the sweeper may both get here first.
    with _local_lock:
        if _local_executor is None:
            # One job at a time: a second model run would only halve the speed of both.
            _local_executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="transcribe")
        return _local_executor


def task_time_limits(job_id: str) -> tuple[int, int]:
    """Return (soft, hard) time limits in seconds for a job, from its audio length."""
    from .models import Job

    duration_ms = Job.objects.filter(pk=job_id).values_list("audio_duration_ms", flat=True).first() or 0
    soft = int(settings.JOB_TIME_LIMIT_BASE_SECONDS + settings.JOB_TIME_LIMIT_FACTOR * duration_ms / 1000)
    soft = min(soft, settings.MAX_JOB_SECONDS)
    return soft, soft + 60


def enqueue_job(job_id: uuid.UUID | str) -> bool:
    """Publish the job for a worker; return False if the broker could not take it.

    A job whose message could not be published stays queued with no
    `enqueued_at`, and the recovery sweep publishes it again later.
    """
    from . import services, tasks

    job_id = str(job_id)
    if not settings.REDIS_URL:
        with _local_lock:
            waiting = job_id in _local_jobs
            _local_jobs.add(job_id)
        if not waiting:
            try:
                future = _executor().submit(tasks.run_in_process, job_id)
            except RuntimeError:  # the executor is shutting down with the process
                _forget_local(job_id)
                return False
            future.add_done_callback(lambda _: _forget_local(job_id))
        # Stamped again for a job still waiting its turn, so the sweep does not find it every round.
        services.mark_enqueued(job_id)
        return True
    soft, hard = task_time_limits(job_id)
    try:
        tasks.transcribe_job.apply_async(args=[job_id], retry=False, soft_time_limit=soft, time_limit=hard)
    except Exception as exc:  # noqa: BLE001 - kombu and redis raise many types for "broker down"
        logger.warning("could not publish job %s (%s); the sweep will retry", job_id, exc.__class__.__name__)
        return False
    services.mark_enqueued(job_id)
    return True


def _forget_local(job_id: str) -> None:
    with _local_lock:
        _local_jobs.discard(job_id)


def start_local_sweeper() -> threading.Thread | None:
    """Run the recovery sweep every REQUEUE_SWEEP_SECONDS on a daemon thread of this process.

    Only in the embedded mode, where no celery beat runs; with REDIS_URL set
    (or REQUEUE_SWEEP_SECONDS at 0) this starts nothing and returns None.
    Calling it again while the thread runs returns that thread.
    """
    global _sweeper
    interval = settings.REQUEUE_SWEEP_SECONDS
    if settings.REDIS_URL or interval <= 0:
        return None
    with _local_lock:
        if _sweeper is None or not _sweeper.is_alive():
            _sweeper_stop.clear()
            _sweeper = threading.Thread(
                target=_sweep_until_stopped, args=(interval,), name="requeue-sweep", daemon=True
            )
            _sweeper.start()
        return _sweeper


def stop_local_sweeper(timeout: float = 10) -> None:
    """Stop the sweeper thread, if one runs, and wait for it."""
    _sweeper_stop.set()
    if _sweeper is not None:
        _sweeper.join(timeout)


def _sweep_until_stopped(interval: int) -> None:
    from . import services

    while not _sweeper_stop.is_set():
        try:
            result = services.requeue_stale_jobs()
            if result.requeued or result.failed or result.reenqueued:
                logger.info(
                    "recovery sweep: requeued %d, failed %d, re-enqueued %d",
                    len(result.requeued), len(result.failed), len(result.reenqueued),
                )
        except (DatabaseError, InterfaceError) as exc:
            # The database is away; the next round tries again.
            logger.warning("recovery sweep skipped: %s", exc.__class__.__name__)
        except Exception:
            # Nothing restarts this thread: log the surprise and keep sweeping.
            logger.exception("recovery sweep failed")
        finally:
            connections.close_all()
        _sweeper_stop.wait(interval)
