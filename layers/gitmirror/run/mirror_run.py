"""A queued job becomes a mirror run: load, coalesce, lease, credentials, engine, status, history."""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from gitmirror.errors import MirrorError, TransientError, UsageError
from gitmirror.jobs import retry_delay
from gitmirror.mirror.credentials import (
    Anonymous,
    CodeCommitIAM,
    CredentialProvider,
    SecretCredentials,
    is_codecommit,
)
from gitmirror.mirror.engine import failed_result, sync_mirror
from gitmirror.mirror.rejections import with_hints
from gitmirror.mirror.transport import Remote
from gitmirror.mirror.urls import parse_remote
from gitmirror.ports import JobQueue, MirrorRepository, SecretSource
from gitmirror.records import Mirror, RunRecord, SyncJob, check_secret_prefix
from gitmirror.run import continuation
from gitmirror.run.records_size import divergent_fields, ref_counts, run_fields
from gitmirror.run.transitions import Transition, transition
from gitmirror.scrub import scrub
from gitmirror.settings import WorkerSettings
from gitmirror.values import (
    MAX_LEASE_SECONDS,
    Action,
    AuthMethod,
    RunStatus,
    SyncResult,
    Trigger,
    UpdateStatus,
    iso,
    new_run_id,
    parse_iso,
    utcnow,
)

DIVERGED = "Some refs have diverged and have not been updated on the remote:"
REJECTED = "Some refs were rejected by the remote:"
LFS_FAILED = "Error synchronizing LFS files:"  # GitLab's words
MAX_ERROR_CHARS = 4000
# Give up on a run this long before the Lambda's own deadline, to record the result and release the lease.
SAFETY_SECONDS = 30.0
# Waits between attempts of a status write while DynamoDB is unreachable (about 12 s in all, within
# the safety margin above).
WRITE_BACKOFF_SECONDS = (0.5, 1.0, 2.0, 4.0, 4.0)
logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class JobOutcome:
    """What happened to one job. `retry` asks the queue to deliver the job again later."""

    action: str  # "ran", "dropped", "busy"
    reason: str = ""
    result: SyncResult | None = None
    retry: bool = False
    retry_after_seconds: int = 0
    # the event to publish when the run changed the mirror's health (healthy <-> failed/partial)
    transition: Transition | None = None
    # MirrorLagSeconds: from the webhook's arrival (the job's enqueue) to the target updated
    lag_seconds: float | None = None
    run_id: str | None = None
    update_status: UpdateStatus | None = None  # as written to the mirror (or meant to be)
    mirror_deleted: bool = False  # the mirror was deleted while it ran: no status was written

    def log_fields(self) -> dict[str, object]:
        """The last log line of a job: what happened and, for a run, its result in numbers."""
        fields: dict[str, object] = {"action": self.action, "reason": self.reason}
        result = self.result
        if result is not None:
            fields.update(
                status=self.update_status.value if self.update_status else None,
                result=result.status.value,
                error=result.error,
                duration_ms=int(result.stats.duration_seconds * 1000),
                transfer=result.stats.transfer,
                bytes_received=result.stats.bytes_received,
                bytes_sent=result.stats.bytes_sent,
                pushes=result.stats.pushes,
                **ref_counts(result),
                **lfs_fields(result),
            )
        if self.mirror_deleted:
            fields["mirror_deleted"] = True
        return fields


def job_log_keys(job: SyncJob, attempt: int) -> dict[str, object]:
    """Keys for every log line about a job. Present even when empty (a manual or scheduled job has no
    delivery; no run id until the lease is held), so a query by any of them never misses a line."""
    return {
        "mirror_id": job.mirror_id,
        "delivery_id": job.delivery_id or "",
        "run_id": "",
        "trigger": job.trigger.value,
        "attempt": attempt,
    }


class _RunClock:
    def __init__(self, remaining_ms: Callable[[], int] | None) -> None:
        self.remaining_ms = remaining_ms

    def seconds_left(self) -> float:
        if self.remaining_ms is None:
            return float(MAX_LEASE_SECONDS)
        return self.remaining_ms() / 1000.0 - SAFETY_SECONDS


class _Credentials:
    """Credential providers of one run, from the mirror's secret names."""

    def __init__(self, secrets: SecretSource, settings: WorkerSettings) -> None:
        self.secrets = secrets
        self.settings = settings

    def named(
        self, secret_name: str | None, *, write: bool = False, github_app: bool = False
    ) -> CredentialProvider:
        if not secret_name:
            return Anonymous()
        check_secret_prefix(secret_name, self.settings.secrets_prefix)
        return SecretCredentials(
            self.secrets,
            secret_name,
            write=write,
            github_app=github_app,
            github_api_url=self.settings.github_api_url,
            policy=self.settings.policy,
        )


