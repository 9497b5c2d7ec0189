"""Request and response shapes of the transcriptions API."""

from rest_framework import serializers

from .models import FileArtifact, Job, JobMode, JobStatus
from .services import MAX_LIST_LIMIT


class JobCreateIn(serializers.Serializer):
    """multipart/form-data body of POST /api/transcriptions."""

    audio = serializers.FileField(allow_empty_file=False, help_text="The audio file (any common format).")
    model_name = serializers.CharField(
        required=False, max_length=64, help_text="Installed model; default DEFAULT_MODEL_NAME."
    )
    language = serializers.RegexField(
        r"^[A-Za-z]{2,3}$",
        required=False,
        allow_blank=True,
        max_length=3,
        help_text="ISO 639-1 code such as 'en'; omit to detect.",
        error_messages={"invalid": "language must be an ISO 639-1 code such as 'en'"},
    )
    mode = serializers.ChoiceField(choices=JobMode.choices, default=JobMode.TRANSCRIBE)


class JobListQuery(serializers.Serializer):
    """Query string of GET /api/transcriptions."""

    status = serializers.ChoiceField(choices=JobStatus.choices, required=False)
    limit = serializers.IntegerField(min_value=1, max_value=MAX_LIST_LIMIT, default=50)
    offset = serializers.IntegerField(min_value=0, max_value=2**62, default=0)
    before = serializers.UUIDField(
        required=False, help_text="Keyset pagination: jobs older than this job id (use instead of offset)."
    )


def artifact_url(job_id, artifact_type: str) -> str:
    """Return the download route of a job's artifact."""
    # Formatted, not reversed: a 200-job page has a thousand of these.
    return f"/api/transcriptions/{job_id}/artifacts/{artifact_type}"


def _timestamp(value) -> str | None:
    # DRF's format for aware UTC datetimes: ISO 8601 with a Z.
    return None if value is None else value.isoformat().replace("+00:00", "Z")


def _artifacts_of(job: Job):
    # Lists attach lightweight summaries; a single job carries prefetched rows.
    summaries = getattr(job, "artifact_summaries", None)
    return summaries if summaries is not None else job.artifacts.all()


class ArtifactOut(serializers.ModelSerializer):
    """A file of the job: its type, size in bytes and download URL."""

    url = serializers.SerializerMethodField()

    class Meta:
        model = FileArtifact
        fields = ["type", "size_bytes", "url"]

    def get_url(self, artifact: FileArtifact) -> str:
        return artifact_url(artifact.job_id, artifact.type)


class JobOut(serializers.ModelSerializer):
    """A transcription job: its settings, status, timings and files."""

    # The fields declare the schema; `to_representation` builds the same dict
    # directly, because DRF's generic field-by-field path dominated list
    # latency (see BENCHMARKS.md).
    artifacts = ArtifactOut(many=True, read_only=True)

    class Meta:
        model = Job
        fields = [
            "id",
            "status",
            "progress",
            "model_name",
            "mode",
            "language",
            "audio_duration_ms",
            "processing_time_ms",
            "error_message",
            "created_at",
            "updated_at",
            "artifacts",
        ]
        read_only_fields = fields

    def to_representation(self, job: Job) -> dict:
        job_id = str(job.id)
        return {
            "id": job_id,
            "status": job.status,
            "progress": job.progress,
            "model_name": job.model_name,
            "mode": job.mode,
            "language": job.language,
            "audio_duration_ms": job.audio_duration_ms,
            "processing_time_ms": job.processing_time_ms,
            "error_message": job.error_message,
            "created_at": _timestamp(job.created_at),
            "updated_at": _timestamp(job.updated_at),
            "artifacts": [
                {"type": a.type, "size_bytes": a.size_bytes, "url": artifact_url(job_id, a.type)}
                for a in _artifacts_of(job)
            ],
        }


class ModelOut(serializers.Serializer):
    name = serializers.CharField()
    english_only = serializers.BooleanField()
    allowed = serializers.BooleanField(help_text="Whether your license allows this model.")
    default = serializers.BooleanField()
