"""The run's deadline bounds every network read: a server dripping one byte at a time cannot keep a
run (CLI or worker) past it. The deadline is a few seconds here; the drip would last minutes."""

from __future__ import annotations

import time

import pytest

from gitmirror.adapters.aws.queue import SqsJobQueue
from gitmirror.jobs import make_job
from gitmirror.mirror.credentials import StaticCredentials
from gitmirror.mirror.engine import sync_mirror
from gitmirror.mirror.transport import Remote
from gitmirror.mirror.urls import parse_remote
from gitmirror.run.mirror_run import SAFETY_SECONDS
from gitmirror.values import RunStatus, Trigger, UpdateStatus, utcnow
from gitmirror_dev.lambdas import QueuePoller, load_function
from tests.conftest import SOURCE_TOKEN, SOURCE_USER, TARGET_TOKEN, TARGET_USER, AwsEnv, GitServers
from tests.support import gitrepo as g
from tests.support.hostile import HostileGitServer, drip, ls_refs, v2_advertisement
from tests.support.service import add_mirror, store

DEADLINE = 3.0
SLOW = 1.0  # seconds between two bytes: the advertisement alone would take minutes
OID = b"1" * 40


def dripping(where: str) -> HostileGitServer:
    advertisement, refs = v2_advertisement(), ls_refs((OID, b"refs/heads/main"))
    if where == "advertisement":
        return HostileGitServer(drip(advertisement, SLOW), ls_refs=refs)
    return HostileGitServer(advertisement, ls_refs=drip(refs, SLOW))


@pytest.mark.parametrize(("side", "where"), [("source", "advertisement"), ("target", "ls-refs")])
def test_a_dripping_server_cannot_keep_a_run_past_its_deadline(
    git_servers: GitServers, side: str, where: str
) -> None:
    g.commit(git_servers.source_path, "refs/heads/main", {"a": "1"})
    with dripping(where) as server:
        source_url = server.url if side == "source" else git_servers.source_url
        target_url = server.url if side == "target" else git_servers.target_url
        started = time.monotonic()
        result = sync_mirror(
            Remote(parse_remote(source_url), StaticCredentials(SOURCE_USER, SOURCE_TOKEN)),
            Remote(parse_remote(target_url), StaticCredentials(TARGET_USER, TARGET_TOKEN)),
            remaining_seconds=lambda: DEADLINE - (time.monotonic() - started),
        )
        elapsed = time.monotonic() - started
    assert result.status == RunStatus.FAILED and result.retryable
    assert result.error and result.error.startswith("timed out"), result.error
    assert DEADLINE - 0.5 <= elapsed < DEADLINE + 5, elapsed
    assert g.refs(git_servers.target_path) == {}


def test_the_worker_writes_the_timeout_and_releases_the_lease(aws: AwsEnv, git_servers: GitServers) -> None:
    with dripping("advertisement") as server:
        mirror = add_mirror(aws, server.url, git_servers.target_url)
        SqsJobQueue(aws.queue_url).enqueue(make_job(mirror.id, Trigger.MANUAL, None))
        # the function is given what leaves the run DEADLINE seconds once the safety margin is kept
        poller = QueuePoller(
            load_function("worker"), aws.queue_url, timeout_seconds=SAFETY_SECONDS + DEADLINE
        )
        started = time.monotonic()
        assert poller.poll_once() == 1
        elapsed = time.monotonic() - started
    assert elapsed < DEADLINE + 5, elapsed  # well before Lambda would have killed the function
    after = store().get(mirror.id)
    assert after is not None and after.update_status == UpdateStatus.FAILED
    assert after.last_error and after.last_error.startswith("timed out"), after.last_error
    assert store().acquire_lease(mirror.id, "next-run", 60, utcnow())  # the lease was released
    counts = poller.sqs.get_queue_attributes(
        QueueUrl=aws.queue_url,
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    assert sum(int(n) for n in counts.values()) == 1  # kept for a retry, not deleted
