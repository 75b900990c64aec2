"""Read EventBridge events back on moto: a rule on the default bus with an SQS queue as its target."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import boto3


@dataclass
class EventTap:
    queue_url: str

    def events(self, wait_seconds: int = 0) -> list[dict[str, Any]]:
        """Every event delivered so far (consumed), as EventBridge delivers them to SQS."""
        sqs = boto3.client("sqs")
        out: list[dict[str, Any]] = []
        while True:
            got = sqs.receive_message(
                QueueUrl=self.queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=wait_seconds
            ).get("Messages", [])
            if not got:
                return out
            for message in got:
                out.append(json.loads(message["Body"]))
                sqs.delete_message(QueueUrl=self.queue_url, ReceiptHandle=message["ReceiptHandle"])
            wait_seconds = 0


@contextmanager
def event_tap(mirror_ids: list[str]) -> Iterator[EventTap]:
    """A rule matching gitmirror's events for these mirrors (the moto server is shared by the tests)."""
    events, sqs = boto3.client("events"), boto3.client("sqs")
    name = f"tap-{uuid.uuid4().hex[:10]}"
    queue_url = sqs.create_queue(QueueName=name)["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    pattern = {"source": ["gitmirror"], "detail": {"mirror_id": mirror_ids}}
    events.put_rule(Name=name, EventPattern=json.dumps(pattern), State="ENABLED")
    events.put_targets(Rule=name, Targets=[{"Id": "queue", "Arn": arn}])
    try:
        yield EventTap(queue_url)
    finally:
        events.remove_targets(Rule=name, Ids=["queue"])
        events.delete_rule(Name=name)
        sqs.delete_queue(QueueUrl=queue_url)
