"""The management API's error answers: every error is a JSON `{"error": "..."}`, registered on the
resolver as Powertools exception handlers."""

from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response, content_types
from aws_lambda_powertools.event_handler.openapi.exceptions import (
    RequestUnsupportedContentType,
    RequestValidationError,
)

from gitmirror.errors import MirrorError
from gitmirror.http_answers import INTERNAL, http_answer
from gitmirror.records import validation_message

from .models import ID_RULE, IMMUTABLE_FIELDS


class ApiError(Exception):
    """An answer decided by a route itself (e.g. 405)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def json_response(status: int, body: Any, headers: dict[str, str] | None = None) -> Response[Any]:
    return Response(
        status_code=status, content_type=content_types.APPLICATION_JSON, body=body, headers=headers
    )


def error_response(status: int, message: str) -> Response[Any]:
    return json_response(status, {"error": message})


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
        msg = validation_message(error)
        if kind == "json_invalid":
            text = "request body is not valid JSON"
        elif where == "path" and field == "id":
            text = f"invalid mirror id in the path: {ID_RULE}"
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


def register_error_handlers(app: APIGatewayHttpResolver, logger: Logger) -> None:
    @app.exception_handler(RequestValidationError)
    def invalid_request(exc: RequestValidationError) -> Response[Any]:
        errors = list(exc.errors())
        if any(tuple(e.get("loc", ()))[:1] == ("response",) for e in errors):
            # Powertools reports a reply that does not match its declared model this way: our bug.
            logger.error("response failed validation", extra={"errors": [e.get("type") for e in errors]})
            return error_response(500, INTERNAL)
        return error_response(400, describe_validation_errors(errors))

    @app.exception_handler(RequestUnsupportedContentType)
    def unsupported_content_type(_exc: RequestUnsupportedContentType) -> Response[Any]:
        return error_response(415, "the request body must be JSON (Content-Type: application/json)")

    @app.exception_handler(RecursionError)
    def nested_too_deeply(_exc: RecursionError) -> Response[Any]:
        return error_response(400, "request body is not valid JSON")

    @app.exception_handler(ApiError)
    def api_error(exc: ApiError) -> Response[Any]:
        return error_response(exc.status, exc.message)

    @app.exception_handler(MirrorError)
    def mirror_error(exc: MirrorError) -> Response[Any]:
        status, message = http_answer(exc)
        if status >= 500:
            logger.error("request failed", extra={"error": exc.message, "kind": exc.kind})
        return error_response(status, message)

    @app.not_found
    def not_found(_exc: Exception) -> Response[Any]:
        return error_response(404, "not found")

    @app.exception_handler(Exception)
    def internal_error(_exc: Exception) -> Response[Any]:
        logger.exception("unhandled error")
        return error_response(500, INTERNAL)
