"""factory-boy factories, one per model."""

from datetime import timedelta

import factory
from django.utils import timezone
from factory.django import DjangoModelFactory

from accounts.models import Role, User
from licenses.models import License
from transcriptions.models import ArtifactType, FileArtifact, Job, JobMode, JobStatus

DEFAULT_PASSWORD = "correct-horse-battery-staple"


class UserFactory(DjangoModelFactory):
    class Meta:
        model = User
        skip_postgeneration_save = True

    email = factory.Sequence(lambda n: f"user{n}@example.com")
    role = Role.USER
    is_active = True

    @factory.post_generation
    def password(self, create, extracted, **kwargs):
        self.set_password(extracted or DEFAULT_PASSWORD)
        if create:
            self.save(update_fields=["password"])


class AdminFactory(UserFactory):
    role = Role.ADMIN


class LicenseFactory(DjangoModelFactory):
    class Meta:
        model = License

    key = factory.Sequence(lambda n: f"LIC-{n:06d}")
    assigned_to_user = factory.SubFactory(UserFactory)
    plan = "pro"
    features = factory.LazyFunction(dict)
    valid_from = factory.LazyFunction(lambda: timezone.now() - timedelta(days=1))
    valid_until = None
    is_revoked = False


class JobFactory(DjangoModelFactory):
    class Meta:
        model = Job

    owner = factory.SubFactory(UserFactory)
    status = JobStatus.QUEUED
    model_name = "tiny.en"
    mode = JobMode.TRANSCRIBE
    language = None


class FileArtifactFactory(DjangoModelFactory):
    class Meta:
        model = FileArtifact

    job = factory.SubFactory(JobFactory)
    type = ArtifactType.TRANSCRIPT_TXT
    path = factory.LazyAttribute(lambda a: f"jobs/{a.job.pk}/{a.type}.bin")
    size_bytes = 0
