"""Shared fixtures: real git smart-HTTP servers on loopback with Basic auth, canary credentials."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.gitserver import GitHTTPServer

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED = REPO_ROOT.parent / "shared"
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
