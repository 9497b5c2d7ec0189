"""Services of accounts, licenses and transcriptions: valid input does the work, bad input is a ValueError."""

import itertools
import uuid
from datetime import timedelta

import pytest
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.utils import timezone

from accounts import services as accounts
from accounts.models import Role, User
from config.errors import Conflict
from licenses import services as licenses
from licenses.models import License
from tests.factories import DEFAULT_PASSWORD, FileArtifactFactory, JobFactory, LicenseFactory, UserFactory
from transcriptions import dispatch
from transcriptions import services as jobs
from transcriptions.models import ArtifactType, FileArtifact, Job, JobMode, JobStatus

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _fast_password_hasher(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def _stored_artifact(job: Job, type_: str, content: bytes = b"data") -> FileArtifact:
    """Save a real file in storage and record it as the job's artifact."""
    name = default_storage.save(f"jobs/{job.pk}/{type_}.bin", ContentFile(content))
    return jobs.add_artifact(job, type_, name, len(content))


# === accounts ==================================================================


def test_create_user_stores_normalised_email_and_hashed_password():
    user = accounts.create_user("  New.User@Example.COM ", "s3cret-pass-phrase")

    user.refresh_from_db()
    assert user.email == "new.user@example.com"
    assert user.role == Role.USER
    assert user.password != "s3cret-pass-phrase"
    assert user.check_password("s3cret-pass-phrase")


def test_create_user_with_admin_role():
    user = accounts.create_user("ops@example.com", "s3cret-pass-phrase", role=Role.ADMIN)

    assert User.objects.get(pk=user.pk).role == Role.ADMIN


@pytest.mark.parametrize("email", ["", "   ", None, "not-an-email", "a@", "@example.com", "a b@example.com"])
def test_create_user_rejects_a_bad_email(email):
    with pytest.raises(ValueError, match="invalid email"):
        accounts.create_user(email, "s3cret-pass-phrase")
    assert not User.objects.exists()


@pytest.mark.parametrize("role", ["root", "", "Admin", None])
def test_create_user_rejects_a_bad_role(role):
    with pytest.raises(ValueError, match="invalid role"):
        accounts.create_user("a@example.com", "s3cret-pass-phrase", role=role)
    assert not User.objects.exists()


@pytest.mark.parametrize("password", ["", None])
def test_create_user_rejects_an_empty_password(password):
    with pytest.raises(ValueError, match="password is required"):
        accounts.create_user("a@example.com", password)
    assert not User.objects.exists()


def test_create_user_rejects_an_email_taken_in_another_letter_case():
    accounts.create_user("taken@example.com", "s3cret-pass-phrase")

    with pytest.raises(ValueError, match="already exists"):
        accounts.create_user("TAKEN@Example.com", "another-pass-phrase")
    assert User.objects.count() == 1


def test_set_user_password_replaces_the_password():
    user = UserFactory()

    accounts.set_user_password(user, "a-much-longer-new-pass")

    user.refresh_from_db()
    assert user.check_password("a-much-longer-new-pass")
    assert not user.check_password(DEFAULT_PASSWORD)


@pytest.mark.parametrize("password", ["short", "password123"], ids=["too-short", "too-common"])
def test_set_user_password_rejects_a_weak_password(password):
    user = UserFactory()

    with pytest.raises(ValueError):
        accounts.set_user_password(user, password)
    user.refresh_from_db()
    assert user.check_password(DEFAULT_PASSWORD)


@pytest.mark.parametrize("spelling", ["who@example.com", "WHO@Example.Com", "  who@example.com  "])
def test_get_user_by_email_ignores_letter_case_and_whitespace(spelling):
    user = UserFactory(email="who@example.com")

    assert accounts.get_user_by_email(spelling) == user


@pytest.mark.parametrize("email", ["nobody@example.com", "", "   ", None, 42])
def test_get_user_by_email_returns_none_for_unknown_or_empty(email):
    UserFactory(email="who@example.com")

    assert accounts.get_user_by_email(email) is None


def test_get_user_by_id_accepts_a_uuid_or_its_string():
    user = UserFactory()

    assert accounts.get_user_by_id(user.id) == user
    assert accounts.get_user_by_id(str(user.id)) == user


@pytest.mark.parametrize("user_id", ["not-a-uuid", "", None, 12, str(uuid.uuid4())])
def test_get_user_by_id_returns_none_for_malformed_or_unknown_id(user_id):
    UserFactory()

    assert accounts.get_user_by_id(user_id) is None


# === licenses ==================================================================


def test_upsert_license_creates_a_license_with_trimmed_key_and_plan():
    valid_from = timezone.now() - timedelta(days=1)
    valid_until = timezone.now() + timedelta(days=30)

    license_ = licenses.upsert_license(
        "  KEY-1 ", " pro ", {"max_concurrent_jobs": 2}, valid_from=valid_from, valid_until=valid_until
    )

    stored = License.objects.get(key="KEY-1")
    assert stored == license_
    assert (stored.plan, stored.features, stored.is_revoked) == ("pro", {"max_concurrent_jobs": 2}, False)
    assert (stored.valid_from, stored.valid_until) == (valid_from, valid_until)


def test_upsert_license_updates_an_existing_key_in_place():
    user = UserFactory()
    licenses.upsert_license("KEY-1", "basic", {"translate": False})
    licenses.assign_license_to_user("KEY-1", user)

    licenses.upsert_license("KEY-1", "pro", {"translate": True}, is_revoked=True)

    assert License.objects.count() == 1
    stored = License.objects.get(key="KEY-1")
    assert (stored.plan, stored.features, stored.is_revoked) == ("pro", {"translate": True}, True)
    assert stored.assigned_to_user == user


def test_upsert_license_stores_no_features_as_an_empty_object():
    licenses.upsert_license("KEY-1", "basic", None)

    assert License.objects.get(key="KEY-1").features == {}


def test_upsert_license_accepts_every_documented_feature():
    features = {
        "models": ["tiny.en", "base"],
        "max_audio_seconds": 3600,
        "monthly_audio_minutes": 0,
        "max_concurrent_jobs": 2,
        "translate": True,
    }

    licenses.upsert_license("KEY-1", "pro", features)

    assert License.objects.get(key="KEY-1").features == features


@pytest.mark.parametrize(
    "features",
    [
        {"unknown": 1},
        {"max_audio_seconds": "10"},
        {"max_audio_seconds": True},
        {"max_audio_seconds": -1},
        {"max_audio_seconds": 1.5},
        {"monthly_audio_minutes": None},
        {"max_concurrent_jobs": -1},
        {"models": "tiny.en"},
        {"models": [""]},
        {"models": [1]},
        {"translate": "yes"},
        {"translate": 1},
        ["models"],
        "{}",
    ],
)
def test_upsert_license_rejects_invalid_features(features):
    with pytest.raises(ValueError, match="feature"):
        licenses.upsert_license("KEY-1", "pro", features)
    assert not License.objects.exists()


@pytest.mark.parametrize("offset", [timedelta(0), -timedelta(seconds=1)], ids=["equal", "before"])
def test_upsert_license_rejects_valid_until_not_after_valid_from(offset):
    valid_from = timezone.now()

    with pytest.raises(ValueError, match="valid_until"):
        licenses.upsert_license("KEY-1", "pro", {}, valid_from=valid_from, valid_until=valid_from + offset)
    assert not License.objects.exists()


@pytest.mark.parametrize("key", ["", "   ", None, "K" * 65])
def test_upsert_license_rejects_an_empty_or_overlong_key(key):
    with pytest.raises(ValueError, match="license key"):
        licenses.upsert_license(key, "pro", {})
    assert not License.objects.exists()


@pytest.mark.parametrize("plan", ["", "   ", None])
def test_upsert_license_rejects_an_empty_plan(plan):
    with pytest.raises(ValueError, match="plan is required"):
        licenses.upsert_license("KEY-1", plan, {})
    assert not License.objects.exists()


def test_get_license_by_key_returns_the_license():
    license_ = LicenseFactory(key="KEY-1")

    assert licenses.get_license_by_key(" KEY-1 ") == license_


@pytest.mark.parametrize("key", ["KEY-2", "key-1", "", None])
def test_get_license_by_key_returns_none_for_unknown_or_empty(key):
    LicenseFactory(key="KEY-1")

    assert licenses.get_license_by_key(key) is None


def test_assign_license_to_user_moves_the_license_to_the_user():
    license_ = LicenseFactory(key="KEY-1")
    new_owner = UserFactory()

    licenses.assign_license_to_user("KEY-1", new_owner)

    license_.refresh_from_db()
    assert license_.assigned_to_user == new_owner


def test_assign_license_to_user_rejects_an_unknown_key():
    user = UserFactory()

    with pytest.raises(ValueError, match="no license"):
        licenses.assign_license_to_user("MISSING", user)


def test_assign_license_to_user_rejects_a_missing_user():
    license_ = LicenseFactory(key="KEY-1")

    with pytest.raises(ValueError, match="user is required"):
        licenses.assign_license_to_user("KEY-1", None)
    license_.refresh_from_db()
    assert license_.assigned_to_user is not None


def test_revoke_licenses_revokes_only_the_given_unrevoked_keys():
    LicenseFactory(key="A")
    LicenseFactory(key="B", is_revoked=True)
    LicenseFactory(key="C")

    changed = licenses.revoke_licenses(["A", "B"])

    assert changed == 1
    assert dict(License.objects.values_list("key", "is_revoked")) == {"A": True, "B": True, "C": False}


def test_active_license_for_returns_the_valid_assigned_license():
    license_ = LicenseFactory()

    assert licenses.active_license_for(license_.assigned_to_user) == license_


@pytest.mark.parametrize(
    "overrides",
    [
        {"is_revoked": True},
        {"valid_from": timezone.now() + timedelta(days=1)},
        {"valid_from": timezone.now() - timedelta(days=10), "valid_until": timezone.now() - timedelta(days=1)},
    ],
    ids=["revoked", "not-yet-valid", "expired"],
)
def test_active_license_for_ignores_an_unusable_license(overrides):
    license_ = LicenseFactory(**overrides)

    assert licenses.active_license_for(license_.assigned_to_user) is None


def test_active_license_for_ignores_licenses_of_nobody_or_someone_else():
    user = UserFactory()
    LicenseFactory(assigned_to_user=None)
    LicenseFactory()

    assert licenses.active_license_for(user) is None


def test_active_license_for_prefers_the_license_valid_longest():
    user = UserFactory()
    now = timezone.now()
    LicenseFactory(assigned_to_user=user, valid_until=now + timedelta(days=5))
    unlimited = LicenseFactory(assigned_to_user=user, valid_until=None)
    LicenseFactory(assigned_to_user=user, valid_until=now + timedelta(days=50))

    assert licenses.active_license_for(user) == unlimited


def test_active_license_for_returns_none_without_a_saved_user():
    assert licenses.active_license_for(None) is None
    assert licenses.active_license_for(User(email="unsaved@example.com", id=None)) is None


# === jobs ===========================================================================


def test_create_job_inserts_a_queued_job_with_its_settings():
    owner = UserFactory()

    job = jobs.create_job(owner, " tiny.en ", language="EN", mode=JobMode.TRANSLATE)

    stored = Job.objects.get(pk=job.pk)
    assert (stored.owner, stored.status, stored.model_name, stored.language, stored.mode) == (
        owner,
        JobStatus.QUEUED,
        "tiny.en",
        "en",
        JobMode.TRANSLATE,
    )
    assert (stored.progress, stored.attempts, stored.error_message) == (0, 0, None)


def test_create_job_treats_an_empty_language_as_auto_detect():
    job = jobs.create_job(UserFactory(), "tiny.en", language="")

    assert Job.objects.get(pk=job.pk).language is None


@pytest.mark.parametrize("mode", ["dub", "", None, "TRANSCRIBE"])
def test_create_job_rejects_a_bad_mode(mode):
    owner = UserFactory()

    with pytest.raises(ValueError, match="invalid mode"):
        jobs.create_job(owner, "tiny.en", mode=mode)
    assert not Job.objects.exists()


@pytest.mark.parametrize("language", ["xx", "english", "e", 5])
def test_create_job_rejects_a_bad_language(language):
    owner = UserFactory()

    with pytest.raises(ValueError, match="invalid language"):
        jobs.create_job(owner, "tiny.en", language=language)
    assert not Job.objects.exists()


@pytest.mark.parametrize("model_name", ["", "   ", None])
def test_create_job_rejects_an_empty_model_name(model_name):
    owner = UserFactory()

    with pytest.raises(ValueError, match="model_name"):
        jobs.create_job(owner, model_name)
    assert not Job.objects.exists()


def test_create_job_rejects_a_missing_owner():
    with pytest.raises(ValueError, match="owner"):
        jobs.create_job(None, "tiny.en")


def test_get_job_by_id_accepts_a_uuid_or_its_string():
    job = JobFactory()

    assert jobs.get_job_by_id(job.id) == job
    assert jobs.get_job_by_id(str(job.id)) == job


@pytest.mark.parametrize("job_id", ["nope", "", None, 7, str(uuid.uuid4())])
def test_get_job_by_id_returns_none_for_malformed_or_unknown_id(job_id):
    JobFactory()

    assert jobs.get_job_by_id(job_id) is None


def test_get_job_for_owner_hides_other_users_jobs():
    job = JobFactory()

    assert jobs.get_job_for_owner(job.owner, str(job.id)) == job
    assert jobs.get_job_for_owner(UserFactory(), job.id) is None
    assert jobs.get_job_for_owner(job.owner, "malformed") is None


@pytest.fixture
def three_jobs_of_one_user():
    """Return (owner, [newest, middle, oldest]); the middle one is done, the others queued."""
    owner = UserFactory()
    now = timezone.now()
    oldest = JobFactory(owner=owner, created_at=now - timedelta(minutes=2))
    middle = JobFactory(owner=owner, status=JobStatus.DONE, created_at=now - timedelta(minutes=1))
    newest = JobFactory(owner=owner, created_at=now)
    return owner, [newest, middle, oldest]


def test_list_jobs_by_user_returns_newest_first(three_jobs_of_one_user):
    owner, expected = three_jobs_of_one_user

    assert jobs.list_jobs_by_user(owner) == expected


def test_list_jobs_by_user_filters_by_status(three_jobs_of_one_user):
    owner, (newest, middle, oldest) = three_jobs_of_one_user

    assert jobs.list_jobs_by_user(owner, status=JobStatus.DONE) == [middle]
    assert jobs.list_jobs_by_user(owner, status=JobStatus.QUEUED) == [newest, oldest]


def test_list_jobs_by_user_pages_with_limit_and_offset(three_jobs_of_one_user):
    owner, (newest, middle, oldest) = three_jobs_of_one_user

    assert jobs.list_jobs_by_user(owner, limit=2, offset=0) == [newest, middle]
    assert jobs.list_jobs_by_user(owner, limit=2, offset=2) == [oldest]
    assert jobs.list_jobs_by_user(owner, limit=2, offset=3) == []


def test_list_jobs_by_user_lists_only_the_users_own_jobs(three_jobs_of_one_user):
    JobFactory()
    stranger = UserFactory()

    assert jobs.list_jobs_by_user(stranger) == []


@pytest.mark.parametrize(
    "page",
    [
        {"status": "paused"},
        {"status": ""},
        {"limit": 0},
        {"limit": 201},
        {"limit": True},
        {"limit": "10"},
        {"offset": -1},
        {"offset": 1.0},
    ],
    ids=lambda page: "-".join(f"{k}={v!r}" for k, v in page.items()),
)
def test_list_jobs_by_user_rejects_a_bad_page(page):
    owner = UserFactory()

    with pytest.raises(ValueError):
        jobs.list_jobs_by_user(owner, **page)


def test_list_jobs_by_user_accepts_the_largest_limit():
    owner = UserFactory()
    JobFactory(owner=owner)

    assert len(jobs.list_jobs_by_user(owner, limit=200)) == 1


def test_page_of_jobs_by_user_carries_the_total_of_the_filter(three_jobs_of_one_user):
    owner, (newest, middle, oldest) = three_jobs_of_one_user
    JobFactory()

    first = jobs.page_of_jobs_by_user(owner, limit=2)
    queued = jobs.page_of_jobs_by_user(owner, status=JobStatus.QUEUED, limit=1)

    assert ([j.id for j in first.jobs], first.total) == ([newest.pk, middle.pk], 3)
    assert ([j.id for j in queued.jobs], queued.total) == ([newest.pk], 2)


def test_page_of_jobs_by_user_counts_all_jobs_on_a_keyset_page(three_jobs_of_one_user):
    owner, (newest, middle, oldest) = three_jobs_of_one_user

    page = jobs.page_of_jobs_by_user(owner, limit=1, before=middle.pk)
    last = jobs.page_of_jobs_by_user(owner, limit=1, before=oldest.pk)

    assert ([j.id for j in page.jobs], page.total) == ([oldest.pk], 3)
    assert (last.jobs, last.total) == ([], 3)


def test_page_of_jobs_by_user_past_the_end_still_counts(three_jobs_of_one_user):
    owner, _ = three_jobs_of_one_user

    page = jobs.page_of_jobs_by_user(owner, status=JobStatus.DONE, limit=5, offset=5)

    assert (page.jobs, page.total) == ([], 1)


def test_page_of_jobs_by_user_of_a_user_without_jobs_is_empty():
    JobFactory()

    page = jobs.page_of_jobs_by_user(UserFactory())

    assert (page.jobs, page.total) == ([], 0)


def test_page_of_jobs_by_user_items_hold_the_jobs_listed_columns(three_jobs_of_one_user):
    owner, (newest, middle, oldest) = three_jobs_of_one_user
    Job.objects.filter(pk=middle.pk).update(language="en", audio_duration_ms=5000, processing_time_ms=900)
    middle.refresh_from_db()

    item = jobs.page_of_jobs_by_user(owner).jobs[1]

    assert item._asdict() == {
        **{name: getattr(middle, name) for name in jobs.LIST_ITEM_COLUMNS},
        "artifact_summaries": [],
    }


def test_page_of_jobs_by_user_summarises_each_jobs_artifacts_by_type(three_jobs_of_one_user):
    owner, (newest, middle, oldest) = three_jobs_of_one_user
    FileArtifactFactory(job=middle, type=ArtifactType.SUBTITLES_VTT, size_bytes=7)
    FileArtifactFactory(job=middle, type=ArtifactType.AUDIO, size_bytes=12_345_678_901)
    FileArtifactFactory(job=newest, type=ArtifactType.TRANSCRIPT_TXT, size_bytes=0)

    page = jobs.page_of_jobs_by_user(owner)

    assert [job.artifact_summaries for job in page.jobs] == [
        [jobs.ArtifactSummary("transcript_txt", 0)],
        [jobs.ArtifactSummary("audio", 12_345_678_901), jobs.ArtifactSummary("subtitles_vtt", 7)],
        [],
    ]


def test_count_jobs_by_user_counts_own_jobs_of_a_status(three_jobs_of_one_user):
    owner, _ = three_jobs_of_one_user
    JobFactory()

    assert jobs.count_jobs_by_user(owner) == 3
    assert jobs.count_jobs_by_user(owner, JobStatus.QUEUED) == 2
    with pytest.raises(ValueError):
        jobs.count_jobs_by_user(owner, "paused")


# --- set_job_status: the whole transition table ----------------------------------------

ALLOWED = {
    (JobStatus.QUEUED, JobStatus.PROCESSING),
    (JobStatus.PROCESSING, JobStatus.DONE),
    (JobStatus.PROCESSING, JobStatus.FAILED),
    (JobStatus.FAILED, JobStatus.QUEUED),
}
ALL_PAIRS = list(itertools.product(JobStatus.values, repeat=2))


@pytest.mark.parametrize(("current", "new"), sorted(ALLOWED), ids=lambda s: str(s))
def test_set_job_status_allows_the_transition(current, new):
    job = JobFactory(status=current)

    returned = jobs.set_job_status(job, new)

    assert returned.status == new
    assert Job.objects.get(pk=job.pk).status == new


@pytest.mark.parametrize(("current", "new"), [p for p in ALL_PAIRS if p not in ALLOWED], ids=str)
def test_set_job_status_refuses_the_transition(current, new):
    job = JobFactory(status=current)

    with pytest.raises(ValueError, match=f"a {current} job cannot become {new}"):
        jobs.set_job_status(job, new)
    assert Job.objects.get(pk=job.pk).status == current


@pytest.mark.parametrize("status", ["paused", "", None])
def test_set_job_status_refuses_an_unknown_status(status):
    job = JobFactory(status=JobStatus.QUEUED)

    with pytest.raises(ValueError, match="unknown status"):
        jobs.set_job_status(job, status)
    assert Job.objects.get(pk=job.pk).status == JobStatus.QUEUED


def test_set_job_status_failed_stores_the_error_message():
    job = JobFactory(status=JobStatus.PROCESSING)

    jobs.set_job_status(job, JobStatus.FAILED, error_message="decoder exploded")

    assert Job.objects.get(pk=job.pk).error_message == "decoder exploded"
    assert job.error_message == "decoder exploded"


def test_set_job_status_failed_without_a_message_stores_a_generic_one():
    job = JobFactory(status=JobStatus.PROCESSING)

    jobs.set_job_status(job, JobStatus.FAILED)

    assert Job.objects.get(pk=job.pk).error_message == "transcription failed"


def test_set_job_status_failed_truncates_a_long_message():
    job = JobFactory(status=JobStatus.PROCESSING)

    jobs.set_job_status(job, JobStatus.FAILED, error_message="x" * 2000)

    assert Job.objects.get(pk=job.pk).error_message == "x" * jobs.ERROR_MESSAGE_MAX


def test_set_job_status_done_sets_progress_to_100():
    job = JobFactory(status=JobStatus.PROCESSING, progress=40)

    jobs.set_job_status(job, JobStatus.DONE)

    assert Job.objects.get(pk=job.pk).progress == 100


def test_set_job_status_requeue_clears_error_progress_and_enqueue_time():
    job = JobFactory(status=JobStatus.FAILED, error_message="boom", progress=70, enqueued_at=timezone.now())

    jobs.set_job_status(job, JobStatus.QUEUED)

    stored = Job.objects.get(pk=job.pk)
    assert (stored.status, stored.error_message, stored.progress, stored.enqueued_at) == (
        JobStatus.QUEUED,
        None,
        0,
        None,
    )


def test_set_job_status_decides_from_the_stored_status_not_a_stale_instance():
    job = JobFactory(status=JobStatus.QUEUED)
    Job.objects.filter(pk=job.pk).update(status=JobStatus.DONE)

    with pytest.raises(ValueError, match="a done job cannot become processing"):
        jobs.set_job_status(job, JobStatus.PROCESSING)


def test_set_job_status_of_a_deleted_job_is_refused():
    job = JobFactory(status=JobStatus.QUEUED)
    Job.objects.filter(pk=job.pk).delete()

    with pytest.raises(ValueError, match="no longer exists"):
        jobs.set_job_status(job, JobStatus.PROCESSING)


# --- Artifacts ---------------------------------------------------------------------------


def test_add_artifact_records_the_file():
    job = JobFactory()

    artifact = jobs.add_artifact(job, ArtifactType.RESULT_JSON, "jobs/1/result.json", 123)

    stored = FileArtifact.objects.get(pk=artifact.pk)
    assert (stored.job, stored.type, stored.path, stored.size_bytes) == (
        job,
        ArtifactType.RESULT_JSON,
        "jobs/1/result.json",
        123,
    )


@pytest.mark.parametrize(
    ("type_", "path", "size", "message"),
    [
        ("video", "jobs/1/a.mp4", 1, "invalid artifact type"),
        ("", "jobs/1/a", 1, "invalid artifact type"),
        (ArtifactType.AUDIO, "/abs/a.wav", 1, "path"),
        (ArtifactType.AUDIO, "../a.wav", 1, "path"),
        (ArtifactType.AUDIO, "jobs/../../a.wav", 1, "path"),
        (ArtifactType.AUDIO, "", 1, "path"),
        (ArtifactType.AUDIO, None, 1, "path"),
        (ArtifactType.AUDIO, "jobs/1/a.wav", -1, "size_bytes"),
        (ArtifactType.AUDIO, "jobs/1/a.wav", True, "size_bytes"),
        (ArtifactType.AUDIO, "jobs/1/a.wav", 1.5, "size_bytes"),
    ],
    ids=[
        "unknown-type",
        "empty-type",
        "absolute-path",
        "parent-path",
        "nested-parent-path",
        "empty-path",
        "no-path",
        "negative-size",
        "bool-size",
        "float-size",
    ],
)
def test_add_artifact_rejects_bad_input(type_, path, size, message):
    job = JobFactory()

    with pytest.raises(ValueError, match=message):
        jobs.add_artifact(job, type_, path, size)
    assert not FileArtifact.objects.exists()


def test_add_artifact_rejects_a_path_the_database_would_reject_as_a_path_error():
    # The table's check forbids ".." anywhere in a path; the service must report
    # such a path as a bad path, not as a duplicate artifact.
    job = JobFactory()

    with pytest.raises(ValueError, match="path must be a storage name"):
        jobs.add_artifact(job, ArtifactType.TRANSCRIPT_TXT, "jobs/1/notes..txt", 1)
    assert not FileArtifact.objects.exists()


def test_add_artifact_rejects_a_second_artifact_of_the_same_type():
    job = JobFactory()
    jobs.add_artifact(job, ArtifactType.AUDIO, "jobs/1/a.wav", 1)

    with pytest.raises(ValueError, match="already has a audio artifact"):
        jobs.add_artifact(job, ArtifactType.AUDIO, "jobs/1/b.wav", 2)
    assert FileArtifact.objects.filter(job=job).count() == 1


def test_list_artifacts_by_job_returns_the_jobs_artifacts_ordered_by_type():
    job = JobFactory()
    txt = jobs.add_artifact(job, ArtifactType.TRANSCRIPT_TXT, "jobs/1/t.txt", 1)
    audio = jobs.add_artifact(job, ArtifactType.AUDIO, "jobs/1/a.wav", 1)
    result = jobs.add_artifact(job, ArtifactType.RESULT_JSON, "jobs/1/r.json", 1)
    FileArtifactFactory()

    assert jobs.list_artifacts_by_job(job) == [audio, result, txt]


def test_get_artifact_by_type_returns_the_artifact_of_that_type():
    job = JobFactory()
    audio = jobs.add_artifact(job, ArtifactType.AUDIO, "jobs/1/a.wav", 1)
    jobs.add_artifact(job, ArtifactType.RESULT_JSON, "jobs/1/r.json", 1)

    assert jobs.get_artifact_by_type(job, ArtifactType.AUDIO) == audio


@pytest.mark.parametrize("type_", ["video", ArtifactType.SUBTITLES_VTT], ids=["unknown-type", "absent-type"])
def test_get_artifact_by_type_returns_none_for_unknown_or_absent_type(type_):
    job = JobFactory()
    jobs.add_artifact(job, ArtifactType.AUDIO, "jobs/1/a.wav", 1)

    assert jobs.get_artifact_by_type(job, type_) is None


# --- Deleting jobs ------------------------------------------------------------------------


def test_delete_job_of_a_processing_job_is_a_conflict_and_keeps_everything():
    job = JobFactory(status=JobStatus.PROCESSING)
    artifact = _stored_artifact(job, ArtifactType.AUDIO)

    with pytest.raises(Conflict) as excinfo:
        jobs.delete_job(job)

    assert excinfo.value.status_code == 409
    assert Job.objects.filter(pk=job.pk).exists()
    assert FileArtifact.objects.filter(pk=artifact.pk).exists()
    assert default_storage.exists(artifact.path)


@pytest.mark.parametrize("status", [JobStatus.QUEUED, JobStatus.DONE, JobStatus.FAILED])
def test_delete_job_removes_the_job_its_artifacts_and_their_files(
    status, django_capture_on_commit_callbacks, media_files
):
    job = JobFactory(status=status)
    audio = _stored_artifact(job, ArtifactType.AUDIO)
    result = _stored_artifact(job, ArtifactType.RESULT_JSON)
    other = _stored_artifact(JobFactory(), ArtifactType.AUDIO)

    with django_capture_on_commit_callbacks(execute=True):
        jobs.delete_job(job)

    assert not Job.objects.filter(pk=job.pk).exists()
    assert not FileArtifact.objects.filter(pk__in=[audio.pk, result.pk]).exists()
    assert media_files() == [other.path]


def test_delete_job_removes_files_only_once_the_transaction_commits(django_capture_on_commit_callbacks):
    job = JobFactory(status=JobStatus.DONE)
    artifact = _stored_artifact(job, ArtifactType.RESULT_JSON)

    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        jobs.delete_job(job)

    assert not Job.objects.filter(pk=job.pk).exists()
    assert default_storage.exists(artifact.path)
    assert len(callbacks) == 1


def test_delete_job_of_an_already_deleted_job_does_nothing(django_capture_on_commit_callbacks):
    job = JobFactory()
    Job.objects.filter(pk=job.pk).delete()

    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        jobs.delete_job(job)

    assert callbacks == []


def test_delete_job_tolerates_a_file_already_missing_from_storage(django_capture_on_commit_callbacks):
    job = JobFactory(status=JobStatus.DONE)
    artifact = _stored_artifact(job, ArtifactType.RESULT_JSON)
    default_storage.delete(artifact.path)

    with django_capture_on_commit_callbacks(execute=True):
        jobs.delete_job(job)

    assert not Job.objects.filter(pk=job.pk).exists()


def test_delete_jobs_removes_jobs_of_any_status_and_their_files(django_capture_on_commit_callbacks, media_files):
    processing = JobFactory(status=JobStatus.PROCESSING)
    done = JobFactory(status=JobStatus.DONE)
    kept = JobFactory()
    _stored_artifact(processing, ArtifactType.AUDIO)
    _stored_artifact(done, ArtifactType.RESULT_JSON)
    kept_file = _stored_artifact(kept, ArtifactType.AUDIO)

    with django_capture_on_commit_callbacks(execute=True):
        deleted = jobs.delete_jobs([processing, done])

    assert deleted == 2
    assert list(Job.objects.all()) == [kept]
    assert media_files() == [kept_file.path]


# --- Requeueing failed jobs -----------------------------------------------------------------


@pytest.fixture
def enqueued(monkeypatch) -> list[str]:
    """Record the job ids handed to the queue instead of running them."""
    calls: list[str] = []
    monkeypatch.setattr(dispatch, "enqueue_job", lambda job_id: calls.append(str(job_id)))
    return calls


def test_requeue_failed_jobs_requeues_only_failed_jobs(enqueued, django_capture_on_commit_callbacks):
    failed = JobFactory(status=JobStatus.FAILED, error_message="boom", attempts=3, progress=50)
    done = JobFactory(status=JobStatus.DONE)
    queued = JobFactory(status=JobStatus.QUEUED)

    with django_capture_on_commit_callbacks(execute=True):
        count = jobs.requeue_failed_jobs([failed.pk, str(done.pk), queued.pk])

    assert count == 1
    failed.refresh_from_db()
    assert (failed.status, failed.attempts, failed.error_message, failed.progress) == (
        JobStatus.QUEUED,
        0,
        None,
        0,
    )
    assert Job.objects.get(pk=done.pk).status == JobStatus.DONE
    assert enqueued == [str(failed.pk)]


def test_requeue_failed_jobs_enqueues_only_after_commit(enqueued, django_capture_on_commit_callbacks):
    failed = JobFactory(status=JobStatus.FAILED)

    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        jobs.requeue_failed_jobs([failed.pk])

    assert enqueued == []
    assert len(callbacks) == 1


def test_requeue_failed_jobs_with_no_ids_does_nothing(enqueued):
    JobFactory(status=JobStatus.FAILED)

    assert jobs.requeue_failed_jobs([]) == 0
    assert Job.objects.get().status == JobStatus.FAILED


@pytest.mark.django_db
def test_list_jobs_by_user_deep_pages_match_shallow_ordering():
    from transcriptions.services import DEEP_OFFSET

    user = UserFactory()
    created = JobFactory.create_batch(DEEP_OFFSET + 5, owner=user)
    newest_first = sorted(created, key=lambda j: (j.created_at, j.pk), reverse=True)

    page = jobs.list_jobs_by_user(user, limit=3, offset=DEEP_OFFSET + 1)

    assert [j.pk for j in page] == [j.pk for j in newest_first[DEEP_OFFSET + 1 : DEEP_OFFSET + 4]]
    assert all(j.artifact_summaries == [] for j in page)
    assert jobs.page_of_jobs_by_user(user, limit=3, offset=DEEP_OFFSET + 1).total == DEEP_OFFSET + 5
    assert jobs.page_of_jobs_by_user(user, limit=3, offset=DEEP_OFFSET + 5).total == DEEP_OFFSET + 5
