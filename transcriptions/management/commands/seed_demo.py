"""Seed demo users, a license and jobs; safe to run again and again."""

import logging
import os
from datetime import timedelta
from pathlib import Path

from django.conf import settings
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.core.management.base import BaseCommand, CommandError
from django.db import IntegrityError, transaction
from django.utils import timezone

from accounts import services as accounts
from accounts.models import Role, User
from licenses import services as licenses
from licenses.models import License
from transcriptions import engine, formats
from transcriptions import services as jobs
from transcriptions.models import ArtifactType, FileArtifact, Job, JobStatus

logger = logging.getLogger(__name__)

ADMIN_EMAIL = "admin@example.com"
USER_EMAIL = "user@example.com"
DEFAULT_ADMIN_PASSWORD = "admin-demo-password"
DEFAULT_USER_PASSWORD = "user-demo-password"
DEMO_LICENSE_KEY = "DEMO-LICENSE-0001"
# Real speech ("Hello there, good morning."), so the queued and processing
# demo jobs are real work: a worker, or the embedded sweep, transcribes them.
DEMO_AUDIO = Path(__file__).resolve().parents[2] / "demo" / "hello.mp3"
DEMO_FEATURES = {
    "models": ["tiny.en"],
    "max_audio_seconds": 3600,
    "monthly_audio_minutes": 600,
    "max_concurrent_jobs": 4,
    "translate": True,
}
DEMO_TRANSCRIPT = {
    "language": "en",
    "language_probability": 1.0,
    "duration": 3.2,
    "model": "tiny.en",
    "text": "Welcome to the demo transcript.",
    "segments": [
        {
            "id": 0,
            "start": 0.0,
            "end": 3.2,
            "text": "Welcome to the demo transcript.",
            "words": [
                {"start": 0.0, "end": 0.6, "word": "Welcome", "probability": 0.98},
                {"start": 0.6, "end": 0.8, "word": "to", "probability": 0.99},
                {"start": 0.8, "end": 1.1, "word": "the", "probability": 0.99},
                {"start": 1.1, "end": 1.7, "word": "demo", "probability": 0.95},
                {"start": 1.7, "end": 3.2, "word": "transcript.", "probability": 0.97},
            ],
        }
    ],
}


class Command(BaseCommand):
    help = "Create demo users, a demo license and demo jobs (idempotent)."

    def add_arguments(self, parser):
        parser.add_argument("--force", action="store_true", help="recreate the demo user's jobs and files")
        parser.add_argument("--reset", action="store_true", help="delete ALL jobs and files, then seed")
        parser.add_argument("--yes", action="store_true", help="confirm --reset when DEBUG is off")

    def handle(self, *args, force=False, reset=False, yes=False, **options):
        if reset and not settings.DEBUG and not yes:
            raise CommandError("--reset deletes every job and file; with DEBUG off, add --yes to confirm")
        stored: list[str] = []
        try:
            with transaction.atomic():
                created = self._seed(force=force, reset=reset, stored=stored)
        except IntegrityError as exc:
            jobs.delete_stored_files(stored)
            raise CommandError(f"seeding failed on a database constraint ({exc}); nothing was changed") from None
        except ValueError as exc:
            jobs.delete_stored_files(stored)
            raise CommandError(f"seeding failed: {exc}; nothing was changed") from None
        except BaseException:
            jobs.delete_stored_files(stored)
            raise
        self.stdout.write(
            f"seed_demo: created {created['users']} user(s), {created['jobs']} job(s), "
            f"{created['artifacts']} artifact(s); now {User.objects.count()} user(s), "
            f"{License.objects.count()} license(s), {Job.objects.count()} job(s), "
            f"{FileArtifact.objects.count()} artifact(s)"
        )

    def _seed(self, *, force: bool, reset: bool, stored: list[str]) -> dict[str, int]:
        created = {"users": 0, "jobs": 0, "artifacts": 0}
        if reset:
            jobs.delete_jobs(Job.objects.all())
        admin = self._upsert_user(ADMIN_EMAIL, "DEMO_ADMIN_PASSWORD", DEFAULT_ADMIN_PASSWORD, Role.ADMIN, created)
        user = self._upsert_user(USER_EMAIL, "DEMO_USER_PASSWORD", DEFAULT_USER_PASSWORD, Role.USER, created)
        licenses.upsert_license(
            DEMO_LICENSE_KEY,
            "demo",
            DEMO_FEATURES,
            valid_from=timezone.now() - timedelta(days=1),
            valid_until=timezone.now() + timedelta(days=365),
        )
        licenses.assign_license_to_user(DEMO_LICENSE_KEY, user)
        if force:
            jobs.delete_jobs(Job.objects.for_owner(user))
        if not Job.objects.for_owner(user).exists():
            self._create_jobs(user, created, stored)
        logger.debug("seed_demo admin=%s user=%s license=%s", admin.pk, user.pk, DEMO_LICENSE_KEY)
        return created

    def _upsert_user(self, email: str, env_var: str, default: str, role: str, created: dict) -> User:
        password = os.environ.get(env_var) or default
        user = accounts.get_user_by_email(email)
        if user is None:
            user = accounts.create_user(email, password, role=role)
            created["users"] += 1
            logger.debug("created user %s (%s)", user.pk, email)
        else:
            if user.role != role or not user.is_active:
                user.role, user.is_active = role, True
                user.save(update_fields=["role", "is_active"])
            if not user.check_password(password):
                user.set_password(password)
                user.save(update_fields=["password"])
        return user

    def _create_jobs(self, user: User, created: dict, stored: list[str]) -> None:
        duration_ms = int(engine.probe_audio(str(DEMO_AUDIO)) * 1000)
        queued = jobs.create_job(user, "tiny.en", audio_duration_ms=duration_ms)
        processing = jobs.create_job(user, "tiny.en", audio_duration_ms=duration_ms)
        for job in (queued, processing):
            name = default_storage.save(f"jobs/{job.pk}/audio.mp3", ContentFile(DEMO_AUDIO.read_bytes()))
            stored.append(name)
            jobs.add_artifact(job, ArtifactType.AUDIO, name, default_storage.size(name))
            created["artifacts"] += 1
        jobs.set_job_status(processing, JobStatus.PROCESSING)
        done = jobs.create_job(user, "tiny.en", language="en")
        jobs.set_job_status(done, JobStatus.PROCESSING)
        files = {
            ArtifactType.RESULT_JSON: ("result.json", formats.to_json_bytes(DEMO_TRANSCRIPT)),
            ArtifactType.TRANSCRIPT_TXT: ("transcript.txt", formats.to_txt(DEMO_TRANSCRIPT).encode()),
        }
        for type_, (filename, data) in files.items():
            name = default_storage.save(f"jobs/{done.pk}/{filename}", ContentFile(data))
            stored.append(name)
            jobs.add_artifact(done, type_, name, default_storage.size(name))
            created["artifacts"] += 1
        jobs.set_job_status(done, JobStatus.DONE)
        Job.objects.filter(pk=done.pk).update(
            audio_duration_ms=int(DEMO_TRANSCRIPT["duration"] * 1000),
            processing_time_ms=850,
            result_json_path=stored[-2],
            transcript_txt_path=stored[-1],
        )
        created["jobs"] += 3
        logger.debug("created jobs %s (queued), %s (processing), %s (done)", queued.pk, processing.pk, done.pk)
