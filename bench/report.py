"""Render bench/out/results.json as BENCHMARKS.md, with matplotlib plots under bench/plots/."""

from __future__ import annotations

import os
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PLOTS = ROOT / "bench" / "plots"
RATIO_AIM = 0.5
E2E_AIM = 1.10
LOAD_AIM_S = 300
API_KEYS = ("list", "plain", "plain_full", "detail", "create")
SHORT_LABELS = {
    "list": "API list",
    "plain": "plain list (values only)",
    "plain_full": "plain list (same statement)",
    "detail": "API detail",
    "create": "API create (POST)",
}


def _ok(passed: bool) -> str:
    return "✅ meets the aim" if passed else "❌ misses the aim"


def _ms(value: float | None) -> str:
    if value is None:
        return "–"
    return f"{value:.1f}" if value >= 10 else f"{value:.2f}"


def _mib(kib: int) -> str:
    return f"{kib / 1024:.0f} MiB"


def _peak(points: list[dict]) -> dict:
    return max(points, key=lambda p: p["rps"])


def _errors(point: dict) -> str:
    total = sum(point["errors"].values())
    return "0" if not total else ", ".join(f"{k} {v}" for k, v in point["errors"].items() if v)


def _noise(noise: dict | None) -> str:
    return "–" if not noise else f"{noise['foreign_pct']:.0f} %"


# --- plots ---------------------------------------------------------------------


def _plot_api(api: dict) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(15, 4.6))
    for key in API_KEYS:
        if key not in api:
            continue
        points = api[key]["points"]
        levels = [p["connections"] for p in points]
        axes[0].plot(levels, [p["rps"] for p in points], marker="o", label=SHORT_LABELS[key])
        axes[1].plot(levels, [p["p50_ms"] for p in points], marker="o", label=SHORT_LABELS[key])
        axes[2].plot(levels, [p["p99_ms"] for p in points], marker="o", label=SHORT_LABELS[key])
    titles = ("throughput (req/s)", "p50 latency (ms)", "p99 latency (ms)")
    for axis, title in zip(axes, titles, strict=True):
        axis.set_xscale("log", base=2)
        axis.set_xlabel("concurrent connections (wrk -c)")
        axis.set_title(title)
        axis.grid(True, which="both", alpha=0.3)
    axes[1].set_yscale("log")
    axes[2].set_yscale("log")
    axes[0].legend(fontsize=8)
    fig.suptitle("API under wrk: gunicorn (sync workers), PostgreSQL, Redis on one 2-core machine")
    fig.tight_layout()
    path = PLOTS / "api_latency_vs_concurrency.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path.relative_to(ROOT).as_posix()


def _plot_depth(http: dict) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    depths = [
        ("page 1", "page 1", "page 1"),
        ("10,000", "offset 10,000", "before=<10,000th id>"),
        ("90,000", "offset 90,000", "before=<90,000th id>"),
    ]
    fig, axis = plt.subplots(figsize=(7.5, 4.2))
    x = range(len(depths))
    width = 0.38
    offset_p50 = [http[o]["p50_ms"] for _, o, _ in depths]
    keyset_p50 = [http[k]["p50_ms"] if k in http else http["page 1"]["p50_ms"] for _, _, k in depths]
    axis.bar([i - width / 2 for i in x], offset_p50, width, label="?offset=N")
    axis.bar([i + width / 2 for i in x], keyset_p50, width, label="?before=<id> (keyset)")
    axis.set_xticks(list(x), [f"depth {d}" for d, _, _ in depths])
    axis.set_ylabel("p50 latency, one connection (ms)")
    axis.set_title("GET /api/transcriptions?limit=50, user with 100,000 jobs")
    axis.legend()
    axis.grid(True, axis="y", alpha=0.3)
    fig.tight_layout()
    path = PLOTS / "list_depth_latency.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path.relative_to(ROOT).as_posix()


# --- sections ------------------------------------------------------------------


