"""Management API Lambda (IAM-authorized routes of the HTTP API): mirrors CRUD, "Update now", run history.

Routes only: Powertools validates the path, query and body against the models; `gitmirror.manage` does
the work; the answers to errors, the body guard and the response models are in `gitmirror.manage.api`.
Secret values are never read here: a mirror record holds only the names of its secrets.
"""

# No `from __future__ import annotations`: pydantic and Powertools read these annotations at import time,
# and the tests load this file under a generated module name that is not in sys.modules.
import functools
from typing import Annotated, Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.openapi.params import Query
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from gitmirror import logs
from gitmirror.adapters.aws.clients import TRACED_MODULES
from gitmirror.adapters.aws.mirror_table import MirrorStore
from gitmirror.adapters.aws.queue import SqsJobQueue
from gitmirror.adapters.aws.secrets_manager import SecretsManagerSource
from gitmirror.errors import MirrorNotFound
from gitmirror.manage.api.errors import json_response
from gitmirror.manage.api.models import (
    ROUTE_DOCS,
    DryRunReply,
    MirrorId,
    MirrorList,
    MirrorView,
    RunList,
    SyncReply,
)
from gitmirror.manage.api.resolver import ManagementResolver
from gitmirror.manage.mirrors import create_mirror, request_sync, update_mirror
from gitmirror.ports import JobQueue, MirrorRepository
from gitmirror.records import MirrorSettings, MirrorSpec
from gitmirror.settings import ApiSettings, load
from gitmirror.values import Trigger

logger = Logger()
logs.install()  # after the Logger: its handler gets the scrub filter too
tracer = Tracer(patch_modules=TRACED_MODULES)
metrics = Metrics()
settings = load(ApiSettings)
app = ManagementResolver(logger, metrics)


@functools.cache
def ports() -> tuple[MirrorRepository, JobQueue]:
    return MirrorStore(settings.mirrors_table, settings.runs_table), SqsJobQueue(settings.queue_url)


def mirrors() -> MirrorRepository:
    return ports()[0]


@app.get("/mirrors", **ROUTE_DOCS["list_mirrors"])
def list_mirrors() -> Response[MirrorList]:
    return json_response(200, MirrorList(mirrors=[MirrorView.of(m) for m in mirrors().list_mirrors()]))


@app.post("/mirrors", **ROUTE_DOCS["create"])
def create(spec: MirrorSpec) -> Response[MirrorView]:
    mirror = create_mirror(
        spec, mirrors(), settings.policy, settings.secrets_prefix, secret_exists=SecretsManagerSource().exists
    )
    logger.info("mirror created", extra={"mirror_id": mirror.id, "provider": mirror.provider.value})
    metrics.add_metric(name="MirrorsCreated", unit=MetricUnit.Count, value=1)
    return json_response(201, MirrorView.of(mirror), headers={"Location": f"/mirrors/{mirror.id}"})


@app.get("/mirrors/<id>", **ROUTE_DOCS["get_mirror"])
def get_mirror(id: MirrorId) -> Response[MirrorView]:
    mirror = mirrors().get(id)
    if mirror is None:
        raise MirrorNotFound(id)
    return json_response(200, MirrorView.of(mirror))


@app.put("/mirrors/<id>", **ROUTE_DOCS["change"])
def change(id: MirrorId, changes: MirrorSettings) -> Response[MirrorView]:
    mirror = update_mirror(id, changes, mirrors(), settings.secrets_prefix)
    logger.info("mirror changed", extra={"mirror_id": id, "fields": sorted(changes.model_fields_set)})
    metrics.add_metric(name="MirrorsUpdated", unit=MetricUnit.Count, value=1)
    return json_response(200, MirrorView.of(mirror))


@app.delete("/mirrors/<id>", **ROUTE_DOCS["delete"])
def delete(id: MirrorId) -> Response[None]:
    mirrors().delete(id)
    logger.info("mirror deleted", extra={"mirror_id": id})
    metrics.add_metric(name="MirrorsDeleted", unit=MetricUnit.Count, value=1)
    return Response(status_code=204, body=None)


@app.post("/mirrors/<id>/sync", **ROUTE_DOCS["sync_now"])
def sync_now(
    id: MirrorId,
    dry_run: Annotated[
        bool, Query(description="queue a dry run: the plan, recorded in a run record; nothing is pushed")
    ] = False,
) -> Response[SyncReply | DryRunReply]:
    store, queue = ports()
    outcome = request_sync(id, store, queue, Trigger.MANUAL, dry_run=dry_run)
    logger.info(
        "sync requested",
        extra={"mirror_id": id, "queued": outcome.queued, "reason": outcome.reason, "dry_run": dry_run},
    )
    if outcome.queued:
        metrics.add_metric(
            name="DryRunsQueued" if dry_run else "ManualSyncsQueued", unit=MetricUnit.Count, value=1
        )
    reply = DryRunReply if dry_run else SyncReply
    body = reply(mirror=id, queued=outcome.queued, reason=outcome.reason)
    return json_response(202 if outcome.queued else 200, body)


@app.get("/mirrors/<id>/runs", **ROUTE_DOCS["list_runs"])
def list_runs(
    id: MirrorId,
    limit: Annotated[int, Query(ge=1, le=100, description="How many runs to return (1-100)")] = 20,
) -> Response[RunList]:
    if mirrors().get(id) is None:
        raise MirrorNotFound(id)
    return json_response(200, RunList(runs=mirrors().list_runs(id, limit=limit)))


@logger.inject_lambda_context(
    correlation_id_path=correlation_paths.API_GATEWAY_HTTP, log_event=False, clear_state=True
)
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context)
