"""Make every /api/ error JSON, including ones raised outside DRF's views."""

import logging

from django.core.exceptions import BadRequest, PermissionDenied, SuspiciousOperation
from django.db import InterfaceError, OperationalError
from django.http import Http404, JsonResponse

logger = logging.getLogger(__name__)

_MESSAGES = {
    400: "bad request",
    403: "forbidden",
    404: "not found",
    405: "method not allowed",
    413: "request body too large",
    500: "internal error",
}


class ApiErrorMiddleware:
    """Under /api/, turn HTML error pages and unhandled exceptions into JSON."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        if not request.path.startswith("/api/") or response.status_code < 400:
            return response
        if response.get("Content-Type", "").startswith("application/json"):
            return response
        status = response.status_code
        return JsonResponse({"detail": _MESSAGES.get(status, "error")}, status=status)

    def process_exception(self, request, exception):
        if not request.path.startswith("/api/"):
            return None
        if isinstance(exception, (SuspiciousOperation, BadRequest, PermissionDenied, Http404)):
            # Django turns these into their 4xx; __call__ then makes that JSON.
            return None
        if isinstance(exception, (OperationalError, InterfaceError)):
            logger.error("database unavailable: %s", exception.__class__.__name__)
            response = JsonResponse({"detail": "the database is unavailable; try again shortly"}, status=503)
            response["Retry-After"] = "5"
            return response
        logger.exception("unhandled error on %s %s", request.method, request.path)
        return JsonResponse({"detail": "internal error"}, status=500)
