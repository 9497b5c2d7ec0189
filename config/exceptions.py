"""One place where errors become API responses: JSON, the right status, no internals."""

import logging

from django.core.exceptions import BadRequest, RequestDataTooBig, SuspiciousOperation
from django.db import DatabaseError, InterfaceError, OperationalError
from rest_framework import status
from rest_framework.exceptions import ValidationError
from rest_framework.response import Response
from rest_framework.views import exception_handler

from .errors import DomainError

logger = logging.getLogger(__name__)

DATABASE_UNAVAILABLE = "the database is unavailable; try again shortly"


def _first_message(data) -> str:
    if isinstance(data, dict):
        for field, value in data.items():
            message = _first_message(value)
            return message if field == "non_field_errors" else f"{field}: {message}"
    if isinstance(data, list) and data:
        return _first_message(data[0])
    return str(data) if data else "invalid input"


def _validation_body(data) -> dict:
    errors = data if isinstance(data, dict) else {"non_field_errors": data}
    return {"detail": _first_message(errors), "code": "invalid", "errors": errors}


def request_error_response(exc) -> Response | None:
    """Return the 4xx for a request Django refused to parse (too big, too many fields), else None."""
    if isinstance(exc, RequestDataTooBig):
        return Response({"detail": "request body too large", "code": "too_large"}, status=413)
    if isinstance(exc, (SuspiciousOperation, BadRequest)):
        return Response({"detail": f"bad request: {exc}", "code": "bad_request"}, status=400)
    return None


def api_exception_handler(exc, context):
    """Map domain errors to their status and outages to 503; defer the rest to DRF."""
    refused = request_error_response(exc)
    if refused is not None:
        return refused
    if isinstance(exc, DomainError):
        return Response({"detail": str(exc), "code": exc.code}, status=exc.status_code)
    if isinstance(exc, ValueError):
        return Response({"detail": str(exc), "code": "invalid"}, status=status.HTTP_400_BAD_REQUEST)
    if isinstance(exc, (OperationalError, InterfaceError)):
        logger.error("database unavailable: %s", exc.__class__.__name__)
        return Response({"detail": DATABASE_UNAVAILABLE}, status=503, headers={"Retry-After": "5"})
    response = exception_handler(exc, context)
    if isinstance(exc, ValidationError) and response is not None:
        response.data = _validation_body(response.data)
    if response is None and isinstance(exc, DatabaseError):
        logger.exception("database error")
        return Response({"detail": "internal error"}, status=500)
    return response
