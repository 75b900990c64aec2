"""Management API Lambda (IAM-authorized routes of the HTTP API): mirrors CRUD, "Update now", run history.

Thin: Powertools validates the path, query and body against the pydantic models (which also produce the
OpenAPI document, see scripts/gen_openapi.py); `gitmirror.manage.mirrors` does the work. Every error is a
JSON `{"error": "..."}`; every check happens before anything is written. Secret values are never read
here: a mirror record holds only the names of its Secrets Manager secrets.
"""

# No `from __future__ import annotations`: pydantic and Powertools read these annotations at import time,
# and the tests load this file under a generated module name that is not in sys.modules.
import base64
import binascii
import functools
import json
from typing import Annotated, Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response, content_types
from aws_lambda_powertools.event_handler.openapi.exceptions import (
    RequestUnsupportedContentType,
    RequestValidationError,
)
from aws_lambda_powertools.event_handler.openapi.params import Path, Query
from aws_lambda_powertools.event_handler.openapi.types import OpenAPIResponse
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import BaseModel, Field
from pydantic.json_schema import SkipJsonSchema

from gitmirror.adapters.aws import queue as jobs
from gitmirror.adapters.aws.mirror_table import MirrorExists, MirrorNotFound, MirrorStore
from gitmirror.errors import MirrorError, TransientError, UsageError
from gitmirror.manage.mirrors import create_mirror, request_sync, update_mirror
from gitmirror.records import Mirror, MirrorSettings, MirrorSpec, RunRecord
from gitmirror.settings import Settings
from gitmirror.values import Trigger

logger = Logger()
tracer = Tracer()
metrics = Metrics()
app = APIGatewayHttpResolver(enable_validation=True)

MAX_BODY_BYTES = 64 * 1024
ID_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,63}$"  # the Mirror id pattern (gitmirror.records)
# Fields of MirrorSpec that MirrorSettings (the body of PUT) does not have: fixed at creation, as in GitLab.
IMMUTABLE_FIELDS = frozenset(MirrorSpec.model_fields) - frozenset(MirrorSettings.model_fields)
MANAGEMENT_SECURITY: list[dict[str, list[str]]] = [{"sigv4": []}]
TAGS = ["mirrors"]


# --- response models (the OpenAPI document is generated from these) ----------------------------------


class MirrorView(Mirror):
    """A mirror as the API shows it: the record without internal fields."""

    source_key: SkipJsonSchema[str | None] = Field(default=None, exclude=True)


class MirrorList(BaseModel):
    mirrors: list[MirrorView]


class RunList(BaseModel):
    runs: list[RunRecord]


class SyncReply(BaseModel):
    mirror: str
    queued: bool = Field(description="false when a run was already scheduled or started (a no-op)")
    reason: str = Field(description='"queued", or why nothing was queued')


class ErrorBody(BaseModel):
    error: str


class ApiError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


# --- dependencies --------------------------------------------------------------------------------


@functools.cache
def settings() -> Settings:
    return Settings.from_env()


@functools.cache
def store() -> MirrorStore:
    return MirrorStore(settings().mirrors_table, settings().runs_table)


def enqueue(mirror_id: str, trigger: Trigger, delivery: str | None) -> None:
    jobs.enqueue(settings().queue_url, jobs.make_job(mirror_id, trigger, delivery))


# --- helpers -------------------------------------------------------------------------------------

_ERROR_TEXT = {
    400: "Invalid request (bad id, query, JSON body or field value)",
    404: "No such mirror",
    405: "Method not allowed",
    409: "A mirror with this id already exists",
    413: f"Request body larger than {MAX_BODY_BYTES} bytes",
    415: "The request body is not JSON (Content-Type must be application/json)",
    503: "DynamoDB or SQS is throttling or unavailable; retry later",
}


def _doc(success: dict[int, str], *errors: int) -> dict[int, OpenAPIResponse]:
    """OpenAPI responses of a route: success bodies come from the return annotation, errors are ErrorBody."""
    out: dict[int, OpenAPIResponse] = {code: {"description": text} for code, text in success.items()}
    for code in (*errors, 503):
        out[code] = {
            "description": _ERROR_TEXT[code],
            "content": {content_types.APPLICATION_JSON: {"model": ErrorBody}},
        }
    return out


def _json(status: int, body: Any, headers: dict[str, str] | None = None) -> Response[Any]:
    return Response(
        status_code=status, content_type=content_types.APPLICATION_JSON, body=body, headers=headers
    )


