"""Hand a job to whoever runs it: Celery workers through Redis, or this process.

With REDIS_URL unset (the embedded default) jobs run on a background thread
of the serving process, so a single `make run` transcribes end to end.
"""

import logging
import uuid
from concurrent.futures import ThreadPoolExecutor

from django.conf import settings

logger = logging.getLogger(__name__)

_local_executor: ThreadPoolExecutor | None = None


def _executor() -> ThreadPoolExecutor:
    global _local_executor
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
        _executor().submit(tasks.run_in_process, job_id)
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