def _target_provider(mirror: Mirror, creds: _Credentials) -> CredentialProvider:
    if mirror.auth_method == AuthMethod.IAM:
        return CodeCommitIAM()
    if mirror.auth_method == AuthMethod.NONE:
        return Anonymous()
    if not mirror.target_secret:
        raise UsageError("the mirror has no target_secret; set one or use auth_method iam for CodeCommit")
    return creds.named(
        mirror.target_secret, write=True, github_app=mirror.auth_method == AuthMethod.GITHUB_APP
    )


def covered_by_later_run(mirror: Mirror, job: SyncJob, now: dt.datetime) -> str | None:
    """A run that started after the job was enqueued already mirrors the state the job asks for:
    only a run that finished, or one still holding a live lease. A run whose lease ran out died
    (its worker was killed): the job is run again."""
    if not mirror.last_update_started_at:
        return None
    if parse_iso(mirror.last_update_started_at) <= parse_iso(job.enqueued_at):
        return None
    if mirror.update_status == UpdateStatus.FINISHED:
        return "a run that started after this job was enqueued already finished"
    if mirror.update_status == UpdateStatus.STARTED and mirror.lease_live(now):
        return "a run that started after this job was enqueued is in progress"
    return None  # the later run failed or died: this job still has work to do


def _persist[T](what: str, write: Callable[[], T]) -> T:
    """A status or history write, retried with backoff while DynamoDB is unreachable or throttling
    (the run's result is lost otherwise); the last TransientError propagates (the job is retried)."""
    for attempt, delay in enumerate((*WRITE_BACKOFF_SECONDS, None), start=1):
        try:
            return write()
        except TransientError as exc:
            if delay is None:
                raise
            logger.warning(
                "%s failed (attempt %d), retrying in %.1f s: %s", what, attempt, delay, exc.message
            )
            time.sleep(delay)
    raise AssertionError("unreachable")


def failure_message(result: SyncResult) -> str | None:
    """GitLab's `last_error`, ending with the hints of what went wrong (one line each)."""
    if result.error:
        return with_hints(result.error, [result.hint or ""], MAX_ERROR_CHARS)
    parts = []
    if result.lfs.error:
        parts.append(LFS_FAILED + "\n\n" + result.lfs.error)
    if result.divergent_refs:
        parts.append(DIVERGED + "\n\n" + "\n".join(result.divergent_refs))
    rejected = [r for r in result.refs if r.action == Action.REJECTED]
    if rejected:
        parts.append(REJECTED + "\n\n" + "\n".join(f"{r.ref}: {r.error}" for r in rejected))
    hints = [r.hint or "" for r in rejected]
    return with_hints(scrub("\n\n".join(parts)), hints, MAX_ERROR_CHARS) if parts else None


def status_fields(result: SyncResult, finished_at: str) -> dict[str, object]:
    ok = result.status == RunStatus.SUCCESS
    return {
        "update_status": (UpdateStatus.FINISHED if ok else UpdateStatus.FAILED).value,
        "result": result.status.value,
        "last_update_at": finished_at,
        **({"last_successful_update_at": finished_at} if ok else {}),
        "last_error": failure_message(result),
        **divergent_fields(result.divergent_refs),
        **ref_counts(result),
        **lfs_fields(result),
    }


def lfs_fields(result: SyncResult) -> dict[str, object]:
    """The LFS counts and error, as the status and the run record both carry them."""
    return {"lfs_objects": result.lfs.objects, "lfs_bytes": result.lfs.bytes, "lfs_error": result.lfs.error}


