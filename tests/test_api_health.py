"""Liveness and readiness probes: unauthenticated, unthrottled, read-only, quick."""

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.db import OperationalError, connection
from django.test.utils import CaptureQueriesContext
from rest_framework.test import APIClient

from config import health

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def client() -> APIClient:
    return APIClient()


@pytest.fixture
def silent_port():
    """Return the port of a TCP listener that completes handshakes but never says a word."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(16)
        yield listener.getsockname()[1]


def _assert_time_is_now(body: dict) -> None:
    assert isinstance(body["time"], int)
    assert abs(body["time"] - time.time()) <= 5


# --- /api/health ---------------------------------------------------------------------------


def test_health_answers_200_with_nulls(client, settings):
    response = client.get("/api/health")

    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"
    body = response.json()
    assert body == {"db_ok": None, "redis_ok": None, "version": settings.APP_VERSION, "time": body["time"]}
    _assert_time_is_now(body)


@pytest.mark.django_db
def test_health_makes_no_database_query(client, django_assert_num_queries):
    with django_assert_num_queries(0):
        response = client.get("/api/health")

    assert response.status_code == 200


def test_health_touches_neither_database_nor_redis(client, settings, monkeypatch):
    # No db fixture: any query would fail with "Database access not allowed".
    settings.REDIS_URL = "redis://127.0.0.1:1/0"
    monkeypatch.setattr(health, "redis_ok", lambda: pytest.fail("liveness pinged Redis"))

    response = client.get("/api/health")

    assert response.status_code == 200
    assert response.json()["redis_ok"] is None


def test_health_with_trailing_slash_answers_200(client):
    assert client.get("/api/health/").status_code == 200


def test_health_ignores_a_bad_token(client):
    client.credentials(HTTP_AUTHORIZATION="Bearer nonsense")

    assert client.get("/api/health").status_code == 200


def test_health_reports_app_version(client, settings):
    settings.APP_VERSION = "1f2e3d4"

    assert client.get("/api/health").json()["version"] == "1f2e3d4"


def test_health_is_never_throttled(client):
    statuses = {client.get("/api/health").status_code for _ in range(50)}

    assert statuses == {200}


def test_health_post_answers_405_json(client):
    response = client.post("/api/health")

    assert response.status_code == 405
    assert response.json() == {"detail": 'Method "POST" not allowed.'}


# --- /api/ready -----------------------------------------------------------------------------


@pytest.mark.redis
@pytest.mark.django_db
def test_ready_answers_200_when_database_and_redis_answer(client, settings):
    assert settings.REDIS_URL

    response = client.get("/api/ready")

    assert response.status_code == 200
    body = response.json()
    assert body == {"db_ok": True, "redis_ok": True, "version": settings.APP_VERSION, "time": body["time"]}
    _assert_time_is_now(body)


@pytest.mark.django_db
def test_ready_without_redis_configured_reports_redis_null(client, settings):
    settings.REDIS_URL = ""

    response = client.get("/api/ready")

    assert response.status_code == 200
    assert response.json()["db_ok"] is True
    assert response.json()["redis_ok"] is None


@pytest.mark.django_db
def test_ready_with_trailing_slash_answers_200(client, settings):
    settings.REDIS_URL = ""

    assert client.get("/api/ready/").status_code == 200


@pytest.mark.django_db
def test_ready_runs_only_select_1(client, settings):
    settings.REDIS_URL = ""

    with CaptureQueriesContext(connection) as queries:
        client.get("/api/ready")

    assert [q["sql"] for q in queries.captured_queries] == ["SELECT 1"]


@pytest.mark.django_db
def test_ready_answers_503_when_redis_is_configured_but_refuses(client, settings):
    settings.REDIS_URL = "redis://127.0.0.1:1/0"

    response = client.get("/api/ready")

    assert response.status_code == 503
    assert response["Content-Type"] == "application/json"
    body = response.json()
    assert body == {"db_ok": True, "redis_ok": False, "version": settings.APP_VERSION, "time": body["time"]}


@pytest.mark.django_db
def test_ready_answers_quickly_when_redis_host_does_not_answer(client, settings, silent_port):
    # The 0.2 s ping timeout, not the OS's, bounds the wait.
    settings.REDIS_URL = f"redis://127.0.0.1:{silent_port}/0"

    started = time.monotonic()
    response = client.get("/api/ready")
    elapsed = time.monotonic() - started

    assert response.status_code == 503
    assert response.json()["redis_ok"] is False
    assert elapsed < 1.5


@pytest.mark.django_db
def test_ready_answers_503_when_the_database_check_fails(client, settings, monkeypatch):
    settings.REDIS_URL = ""

    class _DownDatabase:
        def cursor(self):
            raise OperationalError("could not connect to server")

        def close_if_unusable_or_obsolete(self):
            pass

    monkeypatch.setattr(health, "connection", _DownDatabase())

    response = client.get("/api/ready")

    assert response.status_code == 503
    body = response.json()
    assert body == {"db_ok": False, "redis_ok": None, "version": body["version"], "time": body["time"]}
    assert b"could not connect" not in response.content


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_ready_answers_within_3_seconds_when_the_database_host_does_not_answer(client, settings, silent_port):
    # Point the real connection at a server that never answers, then put it back.
    settings.REDIS_URL = ""
    real = {key: connection.settings_dict[key] for key in ("HOST", "PORT")}
    connection.close()
    connection.settings_dict.update(HOST="127.0.0.1", PORT=str(silent_port))
    try:
        started = time.monotonic()
        response = client.get("/api/ready")
        elapsed = time.monotonic() - started
    finally:
        connection.close()
        connection.settings_dict.update(real)

    assert response.status_code == 503
    assert response.json()["db_ok"] is False
    assert elapsed < 3


@pytest.mark.django_db
def test_ready_ignores_a_bad_token(client, settings):
    settings.REDIS_URL = ""
    client.credentials(HTTP_AUTHORIZATION="Bearer nonsense")

    assert client.get("/api/ready").status_code == 200


@pytest.mark.django_db
def test_ready_reports_app_version(client, settings):
    settings.REDIS_URL = ""
    settings.APP_VERSION = "v9.9.9"

    assert client.get("/api/ready").json()["version"] == "v9.9.9"


# --- Where the version comes from ---------------------------------------------------------


@pytest.mark.parametrize(
    "env, expected",
    [
        ({"GIT_SHA": "abc1234", "APP_VERSION": "2.0.0"}, "abc1234"),
        ({"APP_VERSION": "2.0.0"}, "2.0.0"),
        ({"GIT_SHA": "", "APP_VERSION": ""}, "dev"),
        ({}, "dev"),
    ],
)
def test_version_comes_from_git_sha_then_app_version_then_dev(env, expected):
    base = {k: v for k, v in os.environ.items() if k not in ("GIT_SHA", "APP_VERSION")}
    result = subprocess.run(
        [sys.executable, "-c", "from django.conf import settings; print(settings.APP_VERSION)"],
        env={**base, "DJANGO_SETTINGS_MODULE": "config.settings", **env},
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )

    assert result.stdout.strip() == expected
