"""Celery tasks: thin wrappers that own retry and time-limit policy."""

import logging

from celery import shared_task
from celery.exceptions import SoftTimeLimitExceeded
from celery.signals import worker_process_init
from django.db import InterfaceError, OperationalError, close_old_connections

from . import pipeline, services

logger = logging.getLogger(__name__)

# Database hiccups are retried with exponential backoff, capped at a minute.
TRANSIENT_ERRORS = (OperationalError, InterfaceError)
MAX_TRANSIENT_RETRIES = 8


@shared_task(bind=True, acks_late=True, reject_on_worker_lost=True, max_retries=MAX_TRANSIENT_RETRIES)
def transcribe_job(self, job_id: str, attempt: int | None = None) -> str:
    """Claim the job (unless retrying an attempt already claimed) and transcribe it."""
    try:
        if attempt is None:
            attempt = services.claim_job(job_id)
            if attempt is None:
                logger.info("job %s is not queued; nothing to do", job_id)
                return "skipped"
        elif not services.is_attempt_current(job_id, attempt):
            return "lost"
        return pipeline.process_job(job_id, attempt)
    except SoftTimeLimitExceeded:
        services.fail_job(job_id, attempt, "transcription took longer than the time allowed for this audio")
        return "failed"
    except TRANSIENT_ERRORS as exc:
        # Celery's Django fixup drops unusable connections around every task, so the retry reconnects.
        countdown = min(60, 2 ** self.request.retries)
        logger.warning("job %s hit a database error (%s); retry in %ss", job_id, exc.__class__.__name__, countdown)
        raise self.retry(exc=exc, countdown=countdown, kwargs={"attempt": attempt}) from exc


@shared_task
def requeue_stale_jobs() -> dict[str, int]:
    """Run the recovery sweep (scheduled by celery beat)."""
    result = services.requeue_stale_jobs()
    return {"requeued": len(result.requeued), "failed": len(result.failed), "reenqueued": len(result.reenqueued)}


def run_in_process(job_id: str) -> str:
    """Run a job on this process's background thread (no broker configured)."""
    attempt = None
    try:
        attempt = services.claim_job(job_id)
        if attempt is None:
            return "skipped"
        return pipeline.process_job(job_id, attempt)
    except Exception:
        # Nothing would retry this thread's work: fail the job visibly rather than strand it.
        logger.exception("in-process job %s crashed", job_id)
        if attempt is not None:
            services.fail_job(job_id, attempt, "internal error while transcribing")
        return "failed"
    finally:
        close_old_connections()


@worker_process_init.connect
def _load_model_after_fork(**_: object) -> None:
    # Each pool process loads the default model once, after the fork, so the
    # first job does not pay for it and no model memory is shared across forks.
    try:
        pipeline.warm_up()
    except Exception:  # noqa: BLE001 - a worker without its model still serves other models
        logger.exception("could not preload the default model")