def _summary(results: dict) -> list[str]:
    rows = []
    api = results.get("api")
    if api and "plain" in api:
        peak_api, peak_plain = _peak(api["list"]["points"]), _peak(api["plain"]["points"])
        ratio = peak_api["rps"] / peak_plain["rps"]
        rows.append(
            f"| API list ÷ plain Django list, peak throughput | {peak_api['rps']:.0f} ÷ {peak_plain['rps']:.0f} req/s "
            f"= **{ratio:.2f}** | ≥ {RATIO_AIM} | {_ok(ratio >= RATIO_AIM)} |"
        )
        if "plain_full" in api:
            peak_full = _peak(api["plain_full"]["points"])
            full_ratio = peak_api["rps"] / peak_full["rps"]
            rows.append(
                f"| API list ÷ plain view running the same statement | {peak_api['rps']:.0f} ÷ "
                f"{peak_full['rps']:.0f} req/s = **{full_ratio:.2f}** | (context) | |"
            )
    scale = results.get("scale")
    if scale:
        load = scale["load"]["timings"]
        rows.append(
            f"| Bulk load of {scale['load']['rows']['jobs']:,} jobs + {scale['load']['rows']['file_artifacts']:,} "
            f"artifacts (COPY) | **{load['copy_total_s']:.0f} s** (+ {load['vacuum_analyze_s']:.0f} s VACUUM ANALYZE) "
            f"| < {LOAD_AIM_S} s | {_ok(load['copy_total_s'] < LOAD_AIM_S)} |"
        )
        cases = scale["analysis"]["cases"]
        plain_cases = ("page 1", "page 1, status=done", "page 1, status=queued")
        sorts = [n for n in plain_cases if cases[n]["page"]["sort_nodes"]]
        seq = [n for n in cases if cases[n]["page"]["seq_scan"]]
        good = not sorts and not seq
        rows.append(
            f"| List query plans, page 1 with and without status: index scans, no Sort node | "
            f"**{'yes' if good else 'no: ' + ', '.join(sorts + seq)}** | index scan, no sort | {_ok(good)} |"
        )
        http = scale["http"]
        rows.append(
            "| Heavy user (100k jobs), p50 at page 1 / offset 10k / offset 90k | "
            f"**{_ms(http['page 1']['p50_ms'])} / {_ms(http['offset 10,000']['p50_ms'])} / "
            f"{_ms(http['offset 90,000']['p50_ms'])} ms** | – | |"
        )
        rows.append(
            "| Same depths by keyset (`before=<id>`) | "
            f"**{_ms(http['page 1']['p50_ms'])} / {_ms(http['before=<10,000th id>']['p50_ms'])} / "
            f"{_ms(http['before=<90,000th id>']['p50_ms'])} ms** | flat with depth | "
            f"{_ok(http['before=<90,000th id>']['p50_ms'] < 2 * http['page 1']['p50_ms'])} |"
        )
        count = scale["analysis"]["counts"]["count"]
        rows.append(
            f"| COUNT(*) for X-Total-Count, heavy user | **{_ms(count['service_ms'])} ms** per request "
            f"(page query {_ms(cases['page 1']['page']['execution_ms'])} ms) | – | |"
        )
    tr = results.get("transcribe")
    if tr:
        e2e = tr["e2e"]
        rows.append(
            f"| End-to-end ÷ faster-whisper, {e2e['audio_s']:.0f} s clip, median of {len(e2e['rounds'])} rounds | "
            f"**{e2e['ratio']:.2f}** ({e2e['e2e_median_s']:.2f} s ÷ {e2e['raw_median_s']:.2f} s medians) | "
            f"≤ {E2E_AIM} | {_ok(e2e['ratio'] <= E2E_AIM)} |"
        )
        for batch in tr["throughput"]:
            rows.append(
                f"| Audio seconds per wall second, {_batch_name(batch)} | **{batch['audio_s_per_wall_s']:.1f}** | – | |"
            )
        peak = max(b["peak_vmhwm_kib"] for b in tr["throughput"])
        rows.append(f"| Peak memory (VmHWM) of one worker pool process | **{_mib(peak)}** | – | |")
    if not rows:
        return []
    return ["## Summary", "", "| figure | result | aim | verdict |", "|---|---|---|---|", *rows, ""]


