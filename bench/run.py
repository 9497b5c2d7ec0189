#!/usr/bin/env python
"""`make bench`: start the real stack, run every benchmark, write BENCHMARKS.md.

    .venv/bin/python bench/run.py                 # everything (~15 min on 2 cores)
    .venv/bin/python bench/run.py --quick         # no 1M-row part, shorter runs (~5 min)
    .venv/bin/python bench/run.py --only api,queries

Raw results go to bench/out/ (logs, results.json); the report to BENCHMARKS.md
and its plots to bench/plots/. See bench/README.md.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
ROOT = BENCH_DIR.parent
sys.path[:0] = [str(BENCH_DIR), str(ROOT)]

PHASES = ("api", "queries", "transcribe", "scale")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="skip the 1M-row part; 3 s load points; 1 round")
    parser.add_argument("--only", default="", help=f"comma-separated phases to run: {', '.join(PHASES)}")
    parser.add_argument("--duration", type=float, default=None, help="seconds per load point (default 8, quick 3)")
    parser.add_argument("--concurrency", default="1,4,16,64", help="wrk connection counts (default 1,4,16,64)")
    parser.add_argument("--users", type=int, default=1000, help="scale: regular users (default 1000)")
    parser.add_argument("--jobs-per-user", type=int, default=1000, help="scale: jobs per regular user (default 1000)")
    parser.add_argument(
        "--heavy-jobs", type=int, default=100_000, help="scale: jobs of the heavy user (default 100000)"
    )
    parser.add_argument("--rounds", type=int, default=None, help="end-to-end rounds of the 60 s clip (default 7)")
    parser.add_argument("--copies", type=int, default=6, help="60 s clips per throughput batch (default 6)")
    parser.add_argument(
        "--wait-quiet",
        type=float,
        default=float(os.environ.get("BENCH_WAIT_QUIET", "0")),
        help="wait up to this many seconds for other processes to use < 15%% CPU before measuring (default 0)",
    )
    parser.add_argument("--keep-db", action="store_true", help="leave the bench database behind for inspection")
    parser.add_argument("--report", default=str(ROOT / "BENCHMARKS.md"), help="where to write the report")
    parser.add_argument("--render-only", action="store_true", help="re-render the report from bench/out/results.json")
    args = parser.parse_args(argv)
    args.phases = [p for p in args.only.split(",") if p] or [p for p in PHASES if not (args.quick and p == "scale")]
    unknown = set(args.phases) - set(PHASES)
    if unknown:
        parser.error(f"unknown phase(s): {', '.join(sorted(unknown))}")
    args.duration = args.duration or (3.0 if args.quick else 8.0)
    args.rounds = args.rounds or (3 if args.quick else 7)
    args.levels = [int(c) for c in args.concurrency.split(",")]
    return args


def ensure_matplotlib() -> None:
    """Install the bench-only requirements into this virtualenv if matplotlib is missing."""
    if importlib.util.find_spec("matplotlib") is None:
        print("bench: installing bench/requirements.txt (matplotlib)", flush=True)
        subprocess.run(
            [sys.executable, "-m", "pip", "install", "--quiet", "-r", str(BENCH_DIR / "requirements.txt")], check=True
        )


def _close_django_connections() -> None:
    from django.apps import apps

    if apps.ready:
        from django.db import connections

        connections.close_all()


def _raise_on_sigterm(signum, frame):
    print("bench: terminated; stopping what it started", file=sys.stderr, flush=True)
    raise SystemExit(128 + signum)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    out_dir = BENCH_DIR / "out"
    out_dir.mkdir(exist_ok=True)
    results_path = out_dir / "results.json"
    ensure_matplotlib()
    import report

    if args.render_only:
        report.render(json.loads(results_path.read_text()), Path(args.report))
        return 0

    import loadgen
    from stack import Stack

    loadgen.ensure_wrk()
    signal.signal(signal.SIGTERM, _raise_on_sigterm)
    # Also when started in the background by a shell, which would leave SIGINT ignored.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    results: dict = {}
    if args.only and results_path.exists():
        results = json.loads(results_path.read_text())  # a partial run updates the other phases' figures
    started = time.monotonic()
    with Stack(
        out_dir,
        db_name=os.environ.get("BENCH_DB", "bench"),
        redis_db=int(os.environ.get("BENCH_REDIS_DB", "14")),
        keep_db=args.keep_db,
    ) as stack:
        try:
            run_phases(args, stack, results)
        except KeyboardInterrupt:
            print("bench: interrupted; stopping what it started", file=sys.stderr, flush=True)
            raise
        finally:
            _close_django_connections()
    results["run"] = {
        "finished": datetime.now(UTC).isoformat(timespec="seconds"),
        "seconds": round(time.monotonic() - started),
        "argv": sys.argv[1:] if argv is None else argv,
        "phases": args.phases,
        "wait_quiet": args.wait_quiet,
    }
    results_path.write_text(json.dumps(results, indent=2, default=str))
    report.render(results, Path(args.report))
    print(f"bench: wrote {args.report} in {results['run']['seconds']} s", flush=True)
    return 0


QUIET_FOREIGN_PCT = 15


def idle_sample(stack, wait_seconds: float = 0, seconds: float = 3.0) -> dict:
    """Return the CPU other processes use while the stack idles, waiting up to wait_seconds for quiet."""
    deadline = time.monotonic() + wait_seconds
    while True:
        meter = stack.meter()
        meter.start()
        time.sleep(seconds)
        sample = meter.stop()
        print(f"bench: CPU with the stack idle: {sample}", flush=True)
        if sample["foreign_pct"] < QUIET_FOREIGN_PCT or time.monotonic() >= deadline:
            return sample


def run_phases(args: argparse.Namespace, stack, results: dict) -> None:
    import machine

    print(f"bench: database {stack.db_name}, Redis db {stack.redis_db}, gunicorn on {stack.base_url}", flush=True)
    stack.flush_redis()
    stack.create_database()
    os.environ.update(stack.env)
    import django

    django.setup()
    import seed

    stack.start_gunicorn()
    fixtures = seed.seed_api()
    results["machine"] = machine.describe(stack)
    results["machine"]["idle_sample"] = idle_sample(stack, args.wait_quiet)
    timings = results.setdefault("phase_seconds", {})

    def gate() -> None:
        # On a shared machine, let other processes' bursts pass before each measurement.
        if args.wait_quiet:
            idle_sample(stack, args.wait_quiet)

    if "api" in args.phases:
        import api_bench

        t0 = time.monotonic()
        results["api"] = api_bench.run(
            stack.base_url, fixtures, stack.out_dir, args.levels, args.duration, stack.meter(), gate
        )
        results["api_settings"] = {"seconds": args.duration, "levels": args.levels}
        timings["api"] = round(time.monotonic() - t0)

    if "queries" in args.phases:
        import query_counts

        gate()
        results["queries"] = query_counts.run(fixtures)
        results["list_breakdown"] = query_counts.list_breakdown(fixtures)
        results["gc_pauses"] = query_counts.gc_pauses(fixtures)

    if "transcribe" in args.phases:
        import transcribe_bench

        t0 = time.monotonic()
        stack.flush_redis()  # drop the messages of the jobs the POST benchmark queued
        gate()
        e2e = transcribe_bench.end_to_end_ratio(stack, fixtures.e2e_token, args.rounds, gate)
        batches = []
        for processes, extra_env in ((1, None), (2, None), (2, {"WHISPER_CPU_THREADS": "1"})):
            gate()
            batches.append(transcribe_bench.throughput(stack, fixtures.e2e_token, processes, args.copies, extra_env))
        results["transcribe"] = {"e2e": e2e, "throughput": batches}
        timings["transcribe"] = round(time.monotonic() - t0)

    if "scale" in args.phases:
        import scale

        t0 = time.monotonic()
        plan = scale.Plan(args.users, args.jobs_per_user, args.heavy_jobs)
        loaded = scale.load(f"host=127.0.0.1 port=5432 user=postgres dbname={stack.db_name}", plan)
        gate()
        analysed = scale.analyse()
        from accounts.models import User

        token = seed.token_for(User.objects.get(email=scale.HEAVY_EMAIL))
        gate()
        http = scale.http_latency(stack.base_url, token, analysed["cases"], stack.meter())
        results["scale"] = {"load": loaded, "analysis": analysed, "http": http}
        timings["scale"] = round(time.monotonic() - t0)


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        sys.exit(130)
