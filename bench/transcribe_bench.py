"""Transcription: end-to-end time against faster-whisper's own, throughput per worker count, memory.

The raw figure runs `transcriptions.engine.transcribe` in this process with
the same model, EngineConfig and file the worker uses (pipeline.engine_config
and pipeline.model_path read the same settings), the model loaded beforehand.
"""

from __future__ import annotations

import json
import statistics
import time
import urllib.request
import uuid
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from stack import Stack, children_of, memory_kib

ROOT = Path(__file__).resolve().parent.parent
SHORT_CLIP = ROOT / "tests/fixtures/speech_en.mp3"
LONG_CLIP = ROOT / "tests/fixtures/speech_60s.ogg"
POLL_SECONDS = 0.02
BATCH_POLL_SECONDS = 0.1
JOB_DEADLINE_SECONDS = 600


class Api:
    """A tiny HTTP client for the service (standard library only)."""

    def __init__(self, base_url: str, token: str):
        self.base_url = base_url
        self.token = token

    def _open(self, request: urllib.request.Request) -> dict:
        request.add_header("Authorization", f"Bearer {self.token}")
        with urllib.request.urlopen(request, timeout=60) as response:
            return json.loads(response.read())

    def submit(self, clip: Path) -> dict:
        boundary = f"bench-{uuid.uuid4().hex}"
        body = b"".join(
            [
                f'--{boundary}\r\nContent-Disposition: form-data; name="audio"; filename="{clip.name}"\r\n'
                "Content-Type: application/octet-stream\r\n\r\n".encode(),
                clip.read_bytes(),
                f'\r\n--{boundary}\r\nContent-Disposition: form-data; name="model_name"\r\n\r\ntiny.en\r\n'
                f"--{boundary}--\r\n".encode(),
            ]
        )
        request = urllib.request.Request(
            f"{self.base_url}/api/transcriptions",
            data=body,
            method="POST",
            headers={"Content-Type": f"multipart/form-data; boundary={boundary}"},
        )
        return self._open(request)

    def job(self, job_id: str) -> dict:
        return self._open(urllib.request.Request(f"{self.base_url}/api/transcriptions/{job_id}"))


def _finished(job: dict) -> bool:
    if job["status"] == "failed":
        raise RuntimeError(f"job {job['id']} failed: {job['error_message']}")
    return job["status"] == "done"


def wait_done(api: Api, job_id: str, poll: float = POLL_SECONDS) -> dict:
    """Poll the job every `poll` seconds until it is done; return its last JobOut."""
    deadline = time.monotonic() + JOB_DEADLINE_SECONDS
    while time.monotonic() < deadline:
        job = api.job(job_id)
        if _finished(job):
            return job
        time.sleep(poll)
    raise RuntimeError(f"job {job_id} not done within {JOB_DEADLINE_SECONDS} s")


def _server_seconds(job: dict) -> float:
    created = datetime.fromisoformat(job["created_at"].replace("Z", "+00:00"))
    updated = datetime.fromisoformat(job["updated_at"].replace("Z", "+00:00"))
    return (updated - created).total_seconds()


@dataclass
class RawEngine:
    """faster-whisper through the project's engine, in this process, with the worker's settings."""

    def __post_init__(self):
        from django.conf import settings

        from transcriptions import engine, pipeline

        self.engine = engine
        self.model = settings.DEFAULT_MODEL_NAME
        self.model_path = pipeline.model_path(self.model)
        self.config = pipeline.engine_config()
        engine.get_model(self.model, self.model_path, self.config)
        self.transcribe(SHORT_CLIP)  # loads the VAD model and warms the decoder

    def transcribe(self, clip: Path) -> tuple[float, float]:
        """Return (seconds taken, audio seconds) for one transcription."""
        t0 = time.perf_counter()
        result = self.engine.transcribe(clip, model=self.model, model_path=self.model_path, config=self.config)
        return time.perf_counter() - t0, result.duration

    def describe(self) -> dict:
        return {
            "model": self.model,
            "device": self.config.resolved_device(),
            "compute_type": self.config.resolved_compute_type(),
            "cpu_threads": self.config.cpu_threads,
            "beam_size": self.config.beam_size,
            "vad_filter": self.config.vad_filter,
        }


