"""Scheduler Lambda (EventBridge schedule): the safety net that queues a sync of every enabled mirror.

Wiring only: `gitmirror.manage.mirrors.schedule_all` skips disabled mirrors and those with a run already
scheduled or started. A failure to queue (SQS/DynamoDB unavailable) fails the invocation so EventBridge
retries it; the mirrors queued before the failure are `scheduled` by then and are skipped by the retry.
"""

from __future__ import annotations

import functools
from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from gitmirror import logs
from gitmirror.adapters.aws.clients import TRACED_MODULES
from gitmirror.adapters.aws.mirror_table import MirrorStore
from gitmirror.adapters.aws.queue import SqsJobQueue
from gitmirror.manage.mirrors import schedule_all
from gitmirror.settings import SchedulerSettings, load

logger = Logger()
logs.install()  # after the Logger: its handler gets the scrub filter too
tracer = Tracer(patch_modules=TRACED_MODULES)
metrics = Metrics()
settings = load(SchedulerSettings)


@functools.cache
def ports() -> tuple[MirrorStore, SqsJobQueue]:
    return MirrorStore(settings.mirrors_table, settings.runs_table), SqsJobQueue(settings.queue_url)


@logger.inject_lambda_context(log_event=False, clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    logger.append_keys(schedule_event_id=event.get("id"))
    queued, skipped = schedule_all(*ports())
    metrics.add_metric(name="ScheduledSyncs", unit=MetricUnit.Count, value=len(queued))
    logger.info("scheduled syncs", extra={"queued": len(queued), "skipped": len(skipped)})
    return {"queued": queued, "skipped": skipped}
