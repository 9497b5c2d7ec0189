"""The worker side of a job, in this process: claim, transcribe, store, finish, recover.

No broker here: the tests call the services and `pipeline.process_job` as the
Celery task does (or go through the in-process runner), with the real
tiny.en model on real speech. Real worker processes are in test_worker.py.
"""

import itertools
import json
import threading
import time
import uuid
from datetime import timedelta
from io import StringIO
from pathlib import Path
from unittest.mock import Mock

import pytest
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.core.management import call_command
from django.db import connections, transaction
from django.db.models import F
from django.utils import timezone

from tests.factories import JobFactory
from tests.worker_harness import (
    MAX_WORD_ERROR_RATE,
    assert_cues_in_order,
    parse_srt,
    parse_vtt,
    wait_until,
    word_error_rate,
)
from transcriptions import dispatch, pipeline, services, tasks
from transcriptions.models import ArtifactType, FileArtifact, Job, JobStatus

pytestmark = pytest.mark.django_db

FIXTURES = Path(__file__).parent / "fixtures"
SPEECH_WAV = FIXTURES / "speech_en.wav"
SPEECH_60S = FIXTURES / "speech_60s.ogg"
SPEECH_MS = 5242  # 83 878 samples at 16 kHz
RESULT_TYPES = {
    ArtifactType.RESULT_JSON,
    ArtifactType.TRANSCRIPT_TXT,
    ArtifactType.SUBTITLES_SRT,
    ArtifactType.SUBTITLES_VTT,
}


@pytest.fixture(autouse=True)
def _no_broker(settings):
    # Nothing in this file may publish to the Redis the worker tests use:
    # without REDIS_URL, dispatch runs jobs on this process's own thread.
    settings.REDIS_URL = ""


@pytest.fixture(scope="module")
def tiny_model():
    """Load tiny.en once for the module, so no single test pays for it."""
    pipeline.warm_up("tiny.en")


@pytest.fixture
def stale_after(settings) -> int:
    """Shrink the sweep's timeouts; return how long a silent processing job takes to go stale."""
    settings.JOB_STALE_AFTER_SECONDS = 30
    settings.JOB_QUEUED_STALE_AFTER_SECONDS = 120
    settings.JOB_MAX_ATTEMPTS = 3
    return 30


@pytest.fixture
def enqueued(monkeypatch) -> list[str]:
    """Record the job ids handed to the queue instead of running them."""
    calls: list[str] = []
    monkeypatch.setattr(dispatch, "enqueue_job", lambda job_id: calls.append(str(job_id)) or True)
    return calls


def submit(user, audio: Path = SPEECH_WAV) -> Job:
    """Submit real audio the way the API does; the job stays queued (no commit, no message)."""
    with open(audio, "rb") as file:
        return services.submit_job(user, file).job


def stored_files(job: Job) -> list[str]:
    """Return the storage names under the job's folder."""
    folder = f"jobs/{job.pk}"
    if not default_storage.exists(folder):
        return []
    return sorted(f"{folder}/{name}" for name in default_storage.listdir(folder)[1])


def age(job: Job, seconds: float, *fields: str) -> None:
    """Move the job's timestamps back in time, as if it had waited that long."""
    past = timezone.now() - timedelta(seconds=seconds)
    Job.objects.filter(pk=job.pk).update(**{field: past for field in fields or ("updated_at",)})


def read(path: str) -> str:
    with default_storage.open(path, "rb") as file:
        return file.read().decode("utf-8")


def artifact_paths(job: Job) -> dict[str, str]:
    return dict(FileArtifact.objects.filter(job=job).values_list("type", "path"))


@pytest.fixture
def queued_job(licensed_user) -> Job:
    return submit(licensed_user)


@pytest.fixture
def done_job(tiny_model, queued_job) -> Job:
    """A job claimed and transcribed by the pipeline."""
    attempt = services.claim_job(queued_job.pk)
    assert pipeline.process_job(queued_job.pk, attempt) == "done"
    queued_job.refresh_from_db()
    return queued_job


# === Claiming ====================================================================


