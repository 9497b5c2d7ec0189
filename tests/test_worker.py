"""Real Celery worker processes against the real Redis: jobs submitted through the API get done.

One worker subprocess serves the module (`--concurrency=1`, prefork), using
the test database, Redis database 15 and a storage folder this process reads
too. Tests that kill it start the next one. Nothing here is faked: the
worker loads tiny.en and transcribes real speech.
"""

import os
import signal
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import pytest
from django.conf import settings as django_settings
from django.core.files.storage import default_storage
from django.db import connection
from django.utils import timezone
from knox.models import AuthToken

from config.celery import app as celery_app
from tests.worker_harness import (
    MAX_WORD_ERROR_RATE,
    PROJECT_DIR,
    WorkerProcess,
    Workers,
    assert_cues_in_order,
    celery_broker,
    database_url,
    parse_srt,
    parse_vtt,
    queue_length,
    reset_broker,
    wait_until,
    word_error_rate,
)
from transcriptions import dispatch, services, tasks
from transcriptions.models import ArtifactType, FileArtifact, Job, JobStatus

pytestmark = [
    pytest.mark.redis,
    pytest.mark.worker,
    pytest.mark.postgres,
    pytest.mark.slow,
    pytest.mark.django_db(transaction=True),
]

FIXTURES = Path(__file__).parent / "fixtures"
SPEECH_WAV = FIXTURES / "speech_en.wav"
SPEECH_60S = FIXTURES / "speech_60s.ogg"
JOB_DEADLINE_SECONDS = 60
DEAD_BROKER = "redis://127.0.0.1:1/15"  # nothing listens on port 1: Redis is "down"
# tiny.en gets about 2% of the 60-second clip's words wrong on this machine;
# 0.15 leaves room for CPU and CTranslate2 drift, while a transcript that
# lost either of its two 30-second windows scores about 0.5.
MAX_WORD_ERROR_RATE_60S = 0.15
DOWNLOAD_TYPES = {
    ArtifactType.AUDIO: "audio/wav",
    ArtifactType.RESULT_JSON: "application/json",
    ArtifactType.TRANSCRIPT_TXT: "text/plain; charset=utf-8",
    ArtifactType.SUBTITLES_SRT: "application/x-subrip",
    ArtifactType.SUBTITLES_VTT: "text/vtt; charset=utf-8",
}


