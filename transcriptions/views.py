"""HTTP API for transcription jobs: routing shells around the services."""

from urllib.parse import urlencode

from django.conf import settings
from django.core.files.storage import default_storage
from django.http import FileResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import NotFound
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.response import Response
from rest_framework.views import APIView

from config.errors import PayloadTooLarge
from config.schema import errors
from licenses.services import active_license_for

from . import engine, services
from .models import ArtifactType
from .serializers import JobCreateIn, JobListQuery, JobOut, ModelOut

ARTIFACT_FILES = {
    ArtifactType.TRANSCRIPT_TXT: ("text/plain; charset=utf-8", "txt"),
    ArtifactType.RESULT_JSON: ("application/json", "json"),
    ArtifactType.SUBTITLES_SRT: ("application/x-subrip", "srt"),
    ArtifactType.SUBTITLES_VTT: ("text/vtt; charset=utf-8", "vtt"),
}
AUDIO_TYPES = {
    "wav": "audio/wav",
    "mp3": "audio/mpeg",
    "ogg": "audio/ogg",
    "opus": "audio/ogg",
    "flac": "audio/flac",
    "m4a": "audio/mp4",
    "webm": "audio/webm",
    "aac": "audio/aac",
}
NOT_FOUND = "not found"

IDEMPOTENCY_HEADER = OpenApiParameter(
    "Idempotency-Key",
    OpenApiTypes.STR,
    OpenApiParameter.HEADER,
    description="Repeat a POST safely: the same key within 24 hours returns the first job.",
)


def _response_header(name: str, type_, status: int, description: str) -> OpenApiParameter:
    return OpenApiParameter(name, type_, OpenApiParameter.HEADER, response=[status], description=description)


LIST_HEADERS = [
    _response_header("X-Total-Count", OpenApiTypes.INT, 200, "Number of jobs matching the filter."),
    _response_header(
        "Link", OpenApiTypes.STR, 200, 'RFC 8288 links to the rel="next" and rel="prev" pages, where they exist.'
    ),
]
CREATE_HEADERS = [
    _response_header("Location", OpenApiTypes.STR, 201, "/api/transcriptions/<id> of the job."),
    _response_header(
        "Idempotent-Replayed",
        OpenApiTypes.STR,
        201,
        "'true' when an earlier request with the same Idempotency-Key created this job.",
    ),
    _response_header("Retry-After", OpenApiTypes.INT, 429, "Seconds to wait, for rate limits."),
]


def _page_links(request, query: dict, count: int, jobs: list) -> str:
    base = request.build_absolute_uri(request.path)
    limit, offset = query["limit"], query["offset"]
    kept = {k: v for k, v in request.query_params.items() if k not in ("limit", "offset", "before")}
    links = []
    if "before" in query:
        if len(jobs) == limit:
            params = {**kept, "limit": limit, "before": str(jobs[-1].id)}
            links.append(f'<{base}?{urlencode(params)}>; rel="next"')
        return ", ".join(links)
    if offset + limit < count:
        links.append(f'<{base}?{urlencode({**kept, "limit": limit, "offset": offset + limit})}>; rel="next"')
    if offset > 0:
        prev = max(0, min(offset - limit, count - limit if count else 0))
        links.append(f'<{base}?{urlencode({**kept, "limit": limit, "offset": prev})}>; rel="prev"')
    return ", ".join(links)


