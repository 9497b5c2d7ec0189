"""Run one claimed job: transcribe its audio, store the four results, finish it.

Called by the Celery task (or the in-process runner). Knows the services and
the engine; holds no queue policy of its own.
"""

import logging
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from django.conf import settings
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db import DatabaseError, connection

from . import engine, formats, services
from .models import ArtifactType, Job

logger = logging.getLogger(__name__)

PROGRESS_INTERVAL_SECONDS = 1.0


class JobLost(Exception):
    """This attempt no longer owns the job (it was requeued or deleted meanwhile)."""


def engine_config() -> engine.EngineConfig:
    """Return the engine settings chosen for this deployment."""
    return engine.EngineConfig(
        device=settings.WHISPER_DEVICE,
        compute_type=settings.WHISPER_COMPUTE_TYPE,
        cpu_threads=settings.WHISPER_CPU_THREADS,
    )


def model_path(name: str) -> Path:
    """Return the folder of an installed model; raise EngineError if it is not installed."""
    models = engine.installed_models(settings.WHISPER_MODELS_DIR)
    if name not in models:
        raise engine.EngineError(f"model {name!r} is not installed on this worker")
    return models[name]


def warm_up(name: str | None = None) -> None:
    """Load a model into this process so the first job does not pay for it."""
    name = name or settings.DEFAULT_MODEL_NAME
    engine.get_model(name, model_path(name), engine_config())


@contextmanager
def local_copy(storage_name: str) -> Iterator[Path]:
    """Yield a local path of a stored file, copying it out of remote storage if needed."""
    try:
        yield Path(default_storage.path(storage_name))
        return
    except NotImplementedError:
        pass
    suffix = Path(storage_name).suffix
    with tempfile.NamedTemporaryFile(suffix=suffix) as tmp, default_storage.open(storage_name, "rb") as src:
        for chunk in iter(lambda: src.read(1 << 20), b""):
            tmp.write(chunk)
        tmp.flush()
        yield Path(tmp.name)


@contextmanager
def heartbeat(job_id: str, attempt: int) -> Iterator[None]:
    """Touch the job regularly while the block runs, so the sweep knows its worker lives.

    Progress writes only happen as segments come out; decoding and voice
    detection before the first segment can take longer than the stale timeout.
    """
    interval = max(0.2, min(settings.JOB_HEARTBEAT_SECONDS, settings.JOB_STALE_AFTER_SECONDS / 3))
    stop = threading.Event()

    def beat() -> None:
        try:
            while not stop.wait(interval):
                if not services.touch_job(job_id, attempt):
                    return
        except DatabaseError:
            logger.warning("heartbeat of job %s could not reach the database", job_id)
        finally:
            connection.close()

    thread = threading.Thread(target=beat, name=f"heartbeat-{job_id}", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=5)


def _progress_writer(job_id: str, attempt: int) -> Callable[[float], None]:
    last = 0.0

    def write(fraction: float) -> None:
        nonlocal last
        now = time.monotonic()
        # Throttled: at most one UPDATE a second; the final 100 is written by complete_job.
        if now - last < PROGRESS_INTERVAL_SECONDS or fraction >= 1.0:
            return
        last = now
        if not services.record_progress(job_id, attempt, int(fraction * 100)):
            raise JobLost(job_id)

    return write


def _render(job: Job, transcript: dict) -> dict[str, tuple[str, bytes]]:
    return {
        ArtifactType.RESULT_JSON: ("result.json", formats.to_json_bytes(transcript)),
        ArtifactType.TRANSCRIPT_TXT: ("transcript.txt", formats.to_txt(transcript).encode("utf-8")),
        ArtifactType.SUBTITLES_SRT: ("subtitles.srt", formats.to_srt(transcript).encode("utf-8")),
        ArtifactType.SUBTITLES_VTT: ("subtitles.vtt", formats.to_vtt(transcript).encode("utf-8")),
    }


def _store(job: Job, rendered: dict[str, tuple[str, bytes]], stored: list[str]) -> list[services.StoredOutput]:
    outputs = []
    for type_, (filename, data) in rendered.items():
        name = default_storage.save(f"jobs/{job.pk}/{filename}", ContentFile(data))
        stored.append(name)
        outputs.append(services.StoredOutput(type_, name, len(data)))
    return outputs


def process_job(job_id: str | uuid.UUID, attempt: int) -> str:
    """Transcribe a job this attempt has claimed; return 'done', 'failed' or 'lost'.

    Database errors propagate (the caller retries them); audio and engine
    errors fail the job with a short message. Partial files never stay behind.
    """
    job = services.get_job_by_id(job_id)
    audio = services.get_artifact_by_type(job, ArtifactType.AUDIO) if job else None
    if job is None:
        return "lost"
    if audio is None:
        services.fail_job(job.pk, attempt, "the job has no audio to transcribe")
        return "failed"
    stored: list[str] = []
    started = time.monotonic()
    try:
        with local_copy(audio.path) as path, heartbeat(str(job.pk), attempt):
            result = engine.transcribe(
                path,
                model=job.model_name,
                model_path=model_path(job.model_name),
                language=job.language,
                mode=job.mode,
                config=engine_config(),
                on_progress=_progress_writer(str(job.pk), attempt),
            )
        transcript = result.to_dict()
        outputs = _store(job, _render(job, transcript), stored)
        finished = services.complete_job(
            job.pk,
            attempt,
            outputs,
            audio_duration_ms=int(round(result.duration * 1000)),
            processing_time_ms=int((time.monotonic() - started) * 1000),
        )
    except engine.EngineError as exc:
        services.delete_stored_files(stored)
        services.fail_job(job.pk, attempt, str(exc))
        logger.info("job %s failed: %s", job.pk, exc)
        return "failed"
    except JobLost:
        services.delete_stored_files(stored)
        logger.info("job %s was taken from attempt %s; results discarded", job.pk, attempt)
        return "lost"
    except BaseException:
        services.delete_stored_files(stored)
        raise
    if not finished:
        services.delete_stored_files(stored)
        return "lost"
    # Files an earlier attempt wrote before it died belong to no artifact.
    services.delete_unreferenced_files(job.pk)
    logger.info("job %s done in %d ms", job.pk, int((time.monotonic() - started) * 1000))
    return "done"
