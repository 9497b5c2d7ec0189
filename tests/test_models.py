"""Models: table names, string forms, save hooks, and every constraint the database enforces.

Constraint tests bypass Python validation on purpose (queryset `update`,
`bulk_create`, raw SQL) so that only the database can reject the row.
"""

import uuid
from datetime import timedelta

import pytest
from django.db import IntegrityError, connection, transaction
from django.db.models import F
from django.utils import timezone

from accounts.models import Role, User
from licenses.models import License
from tests.factories import FileArtifactFactory, JobFactory, LicenseFactory, UserFactory
from transcriptions.models import ArtifactType, FileArtifact, Job, JobMode, JobStatus

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _fast_password_hasher(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def _rejected_by_database(action) -> bool:
    """Run `action` in a savepoint; return whether the database raised IntegrityError."""
    try:
        with transaction.atomic():
            action()
    except IntegrityError:
        return True
    return False


def _insert_user_row(email: str, role: str = Role.USER) -> None:
    """Insert a users row with raw SQL, skipping User.save()'s normalisation."""
    pk_field = User._meta.pk
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO users (id, password, email, role, is_active, created_at) VALUES (%s, %s, %s, %s, %s, %s)",
            [
                pk_field.get_db_prep_value(uuid.uuid4(), connection),
                "!",
                email,
                role,
                True,
                connection.ops.adapt_datetimefield_value(timezone.now()),
            ],
        )


# --- Table names ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("model", "table"),
    [(User, "users"), (License, "licenses"), (Job, "jobs"), (FileArtifact, "file_artifacts")],
)
def test_model_uses_its_documented_table_name(model, table):
    assert model._meta.db_table == table
    assert table in connection.introspection.table_names()


# --- Users ------------------------------------------------------------------------


def test_user_email_is_trimmed_and_lowercased_on_save():
    user = User(email="  Mixed.Case@Example.COM ", role=Role.USER)
    user.set_unusable_password()

    user.save()

    user.refresh_from_db()
    assert user.email == "mixed.case@example.com"


def test_user_str_is_the_email_and_repr_names_id_and_role():
    user = UserFactory(email="who@example.com", role=Role.ADMIN)

    assert str(user) == "who@example.com"
    assert repr(user) == f"<User {user.id} who@example.com role=admin>"


def test_database_rejects_an_email_differing_only_in_letter_case():
    UserFactory(email="a@x.com")

    assert _rejected_by_database(lambda: _insert_user_row("A@x.com"))
    assert User.objects.count() == 1


def test_database_accepts_a_different_email_through_the_same_raw_insert():
    UserFactory(email="a@x.com")

    assert not _rejected_by_database(lambda: _insert_user_row("b@x.com"))
    assert User.objects.count() == 2


def test_database_rejects_an_unknown_user_role():
    user = UserFactory()

    assert _rejected_by_database(lambda: User.objects.filter(pk=user.pk).update(role="root"))
    user.refresh_from_db()
    assert user.role == Role.USER


def test_database_rejects_an_unknown_role_on_raw_insert():
    assert _rejected_by_database(lambda: _insert_user_row("c@x.com", role="superuser"))


def test_only_an_active_admin_is_staff():
    admin = UserFactory(role=Role.ADMIN)
    inactive_admin = UserFactory(role=Role.ADMIN, is_active=False)
    user = UserFactory(role=Role.USER)

    assert (admin.is_staff, admin.is_superuser, admin.has_perm("x.y")) == (True, True, True)
    assert (inactive_admin.is_staff, inactive_admin.has_module_perms("jobs")) == (False, False)
    assert (user.is_staff, user.has_perms(["x.y"])) == (False, False)


# --- Licenses -----------------------------------------------------------------------


def test_database_rejects_license_valid_until_equal_to_valid_from():
    license_ = LicenseFactory()

    assert _rejected_by_database(lambda: License.objects.filter(pk=license_.pk).update(valid_until=F("valid_from")))


def test_database_rejects_license_valid_until_before_valid_from():
    license_ = LicenseFactory()

    assert _rejected_by_database(
        lambda: License.objects.filter(pk=license_.pk).update(valid_until=license_.valid_from - timedelta(seconds=1))
    )


