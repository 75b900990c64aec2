"""The events AWS sends the functions, built in one place: API Gateway HTTP API (payload 2.0), SQS and
EventBridge schedule events. The events generator (fixed ids and times) and the local runner (live ids
and times) both use these."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Gateway:
    """Where an HTTP API event claims to come from."""

    account_id: str = "123456789012"
    region: str = "us-east-1"
    api_id: str = "local"
    domain: str = "localhost"
    source_ip: str = "127.0.0.1"


def body_fields(body: bytes) -> dict[str, Any]:
    try:
        return {"body": body.decode("utf-8"), "isBase64Encoded": False}
    except UnicodeDecodeError:
        return {"body": base64.b64encode(body).decode("ascii"), "isBase64Encoded": True}


def http_api_event(
    method: str,
    path: str,
    headers: dict[str, str],
    body: bytes | None,
    *,
    now: int,
    request_id: str,
    trace_seed: str,
    route: str = "$default",
    gateway: Gateway = Gateway(),
    raw_query: str = "",
    query: dict[str, str] | None = None,
    path_parameters: dict[str, str] | None = None,
    iam_user_arn: str | None = None,
) -> dict[str, Any]:
    """An API Gateway HTTP API payload 2.0 event, as the template's routes produce them.

    Header names are lowercase, as API Gateway delivers them; `iam_user_arn` adds the
    `requestContext.authorizer.iam` block API Gateway sets on routes with the AWS_IAM authorizer.
    """
    all_headers = {k.lower(): v for k, v in headers.items()}
    all_headers.update(
        {
            "content-length": str(len(body or b"")),
            "host": gateway.domain,
            "x-amzn-trace-id": "Root=1-" + hashlib.sha256(f"trace:{trace_seed}".encode()).hexdigest()[:32],
            "x-forwarded-for": gateway.source_ip,
            "x-forwarded-port": "443",
            "x-forwarded-proto": "https",
        }
    )
    if body is None:
        del all_headers["content-length"]
    context: dict[str, Any] = {"accountId": gateway.account_id, "apiId": gateway.api_id}
    if iam_user_arn:
        user_id = "AIDA" + hashlib.sha256(b"gitmirror-operator").hexdigest()[:17].upper()
        context["authorizer"] = {
            "iam": {
                "accessKey": "AKIAIOSFODNN7EXAMPLE",
                "accountId": gateway.account_id,
                "callerId": user_id,
                "cognitoIdentity": None,
                "principalOrgId": None,
                "userArn": iam_user_arn,
                "userId": user_id,
            }
        }
    context.update(
        {
            "domainName": gateway.domain,
            "domainPrefix": gateway.api_id,
            "http": {
                "method": method,
                "path": path,
                "protocol": "HTTP/1.1",
                "sourceIp": gateway.source_ip,
                "userAgent": all_headers.get("user-agent", ""),
            },
            "requestId": request_id,
            "routeKey": route,
            "stage": "$default",
            "time": dt.datetime.fromtimestamp(now, dt.UTC).strftime("%d/%b/%Y:%H:%M:%S +0000"),
            "timeEpoch": now * 1000,
        }
    )
    event: dict[str, Any] = {
        "version": "2.0",
        "routeKey": route,
        "rawPath": path,
        "rawQueryString": raw_query or "&".join(f"{k}={v}" for k, v in (query or {}).items()),
        "headers": dict(sorted(all_headers.items())),
    }
    if query:
        event["queryStringParameters"] = dict(query)
    event["requestContext"] = context
    if path_parameters:
        event["pathParameters"] = dict(path_parameters)
    if body is not None:
        event.update(body_fields(body))
    else:
        event["isBase64Encoded"] = False
    return event


def sqs_record(
    *,
    message_id: str,
    receipt_handle: str,
    body: str,
    attributes: dict[str, str],
    queue_arn: str,
    md5_of_body: str = "",
) -> dict[str, Any]:
    """One record of the event Lambda's SQS event source sends."""
    parts = queue_arn.split(":")
    return {
        "messageId": message_id,
        "receiptHandle": receipt_handle,
        "body": body,
        "attributes": attributes,
        "messageAttributes": {},
        "md5OfBody": md5_of_body,
        "eventSource": "aws:sqs",
        "eventSourceARN": queue_arn,
        "awsRegion": parts[3] if len(parts) >= 6 else "us-east-1",
    }


def schedule_event(*, event_id: str, now: int, rule_arn: str, account_id: str, region: str) -> dict[str, Any]:
    """The EventBridge "Scheduled Event" a schedule rule sends."""
    return {
        "version": "0",
        "id": event_id,
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "account": account_id,
        "time": dt.datetime.fromtimestamp(now, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "region": region,
        "resources": [rule_arn],
        "detail": {},
    }