def end_to_end_ratio(stack: Stack, token: str, rounds: int, gate=None) -> dict:
    """Time one 60 s job through the API against the raw engine, alternating, `rounds` times.

    The headline is the median of the rounds' ratios: each round's two runs are
    seconds apart, so a burst of other load skews one round rather than the
    whole figure.
    """
    api = Api(stack.base_url, token)
    raw = RawEngine()
    worker = stack.start_worker(1, tag="-e2e")
    try:
        wait_done(api, api.submit(SHORT_CLIP)["id"])  # warm-up: the pool process has run a job
        meter, round_meter = stack.meter(), stack.meter()
        meter.start()
        samples = []
        for i in range(rounds):
            if gate is not None:
                gate()
            round_meter.start()
            raw_s, audio_s = raw.transcribe(LONG_CLIP)
            t0 = time.perf_counter()
            job = api.submit(LONG_CLIP)
            done = wait_done(api, job["id"])
            e2e_s = time.perf_counter() - t0
            samples.append(
                {
                    "raw_s": round(raw_s, 3),
                    "e2e_s": round(e2e_s, 3),
                    "server_s": round(_server_seconds(done), 3),
                    "worker_processing_s": done["processing_time_ms"] / 1000,
                    "ratio": round(e2e_s / raw_s, 3),
                    "noise": round_meter.stop(),
                }
            )
            print(f"bench: e2e round {i + 1}: {samples[-1]}", flush=True)
        noise = meter.stop()
        memory = {pid: memory_kib(pid) for pid in children_of(worker.pid)}
    finally:
        stack.stop_worker(worker)
    raw_median = statistics.median(s["raw_s"] for s in samples)
    e2e_median = statistics.median(s["e2e_s"] for s in samples)
    server_median = statistics.median(s["server_s"] for s in samples)
    return {
        "clip": str(LONG_CLIP.relative_to(ROOT)),
        "audio_s": round(audio_s, 2),
        "engine": raw.describe(),
        "poll_ms": POLL_SECONDS * 1000,
        "rounds": samples,
        "raw_median_s": round(raw_median, 3),
        "e2e_median_s": round(e2e_median, 3),
        "server_median_s": round(server_median, 3),
        "ratio": round(statistics.median(s["ratio"] for s in samples), 3),
        "ratio_of_medians": round(e2e_median / raw_median, 3),
        "server_ratio": round(statistics.median(s["server_s"] / s["raw_s"] for s in samples), 3),
        "worker_memory_kib": memory,
        "noise": noise,
    }


def throughput(stack: Stack, token: str, processes: int, copies: int, extra_env: dict | None = None) -> dict:
    """Submit `copies` of the 60 s clip at once to a worker with `processes` pool processes."""
    api = Api(stack.base_url, token)
    tag = f"-x{processes}" + ("-t" + extra_env["WHISPER_CPU_THREADS"] if extra_env else "")
    worker = stack.start_worker(processes, extra_env, tag=tag)
    try:
        warm = [api.submit(SHORT_CLIP)["id"] for _ in range(2 * processes)]
        for job_id in warm:
            wait_done(api, job_id, BATCH_POLL_SECONDS)
        meter = stack.meter()
        meter.start()
        t0 = time.perf_counter()
        pending = [api.submit(LONG_CLIP)["id"] for _ in range(copies)]
        finished = []
        deadline = time.monotonic() + JOB_DEADLINE_SECONDS
        while pending and time.monotonic() < deadline:
            for job_id in list(pending):
                job = api.job(job_id)
                if _finished(job):
                    pending.remove(job_id)
                    finished.append(job)
            time.sleep(BATCH_POLL_SECONDS)
        wall = time.perf_counter() - t0
        noise = meter.stop()
        if pending:
            raise RuntimeError(f"{len(pending)} jobs not done within {JOB_DEADLINE_SECONDS} s")
        memory = {pid: memory_kib(pid) for pid in children_of(worker.pid)}
    finally:
        stack.stop_worker(worker)
    audio_s = sum(job["audio_duration_ms"] for job in finished) / 1000
    result = {
        "processes": processes,
        "env": extra_env or {},
        "copies": copies,
        "audio_s": round(audio_s, 1),
        "wall_s": round(wall, 2),
        "audio_s_per_wall_s": round(audio_s / wall, 2),
        "mean_job_processing_s": round(statistics.mean(j["processing_time_ms"] for j in finished) / 1000, 2),
        "worker_memory_kib": memory,
        "peak_vmhwm_kib": max(m["VmHWM"] for m in memory.values()),
        "noise": noise,
    }
    print(f"bench: throughput {processes} process(es) {extra_env or ''}: {result}", flush=True)
    return result