def run_job(
    job: SyncJob,
    store: MirrorRepository,
    secrets: SecretSource,
    settings: WorkerSettings,
    *,
    attempt: int = 1,
    remaining_ms: Callable[[], int] | None = None,
    workdir_parent: str | None = None,
    on_run_start: Callable[[str], None] | None = None,
    queue: JobQueue | None = None,
) -> JobOutcome:
    """`on_run_start(run_id)` is called once the run holds the mirror's lease, before it syncs."""
    now = utcnow()
    mirror = store.get(job.mirror_id)
    if mirror is None:
        return JobOutcome("dropped", "the mirror no longer exists")
    if not mirror.enabled:
        return JobOutcome("dropped", "the mirror is disabled")
    if job.dry_run:
        return _dry_run(
            job, mirror, store, secrets, settings, attempt, _RunClock(remaining_ms), workdir_parent
        )
    covered = covered_by_later_run(mirror, job, now) or continuation.superseded(mirror, job)
    if covered:
        return JobOutcome("dropped", covered)
    if mirror.run_died(now) and store.record_dead_run(mirror, now):
        logger.warning(
            "run %s of %s stopped without finishing: recorded failed", mirror.lease_owner, mirror.id
        )

    clock = _RunClock(remaining_ms)
    run_id = new_run_id(now)
    lease_seconds = min(clock.seconds_left() + SAFETY_SECONDS, MAX_LEASE_SECONDS)
    if not store.acquire_lease(mirror.id, run_id, lease_seconds, now):
        return JobOutcome(
            "busy",
            "another run of this mirror holds the lease",
            retry=True,
            retry_after_seconds=retry_delay(settings.retry_base_seconds, 2),
        )

    if on_run_start is not None:
        on_run_start(run_id)
    started_at = iso(now)
    try:
        result = _sync(mirror, _Credentials(secrets, settings), settings, clock, workdir_parent)
    except Exception as exc:  # noqa: BLE001 - any crash must still release the lease with a status
        result = failed_result(scrub(f"internal error: {type(exc).__name__}: {exc}"))
    result = continuation.without_progress(result)
    finished = utcnow()
    finished_at = iso(finished)
    fields = {**status_fields(result, finished_at), **continuation.progress_fields(mirror, job, result)}
    try:
        applied = _persist("status write", lambda: store.finish(mirror.id, run_id, fields))
    except TransientError as exc:
        # The lease stays until it expires; then the job's next delivery finds the run dead,
        # records it failed and runs again (a job is never dropped for a run that left no result).
        logger.error("status of %s not written, the job runs again: %s", mirror.id, exc.message)
        return JobOutcome(
            "ran",
            f"the run's status could not be written ({exc.message}); it runs again once its lease expired",
            result=result,
            retry=True,
            retry_after_seconds=int(lease_seconds) + 1,
        )
    record = _run_record(job, run_id, attempt, started_at, finished_at, result, settings)
    try:
        _persist("run record write", lambda: store.put_run(record, all_refs=result.refs))
    except MirrorError as exc:
        # the status is written: a history item that cannot be written must not run the job again
        logger.error("run record of %s not written: %s", mirror.id, exc.message)
    if result.status == RunStatus.INCOMPLETE and queue is not None and applied:
        queue.enqueue(continuation.next_job(mirror.id, run_id))
    retry = result.status == RunStatus.FAILED and result.retryable
    deleted = not applied and store.get(mirror.id) is None
    if deleted:
        reason, retry = "the mirror was deleted during the run; no status was written", False
    elif not applied:
        reason = "the lease expired before the run finished; its status was not written"
    else:
        reason = ""
    event = None
    if applied:
        event = transition(
            mirror_id=mirror.id,
            source_url=mirror.source_url,
            target_url=mirror.url,
            before=mirror.result,
            after=result.status,
            update_status=str(fields["update_status"]),
            last_error=failure_message(result),
            run_id=run_id,
            divergent_refs=result.divergent_refs,
        )
    return JobOutcome(
        "ran",
        reason,
        result=result,
        retry=retry,
        retry_after_seconds=retry_delay(settings.retry_base_seconds, attempt),
        transition=event,
        lag_seconds=mirror_lag_seconds(job, result, finished),
        run_id=run_id,
        update_status=UpdateStatus(str(fields["update_status"])),
        mirror_deleted=deleted,
    )


def mirror_lag_seconds(job: SyncJob, result: SyncResult, finished: dt.datetime) -> float | None:
    """From the webhook's arrival (its job's enqueue) to the target updated: webhook runs that pushed."""
    if job.trigger != Trigger.WEBHOOK or job.dry_run or result.status == RunStatus.FAILED:
        return None
    return max(0.0, (finished - parse_iso(job.enqueued_at)).total_seconds())


