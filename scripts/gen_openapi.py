#!/usr/bin/env python3
"""Generate openapi.json: the OpenAPI document of gitmirror's whole HTTP API.

The management routes come from the API function itself (Powertools' event handler with validation
enabled builds them from the typed route functions and the pydantic models). The three webhook routes
are described here, with their reply bodies generated from pydantic models: the webhook function reads
the raw body (signatures are computed over the exact bytes), so it declares no typed routes.

    .venv/bin/python scripts/gen_openapi.py            # write openapi.json
    .venv/bin/python scripts/gen_openapi.py --check    # exit 1 when openapi.json is stale

tests/integration/test_api.py asserts that the committed openapi.json equals a fresh generation.
"""

# No `from __future__ import annotations`: pydantic reads the models' annotations at import time, and
# the test loads this file under a module name that is not in sys.modules.
import argparse
import json
import os
import sys
import warnings
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field
from pydantic.json_schema import models_json_schema

ROOT = Path(__file__).resolve().parents[1]
OUTPUT = ROOT / "openapi.json"
REF = "#/components/schemas/{model}"
JSON = "application/json"

DESCRIPTION = (
    "gitmirror push-mirrors git repositories, like GitLab's push mirrors. Source hosts (GitHub, GitLab, "
    "Gitea) send push webhooks to `/webhooks/{provider}`; each verified delivery queues a sync of every "
    "mirror of that repository. The management routes (`/mirrors...`) are authorized by AWS IAM: sign "
    'requests with SigV4 for the service `execute-api`. Every error reply is `{"error": "..."}`.'
)


# --- webhook replies (functions/webhook/app.py, gitmirror.webhook.receive) --------------------------------


class WebhookQueued(BaseModel):
    """The delivery was verified and a sync of each matching mirror was queued."""

    delivery: str = Field(description="The provider's delivery id")
    mirrors: list[str] = Field(description="Ids of the mirrors a sync was queued for")
    queued: int


class WebhookDuplicate(BaseModel):
    """A redelivery of a delivery id already handled: nothing more was queued."""

    delivery: str
    mirrors: list[str]
    queued: Literal[0]
    duplicate: Literal[True]


class WebhookIgnored(BaseModel):
    """A verified event that does not trigger a mirror (for example a ping or a non-push event)."""

    delivery: str
    ignored: str = Field(description="Why the event does not trigger a sync")


WEBHOOK_MODELS: list[type[BaseModel]] = [WebhookQueued, WebhookDuplicate, WebhookIgnored]

# provider -> (title, headers: name -> (required, description))
WEBHOOKS: dict[str, tuple[str, dict[str, tuple[bool, str]]]] = {
    "github": (
        "GitHub",
        {
            "X-GitHub-Event": (True, "Event name; `push` triggers a sync, `ping` is acknowledged"),
            "X-GitHub-Delivery": (True, "Delivery id (de-duplication)"),
            "X-Hub-Signature-256": (True, "`sha256=` HMAC of the raw body with the webhook secret"),
        },
    ),
    "gitlab": (
        "GitLab",
        {
            "X-Gitlab-Event": (True, "`Push Hook`, `Tag Push Hook` or `System Hook` trigger a sync"),
            "Idempotency-Key": (False, "Delivery id (de-duplication); else X-Gitlab-Event-UUID"),
            "X-Gitlab-Event-UUID": (False, "Delivery id when Idempotency-Key is absent"),
            "X-Gitlab-Token": (False, "The secret token (one of X-Gitlab-Token or webhook-signature)"),
            "webhook-id": (False, "Standard Webhooks message id (signing token)"),
            "webhook-timestamp": (False, "Standard Webhooks timestamp (signing token)"),
            "webhook-signature": (False, "Standard Webhooks `v1,` signature with the `whsec_` signing token"),
        },
    ),
    "gitea": (
        "Gitea",
        {
            "X-Gitea-Event": (True, "Event name (or X-Gogs-Event); `push` triggers a sync"),
            "X-Gitea-Delivery": (True, "Delivery id (or X-Gogs-Delivery)"),
            "X-Gitea-Signature": (True, "Hex HMAC-SHA256 of the raw body (or X-Gogs-Signature)"),
        },
    ),
}


def _error(description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {JSON: {"schema": {"$ref": REF.format(model="ErrorBody")}}},
    }


def _model(name: str) -> dict[str, Any]:
    return {"$ref": REF.format(model=name)}


