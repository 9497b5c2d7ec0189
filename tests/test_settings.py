"""Settings read the environment once and fail fast without required values."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PRODUCTION = {
    "DATABASE_URL": "postgres://postgres@127.0.0.1:5432/example",
    "DJANGO_DEBUG": "0",
    "DJANGO_SECRET_KEY": "a-long-random-production-secret-key-with-plenty-of-entropy-1234567890",
    "DJANGO_ALLOWED_HOSTS": "transcribe.example.com",
}


def _django(code: str, **env: str) -> subprocess.CompletedProcess:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "DATABASE_URL", "REDIS_URL"))}
    return subprocess.run(
        [sys.executable, "-c", f"import django; django.setup(); {code}"],
        cwd=ROOT,
        env={**base, "DJANGO_SETTINGS_MODULE": "config.settings", **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize("database_url", [None, "", "  "], ids=["unset", "empty", "blank"])
def test_missing_database_url_fails_naming_the_variable_with_an_example(database_url):
    env = {k: v for k, v in PRODUCTION.items() if k != "DATABASE_URL"}
    if database_url is not None:
        env["DATABASE_URL"] = database_url

    result = _django("", **env)

    assert result.returncode != 0
    assert "ImproperlyConfigured: DATABASE_URL is required" in result.stderr
    assert "postgres://" in result.stderr


def test_missing_secret_key_fails_when_debug_is_off():
    env = {k: v for k, v in PRODUCTION.items() if k != "DJANGO_SECRET_KEY"}

    result = _django("", **env)

    assert result.returncode != 0
    assert "DJANGO_SECRET_KEY is required" in result.stderr


def test_debug_mode_runs_without_a_secret_key():
    result = _django("print('ok')", DATABASE_URL="sqlite:///:memory:", DJANGO_DEBUG="1")

    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"


def test_postgres_urls_get_persistent_checked_connections_with_a_connect_timeout():
    code = (
        "from django.conf import settings; d = settings.DATABASES['default']; "
        "print(d['ENGINE'], d['CONN_MAX_AGE'], d['CONN_HEALTH_CHECKS'], d['OPTIONS']['connect_timeout'])"
    )

    result = _django(code, **PRODUCTION)

    assert result.stdout.split() == ["django.db.backends.postgresql", "60", "True", "2"]


@pytest.mark.parametrize(
    "redis_url, backend",
    [
        ("redis://127.0.0.1:6379/3", "django_redis.cache.RedisCache"),
        ("", "django.core.cache.backends.locmem.LocMemCache"),
    ],
)
def test_cache_is_redis_only_when_redis_url_is_set(redis_url, backend):
    code = "from django.conf import settings; print(settings.CACHES['default']['BACKEND'])"

    result = _django(code, **PRODUCTION, REDIS_URL=redis_url)

    assert result.stdout.strip() == backend


def test_deploy_check_leaves_only_the_documented_hsts_preload_warning():
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy"],
        cwd=ROOT,
        env={**{k: v for k, v in os.environ.items() if not k.startswith("DJANGO_")}, **PRODUCTION},
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert "security.W021" in result.stderr
    assert "identified 1 issue" in result.stderr
