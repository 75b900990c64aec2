"""Sync jobs: what is queued for a mirror, its deduplication id, and the retry backoff."""

from __future__ import annotations

import hashlib

from .ports import JobQueue
from .records import SyncJob
from .values import Trigger, iso, utcnow

# SQS caps a message's visibility timeout at 12 hours; a retry waits at most 15 minutes.
MAX_RETRY_DELAY_SECONDS = 900


def make_job(mirror_id: str, trigger: Trigger, delivery_id: str | None, *, dry_run: bool = False) -> SyncJob:
    return SyncJob(
        mirror_id=mirror_id,
        trigger=trigger,
        delivery_id=delivery_id,
        enqueued_at=iso(utcnow()),
        dry_run=dry_run,
    )


def queue_sync(
    queue: JobQueue,
    mirror_id: str,
    trigger: Trigger,
    delivery_id: str | None = None,
    *,
    dry_run: bool = False,
) -> str:
    """Queue one sync (or dry run) of a mirror; returns the queue's message id."""
    return queue.enqueue(make_job(mirror_id, trigger, delivery_id, dry_run=dry_run))


def deduplication_id(job: SyncJob) -> str:
    """Same delivery + same mirror = same id, so the FIFO queue drops redeliveries within its window.
    A job without a delivery (schedule, "Update now") is unique by trigger and time."""
    source = job.delivery_id or f"{job.trigger.value}:{job.enqueued_at}"
    if job.dry_run:
        source = f"dry-run:{source}"
    return hashlib.sha256(f"{source}\n{job.mirror_id}".encode()).hexdigest()[:128]


def retry_delay(base_seconds: int, attempt: int) -> int:
    """Exponential backoff: base, 2 x base, 4 x base, ... for attempts 1, 2, 3, ..., capped."""
    return int(min(base_seconds * 2 ** max(0, attempt - 1), MAX_RETRY_DELAY_SECONDS))