def _batch_name(batch: dict) -> str:
    name = f"{batch['processes']} worker process{'es' if batch['processes'] > 1 else ''}"
    if batch["env"]:
        name += " (" + ", ".join(f"{k}={v}" for k, v in batch["env"].items()) + ")"
    return name


def _machine(results: dict) -> list[str]:
    m = results["machine"]
    run = results.get("run", {})
    idle = m.get("idle_sample", {})
    packages = ", ".join(f"{k} {v}" for k, v in m["packages"].items())
    command = f"`{' '.join(['bench/run.py', *run.get('argv', [])])}`"
    if run.get("wait_quiet"):
        command += f" with `BENCH_WAIT_QUIET={run['wait_quiet']:g}` (each part waited for other load to pass)"
    return [
        "## Machine",
        "",
        "| | |",
        "|---|---|",
        f"| CPU | {m['cpu']}, {m['cores']} cores |",
        f"| RAM | {m['ram_gib']} GiB |",
        f"| OS, kernel | {m['os']}, Linux {m['kernel']} |",
        f"| Python | {m['python']} |",
        f"| PostgreSQL | {m['postgres']} (shared_buffers {m['postgres_shared_buffers']}, default configuration) |",
        f"| Redis | {m['redis']} |",
        f"| gunicorn | config/gunicorn.conf.py: {m['gunicorn_workers']} sync workers (2 × cores + 1) |",
        f"| load generator | {m['wrk']} (a separate process on the same machine) |",
        f"| packages | {packages} |",
        f"| commit | {m['commit']}{' (with uncommitted changes)' if m['dirty'] else ''} |",
        f"| run | {run.get('finished', '?')}, {run.get('seconds', '?')} s, {command} |",
        "",
        "Everything — PostgreSQL, Redis, gunicorn, Celery, wrk and the benchmark itself — shares the same "
        "two cores, so the load generator takes CPU from the server it measures; figures are for this "
        "machine as a whole, not for the server alone.",
        "",
        "**Other load on the machine.** Each measurement records the CPU used by processes that are not "
        "the benchmark's (other test suites, editors), as a share of both cores (`other CPU` columns). "
        f"With the stack idle, before the run: {idle.get('foreign_pct', '?')} %. Figures taken while "
        "other processes used a large share are pessimistic; re-run on a quiet machine to compare. "
        "PostgreSQL's parallel-query workers are short-lived processes that cannot be attributed, so a "
        "parallel plan of the benchmark's own (the offset-90,000 page uses two workers) shows as other CPU.",
        "",
    ]


def _reproduce() -> list[str]:
    return [
        "## How to reproduce",
        "",
        "```sh",
        "make bench                                   # everything, writes this file (~15 min)",
        ".venv/bin/python bench/run.py --quick        # no 1M-row part, 3 s load points (~5 min)",
        ".venv/bin/python bench/run.py --only api     # one part: api, queries, transcribe, scale",
        ".venv/bin/python bench/run.py --render-only  # re-render this file from bench/out/results.json",
        "```",
        "",
        "`bench/run.py` creates the database `bench` afresh (`BENCH_DB`), flushes Redis db 14 "
        "(`BENCH_REDIS_DB`), starts gunicorn with `config/gunicorn.conf.py` on a free port "
        "(`DJANGO_DEBUG=0`, a generated `DJANGO_SECRET_KEY`, `DJANGO_SECURE_SSL_REDIRECT=0`, `MEDIA_ROOT` "
        "in a temporary folder, `BENCH_VIEWS=1` for the plain-Django twin views of `config/bench_urls.py`), "
        "starts Celery workers only for the transcription part, and stops and removes all of it at the end. "
        "Each table below names the part that produces it; the wrk command lines are the ones it ran "
        "(`<token>` is a knox token the run created; `<tokens.txt>` holds one per uploading user).",
        "",
    ]


