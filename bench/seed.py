"""Users, licenses, tokens and jobs for the HTTP benchmarks (Django must be set up)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.utils import timezone
from knox.models import AuthToken

from accounts.models import User
from licenses import services as licenses
from transcriptions import formats
from transcriptions.management.commands.seed_demo import DEMO_TRANSCRIPT
from transcriptions.models import ArtifactType, FileArtifact, Job, JobStatus

LIST_USER_JOBS = 60
UPLOAD_USERS = 16


@dataclass
class ApiFixtures:
    list_token: str
    list_user_id: str
    detail_job_id: str
    upload_tokens: list[str]
    e2e_token: str


def licensed_user(email: str) -> tuple[User, str]:
    """Create a user with an unlimited license and return it with a fresh API token."""
    # No password: hashing one costs ~0.3 s of CPU and the bench signs in with tokens.
    user = User.objects.create_user(email=email, password=None)
    key = f"BENCH-{uuid.uuid4().hex[:16]}"
    licenses.upsert_license(key, "bench", {})
    licenses.assign_license_to_user(key, user)
    return user, token_for(user)


def token_for(user: User) -> str:
    """Return a new knox token for the user."""
    _, token = AuthToken.objects.create(user=user, expiry=settings.REST_KNOX["TOKEN_TTL"])
    return token


def _done_job_rows(owner: User, count: int) -> list[Job]:
    now = timezone.now()
    return [
        Job(
            owner=owner,
            status=JobStatus.DONE,
            model_name="tiny.en",
            language="en",
            audio_duration_ms=5000 + i,
            processing_time_ms=900 + i,
            progress=100,
            attempts=1,
            created_at=now - timedelta(minutes=i),
        )
        for i in range(count)
    ]


def _stored_outputs(job: Job) -> dict[str, str]:
    """Write the job's result files to storage; return their storage names by artifact type."""
    files = {
        ArtifactType.AUDIO: ("audio.mp3", (settings.BASE_DIR / "tests/fixtures/speech_en.mp3").read_bytes()),
        ArtifactType.RESULT_JSON: ("result.json", formats.to_json_bytes(DEMO_TRANSCRIPT)),
        ArtifactType.TRANSCRIPT_TXT: ("transcript.txt", formats.to_txt(DEMO_TRANSCRIPT).encode()),
        ArtifactType.SUBTITLES_SRT: ("subtitles.srt", formats.to_srt(DEMO_TRANSCRIPT).encode()),
        ArtifactType.SUBTITLES_VTT: ("subtitles.vtt", formats.to_vtt(DEMO_TRANSCRIPT).encode()),
    }
    return {
        type_: default_storage.save(f"jobs/{job.pk}/{name}", ContentFile(data)) for type_, (name, data) in files.items()
    }


def seed_api() -> ApiFixtures:
    """Create the list user (done jobs, five artifacts each), uploaders and the end-to-end user."""
    list_user, list_token = licensed_user("bench-list@example.com")
    jobs = Job.objects.bulk_create(_done_job_rows(list_user, LIST_USER_JOBS))
    newest = jobs[0]
    stored = _stored_outputs(newest)
    artifacts = []
    for job in jobs:
        for type_ in ArtifactType.values:
            path = stored[type_] if job is newest else f"jobs/{job.pk}/{type_}"
            artifacts.append(FileArtifact(job=job, type=type_, path=path, size_bytes=1024))
    FileArtifact.objects.bulk_create(artifacts)
    Job.objects.filter(pk=newest.pk).update(
        result_json_path=stored[ArtifactType.RESULT_JSON], transcript_txt_path=stored[ArtifactType.TRANSCRIPT_TXT]
    )
    upload_tokens = [licensed_user(f"bench-upload-{i}@example.com")[1] for i in range(UPLOAD_USERS)]
    _, e2e_token = licensed_user("bench-e2e@example.com")
    return ApiFixtures(
        list_token=list_token,
        list_user_id=str(list_user.pk),
        detail_job_id=str(newest.pk),
        upload_tokens=upload_tokens,
        e2e_token=e2e_token,
    )
