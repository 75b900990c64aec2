"""The worker's failure paths, leases, retries and coalescing, on moto (server mode) and real git servers."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from gitmirror.adapters.aws.mirror_table import MirrorStore
from gitmirror.adapters.aws.queue import SqsJobQueue
from gitmirror.jobs import make_job
from gitmirror.records import SyncJob
from gitmirror.values import Trigger, UpdateStatus, iso, new_run_id, utcnow
from gitmirror_dev.lambdas import LambdaContext, QueuePoller, load_function, sqs_event
from tests.conftest import CANARIES, TARGET_TOKEN, TARGET_USER, AwsEnv, GitServers
from tests.support import gitrepo as g
from tests.support.service import add_mirror, all_items, store

MAIN = "refs/heads/main"


def seed(servers: GitServers) -> None:
    g.commit(servers.source_path, MAIN, {"a": "1"})
    g.tag(servers.source_path, "v1", MAIN, annotated=True)


def queue_job(aws: AwsEnv, mirror_id: str, trigger: Trigger = Trigger.MANUAL) -> SyncJob:
    job = make_job(mirror_id, trigger, None)
    SqsJobQueue(aws.queue_url).enqueue(job)
    return job


def assert_no_canary(aws: AwsEnv) -> None:
    dumped = json.dumps(all_items(aws.env["MIRRORS_TABLE"]) + all_items(aws.env["RUNS_TABLE"]), default=str)
    for canary in (*CANARIES, "canary-wrong-token-42"):
        assert canary not in dumped


def test_wrong_token_fails_without_blind_retries(aws: AwsEnv, git_servers: GitServers) -> None:
    seed(git_servers)
    mirror = add_mirror(
        aws,
        git_servers.source_url,
        git_servers.target_url,
        target_secret_value={"username": TARGET_USER, "token": "canary-wrong-token-42"},
    )
    queue_job(aws, mirror.id)
    poller = QueuePoller(load_function("worker"), aws.queue_url)
    assert poller.drain() == 1
    after = store().get(mirror.id)
    assert after is not None and after.update_status == UpdateStatus.FAILED and after.result == "failed"
    assert after.last_error and "authentication failed" in after.last_error and "401" in after.last_error
    assert aws.queue_messages() == [] and aws.queue_messages(aws.dlq_url) == []  # consumed, not retried
    assert g.refs(git_servers.target_path) == {}
    assert_no_canary(aws)


def test_missing_secret_and_missing_repository(aws: AwsEnv, git_servers: GitServers) -> None:
    seed(git_servers)
    mirror = add_mirror(aws, git_servers.source_url, git_servers.target_url)
    store().update_settings(mirror.id, {"source_secret": "gitmirror/does-not-exist"})
    queue_job(aws, mirror.id)
    poller = QueuePoller(load_function("worker"), aws.queue_url)
    poller.drain()
    after = store().get(mirror.id)
    assert after is not None and after.update_status == UpdateStatus.FAILED
    assert after.last_error and "does not exist" in after.last_error

    other = add_mirror(aws, git_servers.source.repo_url("absent.git"), git_servers.target_url)
    queue_job(aws, other.id)
    poller.drain()
    missing = store().get(other.id)
    assert missing is not None and missing.last_error and "not found" in missing.last_error
    assert aws.queue_messages(aws.dlq_url) == []


def test_transient_failure_is_retried_then_dead_lettered(aws: AwsEnv, git_servers: GitServers) -> None:
    seed(git_servers)
    mirror = add_mirror(aws, "http://127.0.0.1:9/unreachable.git", git_servers.target_url)
    queue_job(aws, mirror.id)
    poller = QueuePoller(load_function("worker"), aws.queue_url)
    receives = poller.drain(max_idle_polls=2)
    assert receives == 3  # three attempts (RETRY_BASE_SECONDS=0 makes the backoff immediate)
    dead = aws.queue_messages(aws.dlq_url)
    assert len(dead) == 1 and json.loads(str(dead[0]["Body"]))["mirror_id"] == mirror.id
    after = store().get(mirror.id)
    assert after is not None and after.update_status == UpdateStatus.FAILED
    assert after.last_error and "cannot connect" in after.last_error
    runs = store().list_runs(mirror.id)
    assert sorted(r.attempt for r in runs) == [1, 2, 3]


def test_transient_then_success_converges(aws: AwsEnv, git_servers: GitServers) -> None:
    seed(git_servers)
    mirror = add_mirror(aws, git_servers.source_url, git_servers.target_url)
    git_servers.target.fail_next(502, count=1, path_contains="git-receive-pack")
    queue_job(aws, mirror.id)
    QueuePoller(load_function("worker"), aws.queue_url).drain(max_idle_polls=2)
    after = store().get(mirror.id)
    assert after is not None and after.update_status == UpdateStatus.FINISHED and after.result == "success"
    assert g.refs(git_servers.target_path) == g.refs(git_servers.source_path)
    assert [r.attempt for r in store().list_runs(mirror.id)] == [2, 1]


def test_rotated_secret_is_picked_up_after_401(aws: AwsEnv, git_servers: GitServers) -> None:
    seed(git_servers)
    mirror = add_mirror(aws, git_servers.source_url, git_servers.target_url)
    worker = load_function("worker")
    queue_job(aws, mirror.id)
    QueuePoller(worker, aws.queue_url).drain()
    assert store().get(mirror.id).result == "success"  # type: ignore[union-attr]
    # rotate: the server now wants a new token, and the secret holds it (the worker's cache does not)
    git_servers.target.password = "canary-DST-rotated-99"
    aws.put_secret(
        str(mirror.target_secret), json.dumps({"username": TARGET_USER, "token": "canary-DST-rotated-99"})
    )
    g.commit(git_servers.source_path, MAIN, {"b": "2"})
    queue_job(aws, mirror.id)
    QueuePoller(worker, aws.queue_url).drain()
    after = store().get(mirror.id)
    assert after is not None and after.result == "success", after.last_error
    assert g.refs(git_servers.target_path) == g.refs(git_servers.source_path)
    git_servers.target.password = TARGET_TOKEN


def test_time_running_out_records_timed_out_and_retries(aws: AwsEnv, git_servers: GitServers) -> None:
    seed(git_servers)
    mirror = add_mirror(aws, git_servers.source_url, git_servers.target_url)
    queue_job(aws, mirror.id)
    poller = QueuePoller(load_function("worker"), aws.queue_url, timeout_seconds=45)
    assert poller.poll_once() == 1
    after = store().get(mirror.id)
    assert after is not None and after.update_status == UpdateStatus.FAILED
    assert after.last_error and "timed out" in after.last_error
    assert len(aws.queue_messages()) == 1  # left for a retry
    assert g.refs(git_servers.target_path) == {}


def test_lease_held_means_retry_later_and_no_overlap(aws: AwsEnv, git_servers: GitServers) -> None:
    seed(git_servers)
    mirror = add_mirror(aws, git_servers.source_url, git_servers.target_url)
    holder = new_run_id()
    assert store().acquire_lease(mirror.id, holder, 600)
    assert not store().acquire_lease(mirror.id, new_run_id(), 600)  # one run at a time
    queue_job(aws, mirror.id)
    poller = QueuePoller(load_function("worker"), aws.queue_url)
    assert poller.poll_once() == 1
    attrs = boto3.client("sqs").get_queue_attributes(QueueUrl=aws.queue_url, AttributeNames=["All"])[
        "Attributes"
    ]
    waiting = int(attrs["ApproximateNumberOfMessages"]) + int(attrs["ApproximateNumberOfMessagesNotVisible"])
    assert waiting == 1  # not consumed: delivered again after a backoff
    assert store().get(mirror.id).update_status == UpdateStatus.STARTED  # type: ignore[union-attr]
    assert g.refs(git_servers.target_path) == {}
    # a run stuck for over an hour loses the lease
    later = utcnow() + dt.timedelta(hours=2)
    assert store().acquire_lease(mirror.id, new_run_id(), 600, now=later)


def test_older_run_cannot_overwrite_newer_status(aws: AwsEnv, git_servers: GitServers) -> None:
    mirror = add_mirror(aws, git_servers.source_url, git_servers.target_url)
    s = store()
    old_run, new_run = new_run_id(), new_run_id()
    past = utcnow() - dt.timedelta(hours=3)
    assert s.acquire_lease(mirror.id, old_run, 60, now=past)  # expired long ago
    assert s.acquire_lease(mirror.id, new_run, 600)
    assert s.finish(
        mirror.id, new_run, {"update_status": "finished", "result": "success", "last_error": None}
    )
    assert not s.finish(
        mirror.id, old_run, {"update_status": "failed", "result": "failed", "last_error": "old"}
    )
    after = s.get(mirror.id)
    assert after is not None and after.update_status == UpdateStatus.FINISHED and after.last_error is None


def test_coalescing_drops_jobs_covered_by_a_later_run(aws: AwsEnv, git_servers: GitServers) -> None:
    seed(git_servers)
    mirror = add_mirror(aws, git_servers.source_url, git_servers.target_url)
    stale_job = SyncJob(
        mirror_id=mirror.id,
        trigger=Trigger.WEBHOOK,
        delivery_id="old-delivery",
        enqueued_at=iso(utcnow() - dt.timedelta(minutes=5)),
    )
    queue_job(aws, mirror.id)
    worker = load_function("worker")
    QueuePoller(worker, aws.queue_url).drain()
    assert len(store().list_runs(mirror.id)) == 1
    sqs = boto3.client("sqs")
    sqs.send_message(
        QueueUrl=aws.queue_url,
        MessageBody=stale_job.model_dump_json(),
        MessageGroupId=mirror.id,
        MessageDeduplicationId="stale-1",
    )
    QueuePoller(worker, aws.queue_url).drain()
    assert len(store().list_runs(mirror.id)) == 1  # dropped as already covered: no second run
    assert aws.queue_messages() == []


def test_throttled_dynamodb_is_retried(
    aws: AwsEnv, git_servers: GitServers, monkeypatch: pytest.MonkeyPatch
) -> None:
    seed(git_servers)
    mirror = add_mirror(aws, git_servers.source_url, git_servers.target_url)
    calls = {"n": 0}
    real = MirrorStore._call

    def throttle_first(method: Any, **kwargs: Any) -> Any:
        calls["n"] += 1
        if calls["n"] == 1:  # DynamoDB answers the first call with throttling

            def throttled(**_kw: Any) -> Any:
                raise ClientError(
                    {"Error": {"Code": "ProvisionedThroughputExceededException", "Message": "slow down"}},
                    "GetItem",
                )

            return real(throttled, **kwargs)
        return real(method, **kwargs)

    monkeypatch.setattr(MirrorStore, "_call", staticmethod(lambda method, **kw: throttle_first(method, **kw)))
    worker = load_function("worker")
    job = make_job(mirror.id, Trigger.MANUAL, None)
    SqsJobQueue(aws.queue_url).enqueue(job)
    sqs = boto3.client("sqs")
    got = sqs.receive_message(QueueUrl=aws.queue_url, AttributeNames=["All"], MaxNumberOfMessages=1)[
        "Messages"
    ]
    arn = sqs.get_queue_attributes(QueueUrl=aws.queue_url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    response = worker.lambda_handler(sqs_event(got, arn), LambdaContext())
    assert response["batchItemFailures"] == [{"itemIdentifier": got[0]["MessageId"]}]
    monkeypatch.setattr(MirrorStore, "_call", staticmethod(real))
    QueuePoller(worker, aws.queue_url).drain(max_idle_polls=2)
    after = store().get(mirror.id)
    assert after is not None and after.result == "success"


def test_malformed_job_is_dropped_not_blocking(aws: AwsEnv) -> None:
    sqs = boto3.client("sqs")
    sqs.send_message(
        QueueUrl=aws.queue_url, MessageBody="{not json", MessageGroupId="x", MessageDeduplicationId="m1"
    )
    assert QueuePoller(load_function("worker"), aws.queue_url).drain() == 1
    assert aws.queue_messages() == [] and aws.queue_messages(aws.dlq_url) == []


def test_malformed_secret_fails_with_a_clear_error(aws: AwsEnv, git_servers: GitServers) -> None:
    seed(git_servers)
    mirror = add_mirror(aws, git_servers.source_url, git_servers.target_url)
    aws.put_secret(str(mirror.target_secret), "canary-not-json-token")
    queue_job(aws, mirror.id)
    QueuePoller(load_function("worker"), aws.queue_url).drain()
    after = store().get(mirror.id)
    assert after is not None and after.update_status == UpdateStatus.FAILED
    assert after.last_error and "is not JSON" in after.last_error
    assert "canary-not-json-token" not in json.dumps(all_items(aws.env["MIRRORS_TABLE"]), default=str)
    second = f"{mirror.target_secret}-2"
    aws.put_secret(second, json.dumps({"username": TARGET_USER}))  # no token
    store().update_settings(mirror.id, {"target_secret": second})
    queue_job(aws, mirror.id)
    QueuePoller(load_function("worker"), aws.queue_url).drain()
    again = store().get(mirror.id)
    assert again is not None and again.last_error and 'non-empty "token"' in again.last_error
    assert aws.queue_messages(aws.dlq_url) == []  # a human must fix it: not retried blindly
