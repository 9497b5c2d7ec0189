"""Fault drills: real servers, real outages on loopback, and what clients see.

Each drill starts the processes it needs and stops them afterwards. They
assert behaviour (status codes, nothing lost), never speed.
"""

import http.client
import io
import json
import struct
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests
from django.db import connection
from knox.models import AuthToken

from tests.drill_harness import (
    ROOT,
    app_env,
    gunicorn,
    gunicorn_process,
    kill_process_group,
    redis_server,
    tcp_proxy,
    wait_until,
)
from tests.factories import LicenseFactory, UserFactory
from tests.worker_harness import WorkerProcess
from transcriptions.models import ArtifactType, Job, JobStatus

pytestmark = [pytest.mark.drill, pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

FIXTURES = Path(__file__).parent / "fixtures"


def _database_url(port: int | None = None) -> str:
    db = connection.settings_dict
    return f"postgres://{db['USER']}@{db['HOST'] or '127.0.0.1'}:{port or db['PORT'] or 5432}/{db['NAME']}"


def _web_env(media_root: str, **overrides: str) -> dict[str, str]:
    values = {
        "DJANGO_DEBUG": "0",
        "DJANGO_SECRET_KEY": "drill-secret-key-not-for-production-use-0123456789",
        "DJANGO_ALLOWED_HOSTS": "127.0.0.1,localhost",
        "DJANGO_SECURE_SSL_REDIRECT": "0",
        "MEDIA_ROOT": media_root,
        "REDIS_URL": "",
    }
    return app_env(**{**values, **overrides})


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


# --- Drills with workers and a Redis of their own -------------------------------------


def _stack_env(media_root: str, redis_url: str, **overrides: str) -> dict[str, str]:
    return _web_env(
        media_root,
        DATABASE_URL=_database_url(),
        REDIS_URL=redis_url,
        JOB_PUBLISH_GRACE_SECONDS="0",
        **overrides,
    )


def _sweep(env: dict[str, str]) -> str:
    """Run the recovery sweep the way cron or an operator would."""
    done = subprocess.run(
        [sys.executable, "manage.py", "requeue_stale_jobs"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=60, check=True,
    )
    return done.stdout


def _submit(base: str, token: str, clip: str = "hello.mp3", key: str | None = None) -> requests.Response:
    headers = {"Authorization": f"Bearer {token}"}
    if key:
        headers["Idempotency-Key"] = key
    with open(FIXTURES / clip, "rb") as audio:
        return requests.post(f"{base}/api/transcriptions", headers=headers, files={"audio": audio}, timeout=60)


def _statuses(job_ids) -> dict[str, str]:
    return {str(pk): status for pk, status in Job.objects.filter(pk__in=job_ids).values_list("pk", "status")}


def _assert_one_complete_set_of_files(job_ids, media_root) -> None:
    for job in Job.objects.filter(pk__in=job_ids).prefetch_related("artifacts"):
        types = sorted(a.type for a in job.artifacts.all())
        assert types == sorted(ArtifactType.values), (job.pk, types)
        stored = sorted(p.name for p in (media_root / "jobs" / str(job.pk)).iterdir())
        assert len(stored) == len(types), (job.pk, stored)  # no orphans from killed attempts
        for artifact in job.artifacts.all():
            assert (media_root / artifact.path).stat().st_size == artifact.size_bytes


def test_redis_outage_keeps_accepting_jobs_and_loses_none(tmp_path):
    # Given web and worker on a Redis of their own
    token, user = _token_for_licensed_user()
    media_root = tmp_path / "media"
    with redis_server() as redis_:
        env = _stack_env(str(media_root), redis_.url)
        with gunicorn(env, workers=1, log_path=tmp_path / "gunicorn.log") as base:
            worker = WorkerProcess(env, tmp_path / "worker.log")
            try:
                worker.wait_ready()
                # When Redis stops
                redis_.stop()

                # Then readiness says so, and uploads are still accepted
                ready = requests.get(f"{base}/api/ready", timeout=5)
                assert ready.status_code == 503 and ready.json()["redis_ok"] is False
                response = _submit(base, token)
                assert response.status_code == 201, response.text
                job_id = response.json()["id"]
                assert Job.objects.get(pk=job_id).status == JobStatus.QUEUED

                # And once Redis is back and the sweep has run, the job is transcribed
                redis_.start()
                wait_until(lambda: requests.get(f"{base}/api/ready", timeout=5).status_code == 200, 15, what="ready")
                wait_until(lambda: worker.log().count("Connected to redis://") >= 2, 60, what="worker reconnect")
                assert "re-enqueued 1" in _sweep(env)
                wait_until(lambda: _statuses([job_id]) == {job_id: JobStatus.DONE}, 90, what="job done")
            finally:
                worker.stop()
    _assert_one_complete_set_of_files([job_id], media_root)


def test_embedded_server_killed_mid_job_finishes_every_job_after_a_restart(tmp_path):
    # Given the embedded mode (no Redis): the web process transcribes a batch itself
    token, user = _token_for_licensed_user()
    media_root = tmp_path / "media"
    env = _web_env(
        str(media_root),
        DATABASE_URL=_database_url(),
        REQUEUE_SWEEP_SECONDS="1",
        JOB_HEARTBEAT_SECONDS="1",
        JOB_STALE_AFTER_SECONDS="5",
        JOB_QUEUED_STALE_AFTER_SECONDS="5",
    )
    with gunicorn_process(env, workers=1, log_path=tmp_path / "first.log") as (base, proc):
        job_ids = [_submit(base, token, "speech_60s.ogg").json()["id"] for _ in range(3)]
        wait_until(lambda: JobStatus.PROCESSING in _statuses(job_ids).values(), 60, what="a job in progress")

        # When the server dies mid-job, without warning
        kill_process_group(proc)
    left = sorted(_statuses(job_ids).values())
    assert JobStatus.PROCESSING in left and JobStatus.QUEUED in left, left

    # Then the restarted server finishes every job, each with one set of files
    with gunicorn(env, workers=1, log_path=tmp_path / "second.log"):
        wait_until(
            lambda: set(_statuses(job_ids).values()) == {JobStatus.DONE}, 180, interval=0.5, what="every job done"
        )
    _assert_one_complete_set_of_files(job_ids, media_root)
    assert max(Job.objects.filter(pk__in=job_ids).values_list("attempts", flat=True)) == 2


def test_workers_killed_mid_job_lose_nothing(tmp_path):
    # Given a batch of minute-long jobs and a worker we kill again and again
    token, user = _token_for_licensed_user()
    media_root = tmp_path / "media"
    with redis_server() as redis_:
        env = _stack_env(str(media_root), redis_.url, JOB_STALE_AFTER_SECONDS="1", JOB_MAX_ATTEMPTS="3")
        with gunicorn(env, workers=1, log_path=tmp_path / "gunicorn.log") as base:
            job_ids = [_submit(base, token, "speech_60s.ogg").json()["id"] for _ in range(3)]
            kills = 0
            for round_ in range(3):
                worker = WorkerProcess(env, tmp_path / f"worker-{round_}.log")
                try:
                    worker.wait_ready()
                    # When a job is under way, the whole worker is SIGKILLed
                    processing = wait_until(
                        lambda: [k for k, v in _statuses(job_ids).items() if v == JobStatus.PROCESSING]
                        or all(v in (JobStatus.DONE, JobStatus.FAILED) for v in _statuses(job_ids).values()),
                        90,
                        what="a job in progress",
                    )
                    if processing is True:
                        break
                    worker.kill()
                    kills += 1
                finally:
                    worker.stop()
                time.sleep(1.1)  # let the dead job's heartbeat age past JOB_STALE_AFTER_SECONDS
                _sweep(env)
            # Then a healthy worker finishes the batch
            worker = WorkerProcess(env, tmp_path / "worker-final.log")
            try:
                worker.wait_ready()
                wait_until(
                    lambda: all(v in (JobStatus.DONE, JobStatus.FAILED) for v in _statuses(job_ids).values()),
                    180,
                    what="every job finished",
                )
            finally:
                worker.stop()
    assert kills >= 1
    jobs = list(Job.objects.filter(pk__in=job_ids))
    assert not [j for j in jobs if j.status == JobStatus.PROCESSING]
    for job in jobs:
        if job.status == JobStatus.FAILED:
            assert job.attempts == 3 and "stopped responding" in job.error_message
    done = [j.pk for j in jobs if j.status == JobStatus.DONE]
    assert done, "no job survived the kills"
    _assert_one_complete_set_of_files(done, media_root)


def test_job_longer_than_the_visibility_timeout_is_transcribed_once(tmp_path):
    # Given a broker that redelivers unacknowledged messages after one second, and two worker processes
    token, _ = _token_for_licensed_user()
    media_root = tmp_path / "media"
    with redis_server() as redis_:
        env = _stack_env(
            str(media_root),
            redis_.url,
            CELERY_VISIBILITY_TIMEOUT="1",
            CELERY_UNACKED_RESTORE_INTERVAL="1",
            CELERY_UNACKED_RESTORE_THROTTLE="1",
        )
        with gunicorn(env, workers=1, log_path=tmp_path / "gunicorn.log") as base:
            first = WorkerProcess(env, tmp_path / "worker-1.log")
            second = WorkerProcess(env, tmp_path / "worker-2.log")
            try:
                first.wait_ready()
                second.wait_ready()
                # When a job runs for several seconds
                job_id = _submit(base, token, "speech_60s.ogg").json()["id"]
                wait_until(lambda: _statuses([job_id]) == {job_id: JobStatus.DONE}, 120, what="job done")
                time.sleep(2)  # give any redelivered copy the time to arrive and be refused
            finally:
                first.stop()
                second.stop()
            logs = first.log() + second.log()
    # Then it ran once: one attempt, one set of files, and every other delivery did nothing
    job = Job.objects.get(pk=job_id)
    assert job.attempts == 1
    assert logs.count("succeeded in") >= 1
    assert logs.count(": 'done'") == 1
    assert "not queued; nothing to do" in logs, "the broker never redelivered; the drill proved nothing"
    _assert_one_complete_set_of_files([job_id], media_root)


def test_concurrent_submissions_make_one_job_each_and_all_finish(tmp_path):
    # Given 20 users and 100 simultaneous uploads, half with an Idempotency-Key, some keys repeated
    users = [_token_for_licensed_user() for _ in range(20)]
    media_root = tmp_path / "media"
    plan = []
    for n in range(100):
        token, user = users[n % 20]
        key = f"key-{n % 35}" if n % 2 == 0 else None  # 50 keyed requests over 35 keys per user-slot
        plan.append((token, user, key))
    distinct = {(str(u.pk), k) for _, u, k in plan if k}
    expected_jobs = len(distinct) + sum(1 for _, _, k in plan if not k)
    with redis_server() as redis_:
        env = _stack_env(str(media_root), redis_.url)
        with gunicorn(env, workers=4, log_path=tmp_path / "gunicorn.log") as base:
            # Two single-threaded workers use both cores better than one worker with two threads.
            workers = [WorkerProcess({**env, "WHISPER_CPU_THREADS": "1"}, tmp_path / f"worker-{n}.log") for n in (1, 2)]
            try:
                for worker in workers:
                    worker.wait_ready()
                # When they all arrive at once
                with ThreadPoolExecutor(max_workers=25) as pool:
                    responses = list(pool.map(lambda p: _submit(base, p[0], key=p[2]), plan))
                # Then none fails, each distinct submission made exactly one job, and all finish
                failures = [r.text for r in responses if r.status_code != 201]
                assert failures == []
                ids_by_submission = {}
                for (_, user, key), response in zip(plan, responses, strict=True):
                    if key:
                        ids_by_submission.setdefault((str(user.pk), key), set()).add(response.json()["id"])
                assert all(len(ids) == 1 for ids in ids_by_submission.values())
                assert Job.objects.count() == expected_jobs
                job_ids = list(Job.objects.values_list("pk", flat=True))
                wait_until(
                    lambda: set(_statuses(job_ids).values()) == {JobStatus.DONE}, 300, what="all jobs done"
                )
            finally:
                for worker in workers:
                    worker.stop()
