"""Shared OpenAPI pieces: the error body and its responses."""

from drf_spectacular.utils import OpenApiResponse, inline_serializer
from rest_framework import serializers

ErrorBody = inline_serializer(
    name="Error",
    fields={
        "detail": serializers.CharField(),
        "code": serializers.CharField(required=False),
        "errors": serializers.DictField(
            child=serializers.ListField(child=serializers.CharField()),
            required=False,
            help_text="Per-field messages, for validation errors.",
        ),
    },
)

_DESCRIPTIONS = {
    400: "Invalid input.",
    401: "Missing, invalid, revoked or expired token.",
    403: "Not allowed by your license.",
    404: "Not found (or not yours).",
    409: "Conflicts with the job's current state.",
    413: "Upload larger than MAX_UPLOAD_MB.",
    429: "Rate or license limit exceeded; see Retry-After where given.",
    503: "A backing service (database) is unavailable.",
}

ERROR_RESPONSES = {code: OpenApiResponse(ErrorBody, description=text) for code, text in _DESCRIPTIONS.items()}


def errors(*codes: int) -> dict[int, OpenApiResponse]:
    """Return the error responses for these status codes, plus 503 (every such endpoint uses the database)."""
    return {code: ERROR_RESPONSES[code] for code in (*codes, 503)}


def strip_optional_slash(endpoints, **kwargs):
    """Document each route once, without the optional trailing slash."""
    return [(path.rstrip("/") or path, regex, method, callback) for path, regex, method, callback in endpoints]