@extend_schema_view(
    list=extend_schema(
        summary="List your jobs, newest first",
        parameters=[JobListQuery, *LIST_HEADERS],
        responses={
            200: OpenApiResponse(JobOut(many=True), description="A page of jobs. Headers: X-Total-Count, Link."),
            **errors(400, 401),
        },
    ),
    retrieve=extend_schema(summary="Get one job", responses={200: JobOut, **errors(401, 404)}),
    destroy=extend_schema(
        summary="Delete a job and its files",
        responses={204: OpenApiResponse(description="Deleted."), **errors(401, 404, 409)},
    ),
    create=extend_schema(
        summary="Upload audio and queue a transcription job",
        request={"multipart/form-data": JobCreateIn},
        parameters=[IDEMPOTENCY_HEADER, *CREATE_HEADERS],
        responses={
            201: OpenApiResponse(JobOut, description="Job queued. Header: Location: /api/transcriptions/<id>."),
            **errors(400, 401, 403, 413, 429),
        },
    ),
)
class JobViewSet(viewsets.ViewSet):
    """Transcription jobs of the authenticated user."""

    parser_classes = [MultiPartParser, FormParser]
    lookup_value_regex = "[^/]+"
    serializer_class = JobOut

    def _get_job(self, pk):
        job = services.get_job_for_owner(self.request.user, pk)
        if job is None:
            raise NotFound(NOT_FOUND)
        return job

    def list(self, request):
        query = JobListQuery(data=request.query_params)
        query.is_valid(raise_exception=True)
        params = query.validated_data
        page = services.page_of_jobs_by_user(
            request.user, params.get("status"), params["limit"], params["offset"], before=params.get("before")
        )
        headers = {"X-Total-Count": str(page.total)}
        links = _page_links(request, params, page.total, page.jobs)
        if links:
            headers["Link"] = links
        return Response(JobOut(page.jobs, many=True).data, headers=headers)

    def create(self, request):
        limit_bytes = settings.MAX_UPLOAD_MB * 1024 * 1024
        # Refuse an oversized body before reading it; multipart overhead gets a little slack.
        if int(request.META.get("CONTENT_LENGTH") or 0) > limit_bytes + 64 * 1024:
            raise PayloadTooLarge(f"the upload is larger than {settings.MAX_UPLOAD_MB} MB")
        data = JobCreateIn(data=request.data)
        data.is_valid(raise_exception=True)
        audio = data.validated_data["audio"]
        if audio.size > limit_bytes:
            raise PayloadTooLarge(f"the upload is larger than {settings.MAX_UPLOAD_MB} MB")
        submission = services.submit_job(
            request.user,
            audio,
            model_name=data.validated_data.get("model_name"),
            language=data.validated_data.get("language") or None,
            mode=data.validated_data["mode"],
            idempotency_key=request.headers.get("Idempotency-Key"),
        )
        job = services.get_job_for_owner(request.user, submission.job.pk)
        headers = {"Location": f"/api/transcriptions/{job.pk}"}
        if not submission.created:
            headers["Idempotent-Replayed"] = "true"
        return Response(JobOut(job).data, status=status.HTTP_201_CREATED, headers=headers)

    def retrieve(self, request, pk=None):
        return Response(JobOut(self._get_job(pk)).data)

    def destroy(self, request, pk=None):
        services.delete_job(self._get_job(pk))
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(
        summary="Download one of the job's files",
        parameters=[
            OpenApiParameter("artifact_type", OpenApiTypes.STR, OpenApiParameter.PATH, enum=ArtifactType.values),
            _response_header(
                "Content-Disposition", OpenApiTypes.STR, 200, "attachment; filename=<job id>-<type>.<extension>"
            ),
        ],
        responses={
            (200, "application/octet-stream"): OpenApiResponse(
                OpenApiTypes.BINARY, description="The file, with Content-Type and Content-Disposition."
            ),
            **errors(401, 404),
        },
    )
    @action(detail=True, methods=["get"], url_path=r"artifacts/(?P<artifact_type>[^/]+)", url_name="artifact")
    def artifact(self, request, pk=None, artifact_type=None):
        job = self._get_job(pk)
        found = next((a for a in job.artifacts.all() if a.type == artifact_type), None)
        if found is None or not default_storage.exists(found.path):
            raise NotFound(NOT_FOUND)
        if artifact_type == ArtifactType.AUDIO:
            extension = found.path.rsplit(".", 1)[-1] if "." in found.path else "bin"
            content_type = AUDIO_TYPES.get(extension, "application/octet-stream")
        else:
            content_type, extension = ARTIFACT_FILES[artifact_type]
        return FileResponse(
            default_storage.open(found.path, "rb"),
            as_attachment=True,
            filename=f"{job.pk}-{artifact_type}.{extension}",
            content_type=content_type,
        )


class ModelListView(APIView):
    """The models this server can run, and which of them your license allows."""

    @extend_schema(summary="List installed models", responses={200: ModelOut(many=True), **errors(401)})
    def get(self, request):
        license_ = active_license_for(request.user)
        allowed_names = (license_.features or {}).get("models") if license_ else []
        rows = [
            {
                "name": name,
                "english_only": engine.is_english_only(name),
                "allowed": license_ is not None and (allowed_names is None or name in allowed_names),
                "default": name == settings.DEFAULT_MODEL_NAME,
            }
            for name in services.installed_model_names()
        ]
        return Response(ModelOut(rows, many=True).data)
