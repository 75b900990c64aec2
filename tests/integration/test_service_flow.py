"""Webhook -> queue -> worker -> target, on moto (server mode) and real git servers."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from gitmirror.values import UpdateStatus
from gitmirror_dev.samples import distinct_github_push
from tests.conftest import CANARIES, AwsEnv, GitServers
from tests.support import gitrepo as g
from tests.support.service import Functions, add_mirror, all_items, github_push, store

MAIN = "refs/heads/main"


def seed(servers: GitServers) -> None:
    src = servers.source_path
    base = g.commit(src, MAIN, {"README": "one"})
    g.commit(src, MAIN, {"README": "two"})
    g.commit(src, "refs/heads/feature", {"f": "x"}, parents=[base])
    g.tag(src, "v1", base, annotated=True)


def test_github_push_mirrors_and_records_status(
    aws: AwsEnv,
    git_servers: GitServers,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
    isolated_tmpdir: Path,
) -> None:
    # our own loggers at DEBUG; third-party (botocore echoes request bodies at DEBUG) at INFO
    caplog.set_level(logging.INFO)
    caplog.set_level(logging.DEBUG, logger="gitmirror")
    seed(git_servers)
    mirror = add_mirror(aws, git_servers.source_url, git_servers.target_url)
    fns = Functions()
    headers, body = github_push(delivery="72d3162e-cc78-11e3-81ab-4c9367dc0958")
    status, reply = fns.post("github", headers, body)
    assert status == 202, reply
    assert reply == {"delivery": "72d3162e-cc78-11e3-81ab-4c9367dc0958", "mirrors": [mirror.id], "queued": 1}
    messages = aws.queue_messages()
    assert len(messages) == 1
    assert messages[0]["Attributes"]["MessageGroupId"] == mirror.id  # type: ignore[index]
    job = json.loads(str(messages[0]["Body"]))
    assert job["mirror_id"] == mirror.id and job["delivery_id"] == headers["X-GitHub-Delivery"]
    assert job["trigger"] == "webhook"
    assert store().get(mirror.id).update_status == UpdateStatus.SCHEDULED  # type: ignore[union-attr]

    # redelivery of the same delivery id: 200 duplicate, nothing more queued
    status, reply = fns.post("github", headers, body)
    assert status == 200 and reply["duplicate"] is True
    assert len(aws.queue_messages()) == 1

    assert fns.poller(aws).drain() == 1
    assert {k: v for k, v in g.refs(git_servers.target_path).items()} == g.refs(git_servers.source_path)
    after = store().get(mirror.id)
    assert after is not None
    assert after.update_status == UpdateStatus.FINISHED
    assert after.result == "success"
    assert after.last_error is None
    assert after.last_successful_update_at and after.last_update_at and after.last_update_started_at
    assert after.refs_created == 3
    runs = store().list_runs(mirror.id)
    assert len(runs) == 1 and runs[0].delivery_id == headers["X-GitHub-Delivery"]
    assert runs[0].bytes_sent > 0 and runs[0].expires_at
    assert aws.queue_messages() == []
    assert list(isolated_tmpdir.iterdir()) == []  # /tmp is clean after the run

    # no canary anywhere: DynamoDB items, logs, captured output
    dumped = json.dumps(all_items(aws.env["MIRRORS_TABLE"]) + all_items(aws.env["RUNS_TABLE"]), default=str)
    out = capsys.readouterr()
    for canary in CANARIES:
        assert canary not in dumped
        assert canary not in caplog.text
        assert canary not in out.out + out.err


def test_keep_divergent_marks_failed_partial_with_gitlab_message(
    aws: AwsEnv, git_servers: GitServers
) -> None:
    seed(git_servers)
    mirror = add_mirror(aws, git_servers.source_url, git_servers.target_url, keep_divergent_refs=True)
    fns = Functions()
    fns.post("github", *github_push())
    fns.poller(aws).drain()
    g.commit(git_servers.target_path, "refs/heads/feature", {"downstream": "edit"})
    g.commit(git_servers.source_path, "refs/heads/feature", {"upstream": "edit"})
    g.commit(git_servers.source_path, MAIN, {"more": "work"})
    # another push: another body (a body seen before is a replay)
    status, _ = fns.post("github", *github_push(distinct_github_push("second push")))
    assert status == 202
    fns.poller(aws).drain()
    after = store().get(mirror.id)
    assert after is not None
    assert after.update_status == UpdateStatus.FAILED
    assert after.result == "partial"
    assert after.divergent_refs == ["refs/heads/feature"]
    assert after.last_error == (
        "Some refs have diverged and have not been updated on the remote:\n\nrefs/heads/feature"
    )
    assert g.rev_parse(git_servers.target_path, MAIN) == g.rev_parse(git_servers.source_path, MAIN)
