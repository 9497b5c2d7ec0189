"""Request and response shapes of the transcriptions API."""

from django.conf import settings
from django.urls import reverse
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


class ArtifactOut(serializers.ModelSerializer):
    url = serializers.SerializerMethodField()

    class Meta:
        model = FileArtifact
        fields = ["type", "size_bytes", "url"]

    def get_url(self, artifact: FileArtifact) -> str:
        return reverse("transcription-artifact", kwargs={"pk": str(artifact.job_id), "artifact_type": artifact.type})


class JobOut(serializers.ModelSerializer):
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


class ModelOut(serializers.Serializer):
    name = serializers.CharField()
    english_only = serializers.BooleanField()
    allowed = serializers.BooleanField(help_text="Whether your license allows this model.")
    default = serializers.BooleanField()


class ErrorOut(serializers.Serializer):
    detail = serializers.CharField()
    code = serializers.CharField(required=False)
    errors = serializers.DictField(required=False, help_text="Per-field messages for validation errors.")


def default_model_name() -> str:
    return settings.DEFAULT_MODEL_NAME
