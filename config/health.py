"""Liveness and readiness probes: unauthenticated, unthrottled, read-only."""

import logging
import time

import redis
from django.conf import settings
from django.db import DatabaseError, connection
from drf_spectacular.utils import OpenApiResponse, extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

logger = logging.getLogger(__name__)

REDIS_PING_TIMEOUT_SECONDS = 0.2


def _body(db_ok: bool | None, redis_ok: bool | None) -> dict:
    return {"db_ok": db_ok, "redis_ok": redis_ok, "version": settings.APP_VERSION, "time": int(time.time())}


def database_ok() -> bool:
    """Return whether the database answers SELECT 1."""
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
        return True
    except DatabaseError as exc:
        logger.error("readiness: database check failed: %s", str(exc).strip().splitlines()[0] if str(exc) else exc)
        # Drop the broken connection so the next request dials afresh.
        connection.close_if_unusable_or_obsolete()
        return False


def redis_ok() -> bool | None:
    """Return whether Redis answers PING within 0.2 s, or None if it is not configured."""
    if not settings.REDIS_URL:
        return None
    try:
        client = redis.Redis.from_url(
            settings.REDIS_URL,
            socket_timeout=REDIS_PING_TIMEOUT_SECONDS,
            socket_connect_timeout=REDIS_PING_TIMEOUT_SECONDS,
        )
        try:
            return bool(client.ping())
        finally:
            client.close()
    except redis.RedisError as exc:
        logger.warning("readiness: redis check failed: %s", exc.__class__.__name__)
        return False


HealthOut = inline_serializer(
    name="HealthOut",
    fields={
        "db_ok": serializers.BooleanField(allow_null=True),
        "redis_ok": serializers.BooleanField(allow_null=True, help_text="null when Redis is not configured"),
        "version": serializers.CharField(),
        "time": serializers.IntegerField(help_text="epoch seconds"),
    },
)


class _ProbeView(APIView):
    authentication_classes: list = []
    permission_classes = [AllowAny]
    throttle_classes: list = []


class HealthView(_ProbeView):
    """Liveness: the process serves requests. Touches neither database nor Redis."""

    @extend_schema(summary="Liveness probe", auth=[], responses={200: HealthOut})
    def get(self, request):
        return Response(_body(None, None))


class ReadyView(_ProbeView):
    """Readiness: 200 when the database (and Redis, if configured) answer, else 503."""

    @extend_schema(
        summary="Readiness probe",
        auth=[],
        responses={200: HealthOut, 503: OpenApiResponse(HealthOut, description="A dependency is down.")},
    )
    def get(self, request):
        db, cache = database_ok(), redis_ok()
        healthy = db and cache is not False
        return Response(_body(db, cache), status=200 if healthy else 503)
