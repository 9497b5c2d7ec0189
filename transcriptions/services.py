"""Transcription services: job lifecycle, artifacts, submission rules, recovery.

Every status change is decided by `set_job_status` (or, for the conditional
UPDATEs a worker needs, by `_check_transition` with the same table).
"""

import logging
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, BinaryIO, NamedTuple

from django.conf import settings
from django.core.files.base import File
from django.core.files.storage import default_storage
from django.db import IntegrityError, transaction
from django.db.models import F, Q, Sum
from django.utils import timezone

from accounts.models import User
from config.errors import Conflict, Forbidden, LimitExceeded
from licenses.services import active_license_for

from . import engine
from .models import ArtifactType, FileArtifact, Job, JobMode, JobStatus

logger = logging.getLogger(__name__)

ALLOWED_TRANSITIONS: dict[str, set[str]] = {
    JobStatus.QUEUED: {JobStatus.PROCESSING},
    JobStatus.PROCESSING: {JobStatus.DONE, JobStatus.FAILED},
    JobStatus.DONE: set(),
    JobStatus.FAILED: {JobStatus.QUEUED},
}
MAX_LIST_LIMIT = 200
# From this offset on, a page is found by id first (a "deferred join"): skipping
# rows in the index is cheap, fetching and sorting whole rows to skip them is not.
DEEP_OFFSET = 1000
IDEMPOTENCY_WINDOW = timedelta(hours=24)
MAX_IDEMPOTENCY_KEY_LENGTH = 255
ERROR_MESSAGE_MAX = 500


def _check_transition(current: str, new: str) -> None:
    if new not in JobStatus.values:
        raise ValueError(f"unknown status {new!r}; expected one of {', '.join(JobStatus.values)}")
    if new not in ALLOWED_TRANSITIONS[current]:
        raise ValueError(f"a {current} job cannot become {new}")


def _parse_uuid(value: Any) -> uuid.UUID | None:
    if isinstance(value, uuid.UUID):
        return value
    try:
        return uuid.UUID(str(value))
    except (ValueError, TypeError, AttributeError):
        return None


def _check_mode(mode: Any) -> str:
    if mode not in JobMode.values:
        raise ValueError(f"invalid mode {mode!r}; expected one of {', '.join(JobMode.values)}")
    return mode


def _check_language(language: Any) -> str | None:
    if language is None or language == "":
        return None
    if not isinstance(language, str) or language.lower() not in engine.supported_languages():
        raise ValueError(f"invalid language {language!r}; expected an ISO 639-1 code such as 'en'")
    return language.lower()


# --- Jobs: the seed's repository functions ---------------------------------


def create_job(
    owner: User,
    model_name: str,
    language: str | None = None,
    mode: str = JobMode.TRANSCRIBE,
    *,
    job_id: uuid.UUID | None = None,
    idempotency_key: str | None = None,
    audio_duration_ms: int | None = None,
) -> Job:
    """Insert a queued job; raise ValueError on bad input."""
    if owner is None or getattr(owner, "pk", None) is None:
        raise ValueError("owner is required")
    if not isinstance(model_name, str) or not model_name.strip():
        raise ValueError("model_name is required")
    return Job.objects.create(
        id=job_id or uuid.uuid4(),
        owner=owner,
        model_name=model_name.strip(),
        language=_check_language(language),
        mode=_check_mode(mode),
        idempotency_key=idempotency_key,
        audio_duration_ms=audio_duration_ms,
    )


def get_job_by_id(job_id: uuid.UUID | str) -> Job | None:
    """Return the job with this id, or None (also for a malformed id)."""
    pk = _parse_uuid(job_id)
    if pk is None:
        return None
    return Job.objects.filter(pk=pk).first()


def get_job_for_owner(user: User, job_id: uuid.UUID | str) -> Job | None:
    """Return the user's job with its artifacts, or None if absent or someone else's."""
    pk = _parse_uuid(job_id)
    if pk is None:
        return None
    return Job.objects.for_owner(user).with_artifacts().filter(pk=pk).first()


