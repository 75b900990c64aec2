"""Run the Lambda handlers without AWS or Docker: load them from functions/, build the events API Gateway
(HTTP API, payload 2.0), SQS and EventBridge would send, and poll the queue like Lambda's event source."""

from __future__ import annotations

import base64
import importlib.util
import json
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any
from urllib.parse import urlsplit

from gitmirror_dev import lambda_events

FUNCTIONS = ("webhook", "worker", "api", "scheduler")


def project_root() -> Path:
    here = Path(__file__).resolve()
    for parent in here.parents:
        if (parent / "functions").is_dir() and (parent / "layers").is_dir():
            return parent
    raise RuntimeError("cannot find the project's functions/ directory (run from a checkout)")


def load_function(name: str) -> ModuleType:
    """Import functions/<name>/app.py as a fresh module (as Lambda does in a new execution environment)."""
    path = project_root() / "functions" / name / "app.py"
    spec = importlib.util.spec_from_file_location(f"gitmirror_function_{name}_{uuid.uuid4().hex[:8]}", path)
    if spec is None or spec.loader is None:
        raise RuntimeError(f"cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@dataclass
class LambdaContext:
    function_name: str = "gitmirror-local"
    memory_limit_in_mb: int = 1769
    invoked_function_arn: str = "arn:aws:lambda:us-east-1:123456789012:function:gitmirror-local"
    aws_request_id: str = ""
    timeout_seconds: float = 900.0
    _deadline: float = 0.0

    def __post_init__(self) -> None:
        self.aws_request_id = self.aws_request_id or str(uuid.uuid4())
        self._deadline = time.monotonic() + self.timeout_seconds

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


def http_event(
    method: str,
    url_path: str,
    headers: dict[str, str],
    body: bytes,
    *,
    source_ip: str = "127.0.0.1",
    iam_user_arn: str | None = None,
) -> dict[str, Any]:
    """An API Gateway HTTP API (payload format 2.0) event for a request made now."""
    parts = urlsplit(url_path)
    query: dict[str, str] = {}
    for pair in filter(None, parts.query.split("&")):
        k, _, v = pair.partition("=")
        query[k] = v
    request_id = str(uuid.uuid4())
    return lambda_events.http_api_event(
        method,
        parts.path,
        headers,
        body,
        now=int(time.time()),
        request_id=request_id,
        trace_seed=request_id,
        gateway=lambda_events.Gateway(source_ip=source_ip),
        raw_query=parts.query,
        query=query or None,
        iam_user_arn=iam_user_arn,
    )


def sqs_event(messages: list[dict[str, Any]], queue_arn: str) -> dict[str, Any]:
    """The event Lambda's SQS event source sends for received messages."""
    now_ms = str(int(time.time() * 1000))
    records = []
    for m in messages:
        attrs = m.get("Attributes", {})
        records.append(
            lambda_events.sqs_record(
                message_id=m["MessageId"],
                receipt_handle=m["ReceiptHandle"],
                body=m["Body"],
                attributes={
                    "ApproximateReceiveCount": attrs.get("ApproximateReceiveCount", "1"),
                    "SentTimestamp": attrs.get("SentTimestamp", now_ms),
                    "SenderId": attrs.get("SenderId", "local"),
                    "ApproximateFirstReceiveTimestamp": attrs.get("ApproximateFirstReceiveTimestamp", now_ms),
                    "SequenceNumber": attrs.get("SequenceNumber", "1"),
                    "MessageGroupId": attrs.get("MessageGroupId", ""),
                    "MessageDeduplicationId": attrs.get("MessageDeduplicationId", ""),
                },
                queue_arn=queue_arn,
                md5_of_body=m.get("MD5OfBody", ""),
            )
        )
    return {"Records": records}


def schedule_event() -> dict[str, Any]:
    return lambda_events.schedule_event(
        event_id=str(uuid.uuid4()),
        now=int(time.time()),
        rule_arn="arn:aws:events:us-east-1:123456789012:rule/gitmirror-sync-schedule",
        account_id="123456789012",
        region="us-east-1",
    )


class QueuePoller:
    """Lambda's SQS event source, locally: receive, invoke the worker, delete what succeeded."""

    def __init__(
        self, worker: ModuleType, queue_url: str, *, batch_size: int = 1, timeout_seconds: float = 900.0
    ):
        import boto3

        self.worker = worker
        self.queue_url = queue_url
        self.batch_size = batch_size
        self.timeout_seconds = timeout_seconds
        self.sqs = boto3.client("sqs")
        self.queue_arn = self.sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])[
            "Attributes"
        ]["QueueArn"]
        self.invocations = 0

    def poll_once(self, wait_seconds: int = 0) -> int:
        """One receive + invoke; returns how many messages were handled (successfully or not)."""
        got = self.sqs.receive_message(
            QueueUrl=self.queue_url,
            MaxNumberOfMessages=self.batch_size,
            WaitTimeSeconds=wait_seconds,
            AttributeNames=["All"],
            MessageSystemAttributeNames=["All"],
        ).get("Messages", [])
        if not got:
            return 0
        self.invocations += 1
        response = self.worker.lambda_handler(
            sqs_event(got, self.queue_arn), LambdaContext(timeout_seconds=self.timeout_seconds)
        )
        failed = {f["itemIdentifier"] for f in (response or {}).get("batchItemFailures", [])}
        for m in got:
            if m["MessageId"] not in failed:
                self.sqs.delete_message(QueueUrl=self.queue_url, ReceiptHandle=m["ReceiptHandle"])
        return len(got)

    def drain(self, max_idle_polls: int = 1, max_messages: int = 1000) -> int:
        """Poll until the queue has given nothing `max_idle_polls` times in a row."""
        handled = idle = 0
        while idle < max_idle_polls and handled < max_messages:
            n = self.poll_once()
            handled += n
            idle = 0 if n else idle + 1
        return handled


def invoke_http(module: ModuleType, event: dict[str, Any]) -> tuple[int, dict[str, str], bytes]:
    response = module.lambda_handler(event, LambdaContext(timeout_seconds=30))
    body = response.get("body") or ""
    raw = base64.b64decode(body) if response.get("isBase64Encoded") else body.encode()
    headers = {k: str(v) for k, v in (response.get("headers") or {}).items()}
    return int(response.get("statusCode", 500)), headers, raw


def parse_json(raw: bytes) -> Any:
    return json.loads(raw.decode() or "null")


# As template.yaml's Globals set them (tracing off: no X-Ray daemon outside Lambda).
POWERTOOLS_DEFAULTS = {
    "POWERTOOLS_SERVICE_NAME": "gitmirror",
    "POWERTOOLS_METRICS_NAMESPACE": "gitmirror",
    "POWERTOOLS_TRACE_DISABLED": "true",
}


def invoke(function: str, event: Path | str | dict[str, Any]) -> Any:
    """Run functions/<function>/app.py's handler on an event file (or dict), as `sam local invoke` would.

    Uses the process environment (MIRRORS_TABLE, QUEUE_URL, AWS_ENDPOINT_URL, ...), e.g. the exports
    `gitmirror local up` prints; the Powertools variables template.yaml gives every function are set
    when absent (without a metrics namespace the handlers' metrics flush fails).
    """
    import os

    for key, value in POWERTOOLS_DEFAULTS.items():
        os.environ.setdefault(key, value)

    data = event if isinstance(event, dict) else json.loads(Path(event).read_text(encoding="utf-8"))
    module = load_function(function)
    return module.lambda_handler(data, LambdaContext(function_name=f"gitmirror-{function}"))
