"""Webhook receiver Lambda: verify signature -> match mirrors -> dedupe -> enqueue -> 202.

Wiring only: reads the raw body, calls `gitmirror.webhook.receive.receive_webhook` with the AWS
adapters, shapes the response.
"""

from __future__ import annotations

import base64
import functools
from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response, content_types
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from gitmirror import logs
from gitmirror.adapters.aws.clients import TRACED_MODULES
from gitmirror.adapters.aws.idempotency import DynamoDeliveryLedger
from gitmirror.adapters.aws.mirror_table import MirrorStore
from gitmirror.adapters.aws.queue import SqsJobQueue
from gitmirror.adapters.aws.secrets_manager import SecretsManagerSource
from gitmirror.errors import MirrorError, MirrorMisconfigured
from gitmirror.http_answers import INTERNAL, http_answer
from gitmirror.settings import WebhookSettings, load
from gitmirror.values import Provider
from gitmirror.webhook.payloads import delivery_id
from gitmirror.webhook.receive import ReceiverPorts, Reply, receive_webhook

logger = Logger()
logs.install()  # after the Logger: its handler gets the scrub filter too
tracer = Tracer(patch_modules=TRACED_MODULES)
metrics = Metrics()
settings = load(WebhookSettings)
app = APIGatewayHttpResolver()


@functools.cache
def ports() -> ReceiverPorts:
    return ReceiverPorts(
        mirrors=MirrorStore(settings.mirrors_table, settings.runs_table),
        secrets=SecretsManagerSource(),
        queue=SqsJobQueue(settings.queue_url),
        ledger=DynamoDeliveryLedger(settings.idempotency_table),
    )


def _json(status: int, body: dict[str, Any]) -> Response:
    return Response(status_code=status, content_type=content_types.APPLICATION_JSON, body=body)


def raw_body(event: dict[str, Any]) -> bytes:
    body = event.get("body") or ""
    if event.get("isBase64Encoded"):
        return base64.b64decode(body)
    return body.encode("utf-8")


@app.post("/webhooks/<provider>")
def receive(provider: str) -> Response:
    try:
        source = Provider(provider)
    except ValueError:
        return _json(404, {"error": "unknown webhook route"})
    headers = app.current_event.headers
    delivery = delivery_id(source, headers)
    if delivery:
        logger.set_correlation_id(delivery)
    try:
        body = raw_body(app.current_event.raw_event)
    except ValueError:
        reply = Reply(400, {"error": "body is not valid base64"}, reason="bad_encoding")
    else:
        try:
            reply = receive_webhook(source, headers, body, ports(), max_body_bytes=settings.max_body_bytes)
        except MirrorMisconfigured as exc:
            logger.error(
                "webhook not accepted: mirror misconfigured",
                extra={"mirror_id": exc.mirror_id, "error": exc.message},
            )
            metrics.add_metric(name="WebhookSecretErrors", unit=MetricUnit.Count, value=1)
            status, message = http_answer(exc)
            reply = Reply(status, {"error": message}, reason="misconfigured")
        except MirrorError as exc:
            logger.error("webhook not accepted: dependency failure", extra={"error": exc.message})
            status, message = http_answer(exc)
            reply = Reply(status, {"error": message}, reason="unavailable")
    if reply.status == 202:
        metrics.add_metric(name="WebhooksAccepted", unit=MetricUnit.Count, value=1)
        metrics.add_metric(name="JobsQueued", unit=MetricUnit.Count, value=len(reply.enqueued))
    elif reply.body.get("duplicate"):
        metrics.add_metric(name="WebhooksDuplicate", unit=MetricUnit.Count, value=1)
    elif reply.reason:
        metrics.add_metric(name=f"WebhooksRejected_{reply.reason}", unit=MetricUnit.Count, value=1)
    logger.info(
        "webhook handled",
        extra={
            "provider": provider,
            "delivery_id": delivery or "",
            "status": reply.status,
            "reason": reply.reason,
            "mirrors": reply.enqueued,
        },
    )
    return _json(reply.status, reply.body)


@app.route("/webhooks/<provider>", method=["GET", "PUT", "PATCH", "DELETE", "HEAD"])
def wrong_method(provider: str) -> Response:
    return _json(405, {"error": "method not allowed: webhooks are POST"})


@app.not_found
def not_found(_exc: Exception) -> Response:
    return _json(404, {"error": "not found"})


@app.exception_handler(Exception)
def internal_error(exc: Exception) -> Response:
    logger.exception("unhandled error")
    return _json(500, {"error": INTERNAL})


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_HTTP, log_event=False)
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    ports().ledger.register_context(context)
    return app.resolve(event, context)
