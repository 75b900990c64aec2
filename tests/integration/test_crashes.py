"""No job lost, no status stuck: a worker killed mid-push, DynamoDB unreachable at status-write time."""

from __future__ import annotations

import json
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest

from gitmirror.adapters.aws.queue import SqsJobQueue
from gitmirror.jobs import make_job
from gitmirror.mirror.scratch import PREFIX
from gitmirror.records import DEAD_RUN
from gitmirror.values import Trigger, UpdateStatus
from gitmirror_dev.lambdas import QueuePoller, http_event, invoke_http, load_function, parse_json
from tests.conftest import AwsEnv, GitServers
from tests.support import gitrepo as g
from tests.support.service import add_mirror, store

MAIN = "refs/heads/main"
GITMIRROR = str(Path(sys.executable).with_name("gitmirror"))
# The killed worker's Lambda timeout: its lease lasts that long; the run stops 30 + 20 s before it
# (the recording and engine margins), so this leaves it ~10 s to reach the push.
KILLED_TIMEOUT_SECONDS = 60
_ONE_JOB = """
import sys
import boto3
from gitmirror_dev.lambdas import LambdaContext, load_function, sqs_event

worker = load_function("worker")
sqs = boto3.client("sqs")
url, timeout = sys.argv[1], float(sys.argv[2])
arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
got = sqs.receive_message(
    QueueUrl=url, MaxNumberOfMessages=1, WaitTimeSeconds=10, AttributeNames=["All"],
    MessageSystemAttributeNames=["All"],
)["Messages"]
print(got[0]["ReceiptHandle"], flush=True)
worker.lambda_handler(sqs_event(got, arn), LambdaContext(timeout_seconds=timeout))
"""


