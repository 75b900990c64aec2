"""The management API's resolver: Powertools' HTTP API resolver with request validation, our error
answers, a guard on the raw body, and one log line and metric per request."""

import base64
import binascii
import json
from collections.abc import Mapping
from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response, content_types
from aws_lambda_powertools.metrics import MetricUnit

from .errors import ApiError, register_error_handlers
from .models import MAX_BODY_BYTES, WRONG_METHODS, ErrorBody


def body_problem(event: Mapping[str, Any]) -> tuple[int, str] | None:
    """Why a raw body must be refused before anything parses it (size, media type, encoding), or None.

    Parsing the JSON is left to the resolver's validation (its errors are answered 400)."""
    body = event.get("body") or ""
    if not body:
        return None
    headers = {str(k).lower(): str(v) for k, v in (event.get("headers") or {}).items()}
    media_type = headers.get("content-type", content_types.APPLICATION_JSON).split(";")[0].strip().lower()
    if media_type != content_types.APPLICATION_JSON:
        return 415, "the request body must be JSON (Content-Type: application/json)"
    too_large = (413, f"request body larger than {MAX_BODY_BYTES} bytes")
    if len(body) > 2 * MAX_BODY_BYTES:  # cheap bound before decoding anything
        return too_large
    try:
        raw = base64.b64decode(body, validate=True) if event.get("isBase64Encoded") else body.encode("utf-8")
    except (binascii.Error, ValueError):
        return 400, "request body is not valid base64"
    if len(raw) > MAX_BODY_BYTES:
        return too_large
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError:
        return 400, "request body is not valid UTF-8"
    return None


def _refusal(status: int, message: str) -> dict[str, Any]:
    """The answer to a refused body, as the resolver would build it (nothing was routed)."""
    return {
        "statusCode": status,
        "headers": {"Content-Type": content_types.APPLICATION_JSON},
        "body": json.dumps({"error": message}, separators=(",", ":")),
        "isBase64Encoded": False,
    }


def caller_arn(event: Mapping[str, Any]) -> str | None:
    authorizer = (event.get("requestContext") or {}).get("authorizer") or {}
    arn = (authorizer.get("iam") or {}).get("userArn")
    return str(arn) if arn else None


class ManagementResolver(APIGatewayHttpResolver):
    def __init__(self, logger: Logger, metrics: Metrics) -> None:
        super().__init__(enable_validation=True)
        self.logger = logger
        self.metrics = metrics
        register_error_handlers(self, logger)
        for path, methods, allowed in WRONG_METHODS:
            self._answer_wrong_method(path, methods, allowed)

    def _answer_wrong_method(self, path: str, methods: list[str], allowed: str) -> None:
        def wrong_method(**_path: str) -> Response[ErrorBody]:
            raise ApiError(405, f"method not allowed: use {allowed}")

        self.route(path, method=methods, include_in_schema=False, enable_validation=False)(wrong_method)

    def resolve(self, event: Mapping[str, Any], context: Any) -> dict[str, Any]:
        arn = caller_arn(event)
        if arn:
            self.logger.append_keys(caller=arn)
        problem = body_problem(event)
        if problem is not None:
            response = _refusal(*problem)
        else:
            response = super().resolve(event, context)
        self._account(event, int(response.get("statusCode", 500)))
        return response

    def _account(self, event: Mapping[str, Any], status: int) -> None:
        self.metrics.add_metric(name="ApiRequests", unit=MetricUnit.Count, value=1)
        if status >= 500:
            self.metrics.add_metric(name="ApiServerErrors", unit=MetricUnit.Count, value=1)
        elif status >= 400:
            self.metrics.add_metric(name="ApiClientErrors", unit=MetricUnit.Count, value=1)
        http = (event.get("requestContext") or {}).get("http") or {}
        self.logger.info(
            "api request handled",
            extra={"method": http.get("method"), "path": event.get("rawPath"), "status": status},
        )
