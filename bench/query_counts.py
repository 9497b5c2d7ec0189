"""SQL queries per API request, counted in-process with CaptureQueriesContext."""

from __future__ import annotations

import re
import statistics
import time
from pathlib import Path

from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from seed import ApiFixtures

ROOT = Path(__file__).resolve().parent.parent
HOST = "127.0.0.1"
TIMED_REQUESTS = 30


def _short(sql: str) -> str:
    """Return the statement with its column list elided, for the report."""
    sql = " ".join(sql.split())
    columns = re.match(r"^SELECT (.+?) FROM ", sql)
    if columns and len(columns.group(1)) > 60:
        sql = "SELECT … FROM " + sql[columns.end() :]
    sql = re.sub(r"^(INSERT INTO \S+) \(.+?\) VALUES .*", r"\1 (…) VALUES (…)", sql)
    return sql if len(sql) <= 240 else sql[:237] + "..."


def _measure(client: Client, method: str, path: str, token: str, **extra) -> dict:
    headers = {"HTTP_AUTHORIZATION": f"Bearer {token}", "HTTP_HOST": HOST}
    call = getattr(client, method)
    # One call first, so per-process one-offs (content types, model lists) are not counted.
    _consume(call(path, **headers, **_fresh(extra)))
    with CaptureQueriesContext(connection) as captured:
        response = call(path, **headers, **_fresh(extra))
        _consume(response)
    # Read now: the next request's request_started signal empties the query log.
    statements = [_short(q["sql"]) for q in captured.captured_queries]
    samples = []
    if method == "get":  # uploads would pile up jobs; their cost is in the HTTP figures
        for _ in range(TIMED_REQUESTS):
            t0 = time.perf_counter()
            _consume(call(path, **headers))
            samples.append((time.perf_counter() - t0) * 1000)
    return {
        "in_process_ms": round(statistics.median(samples), 2) if samples else None,
        "method": method.upper(),
        "path": path,
        "status": response.status_code,
        "queries": len(statements),
        "sql": statements,
    }


def _fresh(extra: dict) -> dict:
    """Return request kwargs with the upload re-opened (a file can only be sent once)."""
    if "data" not in extra:
        return extra
    data = dict(extra["data"])
    data["audio"] = open(ROOT / "tests/fixtures/speech_en.mp3", "rb")
    return {**extra, "data": data}


def _consume(response) -> None:
    if getattr(response, "streaming", False):
        b"".join(response.streaming_content)
    response.close()


def run(fixtures: ApiFixtures) -> list[dict]:
    """Return the query count of each endpoint (and the list at two page sizes, to expose N+1)."""
    client = Client()
    job = fixtures.detail_job_id
    token = fixtures.list_token
    rows = [
        ("list, 5 jobs", "get", "/api/transcriptions?limit=5", token, {}),
        ("list, 50 jobs", "get", "/api/transcriptions?limit=50", token, {}),
        ("list, status=done, 50 jobs", "get", "/api/transcriptions?limit=50&status=done", token, {}),
        ("detail", "get", f"/api/transcriptions/{job}", token, {}),
        (
            "create (multipart upload)",
            "post",
            "/api/transcriptions",
            fixtures.e2e_token,
            {"data": {"model_name": "tiny.en"}},
        ),
        ("artifact download (transcript_txt)", "get", f"/api/transcriptions/{job}/artifacts/transcript_txt", token, {}),
        ("artifact download (audio)", "get", f"/api/transcriptions/{job}/artifacts/audio", token, {}),
        ("plain view, 50 jobs (bench only)", "get", "/bench/plain-jobs?limit=50", token, {}),
        ("plain view, same statement (bench only)", "get", "/bench/plain-jobs-full?limit=50", token, {}),
    ]
    results = []
    for name, method, path, tok, extra in rows:
        measured = _measure(client, method, path, tok, **extra)
        measured["name"] = name
        results.append(measured)
        print(f"bench: queries {name}: {measured['queries']} (HTTP {measured['status']})", flush=True)
    return results


def _min_ms(call, repeats: int = 40) -> float:
    call()
    samples = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        call()
        samples.append((time.perf_counter() - t0) * 1000)
    return round(min(samples), 3)


def list_breakdown(fixtures: ApiFixtures) -> list[dict]:
    """Time the pieces of one 50-job list response in-process (best of 40), to show where it goes."""
    from rest_framework.renderers import JSONRenderer

    from accounts.models import User
    from transcriptions import services
    from transcriptions.serializers import JobOut

    user = User.objects.get(pk=fixtures.list_user_id)
    jobs = services.page_of_jobs_by_user(user, None, 50, 0).jobs
    data = JobOut(jobs, many=True).data
    steps = [
        (
            "page query alone, as values() (what the plain view runs)",
            lambda: list(services.jobs_of_user(user).values("id", "status")[:50]),
        ),
        ("page query, as model instances", lambda: list(services.jobs_of_user(user)[:50])),
        (
            "services.page_of_jobs_by_user: the page, its artifacts and the total in one statement",
            lambda: services.page_of_jobs_by_user(user, None, 50, 0),
        ),
        ("JobOut(jobs, many=True).data: serialisation", lambda: JobOut(jobs, many=True).data),
        ("JSONRenderer().render of the serialised page", lambda: JSONRenderer().render(data)),
    ]
    results = []
    for name, call in steps:
        results.append({"step": name, "ms": _min_ms(call)})
        print(f"bench: list breakdown {name}: {results[-1]['ms']} ms", flush=True)
    return results


def gc_pauses(fixtures: ApiFixtures, requests: int = 500) -> dict:
    """Latency percentiles of in-process list requests with Python's default GC, then after gc.freeze().

    A served worker holds ~100k long-lived objects (Django, DRF, the app); a
    full (generation 2) collection walks them all. gc.freeze() moves what is
    alive now out of the collector's sight, as a gunicorn post-fork hook could.
    """
    import gc

    client = Client()
    headers = {"HTTP_AUTHORIZATION": f"Bearer {fixtures.list_token}", "HTTP_HOST": HOST}
    full_collections = []

    def count_full(phase: str, info: dict) -> None:
        if phase == "start" and info["generation"] == 2:
            full_collections.append(1)

    def percentiles(label: str) -> dict:
        for _ in range(20):
            client.get("/api/transcriptions?limit=50", **headers)
        full_collections.clear()
        samples = []
        for _ in range(requests):
            t0 = time.perf_counter()
            client.get("/api/transcriptions?limit=50", **headers)
            samples.append((time.perf_counter() - t0) * 1000)
        samples.sort()
        row = {
            "gc": label,
            "tracked_objects": len(gc.get_objects()),
            "p50_ms": round(samples[len(samples) // 2], 2),
            "p90_ms": round(samples[int(len(samples) * 0.9)], 2),
            "p99_ms": round(samples[int(len(samples) * 0.99)], 2),
            "max_ms": round(samples[-1], 2),
            "full_collections": len(full_collections),
        }
        print(f"bench: gc {row}", flush=True)
        return row

    gc.callbacks.append(count_full)
    try:
        default = percentiles("default")
        gc.freeze()
        frozen = percentiles("after gc.freeze()")
    finally:
        gc.unfreeze()
        gc.callbacks.remove(count_full)
    return {"requests": requests, "rows": [default, frozen]}
