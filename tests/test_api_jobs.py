"""Transcriptions API: upload, validation, licenses, idempotency, list, detail, delete, downloads, errors.

Jobs created through POST stay queued here: the service enqueues them with
transaction.on_commit, and a `db` test never commits, so no worker runs.
"""

import io
import os
import threading
import uuid
import wave
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db import DatabaseError, InterfaceError, OperationalError, ProgrammingError, connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from knox.models import AuthToken
from rest_framework.test import APIClient

from tests.factories import AdminFactory, FileArtifactFactory, JobFactory, LicenseFactory, UserFactory
from transcriptions import dispatch, services
from transcriptions.models import ArtifactType, FileArtifact, Job, JobMode, JobStatus

pytestmark = pytest.mark.django_db

FIXTURES = Path(__file__).parent / "fixtures"
WAV = (FIXTURES / "speech_en.wav").read_bytes()
MP3 = (FIXTURES / "speech_en.mp3").read_bytes()
LIST_URL = "/api/transcriptions"
BASE = "http://testserver/api/transcriptions"
NOT_FOUND = {"detail": "not found"}


def _wav_duration_ms(data: bytes) -> int:
    with wave.open(io.BytesIO(data)) as reader:
        return round(reader.getnframes() / reader.getframerate() * 1000)


WAV_DURATION_MS = _wav_duration_ms(WAV)  # 5242


def silent_wav(seconds: float, rate: int = 16000) -> bytes:
    """Return a mono 16-bit WAV of silence: real, decodable audio of a chosen size."""
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as writer:
        writer.setnchannels(1)
        writer.setsampwidth(2)
        writer.setframerate(rate)
        writer.writeframes(b"\x00\x00" * int(seconds * rate))
    return buffer.getvalue()


def audio_file(content: bytes = WAV, name: str = "speech.wav") -> io.BytesIO:
    upload = io.BytesIO(content)
    upload.name = name
    return upload


def client_for(user) -> APIClient:
    """Return an API client holding a fresh bearer token of the user."""
    _, token = AuthToken.objects.create(user=user)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    return client


def drf_time(value: datetime) -> str:
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def job_out(job: Job) -> dict:
    """Return the JobOut body the API must render for this job, read afresh from the database."""
    job = Job.objects.get(pk=job.pk)
    return {
        "id": str(job.pk),
        "status": job.status,
        "progress": job.progress,
        "model_name": job.model_name,
        "mode": job.mode,
        "language": job.language,
        "audio_duration_ms": job.audio_duration_ms,
        "processing_time_ms": job.processing_time_ms,
        "error_message": job.error_message,
        "created_at": drf_time(job.created_at),
        "updated_at": drf_time(job.updated_at),
        "artifacts": [
            {"type": a.type, "size_bytes": a.size_bytes, "url": f"/api/transcriptions/{job.pk}/artifacts/{a.type}"}
            for a in sorted(job.artifacts.all(), key=lambda a: a.type)
        ],
    }


def make_jobs(owner, count: int, **fields) -> list[Job]:
    """Insert `count` jobs one second apart and return them newest first."""
    now = timezone.now()
    jobs = [
        Job(owner=owner, model_name="tiny.en", created_at=now - timedelta(seconds=i), **fields) for i in range(count)
    ]
    return Job.objects.bulk_create(jobs)


def stored_artifact(job: Job, type_: str, content: bytes, extension: str = "bin") -> FileArtifact:
    name = default_storage.save(f"jobs/{job.pk}/{type_}.{extension}", ContentFile(content))
    return FileArtifactFactory(job=job, type=type_, path=name, size_bytes=len(content))


def ids(response) -> list[str]:
    return [row["id"] for row in response.json()]


