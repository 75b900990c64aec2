"""Sync jobs on the SQS FIFO queue: one message group per mirror, explicit deduplication ids."""

from __future__ import annotations

import hashlib
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from gitmirror.adapters.aws import clients as aws
from gitmirror.errors import TransientError
from gitmirror.records import SyncJob
from gitmirror.values import Trigger, iso, utcnow


def _sqs() -> Any:
    return aws.client("sqs")


def deduplication_id(mirror_id: str, delivery_id: str) -> str:
    """Same delivery + same mirror = same id, so SQS drops redeliveries within its 5-minute window."""
    return hashlib.sha256(f"{delivery_id}\n{mirror_id}".encode()).hexdigest()[:128]


def make_job(mirror_id: str, trigger: Trigger, delivery_id: str | None) -> SyncJob:
    return SyncJob(mirror_id=mirror_id, trigger=trigger, delivery_id=delivery_id, enqueued_at=iso(utcnow()))


def enqueue(queue_url: str, job: SyncJob, *, client: Any = None) -> str:
    """Send one job; returns the SQS message id."""
    dedup_source = job.delivery_id or f"{job.trigger.value}:{job.enqueued_at}"
    try:
        out = (client or _sqs()).send_message(
            QueueUrl=queue_url,
            MessageBody=job.model_dump_json(),
            MessageGroupId=job.mirror_id,
            MessageDeduplicationId=deduplication_id(job.mirror_id, dedup_source),
        )
    except (ClientError, BotoCoreError) as exc:
        raise TransientError(f"could not enqueue the sync job: {type(exc).__name__}") from None
    return str(out["MessageId"])


def delay_retry(queue_url: str, receipt_handle: str, seconds: int, *, client: Any = None) -> None:
    """Backoff for a job that will be retried: it becomes visible again after `seconds` (max 15 min)."""
    try:
        (client or _sqs()).change_message_visibility(
            QueueUrl=queue_url, ReceiptHandle=receipt_handle, VisibilityTimeout=max(0, min(seconds, 900))
        )
    except (ClientError, BotoCoreError):
        pass  # the queue's own visibility timeout applies instead