def _check_page(status: str | None, limit: int, offset: int) -> None:
    if status is not None and status not in JobStatus.values:
        raise ValueError(f"invalid status {status!r}; expected one of {', '.join(JobStatus.values)}")
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_LIST_LIMIT:
        raise ValueError(f"limit must be an integer from 1 to {MAX_LIST_LIMIT}")
    if isinstance(offset, bool) or not isinstance(offset, int) or offset < 0:
        raise ValueError("offset must be a non-negative integer")


def jobs_of_user(user: User, status: str | None = None):
    """Return the queryset of the user's jobs, newest first, optionally of one status."""
    jobs = Job.objects.for_owner(user).newest_first()
    if status is not None:
        jobs = jobs.filter(status=status)
    return jobs


@dataclass(frozen=True, slots=True, order=True)
class ArtifactSummary:
    """What a job listing shows of an artifact."""

    type: str
    size_bytes: int


class JobListItem(NamedTuple):
    """A job as a list page shows it: the columns `JobOut` reads, and its artifacts.

    A tuple, not a model instance: building 50 `Job` instances cost more than
    the statement that read them (see BENCHMARKS.md).
    """

    id: uuid.UUID
    status: str
    progress: int
    model_name: str
    mode: str
    language: str | None
    audio_duration_ms: int | None
    processing_time_ms: int | None
    error_message: str | None
    created_at: datetime
    updated_at: datetime
    artifact_summaries: list[ArtifactSummary]


LIST_ITEM_COLUMNS = JobListItem._fields[:-1]


@dataclass(frozen=True, slots=True)
class JobPage:
    """One page of a user's jobs, and how many jobs match the filter in all."""

    jobs: list[JobListItem]
    total: int


def _older_than(user: User, jobs, before: uuid.UUID | str):
    anchor = Job.objects.for_owner(user).filter(pk=_parse_uuid(before)).values("created_at", "id").first()
    if anchor is None:
        raise ValueError("before must be the id of one of your jobs")
    # "Older than the anchor" as an index range (created_at <= t) minus the few
    # rows that tie with it; an OR of the two cases would be a filter, not a range.
    return jobs.filter(created_at__lte=anchor["created_at"]).exclude(
        created_at=anchor["created_at"], id__gte=anchor["id"]
    )


def _summaries(artifact_list: str | None) -> list[ArtifactSummary]:
    # "type:size,type:size" from `with_artifact_list`, in type order.
    pairs = (item.rpartition(":") for item in artifact_list.split(",")) if artifact_list else ()
    return sorted(ArtifactSummary(type_, int(size)) for type_, _, size in pairs)


def _page_queryset(user: User, status: str | None, limit: int, offset: int, before, *, with_total: bool):
    """Return (the page's jobs with their artifact lists, every job of the filter)."""
    _check_page(status, limit, offset)
    if before is not None and offset:
        raise ValueError("use either before or offset, not both")
    matching = jobs_of_user(user, status)
    jobs = matching if before is None else _older_than(user, matching, before)
    if offset >= DEEP_OFFSET:
        # Deep pages: skip the offset over the index alone, then read only the rows kept.
        ids = list(jobs.values_list("id", flat=True)[offset : offset + limit])
        jobs, offset = Job.objects.filter(pk__in=ids).newest_first(), 0
    jobs = jobs.with_artifact_list()
    if with_total:
        jobs = jobs.with_owner_total(user, status)
    return jobs[offset : offset + limit], matching