@pytest.fixture(autouse=True)
def _fast_password_hasher(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def client(licensed_user) -> APIClient:
    """An authenticated client of a user with an unrestricted license."""
    return client_for(licensed_user)


@pytest.fixture
def post_job(client):
    """Return a function that uploads audio (the 5.2 s WAV by default) with optional form fields."""

    def post(content: bytes = WAV, name: str = "speech.wav", *, url: str = LIST_URL, api=None, headers=None, **fields):
        data = {"audio": audio_file(content, name), **fields}
        return (api or client).post(url, data, format="multipart", **(headers or {}))

    return post


def licensed(**features):
    """Return a user whose active license has these features."""
    return LicenseFactory(features=features).assigned_to_user


@pytest.fixture
def multilingual_model(settings, tmp_path) -> str:
    """Install a second, multilingual model folder; nothing loads it, since no worker runs."""
    folder = tmp_path / "models" / "small"
    folder.mkdir(parents=True)
    (folder / "model.bin").write_bytes(b"")
    settings.WHISPER_MODELS_DIR = str(tmp_path / "models")
    return "small"


def assert_nothing_left(media_files) -> None:
    assert Job.objects.count() == 0
    assert FileArtifact.objects.count() == 0
    assert media_files() == []


# === POST /api/transcriptions ========================================================


def test_create_answers_201_with_the_job(post_job, licensed_user):
    response = post_job()

    assert response.status_code == 201
    assert response["Content-Type"] == "application/json"
    job = Job.objects.get()
    assert job.owner == licensed_user
    assert response.json() == job_out(job)


def test_create_body_has_every_jobout_field_with_queued_defaults(post_job):
    body = post_job().json()

    job_id = body["id"]
    assert body == {
        "id": job_id,
        "status": "queued",
        "progress": 0,
        "model_name": "tiny.en",
        "mode": "transcribe",
        "language": None,
        "audio_duration_ms": WAV_DURATION_MS,
        "processing_time_ms": None,
        "error_message": None,
        "created_at": body["created_at"],
        "updated_at": body["updated_at"],
        "artifacts": [
            {"type": "audio", "size_bytes": len(WAV), "url": f"/api/transcriptions/{job_id}/artifacts/audio"}
        ],
    }
    uuid.UUID(job_id)
    assert abs(datetime.fromisoformat(body["created_at"]) - timezone.now()) < timedelta(seconds=30)


def test_create_sets_location_header_to_the_job(post_job):
    response = post_job()

    assert response["Location"] == f"/api/transcriptions/{response.json()['id']}"
    assert "Idempotent-Replayed" not in response


def test_create_uses_default_model_name_setting(post_job, settings):
    assert settings.DEFAULT_MODEL_NAME == "tiny.en"

    response = post_job()

    assert response.json()["model_name"] == "tiny.en"


def test_create_stores_fields_given(post_job):
    response = post_job(model_name="tiny.en", language="EN", mode="transcribe")

    assert response.status_code == 201
    job = Job.objects.get()
    assert (job.model_name, job.language, job.mode) == ("tiny.en", "en", JobMode.TRANSCRIBE)
    assert response.json()["language"] == "en"


def test_create_with_blank_language_means_detect(post_job):
    response = post_job(language="")

    assert response.status_code == 201
    assert Job.objects.get().language is None


def test_create_stores_audio_under_a_server_made_name(post_job, media_files):
    response = post_job()

    job_id = response.json()["id"]
    assert media_files() == [f"jobs/{job_id}/audio.wav"]
    artifact = FileArtifact.objects.get()
    assert (artifact.type, artifact.path, artifact.size_bytes) == ("audio", f"jobs/{job_id}/audio.wav", len(WAV))
    with default_storage.open(artifact.path, "rb") as stored:
        assert stored.read() == WAV


def test_create_names_the_file_after_its_container_not_the_client_extension(post_job, media_files):
    response = post_job(MP3, name="recording.wav")

    assert response.status_code == 201
    assert media_files() == [f"jobs/{response.json()['id']}/audio.mp3"]


@pytest.mark.parametrize("name", ["../../etc/passwd", "/etc/passwd", "..\\..\\boot.ini", "a" * 300 + ".wav", "x.php"])
def test_create_ignores_a_hostile_client_filename(post_job, media_files, name):
    response = post_job(name=name)

    assert response.status_code == 201
    assert media_files() == [f"jobs/{response.json()['id']}/audio.wav"]


def _multipart_with_raw_filename(filename: bytes, content: bytes = WAV) -> tuple[bytes, str]:
    boundary = "test-boundary-7MA4YWxk"
    body = (
        f"--{boundary}\r\n".encode()
        + b'Content-Disposition: form-data; name="audio"; filename="'
        + filename
        + b'"\r\n'
        + b"Content-Type: audio/wav\r\n\r\n"
        + content
        + f"\r\n--{boundary}--\r\n".encode()
    )
    return body, f"multipart/form-data; boundary={boundary}"


def test_create_ignores_a_non_ascii_utf8_filename(client, media_files):
    body, content_type = _multipart_with_raw_filename("../résumé 日本語.wav".encode())

    response = client.generic("POST", LIST_URL, body, content_type=content_type)

    assert response.status_code == 201
    assert media_files() == [f"jobs/{response.json()['id']}/audio.wav"]


def test_create_with_a_filename_that_is_not_utf8_answers_400_json(client, media_files):
    # Django's multipart parser drops a part whose headers are not UTF-8, so
    # the upload is refused as malformed; it must not be a 5xx or leave a file.
    body, content_type = _multipart_with_raw_filename(b"\xff\xfe../r\xe9sum\xe9.wav")

    response = client.generic("POST", LIST_URL, body, content_type=content_type)

    assert response.status_code == 400
    assert response["Content-Type"] == "application/json"
    assert response.json()["detail"].startswith("Multipart form parse error")
    assert_nothing_left(media_files)


def test_create_with_trailing_slash_answers_201_without_redirect(post_job):
    response = post_job(url=LIST_URL + "/")

    assert response.status_code == 201
    assert Job.objects.count() == 1


def test_create_leaves_the_job_queued_and_unpublished(post_job):
    post_job()

    job = Job.objects.get()
    assert job.status == JobStatus.QUEUED
    assert job.enqueued_at is None  # on_commit never ran inside the test transaction


def test_create_enqueues_the_job_once_the_transaction_commits(post_job, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = post_job()

    assert response.status_code == 201
    assert len(callbacks) == 1


# --- Validation: 400 and nothing left behind -------------------------------------------


def test_create_without_audio_answers_400(client, media_files):
    response = client.post(LIST_URL, {"model_name": "tiny.en"}, format="multipart")

    assert response.status_code == 400
    assert response.json() == {
        "detail": "audio: No file was submitted.",
        "code": "invalid",
        "errors": {"audio": ["No file was submitted."]},
    }
    assert_nothing_left(media_files)


def test_create_with_an_empty_file_answers_400(post_job, media_files):
    response = post_job(b"")

    assert response.status_code == 400
    assert response.json() == {
        "detail": "audio: The submitted file is empty.",
        "code": "invalid",
        "errors": {"audio": ["The submitted file is empty."]},
    }
    assert_nothing_left(media_files)


def test_create_with_audio_as_a_plain_field_answers_400(client, media_files):
    response = client.post(LIST_URL, {"audio": "not a file"}, format="multipart")

    assert response.status_code == 400
    assert set(response.json()["errors"]) == {"audio"}
    assert_nothing_left(media_files)


@pytest.mark.parametrize(
    "content, name",
    [
        pytest.param(b"This is a text file, not audio.\n" * 50, "notes.mp3", id="text-renamed-mp3"),
        pytest.param(os.urandom(4096), "noise.wav", id="random-bytes"),
        pytest.param(WAV[:44], "header-only.wav", id="wav-header-only"),
        pytest.param(b"RIFF\x00\x00\x00\x00WAVE", "truncated.wav", id="truncated-riff"),
        pytest.param(b"%PDF-1.4\n" + b"0" * 2000, "doc.wav", id="pdf"),
    ],
)
def test_create_with_undecodable_audio_answers_400(post_job, media_files, content, name):
    response = post_job(content, name=name)

    assert response.status_code == 400
    body = response.json()
    assert body["code"] == "invalid"
    assert "audio" in body["detail"].lower()
    assert_nothing_left(media_files)


def test_create_with_an_unknown_model_answers_400_naming_installed_models(post_job, media_files):
    response = post_job(model_name="large-v9")

    assert response.status_code == 400
    assert response.json() == {
        "detail": "model 'large-v9' is not installed; installed models: tiny.en",
        "code": "invalid",
    }
    assert_nothing_left(media_files)


def test_unknown_model_error_lists_every_installed_model(post_job, multilingual_model):
    response = post_job(model_name="medium")

    assert response.status_code == 400
    assert response.json()["detail"] == "model 'medium' is not installed; installed models: small, tiny.en"


def test_create_with_an_unsupported_language_code_answers_400(post_job, media_files):
    response = post_job(language="zz")

    assert response.status_code == 400
    assert response.json() == {
        "detail": "invalid language 'zz'; expected an ISO 639-1 code such as 'en'",
        "code": "invalid",
    }
    assert_nothing_left(media_files)


@pytest.mark.parametrize("language", ["english", "e", "e1", "en-US", "日本"])
def test_create_with_a_malformed_language_answers_400(post_job, media_files, language):
    response = post_job(language=language)

    assert response.status_code == 400
    body = response.json()
    assert body["code"] == "invalid"
    assert set(body["errors"]) == {"language"}
    assert body["detail"].startswith("language: ")
    assert_nothing_left(media_files)


def test_create_with_a_bad_mode_answers_400(post_job, media_files):
    response = post_job(mode="summarize")

    assert response.status_code == 400
    assert response.json() == {
        "detail": 'mode: "summarize" is not a valid choice.',
        "code": "invalid",
        "errors": {"mode": ['"summarize" is not a valid choice.']},
    }
    assert_nothing_left(media_files)


def test_create_with_english_only_model_and_other_language_answers_400(post_job, media_files):
    response = post_job(model_name="tiny.en", language="es")

    assert response.status_code == 400
    assert response.json() == {
        "detail": "model tiny.en is English-only; language must be 'en' or omitted",
        "code": "invalid",
    }
    assert_nothing_left(media_files)


def test_create_translate_with_english_only_model_answers_400(post_job, media_files):
    response = post_job(mode="translate")

    assert response.status_code == 400
    assert response.json() == {"detail": "model tiny.en is English-only and cannot translate", "code": "invalid"}
    assert_nothing_left(media_files)


def test_create_with_multilingual_model_accepts_other_languages_and_translate(post_job, multilingual_model):
    response = post_job(model_name=multilingual_model, language="es", mode="translate")

    assert response.status_code == 201
    assert (response.json()["model_name"], response.json()["language"], response.json()["mode"]) == (
        "small",
        "es",
        "translate",
    )


@pytest.mark.parametrize(
    "content",
    [
        # Refused on Content-Length, before the body is read.
        pytest.param(silent_wav(40), id="content-length-over-limit"),
        # Within the multipart slack on Content-Length, refused on the file's size.
        pytest.param(silent_wav((1024 * 1024 + 16 * 1024) / 32000), id="file-just-over-limit"),
    ],
)
def test_create_larger_than_max_upload_mb_answers_413(post_job, media_files, settings, content):
    settings.MAX_UPLOAD_MB = 1
    assert len(content) > 1024 * 1024

    response = post_job(content)

    assert response.status_code == 413
    assert response.json() == {"detail": "the upload is larger than 1 MB", "code": "too_large"}
    assert_nothing_left(media_files)


def test_create_just_under_max_upload_mb_answers_201(post_job, settings):
    settings.MAX_UPLOAD_MB = 1
    content = silent_wav((1024 * 1024 - 4096) / 32000)

    response = post_job(content)

    assert response.status_code == 201


# --- License rules -------------------------------------------------------------------------


def test_create_without_a_license_answers_403(user, post_job, media_files):
    response = post_job(api=client_for(user))

    assert response.status_code == 403
    assert response.json() == {"detail": "you have no active license; ask an operator for one", "code": "forbidden"}
    assert_nothing_left(media_files)


@pytest.mark.parametrize(
    "license_fields",
    [
        pytest.param({"is_revoked": True}, id="revoked"),
        pytest.param({"valid_from": -10, "valid_until": -1}, id="expired"),
        pytest.param({"valid_from": 1}, id="not-yet-valid"),
    ],
)
def test_create_with_an_inactive_license_answers_403(post_job, media_files, license_fields):
    now = timezone.now()
    fields = {k: now + timedelta(days=v) if k.startswith("valid") else v for k, v in license_fields.items()}
    owner = LicenseFactory(**fields).assigned_to_user

    response = post_job(api=client_for(owner))

    assert response.status_code == 403
    assert response.json()["code"] == "forbidden"
    assert_nothing_left(media_files)


def test_create_with_a_model_the_license_excludes_answers_403(post_job, media_files, multilingual_model):
    owner = licensed(models=["small"])

    response = post_job(api=client_for(owner), model_name="tiny.en")

    assert response.status_code == 403
    assert response.json() == {"detail": "your license does not allow model 'tiny.en'", "code": "forbidden"}
    assert_nothing_left(media_files)


def test_create_with_a_model_the_license_lists_answers_201(post_job):
    owner = licensed(models=["tiny.en"])

    assert post_job(api=client_for(owner)).status_code == 201


def test_create_translate_the_license_forbids_answers_403(post_job, media_files, multilingual_model):
    owner = licensed(translate=False)

    response = post_job(api=client_for(owner), model_name=multilingual_model, mode="translate")

    assert response.status_code == 403
    assert response.json() == {"detail": "your license does not allow translation", "code": "forbidden"}
    assert_nothing_left(media_files)


def test_model_capability_is_checked_before_the_license_translate_rule(post_job, media_files):
    # Order of checks: an English-only model cannot translate at all (400),
    # which is reported before the license's translate=false (403).
    owner = licensed(translate=False)

    response = post_job(api=client_for(owner), mode="translate")

    assert response.status_code == 400
    assert response.json()["detail"] == "model tiny.en is English-only and cannot translate"
    assert_nothing_left(media_files)


def test_create_longer_than_max_audio_seconds_answers_400_naming_the_limit(post_job, media_files):
    owner = licensed(max_audio_seconds=2)

    response = post_job(api=client_for(owner))

    assert response.status_code == 400
    assert response.json() == {
        "detail": "audio is 5 s long; your license allows at most 2 s per file",
        "code": "invalid",
    }
    assert_nothing_left(media_files)


def test_create_within_max_audio_seconds_answers_201(post_job):
    owner = licensed(max_audio_seconds=6)

    assert post_job(api=client_for(owner)).status_code == 201


@pytest.mark.parametrize("busy_status", [JobStatus.QUEUED, JobStatus.PROCESSING])
def test_create_beyond_max_concurrent_jobs_answers_429_naming_it(post_job, media_files, busy_status):
    owner = licensed(max_concurrent_jobs=1)
    busy = JobFactory(owner=owner, status=busy_status)

    response = post_job(api=client_for(owner))

    assert response.status_code == 429
    assert response.json() == {
        "detail": "max_concurrent_jobs: you already have 1 queued or processing job(s)",
        "code": "limit_exceeded",
    }
    assert list(Job.objects.all()) == [busy]
    assert media_files() == []


def test_finished_jobs_do_not_count_towards_max_concurrent_jobs(post_job):
    owner = licensed(max_concurrent_jobs=1)
    JobFactory(owner=owner, status=JobStatus.DONE)
    JobFactory(owner=owner, status=JobStatus.FAILED)

    assert post_job(api=client_for(owner)).status_code == 201


def test_other_users_jobs_do_not_count_towards_max_concurrent_jobs(post_job):
    owner = licensed(max_concurrent_jobs=1)
    JobFactory(status=JobStatus.QUEUED)

    assert post_job(api=client_for(owner)).status_code == 201


def test_create_beyond_monthly_audio_minutes_answers_429_naming_it(post_job, media_files):
    owner = licensed(monthly_audio_minutes=2)
    used = JobFactory(owner=owner, status=JobStatus.DONE, audio_duration_ms=115_000)

    response = post_job(api=client_for(owner))

    assert response.status_code == 429
    assert response.json() == {
        "detail": "monthly_audio_minutes: 1.9 of 2 minutes used this month; this file would exceed the limit",
        "code": "limit_exceeded",
    }
    assert list(Job.objects.all()) == [used]
    assert media_files() == []


def test_failed_jobs_do_not_count_towards_monthly_audio_minutes(post_job):
    owner = licensed(monthly_audio_minutes=2)
    JobFactory.create_batch(3, owner=owner, status=JobStatus.FAILED, audio_duration_ms=3_600_000)

    assert post_job(api=client_for(owner)).status_code == 201


def test_last_months_jobs_do_not_count_towards_monthly_audio_minutes(post_job):
    owner = licensed(monthly_audio_minutes=2)
    month_start = timezone.now().replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    JobFactory(
        owner=owner, status=JobStatus.DONE, audio_duration_ms=3_600_000, created_at=month_start - timedelta(seconds=1)
    )

    assert post_job(api=client_for(owner)).status_code == 201


# --- Idempotency-Key ---------------------------------------------------------------------


def test_repeated_post_with_idempotency_key_returns_the_first_job(post_job, media_files):
    first = post_job(headers={"HTTP_IDEMPOTENCY_KEY": "upload-1"})

    again = post_job(headers={"HTTP_IDEMPOTENCY_KEY": "upload-1"})

    assert first.status_code == again.status_code == 201
    assert again.json() == first.json()
    assert again["Location"] == first["Location"]
    assert again["Idempotent-Replayed"] == "true"
    assert Job.objects.count() == 1
    assert media_files() == [f"jobs/{first.json()['id']}/audio.wav"]


def test_idempotent_replay_is_not_refused_by_license_limits(post_job):
    owner = licensed(max_concurrent_jobs=1)
    api = client_for(owner)
    first = post_job(api=api, headers={"HTTP_IDEMPOTENCY_KEY": "k"})

    again = post_job(api=api, headers={"HTTP_IDEMPOTENCY_KEY": "k"})

    assert again.status_code == 201
    assert again.json()["id"] == first.json()["id"]


def test_different_idempotency_keys_create_different_jobs(post_job):
    first = post_job(headers={"HTTP_IDEMPOTENCY_KEY": "a"})
    second = post_job(headers={"HTTP_IDEMPOTENCY_KEY": "b"})

    assert first.json()["id"] != second.json()["id"]
    assert Job.objects.count() == 2


def test_same_idempotency_key_of_different_users_creates_different_jobs(post_job):
    first = post_job(api=client_for(licensed()), headers={"HTTP_IDEMPOTENCY_KEY": "shared"})
    second = post_job(api=client_for(licensed()), headers={"HTTP_IDEMPOTENCY_KEY": "shared"})

    assert first.status_code == second.status_code == 201
    assert first.json()["id"] != second.json()["id"]
    assert "Idempotent-Replayed" not in second


def test_idempotency_key_older_than_24_hours_creates_a_new_job(post_job):
    first = post_job(headers={"HTTP_IDEMPOTENCY_KEY": "old"})
    Job.objects.filter(pk=first.json()["id"]).update(created_at=timezone.now() - timedelta(hours=24, minutes=1))

    again = post_job(headers={"HTTP_IDEMPOTENCY_KEY": "old"})

    assert again.status_code == 201
    assert again.json()["id"] != first.json()["id"]
    assert Job.objects.count() == 2


def test_idempotency_key_of_255_characters_is_accepted(post_job):
    response = post_job(headers={"HTTP_IDEMPOTENCY_KEY": "k" * 255})

    assert response.status_code == 201
    assert Job.objects.get().idempotency_key == "k" * 255


@pytest.mark.parametrize("key", ["k" * 256, ""], ids=["256-chars", "empty"])
def test_idempotency_key_out_of_bounds_answers_400(post_job, media_files, key):
    response = post_job(headers={"HTTP_IDEMPOTENCY_KEY": key})

    assert response.status_code == 400
    assert response.json() == {"detail": "Idempotency-Key must be 1 to 255 characters", "code": "invalid"}
    assert_nothing_left(media_files)


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_concurrent_posts_with_one_idempotency_key_create_one_job(monkeypatch, media_files):
    # Each thread has its own database connection; the commits are real, so
    # publishing is replaced by a recorder (no worker, no Redis message).
    enqueued: list = []
    monkeypatch.setattr(dispatch, "enqueue_job", enqueued.append)
    owner = licensed()
    _, token = AuthToken.objects.create(user=owner)
    threads_count = 4
    barrier = threading.Barrier(threads_count)
    responses: list = [None] * threads_count

    def post(index: int) -> None:
        try:
            api = APIClient(raise_request_exception=False)
            api.credentials(HTTP_AUTHORIZATION=f"Bearer {token}", HTTP_IDEMPOTENCY_KEY="same-moment")
            barrier.wait(timeout=10)
            responses[index] = api.post(LIST_URL, {"audio": audio_file()}, format="multipart")
        finally:
            connection.close()

    threads = [threading.Thread(target=post, args=(i,)) for i in range(threads_count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert [r.status_code for r in responses] == [201] * threads_count
    job = Job.objects.get()
    assert {r.json()["id"] for r in responses} == {str(job.pk)}
    assert sum("Idempotent-Replayed" not in r for r in responses) == 1
    assert media_files() == [f"jobs/{job.pk}/audio.wav"]
    assert enqueued == [job.pk]


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_concurrent_posts_cannot_exceed_max_concurrent_jobs(monkeypatch, media_files):
    monkeypatch.setattr(dispatch, "enqueue_job", lambda job_id: None)
    owner = licensed(max_concurrent_jobs=1)
    _, token = AuthToken.objects.create(user=owner)
    threads_count = 4
    barrier = threading.Barrier(threads_count)
    responses: list = [None] * threads_count

    def post(index: int) -> None:
        try:
            api = APIClient(raise_request_exception=False)
            api.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
            barrier.wait(timeout=10)
            responses[index] = api.post(LIST_URL, {"audio": audio_file()}, format="multipart")
        finally:
            connection.close()

    threads = [threading.Thread(target=post, args=(i,)) for i in range(threads_count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert sorted(r.status_code for r in responses) == [201, 429, 429, 429]
    job = Job.objects.get()
    assert media_files() == [f"jobs/{job.pk}/audio.wav"]


# === GET /api/transcriptions =======================================================


def test_list_shows_only_own_jobs_newest_first(client, licensed_user, other_user):
    mine = make_jobs(licensed_user, 3)
    make_jobs(other_user, 2)

    response = client.get(LIST_URL)

    assert response.status_code == 200
    assert ids(response) == [str(j.pk) for j in mine]
    assert response["X-Total-Count"] == "3"


def test_list_renders_jobout_rows(client, licensed_user):
    job = JobFactory(owner=licensed_user, status=JobStatus.DONE, audio_duration_ms=5000, processing_time_ms=900)
    stored_artifact(job, ArtifactType.TRANSCRIPT_TXT, b"hello")
    stored_artifact(job, ArtifactType.AUDIO, WAV, "wav")

    response = client.get(LIST_URL)

    assert response.json() == [job_out(job)]
    assert [a["type"] for a in response.json()[0]["artifacts"]] == ["audio", "transcript_txt"]


def test_list_with_trailing_slash_answers_200_without_redirect(client, licensed_user):
    make_jobs(licensed_user, 1)

    response = client.get(LIST_URL + "/")

    assert response.status_code == 200
    assert len(response.json()) == 1


def test_list_of_no_jobs_is_an_empty_array_without_link(client):
    response = client.get(LIST_URL)

    assert response.status_code == 200
    assert response.json() == []
    assert response["X-Total-Count"] == "0"
    assert "Link" not in response


def test_list_filters_by_status(client, licensed_user):
    done = make_jobs(licensed_user, 2, status=JobStatus.DONE)
    make_jobs(licensed_user, 3, status=JobStatus.QUEUED)

    response = client.get(LIST_URL, {"status": "done"})

    assert ids(response) == [str(j.pk) for j in done]
    assert response["X-Total-Count"] == "2"


def test_list_default_limit_is_50(client, licensed_user):
    jobs = make_jobs(licensed_user, 51)

    response = client.get(LIST_URL)

    assert ids(response) == [str(j.pk) for j in jobs[:50]]
    assert response["X-Total-Count"] == "51"
    assert response["Link"] == f'<{BASE}?limit=50&offset=50>; rel="next"'


def test_list_accepts_limit_200(client, licensed_user):
    make_jobs(licensed_user, 3)

    response = client.get(LIST_URL, {"limit": 200})

    assert response.status_code == 200
    assert len(response.json()) == 3


@pytest.mark.parametrize(
    "query, field",
    [
        ({"limit": "0"}, "limit"),
        ({"limit": "201"}, "limit"),
        ({"limit": str(10**9)}, "limit"),
        ({"limit": "-1"}, "limit"),
        ({"limit": "abc"}, "limit"),
        ({"limit": "1.5"}, "limit"),
        ({"offset": "-1"}, "offset"),
        ({"offset": "abc"}, "offset"),
        ({"offset": str(2**63)}, "offset"),
        ({"status": "bogus"}, "status"),
        ({"status": "DONE"}, "status"),
        ({"before": "not-a-uuid"}, "before"),
    ],
)
def test_list_with_bad_query_answers_400_naming_the_field(client, query, field):
    response = client.get(LIST_URL, query)

    assert response.status_code == 400
    body = response.json()
    assert body["code"] == "invalid"
    assert set(body["errors"]) == {field}
    assert body["detail"].startswith(f"{field}: ")


def test_list_bad_status_answers_the_validation_error_body(client):
    response = client.get(LIST_URL, {"status": "bogus"})

    assert response.json() == {
        "detail": 'status: "bogus" is not a valid choice.',
        "code": "invalid",
        "errors": {"status": ['"bogus" is not a valid choice.']},
    }


# --- Link and X-Total-Count -----------------------------------------------------------


@pytest.fixture
def five_jobs(licensed_user) -> list[Job]:
    return make_jobs(licensed_user, 5)


def test_list_first_page_links_next_only(client, five_jobs):
    response = client.get(LIST_URL, {"limit": 2})

    assert ids(response) == [str(j.pk) for j in five_jobs[0:2]]
    assert response["X-Total-Count"] == "5"
    assert response["Link"] == f'<{BASE}?limit=2&offset=2>; rel="next"'


def test_list_middle_page_links_next_and_prev(client, five_jobs):
    response = client.get(LIST_URL, {"limit": 2, "offset": 2})

    assert ids(response) == [str(j.pk) for j in five_jobs[2:4]]
    assert response["X-Total-Count"] == "5"
    assert response["Link"] == (f'<{BASE}?limit=2&offset=4>; rel="next", <{BASE}?limit=2&offset=0>; rel="prev"')


def test_list_last_page_links_prev_only(client, five_jobs):
    response = client.get(LIST_URL, {"limit": 2, "offset": 4})

    assert ids(response) == [str(five_jobs[4].pk)]
    assert response["X-Total-Count"] == "5"
    assert response["Link"] == f'<{BASE}?limit=2&offset=2>; rel="prev"'


def test_list_single_page_has_no_link(client, five_jobs):
    response = client.get(LIST_URL, {"limit": 5})

    assert len(response.json()) == 5
    assert "Link" not in response


def test_list_page_past_the_end_is_empty_and_links_back_to_the_last_page(client, five_jobs):
    response = client.get(LIST_URL, {"limit": 2, "offset": 10})

    assert response.status_code == 200
    assert response.json() == []
    assert response["X-Total-Count"] == "5"
    assert response["Link"] == f'<{BASE}?limit=2&offset=3>; rel="prev"'


def test_list_links_keep_the_status_filter(client, licensed_user):
    make_jobs(licensed_user, 3, status=JobStatus.DONE)
    make_jobs(licensed_user, 3, status=JobStatus.FAILED)

    response = client.get(LIST_URL, {"status": "done", "limit": 1, "offset": 1})

    assert response["X-Total-Count"] == "3"
    assert response["Link"] == (
        f'<{BASE}?status=done&limit=1&offset=2>; rel="next", <{BASE}?status=done&limit=1&offset=0>; rel="prev"'
    )


def test_list_link_urls_lead_to_the_adjacent_pages(client, five_jobs):
    seen = []
    url = f"{LIST_URL}?limit=2"
    while url:
        response = client.get(url)
        seen += ids(response)
        links = dict(
            (part.split("; ")[1], part.split("; ")[0].strip("<>"))
            for part in response.get("Link", "").split(", ")
            if part
        )
        url = links.get('rel="next"')

    assert seen == [str(j.pk) for j in five_jobs]


# --- Keyset pagination: before=<id> ---------------------------------------------------


def test_list_before_returns_older_jobs_and_a_next_link(client, five_jobs):
    response = client.get(LIST_URL, {"before": str(five_jobs[1].pk), "limit": 2})

    assert response.status_code == 200
    assert ids(response) == [str(j.pk) for j in five_jobs[2:4]]
    assert response["Link"] == f'<{BASE}?limit=2&before={five_jobs[3].pk}>; rel="next"'


def test_list_before_last_page_has_no_link(client, five_jobs):
    response = client.get(LIST_URL, {"before": str(five_jobs[2].pk), "limit": 5})

    assert ids(response) == [str(j.pk) for j in five_jobs[3:]]
    assert "Link" not in response


def test_list_before_orders_jobs_with_equal_created_at_by_id(client, licensed_user):
    same_time = timezone.now()
    jobs = Job.objects.bulk_create(
        [Job(owner=licensed_user, model_name="tiny.en", created_at=same_time) for _ in range(4)]
    )
    expected = sorted((str(j.pk) for j in jobs), key=lambda pk: uuid.UUID(pk), reverse=True)
    first = client.get(LIST_URL, {"limit": 2})

    rest = client.get(LIST_URL, {"limit": 2, "before": ids(first)[-1]})

    assert ids(first) + ids(rest) == expected


def test_list_before_with_offset_answers_400(client, five_jobs):
    response = client.get(LIST_URL, {"before": str(five_jobs[0].pk), "offset": 1})

    assert response.status_code == 400
    assert response.json() == {"detail": "use either before or offset, not both", "code": "invalid"}


def test_list_before_another_users_job_answers_400(client, other_user):
    foreign = JobFactory(owner=other_user)

    response = client.get(LIST_URL, {"before": str(foreign.pk)})

    assert response.status_code == 400
    assert response.json() == {"detail": "before must be the id of one of your jobs", "code": "invalid"}


def test_list_before_unknown_id_answers_400(client):
    response = client.get(LIST_URL, {"before": str(uuid.uuid4())})

    assert response.status_code == 400
    assert response.json()["detail"] == "before must be the id of one of your jobs"


# --- Query count ------------------------------------------------------------------------


def _jobs_with_artifacts(owner, count: int) -> None:
    jobs = make_jobs(owner, count, status=JobStatus.DONE)
    FileArtifact.objects.bulk_create(
        FileArtifact(job=job, type=t, path=f"jobs/{job.pk}/{t}", size_bytes=1)
        for job in jobs
        for t in (ArtifactType.AUDIO, ArtifactType.TRANSCRIPT_TXT)
    )


def _list_queries(owner, limit: int) -> list[str]:
    api = client_for(owner)
    with CaptureQueriesContext(connection) as queries:
        response = api.get(LIST_URL, {"limit": limit})
    assert response.status_code == 200
    assert len(response.json()) == limit
    return [q["sql"] for q in queries.captured_queries]


def test_list_query_count_is_the_same_for_1_and_200_jobs():
    small, large = UserFactory(), UserFactory()
    _jobs_with_artifacts(small, 1)
    _jobs_with_artifacts(large, 200)

    one = _list_queries(small, 1)
    two_hundred = _list_queries(large, 200)

    assert len(one) == len(two_hundred)
    # token with its user; the page with its artifacts and the total in one statement
    assert len(one) == 2, "\n".join(one)


# === GET /api/transcriptions/<id> ===================================================


def test_detail_returns_the_owners_job(client, licensed_user):
    job = JobFactory(owner=licensed_user, status=JobStatus.FAILED, error_message="boom", language="en")
    stored_artifact(job, ArtifactType.AUDIO, WAV, "wav")

    response = client.get(f"{LIST_URL}/{job.pk}")

    assert response.status_code == 200
    assert response.json() == job_out(job)


def test_detail_with_trailing_slash_answers_200_without_redirect(client, licensed_user):
    job = JobFactory(owner=licensed_user)

    response = client.get(f"{LIST_URL}/{job.pk}/")

    assert response.status_code == 200
    assert response.json()["id"] == str(job.pk)


def test_detail_accepts_an_uppercase_id(client, licensed_user):
    job = JobFactory(owner=licensed_user)

    response = client.get(f"{LIST_URL}/{str(job.pk).upper()}")

    assert response.status_code == 200


@pytest.mark.parametrize(
    "job_id",
    [
        "not-a-uuid",
        "12345",
        "00000000-0000-0000-0000-00000000000g",
        str(uuid.uuid4()),
        "%20",
        "..",
        "' OR 1=1 --",
    ],
)
def test_detail_of_a_missing_or_malformed_id_answers_404(client, job_id):
    response = client.get(f"{LIST_URL}/{job_id}")

    assert response.status_code == 404
    assert response.json() == NOT_FOUND


# === DELETE /api/transcriptions/<id> ================================================


@pytest.mark.parametrize("status", [JobStatus.QUEUED, JobStatus.DONE, JobStatus.FAILED])
def test_delete_removes_the_job_its_artifacts_and_files(
    client, licensed_user, media_files, django_capture_on_commit_callbacks, status
):
    job = JobFactory(owner=licensed_user, status=status)
    stored_artifact(job, ArtifactType.AUDIO, WAV, "wav")
    stored_artifact(job, ArtifactType.TRANSCRIPT_TXT, b"hello")
    kept = JobFactory(owner=licensed_user)
    stored_artifact(kept, ArtifactType.AUDIO, WAV, "wav")

    with django_capture_on_commit_callbacks(execute=True):
        response = client.delete(f"{LIST_URL}/{job.pk}")

    assert response.status_code == 204
    assert response.content == b""
    assert list(Job.objects.all()) == [kept]
    assert list(FileArtifact.objects.values_list("job_id", flat=True)) == [kept.pk]
    assert media_files() == [f"jobs/{kept.pk}/audio.wav"]
    assert not default_storage.exists(f"jobs/{job.pk}")


def test_delete_of_an_uploaded_job_removes_its_audio(post_job, client, media_files, django_capture_on_commit_callbacks):
    job_id = post_job().json()["id"]

    with django_capture_on_commit_callbacks(execute=True):
        response = client.delete(f"{LIST_URL}/{job_id}/")

    assert response.status_code == 204
    assert_nothing_left(media_files)


def test_delete_of_a_processing_job_answers_409_and_keeps_it(
    client, licensed_user, media_files, django_capture_on_commit_callbacks
):
    job = JobFactory(owner=licensed_user, status=JobStatus.PROCESSING)
    stored_artifact(job, ArtifactType.AUDIO, WAV, "wav")

    with django_capture_on_commit_callbacks(execute=True):
        response = client.delete(f"{LIST_URL}/{job.pk}")

    assert response.status_code == 409
    assert response.json() == {
        "detail": "the job is being processed; delete it once it is done or failed",
        "code": "conflict",
    }
    assert Job.objects.filter(pk=job.pk).exists()
    assert media_files() == [f"jobs/{job.pk}/audio.wav"]


@pytest.mark.parametrize("job_id", ["nope", str(uuid.uuid4())])
def test_delete_of_a_missing_job_answers_404(client, job_id):
    response = client.delete(f"{LIST_URL}/{job_id}")

    assert response.status_code == 404
    assert response.json() == NOT_FOUND


# === GET /api/transcriptions/<id>/artifacts/<type> ==================================


@pytest.mark.parametrize(
    "type_, content, content_type, extension",
    [
        (ArtifactType.TRANSCRIPT_TXT, "Hello wörld.\n".encode(), "text/plain; charset=utf-8", "txt"),
        (ArtifactType.RESULT_JSON, b'{"text": "hello"}', "application/json", "json"),
        (ArtifactType.SUBTITLES_SRT, b"1\n00:00:00,000 --> 00:00:01,000\nhello\n", "application/x-subrip", "srt"),
        (ArtifactType.SUBTITLES_VTT, b"WEBVTT\n\n00:00.000 --> 00:01.000\nhello\n", "text/vtt; charset=utf-8", "vtt"),
    ],
)
def test_artifact_download_has_its_content_type_and_filename(
    client, licensed_user, type_, content, content_type, extension
):
    job = JobFactory(owner=licensed_user, status=JobStatus.DONE)
    stored_artifact(job, type_, content)

    response = client.get(f"{LIST_URL}/{job.pk}/artifacts/{type_}")

    assert response.status_code == 200
    assert response.streaming
    assert response["Content-Type"] == content_type
    assert response["Content-Disposition"] == f'attachment; filename="{job.pk}-{type_}.{extension}"'
    assert response["Content-Length"] == str(len(content))
    assert b"".join(response.streaming_content) == content
    response.close()


@pytest.mark.parametrize(
    "content, extension, content_type",
    [(WAV, "wav", "audio/wav"), (MP3, "mp3", "audio/mpeg")],
)
def test_audio_download_has_its_audio_type(client, licensed_user, content, extension, content_type):
    job = JobFactory(owner=licensed_user)
    stored_artifact(job, ArtifactType.AUDIO, content, extension)

    response = client.get(f"{LIST_URL}/{job.pk}/artifacts/audio")

    assert response.status_code == 200
    assert response["Content-Type"] == content_type
    assert response["Content-Disposition"] == f'attachment; filename="{job.pk}-audio.{extension}"'
    assert b"".join(response.streaming_content) == content
    response.close()


def test_uploaded_audio_downloads_unchanged(post_job, client):
    job_id = post_job().json()["id"]

    response = client.get(f"{LIST_URL}/{job_id}/artifacts/audio/")

    assert response.status_code == 200
    assert response["Content-Type"] == "audio/wav"
    assert b"".join(response.streaming_content) == WAV
    response.close()


@pytest.mark.parametrize("type_", ["bogus", "AUDIO", "..", "transcript_txt.txt", "__class__"])
def test_artifact_of_an_unknown_type_answers_404(client, licensed_user, type_):
    job = JobFactory(owner=licensed_user)
    stored_artifact(job, ArtifactType.AUDIO, WAV, "wav")

    response = client.get(f"{LIST_URL}/{job.pk}/artifacts/{type_}")

    assert response.status_code == 404
    assert response.json() == NOT_FOUND


def test_artifact_not_produced_yet_answers_404(client, licensed_user):
    job = JobFactory(owner=licensed_user)
    stored_artifact(job, ArtifactType.AUDIO, WAV, "wav")

    response = client.get(f"{LIST_URL}/{job.pk}/artifacts/transcript_txt")

    assert response.status_code == 404
    assert response.json() == NOT_FOUND


def test_artifact_whose_file_is_missing_from_storage_answers_404(client, licensed_user):
    job = JobFactory(owner=licensed_user, status=JobStatus.DONE)
    FileArtifactFactory(job=job, type=ArtifactType.TRANSCRIPT_TXT, path=f"jobs/{job.pk}/gone.txt", size_bytes=3)

    response = client.get(f"{LIST_URL}/{job.pk}/artifacts/transcript_txt")

    assert response.status_code == 404
    assert response.json() == NOT_FOUND


def test_artifact_of_a_missing_job_answers_404(client):
    response = client.get(f"{LIST_URL}/{uuid.uuid4()}/artifacts/audio")

    assert response.status_code == 404
    assert response.json() == NOT_FOUND


# === GET /api/models =================================================================


def test_models_lists_installed_models_allowed_by_the_license(client):
    response = client.get("/api/models")

    assert response.status_code == 200
    assert response.json() == [{"name": "tiny.en", "english_only": True, "allowed": True, "default": True}]


def test_models_with_trailing_slash_answers_200(client):
    assert client.get("/api/models/").status_code == 200


def test_models_marks_models_outside_the_license_as_not_allowed(multilingual_model):
    api = client_for(licensed(models=["small"]))

    response = api.get("/api/models")

    assert response.json() == [
        {"name": "small", "english_only": False, "allowed": True, "default": False},
        {"name": "tiny.en", "english_only": True, "allowed": False, "default": True},
    ]


def test_models_without_a_license_allows_none(user):
    response = client_for(user).get("/api/models")

    assert response.status_code == 200
    assert response.json() == [{"name": "tiny.en", "english_only": True, "allowed": False, "default": True}]


# === Authorization matrix ===========================================================

ACTORS = ["owner", "other", "admin", "anonymous"]


@pytest.fixture
def matrix(licensed_user):
    """A job of the owner with a transcript, and a client for each actor."""
    job = JobFactory(owner=licensed_user, status=JobStatus.DONE)
    stored_artifact(job, ArtifactType.TRANSCRIPT_TXT, b"hello")
    admin = AdminFactory()
    LicenseFactory(assigned_to_user=admin)
    other = licensed()
    clients = {
        "owner": client_for(licensed_user),
        "other": client_for(other),
        "admin": client_for(admin),
        "anonymous": APIClient(),
    }
    return job, clients


# (method, url template, owner's status); anyone else's is 404, anonymous is 401.
JOB_ROUTES = [
    ("get", "/api/transcriptions/{id}", 200),
    ("get", "/api/transcriptions/{id}/", 200),
    ("get", "/api/transcriptions/{id}/artifacts/transcript_txt", 200),
    ("get", "/api/transcriptions/{id}/artifacts/transcript_txt/", 200),
    ("delete", "/api/transcriptions/{id}", 204),
    ("delete", "/api/transcriptions/{id}/", 204),
]


@pytest.mark.parametrize("actor", ACTORS)
@pytest.mark.parametrize("method, template, owner_status", JOB_ROUTES)
def test_job_routes_answer_only_their_owner(matrix, actor, method, template, owner_status):
    job, clients = matrix

    response = getattr(clients[actor], method)(template.format(id=job.pk))

    expected = {"owner": owner_status, "other": 404, "admin": 404, "anonymous": 401}[actor]
    assert response.status_code == expected
    if expected == 404:
        assert response.json() == NOT_FOUND
    if actor != "owner":
        assert Job.objects.filter(pk=job.pk).exists()


@pytest.mark.parametrize("actor, expected", [("owner", 1), ("other", 0), ("admin", 0)])
def test_list_shows_each_user_only_their_own_jobs_admins_too(matrix, actor, expected):
    job, clients = matrix

    response = clients[actor].get(LIST_URL)

    assert response.status_code == 200
    assert ids(response) == ([str(job.pk)] if expected else [])
    assert response["X-Total-Count"] == str(expected)


def test_admin_lists_only_their_own_jobs(other_user):
    admin_job = JobFactory(owner=AdminFactory())
    JobFactory(owner=other_user)

    response = client_for(admin_job.owner).get(LIST_URL)

    assert ids(response) == [str(admin_job.pk)]


@pytest.mark.parametrize("actor", ["owner", "other", "admin"])
def test_any_licensed_user_may_create_jobs(matrix, post_job, actor):
    _, clients = matrix

    response = post_job(api=clients[actor])

    assert response.status_code == 201


@pytest.mark.parametrize(
    "method, url",
    [("get", LIST_URL), ("post", LIST_URL), ("get", "/api/models"), ("delete", "/api/auth/token")],
)
def test_collection_routes_refuse_anonymous_with_401(matrix, method, url):
    _, clients = matrix

    response = getattr(clients["anonymous"], method)(url)

    assert response.status_code == 401
    assert response.json() == {"detail": "Authentication credentials were not provided."}


def test_anonymous_upload_leaves_nothing_behind(media_files):
    response = APIClient().post(LIST_URL, {"audio": audio_file()}, format="multipart")

    assert response.status_code == 401
    assert_nothing_left(media_files)


# === Errors are JSON ==================================================================


@pytest.mark.parametrize("debug", [False, True])
@pytest.mark.parametrize(
    "url",
    ["/api/nope", "/api/transcriptions/x/y/z", "/api/transcriptions/x/artifacts", "/api/auth", "/api/"],
)
def test_unknown_api_path_answers_404_json(client, settings, debug, url):
    settings.DEBUG = debug

    response = client.get(url)

    assert response.status_code == 404
    assert response["Content-Type"] == "application/json"
    assert response.json() == NOT_FOUND


@pytest.mark.parametrize(
    "method, url, allowed",
    [
        ("put", "/api/transcriptions/{id}", "GET, DELETE, HEAD, OPTIONS"),
        ("patch", "/api/transcriptions/{id}", "GET, DELETE, HEAD, OPTIONS"),
        ("post", "/api/transcriptions/{id}", "GET, DELETE, HEAD, OPTIONS"),
        ("delete", "/api/transcriptions", "GET, POST, HEAD, OPTIONS"),
        ("put", "/api/transcriptions", "GET, POST, HEAD, OPTIONS"),
        ("delete", "/api/transcriptions/{id}/artifacts/audio", "GET, HEAD, OPTIONS"),
        ("post", "/api/models", "GET, HEAD, OPTIONS"),
    ],
)
def test_wrong_method_answers_405_json(client, licensed_user, method, url, allowed):
    job = JobFactory(owner=licensed_user)

    response = getattr(client, method)(url.format(id=job.pk))

    assert response.status_code == 405
    assert response.json() == {"detail": f'Method "{method.upper()}" not allowed.'}
    assert sorted(response["Allow"].split(", ")) == sorted(allowed.split(", "))
    assert Job.objects.filter(pk=job.pk).exists()


@pytest.mark.parametrize("debug", [False, True])
def test_unhandled_exception_answers_500_json_without_internals(client, settings, monkeypatch, debug):
    settings.DEBUG = debug

    def explode(*args, **kwargs):
        raise RuntimeError("secret: SELECT password FROM users")

    monkeypatch.setattr(services, "page_of_jobs_by_user", explode)
    client.raise_request_exception = False

    response = client.get(LIST_URL)

    assert response.status_code == 500
    assert response["Content-Type"] == "application/json"
    assert response.json() == {"detail": "internal error"}
    assert b"secret" not in response.content
    assert b"Traceback" not in response.content


@pytest.mark.parametrize("error", [OperationalError, InterfaceError])
def test_database_outage_in_a_service_answers_503_json(client, settings, monkeypatch, error):
    settings.DEBUG = False

    def outage(*args, **kwargs):
        raise error('could not connect to server: Connection refused\n\tIs the server running on host "db"?')

    monkeypatch.setattr(services, "get_job_for_owner", outage)
    client.raise_request_exception = False

    response = client.get(f"{LIST_URL}/{uuid.uuid4()}")

    assert response.status_code == 503
    assert response["Retry-After"] == "5"
    assert response.json() == {"detail": "the database is unavailable; try again shortly"}


def test_database_outage_during_authentication_answers_503_json(client, monkeypatch):
    from knox.auth import TokenAuthentication

    def outage(self, token):
        raise OperationalError("server closed the connection unexpectedly")

    monkeypatch.setattr(TokenAuthentication, "authenticate_credentials", outage)
    client.raise_request_exception = False

    response = client.get(LIST_URL)

    assert response.status_code == 503
    assert response.json() == {"detail": "the database is unavailable; try again shortly"}


def test_database_outage_during_upload_answers_503_and_leaves_no_file(post_job, monkeypatch, media_files):
    def outage(*args, **kwargs):
        raise OperationalError("terminating connection due to administrator command")

    monkeypatch.setattr(services, "add_artifact", outage)

    response = post_job()

    assert response.status_code == 503
    assert response.json() == {"detail": "the database is unavailable; try again shortly"}
    assert_nothing_left(media_files)


@pytest.mark.parametrize("error", [ProgrammingError, DatabaseError])
def test_other_database_errors_answer_500_json_without_sql(client, settings, monkeypatch, error):
    settings.DEBUG = False

    def broken(*args, **kwargs):
        raise error('relation "jobs" does not exist LINE 1: SELECT "jobs"."id" FROM "jobs"')

    monkeypatch.setattr(services, "page_of_jobs_by_user", broken)
    client.raise_request_exception = False

    response = client.get(LIST_URL)

    assert response.status_code == 500
    assert response.json() == {"detail": "internal error"}
    assert b"SELECT" not in response.content


@pytest.mark.parametrize("debug", [False, True])
@pytest.mark.parametrize("url", ["/api/health", "/api/transcriptions"])
def test_request_for_a_disallowed_host_answers_400_json(settings, debug, url):
    settings.DEBUG = debug

    response = APIClient().get(url, HTTP_HOST="evil.example")

    assert response.status_code == 400
    assert response["Content-Type"] == "application/json"
    assert response.json() == {"detail": "bad request"}


def test_upload_with_too_many_form_fields_answers_400_json(post_job, media_files, settings):
    fields = {f"extra{i}": "1" for i in range(settings.DATA_UPLOAD_MAX_NUMBER_FIELDS + 1)}

    response = post_job(**fields)

    assert response.status_code == 400
    assert response["Content-Type"] == "application/json"
    assert_nothing_left(media_files)


def test_upload_with_too_many_files_answers_400_json(client, media_files, settings):
    files = {f"audio{i}": audio_file(b"x", f"{i}.wav") for i in range(settings.DATA_UPLOAD_MAX_NUMBER_FILES + 1)}

    response = client.post(LIST_URL, files, format="multipart")

    assert response.status_code == 400
    assert response["Content-Type"] == "application/json"
    assert_nothing_left(media_files)


def test_upload_with_a_form_field_over_the_memory_limit_answers_4xx_json(post_job, media_files, settings):
    # Django refuses non-file fields over DATA_UPLOAD_MAX_MEMORY_SIZE (RequestDataTooBig): 400 or 413, never 500.
    response = post_job(model_name="x" * (settings.DATA_UPLOAD_MAX_MEMORY_SIZE + 1))

    assert response.status_code in (400, 413)
    assert response["Content-Type"] == "application/json"
    assert_nothing_left(media_files)


def test_list_with_too_many_query_parameters_answers_400_json(client, settings):
    query = "&".join(f"p{i}=1" for i in range(settings.DATA_UPLOAD_MAX_NUMBER_FIELDS + 1))

    response = client.get(f"{LIST_URL}?{query}")

    assert response.status_code == 400
    assert response["Content-Type"] == "application/json"
