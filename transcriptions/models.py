"""Transcription jobs and the files they own (uploaded audio and results)."""

import uuid

from django.conf import settings
from django.db import models
from django.db.models import BigIntegerField, CharField, Expression, Prefetch, Q
from django.utils import timezone


class JobStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    PROCESSING = "processing", "Processing"
    DONE = "done", "Done"
    FAILED = "failed", "Failed"


class JobMode(models.TextChoices):
    TRANSCRIBE = "transcribe", "Transcribe"
    TRANSLATE = "translate", "Translate"


class ArtifactType(models.TextChoices):
    AUDIO = "audio", "Audio"
    RESULT_JSON = "result_json", "Result JSON"
    TRANSCRIPT_TXT = "transcript_txt", "Transcript text"
    SUBTITLES_SRT = "subtitles_srt", "Subtitles SRT"
    SUBTITLES_VTT = "subtitles_vtt", "Subtitles VTT"


class JobQuerySet(models.QuerySet):
    def for_owner(self, user):
        """Jobs the user owns."""
        return self.filter(owner=user)

    def with_artifacts(self):
        """Prefetch artifacts in one query, in a stable order."""
        return self.prefetch_related(
            Prefetch("artifacts", queryset=FileArtifact.objects.order_by("type"))
        )

    def with_artifact_list(self):
        """Annotate `artifact_list`: the job's artifacts as "type:size_bytes,..." (None if none).

        Read in the same statement as the jobs, in no set order.
        """
        return self.annotate(artifact_list=ArtifactList())

    def with_owner_total(self, owner, status: str | None = None):
        """Annotate `owner_total`: how many jobs the owner has (of this status, if given)."""
        return self.annotate(owner_total=OwnerJobCount(owner.pk, status))

    def newest_first(self):
        return self.order_by("-created_at", "-id")

    def active(self):
        """Jobs that hold a worker slot or wait for one."""
        return self.filter(status__in=[JobStatus.QUEUED, JobStatus.PROCESSING])


# The two list expressions below are written as SQL, not as ORM subqueries:
# compiling those took longer than running them (about 0.4 ms each per request,
# see BENCHMARKS.md), and a list page is the API's most frequent request.


class ArtifactList(Expression):
    """Correlated subquery over a query of jobs: the row's artifacts as "type:size_bytes,..."."""

    output_field = CharField()

    def as_sql(self, compiler, connection):
        quote = connection.ops.quote_name
        artifact_table = quote(FileArtifact._meta.db_table)
        job_column = quote(FileArtifact._meta.get_field("job").column)
        jobs = compiler.quote_name_unless_alias(compiler.query.base_table)
        concat = "STRING_AGG" if connection.vendor == "postgresql" else "GROUP_CONCAT"
        sql = (
            f"(SELECT {concat}(a.type || ':' || a.size_bytes, ',') FROM {artifact_table} a"
            f" WHERE a.{job_column} = {jobs}.{quote(Job._meta.pk.column)})"
        )
        return sql, []


class OwnerJobCount(Expression):
    """Uncorrelated subquery: the owner's job count, which the database computes once per statement."""

    output_field = BigIntegerField()

    def __init__(self, owner_id, status: str | None = None):
        super().__init__()
        self.owner_id = owner_id
        self.status = status

    def as_sql(self, compiler, connection):
        owner = Job._meta.get_field("owner")
        sql = f"SELECT COUNT(*) FROM {connection.ops.quote_name(Job._meta.db_table)} c WHERE c.{owner.column} = %s"
        params = [owner.get_db_prep_value(self.owner_id, connection)]
        if self.status is not None:
            sql += " AND c.status = %s"
            params.append(self.status)
        return f"({sql})", params