def page_of_jobs_by_user(
    user: User,
    status: str | None = None,
    limit: int = 50,
    offset: int = 0,
    *,
    before: uuid.UUID | str | None = None,
) -> JobPage:
    """Return one page of the user's jobs, newest first, with their artifacts and the total.

    The page, each job's artifacts and the total are read in one statement, so
    the total agrees with the page. `before` (a job id of the user's) pages by
    key instead of by offset: the jobs strictly older than that one, at the
    same cost however deep; the total still counts every job of the filter.
    """
    page, matching = _page_queryset(user, status, limit, offset, before, with_total=True)
    rows = list(page.values_list(*LIST_ITEM_COLUMNS, "artifact_list", "owner_total"))
    items = [JobListItem(*row[:-2], _summaries(row[-2])) for row in rows]
    if rows:
        return JobPage(items, rows[0][-1])
    # Past the end there is no row to carry the total.
    return JobPage(items, 0 if offset == 0 and before is None else matching.count())


def list_jobs_by_user(
    user: User,
    status: str | None = None,
    limit: int = 50,
    offset: int = 0,
    *,
    before: uuid.UUID | str | None = None,
) -> list[Job]:
    """Return one page of the user's jobs, newest first, each with `artifact_summaries`."""
    page, _ = _page_queryset(user, status, limit, offset, before, with_total=False)
    jobs = list(page)
    for job in jobs:
        job.artifact_summaries = _summaries(job.artifact_list)
    return jobs


def count_jobs_by_user(user: User, status: str | None = None) -> int:
    """Return how many jobs the user has (of this status, if given)."""
    _check_page(status, 1, 0)
    return jobs_of_user(user, status).count()


def set_job_status(job: Job, status: str, error_message: str | None = None) -> Job:
    """Move the job to a new status if the transition is allowed; raise ValueError if not."""
    with transaction.atomic():
        locked = Job.objects.select_for_update().filter(pk=job.pk).first()
        if locked is None:
            raise ValueError(f"job {job.pk} no longer exists")
        _check_transition(locked.status, status)
        locked.status = status
        fields = ["status", "updated_at"]
        if status == JobStatus.FAILED:
            locked.error_message = (error_message or "transcription failed")[:ERROR_MESSAGE_MAX]
            fields.append("error_message")
        elif status == JobStatus.QUEUED:
            locked.error_message = None
            locked.progress = 0
            locked.enqueued_at = None
            fields += ["error_message", "progress", "enqueued_at"]
        elif status == JobStatus.DONE:
            locked.progress = 100
            fields.append("progress")
        locked.save(update_fields=fields)
    for field in ("status", "error_message", "progress", "updated_at", "enqueued_at"):
        setattr(job, field, getattr(locked, field))
    return job


# --- Artifacts ----------------------------------------------------------------


def add_artifact(job: Job, type: str, path: str, size_bytes: int) -> FileArtifact:
    """Record a stored file as the job's artifact of this type; raise ValueError on bad input."""
    if type not in ArtifactType.values:
        raise ValueError(f"invalid artifact type {type!r}; expected one of {', '.join(ArtifactType.values)}")
    # The same rule as the database's check: no leading slash and no ".." anywhere.
    if not isinstance(path, str) or not path or path.startswith("/") or ".." in path:
        raise ValueError("path must be a storage name relative to the storage root")
    if isinstance(size_bytes, bool) or not isinstance(size_bytes, int) or size_bytes < 0:
        raise ValueError("size_bytes must be a non-negative integer")
    try:
        with transaction.atomic():
            return FileArtifact.objects.create(job=job, type=type, path=path, size_bytes=size_bytes)
    except IntegrityError:
        raise ValueError(f"job {job.pk} already has a {type} artifact") from None


def list_artifacts_by_job(job: Job) -> list[FileArtifact]:
    """Return the job's artifacts ordered by type."""
    return list(FileArtifact.objects.filter(job=job).order_by("type"))


def get_artifact_by_type(job: Job, type: str) -> FileArtifact | None:
    """Return the job's artifact of this type, or None."""
    if type not in ArtifactType.values:
        return None
    return FileArtifact.objects.filter(job=job, type=type).first()


