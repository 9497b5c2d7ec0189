"""The Django admin: who may log in, changelists, search, filters, actions, forms, query counts."""

from datetime import timedelta

import pytest
from django.contrib.messages import get_messages
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from accounts.models import Role, User
from licenses.models import License
from tests.factories import (
    DEFAULT_PASSWORD,
    AdminFactory,
    FileArtifactFactory,
    JobFactory,
    LicenseFactory,
    UserFactory,
)
from transcriptions.models import ArtifactType, FileArtifact, Job, JobMode, JobStatus

pytestmark = pytest.mark.django_db

USERS_URL = reverse("admin:accounts_user_changelist")
LICENSES_URL = reverse("admin:licenses_license_changelist")
JOBS_URL = reverse("admin:transcriptions_job_changelist")
ARTIFACTS_URL = reverse("admin:transcriptions_fileartifact_changelist")


@pytest.fixture(autouse=True)
def _fast_password_hasher(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def admin_client(client):
    client.force_login(AdminFactory(email="boss@example.com"))
    return client


def _listed(response) -> set:
    """Return the objects on the changelist page that rendered this response."""
    assert response.status_code == 200
    return set(response.context["cl"].result_list)


def _messages(response) -> list[str]:
    return [str(m) for m in get_messages(response.wsgi_request)]


# --- Who may log in -----------------------------------------------------------------------


def test_admin_can_log_in_with_a_password(client):
    admin = AdminFactory(email="ops@example.com")

    response = client.post(
        reverse("admin:login"), {"username": "OPS@example.com", "password": DEFAULT_PASSWORD, "next": "/admin/"}
    )

    assert response.status_code == 302
    assert response["Location"] == "/admin/"
    assert client.session["_auth_user_id"] == str(admin.pk)


def test_role_user_cannot_log_in_to_the_admin_with_a_correct_password(client):
    UserFactory(email="someone@example.com")

    response = client.post(
        reverse("admin:login"), {"username": "someone@example.com", "password": DEFAULT_PASSWORD, "next": "/admin/"}
    )

    assert response.status_code == 200
    assert "_auth_user_id" not in client.session
    assert "staff account" in response.content.decode()


def test_inactive_admin_cannot_log_in_to_the_admin(client):
    AdminFactory(email="gone@example.com", is_active=False)

    response = client.post(
        reverse("admin:login"), {"username": "gone@example.com", "password": DEFAULT_PASSWORD, "next": "/admin/"}
    )

    assert response.status_code == 200
    assert "_auth_user_id" not in client.session


def test_logged_in_role_user_is_sent_to_the_admin_login(client):
    client.force_login(UserFactory())

    response = client.get(JOBS_URL)

    assert response.status_code == 302
    assert response["Location"].startswith(reverse("admin:login"))


# --- Changelists --------------------------------------------------------------------------


@pytest.mark.parametrize("url", [USERS_URL, LICENSES_URL, JOBS_URL, ARTIFACTS_URL])
def test_changelist_renders_its_rows(admin_client, url):
    artifact = FileArtifactFactory(job__owner=UserFactory(email="owner@example.com"))
    LicenseFactory(assigned_to_user=artifact.job.owner)
    expected = {
        USERS_URL: User.objects.get(email="owner@example.com"),
        LICENSES_URL: License.objects.get(),
        JOBS_URL: artifact.job,
        ARTIFACTS_URL: artifact,
    }[url]

    response = admin_client.get(url)

    assert expected in _listed(response)


def test_user_search_by_email(admin_client):
    wanted = UserFactory(email="findme@example.com")
    UserFactory(email="other@example.com")

    response = admin_client.get(USERS_URL, {"q": "FINDME"})

    assert _listed(response) == {wanted}


def test_license_search_by_key(admin_client):
    wanted = LicenseFactory(key="ACME-123")
    LicenseFactory(key="OTHER-456")

    response = admin_client.get(LICENSES_URL, {"q": "acme"})

    assert _listed(response) == {wanted}


def test_license_search_by_user_email(admin_client):
    wanted = LicenseFactory(assigned_to_user=UserFactory(email="holder@example.com"))
    LicenseFactory()

    response = admin_client.get(LICENSES_URL, {"q": "holder@"})

    assert _listed(response) == {wanted}


def test_job_search_by_id(admin_client):
    wanted = JobFactory()
    JobFactory()

    response = admin_client.get(JOBS_URL, {"q": str(wanted.id)})

    assert _listed(response) == {wanted}


def test_job_search_by_owner_email(admin_client):
    wanted = JobFactory(owner=UserFactory(email="uploader@example.com"))
    JobFactory()

    response = admin_client.get(JOBS_URL, {"q": "uploader@example.com"})

    assert _listed(response) == {wanted}


@pytest.mark.parametrize("term", ["not-a-uuid", "1234", "x@y", "' OR 1=1 --"])
def test_job_search_with_a_malformed_id_matches_nothing_instead_of_failing(admin_client, term):
    JobFactory()

    response = admin_client.get(JOBS_URL, {"q": term})

    assert _listed(response) == set()


# --- Filters --------------------------------------------------------------------------------


def test_user_filter_by_role(admin_client):
    user = UserFactory(role=Role.USER)

    response = admin_client.get(USERS_URL, {"role__exact": Role.USER})

    assert _listed(response) == {user}


def test_license_filter_by_plan(admin_client):
    pro = LicenseFactory(plan="pro")
    LicenseFactory(plan="basic")

    response = admin_client.get(LICENSES_URL, {"plan__exact": "pro"})

    assert _listed(response) == {pro}


def test_license_filter_by_revoked(admin_client):
    revoked = LicenseFactory(is_revoked=True)
    LicenseFactory(is_revoked=False)

    response = admin_client.get(LICENSES_URL, {"is_revoked__exact": "1"})

    assert _listed(response) == {revoked}


@pytest.fixture
def active_and_inactive_licenses():
    now = timezone.now()
    active = LicenseFactory(valid_until=now + timedelta(days=1))
    inactive = {
        LicenseFactory(is_revoked=True),
        LicenseFactory(valid_from=now + timedelta(days=1)),
        LicenseFactory(valid_from=now - timedelta(days=3), valid_until=now - timedelta(days=1)),
    }
    return active, inactive


def test_license_filter_active_yes(admin_client, active_and_inactive_licenses):
    active, _ = active_and_inactive_licenses

    response = admin_client.get(LICENSES_URL, {"active": "yes"})

    assert _listed(response) == {active}


def test_license_filter_active_no(admin_client, active_and_inactive_licenses):
    _, inactive = active_and_inactive_licenses

    response = admin_client.get(LICENSES_URL, {"active": "no"})

    assert _listed(response) == inactive


@pytest.mark.parametrize(
    ("param", "value", "wanted", "other"),
    [
        ("status__exact", "failed", {"status": JobStatus.FAILED}, {"status": JobStatus.DONE}),
        ("model_name__exact", "base", {"model_name": "base"}, {"model_name": "tiny.en"}),
        ("mode__exact", "translate", {"mode": JobMode.TRANSLATE}, {"mode": JobMode.TRANSCRIBE}),
    ],
    ids=["status", "model", "mode"],
)
def test_job_filter(admin_client, param, value, wanted, other):
    match = JobFactory(**wanted)
    JobFactory(**other)

    response = admin_client.get(JOBS_URL, {param: value})

    assert _listed(response) == {match}


# --- Actions --------------------------------------------------------------------------------


def test_revoke_selected_action_revokes_only_the_selected_licenses(admin_client):
    first, second, untouched = LicenseFactory(), LicenseFactory(), LicenseFactory()

    response = admin_client.post(LICENSES_URL, {"action": "revoke_selected", "_selected_action": [first.pk, second.pk]})

    assert response.status_code == 302
    assert set(License.objects.filter(is_revoked=True)) == {first, second}
    assert not License.objects.get(pk=untouched.pk).is_revoked
    assert _messages(response) == ["Revoked 2 license(s)."]


def test_requeue_failed_action_requeues_failed_jobs_and_skips_others(admin_client):
    failed = JobFactory(status=JobStatus.FAILED, error_message="boom", attempts=2)
    done = JobFactory(status=JobStatus.DONE)

    response = admin_client.post(JOBS_URL, {"action": "requeue_failed", "_selected_action": [failed.pk, done.pk]})

    assert response.status_code == 302
    failed.refresh_from_db()
    assert (failed.status, failed.error_message, failed.attempts) == (JobStatus.QUEUED, None, 0)
    assert Job.objects.get(pk=done.pk).status == JobStatus.DONE
    assert _messages(response) == ["Requeued 1 failed job(s).", "Skipped 1 job(s) that were not failed."]


def test_delete_selected_action_removes_jobs_and_their_files(admin_client, django_capture_on_commit_callbacks):
    job = JobFactory(status=JobStatus.DONE)
    name = default_storage.save(f"jobs/{job.pk}/result.json", ContentFile(b"{}"))
    FileArtifactFactory(job=job, type=ArtifactType.RESULT_JSON, path=name, size_bytes=2)
    kept = JobFactory()

    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(
            JOBS_URL, {"action": "delete_selected", "_selected_action": [job.pk], "post": "yes"}
        )

    assert response.status_code == 302
    assert list(Job.objects.all()) == [kept]
    assert not default_storage.exists(name)


def test_deleting_users_in_the_admin_removes_their_jobs_files(
    admin_client, django_capture_on_commit_callbacks, media_files
):
    leaving, staying = UserFactory(), UserFactory()
    for owner in (leaving, leaving, staying):
        job = JobFactory(owner=owner, status=JobStatus.DONE)
        name = default_storage.save(f"jobs/{job.pk}/audio.wav", ContentFile(b"RIFF"))
        FileArtifactFactory(job=job, type=ArtifactType.AUDIO, path=name, size_bytes=4)
        default_storage.save(f"jobs/{job.pk}/result.json.partial", ContentFile(b"{"))  # a dead attempt's leftover
    kept = sorted(
        f"jobs/{job.pk}/{name}" for job in staying.jobs.all() for name in ("audio.wav", "result.json.partial")
    )

    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(
            USERS_URL, {"action": "delete_selected", "_selected_action": [leaving.pk], "post": "yes"}
        )

    assert response.status_code == 302
    assert not User.objects.filter(pk=leaving.pk).exists()
    assert media_files() == kept


def test_a_rolled_back_user_deletion_keeps_the_files(django_capture_on_commit_callbacks, media_files):
    job = JobFactory()
    default_storage.save(f"jobs/{job.pk}/audio.wav", ContentFile(b"RIFF"))

    with django_capture_on_commit_callbacks(execute=True), pytest.raises(RuntimeError):
        with transaction.atomic():
            job.owner.delete()
            raise RuntimeError("changed my mind")

    assert Job.objects.filter(pk=job.pk).exists()
    assert media_files() == [f"jobs/{job.pk}/audio.wav"]


# --- Change pages and forms ---------------------------------------------------------------------


def test_job_change_page_shows_its_artifacts_inline(admin_client):
    job = JobFactory()
    FileArtifactFactory(job=job, type=ArtifactType.AUDIO, path=f"jobs/{job.pk}/audio.wav", size_bytes=321)
    FileArtifactFactory(job=job, type=ArtifactType.RESULT_JSON, path=f"jobs/{job.pk}/result.json", size_bytes=9)

    response = admin_client.get(reverse("admin:transcriptions_job_change", args=[job.pk]))

    assert response.status_code == 200
    (inline,) = response.context["inline_admin_formsets"]
    assert {form.original.type for form in inline} == {ArtifactType.AUDIO, ArtifactType.RESULT_JSON}
    assert f"jobs/{job.pk}/audio.wav" in response.content.decode()


def _license_form(features: str) -> dict:
    return {
        "key": "FORM-1",
        "plan": "pro",
        "features": features,
        "valid_from_0": "2025-01-01",
        "valid_from_1": "00:00:00",
        "valid_until_0": "",
        "valid_until_1": "",
        "assigned_to_user": "",
    }


def test_license_form_saves_valid_features(admin_client):
    response = admin_client.post(reverse("admin:licenses_license_add"), _license_form('{"max_audio_seconds": 10}'))

    assert response.status_code == 302
    assert License.objects.get(key="FORM-1").features == {"max_audio_seconds": 10}


@pytest.mark.parametrize(
    ("features", "message"),
    [
        ('{"max_audio_seconds": "10"}', "features.max_audio_seconds must be a non-negative integer"),
        ('{"colour": "blue"}', "unknown feature key(s): colour"),
        ('{"translate": "yes"}', "features.translate must be true or false"),
    ],
    ids=["string-limit", "unknown-key", "string-flag"],
)
def test_license_form_rejects_invalid_features_with_a_message(admin_client, features, message):
    response = admin_client.post(reverse("admin:licenses_license_add"), _license_form(features))

    assert response.status_code == 200
    (error,) = response.context["adminform"].form.errors["features"]
    assert error.startswith(message)
    assert message in response.content.decode()
    assert not License.objects.exists()


def test_license_form_rejects_valid_until_before_valid_from(admin_client):
    form = _license_form("{}") | {"valid_until_0": "2024-12-31", "valid_until_1": "00:00:00"}

    response = admin_client.post(reverse("admin:licenses_license_add"), form)

    assert response.status_code == 200
    assert response.context["adminform"].form.errors["valid_until"] == ["valid_until must be after valid_from"]
    assert not License.objects.exists()


def _user_form(email: str) -> dict:
    return {"email": email, "role": Role.USER, "password1": "a-long-pass-phrase", "password2": "a-long-pass-phrase"}


def test_user_add_form_creates_a_user_with_a_normalised_email(admin_client):
    response = admin_client.post(reverse("admin:accounts_user_add"), _user_form(" New.Person@Example.COM "))

    assert response.status_code == 302
    created = User.objects.get(email="new.person@example.com")
    assert created.role == Role.USER
    assert created.check_password("a-long-pass-phrase")


def test_user_add_form_rejects_an_email_taken_in_another_letter_case(admin_client):
    UserFactory(email="taken@example.com")

    response = admin_client.post(reverse("admin:accounts_user_add"), _user_form("TAKEN@example.com"))

    assert response.status_code == 200
    assert response.context["adminform"].form.errors
    assert User.objects.filter(email__iexact="taken@example.com").count() == 1


# --- Query counts do not grow with the rows shown -----------------------------------------------


def _queries_for(client, url: str) -> int:
    with CaptureQueriesContext(connection) as queries:
        response = client.get(url)
    assert response.status_code == 200
    return len(queries)


def _make_jobs(count: int) -> None:
    for i in range(count):
        job = JobFactory(status=JobStatus.DONE, model_name=f"model-{i % 3}")
        FileArtifactFactory(job=job)


def _make_licenses(count: int) -> None:
    LicenseFactory.create_batch(count)


def _make_users(count: int) -> None:
    UserFactory.create_batch(count)


@pytest.mark.parametrize(
    ("url", "make", "model"),
    [
        (JOBS_URL, _make_jobs, Job),
        (LICENSES_URL, _make_licenses, License),
        (ARTIFACTS_URL, _make_jobs, FileArtifact),
        (USERS_URL, _make_users, User),
    ],
    ids=["jobs", "licenses", "artifacts", "users"],
)
def test_changelist_query_count_does_not_grow_with_rows(admin_client, url, make, model):
    make(10)
    admin_client.get(url)  # warm per-process caches (content types, sessions)
    with_10 = _queries_for(admin_client, url)

    make(90)
    with_100 = _queries_for(admin_client, url)

    assert model.objects.count() >= 100
    assert with_100 == with_10
