"""Shared fixtures: isolated storage and cache, API clients, licensed users."""

import os

import pytest
from django.conf import settings
from django.core.cache import cache
from django.db import connection
from rest_framework.test import APIClient

from tests.factories import LicenseFactory, UserFactory

# Password hashing is deliberately slow; tests that create many users need not pay for it.
settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]

REQUIRE_POSTGRES = os.environ.get("REQUIRE_POSTGRES") == "1"
REQUIRE_REDIS = os.environ.get("REQUIRE_REDIS") == "1"


def _is_postgres() -> bool:
    return connection.vendor == "postgresql"


def _redis_reachable() -> bool:
    if not settings.REDIS_URL:
        return False
    import redis

    try:
        return bool(redis.Redis.from_url(settings.REDIS_URL, socket_connect_timeout=0.5).ping())
    except redis.RedisError:
        return False


def pytest_configure(config):
    if REQUIRE_POSTGRES and not os.environ.get("DATABASE_URL", "").startswith(("postgres://", "postgresql://")):
        raise pytest.UsageError("REQUIRE_POSTGRES=1 but DATABASE_URL is not a PostgreSQL URL")


def pytest_collection_modifyitems(config, items):
    postgres = _is_postgres()
    redis_ok = _redis_reachable()
    if REQUIRE_REDIS and not redis_ok:
        raise pytest.UsageError("REQUIRE_REDIS=1 but Redis at REDIS_URL does not answer")
    skip_pg = pytest.mark.skip(reason="PostgreSQL only (DATABASE_URL is not PostgreSQL)")
    skip_redis = pytest.mark.skip(reason="needs a Redis server (REDIS_URL unset or not answering)")
    for item in items:
        if "postgres" in item.keywords and not postgres:
            item.add_marker(skip_pg)
        if "redis" in item.keywords and not redis_ok:
            item.add_marker(skip_redis)


@pytest.fixture(autouse=True)
def _isolated_media(settings, tmp_path):
    settings.MEDIA_ROOT = str(tmp_path / "media")
    return settings.MEDIA_ROOT


@pytest.fixture(autouse=True)
def _clean_cache():
    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def user(db):
    return UserFactory()


@pytest.fixture
def other_user(db):
    return UserFactory()


@pytest.fixture
def licensed_user(db):
    license_ = LicenseFactory()
    return license_.assigned_to_user


@pytest.fixture
def api_client():
    return APIClient()


@pytest.fixture
def media_files(_isolated_media):
    """Return a function listing every file under the test's storage root."""

    def files() -> list[str]:
        found = []
        for root, _dirs, names in os.walk(_isolated_media):
            found += [os.path.relpath(os.path.join(root, n), _isolated_media) for n in names]
        return sorted(found)

    return files