def delete_stored_files(paths: Iterable[str]) -> None:
    """Delete these files from storage, logging (not raising) what could not be deleted."""
    folders = set()
    for path in paths:
        try:
            default_storage.delete(path)
        except OSError:
            logger.warning("could not delete stored file %s", path)
        folders.add(path.rsplit("/", 1)[0] if "/" in path else "")
    for folder in folders - {""}:
        _remove_empty_folder(folder)


def _remove_empty_folder(folder: str) -> None:
    # Only local storage has folders to tidy; object stores have none.
    try:
        local = Path(default_storage.path(folder))
    except NotImplementedError:
        return
    try:
        local.rmdir()
    except OSError:
        pass  # not empty, or already gone


def job_folder(job_id: uuid.UUID | str) -> str:
    """Return the storage folder that holds every file of a job."""
    return f"jobs/{job_id}"


def stored_files_of_job(job_id: uuid.UUID | str) -> list[str]:
    """Return the storage names of every file in the job's folder, referenced or not."""
    folder = job_folder(job_id)
    try:
        _dirs, files = default_storage.listdir(folder)
    except (FileNotFoundError, NotADirectoryError):
        return []
    return [f"{folder}/{name}" for name in files]


def delete_unreferenced_files(job_id: uuid.UUID | str) -> None:
    """Delete files in the job's folder that no artifact row names (left by an attempt that died)."""
    referenced = set(FileArtifact.objects.filter(job_id=job_id).values_list("path", flat=True))
    delete_stored_files([name for name in stored_files_of_job(job_id) if name not in referenced])


def delete_job(job: Job) -> None:
    """Delete the job, its artifact rows and their files; a processing job is a Conflict."""
    with transaction.atomic():
        locked = Job.objects.select_for_update().filter(pk=job.pk).first()
        if locked is None:
            return
        if locked.status == JobStatus.PROCESSING:
            raise Conflict("the job is being processed; delete it once it is done or failed")
        paths = set(locked.artifacts.values_list("path", flat=True)) | set(stored_files_of_job(locked.pk))
        locked.delete()
        transaction.on_commit(lambda: delete_stored_files(paths))


def delete_jobs(jobs: Iterable[Job]) -> int:
    """Delete several jobs and their files regardless of status; return how many."""
    ids = [job.pk for job in jobs]
    with transaction.atomic():
        paths = set(FileArtifact.objects.filter(job_id__in=ids).values_list("path", flat=True))
        for pk in ids:
            paths.update(stored_files_of_job(pk))
        _, per_model = Job.objects.filter(pk__in=ids).delete()
        transaction.on_commit(lambda: delete_stored_files(paths))
    return per_model.get(Job._meta.label, 0)


def delete_files_of_owner(owner: User) -> None:
    """Delete every stored file of the owner's jobs once the current transaction commits.

    For an owner being deleted: the database cascades from the user to the job
    and artifact rows, but storage has no cascade of its own.
    """
    job_ids = list(Job.objects.filter(owner=owner).values_list("pk", flat=True))
    if job_ids:
        transaction.on_commit(lambda: delete_stored_files(p for pk in job_ids for p in stored_files_of_job(pk)))


def requeue_failed_jobs(job_ids: Iterable[uuid.UUID | str]) -> int:
    """Send failed jobs back to the queue for another try; return how many."""
    count = 0
    ids = [pk for pk in map(_parse_uuid, job_ids) if pk is not None]
    for job in Job.objects.filter(pk__in=ids, status=JobStatus.FAILED):
        with transaction.atomic():
            set_job_status(job, JobStatus.QUEUED)
            Job.objects.filter(pk=job.pk).update(attempts=0)
            _enqueue_on_commit(job.pk)
        count += 1
    return count


# --- Submission: the rules an upload must pass ----------------------------------


@dataclass(frozen=True)
class Submission:
    job: Job
    created: bool


def installed_model_names() -> list[str]:
    """Return the names of the installed models, sorted."""
    return sorted(engine.installed_models(settings.WHISPER_MODELS_DIR))


