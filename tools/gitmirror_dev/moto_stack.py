"""AWS resources for the local stack and the tests: a moto server and the tables/queues/secrets."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from gitmirror.settings import CliSettings

REGION = "us-east-1"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def moto_server(port: int | None = None) -> Iterator[str]:
    """moto in server mode on loopback (real HTTP); yields the endpoint URL."""
    import logging

    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    port = port or free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


def local_environment(endpoint: str, prefix: str = "gitmirror") -> dict[str, str]:
    """Environment variables that point the functions and the CLI at a local endpoint."""
    return {
        "AWS_ENDPOINT_URL": endpoint,
        "AWS_DEFAULT_REGION": REGION,
        "AWS_REGION": REGION,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "MIRRORS_TABLE": f"{prefix}-mirrors",
        "RUNS_TABLE": f"{prefix}-runs",
        "IDEMPOTENCY_TABLE": f"{prefix}-idempotency",
        "QUEUE_URL": f"{endpoint}/123456789012/{prefix}-sync.fifo",
        "SECRETS_PREFIX": "gitmirror/",
        "ALLOW_INSECURE_HTTP": "true",
        "ALLOW_LOOPBACK": "true",
        "POWERTOOLS_SERVICE_NAME": "gitmirror",
        "POWERTOOLS_METRICS_NAMESPACE": "gitmirror",
        "POWERTOOLS_TRACE_DISABLED": "true",
        "POWERTOOLS_METRICS_DISABLED": os.environ.get("POWERTOOLS_METRICS_DISABLED", "true"),
        "POWERTOOLS_LOG_LEVEL": os.environ.get("POWERTOOLS_LOG_LEVEL", "WARNING"),
    }


def create_resources(settings: CliSettings, session: Any = None) -> dict[str, str]:
    """Create the tables (with the GSI and TTLs), the FIFO queue and its DLQ, as template.yaml does."""
    import boto3

    session = session or boto3.session.Session()
    ddb = session.client("dynamodb")
    ddb.create_table(
        TableName=settings.mirrors_table,
        BillingMode="PAY_PER_REQUEST",
        AttributeDefinitions=[
            {"AttributeName": "id", "AttributeType": "S"},
            {"AttributeName": "source_key", "AttributeType": "S"},
        ],
        KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
        GlobalSecondaryIndexes=[
            {
                "IndexName": "source-index",
                "KeySchema": [{"AttributeName": "source_key", "KeyType": "HASH"}],
                "Projection": {"ProjectionType": "ALL"},
            }
        ],
    )
    ddb.create_table(
        TableName=settings.runs_table,
        BillingMode="PAY_PER_REQUEST",
        AttributeDefinitions=[
            {"AttributeName": "mirror_id", "AttributeType": "S"},
            {"AttributeName": "run_id", "AttributeType": "S"},
        ],
        KeySchema=[
            {"AttributeName": "mirror_id", "KeyType": "HASH"},
            {"AttributeName": "run_id", "KeyType": "RANGE"},
        ],
    )
    ddb.update_time_to_live(
        TableName=settings.runs_table,
        TimeToLiveSpecification={"Enabled": True, "AttributeName": "expires_at"},
    )
    ddb.create_table(
        TableName=settings.idempotency_table,
        BillingMode="PAY_PER_REQUEST",
        AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
        KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
    )
    sqs = session.client("sqs")
    queue_name = settings.queue_url.rsplit("/", 1)[-1]
    dlq = sqs.create_queue(
        QueueName=queue_name.replace(".fifo", "-dlq.fifo"),
        Attributes={"FifoQueue": "true", "ContentBasedDeduplication": "false"},
    )["QueueUrl"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    import json

    queue = sqs.create_queue(
        QueueName=queue_name,
        Attributes={
            "FifoQueue": "true",
            "ContentBasedDeduplication": "false",
            "VisibilityTimeout": "5400",
            "RedrivePolicy": json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": "3"}),
        },
    )["QueueUrl"]
    return {"queue_url": queue, "dlq_url": dlq}


def put_secret(name: str, value: str, session: Any = None) -> None:
    import boto3

    client = (session or boto3.session.Session()).client("secretsmanager")
    try:
        client.create_secret(Name=name, SecretString=value)
    except client.exceptions.ResourceExistsException:
        client.put_secret_value(SecretId=name, SecretString=value)
