"""The Celery task's own policy: claim once, retry database errors with the same attempt."""

import pytest
from django.db import OperationalError

from tests.factories import JobFactory
from transcriptions import pipeline, tasks
from transcriptions.models import Job, JobStatus

pytestmark = pytest.mark.django_db


@pytest.fixture
def calls(monkeypatch):
    """Replace the transcription itself; record (job id, attempt) of each call."""
    seen: list[tuple[str, int]] = []
    outcomes: list[object] = []

    def fake_process(job_id, attempt):
        seen.append((str(job_id), attempt))
        outcome = outcomes.pop(0)
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    monkeypatch.setattr(pipeline, "process_job", fake_process)
    return seen, outcomes


def test_a_database_error_is_retried_with_the_attempt_already_claimed(calls):
    seen, outcomes = calls
    outcomes += [OperationalError("server closed the connection unexpectedly"), "done"]
    job = JobFactory(status=JobStatus.QUEUED)

    result = tasks.transcribe_job.apply(args=[str(job.pk)])

    assert result.get() == "done"
    assert seen == [(str(job.pk), 1), (str(job.pk), 1)]
    assert Job.objects.get(pk=job.pk).attempts == 1


def test_a_job_that_is_not_queued_is_skipped_without_transcribing(calls):
    seen, _ = calls
    job = JobFactory(status=JobStatus.DONE)

    result = tasks.transcribe_job.apply(args=[str(job.pk)])

    assert result.get() == "skipped"
    assert seen == []


def test_a_retry_whose_attempt_lost_the_job_does_nothing(calls):
    seen, _ = calls
    job = JobFactory(status=JobStatus.QUEUED, attempts=2)

    result = tasks.transcribe_job.apply(args=[str(job.pk)], kwargs={"attempt": 1})

    assert result.get() == "lost"
    assert seen == []


def test_the_soft_time_limit_fails_the_job_with_a_message(calls):
    from celery.exceptions import SoftTimeLimitExceeded

    _, outcomes = calls
    outcomes.append(SoftTimeLimitExceeded())
    job = JobFactory(status=JobStatus.QUEUED)

    result = tasks.transcribe_job.apply(args=[str(job.pk)])

    job.refresh_from_db()
    assert result.get() == "failed"
    assert job.status == JobStatus.FAILED
    assert "longer than the time allowed" in job.error_message


def test_purge_expired_tokens_deletes_only_expired_ones():
    from datetime import timedelta

    from django.utils import timezone
    from knox.models import AuthToken

    from accounts.tasks import purge_expired_tokens
    from tests.factories import UserFactory

    user = UserFactory()
    live, _ = AuthToken.objects.create(user=user)
    expired, _ = AuthToken.objects.create(user=user)
    AuthToken.objects.filter(pk=expired.pk).update(expiry=timezone.now() - timedelta(seconds=1))

    assert purge_expired_tokens.apply().get() == 1
    assert list(AuthToken.objects.values_list("pk", flat=True)) == [live.pk]
