"""`gitmirror local init` creates what template.yaml would at the endpoint named by the environment."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import boto3

from gitmirror_dev.moto_stack import local_environment

GITMIRROR = str(Path(sys.executable).with_name("gitmirror"))


def test_local_init_is_idempotent_and_usable(moto_endpoint: str) -> None:
    env = {**os.environ, **local_environment(moto_endpoint, f"init{uuid.uuid4().hex[:8]}")}
    first = subprocess.run([GITMIRROR, "local", "init"], env=env, capture_output=True, text=True, timeout=60)
    assert first.returncode == 0, first.stderr
    created = json.loads(first.stdout)
    second = subprocess.run([GITMIRROR, "local", "init"], env=env, capture_output=True, text=True, timeout=60)
    assert second.returncode == 0 and "already exist" in second.stdout
    keys = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing", "region_name": "us-east-1"}
    ddb = boto3.client("dynamodb", endpoint_url=moto_endpoint, **keys)
    table = ddb.describe_table(TableName=created["mirrors_table"])["Table"]
    assert [i["IndexName"] for i in table["GlobalSecondaryIndexes"]] == ["source-index"]
    sqs = boto3.client("sqs", endpoint_url=moto_endpoint, **keys)
    attrs = sqs.get_queue_attributes(QueueUrl=created["queue_url"], AttributeNames=["All"])["Attributes"]
    assert attrs["FifoQueue"] == "true" and json.loads(attrs["RedrivePolicy"])["maxReceiveCount"] in (3, "3")
    status = subprocess.run(
        [GITMIRROR, "status", "--json"], env=env, capture_output=True, text=True, timeout=60
    )
    assert status.returncode == 0 and json.loads(status.stdout) == {"mirrors": []}