def _wait_for(condition: object, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():  # type: ignore[operator]
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def test_worker_killed_mid_push_is_recorded_failed_and_a_new_worker_converges(
    aws: AwsEnv, git_servers: GitServers, isolated_tmpdir: Path
) -> None:
    g.commit(git_servers.source_path, MAIN, {"a": "1"})
    g.tag(git_servers.source_path, "v1", MAIN, annotated=True)
    mirror = add_mirror(aws, git_servers.source_url, git_servers.target_url)
    SqsJobQueue(aws.queue_url).enqueue(make_job(mirror.id, Trigger.WEBHOOK, "delivery-1"))
    git_servers.target.stall_seconds = 120.0
    git_servers.target.stall_path_contains = "/git-receive-pack"  # the push, not its ref advertisement

    worker = subprocess.Popen(
        [sys.executable, "-c", _ONE_JOB, aws.queue_url, str(KILLED_TIMEOUT_SECONDS)],
        env=dict(os.environ),
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert worker.stdout is not None
        receipt = worker.stdout.readline().strip()
        started = time.monotonic()
        _wait_for(
            lambda: any(r.method == "POST" and "receive-pack" in r.path for r in git_servers.target.requests),
            60,
            "the push",
        )
        assert [p.name for p in isolated_tmpdir.iterdir() if p.name.startswith(PREFIX)]  # its scratch
        os.kill(worker.pid, signal.SIGKILL)  # as Lambda's hard timeout or the OOM killer would
        worker.wait(timeout=10)
    finally:
        if worker.poll() is None:
            worker.kill()
    git_servers.target.stall_seconds = 0.0

    # while its lease lives the dead run is `started`; once it expired: failed, everywhere
    live = store().get(mirror.id)
    assert live is not None and live.update_status == UpdateStatus.STARTED and live.lease_live()
    time.sleep(max(0.0, KILLED_TIMEOUT_SECONDS + 1 - (time.monotonic() - started)))
    api = load_function("api")
    status, _h, raw = invoke_http(api, http_event("GET", f"/mirrors/{mirror.id}", {}, b""))
    shown = parse_json(raw)
    assert status == 200 and shown["update_status"] == "failed" and shown["last_error"] == DEAD_RUN
    cli = subprocess.run(
        [GITMIRROR, "status", mirror.id, "--json"],
        env=dict(os.environ),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert cli.returncode == 0, cli.stderr
    assert json.loads(cli.stdout)["update_status"] == "failed" and DEAD_RUN in cli.stdout

    # SQS delivers the job again after its visibility timeout (here: now); a new worker runs it
    boto3.client("sqs").change_message_visibility(
        QueueUrl=aws.queue_url, ReceiptHandle=receipt, VisibilityTimeout=0
    )
    assert QueuePoller(load_function("worker"), aws.queue_url).drain() == 1
    after = store().get(mirror.id)
    assert after is not None and after.update_status == UpdateStatus.FINISHED and after.last_error is None
    assert g.refs(git_servers.target_path) == g.refs(git_servers.source_path)
    assert aws.queue_messages() == [] and aws.queue_messages(aws.dlq_url) == []
    assert list(isolated_tmpdir.iterdir()) == []  # the killed run's scratch went at the next invocation


class _Proxy:
    """A loopback TCP proxy in front of moto that can be taken down (connections refused and cut)."""

    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.port = 0
        self._listener: socket.socket | None = None
        self._conns: list[socket.socket] = []
        self._lock = threading.Lock()
        self.up()

    def up(self) -> None:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        self.port = listener.getsockname()[1]
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def down(self) -> None:
        with self._lock:
            if self._listener is not None:
                try:  # wakes the accepting thread: a bare close would let it take one more connection
                    self._listener.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                self._listener.close()
                self._listener = None
            for conn in self._conns:
                try:
                    conn.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                conn.close()
            self._conns.clear()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self.upstream_port))
            with self._lock:
                self._conns += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.close()
                except OSError:
                    pass


@pytest.fixture
def dynamodb_proxy(aws: AwsEnv, monkeypatch: pytest.MonkeyPatch) -> Iterator[_Proxy]:
    proxy = _Proxy(int(aws.endpoint.rsplit(":", 1)[1]))
    monkeypatch.setenv("AWS_ENDPOINT_URL_DYNAMODB", f"http://127.0.0.1:{proxy.port}")
    try:
        yield proxy
    finally:
        proxy.down()


def test_dynamodb_unreachable_at_status_write_time_is_retried_with_backoff(
    aws: AwsEnv, git_servers: GitServers, dynamodb_proxy: _Proxy, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="gitmirror")
    g.commit(git_servers.source_path, MAIN, {"a": "1"})
    mirror = add_mirror(aws, git_servers.source_url, git_servers.target_url)
    SqsJobQueue(aws.queue_url).enqueue(make_job(mirror.id, Trigger.MANUAL, None))
    # the push is the run's last step before its status write: DynamoDB goes away during it
    git_servers.target.stall_seconds = 1.0
    git_servers.target.stall_path_contains = "/git-receive-pack"

    def outage() -> None:
        _wait_for(
            lambda: any(r.method == "POST" and "receive-pack" in r.path for r in git_servers.target.requests),
            60,
            "the push",
        )
        dynamodb_proxy.down()
        time.sleep(4.0)
        dynamodb_proxy.up()

    thread = threading.Thread(target=outage, daemon=True)
    thread.start()
    assert QueuePoller(load_function("worker"), aws.queue_url).drain() == 1
    thread.join(timeout=30)

    after = store().get(mirror.id)
    assert after is not None and after.update_status == UpdateStatus.FINISHED and after.result == "success"
    assert after.lease_owner is None  # released
    [run] = store().list_runs(mirror.id)
    assert run.run_id == after.last_run_id
    assert g.refs(git_servers.target_path) == g.refs(git_servers.source_path)
    retries = [r.getMessage() for r in caplog.records if "status write failed" in r.getMessage()]
    assert retries and "DynamoDB is unreachable: EndpointConnectionError" in retries[0]
    assert aws.queue_messages() == [] and aws.queue_messages(aws.dlq_url) == []
