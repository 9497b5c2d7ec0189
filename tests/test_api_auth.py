"""Token API: login, bearer authentication, revocation, expiry, throttling, create_token."""

import hashlib
import io
import uuid
from datetime import datetime, timedelta

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection
from django.utils import timezone
from django_redis import get_redis_connection
from knox.models import AuthToken
from rest_framework.test import APIClient

from accounts.throttles import LoginEmailThrottle, LoginIPThrottle
from tests.factories import DEFAULT_PASSWORD, FileArtifactFactory, JobFactory, UserFactory

pytestmark = pytest.mark.django_db

TOKEN_URL = "/api/auth/token"
INVALID_CREDENTIALS = {"detail": "invalid email or password"}
NOT_PROVIDED = {"detail": "Authentication credentials were not provided."}
INVALID_TOKEN = {"detail": "Invalid token."}


@pytest.fixture(autouse=True)
def _fast_password_hasher(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def login(api_client):
    """Return a function that posts credentials to the token endpoint."""

    def post(email: str, password: str = DEFAULT_PASSWORD, **extra):
        return api_client.post(TOKEN_URL, {"email": email, "password": password}, format="json", **extra)

    return post


@pytest.fixture
def token(user, login) -> str:
    """A bearer token obtained through the real login endpoint."""
    response = login(user.email)
    assert response.status_code == 200, response.content
    return response.json()["token"]


def bearer(token: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    return client


# --- Obtaining a token ---------------------------------------------------------------


def test_login_returns_token_and_expiry_of_token_ttl(user, login, settings):
    before = timezone.now()

    response = login(user.email)

    after = timezone.now()
    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"
    body = response.json()
    assert set(body) == {"token", "expires_at"}
    assert isinstance(body["token"], str) and len(body["token"]) >= 32
    ttl = timedelta(days=settings.TOKEN_TTL_DAYS)  # 30 unless the environment says otherwise
    assert before + ttl <= datetime.fromisoformat(body["expires_at"]) <= after + ttl


def test_login_email_is_case_and_whitespace_insensitive(user, login):
    response = login(f"  {user.email.upper()} ")

    assert response.status_code == 200
    assert AuthToken.objects.get().user == user


def test_login_token_authenticates_api_requests(token):
    response = bearer(token).get("/api/transcriptions")

    assert response.status_code == 200
    assert response.json() == []


def test_login_ignores_a_stale_authorization_header(user, login):
    response = login(user.email, HTTP_AUTHORIZATION="Bearer not-a-real-token")

    assert response.status_code == 200
    assert "token" in response.json()


def test_each_login_issues_a_distinct_token(user, login):
    first = login(user.email).json()["token"]
    second = login(user.email).json()["token"]

    assert first != second
    assert AuthToken.objects.filter(user=user).count() == 2


@pytest.mark.parametrize(
    "credentials",
    [
        pytest.param(lambda u: (u.email, "wrong-password-123"), id="wrong-password"),
        pytest.param(lambda u: ("nobody@example.com", DEFAULT_PASSWORD), id="unknown-email"),
    ],
)
def test_bad_credentials_answer_401_with_one_generic_message(user, login, credentials):
    email, password = credentials(user)

    response = login(email, password)

    assert response.status_code == 401
    assert response.json() == INVALID_CREDENTIALS
    assert response["WWW-Authenticate"] == "Bearer"
    assert not AuthToken.objects.exists()


def test_inactive_user_gets_the_same_401_as_a_wrong_password(login):
    inactive = UserFactory(is_active=False)

    response = login(inactive.email)

    assert response.status_code == 401
    assert response.json() == INVALID_CREDENTIALS
    assert not AuthToken.objects.exists()


@pytest.mark.parametrize(
    "payload, field",
    [
        ({"password": DEFAULT_PASSWORD}, "email"),
        ({"email": "someone@example.com"}, "password"),
        ({"email": "someone@example.com", "password": ""}, "password"),
    ],
)
def test_login_without_a_field_answers_400_naming_it(api_client, payload, field):
    response = api_client.post(TOKEN_URL, payload, format="json")

    assert response.status_code == 400
    body = response.json()
    assert body["code"] == "invalid"
    assert set(body["errors"]) == {field}
    assert body["detail"].startswith(f"{field}: ")


def test_login_with_a_non_object_json_body_answers_400(api_client):
    response = api_client.post(TOKEN_URL, ["a", "list"], format="json")

    assert response.status_code == 400
    assert response.json() == {
        "detail": "Invalid data. Expected a dictionary, but got list.",
        "code": "invalid",
        "errors": {"non_field_errors": ["Invalid data. Expected a dictionary, but got list."]},
    }


def test_login_with_malformed_json_answers_400_json(api_client):
    response = api_client.post(TOKEN_URL, data=b"{not json", content_type="application/json")

    assert response.status_code == 400
    assert response["Content-Type"] == "application/json"
    assert response.json()["detail"].startswith("JSON parse error")


def test_get_on_token_endpoint_answers_405_json(token):
    response = bearer(token).get(TOKEN_URL)

    assert response.status_code == 405
    assert response.json() == {"detail": 'Method "GET" not allowed.'}


# --- Tokens are stored hashed ---------------------------------------------------------


def test_token_row_stores_a_digest_not_the_token(user, token):
    row = AuthToken.objects.get(user=user)

    assert row.digest != token
    assert token not in row.digest
    for field in AuthToken._meta.concrete_fields:
        value = field.value_to_string(row)
        assert token not in value, f"AuthToken.{field.name} holds the raw token"


def test_no_database_table_holds_the_raw_token(user, token):
    with connection.cursor() as cursor:
        for table in connection.introspection.table_names():
            cursor.execute(f"SELECT * FROM {connection.ops.quote_name(table)}")
            for row in cursor.fetchall():
                assert token not in repr(row), f"table {table} holds the raw token"


# --- Revocation and expiry ------------------------------------------------------------


def test_delete_token_revokes_it(token):
    client = bearer(token)

    response = client.delete(TOKEN_URL)

    assert response.status_code == 204
    assert response.content == b""
    assert not AuthToken.objects.exists()
    after = client.get("/api/transcriptions")
    assert after.status_code == 401
    assert after.json() == INVALID_TOKEN


def test_delete_token_revokes_only_the_token_presented(user, login):
    kept = login(user.email).json()["token"]
    revoked = login(user.email).json()["token"]

    assert bearer(revoked).delete(TOKEN_URL).status_code == 204

    assert bearer(kept).get("/api/transcriptions").status_code == 200
    assert bearer(revoked).get("/api/transcriptions").status_code == 401


def test_delete_token_without_a_token_answers_401(api_client):
    response = api_client.delete(TOKEN_URL)

    assert response.status_code == 401
    assert response.json() == NOT_PROVIDED


def test_expired_token_answers_401(user):
    row, token = AuthToken.objects.create(user=user, expiry=timedelta(days=1))
    AuthToken.objects.filter(pk=row.pk).update(expiry=timezone.now() - timedelta(seconds=1))

    response = bearer(token).get("/api/transcriptions")

    assert response.status_code == 401
    assert response.json() == INVALID_TOKEN


def test_token_of_a_deactivated_user_answers_401(user, token):
    user.is_active = False
    user.save(update_fields=["is_active"])

    response = bearer(token).get("/api/transcriptions")

    assert response.status_code == 401
    assert response.json() == {"detail": "User inactive or deleted."}


# --- Every protected endpoint rejects a missing or bad token ---------------------------


def _protected_requests():
    job_id = "00000000-0000-4000-8000-000000000000"
    return [
        ("get", "/api/transcriptions"),
        ("get", "/api/transcriptions/"),
        ("post", "/api/transcriptions"),
        ("get", f"/api/transcriptions/{job_id}"),
        ("delete", f"/api/transcriptions/{job_id}"),
        ("get", f"/api/transcriptions/{job_id}/artifacts/transcript_txt"),
        ("get", "/api/models"),
        ("delete", TOKEN_URL),
    ]


@pytest.mark.parametrize("method, url", _protected_requests())
@pytest.mark.parametrize(
    "header, expected",
    [
        pytest.param(None, NOT_PROVIDED, id="missing"),
        pytest.param("Bearer " + "0" * 64, INVALID_TOKEN, id="unknown-token"),
        pytest.param("Bearer abc", INVALID_TOKEN, id="short-token"),
        pytest.param("Bearer", {"detail": "Invalid token header. No credentials provided."}, id="no-credentials"),
        pytest.param(
            "Bearer a b",
            {"detail": "Invalid token header. Token string should not contain spaces."},
            id="spaces",
        ),
        pytest.param("Token " + "0" * 64, NOT_PROVIDED, id="other-scheme"),
    ],
)
def test_protected_endpoint_without_a_valid_token_answers_401_json(method, url, header, expected):
    client = APIClient()
    if header is not None:
        client.credentials(HTTP_AUTHORIZATION=header)

    response = getattr(client, method)(url)

    assert response.status_code == 401
    assert response["Content-Type"] == "application/json"
    assert response["WWW-Authenticate"] == "Bearer"
    assert response.json() == expected


@pytest.mark.parametrize("method, url", _protected_requests())
@pytest.mark.parametrize(
    "header",
    [
        # WSGI hands headers over as latin-1; "é" arrives as the single byte 0xE9.
        pytest.param("Bearer caf\u00e9", id="non-utf8-byte"),
        # PostgreSQL refuses NUL in a string parameter.
        pytest.param("Bearer abc\x00def", id="nul-byte"),
    ],
)
def test_token_with_undecodable_bytes_answers_401_invalid_token(method, url, header):
    client = APIClient(raise_request_exception=False)
    client.credentials(HTTP_AUTHORIZATION=header)

    response = getattr(client, method)(url)

    assert response.status_code == 401
    assert response.json() == INVALID_TOKEN


def test_revoked_token_cannot_reach_the_users_own_job(user, token):
    job = JobFactory(owner=user)
    FileArtifactFactory(job=job)
    bearer(token).delete(TOKEN_URL)

    response = bearer(token).get(f"/api/transcriptions/{job.pk}")

    assert response.status_code == 401
    assert response.json() == INVALID_TOKEN


# --- Throttling -------------------------------------------------------------------------


@pytest.fixture
def throttle_rates(monkeypatch):
    """Set the login throttle rates (DRF binds THROTTLE_RATES at import, so patch the classes)."""

    def set_rates(ip: str = "1000/min", email: str = "1000/min") -> None:
        monkeypatch.setattr(LoginIPThrottle, "rate", ip, raising=False)
        monkeypatch.setattr(LoginEmailThrottle, "rate", email, raising=False)

    return set_rates


def _assert_throttled(response) -> None:
    assert response.status_code == 429
    retry_after = int(response["Retry-After"])
    assert 1 <= retry_after <= 60
    assert response.json() == {"detail": f"Request was throttled. Expected available in {retry_after} seconds."}


def test_login_is_throttled_per_email(user, login, throttle_rates):
    throttle_rates(email="3/min")
    for _ in range(3):
        login(user.email, "wrong-password-123")

    response = login(user.email)  # even the right password

    _assert_throttled(response)
    assert not AuthToken.objects.exists()


def test_login_email_throttle_counts_case_variants_as_one_email(user, login, throttle_rates):
    throttle_rates(email="2/min")
    login(user.email.upper(), "wrong-password-123")
    login(f" {user.email} ", "wrong-password-123")

    _assert_throttled(login(user.email))


def test_login_email_throttle_leaves_other_emails_alone(user, other_user, login, throttle_rates):
    throttle_rates(email="2/min")
    login(user.email, "wrong-password-123")
    login(user.email, "wrong-password-123")

    response = login(other_user.email)

    assert response.status_code == 200


def test_login_is_throttled_per_ip_across_emails(user, login, throttle_rates):
    throttle_rates(ip="3/min")
    for n in range(3):
        login(f"guess{n}@example.com")

    response = login(user.email)

    _assert_throttled(response)


def test_login_ip_throttle_leaves_other_ips_alone(user, login, throttle_rates):
    throttle_rates(ip="2/min")
    login("a@example.com", REMOTE_ADDR="10.0.0.1")
    login("b@example.com", REMOTE_ADDR="10.0.0.1")

    assert login(user.email, REMOTE_ADDR="10.0.0.1").status_code == 429
    assert login(user.email, REMOTE_ADDR="10.0.0.2").status_code == 200


def test_login_ip_throttle_ignores_client_made_x_forwarded_for_entries(user, login, throttle_rates):
    # Behind one proxy (REMOTE_ADDR 127.0.0.1), which appends the client's real address;
    # whatever the client put before it must not give each guess a fresh bucket.
    throttle_rates(ip="2/min")
    for n in range(2):
        login(f"guess{n}@example.com", REMOTE_ADDR="127.0.0.1", HTTP_X_FORWARDED_FOR=f"10.9.9.{n}, 203.0.113.7")

    response = login(user.email, REMOTE_ADDR="127.0.0.1", HTTP_X_FORWARDED_FOR="10.9.9.99, 203.0.113.7")

    _assert_throttled(response)


def test_default_login_rate_limits_throttle_a_guessing_client(user, login, settings):
    # The configured defaults (10/min per email), not a patched rate.
    assert settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"]["login_email"] == "10/min"
    for _ in range(10):
        assert login(user.email, "wrong-password-123").status_code != 429

    _assert_throttled(login(user.email, "wrong-password-123"))


@pytest.mark.redis
def test_login_throttle_state_lives_in_redis(user, login):
    login(user.email, "wrong-password-123")

    keys = [key.decode() for key in get_redis_connection("default").keys("*throttle_login_*")]
    assert sorted(key.split(":", 2)[-1] for key in keys) == [
        "throttle_login_email_" + hashlib.sha256(user.email.encode()).hexdigest(),
        "throttle_login_ip_127.0.0.1",
    ]


def test_authenticated_api_requests_are_not_login_throttled(token, throttle_rates):
    throttle_rates(ip="1/min", email="1/min")
    client = bearer(token)

    statuses = {client.get("/api/transcriptions").status_code for _ in range(5)}

    assert statuses == {200}


# --- create_token management command ----------------------------------------------------


def test_create_token_command_prints_a_working_token(user):
    out, err = io.StringIO(), io.StringIO()

    call_command("create_token", user.email, stdout=out, stderr=err)

    token = out.getvalue().strip()
    assert "\n" not in token
    assert AuthToken.objects.get().user == user
    assert err.getvalue().startswith("expires at ")
    response = bearer(token).get("/api/transcriptions")
    assert response.status_code == 200


def test_create_token_command_rejects_an_unknown_email():
    with pytest.raises(CommandError, match="no user with email"):
        call_command("create_token", f"{uuid.uuid4().hex}@example.com", stdout=io.StringIO())

    assert not AuthToken.objects.exists()


def test_create_token_command_rejects_an_inactive_user():
    inactive = UserFactory(is_active=False)

    with pytest.raises(CommandError, match="inactive"):
        call_command("create_token", inactive.email, stdout=io.StringIO())

    assert not AuthToken.objects.exists()
