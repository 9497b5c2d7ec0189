"""HTTP throughput and latency of the API, and of a plain-Django twin of the list, under wrk."""

from __future__ import annotations

from pathlib import Path

from loadgen import run_wrk
from seed import ApiFixtures

ROOT = Path(__file__).resolve().parent.parent
WARMUP_SECONDS = 2
WARMUP_CONNECTIONS = 4


def series(fixtures: ApiFixtures, tokens_file: Path) -> list[dict]:
    """Return the endpoints to load, each with its wrk script and environment."""
    get_env = {"BENCH_TOKEN": fixtures.list_token}
    shown_get = {"BENCH_TOKEN": "<token>"}
    upload_env = {
        "BENCH_TOKENS_FILE": str(tokens_file),
        "BENCH_AUDIO_FILE": str(ROOT / "tests/fixtures/speech_en.mp3"),
    }
    shown_upload = {"BENCH_TOKENS_FILE": "<tokens.txt>", "BENCH_AUDIO_FILE": "tests/fixtures/speech_en.mp3"}
    return [
        {
            "key": "list",
            "label": "GET /api/transcriptions?limit=50",
            "path": "/api/transcriptions?limit=50",
            "script": "get.lua",
            "env": get_env,
            "shown": shown_get,
        },
        {
            "key": "plain",
            "label": "GET /bench/plain-jobs?limit=50 (plain Django, page query only)",
            "path": "/bench/plain-jobs?limit=50",
            "script": "get.lua",
            "env": get_env,
            "shown": shown_get,
        },
        {
            "key": "plain_full",
            "label": "GET /bench/plain-jobs-full?limit=50 (plain Django, the API's statement and JSON)",
            "path": "/bench/plain-jobs-full?limit=50",
            "script": "get.lua",
            "env": get_env,
            "shown": shown_get,
        },
        {
            "key": "detail",
            "label": "GET /api/transcriptions/<id>",
            "path": f"/api/transcriptions/{fixtures.detail_job_id}",
            "script": "get.lua",
            "env": get_env,
            "shown": shown_get,
        },
        {
            "key": "create",
            "label": "POST /api/transcriptions (speech_en.mp3, 16 KB; no worker)",
            "path": "/api/transcriptions",
            "script": "upload.lua",
            "env": upload_env,
            "shown": shown_upload,
        },
    ]


def run(
    base_url: str,
    fixtures: ApiFixtures,
    out_dir: Path,
    levels: list[int],
    seconds: float,
    meter=None,
    gate=None,
) -> dict:
    """Load each endpoint at each concurrency level; return the results by endpoint key.

    The endpoints take turns at each level, so the API and its plain twin are
    measured seconds apart, under the same background load.
    """
    tokens_file = out_dir / "upload_tokens.txt"
    tokens_file.write_text("\n".join(fixtures.upload_tokens) + "\n")
    items = series(fixtures, tokens_file)
    results = {item["key"]: {"label": item["label"], "path": item["path"], "points": []} for item in items}
    for item in items:
        print(f"bench: api {item['key']}: warm-up", flush=True)
        run_wrk(base_url + item["path"], item["script"], WARMUP_CONNECTIONS, WARMUP_SECONDS, item["env"])
    for connections in levels:
        if gate is not None:
            gate()
        for item in items:
            result = run_wrk(
                base_url + item["path"], item["script"], connections, seconds, item["env"], item["shown"], meter
            )
            print(
                f"bench: api {item['key']} c={connections}: {result.rps} req/s, "
                f"p50 {result.p50_ms:.1f} ms, p99 {result.p99_ms:.1f} ms, errors {result.errors}, cpu {result.noise}",
                flush=True,
            )
            results[item["key"]]["points"].append(result.as_dict())
    return results