def _api(results: dict) -> list[str]:
    api = results.get("api")
    if not api:
        return []
    settings = results.get("api_settings", {})
    lines = [
        "## 1. API throughput and latency",
        "",
        f"Part `--only api`. wrk, {settings.get('seconds', '?'):g} s per point after a 2 s warm-up, "
        "`--timeout 30s`, 1 thread for one connection and 2 otherwise; gunicorn's sync workers close the "
        "connection after each response, so every request also pays a TCP connect. The list user has 60 done "
        "jobs with 5 artifacts each, so a 50-job page carries 250 artifact URLs. The POST benchmark rotates "
        "over 16 users (each with an unlimited license) with no worker running, so jobs stay queued; "
        "`submit_job` locks the user row, so one user's uploads are serialised by design.",
        "",
    ]
    if api.get("plot"):
        lines += [f"![latency and throughput against concurrency]({api['plot']})", ""]
    for key in API_KEYS:
        if key not in api:
            continue
        item = api[key]
        lines += [
            f"### {item['label']}",
            "",
            "| connections | req/s | p50 ms | p90 ms | p99 ms | errors | other CPU |",
            "|---:|---:|---:|---:|---:|---|---:|",
        ]
        for p in item["points"]:
            lines.append(
                f"| {p['connections']} | {p['rps']:.1f} | {_ms(p['p50_ms'])} | {_ms(p['p90_ms'])} | "
                f"{_ms(p['p99_ms'])} | {_errors(p)} | {_noise(p.get('noise'))} |"
            )
        lines += ["", f"`{item['points'][-1]['command']}`", ""]
    if "plain" in api:
        lines += [
            "### DRF overhead: API list ÷ plain Django list",
            "",
            "`/bench/plain-jobs` returns `JsonResponse(list(services.jobs_of_user(user).values(...)[:50]), "
            "safe=False)`: the same page query for the same user, authenticated by the API's own "
            "`BearerTokenAuthentication`, nothing else (the issue's baseline). "
            "`/bench/plain-jobs-full` runs the API's own page statement (the page with each job's artifacts "
            "and the total for X-Total-Count, through `.values()`) and builds the same JSON, artifact URLs "
            "included (formatted by the API's own `artifact_url`), without DRF: the ratio to it isolates "
            "what DRF and the serializer cost.",
            "",
            "| connections | API list req/s | plain req/s | API ÷ plain "
            "| plain, same statement req/s | API ÷ same statement |",
            "|---:|---:|---:|---:|---:|---:|",
        ]
        full = {p["connections"]: p for p in api.get("plain_full", {}).get("points", [])}
        for a, b in zip(api["list"]["points"], api["plain"]["points"], strict=True):
            f = full.get(a["connections"])
            lines.append(
                f"| {a['connections']} | {a['rps']:.1f} | {b['rps']:.1f} | **{a['rps'] / b['rps']:.2f}** | "
                + (f"{f['rps']:.1f} | {a['rps'] / f['rps']:.2f} |" if f else "– | – |")
            )
        lines.append("")
    return lines