def test_database_accepts_license_valid_until_after_valid_from():
    license_ = LicenseFactory()

    assert not _rejected_by_database(
        lambda: License.objects.filter(pk=license_.pk).update(valid_until=license_.valid_from + timedelta(seconds=1))
    )


def test_license_str_and_repr_name_key_plan_and_user():
    license_ = LicenseFactory(key="LIC-STR", plan="team")

    assert str(license_) == "LIC-STR (team)"
    assert repr(license_) == f"<License LIC-STR plan=team user={license_.assigned_to_user_id}>"


def test_license_is_active_only_inside_its_window_and_unrevoked():
    now = timezone.now()
    license_ = LicenseFactory(valid_from=now - timedelta(days=1), valid_until=now + timedelta(days=1))

    assert license_.is_active(now) is True
    assert license_.is_active(now - timedelta(days=2)) is False
    assert license_.is_active(now + timedelta(days=1)) is False  # valid_until is exclusive
    license_.is_revoked = True
    assert license_.is_active(now) is False


def test_active_license_queryset_matches_is_active():
    now = timezone.now()
    active = LicenseFactory(valid_until=None)
    LicenseFactory(is_revoked=True)
    LicenseFactory(valid_from=now + timedelta(days=1))
    LicenseFactory(valid_from=now - timedelta(days=3), valid_until=now - timedelta(days=1))

    assert list(License.objects.active()) == [active]


def test_license_clean_reports_invalid_features_on_the_features_field():
    from django.core.exceptions import ValidationError

    license_ = License(key="K", plan="p", features={"translate": "yes"})

    with pytest.raises(ValidationError) as excinfo:
        license_.clean()
    assert list(excinfo.value.message_dict) == ["features"]


# --- Jobs -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "change",
    [
        {"status": "paused"},
        {"mode": "dub"},
        {"audio_duration_ms": -1},
        {"processing_time_ms": -1},
        {"progress": 101},
    ],
    ids=["status", "mode", "audio_duration_ms", "processing_time_ms", "progress"],
)
def test_database_rejects_an_invalid_job_value(change):
    job = JobFactory()

    assert _rejected_by_database(lambda: Job.objects.filter(pk=job.pk).update(**change))


@pytest.mark.parametrize(
    "change",
    [
        {"status": JobStatus.FAILED},
        {"mode": JobMode.TRANSLATE},
        {"audio_duration_ms": 0},
        {"processing_time_ms": 0},
        {"progress": 100},
    ],
    ids=["status", "mode", "audio_duration_ms", "processing_time_ms", "progress"],
)
def test_database_accepts_a_boundary_job_value(change):
    job = JobFactory()

    assert not _rejected_by_database(lambda: Job.objects.filter(pk=job.pk).update(**change))


def test_database_rejects_a_second_job_with_the_same_owner_idempotency_key():
    first = JobFactory(idempotency_key="k-1")

    assert _rejected_by_database(
        lambda: Job.objects.bulk_create([Job(owner=first.owner, model_name="tiny.en", idempotency_key="k-1")])
    )


def test_job_updated_at_changes_on_save():
    job = JobFactory()
    earlier = timezone.now() - timedelta(hours=1)
    Job.objects.filter(pk=job.pk).update(updated_at=earlier)
    job.refresh_from_db()

    job.progress = 10
    job.save()

    job.refresh_from_db()
    assert job.updated_at > earlier + timedelta(minutes=59)


def test_job_str_and_repr_name_id_status_model_and_owner():
    job = JobFactory(status=JobStatus.DONE, model_name="base")

    assert str(job) == f"{job.id} (done)"
    assert repr(job) == f"<Job {job.id} status=done model=base owner={job.owner_id}>"


def test_job_queryset_selects_owner_and_active_jobs_newest_first():
    owner = UserFactory()
    now = timezone.now()
    old = JobFactory(owner=owner, status=JobStatus.QUEUED, created_at=now - timedelta(minutes=2))
    new = JobFactory(owner=owner, status=JobStatus.PROCESSING, created_at=now)
    JobFactory(owner=owner, status=JobStatus.DONE)
    JobFactory(status=JobStatus.QUEUED)

    assert list(Job.objects.for_owner(owner).active().newest_first()) == [new, old]