def check_model_request(model_name: str, language: str | None, mode: str) -> None:
    """Raise ValueError if the model is not installed or cannot serve this language or mode."""
    installed = installed_model_names()
    if model_name not in installed:
        raise ValueError(f"model {model_name!r} is not installed; installed models: {', '.join(installed)}")
    if engine.is_english_only(model_name):
        if mode == JobMode.TRANSLATE:
            raise ValueError(f"model {model_name} is English-only and cannot translate")
        if language not in (None, "en"):
            raise ValueError(f"model {model_name} is English-only; language must be 'en' or omitted")


def _month_start(now: datetime) -> datetime:
    return now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)


def monthly_usage_ms(user: User, now: datetime | None = None) -> int:
    """Return the audio milliseconds of the user's jobs this UTC month, failed ones excluded."""
    start = _month_start(now or timezone.now())
    total = (
        Job.objects.for_owner(user)
        .filter(created_at__gte=start)
        .exclude(status=JobStatus.FAILED)
        .aggregate(total=Sum("audio_duration_ms"))["total"]
    )
    return int(total or 0)


def check_license_allows(user: User, model_name: str, mode: str, duration_s: float) -> None:
    """Raise Forbidden, ValueError or LimitExceeded if the user's license does not allow this job."""
    license_ = active_license_for(user)
    if license_ is None:
        raise Forbidden("you have no active license; ask an operator for one")
    features = license_.features or {}
    if "models" in features and model_name not in features["models"]:
        raise Forbidden(f"your license does not allow model {model_name!r}")
    if mode == JobMode.TRANSLATE and features.get("translate") is False:
        raise Forbidden("your license does not allow translation")
    limit_s = features.get("max_audio_seconds")
    if limit_s is not None and duration_s > limit_s:
        raise ValueError(f"audio is {duration_s:.0f} s long; your license allows at most {limit_s} s per file")
    max_jobs = features.get("max_concurrent_jobs")
    if max_jobs is not None and Job.objects.for_owner(user).active().count() >= max_jobs:
        raise LimitExceeded(f"max_concurrent_jobs: you already have {max_jobs} queued or processing job(s)")
    monthly_min = features.get("monthly_audio_minutes")
    if monthly_min is not None:
        used_ms = monthly_usage_ms(user)
        if used_ms + duration_s * 1000 > monthly_min * 60_000:
            raise LimitExceeded(
                f"monthly_audio_minutes: {used_ms / 60_000:.1f} of {monthly_min} minutes used this month; "
                "this file would exceed the limit"
            )


def _find_idempotent(user: User, key: str) -> Job | None:
    cutoff = timezone.now() - IDEMPOTENCY_WINDOW
    return Job.objects.for_owner(user).filter(idempotency_key=key, created_at__gte=cutoff).first()