class Job(models.Model):
    """One transcription request: its settings, its state, and its timings."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        db_column="owner_user_id",
        related_name="jobs",
        # Indexed by name in Meta.indexes (jobs_owner_status_idx), beside the composite ones.
        db_index=False,
    )
    status = models.CharField(max_length=16, choices=JobStatus.choices, default=JobStatus.QUEUED)
    model_name = models.CharField(max_length=64)
    mode = models.CharField(max_length=16, choices=JobMode.choices, default=JobMode.TRANSCRIBE)
    language = models.CharField(max_length=8, null=True, blank=True)
    audio_duration_ms = models.BigIntegerField(null=True, blank=True)
    processing_time_ms = models.BigIntegerField(null=True, blank=True)
    progress = models.PositiveSmallIntegerField(default=0)
    attempts = models.PositiveSmallIntegerField(default=0)
    result_json_path = models.CharField(max_length=255, null=True, blank=True)
    transcript_txt_path = models.CharField(max_length=255, null=True, blank=True)
    error_message = models.TextField(null=True, blank=True)
    idempotency_key = models.CharField(max_length=255, null=True, blank=True, editable=False)
    enqueued_at = models.DateTimeField(null=True, blank=True, editable=False)
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    updated_at = models.DateTimeField(auto_now=True)

    objects = JobQuerySet.as_manager()

    class Meta:
        db_table = "jobs"
        ordering = ["-created_at", "-id"]
        constraints = [
            models.CheckConstraint(
                condition=Q(status__in=[s.value for s in JobStatus]), name="jobs_status_valid"
            ),
            models.CheckConstraint(
                condition=Q(mode__in=[m.value for m in JobMode]), name="jobs_mode_valid"
            ),
            models.CheckConstraint(
                condition=Q(audio_duration_ms__isnull=True) | Q(audio_duration_ms__gte=0),
                name="jobs_audio_duration_ms_non_negative",
            ),
            models.CheckConstraint(
                condition=Q(processing_time_ms__isnull=True) | Q(processing_time_ms__gte=0),
                name="jobs_processing_time_ms_non_negative",
            ),
            models.CheckConstraint(condition=Q(progress__lte=100), name="jobs_progress_at_most_100"),
            models.UniqueConstraint(
                fields=["owner", "idempotency_key"],
                condition=Q(idempotency_key__isnull=False),
                name="jobs_owner_idempotency_key_unique",
            ),
        ]
        indexes = [
            # Narrow (B-tree deduplication packs one entry per owner and status), so
            # X-Total-Count's COUNT(*), with or without a status, reads about a hundred
            # pages where the wide indexes below take tens of thousands.
            models.Index(fields=["owner", "status"], name="jobs_owner_status_idx"),
            models.Index(fields=["owner", "-created_at", "-id"], name="jobs_owner_created_idx"),
            models.Index(
                fields=["owner", "status", "-created_at", "-id"], name="jobs_owner_status_created_idx"
            ),
            # The recovery sweep scans only unfinished jobs.
            models.Index(
                fields=["status", "updated_at"],
                name="jobs_unfinished_updated_idx",
                condition=Q(status__in=["queued", "processing"]),
            ),
        ]

    def __str__(self) -> str:
        return f"{self.id} ({self.status})"

    def __repr__(self) -> str:
        return f"<Job {self.id} status={self.status} model={self.model_name} owner={self.owner_id}>"


class FileArtifact(models.Model):
    """A file in storage that belongs to a job: its audio or one of its results."""

    # The unique (job, type) index serves lookups by job; no separate index.
    job = models.ForeignKey(
        Job, on_delete=models.CASCADE, db_column="job_id", related_name="artifacts", db_index=False
    )
    type = models.CharField(max_length=32, choices=ArtifactType.choices)
    path = models.CharField(max_length=255, help_text="Storage name, relative to the storage root.")
    size_bytes = models.BigIntegerField()
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        db_table = "file_artifacts"
        ordering = ["job", "type"]
        constraints = [
            models.UniqueConstraint(fields=["job", "type"], name="file_artifacts_job_type_unique"),
            models.CheckConstraint(
                condition=Q(type__in=[t.value for t in ArtifactType]), name="file_artifacts_type_valid"
            ),
            models.CheckConstraint(condition=Q(size_bytes__gte=0), name="file_artifacts_size_non_negative"),
            # A storage name is relative: no leading slash, no parent-directory hops.
            models.CheckConstraint(
                condition=~Q(path__startswith="/") & ~Q(path__contains="..") & ~Q(path=""),
                name="file_artifacts_path_relative",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.job_id}/{self.type}"

    def __repr__(self) -> str:
        return f"<FileArtifact {self.id} job={self.job_id} type={self.type} size={self.size_bytes}>"
