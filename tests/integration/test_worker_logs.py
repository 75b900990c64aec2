"""The worker's JSON log lines, as an operator follows a run: every line of a run names the mirror, the
run and the delivery; the last one carries the run's result in numbers; a deletion mid-run is said."""

from __future__ import annotations

import io
import json
import threading
import time
from collections.abc import Iterator
from types import ModuleType
from typing import Any

import pytest

from gitmirror.values import UpdateStatus
from gitmirror_dev.lambdas import QueuePoller, load_function
from tests.conftest import CANARIES, AwsEnv, GitServers
from tests.support import gitrepo as g
from tests.support.service import Functions, add_mirror, github_push, store

MAIN = "refs/heads/main"
RUN_KEYS = ("mirror_id", "run_id", "delivery_id")
LAST_LINE_KEYS = (
    "status",
    "result",
    "duration_ms",
    "transfer",
    "bytes_received",
    "bytes_sent",
    "refs_created",
    "refs_updated",
    "refs_deleted",
    "refs_rejected",
    "refs_skipped",
)


_restore: list[tuple[Any, Any, Any]] = []


def capture_logs(module: ModuleType) -> io.StringIO:
    """The function's Powertools handler writes INFO and up into a buffer instead of stdout.

    The functions' loggers share one `logging` logger per service, configured by the first module
    loaded in this process: its level and stream are set here, and restored after the test."""
    buffer = io.StringIO()
    handler = module.logger.registered_handler
    _restore.append((module.logger, module.logger.log_level, handler.setStream(buffer)))
    module.logger.setLevel("INFO")
    return buffer


@pytest.fixture(autouse=True)
def restore_logging() -> Iterator[None]:
    yield
    while _restore:
        logger, level, stream = _restore.pop()
        logger.setLevel(level)
        if stream is not None:
            logger.registered_handler.setStream(stream)


def lines(buffer: io.StringIO) -> list[dict[str, Any]]:
    text = buffer.getvalue()
    for canary in CANARIES:
        assert canary not in text
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def test_every_line_of_a_run_names_mirror_run_and_delivery(aws: AwsEnv, git_servers: GitServers) -> None:
    g.commit(git_servers.source_path, MAIN, {"a": "1"})
    g.tag(git_servers.source_path, "v1", MAIN, annotated=True)
    mirror = add_mirror(aws, git_servers.source_url, git_servers.target_url)
    functions = Functions()
    webhook_logs = capture_logs(functions.webhook)
    headers, body = github_push(delivery="delivery-for-logs-1")
    assert functions.post("github", headers, body)[0] == 202
    worker_logs = capture_logs(functions.worker)
    assert functions.poller(aws).drain() == 1

    received = [line for line in lines(webhook_logs) if line["message"] == "webhook handled"]
    assert received and received[-1]["delivery_id"] == "delivery-for-logs-1"
    assert received[-1]["mirrors"] == [mirror.id]

    logged = lines(worker_logs)
    assert [line["message"] for line in logged] == ["run started", "job handled"]
    run = store().list_runs(mirror.id)[0]
    for line in logged:
        assert {k: line[k] for k in RUN_KEYS} == {
            "mirror_id": mirror.id,
            "run_id": run.run_id,
            "delivery_id": "delivery-for-logs-1",
        }
    last = logged[-1]
    assert {k: last[k] for k in LAST_LINE_KEYS} == {
        "status": "finished",
        "result": "success",
        "duration_ms": run.duration_ms,
        "transfer": run.transfer,
        "bytes_received": run.bytes_received,
        "bytes_sent": run.bytes_sent,
        "refs_created": 2,
        "refs_updated": 0,
        "refs_deleted": 0,
        "refs_rejected": 0,
        "refs_skipped": 0,
    }
    assert last["bytes_received"] > 0 and last["bytes_sent"] > 0 and last["action"] == "ran"


def test_a_failed_manual_run_logs_its_error_and_an_empty_delivery(
    aws: AwsEnv, git_servers: GitServers
) -> None:
    mirror = add_mirror(aws, git_servers.source.repo_url("absent.git"), git_servers.target_url)
    worker = load_function("worker")
    buffer = capture_logs(worker)
    from tests.integration.test_worker import queue_job

    queue_job(aws, mirror.id)
    QueuePoller(worker, aws.queue_url).drain()
    logged = lines(buffer)
    # a new mirror's first run failing is a change of state: announced before the run's last line
    assert [line["message"] for line in logged] == ["run started", "state change announced", "job handled"]
    assert all(line["mirror_id"] == mirror.id and line["delivery_id"] == "" for line in logged)
    assert all(line["run_id"] == logged[0]["run_id"] != "" for line in logged)
    last = logged[-1]
    assert last["status"] == "failed" and last["result"] == "failed"
    assert "not found" in last["error"] and last["refs_created"] == 0


def test_a_mirror_deleted_during_its_run_is_reported(aws: AwsEnv, git_servers: GitServers) -> None:
    g.commit(git_servers.source_path, MAIN, {"a": "1"})
    mirror = add_mirror(aws, git_servers.source_url, git_servers.target_url)
    # the push waits long enough for the mirror to be deleted while the run holds its lease
    git_servers.target.stall_seconds = 1.5
    git_servers.target.stall_path_contains = "/git-receive-pack"

    def delete_when_started() -> None:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            current = store().get(mirror.id)
            if current is not None and current.update_status == UpdateStatus.STARTED:
                store().delete(mirror.id)
                return
            time.sleep(0.05)

    deleter = threading.Thread(target=delete_when_started)
    deleter.start()
    worker = load_function("worker")
    buffer = capture_logs(worker)
    from tests.integration.test_worker import queue_job

    queue_job(aws, mirror.id)
    QueuePoller(worker, aws.queue_url).drain()
    deleter.join()

    assert store().get(mirror.id) is None  # not re-created by the run's status write
    last = lines(buffer)[-1]
    assert last["message"] == "job handled" and last["mirror_id"] == mirror.id
    assert last["mirror_deleted"] is True
    assert last["reason"] == "the mirror was deleted during the run; no status was written"
    assert aws.queue_messages() == []  # not retried: there is nothing left to mirror
