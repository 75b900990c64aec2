"""The management API's response models and route documentation (the OpenAPI document is generated
from these, see scripts/gen_openapi.py)."""

from typing import Annotated, Any

from aws_lambda_powertools.event_handler import content_types
from aws_lambda_powertools.event_handler.openapi.params import Path
from aws_lambda_powertools.event_handler.openapi.types import OpenAPIResponse
from pydantic import BaseModel, Field
from pydantic.json_schema import SkipJsonSchema

from gitmirror.records import Mirror, MirrorSettings, MirrorSpec, RunRecord
from gitmirror.values import MIRROR_ID

MAX_BODY_BYTES = 64 * 1024
# Fields of MirrorSpec that MirrorSettings (the body of PUT) does not have: fixed at creation, as in GitLab.
IMMUTABLE_FIELDS = frozenset(MirrorSpec.model_fields) - frozenset(MirrorSettings.model_fields)
MANAGEMENT_SECURITY: list[dict[str, list[str]]] = [{"sigv4": []}]
TAGS = ["mirrors"]
ID_CHARS = "1-64 characters of a-z, 0-9, '-' or '_', starting with a letter or digit"
ID_RULE = f"ids are {ID_CHARS}"


class MirrorView(Mirror):
    """A mirror as the API shows it: the record without internal fields."""

    source_key: SkipJsonSchema[str | None] = Field(default=None, exclude=True)
    lease_owner: SkipJsonSchema[str | None] = Field(default=None, exclude=True)
    lease_expires_at: SkipJsonSchema[str | None] = Field(default=None, exclude=True)

    @classmethod
    def of(cls, mirror: Mirror) -> "MirrorView":
        return cls.model_validate(mirror.public())


class MirrorList(BaseModel):
    mirrors: list[MirrorView]


class RunList(BaseModel):
    runs: list[RunRecord]


class SyncReply(BaseModel):
    mirror: str
    queued: bool = Field(description="false when a run was already scheduled or started (a no-op)")
    reason: str = Field(description='"queued", or why nothing was queued')


class DryRunReply(SyncReply):
    dry_run: bool = Field(
        default=True, description="a dry run was queued: its run record (`dry_run: true`) will hold the plan"
    )


class ErrorBody(BaseModel):
    error: str


MirrorId = Annotated[
    str,
    Path(pattern=MIRROR_ID.pattern, description=f"The mirror's id: {ID_CHARS}"),
]

_ERROR_TEXT = {
    400: "Invalid request (bad id, query, JSON body or field value)",
    404: "No such mirror",
    405: "Method not allowed",
    409: "A mirror with this id already exists",
    413: f"Request body larger than {MAX_BODY_BYTES} bytes",
    415: "The request body is not JSON (Content-Type must be application/json)",
    503: "DynamoDB or SQS is throttling or unavailable; retry later",
}


def responses(success: dict[int, str], *errors: int) -> dict[int, OpenAPIResponse]:
    """OpenAPI responses of a route: success bodies come from the return annotation, errors are ErrorBody."""
    out: dict[int, OpenAPIResponse] = {code: {"description": text} for code, text in success.items()}
    for code in (*errors, 503):
        out[code] = {
            "description": _ERROR_TEXT[code],
            "content": {content_types.APPLICATION_JSON: {"model": ErrorBody}},
        }
    return out


def _route(
    summary: str, success: dict[int, str], *errors: int, description: str | None = None
) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "summary": summary,
        "responses": responses(success, *errors),
        "tags": TAGS,
        "security": MANAGEMENT_SECURITY,
    }
    if description:
        doc["description"] = description
    return doc


# Each route's OpenAPI documentation, by route function.
ROUTE_DOCS = {
    "list_mirrors": _route(
        "List mirrors",
        {200: "The mirrors"},
        description="Every mirror with its configuration and GitLab-style status fields, sorted by id.",
    ),
    "create": _route(
        "Create a mirror",
        {201: "Created"},
        400,
        409,
        413,
        415,
        description=(
            "The target `url` (and the source, provider and auth method) cannot be changed later. URLs must "
            "not embed credentials: `target_secret` / `source_secret` name Secrets Manager secrets under the "
            "deployment's prefix. Without `id`, one is derived from the source repository."
        ),
    ),
    "get_mirror": _route("Get a mirror", {200: "The mirror"}, 400, 404),
    "change": _route(
        "Change a mirror's settings",
        {200: "The changed mirror"},
        400,
        404,
        413,
        415,
        description=(
            "Only the fields given change; `null` clears an optional field. `url`, `source_url`, `provider`, "
            "`id`, `source_repo_id`, `source_full_name` and `auth_method` cannot be changed after creation "
            "(as in GitLab): delete and re-create the mirror."
        ),
    ),
    "delete": _route(
        "Delete a mirror",
        {},
        400,
        404,
        description="Deletes the mirror's record; its run history expires with the runs table's TTL.",
    ),
    "sync_now": _route(
        "Update now",
        {202: "Queued", 200: "Not queued: a run is already scheduled or started"},
        400,
        404,
        description=(
            'Queues a sync of the mirror (GitLab\'s "Update now"). When a run is already scheduled or started '
            "nothing is queued and the reply is 200 with `queued: false`. With `dry_run=true` a dry run is "
            "queued instead (always, 202, `dry_run: true`): the worker lists both sides, fetches what the plan "
            "needs and records the plan in a run record with `dry_run: true`, pushing nothing and leaving the "
            "mirror's status fields untouched."
        ),
    ),
    "list_runs": _route(
        "List a mirror's runs",
        {200: "The runs, newest first"},
        400,
        404,
        description="Run history, newest first.",
    ),
}
ROUTE_DOCS["delete"]["responses"] = {
    204: {"description": "Deleted", "content": {}},
    **ROUTE_DOCS["delete"]["responses"],
}

# Methods API Gateway would not route to the function (its routes are exact), answered 405 for direct
# invocations: (path, methods, the methods the path has).
WRONG_METHODS = (
    ("/mirrors", ["PUT", "PATCH", "DELETE"], "GET or POST on /mirrors"),
    ("/mirrors/<id>", ["POST", "PATCH"], "GET, PUT or DELETE on /mirrors/{id}"),
    ("/mirrors/<id>/sync", ["GET", "PUT", "PATCH", "DELETE"], "POST on /mirrors/{id}/sync"),
    ("/mirrors/<id>/runs", ["POST", "PUT", "PATCH", "DELETE"], "GET on /mirrors/{id}/runs"),
)