def _queries(results: dict) -> list[str]:
    rows = results.get("queries")
    if not rows:
        return []
    lines = [
        "## 2. SQL queries per request",
        "",
        "Part `--only queries`. Counted in-process with Django's `CaptureQueriesContext` around one request "
        "through `django.test.Client` (after one unmeasured request), against the bench database with the "
        "production settings. One of each request's queries is the bearer-token lookup (the token "
        "with its user, by the token's 8-character prefix). "
        "`in-process ms` is the median of 30 requests without HTTP: the Python + database cost alone.",
        "",
        "| request | HTTP | queries | in-process ms |",
        "|---|---:|---:|---:|",
    ]
    for row in rows:
        lines.append(
            f"| {row['name']}: `{row['method']} {row['path']}` | {row['status']} | **{row['queries']}** | "
            f"{_ms(row.get('in_process_ms'))} |"
        )
    breakdown = results.get("list_breakdown")
    if breakdown:
        lines += [
            "",
            "### Where a 50-job list response spends its time",
            "",
            "In-process, best of 40 runs each, for the list user's first page (50 jobs, 250 artifacts). "
            "The plain view runs only the first row's query; the API runs `page_of_jobs_by_user` (the third row: "
            "one statement for the page as plain rows, each job's artifacts and the total), the "
            "serialisation and the rendering, plus what every request pays (middleware, token authentication, "
            "DRF's request handling and query validation).",
            "",
            "| step | ms |",
            "|---|---:|",
            *[f"| {row['step']} | {_ms(row['ms'])} |" for row in breakdown],
        ]
    gc_rows = results.get("gc_pauses")
    if gc_rows:
        lines += [
            "",
            "### Tail latency and Python's garbage collector",
            "",
            f"{gc_rows['requests']} in-process list requests (50 jobs) in this process, which has loaded what a "
            "gunicorn worker loads: first with Python's default collector, then after `gc.freeze()` (which "
            "takes the objects alive at that moment out of the collector's sight, as a gunicorn "
            "`post_worker_init` hook could do once the app is loaded). `full collections` counts "
            "generation-2 collections during the run.",
            "",
            "| gc | tracked objects | p50 ms | p90 ms | p99 ms | max ms | full collections |",
            "|---|---:|---:|---:|---:|---:|---:|",
            *[
                f"| {r['gc']} | {r['tracked_objects']:,} | {_ms(r['p50_ms'])} | {_ms(r['p90_ms'])} | "
                f"{_ms(r['p99_ms'])} | {_ms(r['max_ms'])} | {r['full_collections']} |"
                for r in gc_rows["rows"]
            ],
        ]
    lines += ["", "<details><summary>The statements of each request</summary>", ""]
    for row in rows:
        lines += [f"**{row['name']}**", "", "```sql", *row["sql"], "```", ""]
    lines += ["</details>", ""]
    return lines