def _run_record(
    job: SyncJob,
    run_id: str,
    attempt: int,
    started_at: str,
    finished_at: str,
    result: SyncResult,
    settings: WorkerSettings,
) -> RunRecord:
    ok = result.status == RunStatus.SUCCESS
    return RunRecord(
        mirror_id=job.mirror_id,
        run_id=run_id,
        trigger=job.trigger,
        delivery_id=job.delivery_id,
        attempt=attempt,
        started_at=started_at,
        finished_at=finished_at,
        update_status=(
            UpdateStatus.SCHEDULED  # a continuation follows
            if result.status == RunStatus.INCOMPLETE
            else UpdateStatus.FINISHED
            if ok
            else UpdateStatus.FAILED
        ),
        result=result.status,
        error=failure_message(result),
        reason_code=result.reason_code,
        hint=result.hint,
        dry_run=result.dry_run,
        **run_fields(result),
        bytes_received=result.stats.bytes_received,
        bytes_sent=result.stats.bytes_sent,
        bytes_pushed=result.stats.bytes_pushed,
        remaining_refs=len(result.remaining_refs),
        duration_ms=int(result.stats.duration_seconds * 1000),
        transfer=result.stats.transfer,
        lfs_objects=result.lfs.objects,
        lfs_bytes=result.lfs.bytes,
        lfs_error=result.lfs.error,
        expires_at=int((utcnow() + dt.timedelta(days=settings.run_ttl_days)).timestamp()),
    )


def _dry_run(
    job: SyncJob,
    mirror: Mirror,
    store: MirrorRepository,
    secrets: SecretSource,
    settings: WorkerSettings,
    attempt: int,
    clock: _RunClock,
    workdir_parent: str | None,
) -> JobOutcome:
    """Plan only: no lease (nothing is pushed, so it may overlap a real run), no status fields, no
    notification; the run record (`dry_run: true`) holds the plan."""
    started = utcnow()
    run_id = new_run_id(started)
    try:
        result = _sync(mirror, _Credentials(secrets, settings), settings, clock, workdir_parent, dry_run=True)
    except Exception as exc:  # noqa: BLE001 - a crash still leaves a record a human can act on
        result = failed_result(scrub(f"internal error: {type(exc).__name__}: {exc}"))
    result.dry_run = True  # a configuration failure, found before the engine started, included
    store.put_run(_run_record(job, run_id, attempt, iso(started), iso(utcnow()), result, settings))
    return JobOutcome(
        "ran",
        "dry run",
        result=result,
        retry=result.status == RunStatus.FAILED and result.retryable,
        retry_after_seconds=retry_delay(settings.retry_base_seconds, attempt),
    )


def _sync(
    mirror: Mirror,
    creds: _Credentials,
    settings: WorkerSettings,
    clock: _RunClock,
    workdir_parent: str | None,
    *,
    dry_run: bool = False,
) -> SyncResult:
    try:
        source_creds = creds.named(mirror.source_secret)
        target_creds = _target_provider(mirror, creds)
        # a mirror's separate LFS credentials, when it names them (else the repositories')
        lfs_source = creds.named(mirror.lfs_source_secret) if mirror.lfs_source_secret else None
        lfs_target = creds.named(mirror.lfs_target_secret, write=True) if mirror.lfs_target_secret else None
        source = Remote(
            parse_remote(mirror.source_url), source_creds, policy=settings.policy, lfs_credentials=lfs_source
        )
        target = Remote(
            parse_remote(mirror.url), target_creds, policy=settings.policy, lfs_credentials=lfs_target
        )
    except UsageError as exc:
        return failed_result(exc.message, exc.kind)
    mode = lfs_catch_up_mode(mirror)
    max_bytes = continuation.max_push_bytes(mirror)

    def attempt() -> SyncResult:
        return sync_mirror(
            source,
            target,
            mirror.options,
            remaining_seconds=clock.seconds_left,
            workdir_parent=workdir_parent,
            dry_run=dry_run,
            mode=mode,
            max_push_bytes=max_bytes,
            time_limit=continuation.push_time_limit(clock.seconds_left()),
        )

    result = attempt()
    if result.error_kind == "auth":
        # A rotated secret: read the secrets again (bypassing the cache) and try once more.
        refreshed = False
        for creds in {source_creds, target_creds, source.lfs_credentials, target.lfs_credentials}:
            if isinstance(creds, SecretCredentials):
                creds.refresh()
                refreshed = True
        if refreshed:
            source.stats.bytes_received = source.stats.bytes_sent = 0
            result = attempt()
    return result


def lfs_catch_up_mode(mirror: Mirror) -> str:
    """After a run that left LFS objects behind (the target had no LFS server yet, the source lacked an
    object), fetch the whole history once: its pointers, not only the new commits', are then checked
    against the target. Not for CodeCommit, which never has LFS."""
    if mirror.lfs and mirror.lfs_error and not is_codecommit(parse_remote(mirror.url)):
        return "full"
    return "incremental"
