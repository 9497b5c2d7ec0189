"""Lists at scale: bulk-load a million jobs with COPY, EXPLAIN the list query, time deep pages.

The load writes straight to the tables with psycopg2's copy_expert from
generated rows (no temporary files). Foreign-key triggers are skipped for
the load session (session_replication_role = replica): the generator only
emits rows whose owners and jobs it has emitted, so nothing dangles.
"""

from __future__ import annotations

import json
import random
import statistics
import time
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime

import psycopg2
from django.db import connection
from django.test.utils import CaptureQueriesContext
from loadgen import run_wrk

SEED = 20261204
YEAR_SECONDS = 365 * 24 * 3600
# Status mix of a service that has run for a while.
STATUS_WEIGHTS = (("done", 90), ("failed", 6), ("queued", 3), ("processing", 1))
RESULT_TYPES = ("result_json", "transcript_txt", "subtitles_srt", "subtitles_vtt")
RESULT_FILES = ("result.json", "transcript.txt", "subtitles.srt", "subtitles.vtt")
JOB_COLUMNS = (
    "id, owner_user_id, status, model_name, mode, language, audio_duration_ms, processing_time_ms, progress, "
    "attempts, result_json_path, transcript_txt_path, error_message, idempotency_key, enqueued_at, "
    "created_at, updated_at"
)
ARTIFACT_COLUMNS = "job_id, type, path, size_bytes, created_at"
USER_COLUMNS = "id, password, last_login, email, role, is_active, created_at"
HEAVY_EMAIL = "bench-heavy@example.com"
TIMING_REPEATS = 15
HTTP_SECONDS = 4


class IteratorFile:
    """A read()-able file over an iterator of str lines, for copy_expert."""

    def __init__(self, lines: Iterable[str]):
        self._chunks = _batched_bytes(lines)
        self._buffer = b""

    def read(self, size: int = -1) -> bytes:
        while size < 0 or len(self._buffer) < size:
            chunk = next(self._chunks, None)
            if chunk is None:
                break
            self._buffer += chunk
        if size < 0:
            data, self._buffer = self._buffer, b""
        else:
            data, self._buffer = self._buffer[:size], self._buffer[size:]
        return data

    readline = read


def _batched_bytes(lines: Iterable[str], batch: int = 4096) -> Iterator[bytes]:
    pending: list[str] = []
    for line in lines:
        pending.append(line)
        if len(pending) >= batch:
            yield "".join(pending).encode()
            pending.clear()
    if pending:
        yield "".join(pending).encode()


@dataclass(frozen=True)
class Plan:
    users: int
    jobs_per_user: int
    heavy_jobs: int

    @property
    def total_jobs(self) -> int:
        return self.users * self.jobs_per_user + self.heavy_jobs


def _owners(plan: Plan, seed: int) -> list[tuple[str, str, int]]:
    """Return (user id, email, job count) for the regular users and, last, the heavy one."""
    rng = random.Random(seed)
    owners = [
        (str(uuid.UUID(int=rng.getrandbits(128), version=4)), f"bench-scale-{i}@example.com", plan.jobs_per_user)
        for i in range(plan.users)
    ]
    owners.append((str(uuid.UUID(int=rng.getrandbits(128), version=4)), HEAVY_EMAIL, plan.heavy_jobs))
    return owners


def _jobs(plan: Plan, now: float) -> Iterator[tuple[str, str, str, float]]:
    """Yield (job id, owner id, status, created epoch) for every job, the same sequence each call."""
    rng = random.Random(SEED)
    statuses = [s for s, weight in STATUS_WEIGHTS for _ in range(weight)]
    for owner_id, _, count in _owners(plan, SEED + 1):
        for _ in range(count):
            job_id = str(uuid.UUID(int=rng.getrandbits(128), version=4))
            yield job_id, owner_id, statuses[rng.randrange(100)], now - rng.random() * YEAR_SECONDS