def _get(mirror_id: str) -> Mirror:
    mirror = store().get(mirror_id)
    if mirror is None:
        raise MirrorNotFound(mirror_id)
    return mirror


def _view(mirror: Mirror) -> MirrorView:
    return MirrorView.model_validate(mirror.public())


MirrorId = Annotated[
    str,
    Path(
        pattern=ID_PATTERN,
        description="The mirror's id: 1-64 characters of a-z, 0-9, '-' or '_', starting with a letter or digit",
    ),
]


# --- routes --------------------------------------------------------------------------------------


@app.get(
    "/mirrors",
    summary="List mirrors",
    description="Every mirror with its configuration and GitLab-style status fields, sorted by id.",
    responses=_doc({200: "The mirrors"}),
    tags=TAGS,
    security=MANAGEMENT_SECURITY,
)
def list_mirrors() -> Response[MirrorList]:
    mirrors = store().list_mirrors()
    return _json(200, MirrorList(mirrors=[_view(m) for m in mirrors]))


@app.post(
    "/mirrors",
    summary="Create a mirror",
    description=(
        "The target `url` (and the source, provider and auth method) cannot be changed later. URLs must "
        "not embed credentials: `target_secret` / `source_secret` name Secrets Manager secrets under the "
        "deployment's prefix. Without `id`, one is derived from the source repository."
    ),
    responses=_doc({201: "Created"}, 400, 409, 413, 415),
    tags=TAGS,
    security=MANAGEMENT_SECURITY,
)
def create(spec: MirrorSpec) -> Response[MirrorView]:
    config = settings()
    mirror = create_mirror(spec, store(), config.policy, config.secrets_prefix)
    logger.info("mirror created", extra={"mirror_id": mirror.id, "provider": mirror.provider.value})
    metrics.add_metric(name="MirrorsCreated", unit=MetricUnit.Count, value=1)
    return _json(201, _view(mirror), headers={"Location": f"/mirrors/{mirror.id}"})


@app.get(
    "/mirrors/<id>",
    summary="Get a mirror",
    responses=_doc({200: "The mirror"}, 400, 404),
    tags=TAGS,
    security=MANAGEMENT_SECURITY,
)
def get_mirror(id: MirrorId) -> Response[MirrorView]:
    return _json(200, _view(_get(id)))


@app.put(
    "/mirrors/<id>",
    summary="Change a mirror's settings",
    description=(
        "Only the fields given change; `null` clears an optional field. `url`, `source_url`, `provider`, "
        "`id`, `source_repo_id`, `source_full_name` and `auth_method` cannot be changed after creation "
        "(as in GitLab): delete and re-create the mirror."
    ),
    responses=_doc({200: "The changed mirror"}, 400, 404, 413, 415),
    tags=TAGS,
    security=MANAGEMENT_SECURITY,
)
def change(id: MirrorId, changes: MirrorSettings) -> Response[MirrorView]:
    mirror = update_mirror(id, changes, store(), settings().secrets_prefix)
    logger.info("mirror changed", extra={"mirror_id": id, "fields": sorted(changes.model_fields_set)})
    metrics.add_metric(name="MirrorsUpdated", unit=MetricUnit.Count, value=1)
    return _json(200, _view(mirror))


@app.delete(
    "/mirrors/<id>",
    summary="Delete a mirror",
    description="Deletes the mirror's record; its run history expires with the runs table's TTL.",
    responses={
        204: {"description": "Deleted", "content": {}},
        **_doc({}, 400, 404),
    },
    tags=TAGS,
    security=MANAGEMENT_SECURITY,
)
def delete(id: MirrorId) -> Response[None]:
    store().delete(id)
    logger.info("mirror deleted", extra={"mirror_id": id})
    metrics.add_metric(name="MirrorsDeleted", unit=MetricUnit.Count, value=1)
    return Response(status_code=204, body=None)


@app.post(
    "/mirrors/<id>/sync",
    summary="Update now",
    description=(
        'Queues a sync of the mirror (GitLab\'s "Update now"). When a run is already scheduled or started '
        "nothing is queued and the reply is 200 with `queued: false`."
    ),
    responses=_doc({202: "Queued", 200: "Not queued: a run is already scheduled or started"}, 400, 404),
    tags=TAGS,
    security=MANAGEMENT_SECURITY,
)
def sync_now(id: MirrorId) -> Response[SyncReply]:
    outcome = request_sync(id, store(), enqueue, Trigger.MANUAL)
    logger.info("sync requested", extra={"mirror_id": id, "queued": outcome.queued, "reason": outcome.reason})
    if outcome.queued:
        metrics.add_metric(name="ManualSyncsQueued", unit=MetricUnit.Count, value=1)
    body = SyncReply(mirror=id, queued=outcome.queued, reason=outcome.reason)
    return _json(202 if outcome.queued else 200, body)