def submit_job(
    owner: User,
    audio: BinaryIO,
    *,
    model_name: str | None = None,
    language: str | None = None,
    mode: str = JobMode.TRANSCRIBE,
    idempotency_key: str | None = None,
) -> Submission:
    """Validate an upload against the model and the license, store it, and queue a job.

    A repeated idempotency key within 24 hours returns the first job instead.
    Nothing is left behind (no row, no file) when any check fails.
    """
    model_name = model_name or settings.DEFAULT_MODEL_NAME
    language = _check_language(language)
    mode = _check_mode(mode)
    if idempotency_key is not None:
        if not idempotency_key or len(idempotency_key) > MAX_IDEMPOTENCY_KEY_LENGTH:
            raise ValueError(f"Idempotency-Key must be 1 to {MAX_IDEMPOTENCY_KEY_LENGTH} characters")
        existing = _find_idempotent(owner, idempotency_key)
        if existing is not None:
            return Submission(existing, created=False)
    check_model_request(model_name, language, mode)
    try:
        info = engine.inspect_audio(audio)
    except engine.EngineError as exc:
        raise ValueError(f"audio: {exc}") from None
    job_id = uuid.uuid4()
    stored: list[str] = []
    try:
        with transaction.atomic():
            # Serialise one user's submissions: limits and idempotency keys are
            # checked and claimed under this lock, so parallel requests cannot both pass.
            User.objects.select_for_update().filter(pk=owner.pk).first()
            if idempotency_key is not None:
                existing = _find_idempotent(owner, idempotency_key)
                if existing is not None:
                    return Submission(existing, created=False)
                Job.objects.for_owner(owner).filter(idempotency_key=idempotency_key).update(
                    idempotency_key=None
                )
            check_license_allows(owner, model_name, mode, info.duration)
            job = create_job(
                owner,
                model_name,
                language,
                mode,
                job_id=job_id,
                idempotency_key=idempotency_key,
                audio_duration_ms=int(round(info.duration * 1000)),
            )
            audio.seek(0)
            name = default_storage.save(f"jobs/{job_id}/audio.{info.extension}", File(audio))
            stored.append(name)
            add_artifact(job, ArtifactType.AUDIO, name, default_storage.size(name))
            _enqueue_on_commit(job.pk)
    except BaseException:
        delete_stored_files(stored)
        raise
    return Submission(job, created=True)


# --- Worker side: claim, progress, finish, recovery ------------------------------


def _enqueue_on_commit(job_id: uuid.UUID) -> None:
    from .dispatch import enqueue_job

    transaction.on_commit(lambda: enqueue_job(job_id))


def mark_enqueued(job_id: uuid.UUID | str) -> None:
    """Record that a queue message for the job was published."""
    Job.objects.filter(pk=job_id, status=JobStatus.QUEUED).update(enqueued_at=timezone.now())


def claim_job(job_id: uuid.UUID | str) -> int | None:
    """Atomically move a queued job to processing; return its attempt number, or None if not claimable.

    The attempt number fences later writes: a worker presumed dead whose job
    was handed to another worker can no longer change it.
    """
    pk = _parse_uuid(job_id)
    if pk is None:
        return None
    _check_transition(JobStatus.QUEUED, JobStatus.PROCESSING)
    with transaction.atomic():
        # One conditional UPDATE decides the race: a row locked by another
        # writer is waited for, then re-checked, never skipped.
        claimed = Job.objects.filter(pk=pk, status=JobStatus.QUEUED).update(
            status=JobStatus.PROCESSING, attempts=F("attempts") + 1, progress=0, updated_at=timezone.now()
        )
        if not claimed:
            return None
        return Job.objects.filter(pk=pk).values_list("attempts", flat=True).get()


def touch_job(job_id: uuid.UUID | str, attempt: int) -> bool:
    """Record a heartbeat for a running attempt; return False if the attempt lost the job."""
    return bool(_owned_attempt(job_id, attempt).update(updated_at=timezone.now()))


def _owned_attempt(job_id: uuid.UUID | str, attempt: int):
    return Job.objects.filter(pk=job_id, status=JobStatus.PROCESSING, attempts=attempt)


def is_attempt_current(job_id: uuid.UUID | str, attempt: int) -> bool:
    """Return whether this attempt still owns the job."""
    return _owned_attempt(job_id, attempt).exists()


def record_progress(job_id: uuid.UUID | str, attempt: int, percent: int) -> bool:
    """Store the job's progress (0-100) if this attempt still owns it; return whether it did."""
    percent = max(0, min(100, int(percent)))
    return bool(_owned_attempt(job_id, attempt).update(progress=percent, updated_at=timezone.now()))


@dataclass(frozen=True)
class StoredOutput:
    type: str
    path: str
    size_bytes: int


