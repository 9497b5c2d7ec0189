"""Plain-Django twins of the job list, to measure what DRF costs (see bench/ and BENCHMARKS.md).

The routes exist only when the environment sets BENCH_VIEWS=1, as `make bench`
does for the gunicorn it starts; everywhere else this module routes nothing.
Both views authenticate with the API's own bearer-token class, exactly as the API
does, and read the same queryset (`services.jobs_of_user`).
"""

import os

from django.http import HttpRequest, JsonResponse
from django.urls import path
from rest_framework.exceptions import AuthenticationFailed

from accounts.authentication import BearerTokenAuthentication
from transcriptions import services
from transcriptions.serializers import JobOut, artifact_url

# The same columns as the API's JobOut, without its nested artifacts.
JOB_FIELDS = tuple(name for name in JobOut.Meta.fields if name != "artifacts")
UNAUTHORIZED = {"detail": "Authentication credentials were not provided or are invalid."}


def _authenticate(request: HttpRequest):
    try:
        result = BearerTokenAuthentication().authenticate(request)
    except AuthenticationFailed:
        return None
    return result[0] if result else None


def _page(request: HttpRequest) -> tuple[int, int]:
    limit = min(max(int(request.GET.get("limit", 50)), 1), services.MAX_LIST_LIMIT)
    offset = max(int(request.GET.get("offset", 0)), 0)
    return limit, offset


def plain_jobs(request: HttpRequest) -> JsonResponse:
    """The list endpoint's page query through values() and JsonResponse, nothing else."""
    user = _authenticate(request)
    if user is None:
        return JsonResponse(UNAUTHORIZED, status=401)
    limit, offset = _page(request)
    rows = services.jobs_of_user(user).values(*JOB_FIELDS)[offset : offset + limit]
    return JsonResponse(list(rows), safe=False)


def plain_jobs_full(request: HttpRequest) -> JsonResponse:
    """The list endpoint's statement (page, artifacts, total) and JSON, without DRF or model instances."""
    user = _authenticate(request)
    if user is None:
        return JsonResponse(UNAUTHORIZED, status=401)
    limit, offset = _page(request)
    page = (
        services.jobs_of_user(user)
        .with_artifact_list()
        .with_owner_total(user)
        .values(*JOB_FIELDS, "artifact_list", "owner_total")[offset : offset + limit]
    )
    rows, total = [], 0
    for row in page:
        total = row.pop("owner_total")
        items = sorted(item.rpartition(":") for item in (row.pop("artifact_list") or "").split(",") if item)
        row["artifacts"] = [
            {
                "type": type_,
                "size_bytes": int(size),
                "url": artifact_url(row["id"], type_),
            }
            for type_, _, size in items
        ]
        rows.append(row)
    if not rows and offset:
        total = services.count_jobs_by_user(user)  # past the end no row carries it, as in the service
    response = JsonResponse(rows, safe=False)
    response["X-Total-Count"] = str(total)
    return response


urlpatterns = (
    [
        path("plain-jobs", plain_jobs, name="bench-plain-jobs"),
        path("plain-jobs-full", plain_jobs_full, name="bench-plain-jobs-full"),
    ]
    if os.environ.get("BENCH_VIEWS") == "1"
    else []
)