def _ts(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat()


def _user_lines(plan: Plan, now: float) -> Iterator[str]:
    created = _ts(now - YEAR_SECONDS - 86400)
    for owner_id, email, _ in _owners(plan, SEED + 1):
        # "!" + random: Django's unusable-password marker; these users sign in with tokens.
        yield f"{owner_id}\t!{uuid.uuid4().hex}\t\\N\t{email}\tuser\tt\t{created}\n"


def _job_lines(plan: Plan, now: float) -> Iterator[str]:
    for job_id, owner_id, status, epoch in _jobs(plan, now):
        created = _ts(epoch)
        duration = 5_000 + int(epoch) % 3_600_000
        if status == "done":
            yield (
                f"{job_id}\t{owner_id}\tdone\ttiny.en\ttranscribe\ten\t{duration}\t{duration // 20}\t100\t1\t"
                f"jobs/{job_id}/result.json\tjobs/{job_id}/transcript.txt\t\\N\t\\N\t{created}\t{created}\t"
                f"{_ts(epoch + duration / 20_000)}\n"
            )
        elif status == "failed":
            yield (
                f"{job_id}\t{owner_id}\tfailed\ttiny.en\ttranscribe\t\\N\t{duration}\t\\N\t0\t1\t\\N\t\\N\t"
                f"The audio could not be decoded.\t\\N\t{created}\t{created}\t{created}\n"
            )
        else:
            progress = 40 if status == "processing" else 0
            attempts = 1 if status == "processing" else 0
            yield (
                f"{job_id}\t{owner_id}\t{status}\ttiny.en\ttranscribe\t\\N\t{duration}\t\\N\t{progress}\t"
                f"{attempts}\t\\N\t\\N\t\\N\t\\N\t{created}\t{created}\t{created}\n"
            )


def _artifact_lines(plan: Plan, now: float) -> Iterator[str]:
    for job_id, _, status, epoch in _jobs(plan, now):
        created = _ts(epoch)
        yield f"{job_id}\taudio\tjobs/{job_id}/audio.mp3\t{16_000 + int(epoch) % 100_000}\t{created}\n"
        if status == "done":
            for type_, name in zip(RESULT_TYPES, RESULT_FILES, strict=True):
                yield f"{job_id}\t{type_}\tjobs/{job_id}/{name}\t{1_000 + int(epoch) % 50_000}\t{created}\n"


def load(dsn: str, plan: Plan) -> dict:
    """COPY the users, jobs and artifacts in; VACUUM ANALYZE; return row counts and timings."""
    now = time.time()
    timings = {}
    conn = psycopg2.connect(dsn)
    try:
        with conn.cursor() as cur:
            cur.execute("SET session_replication_role = replica")
            cur.execute("SET synchronous_commit = off")
            started = time.monotonic()
            for table, columns, lines in (
                ("users", USER_COLUMNS, _user_lines(plan, now)),
                ("jobs", JOB_COLUMNS, _job_lines(plan, now)),
                ("file_artifacts", ARTIFACT_COLUMNS, _artifact_lines(plan, now)),
            ):
                t0 = time.monotonic()
                cur.copy_expert(f"COPY {table} ({columns}) FROM STDIN", IteratorFile(lines))
                timings[f"copy_{table}_s"] = round(time.monotonic() - t0, 1)
                print(f"bench: scale COPY {table}: {cur.rowcount} rows in {timings[f'copy_{table}_s']} s", flush=True)
            conn.commit()
            timings["copy_total_s"] = round(time.monotonic() - started, 1)
        conn.autocommit = True
        with conn.cursor() as cur:
            t0 = time.monotonic()
            cur.execute("VACUUM (ANALYZE) users, jobs, file_artifacts")
            timings["vacuum_analyze_s"] = round(time.monotonic() - t0, 1)
            counts = {}
            for table in ("users", "jobs", "file_artifacts"):
                cur.execute(f"SELECT count(*) FROM {table}")
                counts[table] = cur.fetchone()[0]
            cur.execute(
                "SELECT relname, pg_total_relation_size(oid) FROM pg_class WHERE relname IN ('jobs', 'file_artifacts')"
            )
            sizes = {name: size for name, size in cur.fetchall()}
    finally:
        conn.close()
    return {"plan": plan.__dict__, "rows": counts, "total_bytes": sizes, "timings": timings}


# --- EXPLAIN ------------------------------------------------------------------


def _walk(node: dict) -> Iterator[dict]:
    yield node
    for child in node.get("Plans", []):
        yield from _walk(child)


def explain(sql_text: str) -> dict:
    """EXPLAIN (ANALYZE, BUFFERS) one captured statement; return the text plan and what it shows."""
    with connection.cursor() as cur:
        for _ in range(3):  # warm the caches; the report is about plans, not disk reads
            cur.execute(sql_text)
            cur.fetchall()
        cur.execute("EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) " + sql_text)
        doc = cur.fetchone()[0]
        doc = doc if isinstance(doc, list) else json.loads(doc)
        cur.execute("EXPLAIN (ANALYZE, BUFFERS) " + sql_text)
        text = "\n".join(row[0] for row in cur.fetchall())
    nodes = list(_walk(doc[0]["Plan"]))
    scans = sorted(
        {
            f"{n['Node Type']} using {n['Index Name']}" if "Index Name" in n else n["Node Type"]
            for n in nodes
            if "Scan" in n["Node Type"]
        }
    )
    return {
        "sql": sql_text,
        "plan": text,
        "execution_ms": round(doc[0]["Execution Time"], 3),
        "sort_nodes": [n["Node Type"] for n in nodes if "Sort" in n["Node Type"]],
        "scans": scans,
        "seq_scan": any(n["Node Type"] == "Seq Scan" for n in nodes),
        "rows_removed_by_filter": sum(n.get("Rows Removed by Filter", 0) for n in nodes),
        "shared_hit": doc[0]["Plan"].get("Shared Hit Blocks", 0),
        "shared_read": doc[0]["Plan"].get("Shared Read Blocks", 0),
    }


def _captured(call) -> list[str]:
    with CaptureQueriesContext(connection) as captured:
        call()
    return [q["sql"] for q in captured.captured_queries]


def _median_ms(call) -> float:
    samples = []
    for _ in range(TIMING_REPEATS):
        t0 = time.perf_counter()
        call()
        samples.append((time.perf_counter() - t0) * 1000)
    return round(statistics.median(samples), 3)


def analyse(heavy_email: str = HEAVY_EMAIL) -> dict:
    """EXPLAIN the list and count queries the service runs for the heavy user, and time each depth."""
    from accounts.models import User
    from transcriptions import services

    heavy = User.objects.get(email=heavy_email)
    ids = list(services.jobs_of_user(heavy).values_list("id", flat=True)[:90_000])
    cases = {
        "page 1": {"limit": 50, "offset": 0},
        "page 1, status=done": {"status": "done", "limit": 50, "offset": 0},
        "page 1, status=queued": {"status": "queued", "limit": 50, "offset": 0},
        "offset 10,000": {"limit": 50, "offset": 10_000},
        "offset 90,000": {"limit": 50, "offset": 90_000},
        "before=<10,000th id>": {"limit": 50, "before": str(ids[9_999])},
        "before=<90,000th id>": {"limit": 50, "before": str(ids[89_999])},
    }
    results = {"heavy_user_id": str(heavy.pk), "cases": {}, "counts": {}}
    for name, kwargs in cases.items():
        status = kwargs.get("status")

        def call(kwargs=kwargs, status=status):
            return services.page_of_jobs_by_user(
                heavy, status, kwargs["limit"], kwargs.get("offset", 0), before=kwargs.get("before")
            ).jobs

        statements = _captured(call)
        page_sql = next(s for s in statements if 'FROM "jobs"' in s and "LIMIT 50" in s)
        others = [s for s in statements if s != page_sql]
        page_ids = [str(job.id) for job in call()]
        results["cases"][name] = {
            "params": kwargs,
            "statements": len(statements),
            "page": explain(page_sql),
            "other_statements": [explain(s) for s in others],
            "service_ms": _median_ms(call),
            "first_id": page_ids[0] if page_ids else None,
            "page_ids_sha": hash(tuple(page_ids)),
        }
        print(
            f"bench: scale {name}: page query {results['cases'][name]['page']['execution_ms']} ms "
            f"(scans {results['cases'][name]['page']['scans']}, sorts {results['cases'][name]['page']['sort_nodes']}), "
            f"service {results['cases'][name]['service_ms']} ms",
            flush=True,
        )
    results["alternatives"] = alternatives(heavy)
    for name, status in (("count", None), ("count, status=done", "done")):
        (count_sql,) = _captured(lambda status=status: services.count_jobs_by_user(heavy, status))
        results["counts"][name] = {
            "value": services.count_jobs_by_user(heavy, status),
            "explain": explain(count_sql),
            "service_ms": _median_ms(lambda status=status: services.count_jobs_by_user(heavy, status)),
        }
        print(f"bench: scale {name}: {results['counts'][name]['service_ms']} ms", flush=True)
    cases_out = results["cases"]
    for depth in ("10,000", "90,000"):
        cases_out[f"before=<{depth}th id>"]["same_page_as_offset"] = (
            cases_out[f"before=<{depth}th id>"]["page_ids_sha"] == cases_out[f"offset {depth}"]["page_ids_sha"]
        )
    for case in cases_out.values():
        case.pop("page_ids_sha")
    return results


def alternatives(heavy) -> dict:
    """EXPLAIN rewrites of the deep-page queries that the app does not run (yet): evidence for fixes."""
    from transcriptions import services
    from transcriptions.models import Job

    page_ids = services.jobs_of_user(heavy).values("pk")[90_000:90_050]
    deferred_join = Job.objects.filter(pk__in=page_ids).order_by("-created_at", "-id")
    found = {}
    for name, queryset in (("offset 90,000 as a deferred join (ids by index-only scan, then 50 rows)", deferred_join),):
        (statement,) = _captured(lambda queryset=queryset: list(queryset))
        found[name] = explain(statement)
        print(f"bench: scale alternative {name}: {found[name]['execution_ms']} ms", flush=True)
    return found


def http_latency(base_url: str, token: str, cases: dict, meter=None) -> dict:
    """Latency of the list endpoint for the heavy user at each depth, one connection, via wrk."""

    def anchor(depth: str) -> str:
        return cases[f"before=<{depth}th id>"]["params"]["before"]

    paths = {
        "page 1": "/api/transcriptions?limit=50",
        "page 1, status=done": "/api/transcriptions?limit=50&status=done",
        "offset 10,000": "/api/transcriptions?limit=50&offset=10000",
        "offset 90,000": "/api/transcriptions?limit=50&offset=90000",
        "before=<10,000th id>": f"/api/transcriptions?limit=50&before={anchor('10,000')}",
        "before=<90,000th id>": f"/api/transcriptions?limit=50&before={anchor('90,000')}",
        "plain view, page 1 (no count, no artifacts)": "/bench/plain-jobs?limit=50",
    }
    results = {}
    for name, path in paths.items():
        run_wrk(base_url + path, "get.lua", 1, 1, {"BENCH_TOKEN": token})
        result = run_wrk(
            base_url + path, "get.lua", 1, HTTP_SECONDS, {"BENCH_TOKEN": token}, {"BENCH_TOKEN": "<token>"}, meter
        )
        results[name] = {"path": path, **result.as_dict()}
        print(f"bench: scale HTTP {name}: p50 {result.p50_ms} ms, p99 {result.p99_ms} ms", flush=True)
    return results