def _scale(results: dict) -> list[str]:
    scale = results.get("scale")
    if not scale:
        return []
    load = scale["load"]
    plan = load["plan"]
    t = load["timings"]
    analysis = scale["analysis"]
    cases = analysis["cases"]
    lines = [
        "## 3. Lists at scale",
        "",
        f"Part `--only scale`. {plan['users']:,} users × {plan['jobs_per_user']:,} jobs plus one heavy user "
        f"with {plan['heavy_jobs']:,} jobs (90 % done with 5 artifacts, 6 % failed, 3 % queued, 1 % "
        "processing; created over the past year), streamed from a Python generator into `COPY ... FROM "
        "STDIN` with psycopg2's `copy_expert`, with the migrations' indexes in place and foreign-key "
        "triggers skipped for the load session (`session_replication_role = replica`; the generator emits "
        "only rows whose owner and job exist). Then `VACUUM (ANALYZE)`.",
        "",
        "| table | rows | COPY s | size on disk |",
        "|---|---:|---:|---:|",
    ]
    for table in ("users", "jobs", "file_artifacts"):
        size = load["total_bytes"].get(table)
        lines.append(
            f"| {table} | {load['rows'][table]:,} | {t[f'copy_{table}_s']} | "
            + (f"{size / 1024 / 1024:.0f} MiB |" if size else "– |")
        )
    lines += [
        f"| **total** | | **{t['copy_total_s']}** | |",
        "",
        f"`VACUUM (ANALYZE)` of the three tables: {t['vacuum_analyze_s']} s.",
        "",
        "### Plans of the list query",
        "",
        "The SQL is captured from Django (`CaptureQueriesContext` around "
        "`services.page_of_jobs_by_user(heavy_user, status, 50, offset, before=...)`: psycopg2's "
        "`cursor.query`, the exact statement sent) and run under `EXPLAIN (ANALYZE, BUFFERS)` after three "
        "warming runs. The page statement carries each job's artifacts (a correlated subquery on the "
        "`(job_id, type)` index) and the total for X-Total-Count (an uncorrelated subquery, run once as an "
        "InitPlan). `service ms` is the median wall time of the whole service call (page statement, and for "
        "keyset the anchor lookup, for deep offsets the id lookup) in-process.",
        "",
        "| case | page query plan | Sort node | rows filtered out | page query ms | service ms |",
        "|---|---|---|---:|---:|---:|",
    ]
    for name, case in cases.items():
        page = case["page"]
        lines.append(
            f"| {name} | {'; '.join(page['scans'])} | {', '.join(page['sort_nodes']) or 'none'} | "
            f"{page['rows_removed_by_filter']:,} | {_ms(page['execution_ms'])} | {_ms(case['service_ms'])} |"
        )
    for name, alt in analysis.get("alternatives", {}).items():
        lines.append(
            f"| *not in the app:* {name} | {'; '.join(alt['scans'])} | {', '.join(alt['sort_nodes']) or 'none'} | "
            f"{alt['rows_removed_by_filter']:,} | {_ms(alt['execution_ms'])} | – |"
        )
    lines.append("")
    for depth in ("10,000", "90,000"):
        case = cases.get(f"before=<{depth}th id>")
        if case and "same_page_as_offset" in case:
            same = "the same page as" if case["same_page_as_offset"] else "a DIFFERENT page from"
            lines.append(f"- `before=<{depth}th id>` returns {same} `offset={depth.replace(',', '')}`.")
    lines += ["", "### The count behind X-Total-Count (part of the page statement)", ""]
    for name, count in analysis["counts"].items():
        ex = count["explain"]
        lines.append(
            f"- `{name}` for the heavy user ({count['value']:,} rows): {'; '.join(ex['scans'])}, "
            f"{_ms(ex['execution_ms'])} ms in EXPLAIN ANALYZE, {_ms(count['service_ms'])} ms per call in-process."
        )
    page1 = cases["page 1"]["service_ms"]
    count_ms = analysis["counts"]["count"]["service_ms"]
    share = min(count_ms / page1, 1.0)
    lines += [
        "",
        f"Run on its own the count takes {_ms(count_ms)} ms; the whole page-1 call, count included, takes "
        f"{_ms(page1)} ms: the count is about **{share:.0%} of the list's database time** for this user"
        + (", and so of every keyset page too." if share > 0.5 else "."),
        "",
    ]
    http = scale["http"]
    lines += [
        "### Latency over HTTP by depth (heavy user, one connection)",
        "",
        "wrk with one connection for 4 s per row, through gunicorn, knox, DRF and the count.",
        "",
    ]
    if scale.get("plot"):
        lines += [f"![latency by depth]({scale['plot']})", ""]
    lines += ["| request | req/s | p50 ms | p99 ms | errors | other CPU |", "|---|---:|---:|---:|---|---:|"]
    for name, row in http.items():
        shown = row["path"] if "before=" not in row["path"] else row["path"].split("before=")[0] + "before=<id>"
        lines.append(
            f"| {name}: `{shown}` | {row['rps']:.1f} | {_ms(row['p50_ms'])} | {_ms(row['p99_ms'])} | "
            f"{_errors(row)} | {_noise(row.get('noise'))} |"
        )
    lines += ["", "<details><summary>EXPLAIN (ANALYZE, BUFFERS) of every statement</summary>", ""]
    for name, case in cases.items():
        lines += [f"#### {name}", "", "```sql", case["page"]["sql"], "```", "", "```", case["page"]["plan"], "```", ""]
        for other in case["other_statements"]:
            lines += ["```sql", other["sql"], "```", "", "```", other["plan"], "```", ""]
    for name, alt in analysis.get("alternatives", {}).items():
        lines += [f"#### not in the app: {name}", "", "```sql", alt["sql"], "```", "", "```", alt["plan"], "```", ""]
    for name, count in analysis["counts"].items():
        lines += [
            f"#### {name}",
            "",
            "```sql",
            count["explain"]["sql"],
            "```",
            "",
            "```",
            count["explain"]["plan"],
            "```",
            "",
        ]
    lines += ["</details>", ""]
    return lines