@pytest.fixture(scope="module")
def worker_media(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("worker-media")


@pytest.fixture(scope="module")
def worker_env(django_db_setup, worker_media) -> dict[str, str]:
    """The environment of every worker and sweep subprocess: this test's database, Redis and storage."""
    return {
        **os.environ,
        "DATABASE_URL": database_url(connection.settings_dict),
        "REDIS_URL": django_settings.REDIS_URL,
        "MEDIA_ROOT": str(worker_media),
        "DJANGO_DEBUG": "1",
        "PYTHONUNBUFFERED": "1",
    }


@pytest.fixture(scope="module")
def workers(worker_env, tmp_path_factory):
    supervisor = Workers(worker_env, tmp_path_factory.mktemp("worker-logs"))
    yield supervisor
    supervisor.stop()


@pytest.fixture(autouse=True)
def _shared_storage_and_empty_queue(settings, worker_media):
    settings.MEDIA_ROOT = str(worker_media)
    reset_broker(celery_app, settings.REDIS_URL)


@pytest.fixture
def token_client(api_client, licensed_user):
    _, token = AuthToken.objects.create(user=licensed_user, expiry=timedelta(hours=1))
    api_client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    return api_client


def post_audio(client, audio: Path):
    with open(audio, "rb") as file:
        return client.post("/api/transcriptions", {"audio": file}, format="multipart")


def wait_for_job(job_id, worker: WorkerProcess) -> Job:
    """Poll the database until the job is done or failed; return it."""
    return wait_until(
        lambda: Job.objects.filter(pk=job_id, status__in=[JobStatus.DONE, JobStatus.FAILED]).first(),
        JOB_DEADLINE_SECONDS,
        lambda: (
            f"job: {Job.objects.filter(pk=job_id).values('status', 'progress', 'attempts').first()}. "
            + worker.log_tail()
        ),
    )


def stored_files(job_id) -> list[str]:
    folder = f"jobs/{job_id}"
    return sorted(f"{folder}/{name}" for name in default_storage.listdir(folder)[1])


def assert_one_set_of_results(job: Job) -> None:
    """Assert the job has its audio and exactly one of each result, and no other file in its folder."""
    artifacts = list(FileArtifact.objects.filter(job=job))
    assert sorted(a.type for a in artifacts) == sorted(DOWNLOAD_TYPES)
    assert stored_files(job.pk) == sorted(a.path for a in artifacts)
    for artifact in artifacts:
        assert artifact.size_bytes == default_storage.size(artifact.path) > 0


def read(path: str) -> str:
    with default_storage.open(path, "rb") as file:
        return file.read().decode("utf-8")


def sweep_in_subprocess(env: dict[str, str], **overrides: str) -> str:
    """Run `manage.py requeue_stale_jobs` as cron or an operator would; return what it printed."""
    done = subprocess.run(
        [sys.executable, "manage.py", "requeue_stale_jobs"],
        cwd=PROJECT_DIR,
        env={**env, **overrides},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_a_job_posted_through_the_api_is_transcribed_by_a_worker(workers, token_client):
    client = token_client
    worker = workers.running()

    response = post_audio(client, SPEECH_WAV)

    assert response.status_code == 201, response.content
    job_id = response.json()["id"]
    assert response["Location"] == f"/api/transcriptions/{job_id}"
    seen: list[dict] = []

    def finished():
        body = client.get(f"/api/transcriptions/{job_id}").json()
        seen.append(body)
        return body if body["status"] in (JobStatus.DONE, JobStatus.FAILED) else None

    body = wait_until(finished, JOB_DEADLINE_SECONDS, lambda: f"last: {seen[-1]}. {worker.log_tail()}", interval=0.1)
    assert (body["status"], body["progress"], body["error_message"]) == (JobStatus.DONE, 100, None)
    progress = [b["progress"] for b in seen]
    assert progress == sorted(progress)
    assert Job.objects.get(pk=job_id).enqueued_at is not None  # published after commit, not by the sweep
    downloads = {}
    for artifact in body["artifacts"]:
        download = client.get(artifact["url"])
        assert download.status_code == 200, artifact
        assert download["Content-Type"] == DOWNLOAD_TYPES[artifact["type"]]
        downloads[artifact["type"]] = b"".join(download.streaming_content)
        assert len(downloads[artifact["type"]]) == artifact["size_bytes"]
    assert set(downloads) == set(DOWNLOAD_TYPES)
    srt = parse_srt(downloads[ArtifactType.SUBTITLES_SRT].decode())
    assert_cues_in_order(srt, body["audio_duration_ms"])
    assert parse_vtt(downloads[ArtifactType.SUBTITLES_VTT].decode()) == srt
    reference = (FIXTURES / "speech_en.txt").read_text()
    assert word_error_rate(reference, downloads[ArtifactType.TRANSCRIPT_TXT].decode()) < MAX_WORD_ERROR_RATE


def test_a_message_delivered_twice_transcribes_once(workers, licensed_user, monkeypatch):
    worker = workers.running()
    # The two messages are published by hand below, not by the submission's on_commit hook.
    monkeypatch.setattr(dispatch, "enqueue_job", lambda job_id: True)
    with open(SPEECH_WAV, "rb") as audio:
        job = services.submit_job(licensed_user, audio).job

    first = tasks.transcribe_job.apply_async(args=[str(job.pk)])
    second = tasks.transcribe_job.apply_async(args=[str(job.pk)])

    outcomes = sorted([worker.task_result(first.id, JOB_DEADLINE_SECONDS), worker.task_result(second.id, 30)])
    job.refresh_from_db()
    assert outcomes == ["done", "skipped"]
    assert (job.status, job.attempts) == (JobStatus.DONE, 1)
    assert_one_set_of_results(job)


@pytest.mark.parametrize("victim", ["pool-child", "whole-worker"])
def test_a_job_whose_worker_is_killed_mid_job_is_recovered_by_the_sweep(workers, worker_env, licensed_user, victim):
    worker = workers.running()
    with open(SPEECH_60S, "rb") as audio:
        job = services.submit_job(licensed_user, audio).job
    wait_until(
        lambda: Job.objects.filter(pk=job.pk, status=JobStatus.PROCESSING, progress__gt=0).exists(),
        JOB_DEADLINE_SECONDS,
        worker.log_tail,
        interval=0.02,
    )

    if victim == "pool-child":
        (child,) = worker.pool_children()
        os.kill(child, signal.SIGKILL)
    else:
        worker.kill()
    killed = Job.objects.get(pk=job.pk)
    assert (killed.status, killed.attempts) == (JobStatus.PROCESSING, 1), "the job ended before the kill"

    printed = sweep_in_subprocess(worker_env, JOB_STALE_AFTER_SECONDS="0")
    worker = workers.running()  # the same worker for a dead pool child, a new one after a dead worker

    assert printed == "requeued 1, failed 0, re-enqueued 0\n"
    done = wait_for_job(job.pk, worker)
    assert (done.status, done.progress, done.attempts) == (JobStatus.DONE, 100, 2)
    assert_one_set_of_results(done)
    reference = (FIXTURES / "speech_60s.txt").read_text()
    assert word_error_rate(reference, read(done.transcript_txt_path)) < MAX_WORD_ERROR_RATE_60S


def test_a_job_posted_while_redis_is_down_is_done_once_the_sweep_republishes_it(workers, token_client, settings):
    client = token_client
    worker = workers.running()
    redis_url = settings.REDIS_URL

    with celery_broker(celery_app, DEAD_BROKER):
        settings.REDIS_URL = DEAD_BROKER
        started = time.monotonic()
        response = post_audio(client, SPEECH_WAV)
        elapsed = time.monotonic() - started
    settings.REDIS_URL = redis_url

    assert response.status_code == 201, response.content
    assert response.json()["status"] == JobStatus.QUEUED
    assert elapsed < 10, "a dead broker must not hold the upload up"
    job = Job.objects.get(pk=response.json()["id"])
    assert job.enqueued_at is None
    assert queue_length(redis_url) == 0

    Job.objects.filter(pk=job.pk).update(
        created_at=timezone.now() - timedelta(seconds=11), updated_at=timezone.now() - timedelta(seconds=11)
    )
    result = services.requeue_stale_jobs()

    assert result.reenqueued == [job.pk]
    done = wait_for_job(job.pk, worker)
    assert (done.status, done.attempts, done.progress) == (JobStatus.DONE, 1, 100)
    assert_one_set_of_results(done)