def complete_job(
    job_id: uuid.UUID | str,
    attempt: int,
    outputs: list[StoredOutput],
    *,
    audio_duration_ms: int,
    processing_time_ms: int,
) -> bool:
    """Record the results and mark the job done, in one transaction; False if the attempt lost the job."""
    _check_transition(JobStatus.PROCESSING, JobStatus.DONE)
    by_type = {o.type: o for o in outputs}
    with transaction.atomic():
        job = _owned_attempt(job_id, attempt).select_for_update().first()
        if job is None:
            return False
        FileArtifact.objects.filter(job=job).exclude(type=ArtifactType.AUDIO).delete()
        FileArtifact.objects.bulk_create(
            [FileArtifact(job=job, type=o.type, path=o.path, size_bytes=o.size_bytes) for o in outputs]
        )
        job.status = JobStatus.DONE
        job.progress = 100
        job.error_message = None
        job.audio_duration_ms = audio_duration_ms
        job.processing_time_ms = processing_time_ms
        job.result_json_path = by_type[ArtifactType.RESULT_JSON].path if ArtifactType.RESULT_JSON in by_type else None
        job.transcript_txt_path = (
            by_type[ArtifactType.TRANSCRIPT_TXT].path if ArtifactType.TRANSCRIPT_TXT in by_type else None
        )
        job.save()
    return True


def fail_job(job_id: uuid.UUID | str, attempt: int, message: str) -> bool:
    """Mark the job failed with a short message if this attempt owns it; return whether it did."""
    _check_transition(JobStatus.PROCESSING, JobStatus.FAILED)
    return bool(
        _owned_attempt(job_id, attempt).update(
            status=JobStatus.FAILED, error_message=message[:ERROR_MESSAGE_MAX], updated_at=timezone.now()
        )
    )


@dataclass
class SweepResult:
    requeued: list[uuid.UUID]
    failed: list[uuid.UUID]
    reenqueued: list[uuid.UUID]


def requeue_stale_jobs(now: datetime | None = None) -> SweepResult:
    """Recover jobs a dead worker or a lost message left behind.

    - processing with no heartbeat for JOB_STALE_AFTER_SECONDS: back to the
      queue, or failed once JOB_MAX_ATTEMPTS attempts were spent;
    - queued with no message published (the broker was down) or none taken
      for JOB_QUEUED_STALE_AFTER_SECONDS: published again. The claim is
      atomic, so a duplicate message does no harm.
    """
    now = now or timezone.now()
    result = SweepResult([], [], [])
    stale = Q(status=JobStatus.PROCESSING, updated_at__lt=now - timedelta(seconds=settings.JOB_STALE_AFTER_SECONDS))
    for pk in list(Job.objects.filter(stale).values_list("pk", flat=True)):
        with transaction.atomic():
            # Stale again under the lock: another sweep (beat, a second web
            # process) may have requeued it since, and a worker claimed it.
            job = Job.objects.select_for_update(skip_locked=True).filter(stale, pk=pk).first()
            if job is None:
                continue
            if job.attempts >= settings.JOB_MAX_ATTEMPTS:
                set_job_status(
                    job,
                    JobStatus.FAILED,
                    f"the worker stopped responding {job.attempts} times; giving up",
                )
                result.failed.append(pk)
                continue
            set_job_status(job, JobStatus.FAILED, "the worker stopped responding; retrying")
            set_job_status(job, JobStatus.QUEUED)
            _enqueue_on_commit(pk)
            result.requeued.append(pk)
    grace = now - timedelta(seconds=settings.JOB_PUBLISH_GRACE_SECONDS)
    lost = Job.objects.filter(status=JobStatus.QUEUED).filter(
        Q(enqueued_at__isnull=True, created_at__lt=grace, updated_at__lt=grace)
        | Q(enqueued_at__lt=now - timedelta(seconds=settings.JOB_QUEUED_STALE_AFTER_SECONDS))
    )
    from .dispatch import enqueue_job

    for pk in list(lost.values_list("pk", flat=True)):
        if enqueue_job(pk):
            result.reenqueued.append(pk)
    return result