@app.get(
    "/mirrors/<id>/runs",
    summary="List a mirror's runs",
    description="Run history, newest first.",
    responses=_doc({200: "The runs, newest first"}, 400, 404),
    tags=TAGS,
    security=MANAGEMENT_SECURITY,
)
def list_runs(
    id: MirrorId,
    limit: Annotated[int, Query(ge=1, le=100, description="How many runs to return (1-100)")] = 20,
) -> Response[RunList]:
    _get(id)
    return _json(200, RunList(runs=store().list_runs(id, limit=limit)))


# Methods API Gateway would not route here (its routes are exact); answered 405 for direct invocations.
@app.route("/mirrors", method=["PUT", "PATCH", "DELETE"], include_in_schema=False)
def mirrors_wrong_method() -> Response[ErrorBody]:
    raise ApiError(405, "method not allowed: use GET or POST on /mirrors")


@app.route("/mirrors/<id>", method=["POST", "PATCH"], include_in_schema=False)
def mirror_wrong_method(id: str) -> Response[ErrorBody]:
    raise ApiError(405, "method not allowed: use GET, PUT or DELETE on /mirrors/{id}")


@app.route("/mirrors/<id>/sync", method=["GET", "PUT", "PATCH", "DELETE"], include_in_schema=False)
def sync_wrong_method(id: str) -> Response[ErrorBody]:
    raise ApiError(405, "method not allowed: use POST on /mirrors/{id}/sync")


@app.route("/mirrors/<id>/runs", method=["POST", "PUT", "PATCH", "DELETE"], include_in_schema=False)
def runs_wrong_method(id: str) -> Response[ErrorBody]:
    raise ApiError(405, "method not allowed: use GET on /mirrors/{id}/runs")


# --- errors --------------------------------------------------------------------------------------


def _clean_message(message: str) -> str:
    return message.removeprefix("Value error, ").removeprefix("Assertion failed, ")


def describe_validation_errors(errors: list[dict[str, Any]]) -> str:
    """One readable line naming each offending field; never echoes the input values."""
    messages: list[str] = []
    for error in errors:
        # (where, field, list indexes...): a validator that delegates to another model adds that model's
        # own field names after ours; they mean nothing to the caller.
        loc: list[str] = []
        for part in error.get("loc", ()):
            if len(loc) < 2 or isinstance(part, int):
                loc.append(str(part))
        where, field = (loc[0], ".".join(loc[1:])) if loc else ("", "")
        kind = str(error.get("type", ""))
        msg = _clean_message(str(error.get("msg", "invalid value")))
        if kind == "json_invalid":
            text = "request body is not valid JSON"
        elif where == "path" and field == "id":
            text = (
                "invalid mirror id in the path: ids are 1-64 characters of a-z, 0-9, '-' or '_', "
                "starting with a letter or digit"
            )
        elif where == "query":
            text = f"query parameter {field}: {msg}"
        elif where == "body" and not field:
            if kind == "missing":
                text = "a JSON object body is required"
            else:
                text = "the request body must be a JSON object"
        elif where == "body" and kind == "extra_forbidden":
            if len(loc) == 2 and loc[1] in IMMUTABLE_FIELDS:
                text = (
                    f"{loc[1]} cannot be changed after creation (as in GitLab); "
                    "delete and re-create the mirror"
                )
            else:
                text = f"unknown field {field!r}"
        elif where == "body":
            text = msg if msg.startswith(f"{field} ") else f"{field}: {msg}"
        else:
            text = f"{field or where}: {msg}" if (field or where) else msg
        if text not in messages:
            messages.append(text)
    return "; ".join(messages[:10]) or "invalid request"


@app.exception_handler(RequestValidationError)
def invalid_request(exc: RequestValidationError) -> Response[Any]:
    errors = list(exc.errors())
    if any(tuple(e.get("loc", ()))[:1] == ("response",) for e in errors):
        # Powertools reports a reply that does not match its declared model this way: our bug, not theirs.
        logger.error("response failed validation", extra={"errors": [e.get("type") for e in errors]})
        return _json(500, {"error": "internal error"})
    return _json(400, {"error": describe_validation_errors(errors)})