# --- File artifacts ------------------------------------------------------------------------


def test_database_rejects_a_second_artifact_of_the_same_type_for_a_job():
    artifact = FileArtifactFactory(type=ArtifactType.RESULT_JSON)

    assert _rejected_by_database(
        lambda: FileArtifact.objects.bulk_create(
            [FileArtifact(job=artifact.job, type=ArtifactType.RESULT_JSON, path="jobs/x/other.json", size_bytes=1)]
        )
    )


def test_database_accepts_artifacts_of_different_types_for_a_job():
    artifact = FileArtifactFactory(type=ArtifactType.RESULT_JSON)

    assert not _rejected_by_database(
        lambda: FileArtifact.objects.bulk_create(
            [FileArtifact(job=artifact.job, type=ArtifactType.AUDIO, path="jobs/x/audio.wav", size_bytes=1)]
        )
    )


@pytest.mark.parametrize(
    "change",
    [
        {"type": "video"},
        {"size_bytes": -1},
        {"path": "/etc/passwd"},
        {"path": "jobs/../secrets.txt"},
        {"path": ".."},
        {"path": ""},
    ],
    ids=["type", "size_bytes", "absolute-path", "parent-hop", "bare-parent", "empty-path"],
)
def test_database_rejects_an_invalid_artifact_value(change):
    artifact = FileArtifactFactory()

    assert _rejected_by_database(lambda: FileArtifact.objects.filter(pk=artifact.pk).update(**change))


def test_database_accepts_a_relative_path_and_zero_size():
    artifact = FileArtifactFactory()

    assert not _rejected_by_database(
        lambda: FileArtifact.objects.filter(pk=artifact.pk).update(path="jobs/a/b.txt", size_bytes=0)
    )


def test_file_artifact_str_and_repr_name_job_type_and_size():
    artifact = FileArtifactFactory(type=ArtifactType.SUBTITLES_SRT, size_bytes=42)

    assert str(artifact) == f"{artifact.job_id}/subtitles_srt"
    assert repr(artifact) == f"<FileArtifact {artifact.id} job={artifact.job_id} type=subtitles_srt size=42>"


# --- ON DELETE actions in PostgreSQL itself ----------------------------------------------


def _make_constraints_immediate() -> None:
    # The foreign keys are DEFERRABLE INITIALLY DEFERRED; check them now, not at a commit
    # that the test transaction never reaches.
    with connection.cursor() as cursor:
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")


@pytest.mark.postgres
def test_raw_delete_of_a_user_cascades_to_jobs_and_artifacts():
    artifact = FileArtifactFactory()
    owner_id = artifact.job.owner_id
    untouched = FileArtifactFactory()
    _make_constraints_immediate()

    with connection.cursor() as cursor:
        cursor.execute("DELETE FROM users WHERE id = %s", [owner_id])

    assert not Job.objects.filter(owner_id=owner_id).exists()
    assert not FileArtifact.objects.filter(pk=artifact.pk).exists()
    assert FileArtifact.objects.filter(pk=untouched.pk).exists()


@pytest.mark.postgres
def test_raw_delete_of_a_user_sets_their_license_unassigned():
    license_ = LicenseFactory()
    _make_constraints_immediate()

    with connection.cursor() as cursor:
        cursor.execute("DELETE FROM users WHERE id = %s", [license_.assigned_to_user_id])

    license_.refresh_from_db()
    assert license_.assigned_to_user_id is None


@pytest.mark.postgres
def test_raw_delete_of_a_job_cascades_to_its_artifacts_only():
    artifact = FileArtifactFactory()
    other = FileArtifactFactory()
    _make_constraints_immediate()

    with connection.cursor() as cursor:
        cursor.execute("DELETE FROM jobs WHERE id = %s", [artifact.job_id])

    assert not FileArtifact.objects.filter(pk=artifact.pk).exists()
    assert FileArtifact.objects.filter(pk=other.pk).exists()
