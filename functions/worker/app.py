"""Mirror worker Lambda: SQS FIFO job -> load mirror + credentials -> engine -> status.

Wiring only: parses each record, calls `gitmirror.run.mirror_run.run_job` with the AWS adapters, and
turns "retry later" into a batch item failure with a backoff (visibility timeout), as Powertools' FIFO
batch processor expects.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import ValidationError

from gitmirror import logs
from gitmirror.adapters.aws.clients import TRACED_MODULES
from gitmirror.adapters.aws.events import EventBridgeEvents
from gitmirror.adapters.aws.mirror_table import MirrorStore
from gitmirror.adapters.aws.queue import SqsJobQueue
from gitmirror.adapters.aws.secrets_manager import SecretsManagerSource
from gitmirror.errors import MirrorError
from gitmirror.jobs import retry_delay
from gitmirror.mirror import scratch
from gitmirror.records import SyncJob
from gitmirror.settings import WorkerSettings, load
from gitmirror.values import RunStatus

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.batch import SqsFifoPartialProcessor
    from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

    from gitmirror.run.mirror_run import JobOutcome

# What a cold start needs is imported here; the engine (dulwich) and Powertools' batch processor load
# with the first job, so a bad environment still fails the cold start but costs no more than that.
logger = Logger()
logs.install()  # after the Logger: its handler gets the scrub filter too
tracer = Tracer(patch_modules=TRACED_MODULES)
metrics = Metrics()
settings = load(WorkerSettings)


@functools.cache
def processor() -> SqsFifoPartialProcessor:
    from aws_lambda_powertools.utilities.batch import SqsFifoPartialProcessor

    fifo = SqsFifoPartialProcessor(skip_group_on_error=True)
    # Report failed records as batch item failures even when every record failed: a retry is expected
    # flow control here, not a function error (which would also trip the worker-errors alarm).
    fifo.raise_on_entire_batch_failure = False
    return fifo


class RetryLater(Exception):
    """Makes the record a batch item failure; SQS delivers it again (then the DLQ after 3 receives)."""


@functools.cache
def ports() -> tuple[MirrorStore, SecretsManagerSource, SqsJobQueue]:
    return (
        MirrorStore(settings.mirrors_table, settings.runs_table),
        SecretsManagerSource(),
        SqsJobQueue(settings.queue_url),
    )


@functools.cache
def state_events() -> EventBridgeEvents:
    return EventBridgeEvents()


def announce(outcome: JobOutcome) -> None:
    """Put the run's state change on the bus. A failure to announce never fails or repeats the run: the
    status is written already, and a retry would not see a change any more."""
    if outcome.transition is None:
        return
    try:
        event_id = state_events().put(outcome.transition)
    except MirrorError as exc:
        logger.warning("state change not announced", extra={"error": exc.message})
        metrics.add_metric(name="NotificationsFailed", unit=MetricUnit.Count, value=1)
        return
    logger.info(
        "state change announced", extra={"detail_type": outcome.transition.detail_type, "event_id": event_id}
    )
    metrics.add_metric(name="NotificationsSent", unit=MetricUnit.Count, value=1)


def record_handler(record: SQSRecord, lambda_context: LambdaContext | None = None) -> dict[str, Any]:
    from gitmirror.run.mirror_run import job_log_keys, run_job

    mirrors, secrets, queue = ports()
    # per thread: the local stack runs the receiver in another thread of the same process
    logger.thread_safe_clear_keys()  # the previous record's
    try:
        job = SyncJob.model_validate_json(record.body)
    except ValidationError:
        # A malformed message can never succeed: drop it (logged) instead of blocking its group.
        logger.error("dropping malformed job", extra={"message_id": record.message_id})
        metrics.add_metric(name="JobsMalformed", unit=MetricUnit.Count, value=1)
        return {"action": "dropped"}
    attempt = int(record.attributes.approximate_receive_count or 1)
    logger.thread_safe_append_keys(**job_log_keys(job, attempt))
    remaining = lambda_context.get_remaining_time_in_millis if lambda_context is not None else None
    try:
        outcome = run_job(
            job,
            mirrors,
            secrets,
            settings,
            attempt=attempt,
            remaining_ms=remaining,
            on_run_start=_run_started,
            queue=queue,
        )
    except MirrorError as exc:
        # DynamoDB throttling or unavailability before a run could start or record: back off, retry.
        logger.warning("job not run, will retry", extra={"error": exc.message})
        queue.delay_retry(record.receipt_handle, retry_delay(settings.retry_base_seconds, attempt))
        raise RetryLater(exc.message) from None
    except Exception:
        # never silent: the batch processor would only mark the record failed
        logger.exception("job failed unexpectedly, will retry")
        queue.delay_retry(record.receipt_handle, retry_delay(settings.retry_base_seconds, attempt))
        raise
    result = outcome.result
    if result is not None and not result.dry_run:
        announce(outcome)
    # the run's last line: what happened, in numbers
    logger.info("job handled", extra=outcome.log_fields())
    if result is not None and result.dry_run:
        metrics.add_metric(name="DryRuns", unit=MetricUnit.Count, value=1)
    elif result is not None:
        metrics.add_metric(name="MirrorRuns", unit=MetricUnit.Count, value=1)
        if result.status not in (RunStatus.SUCCESS, RunStatus.INCOMPLETE):
            metrics.add_metric(name="MirrorsFailed", unit=MetricUnit.Count, value=1)
        metrics.add_metric(name="BytesSent", unit=MetricUnit.Bytes, value=result.stats.bytes_sent)
        metrics.add_metric(name="BytesReceived", unit=MetricUnit.Bytes, value=result.stats.bytes_received)
        metrics.add_metric(
            name="RunDurationSeconds", unit=MetricUnit.Seconds, value=result.stats.duration_seconds
        )
        if outcome.lag_seconds is not None:
            metrics.add_metric(name="MirrorLagSeconds", unit=MetricUnit.Seconds, value=outcome.lag_seconds)
    if outcome.retry:
        queue.delay_retry(record.receipt_handle, outcome.retry_after_seconds)
        raise RetryLater(outcome.reason or (result.error if result else "retry"))
    return {"action": outcome.action}


def _run_started(run_id: str) -> None:
    logger.thread_safe_append_keys(run_id=run_id)
    logger.info("run started")


@logger.inject_lambda_context(log_event=False)
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    from aws_lambda_powertools.utilities.batch import process_partial_response

    # a run killed in this execution environment (out of memory, timeout) left its scratch behind
    for path in scratch.remove_stale():
        logger.warning("removed the scratch directory of a run that did not finish", extra={"path": path})
    return dict(
        process_partial_response(
            event=event, record_handler=record_handler, processor=processor(), context=context
        )
    )