def _transcribe(results: dict) -> list[str]:
    tr = results.get("transcribe")
    if not tr:
        return []
    e2e = tr["e2e"]
    engine = e2e["engine"]
    lines = [
        "## 4. Transcription",
        "",
        f"Part `--only transcribe`. Model `{engine['model']}` on {engine['device']} ({engine['compute_type']}, "
        f"cpu_threads={engine['cpu_threads']} = CTranslate2's default, beam {engine['beam_size']}, VAD "
        f"{'on' if engine['vad_filter'] else 'off'}, word timestamps), the settings `pipeline.engine_config()` "
        "gives the worker.",
        "",
        "### End to end ÷ faster-whisper alone",
        "",
        f"One Celery worker (`--concurrency=1`) with the model preloaded and one warm-up job done. Each round "
        f"first times `transcriptions.engine.transcribe` on `{e2e['clip']}` ({e2e['audio_s']:.1f} s) in the "
        "benchmark process (model loaded beforehand, worker idle), then submits the same file through "
        f"`POST /api/transcriptions` and polls `GET /api/transcriptions/<id>` every {e2e['poll_ms']:.0f} ms "
        "until it is `done`. `server` is the job's own `updated_at − created_at`; `worker` its "
        "`processing_time_ms` (transcription + writing the four files).",
        "",
        "| round | faster-whisper s | end to end s | server s | worker s | ratio | other CPU |",
        "|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for i, r in enumerate(e2e["rounds"], start=1):
        lines.append(
            f"| {i} | {r['raw_s']:.2f} | {r['e2e_s']:.2f} | {r['server_s']:.2f} | {r['worker_processing_s']:.2f} | "
            f"{r['ratio']:.2f} | {_noise(r.get('noise'))} |"
        )
    lines += [
        f"| **median** | **{e2e['raw_median_s']:.2f}** | **{e2e['e2e_median_s']:.2f}** | "
        f"{e2e['server_median_s']:.2f} | | **{e2e['ratio']:.2f}** | |",
        "",
        f"Median of the rounds' ratios: **{e2e['ratio']:.2f}** (aim ≤ {E2E_AIM}): {_ok(e2e['ratio'] <= E2E_AIM)}. "
        f"Ratio of the medians: {e2e.get('ratio_of_medians', e2e['ratio']):.2f}; server-side (`updated_at − "
        f"created_at`, no polling granularity): {e2e['server_ratio']:.2f}. Single runs vary by several "
        "per cent either way on this machine, hence several rounds and the median of paired ratios. Other "
        f"processes used {_noise(e2e.get('noise'))} of the CPU over the rounds.",
        "",
        "### Throughput by worker processes",
        "",
        "One Celery worker with N prefork pool processes; after warm-up jobs, "
        f"{tr['throughput'][0]['copies']} copies of the 60 s clip are submitted back to back and timed from "
        "the first submit to the last `done` (polled every 100 ms). Memory is each pool process's "
        "`VmHWM` (peak resident set) from `/proc/<pid>/status` after the batch.",
        "",
        "| worker processes | audio s | wall s | audio s per wall s | mean job s "
        "| peak VmHWM per process | other CPU |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for b in tr["throughput"]:
        lines.append(
            f"| {_batch_name(b)} | {b['audio_s']:.0f} | {b['wall_s']:.1f} | **{b['audio_s_per_wall_s']:.1f}** | "
            f"{b['mean_job_processing_s']:.2f} | {_mib(b['peak_vmhwm_kib'])} | {_noise(b.get('noise'))} |"
        )
    lines.append("")
    return lines


def _findings(results: dict) -> list[str]:
    found = []
    api = results.get("api")
    if api and "plain" in api:
        ratio = _peak(api["list"]["points"])["rps"] / _peak(api["plain"]["points"])["rps"]
        if ratio < RATIO_AIM:
            text = (
                f"API list ÷ plain Django list = {ratio:.2f}, below the {RATIO_AIM} aim (see section 1 and the "
                "in-process times in section 2)."
            )
            if "plain_full" in api:
                full_ratio = _peak(api["list"]["points"])["rps"] / _peak(api["plain_full"]["points"])["rps"]
                text += (
                    f" Against a plain view that runs the same statement and builds the same JSON the ratio is "
                    f"{full_ratio:.2f}: the difference between the two ratios is the endpoint's extra work (each "
                    "job's artifacts, the count, a larger body), the rest is DRF and the serializer."
                )
            in_process = {row["name"]: row.get("in_process_ms") for row in results.get("queries", [])}
            list_ms, plain_ms = in_process.get("list, 50 jobs"), in_process.get("plain view, 50 jobs (bench only)")
            if list_ms and plain_ms:
                text += f" In-process: {_ms(list_ms)} ms per 50-job list request against {_ms(plain_ms)} ms."
            found.append(text)
    gc_rows = results.get("gc_pauses", {}).get("rows", [])
    if len(gc_rows) == 2 and gc_rows[0]["max_ms"] > 2 * gc_rows[1]["max_ms"]:
        default, frozen = gc_rows
        found.append(
            "Full garbage collections stall list requests: of the in-process list requests, the slowest took "
            f"{_ms(default['max_ms'])} ms with the default collector ({default['full_collections']} full "
            f"collections, p99 {_ms(default['p99_ms'])} ms) and {_ms(frozen['max_ms'])} ms after `gc.freeze()` "
            f"(p99 {_ms(frozen['p99_ms'])} ms); see section 2. Handled: `config/gunicorn.conf.py` calls "
            "`gc.freeze()` in `post_worker_init`, so the served workers run the second configuration."
        )
    queries = {row["name"]: row["queries"] for row in results.get("queries", [])}
    if queries.get("list, 5 jobs") != queries.get("list, 50 jobs"):
        found.append("The list's query count grows with the page size: an N+1 (section 2).")
    scale = results.get("scale")
    if scale:
        for name, case in scale["analysis"]["cases"].items():
            page = case["page"]
            if page["sort_nodes"]:
                text = (
                    f"`{name}`: the page query has a {', '.join(page['sort_nodes'])} node "
                    f"({'; '.join(page['scans'])}), {_ms(page['execution_ms'])} ms."
                )
                for alt_name, alt in scale["analysis"].get("alternatives", {}).items():
                    if alt_name.startswith(name):
                        text += f" Rewritten as a deferred join it takes {_ms(alt['execution_ms'])} ms (section 3)."
                found.append(text)
            if page["seq_scan"]:
                found.append(f"`{name}`: the page query scans a table sequentially.")
            if name.startswith("before=") and page["rows_removed_by_filter"] > 1000:
                found.append(
                    f"`{name}`: the keyset page query reads and discards {page['rows_removed_by_filter']:,} rows "
                    f"({_ms(page['execution_ms'])} ms): the `created_at < t OR (created_at = t AND id < i)` "
                    "condition is applied as a filter, not as an index range."
                )
        counts = scale["analysis"]["counts"]["count"]
        page1 = scale["analysis"]["cases"]["page 1"]["service_ms"]
        if counts["service_ms"] > page1 / 2:
            found.append(
                f"X-Total-Count's COUNT costs {_ms(counts['service_ms'])} ms for a user with "
                f"{counts['value']:,} jobs, more than half of the whole page-1 call ({_ms(page1)} ms), on every "
                "list request including keyset pages. It is an index-only scan and grows linearly with the "
                "user's jobs; kept, because every page states its total. A per-user counter kept up to date "
                "with each job would make it constant if users with millions of jobs appear."
            )
    tr = results.get("transcribe")
    if tr and tr["e2e"]["ratio"] > E2E_AIM:
        found.append(f"End to end ÷ faster-whisper = {tr['e2e']['ratio']:.2f}, above the {E2E_AIM} aim (section 4).")
    lines = ["## Findings", ""]
    lines += [f"- {f}" for f in found] if found else ["- Every figure meets its aim."]
    lines.append("")
    return lines


def render(results: dict, path: Path) -> None:
    """Write the report (and its plots) for these results."""
    PLOTS.mkdir(parents=True, exist_ok=True)
    if results.get("api"):
        results["api"]["plot"] = _plot_api(results["api"])
    if results.get("scale"):
        results["scale"]["plot"] = _plot_depth(results["scale"]["http"])
    lines = [
        "# Benchmarks",
        "",
        "Written by `make bench` (`bench/run.py`, see `bench/README.md`); do not edit by hand. "
        "Figures are from one run on the machine described below.",
        "",
        *_summary(results),
        *_findings(results),
        *_machine(results),
        *_reproduce(),
        *_api(results),
        *_queries(results),
        *_scale(results),
        *_transcribe(results),
    ]
    tmp = path.with_suffix(".md.tmp")
    tmp.write_text("\n".join(lines).rstrip() + "\n")
    os.replace(tmp, path)
