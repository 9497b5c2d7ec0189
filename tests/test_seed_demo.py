"""The seed_demo management command: what it creates, and that running it again is safe."""

import io
import json
import os

import pytest
from django.contrib.auth import authenticate
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.core.management import call_command
from django.core.management.base import CommandError

from accounts.models import Role, User
from licenses.models import License
from licenses.services import active_license_for
from tests.factories import FileArtifactFactory, JobFactory
from tests.worker_harness import MAX_WORD_ERROR_RATE, word_error_rate
from transcriptions import pipeline
from transcriptions import services as job_services
from transcriptions.management.commands import seed_demo
from transcriptions.models import ArtifactType, FileArtifact, Job, JobStatus

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _fast_password_hasher(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture(autouse=True)
def _no_demo_passwords_from_the_environment(monkeypatch):
    monkeypatch.delenv("DEMO_ADMIN_PASSWORD", raising=False)
    monkeypatch.delenv("DEMO_USER_PASSWORD", raising=False)


def seed(*args: str) -> str:
    """Run seed_demo with these options; return what it printed."""
    out = io.StringIO()
    call_command("seed_demo", *args, stdout=out)
    return out.getvalue()


def counts() -> tuple[int, int, int, int]:
    return User.objects.count(), License.objects.count(), Job.objects.count(), FileArtifact.objects.count()


def demo_user() -> User:
    return User.objects.get(email=seed_demo.USER_EMAIL)


def stored_job_of_another_user() -> tuple[Job, str]:
    """Create someone else's done job with a real file in storage; return it and the file name."""
    job = JobFactory(status=JobStatus.DONE)
    name = default_storage.save(f"jobs/{job.pk}/result.json", ContentFile(b"{}"))
    FileArtifactFactory(job=job, type=ArtifactType.RESULT_JSON, path=name, size_bytes=2)
    return job, name


# --- First run ------------------------------------------------------------------------------


def test_first_run_creates_the_demo_admin_and_user():
    seed()

    assert dict(User.objects.values_list("email", "role")) == {
        "admin@example.com": Role.ADMIN,
        "user@example.com": Role.USER,
    }


def test_first_run_gives_the_demo_user_an_active_license():
    seed()

    license_ = active_license_for(demo_user())
    assert license_ is not None
    assert license_.key == seed_demo.DEMO_LICENSE_KEY
    assert license_.features == seed_demo.DEMO_FEATURES


def test_first_run_creates_a_queued_a_processing_and_a_done_job():
    seed()

    assert sorted(Job.objects.filter(owner=demo_user()).values_list("status", flat=True)) == [
        JobStatus.DONE,
        JobStatus.PROCESSING,
        JobStatus.QUEUED,
    ]


def test_done_demo_job_has_result_and_transcript_files_of_their_recorded_size():
    seed()

    done = Job.objects.get(status=JobStatus.DONE)
    artifacts = {a.type: a for a in done.artifacts.all()}
    assert set(artifacts) == {ArtifactType.RESULT_JSON, ArtifactType.TRANSCRIPT_TXT}
    for artifact in artifacts.values():
        assert default_storage.exists(artifact.path)
        assert artifact.size_bytes == os.path.getsize(default_storage.path(artifact.path)) > 0
    assert (done.result_json_path, done.transcript_txt_path) == (
        artifacts[ArtifactType.RESULT_JSON].path,
        artifacts[ArtifactType.TRANSCRIPT_TXT].path,
    )


def test_done_demo_job_files_hold_the_demo_transcript():
    seed()

    done = Job.objects.get(status=JobStatus.DONE)
    with default_storage.open(done.result_json_path) as result:
        assert json.loads(result.read())["text"] == seed_demo.DEMO_TRANSCRIPT["text"]
    with default_storage.open(done.transcript_txt_path) as transcript:
        assert transcript.read().decode() == "Welcome to the demo transcript.\n"
    assert (done.progress, done.audio_duration_ms) == (100, 3200)


@pytest.mark.parametrize("status", [JobStatus.QUEUED, JobStatus.PROCESSING])
def test_unfinished_demo_jobs_carry_the_demo_speech_as_their_audio(status):
    seed()

    job = Job.objects.get(status=status)
    (audio,) = job.artifacts.all()
    assert audio.type == ArtifactType.AUDIO
    with default_storage.open(audio.path, "rb") as stored:
        assert stored.read() == seed_demo.DEMO_AUDIO.read_bytes()
    assert audio.size_bytes == seed_demo.DEMO_AUDIO.stat().st_size
    assert 1000 < job.audio_duration_ms < 5000


@pytest.mark.slow
def test_the_queued_demo_job_is_real_work_a_worker_transcribes():
    seed()
    queued = Job.objects.get(status=JobStatus.QUEUED)

    pipeline.process_job(str(queued.pk), job_services.claim_job(queued.pk))

    done = Job.objects.get(pk=queued.pk)
    assert done.status == JobStatus.DONE, done.error_message
    with default_storage.open(done.transcript_txt_path) as transcript:
        text = transcript.read().decode()
    assert word_error_rate("Hello there, good morning.", text) <= MAX_WORD_ERROR_RATE


def test_first_run_prints_a_summary_line():
    output = seed()

    assert output == (
        "seed_demo: created 2 user(s), 3 job(s), 4 artifact(s); now 2 user(s), 1 license(s), 3 job(s), 4 artifact(s)\n"
    )


# --- Running again ----------------------------------------------------------------------------


def test_second_run_changes_no_counts(media_files):
    seed()
    before, files_before = counts(), media_files()

    output = seed()

    assert counts() == before == (2, 1, 3, 4)
    assert media_files() == files_before
    assert output.startswith("seed_demo: created 0 user(s), 0 job(s), 0 artifact(s);")


def test_second_run_keeps_the_demo_jobs():
    seed()
    ids = set(Job.objects.values_list("pk", flat=True))

    seed()

    assert set(Job.objects.values_list("pk", flat=True)) == ids


def test_rerun_restores_a_demoted_or_deactivated_demo_account():
    seed()
    User.objects.filter(email=seed_demo.ADMIN_EMAIL).update(role=Role.USER, is_active=False)

    seed()

    admin = User.objects.get(email=seed_demo.ADMIN_EMAIL)
    assert (admin.role, admin.is_active) == (Role.ADMIN, True)


def test_force_recreates_the_demo_users_jobs_and_removes_their_old_files(
    django_capture_on_commit_callbacks, media_files
):
    seed()
    old_ids = set(Job.objects.values_list("pk", flat=True))
    old_files = set(media_files())

    with django_capture_on_commit_callbacks(execute=True):
        seed("--force")

    new_ids = set(Job.objects.values_list("pk", flat=True))
    assert len(new_ids) == 3
    assert new_ids.isdisjoint(old_ids)
    assert counts() == (2, 1, 3, 4)
    assert old_files.isdisjoint(media_files())
    assert len(media_files()) == 4


def test_force_leaves_other_users_jobs_alone(django_capture_on_commit_callbacks):
    seed()
    other, name = stored_job_of_another_user()

    with django_capture_on_commit_callbacks(execute=True):
        seed("--force")

    assert Job.objects.filter(pk=other.pk).exists()
    assert default_storage.exists(name)


def test_reset_deletes_every_job_and_file_then_reseeds(settings, django_capture_on_commit_callbacks, media_files):
    settings.DEBUG = True  # the test runner turns DEBUG off; --reset needs no --yes in debug mode
    seed()
    other, name = stored_job_of_another_user()

    with django_capture_on_commit_callbacks(execute=True):
        seed("--reset")

    assert not Job.objects.filter(pk=other.pk).exists()
    assert User.objects.filter(pk=other.owner_id).exists()
    assert not default_storage.exists(name)
    assert Job.objects.filter(owner=demo_user()).count() == Job.objects.count() == 3
    assert len(media_files()) == 4


def test_reset_with_debug_off_needs_yes(settings):
    settings.DEBUG = False
    other, name = stored_job_of_another_user()

    with pytest.raises(CommandError, match="--yes"):
        seed("--reset")

    assert Job.objects.filter(pk=other.pk).exists()
    assert not User.objects.filter(email=seed_demo.USER_EMAIL).exists()


def test_reset_with_debug_off_and_yes_deletes_every_job(settings, django_capture_on_commit_callbacks):
    settings.DEBUG = False
    other, name = stored_job_of_another_user()

    with django_capture_on_commit_callbacks(execute=True):
        seed("--reset", "--yes")

    assert not Job.objects.filter(pk=other.pk).exists()
    assert not default_storage.exists(name)
    assert Job.objects.count() == 3


# --- Passwords ------------------------------------------------------------------------------------


def test_demo_users_can_log_in_with_the_default_passwords():
    seed()

    assert authenticate(username=seed_demo.USER_EMAIL, password=seed_demo.DEFAULT_USER_PASSWORD) == demo_user()
    assert authenticate(username=seed_demo.ADMIN_EMAIL, password=seed_demo.DEFAULT_ADMIN_PASSWORD) == User.objects.get(
        email=seed_demo.ADMIN_EMAIL
    )


def test_demo_user_password_comes_from_the_environment(monkeypatch):
    monkeypatch.setenv("DEMO_USER_PASSWORD", "from-the-environment-42")

    seed()

    assert authenticate(username=seed_demo.USER_EMAIL, password="from-the-environment-42") == demo_user()
    assert authenticate(username=seed_demo.USER_EMAIL, password=seed_demo.DEFAULT_USER_PASSWORD) is None


def test_demo_admin_password_comes_from_the_environment(monkeypatch):
    monkeypatch.setenv("DEMO_ADMIN_PASSWORD", "admin-from-env-42")

    seed()

    admin = User.objects.get(email=seed_demo.ADMIN_EMAIL)
    assert authenticate(username=seed_demo.ADMIN_EMAIL, password="admin-from-env-42") == admin


def test_rerun_with_a_new_environment_password_changes_it(monkeypatch):
    seed()
    monkeypatch.setenv("DEMO_USER_PASSWORD", "rotated-password-42")

    seed()

    assert authenticate(username=seed_demo.USER_EMAIL, password="rotated-password-42") == demo_user()
    assert authenticate(username=seed_demo.USER_EMAIL, password=seed_demo.DEFAULT_USER_PASSWORD) is None


# --- Failure --------------------------------------------------------------------------------------


def test_a_failure_midway_changes_nothing_and_removes_written_files(monkeypatch, media_files):
    real_add_artifact = job_services.add_artifact
    calls = []

    def add_artifact_failing_the_second_time(*args, **kwargs):
        calls.append(args)
        if len(calls) == 2:
            raise ValueError("disk on fire")
        return real_add_artifact(*args, **kwargs)

    monkeypatch.setattr(job_services, "add_artifact", add_artifact_failing_the_second_time)

    with pytest.raises(CommandError, match="seeding failed: disk on fire; nothing was changed"):
        seed()

    assert counts() == (0, 0, 0, 0)
    assert media_files() == []