@app.exception_handler(RequestUnsupportedContentType)
def unsupported_content_type(_exc: RequestUnsupportedContentType) -> Response[Any]:
    return _json(415, {"error": "the request body must be JSON (Content-Type: application/json)"})


@app.exception_handler(ApiError)
def api_error(exc: ApiError) -> Response[Any]:
    return _json(exc.status, {"error": exc.message})


@app.exception_handler(UsageError)
def usage_error(exc: UsageError) -> Response[Any]:
    return _json(400, {"error": exc.message})


@app.exception_handler(MirrorNotFound)
def mirror_not_found(exc: MirrorNotFound) -> Response[Any]:
    return _json(404, {"error": f"no mirror with id {exc.args[0]!r}"})


@app.exception_handler(MirrorExists)
def mirror_exists(exc: MirrorExists) -> Response[Any]:
    return _json(409, {"error": f"a mirror with id {exc.args[0]!r} already exists"})


@app.exception_handler(TransientError)
def unavailable(exc: TransientError) -> Response[Any]:
    logger.error("request failed: dependency unavailable", extra={"error": exc.message})
    return _json(503, {"error": "temporarily unable to handle the request; retry later"})


@app.exception_handler(MirrorError)
def mirror_error(exc: MirrorError) -> Response[Any]:
    logger.error("request failed", extra={"error": exc.message, "kind": exc.kind})
    return _json(500, {"error": "internal error"})


@app.not_found
def not_found(_exc: Exception) -> Response[Any]:
    return _json(404, {"error": "not found"})


@app.exception_handler(Exception)
def internal_error(exc: Exception) -> Response[Any]:
    logger.exception("unhandled error")
    return _json(500, {"error": "internal error"})


# --- handler -------------------------------------------------------------------------------------


def _reply(status: int, message: str) -> dict[str, Any]:
    return {
        "statusCode": status,
        "headers": {"Content-Type": content_types.APPLICATION_JSON},
        "body": json.dumps({"error": message}, separators=(",", ":")),
        "isBase64Encoded": False,
    }


def check_body(event: dict[str, Any]) -> dict[str, Any] | None:
    """Refuse an oversized, undecodable or non-JSON body before anything parses it (None when fine)."""
    body = event.get("body") or ""
    if not body:
        return None
    headers = {str(k).lower(): str(v) for k, v in (event.get("headers") or {}).items()}
    media_type = headers.get("content-type", content_types.APPLICATION_JSON).split(";")[0].strip().lower()
    if media_type != content_types.APPLICATION_JSON:
        return _reply(415, "the request body must be JSON (Content-Type: application/json)")
    if len(body) > 2 * MAX_BODY_BYTES:  # cheap bound before decoding anything
        return _reply(413, f"request body larger than {MAX_BODY_BYTES} bytes")
    try:
        raw = base64.b64decode(body, validate=True) if event.get("isBase64Encoded") else body.encode("utf-8")
    except (binascii.Error, ValueError):
        return _reply(400, "request body is not valid base64")
    if len(raw) > MAX_BODY_BYTES:
        return _reply(413, f"request body larger than {MAX_BODY_BYTES} bytes")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return _reply(400, "request body is not valid UTF-8")
    try:
        json.loads(text)  # parsed again by the resolver; here so that no parse error can become a 500
    except (ValueError, RecursionError):
        return _reply(400, "request body is not valid JSON")
    return None


def caller_arn(event: dict[str, Any]) -> str | None:
    authorizer = (event.get("requestContext") or {}).get("authorizer") or {}
    arn = (authorizer.get("iam") or {}).get("userArn")
    return str(arn) if arn else None


@logger.inject_lambda_context(
    correlation_id_path=correlation_paths.API_GATEWAY_HTTP, log_event=False, clear_state=True
)
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    arn = caller_arn(event)
    if arn:
        logger.append_keys(caller=arn)
    http = (event.get("requestContext") or {}).get("http") or {}
    response = check_body(event) or app.resolve(event, context)
    status = int(response.get("statusCode", 500))
    metrics.add_metric(name="ApiRequests", unit=MetricUnit.Count, value=1)
    if status >= 500:
        metrics.add_metric(name="ApiServerErrors", unit=MetricUnit.Count, value=1)
    elif status >= 400:
        metrics.add_metric(name="ApiClientErrors", unit=MetricUnit.Count, value=1)
    logger.info(
        "api request handled",
        extra={"method": http.get("method"), "path": event.get("rawPath"), "status": status},
    )
    return response
