"""Fault drills: real servers, real outages on loopback, and what clients see.

Each drill starts the processes it needs and stops them afterwards. They
assert behaviour (status codes, nothing lost), never speed.
"""

import http.client
import io
import json
import struct
import time

import pytest
import requests
from django.db import connection
from knox.models import AuthToken

from tests.drill_harness import app_env, gunicorn, tcp_proxy, wait_until
from tests.factories import LicenseFactory, UserFactory

pytestmark = [pytest.mark.drill, pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

FIXTURES = __import__("pathlib").Path(__file__).parent / "fixtures"


def _database_url(port: int | None = None) -> str:
    db = connection.settings_dict
    return f"postgres://{db['USER']}@{db['HOST'] or '127.0.0.1'}:{port or db['PORT'] or 5432}/{db['NAME']}"


def _web_env(media_root: str, **overrides: str) -> dict[str, str]:
    return app_env(
        DJANGO_DEBUG="0",
        DJANGO_SECRET_KEY="drill-secret-key-not-for-production-use-0123456789",
        DJANGO_ALLOWED_HOSTS="127.0.0.1,localhost",
        DJANGO_SECURE_SSL_REDIRECT="0",
        MEDIA_ROOT=media_root,
        REDIS_URL="",
        **overrides,
    )


def _token_for_licensed_user(**features) -> tuple[str, object]:
    user = UserFactory()
    LicenseFactory(assigned_to_user=user, features=features)
    _, token = AuthToken.objects.create(user=user)
    return token, user


def test_database_outage_gives_503_fast_and_the_same_process_recovers(settings, tmp_path):
    # Given a server whose database sits behind a proxy we can cut
    token, _ = _token_for_licensed_user()
    auth = {"Authorization": f"Bearer {token}"}
    with tcp_proxy(int(connection.settings_dict["PORT"] or 5432)) as proxy:
        env = _web_env(settings.MEDIA_ROOT, DATABASE_URL=_database_url(proxy.port))
        with gunicorn(env, workers=1, log_path=tmp_path / "gunicorn.log") as base:
            assert requests.get(f"{base}/api/ready", timeout=5).status_code == 200
            assert requests.get(f"{base}/api/transcriptions", headers=auth, timeout=5).status_code == 200
            pid_before = requests.get(f"{base}/api/health", timeout=5).headers.get("Date")

            # When the database goes away (connections reset, new ones refused)
            proxy.cut()

            # Then liveness still answers, readiness and the API say 503 in JSON, quickly
            health = requests.get(f"{base}/api/health", timeout=5)
            assert health.status_code == 200 and health.json()["db_ok"] is None
            started = time.monotonic()
            ready = requests.get(f"{base}/api/ready", timeout=10)
            assert time.monotonic() - started < 3
            assert ready.status_code == 503 and ready.json()["db_ok"] is False
            listing = requests.get(f"{base}/api/transcriptions", headers=auth, timeout=10)
            assert listing.status_code == 503
            assert listing.headers["Content-Type"].startswith("application/json")
            assert "database" in listing.json()["detail"]
            assert "Traceback" not in listing.text

            # And when it comes back, the same server process serves again
            proxy.restore()
            wait_until(
                lambda: requests.get(f"{base}/api/ready", timeout=5).status_code == 200, 10, what="readiness"
            )
            assert requests.get(f"{base}/api/transcriptions", headers=auth, timeout=5).status_code == 200
            assert pid_before is not None


def test_readiness_answers_within_3_seconds_when_the_database_host_is_silent(settings, tmp_path):
    # Given a database host that accepts connections and never answers
    with tcp_proxy(int(connection.settings_dict["PORT"] or 5432)) as proxy:
        env = _web_env(settings.MEDIA_ROOT, DATABASE_URL=_database_url(proxy.port))
        with gunicorn(env, workers=1, log_path=tmp_path / "gunicorn.log") as base:
            assert requests.get(f"{base}/api/ready", timeout=5).status_code == 200
            proxy.blackhole()

            # When a probe asks for readiness
            started = time.monotonic()
            ready = requests.get(f"{base}/api/ready", timeout=10)

            # Then it gets 503 within 3 seconds
            assert time.monotonic() - started < 3
            assert ready.status_code == 503
            proxy.restore()
            wait_until(
                lambda: requests.get(f"{base}/api/ready", timeout=5).status_code == 200, 10, what="readiness"
            )


# --- Bad input sweep ---------------------------------------------------------------


def _wav_header(seconds: int, rate: int = 16000) -> bytes:
    """A 44-byte WAV header claiming `seconds` of 16-bit mono audio, and no data."""
    data_bytes = seconds * rate * 2
    return (
        b"RIFF" + struct.pack("<I", 36 + data_bytes) + b"WAVE"
        + b"fmt " + struct.pack("<IHHIIHH", 16, 1, 1, rate, rate * 2, 2, 16)
        + b"data" + struct.pack("<I", data_bytes)
    )


def _post_upload(base: str, token: str, filename: str, content: bytes, content_type: str = "audio/mpeg"):
    files = {"audio": (filename, io.BytesIO(content), content_type)}
    return requests.post(
        f"{base}/api/transcriptions", headers={"Authorization": f"Bearer {token}"}, files=files, timeout=30
    )


BAD_UPLOADS = {
    "zero_bytes": ("empty.mp3", b""),
    "text_renamed_mp3": ("notes.mp3", b"this is plain text, not audio at all\n" * 50),
    "truncated_mp3": ("cut.mp3", (FIXTURES / "speech_en.mp3").read_bytes()[:300]),
    "ten_hour_wav_header": ("long.wav", _wav_header(10 * 3600)),
}


@pytest.fixture(scope="module")
def web_server(django_db_setup, django_db_blocker, tmp_path_factory):
    """One real gunicorn on the test database (no Redis) for the module; yields (base_url, media_root)."""
    media_root = tmp_path_factory.mktemp("drill-media")
    logs = tmp_path_factory.mktemp("drill-logs")
    with django_db_blocker.unblock():
        env = _web_env(str(media_root), DATABASE_URL=_database_url())
    with gunicorn(env, workers=2, log_path=logs / "gunicorn.log") as base:
        yield base, media_root


@pytest.fixture
def web(web_server):
    """The module's server, a licensed user's token, and a lister of files stored during the test."""
    base, media_root = web_server
    token, user = _token_for_licensed_user()
    before = set(_files_under(media_root))

    def new_files() -> list[str]:
        return sorted(set(_files_under(media_root)) - before)

    return base, token, user, new_files


def _files_under(root) -> list[str]:
    return [str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()]


@pytest.mark.parametrize("case", sorted(BAD_UPLOADS))
def test_bad_upload_gets_400_and_leaves_nothing(web, case):
    base, token, user, media_files = web
    filename, content = BAD_UPLOADS[case]

    response = _post_upload(base, token, filename, content)

    assert response.status_code == 400, response.text
    assert response.headers["Content-Type"].startswith("application/json")
    assert response.json()["detail"]
    assert user.jobs.count() == 0
    assert media_files() == []


@pytest.mark.parametrize(
    "filename",
    ["../../etc/passwd", "..\\..\\windows\\system.ini", "/etc/passwd", "caf\udce9.mp3", "a" * 300 + ".mp3"],
)
def test_hostile_filenames_never_become_storage_names(web, filename):
    base, token, user, media_files = web
    audio = (FIXTURES / "speech_en.mp3").read_bytes()
    # requests cannot encode a lone surrogate; send those bytes raw, as a hostile client would.
    safe = filename.encode("utf-8", "surrogateescape").decode("latin-1")

    response = _post_upload(base, token, safe, audio)

    assert response.status_code == 201, response.text
    job_id = response.json()["id"]
    assert media_files() == [f"jobs/{job_id}/audio.mp3"]


@pytest.mark.parametrize(
    "query",
    ["limit=1000000000", "offset=-1", "limit=0", "limit=abc", "status=finished", "before=not-a-uuid"],
)
def test_bad_list_parameters_get_400(web, query):
    base, token, _, _ = web

    response = requests.get(f"{base}/api/transcriptions?{query}", headers={"Authorization": f"Bearer {token}"})

    assert response.status_code == 400
    assert response.json()["detail"]


@pytest.mark.parametrize("job_id", ["not-a-uuid", "1", "%2e%2e", "00000000-0000-0000-0000-00000000000g"])
def test_malformed_job_ids_get_404(web, job_id):
    base, token, _, _ = web
    auth = {"Authorization": f"Bearer {token}"}

    for path in (f"/api/transcriptions/{job_id}", f"/api/transcriptions/{job_id}/artifacts/audio"):
        response = requests.get(f"{base}{path}", headers=auth, timeout=10)
        assert response.status_code == 404, path
        assert response.headers["Content-Type"].startswith("application/json")


def test_upload_over_the_limit_gets_413_before_the_body_is_read(web):
    base, token, user, media_files = web
    size = 101 * 1024 * 1024
    boundary = "drillboundary"
    head = (
        f"--{boundary}\r\nContent-Disposition: form-data; name=\"audio\"; filename=\"big.wav\"\r\n"
        "Content-Type: audio/wav\r\n\r\n"
    ).encode()
    tail = f"\r\n--{boundary}--\r\n".encode()
    host, port = base.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=30)
    conn.putrequest("POST", "/api/transcriptions")
    conn.putheader("Authorization", f"Bearer {token}")
    conn.putheader("Content-Type", f"multipart/form-data; boundary={boundary}")
    conn.putheader("Content-Length", str(len(head) + size + len(tail)))
    conn.endheaders()
    # Send only the first megabyte: a server that waits for all 101 MB would time out here.
    conn.send(head + b"\0" * (1024 * 1024))

    response = conn.getresponse()

    assert response.status == 413
    assert "100 MB" in json.loads(response.read())["detail"]
    conn.close()
    assert user.jobs.count() == 0
    assert media_files() == []
