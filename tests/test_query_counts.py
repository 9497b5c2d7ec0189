"""SQL query counts per endpoint, pinned: a change that adds a query per row fails here."""

import pytest
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db import connection
from django.test.utils import CaptureQueriesContext
from knox.models import AuthToken
from rest_framework.test import APIClient

from tests.factories import FileArtifactFactory, JobFactory, LicenseFactory
from transcriptions.models import ArtifactType, JobStatus

pytestmark = pytest.mark.django_db

SPEECH = "tests/fixtures/speech_en.mp3"


@pytest.fixture
def client_and_user():
    user = LicenseFactory().assigned_to_user
    _, token = AuthToken.objects.create(user=user)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    return client, user


def _jobs_with_artifacts(user, count: int):
    jobs = JobFactory.create_batch(count, owner=user, status=JobStatus.DONE)
    for job in jobs:
        for type_ in (ArtifactType.TRANSCRIPT_TXT, ArtifactType.SUBTITLES_SRT):
            FileArtifactFactory(job=job, type=type_)
    return jobs


def _count(client, method: str, path: str, **kwargs) -> tuple[int, int]:
    with CaptureQueriesContext(connection) as queries:
        response = getattr(client, method)(path, **kwargs)
    return response.status_code, len(queries)


def test_list_runs_the_same_queries_for_1_and_200_jobs(client_and_user):
    client, user = client_and_user
    _jobs_with_artifacts(user, 1)
    small = _count(client, "get", "/api/transcriptions?limit=200")
    _jobs_with_artifacts(user, 199)

    large = _count(client, "get", "/api/transcriptions?limit=200")

    # token with its user; one statement for the page, its artifacts and the total
    assert small == large == (200, 2)


def test_detail_runs_a_fixed_number_of_queries(client_and_user):
    client, user = client_and_user
    job = _jobs_with_artifacts(user, 1)[0]

    assert _count(client, "get", f"/api/transcriptions/{job.pk}") == (200, 3)


def test_artifact_download_runs_a_fixed_number_of_queries(client_and_user):
    client, user = client_and_user
    job = JobFactory(owner=user, status=JobStatus.DONE)
    name = default_storage.save(f"jobs/{job.pk}/transcript.txt", ContentFile(b"hello\n"))
    FileArtifactFactory(job=job, type=ArtifactType.TRANSCRIPT_TXT, path=name, size_bytes=6)

    assert _count(client, "get", f"/api/transcriptions/{job.pk}/artifacts/transcript_txt") == (200, 3)


def test_create_runs_a_fixed_number_of_queries_whatever_the_history(client_and_user):
    client, user = client_and_user
    with open(SPEECH, "rb") as audio:
        first = _count(client, "post", "/api/transcriptions", data={"audio": audio}, format="multipart")
    _jobs_with_artifacts(user, 50)

    with open(SPEECH, "rb") as audio:
        later = _count(client, "post", "/api/transcriptions", data={"audio": audio}, format="multipart")

    # token with its user; lock the user; license; insert job; insert artifact;
    # re-read the job and its artifacts; four savepoint statements of the nested atomic blocks
    assert first == later == (201, 11)
