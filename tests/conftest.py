"""Shared fixtures: real git smart-HTTP servers on loopback with Basic auth, canary credentials."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from gitmirror_dev.gitserver import GitHTTPServer
from gitmirror_dev.samples import webhook_fixtures_dir

REPO_ROOT = Path(__file__).resolve().parents[1]
# Real webhook deliveries and signature vectors, vendored (sources and licences: tests/fixtures/SOURCES.md).
WEBHOOKS = webhook_fixtures_dir()
# Canary credentials: any test may assert they never show up in output, logs or stored state.
SOURCE_USER, SOURCE_TOKEN = "src-user", "canary-SRC-7f3a9c1e5b"
TARGET_USER, TARGET_TOKEN = "dst-user", "canary-DST-2b8d4f6a0c"
CANARIES = (SOURCE_TOKEN, TARGET_TOKEN)


@dataclass
class GitServers:
    source: GitHTTPServer
    target: GitHTTPServer

    @property
    def source_path(self) -> Path:
        return self.source.repo_path("src.git")

    @property
    def target_path(self) -> Path:
        return self.target.repo_path("dst.git")

    @property
    def source_url(self) -> str:
        return self.source.repo_url("src.git")

    @property
    def target_url(self) -> str:
        return self.target.repo_url("dst.git")


@pytest.fixture
def git_servers(tmp_path: Path) -> Iterator[GitServers]:
    """A source server holding an empty `src.git` and a target server holding an empty `dst.git`."""
    with (
        GitHTTPServer(tmp_path / "srv-src", SOURCE_USER, SOURCE_TOKEN) as source,
        GitHTTPServer(tmp_path / "srv-dst", TARGET_USER, TARGET_TOKEN) as target,
    ):
        source.create_bare("src.git")
        target.create_bare("dst.git")
        yield GitServers(source, target)


@pytest.fixture
def isolated_tmpdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Point TMPDIR (the Lambda's /tmp) at an empty directory so tests can prove nothing is left."""
    path = tmp_path / "lambda-tmp"
    path.mkdir()
    monkeypatch.setenv("TMPDIR", str(path))
    monkeypatch.setattr(tempfile, "tempdir", str(path))
    return path


@pytest.fixture
def sync_env(monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """Environment for `gitmirror sync` subprocesses against the git_servers fixture."""
    env = dict(os.environ)
    env.update(
        GITMIRROR_SOURCE_USERNAME=SOURCE_USER,
        GITMIRROR_SOURCE_TOKEN=SOURCE_TOKEN,
        GITMIRROR_TARGET_USERNAME=TARGET_USER,
        GITMIRROR_TARGET_TOKEN=TARGET_TOKEN,
    )
    return env


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    """moto in server mode (real HTTP on loopback) for DynamoDB, SQS and Secrets Manager."""
    from gitmirror_dev.moto_stack import moto_server

    with moto_server() as endpoint:
        yield endpoint


@dataclass
class AwsEnv:
    endpoint: str
    env: dict[str, str]
    queue_url: str
    dlq_url: str

    def put_secret(self, name: str, value: str) -> None:
        from gitmirror_dev.moto_stack import put_secret

        put_secret(name, value)

    def queue_messages(self, url: str | None = None) -> list[dict[str, object]]:
        """Every message visible on the queue, without consuming it (visibility 0)."""
        import boto3

        sqs = boto3.client("sqs")
        got = sqs.receive_message(
            QueueUrl=url or self.queue_url,
            MaxNumberOfMessages=10,
            VisibilityTimeout=0,
            AttributeNames=["All"],
        ).get("Messages", [])
        return list(got)


@pytest.fixture
def aws(moto_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> AwsEnv:
    """Fresh tables, queue + DLQ (unique names) on the shared moto server, and the env pointing at them."""
    import uuid

    from gitmirror.settings import CliSettings, load
    from gitmirror_dev.moto_stack import create_resources, local_environment

    prefix = f"t{uuid.uuid4().hex[:10]}"
    env = local_environment(moto_endpoint, prefix)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("RETRY_BASE_SECONDS", "0")
    created = create_resources(load(CliSettings))
    return AwsEnv(moto_endpoint, env, created["queue_url"], created["dlq_url"])
