"""The job queue on SQS FIFO: one message group per mirror, explicit deduplication ids."""

from __future__ import annotations

from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from gitmirror.errors import TransientError
from gitmirror.jobs import MAX_RETRY_DELAY_SECONDS, deduplication_id
from gitmirror.records import SyncJob

from . import clients


class SqsJobQueue:
    """JobQueue on one SQS FIFO queue."""

    def __init__(self, queue_url: str, client: Any = None) -> None:
        self.queue_url = queue_url
        self._client = client

    @property
    def client(self) -> Any:
        return self._client or clients.client("sqs")

    def enqueue(self, job: SyncJob) -> str:
        try:
            out = self.client.send_message(
                QueueUrl=self.queue_url,
                MessageBody=job.model_dump_json(),
                MessageGroupId=job.mirror_id,
                MessageDeduplicationId=deduplication_id(job),
            )
        except (ClientError, BotoCoreError) as exc:
            raise TransientError(f"could not enqueue the sync job: {type(exc).__name__}") from None
        return str(out["MessageId"])

    def delay_retry(self, receipt_handle: str, seconds: int) -> None:
        """The job becomes visible again after `seconds` (the backoff of a job that will be retried)."""
        try:
            self.client.change_message_visibility(
                QueueUrl=self.queue_url,
                ReceiptHandle=receipt_handle,
                VisibilityTimeout=max(0, min(seconds, MAX_RETRY_DELAY_SECONDS)),
            )
        except (ClientError, BotoCoreError):
            pass  # the queue's own visibility timeout applies instead
