"""Runs that resume across Lambda invocations: when to stop pushing, and what an incomplete run leaves.

A run stops starting pushes at `push_time_limit` (the push in flight still has the rest of the time).
If refs remain, the mirror goes back to `scheduled` with progress fields and a `continuation` job is
queued at once; the next run resumes from the target's state. A run that moved nothing fails instead
of looping. A continuation job that a later run has superseded is dropped, so one chain runs at a time.
"""

from __future__ import annotations

import dataclasses

from gitmirror.mirror.limits import default_max_push_bytes
from gitmirror.mirror.urls import parse_remote
from gitmirror.records import Mirror, SyncJob
from gitmirror.values import RunStatus, SyncResult, Trigger, UpdateStatus, iso, utcnow

# The share of a run's time in which new pushes may start; the rest is kept for the push (and its
# fetch) in flight when the limit passes: 15 minutes leave about 3.5 minutes, enough for 2 GiB.
PUSH_START_SHARE = 0.75
# below this the engine's own deadline guard (DEADLINE_MARGIN_SECONDS) stops a run anyway
ENGINE_DEADLINE_MARGIN = 20.0
NO_PROGRESS = (
    "no progress: the run ended with refs remaining and nothing pushed; "
    "not continuing (check the target's push limit and max_push_bytes)"
)


def push_time_limit(seconds_left: float) -> float:
    """Seconds after which the run starts no new push."""
    return max(0.001, (seconds_left - ENGINE_DEADLINE_MARGIN) * PUSH_START_SHARE)


def max_push_bytes(mirror: Mirror) -> int | None:
    """The mirror's own limit, else the target host's known one (github.com), else none."""
    if mirror.max_push_bytes is not None:
        return mirror.max_push_bytes
    return default_max_push_bytes(parse_remote(mirror.url).host)


def superseded(mirror: Mirror, job: SyncJob) -> str | None:
    """Why a continuation job must not run: another run of the mirror came after the one it continues."""
    if job.trigger != Trigger.CONTINUATION or job.continues is None:
        return None
    if mirror.last_run_id != job.continues:
        return "a later run superseded this continuation"
    return None


def without_progress(result: SyncResult) -> SyncResult:
    """An incomplete run that moved nothing is a failure (a chain must never loop in place)."""
    if result.status != RunStatus.INCOMPLETE or result.stats.bytes_pushed > 0 or result.refs:
        return result
    return dataclasses.replace(result, status=RunStatus.FAILED, error=NO_PROGRESS, error_kind="no_progress")


def next_job(mirror_id: str, run_id: str) -> SyncJob:
    """The job that continues run `run_id` of the mirror."""
    return SyncJob(
        mirror_id=mirror_id, trigger=Trigger.CONTINUATION, enqueued_at=iso(utcnow()), continues=run_id
    )


def progress_fields(mirror: Mirror, job: SyncJob, result: SyncResult) -> dict[str, object]:
    """The chain's progress on the mirror: refs still to do, bytes pushed and runs so far."""
    chained = job.trigger == Trigger.CONTINUATION
    fields: dict[str, object] = {
        "remaining_refs": len(result.remaining_refs),
        "bytes_pushed": (mirror.bytes_pushed if chained else 0) + result.stats.bytes_pushed,
        "runs_so_far": (mirror.runs_so_far if chained else 0) + 1,
    }
    if result.status == RunStatus.INCOMPLETE:
        now = iso(utcnow())
        # scheduled again: the scheduler and "Update now" see a pending run and start no second chain
        fields.update(update_status=UpdateStatus.SCHEDULED.value, last_scheduled_at=now)
    return fields