def webhook_operation(provider: str, title: str, headers: dict[str, tuple[bool, str]]) -> dict[str, Any]:
    return {
        "tags": ["webhooks"],
        "summary": f"Receive a {title} push webhook",
        "description": (
            f"Point the {title} repository's push webhook here. The delivery is verified against the "
            "webhook secret of the mirrors of that repository, then a sync of each is queued. No IAM "
            "authorization: the signature is the authentication. Only POST is accepted."
        ),
        "operationId": f"receive_webhook_{provider}",
        "security": [],
        "parameters": [
            {
                "name": name,
                "in": "header",
                "required": required,
                "description": text,
                "schema": {"type": "string"},
            }
            for name, (required, text) in headers.items()
        ],
        "requestBody": {
            "required": True,
            "description": f"The {title} event payload, verified over its exact bytes",
            "content": {JSON: {"schema": {"type": "object"}}},
        },
        "responses": {
            "202": {
                "description": "Verified; syncs queued",
                "content": {JSON: {"schema": _model("WebhookQueued")}},
            },
            "200": {
                "description": "A duplicate delivery, or an event that does not trigger a sync",
                "content": {
                    JSON: {"schema": {"anyOf": [_model("WebhookDuplicate"), _model("WebhookIgnored")]}}
                },
            },
            "400": _error("Missing event or delivery header, or a push payload without a repository"),
            "401": _error("Missing or invalid signature"),
            "404": _error("No enabled mirror is configured for this repository"),
            "405": _error("Method not allowed (webhooks are POST)"),
            "413": _error("Body larger than the configured limit (MAX_BODY_BYTES)"),
            "503": _error("Temporarily unable to accept the delivery; the provider should retry"),
        },
    }


def _refs(node: Any) -> set[str]:
    if isinstance(node, dict):
        found = {node["$ref"].rsplit("/", 1)[-1]} if isinstance(node.get("$ref"), str) else set()
        for value in node.values():
            found |= _refs(value)
        return found
    if isinstance(node, list):
        return set().union(*(_refs(v) for v in node)) if node else set()
    return set()


def _referenced(paths: dict[str, Any], schemas: dict[str, Any]) -> set[str]:
    """Component schemas reachable from the paths (Powertools adds its 422 error schemas regardless)."""
    seen: set[str] = set()
    todo = _refs(paths)
    while todo:
        name = todo.pop()
        if name not in seen and name in schemas:
            seen.add(name)
            todo |= _refs(schemas[name])
    return seen


def _load_api_app() -> Any:
    from gitmirror.settings import ApiSettings, required_variable_names
    from gitmirror_dev.lambdas import load_function
    from gitmirror_dev.moto_stack import local_environment

    # The document does not depend on the deployment: any valid environment will do.
    placeholder = local_environment("http://127.0.0.1:9")
    for name in required_variable_names(ApiSettings):
        os.environ.setdefault(name, placeholder[name])
    return load_function("api").app


def build() -> dict[str, Any]:
    """The whole document as a dict (deterministic: no timestamps, no environment)."""
    os.environ.setdefault("POWERTOOLS_TRACE_DISABLED", "true")
    from aws_lambda_powertools.event_handler.openapi.models import APIKey, APIKeyIn, Server, Tag

    app = _load_api_app()
    sigv4 = APIKey.model_validate(
        {
            "type": "apiKey",
            "in": APIKeyIn.header,
            "name": "Authorization",
            "description": "AWS Signature Version 4 (service `execute-api`); the route's authorizer is AWS_IAM",
            "x-amazon-apigateway-authtype": "awsSigv4",
        }
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        text = app.get_openapi_json_schema(
            title="gitmirror",
            version="1.0.0",
            description=DESCRIPTION,
            servers=[
                Server.model_validate(
                    {
                        "url": "https://{api_id}.execute-api.{region}.amazonaws.com",
                        "description": "The stack's HTTP API (outputs ManagementApiUrl / *WebhookUrl)",
                        "variables": {
                            "api_id": {"default": "abcdef1234", "description": "HTTP API id"},
                            "region": {"default": "us-east-1", "description": "AWS region"},
                        },
                    }
                )
            ],
            tags=[
                Tag(name="mirrors", description="Mirror management (IAM-authorized)"),
                Tag(name="webhooks", description="Push webhooks from the source hosts (signature-verified)"),
            ],
            security_schemes={"sigv4": sigv4},
        )
    doc: dict[str, Any] = json.loads(text)

    # Validation failures are answered 400 {"error": ...}, not Powertools' default 422: drop those.
    for item in doc["paths"].values():
        for operation in item.values():
            operation.get("responses", {}).pop("422", None)
    schemas = doc.setdefault("components", {}).setdefault("schemas", {})
    _, defs = models_json_schema([(m, "serialization") for m in WEBHOOK_MODELS], ref_template=REF)
    for name, schema in defs.get("$defs", {}).items():
        schemas[name] = schema
    for provider, (title, headers) in WEBHOOKS.items():
        doc["paths"][f"/webhooks/{provider}"] = {"post": webhook_operation(provider, title, headers)}

    used = _referenced(doc["paths"], schemas)
    doc["components"]["schemas"] = {k: schemas[k] for k in sorted(schemas) if k in used}
    doc["paths"] = {k: doc["paths"][k] for k in sorted(doc["paths"])}
    return doc


def render() -> str:
    return json.dumps(build(), indent=2, ensure_ascii=False) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--check", action="store_true", help="exit 1 when openapi.json is out of date")
    parser.add_argument("--output", type=Path, default=OUTPUT)
    args = parser.parse_args(argv)
    text = render()
    if args.check:
        current = args.output.read_text(encoding="utf-8") if args.output.exists() else ""
        if current != text:
            sys.stderr.write(f"{args.output} is out of date: run scripts/gen_openapi.py\n")
            return 1
        return 0
    args.output.write_text(text, encoding="utf-8")
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