def test_claim_job_moves_a_queued_job_to_processing_as_its_first_attempt(queued_job):
    attempt = services.claim_job(queued_job.pk)

    queued_job.refresh_from_db()
    assert attempt == 1
    assert (queued_job.status, queued_job.attempts, queued_job.progress) == (JobStatus.PROCESSING, 1, 0)


def test_claim_job_a_second_time_claims_nothing(queued_job):
    services.claim_job(queued_job.pk)

    assert services.claim_job(str(queued_job.pk)) is None
    assert Job.objects.get(pk=queued_job.pk).attempts == 1


@pytest.mark.parametrize("status", [JobStatus.PROCESSING, JobStatus.DONE, JobStatus.FAILED])
def test_claim_job_claims_only_queued_jobs(status):
    job = JobFactory(status=status, attempts=1)

    assert services.claim_job(job.pk) is None
    assert Job.objects.get(pk=job.pk).status == status


@pytest.mark.parametrize("job_id", ["deleted", uuid.UUID(int=7), "not-a-uuid", "", None, 42])
def test_claim_job_of_a_deleted_unknown_or_malformed_id_returns_none(job_id):
    if job_id == "deleted":
        job = JobFactory()
        job_id = job.pk
        job.delete()

    assert services.claim_job(job_id) is None


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_concurrent_claims_of_one_job_give_it_to_exactly_one_claimer():
    job = JobFactory()
    claimers = 8
    start = threading.Barrier(claimers)
    results: list[int | None] = []

    def claim() -> None:
        try:
            start.wait(timeout=10)
            results.append(services.claim_job(job.pk))
        finally:
            connections.close_all()

    threads = [threading.Thread(target=claim) for _ in range(claimers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)

    assert len(results) == claimers
    assert results.count(1) == 1 and results.count(None) == claimers - 1
    assert Job.objects.get(pk=job.pk).attempts == 1


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_claim_job_waits_for_a_short_update_of_the_queued_job_instead_of_skipping_it():
    # Right after publishing, dispatch stamps enqueued_at with an UPDATE; a
    # worker whose claim lands during that UPDATE must still get the job.
    job = JobFactory()
    row_locked, release = threading.Event(), threading.Event()

    def mark_enqueued_slowly() -> None:
        try:
            with transaction.atomic():
                Job.objects.filter(pk=job.pk).update(enqueued_at=timezone.now())
                row_locked.set()
                release.wait(timeout=10)
        finally:
            connections.close_all()

    writer = threading.Thread(target=mark_enqueued_slowly)
    writer.start()
    assert row_locked.wait(timeout=10)
    threading.Timer(0.3, release.set).start()

    attempt = services.claim_job(job.pk)
    writer.join(timeout=10)

    assert attempt == 1
    assert Job.objects.get(pk=job.pk).status == JobStatus.PROCESSING


# === Progress and fencing ========================================================


def test_record_progress_stores_the_percentage_and_refreshes_the_heartbeat(queued_job):
    attempt = services.claim_job(queued_job.pk)
    age(queued_job, 60)

    assert services.record_progress(queued_job.pk, attempt, 42) is True

    queued_job.refresh_from_db()
    assert queued_job.progress == 42
    assert timezone.now() - queued_job.updated_at < timedelta(seconds=5)


@pytest.mark.parametrize("percent, stored", [(-5, 0), (150, 100)])
def test_record_progress_keeps_the_percentage_between_0_and_100(queued_job, percent, stored):
    attempt = services.claim_job(queued_job.pk)

    services.record_progress(queued_job.pk, attempt, percent)

    assert Job.objects.get(pk=queued_job.pk).progress == stored


def _take_over(job: Job) -> None:
    """Hand the job to a newer attempt, as the sweep and a second worker would."""
    Job.objects.filter(pk=job.pk).update(status=JobStatus.PROCESSING, attempts=F("attempts") + 1, progress=7)


def _requeue(job: Job) -> None:
    Job.objects.filter(pk=job.pk).update(status=JobStatus.QUEUED, progress=0)


def _fail(job: Job) -> None:
    Job.objects.filter(pk=job.pk).update(status=JobStatus.FAILED, error_message="given up")


OLD_ATTEMPT_WRITES = {
    "record_progress": lambda job: services.record_progress(job.pk, 1, 50),
    "complete_job": lambda job: services.complete_job(
        job.pk,
        1,
        [services.StoredOutput(ArtifactType.TRANSCRIPT_TXT, f"jobs/{job.pk}/transcript.txt", 3)],
        audio_duration_ms=1,
        processing_time_ms=1,
    ),
    "fail_job": lambda job: services.fail_job(job.pk, 1, "stale worker says no"),
}


@pytest.mark.parametrize("write", OLD_ATTEMPT_WRITES.values(), ids=OLD_ATTEMPT_WRITES.keys())
@pytest.mark.parametrize("took_over", [_take_over, _requeue, _fail], ids=["newer-attempt", "requeued", "failed"])
def test_an_attempt_that_lost_the_job_cannot_change_it(queued_job, took_over, write):
    services.claim_job(queued_job.pk)
    took_over(queued_job)
    before = Job.objects.filter(pk=queued_job.pk).values().get()

    assert write(queued_job) is False

    assert Job.objects.filter(pk=queued_job.pk).values().get() == before
    assert set(artifact_paths(queued_job)) == {ArtifactType.AUDIO}


@pytest.mark.slow
def test_process_job_of_an_attempt_that_lost_the_job_leaves_it_to_the_new_attempt(tiny_model, queued_job):
    services.claim_job(queued_job.pk)
    _take_over(queued_job)

    outcome = pipeline.process_job(queued_job.pk, 1)

    queued_job.refresh_from_db()
    assert outcome == "lost"
    assert (queued_job.status, queued_job.attempts, queued_job.progress) == (JobStatus.PROCESSING, 2, 7)
    assert set(artifact_paths(queued_job)) == {ArtifactType.AUDIO}
    assert stored_files(queued_job) == [artifact_paths(queued_job)[ArtifactType.AUDIO]]


@pytest.mark.slow
def test_process_job_deletes_results_stored_after_the_job_was_taken_away(tiny_model, queued_job, monkeypatch):
    attempt = services.claim_job(queued_job.pk)
    store = pipeline._store
    written: list[str] = []

    def store_then_lose_the_job(job, rendered, stored):
        outputs = store(job, rendered, stored)
        written.extend(stored)
        _take_over(job)  # the sweep handed the job on while this attempt wrote its files
        return outputs

    monkeypatch.setattr(pipeline, "_store", store_then_lose_the_job)

    outcome = pipeline.process_job(queued_job.pk, attempt)

    queued_job.refresh_from_db()
    assert outcome == "lost"
    assert len(written) == 4
    assert queued_job.status == JobStatus.PROCESSING
    assert (queued_job.result_json_path, queued_job.transcript_txt_path) == (None, None)
    assert stored_files(queued_job) == [artifact_paths(queued_job)[ArtifactType.AUDIO]]


class WorkerKilled(BaseException):
    """Stands for SIGKILL: raised where the process would die."""


@pytest.mark.slow
def test_a_job_done_after_an_attempt_died_while_storing_keeps_only_its_final_results(
    tiny_model, stale_after, queued_job, monkeypatch, enqueued
):
    # Attempt 1 dies after writing its four files, before the transaction that
    # records them: a killed process runs no cleanup.
    with monkeypatch.context() as dying:
        dying.setattr(services, "delete_stored_files", lambda paths: None)
        dying.setattr(services, "complete_job", Mock(side_effect=WorkerKilled))
        with pytest.raises(WorkerKilled):
            pipeline.process_job(queued_job.pk, services.claim_job(queued_job.pk))
    age(queued_job, stale_after + 1)
    services.requeue_stale_jobs()

    assert pipeline.process_job(queued_job.pk, services.claim_job(queued_job.pk)) == "done"

    assert stored_files(queued_job) == sorted(artifact_paths(queued_job).values())


# === A job that runs to the end ==================================================


@pytest.mark.slow
def test_process_job_completes_the_job_with_its_four_results_in_storage(done_job):
    artifacts = {a.type: a for a in FileArtifact.objects.filter(job=done_job)}

    assert done_job.status == JobStatus.DONE
    assert (done_job.progress, done_job.error_message) == (100, None)
    assert set(artifacts) == RESULT_TYPES | {ArtifactType.AUDIO}
    for artifact in artifacts.values():
        assert artifact.path.startswith(f"jobs/{done_job.pk}/")
        assert artifact.size_bytes == default_storage.size(artifact.path) > 0
    assert stored_files(done_job) == sorted(a.path for a in artifacts.values())
    assert done_job.result_json_path == artifacts[ArtifactType.RESULT_JSON].path
    assert done_job.transcript_txt_path == artifacts[ArtifactType.TRANSCRIPT_TXT].path


@pytest.mark.slow
def test_process_job_records_the_audio_length_and_the_processing_time(done_job):
    assert done_job.audio_duration_ms == pytest.approx(SPEECH_MS, abs=20)
    assert 0 < done_job.processing_time_ms < 60_000


@pytest.mark.slow
def test_result_json_holds_language_duration_model_segments_and_words(done_job):
    result = json.loads(read(done_job.result_json_path))

    assert (result["language"], result["model"]) == ("en", "tiny.en")
    assert result["duration"] == pytest.approx(SPEECH_MS / 1000, abs=0.02)
    assert result["segments"]
    for segment in result["segments"]:
        assert 0 <= segment["start"] < segment["end"] <= result["duration"] + 0.5
        assert segment["text"].strip()
        assert segment["words"]
        for word in segment["words"]:
            assert segment["start"] - 0.01 <= word["start"] <= word["end"] <= segment["end"] + 0.01
            assert 0 <= word["probability"] <= 1
            assert word["word"].strip()


@pytest.mark.slow
def test_transcript_txt_matches_the_spoken_sentence(done_job):
    reference = (FIXTURES / "speech_en.txt").read_text()

    assert word_error_rate(reference, read(done_job.transcript_txt_path)) < MAX_WORD_ERROR_RATE


@pytest.mark.slow
def test_srt_and_vtt_cues_are_numbered_timed_and_in_order(done_job):
    paths = artifact_paths(done_job)
    srt = parse_srt(read(paths[ArtifactType.SUBTITLES_SRT]))
    vtt = parse_vtt(read(paths[ArtifactType.SUBTITLES_VTT]))
    segments = json.loads(read(done_job.result_json_path))["segments"]

    assert_cues_in_order(srt, done_job.audio_duration_ms)
    assert vtt == srt
    assert [(c.start_ms, c.end_ms) for c in srt] == [
        (round(s["start"] * 1000), round(s["end"] * 1000)) for s in segments
    ]


@pytest.mark.slow
def test_process_job_writes_progress_at_most_once_a_second_while_segments_come_out(
    tiny_model, licensed_user, monkeypatch
):
    job = submit(licensed_user, SPEECH_60S)
    attempt = services.claim_job(job.pk)
    record = services.record_progress
    writes: list[tuple[float, int]] = []

    def record_and_note(job_id, attempt, percent):
        writes.append((time.monotonic(), percent))
        return record(job_id, attempt, percent)

    monkeypatch.setattr(services, "record_progress", record_and_note)

    assert pipeline.process_job(job.pk, attempt) == "done"

    percents = [percent for _, percent in writes]
    gaps = [later - earlier for (earlier, _), (later, _) in itertools.pairwise(writes)]
    assert percents, "no progress was written while the 60 s clip was transcribed"
    assert percents == sorted(percents) and 0 < percents[0] and percents[-1] < 100
    assert all(gap >= pipeline.PROGRESS_INTERVAL_SECONDS for gap in gaps), gaps
    assert Job.objects.get(pk=job.pk).progress == 100


# === Failures ====================================================================


def _replace_with_garbage(path: str) -> None:
    default_storage.delete(path)
    default_storage.save(path, ContentFile(b"this is not audio at all " * 400))


def _truncate_to_header(path: str) -> None:
    header = SPEECH_WAV.read_bytes()[:44]
    default_storage.delete(path)
    default_storage.save(path, ContentFile(header))


CORRUPTIONS = {
    "garbage": (_replace_with_garbage, "The audio could not be decoded."),
    "truncated-to-header": (_truncate_to_header, "The file contains no audio to transcribe."),
    "missing": (default_storage.delete, "The audio could not be decoded."),
}


@pytest.mark.slow
@pytest.mark.parametrize("corrupt, message", CORRUPTIONS.values(), ids=CORRUPTIONS.keys())
def test_process_job_fails_audio_damaged_after_the_probe_with_a_short_message(tiny_model, queued_job, corrupt, message):
    audio_path = artifact_paths(queued_job)[ArtifactType.AUDIO]
    corrupt(audio_path)
    attempt = services.claim_job(queued_job.pk)

    outcome = pipeline.process_job(queued_job.pk, attempt)

    queued_job.refresh_from_db()
    assert outcome == "failed"
    assert (queued_job.status, queued_job.error_message) == (JobStatus.FAILED, message)
    assert set(artifact_paths(queued_job)) == {ArtifactType.AUDIO}
    assert (queued_job.result_json_path, queued_job.transcript_txt_path) == (None, None)
    assert set(stored_files(queued_job)) <= {audio_path}


def test_process_job_of_a_job_without_audio_fails_it():
    job = JobFactory()
    attempt = services.claim_job(job.pk)

    assert pipeline.process_job(job.pk, attempt) == "failed"

    job.refresh_from_db()
    assert (job.status, job.error_message) == (JobStatus.FAILED, "the job has no audio to transcribe")


def test_process_job_of_a_deleted_job_does_nothing(queued_job, media_files):
    attempt = services.claim_job(queued_job.pk)
    Job.objects.filter(pk=queued_job.pk).delete()
    files = media_files()

    assert pipeline.process_job(queued_job.pk, attempt) == "lost"
    assert media_files() == files


# === Recovery sweep ==============================================================


def test_requeue_stale_jobs_requeues_a_processing_job_whose_heartbeat_stopped(
    stale_after, queued_job, enqueued, django_capture_on_commit_callbacks
):
    services.claim_job(queued_job.pk)
    services.record_progress(queued_job.pk, 1, 40)
    age(queued_job, stale_after + 1)

    with django_capture_on_commit_callbacks(execute=True):
        result = services.requeue_stale_jobs()

    queued_job.refresh_from_db()
    assert result.requeued == [queued_job.pk]
    assert (queued_job.status, queued_job.attempts, queued_job.progress) == (JobStatus.QUEUED, 1, 0)
    assert (queued_job.error_message, queued_job.enqueued_at) == (None, None)
    assert enqueued == [str(queued_job.pk)]


def test_requeue_stale_jobs_leaves_a_processing_job_with_a_recent_heartbeat(stale_after, queued_job, enqueued):
    services.claim_job(queued_job.pk)
    age(queued_job, stale_after - 5)

    result = services.requeue_stale_jobs()

    assert (result.requeued, result.failed, result.reenqueued) == ([], [], [])
    assert Job.objects.get(pk=queued_job.pk).status == JobStatus.PROCESSING
    assert enqueued == []


def test_requeue_stale_jobs_fails_a_job_out_of_attempts_saying_why(stale_after, enqueued):
    job = JobFactory(status=JobStatus.PROCESSING, attempts=3)
    age(job, stale_after + 1)

    result = services.requeue_stale_jobs()

    job.refresh_from_db()
    assert result.failed == [job.pk]
    assert (job.status, job.attempts) == (JobStatus.FAILED, 3)
    assert job.error_message == "the worker stopped responding 3 times; giving up"
    assert enqueued == []


def test_a_job_whose_worker_dies_on_every_attempt_fails_after_the_last_attempt(
    stale_after, settings, queued_job, enqueued, django_capture_on_commit_callbacks
):
    settings.JOB_MAX_ATTEMPTS = 2
    attempts = []
    for _ in range(3):
        attempts.append(services.claim_job(queued_job.pk))  # a worker claims it, then dies
        age(queued_job, stale_after + 1)
        with django_capture_on_commit_callbacks(execute=True):
            services.requeue_stale_jobs()

    queued_job.refresh_from_db()
    assert attempts == [1, 2, None]
    assert queued_job.status == JobStatus.FAILED
    assert "2 times" in queued_job.error_message
    assert enqueued == [str(queued_job.pk)]


@pytest.mark.parametrize("waited, republished", [(11, True), (5, False)])
def test_requeue_stale_jobs_republishes_a_queued_job_never_published_after_10_seconds(
    stale_after, queued_job, enqueued, waited, republished
):
    age(queued_job, waited, "created_at", "updated_at")

    result = services.requeue_stale_jobs()

    assert result.reenqueued == ([queued_job.pk] if republished else [])
    assert enqueued == ([str(queued_job.pk)] if republished else [])
    assert Job.objects.get(pk=queued_job.pk).status == JobStatus.QUEUED


@pytest.mark.parametrize("waited, republished", [(121, True), (60, False)])
def test_requeue_stale_jobs_republishes_a_queued_job_whose_message_nobody_took(
    stale_after, queued_job, enqueued, waited, republished
):
    age(queued_job, waited, "created_at", "updated_at", "enqueued_at")

    result = services.requeue_stale_jobs()

    assert result.reenqueued == ([queued_job.pk] if republished else [])
    assert enqueued == ([str(queued_job.pk)] if republished else [])


@pytest.mark.parametrize("status", [JobStatus.DONE, JobStatus.FAILED])
def test_requeue_stale_jobs_leaves_finished_jobs_alone(stale_after, enqueued, status):
    job = JobFactory(status=status, attempts=1, error_message="kept" if status == JobStatus.FAILED else None)
    age(job, 3600, "created_at", "updated_at", "enqueued_at")
    before = Job.objects.filter(pk=job.pk).values().get()

    result = services.requeue_stale_jobs()

    assert (result.requeued, result.failed, result.reenqueued) == ([], [], [])
    assert Job.objects.filter(pk=job.pk).values().get() == before
    assert enqueued == []


def test_requeue_stale_jobs_does_not_count_a_job_it_could_not_publish(stale_after, queued_job, monkeypatch):
    monkeypatch.setattr(dispatch, "enqueue_job", lambda job_id: False)  # the broker is still down
    age(queued_job, 11, "created_at", "updated_at")

    result = services.requeue_stale_jobs()

    assert result.reenqueued == []
    assert Job.objects.get(pk=queued_job.pk).enqueued_at is None


def test_a_sweep_leaves_a_job_another_sweep_requeued_and_a_worker_claimed_meanwhile(
    stale_after, enqueued, monkeypatch
):
    # Given a stale processing job that two sweeps list at the same moment
    job = JobFactory(status=JobStatus.PROCESSING, attempts=1)
    age(job, stale_after + 1)
    real_atomic = transaction.atomic
    other = {}

    def atomic_after_the_other_sweep(*args, **kwargs):
        if not other:
            # the other sweep acts first, and a worker claims the requeued job
            other["started"] = True
            other["result"] = services.requeue_stale_jobs()
            other["attempt"] = services.claim_job(job.pk)
        return real_atomic(*args, **kwargs)

    monkeypatch.setattr(services.transaction, "atomic", atomic_after_the_other_sweep)

    # When this sweep gets to the job
    result = services.requeue_stale_jobs()

    # Then it finds the job alive and leaves the worker's attempt alone
    assert (other["result"].requeued, other["attempt"]) == ([job.pk], 2)
    assert result.requeued == result.failed == []
    assert Job.objects.filter(pk=job.pk).values_list("status", "attempts").get() == (JobStatus.PROCESSING, 2)


def test_requeue_stale_jobs_command_prints_what_it_did(stale_after, enqueued):
    stale = JobFactory(status=JobStatus.PROCESSING, attempts=1)
    spent = JobFactory(status=JobStatus.PROCESSING, attempts=3)
    lost = JobFactory()
    age(stale, stale_after + 1)
    age(spent, stale_after + 1)
    age(lost, 11, "created_at", "updated_at")
    out = StringIO()

    call_command("requeue_stale_jobs", stdout=out)

    assert out.getvalue() == "requeued 1, failed 1, re-enqueued 1\n"
    assert Job.objects.get(pk=spent.pk).status == JobStatus.FAILED


# === Without a broker ============================================================


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_without_redis_a_submitted_job_is_transcribed_on_a_thread_of_this_process(tiny_model, licensed_user):
    job = submit(licensed_user)  # commits, so the on_commit hook hands it to the thread

    done = wait_until(
        lambda: Job.objects.filter(pk=job.pk, status__in=[JobStatus.DONE, JobStatus.FAILED]).first(),
        timeout=60,
        describe=lambda: f"job is {Job.objects.get(pk=job.pk).status}",
    )
    # The runner thread keeps its database connection; close it so the test
    # database can be flushed and dropped.
    dispatch._executor().submit(connections.close_all).result(timeout=10)

    assert (done.status, done.progress, done.attempts) == (JobStatus.DONE, 100, 1)
    assert done.enqueued_at is not None
    assert set(artifact_paths(done)) == RESULT_TYPES | {ArtifactType.AUDIO}


def test_without_redis_enqueuing_a_waiting_job_again_queues_it_once(monkeypatch):
    ran: list[str] = []
    monkeypatch.setattr(tasks, "run_in_process", ran.append)
    job = JobFactory()
    gate = threading.Event()
    busy = dispatch._executor().submit(gate.wait, 10)  # the runner is busy with another job

    assert dispatch.enqueue_job(job.pk) is True
    assert dispatch.enqueue_job(job.pk) is True  # the sweep finds it still waiting
    gate.set()
    busy.result(timeout=10)
    wait_until(lambda: str(job.pk) not in dispatch._local_jobs, timeout=10)

    assert ran == [str(job.pk)]
    dispatch.enqueue_job(job.pk)  # once it has run, a new request runs it again
    wait_until(lambda: len(ran) == 2, timeout=10)


@pytest.mark.parametrize("overrides", [{"REDIS_URL": "redis://127.0.0.1:1/0"}, {"REQUEUE_SWEEP_SECONDS": 0}])
def test_no_sweeper_thread_runs_with_a_broker_or_with_the_sweep_off(settings, overrides):
    for name, value in overrides.items():
        setattr(settings, name, value)

    assert dispatch.start_local_sweeper() is None


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_without_redis_the_sweeper_thread_finishes_jobs_a_restart_interrupted(
    tiny_model, licensed_user, settings, stale_after, monkeypatch
):
    # Given a queued job and a processing one, both left by a process that is gone
    monkeypatch.setattr(dispatch, "enqueue_job", lambda job_id: True)
    waiting, interrupted = submit(licensed_user), submit(licensed_user)
    monkeypatch.undo()
    age(waiting, 3600, "enqueued_at", "updated_at")
    assert services.claim_job(interrupted.pk) == 1
    age(interrupted, stale_after + 1)
    settings.REQUEUE_SWEEP_SECONDS = 1

    # When this process starts its sweeper
    sweeper = dispatch.start_local_sweeper()
    try:
        assert dispatch.start_local_sweeper() is sweeper  # one per process
        done = wait_until(
            lambda: Job.objects.filter(pk__in=[waiting.pk, interrupted.pk], status=JobStatus.DONE).count() == 2,
            timeout=90,
            describe=lambda: str(list(Job.objects.values_list("status", "attempts"))),
        )
    finally:
        dispatch.stop_local_sweeper()
        dispatch._executor().submit(connections.close_all).result(timeout=10)

    # Then both are transcribed, the interrupted one on its second attempt
    assert done and not sweeper.is_alive()
    assert Job.objects.get(pk=waiting.pk).attempts == 1
    assert Job.objects.get(pk=interrupted.pk).attempts == 2
    assert set(artifact_paths(interrupted)) == RESULT_TYPES | {ArtifactType.AUDIO}


# === The API refuses what the model cannot do ======================================


@pytest.mark.parametrize(
    "fields, detail",
    [
        ({"language": "es"}, "model tiny.en is English-only; language must be 'en' or omitted"),
        ({"mode": "translate"}, "model tiny.en is English-only and cannot translate"),
    ],
    ids=["language-es", "translate"],
)
def test_post_asking_an_english_only_model_for_another_language_is_refused(
    api_client, licensed_user, media_files, fields, detail
):
    api_client.force_authenticate(licensed_user)

    with open(SPEECH_WAV, "rb") as audio:
        response = api_client.post(
            "/api/transcriptions", {"audio": audio, "model_name": "tiny.en", **fields}, format="multipart"
        )

    assert response.status_code == 400
    assert response.json() == {"detail": detail, "code": "invalid"}
    assert not Job.objects.exists()
    assert media_files() == []
