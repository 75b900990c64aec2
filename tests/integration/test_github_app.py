"""GitHub App credentials against a loopback GitHub: the token endpoint verifies the App's JWT with the
App's public key; git over HTTP accepts only the installation tokens it minted, until they expire."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from gitmirror.mirror.credentials import StaticCredentials
from gitmirror.mirror.engine import sync_mirror
from gitmirror.mirror.github_app import GitHubAppCredentials, GitHubAppKey, forget_tokens
from gitmirror.mirror.transport import Remote
from gitmirror.mirror.urls import parse_remote
from gitmirror.values import RunStatus, SyncResult
from gitmirror_dev.github_app_server import GitHubAppServer, generate_app_key
from gitmirror_dev.gitserver import GitHTTPServer
from tests.conftest import SOURCE_TOKEN, SOURCE_USER, AwsEnv
from tests.support import gitrepo as g

APP_ID, INSTALLATION_ID = "123456", "987654"
MAIN = "refs/heads/main"


@pytest.fixture(scope="module")
def app_key() -> tuple[str, str]:
    return generate_app_key()


@pytest.fixture(autouse=True)
def fresh_token_cache() -> Iterator[None]:
    forget_tokens()
    yield
    forget_tokens()


@pytest.fixture
def hosts(tmp_path: Path, app_key: tuple[str, str]) -> Iterator[tuple[GitHTTPServer, GitHubAppServer]]:
    with (
        GitHTTPServer(tmp_path / "src", SOURCE_USER, SOURCE_TOKEN) as source,
        GitHubAppServer(
            tmp_path / "github", app_id=APP_ID, installation_id=INSTALLATION_ID, public_key=app_key[1]
        ) as github,
    ):
        source.create_bare("src.git")
        github.create_bare("dst.git")
        g.commit(source.repo_path("src.git"), MAIN, {"README": "one"})
        yield source, github


def _key(pem: str, **extra: object) -> GitHubAppKey:
    return GitHubAppKey.from_secret(
        {"app_id": int(APP_ID), "installation_id": INSTALLATION_ID, "private_key": pem, **extra},
        "gitmirror/app",
    )


def _sync(source: GitHTTPServer, github: GitHubAppServer, creds: GitHubAppCredentials) -> SyncResult:
    result = sync_mirror(
        Remote(parse_remote(source.repo_url("src.git")), StaticCredentials(SOURCE_USER, SOURCE_TOKEN)),
        Remote(parse_remote(github.repo_url("dst.git")), creds),
    )
    text = result.to_json()
    assert creds.key.private_key not in text
    return result


def test_a_minted_installation_token_pushes_and_is_cached(
    hosts: tuple[GitHTTPServer, GitHubAppServer], app_key: tuple[str, str]
) -> None:
    source, github = hosts
    creds = GitHubAppCredentials(_key(app_key[0]), api_base=github.api_url)
    before = time.time()
    result = _sync(source, github, creds)
    assert result.status == RunStatus.SUCCESS, result.error
    assert g.refs(github.repo_path("dst.git"))[MAIN] == g.refs(source.repo_path("src.git"))[MAIN]

    [request] = github.token_requests
    assert request.status == 201 and request.installation_id == INSTALLATION_ID
    assert request.body == {"repositories": ["dst"], "permissions": {"contents": "write"}}
    claims = request.claims
    assert claims["iss"] == APP_ID
    assert before - 62 <= claims["iat"] <= time.time() - 59  # 60 s in the past
    assert claims["exp"] - claims["iat"] <= 600 and claims["exp"] > time.time()
    git_requests = [r for r in github.requests if r.kind == "git"]
    assert git_requests and {r.user for r in git_requests} == {"x-access-token"}
    tokens = [t for t in github._issued]
    assert all(t not in result.to_json() for t in tokens)

    # a second run within the token's hour reuses it
    g.commit(source.repo_path("src.git"), MAIN, {"README": "two"})
    assert _sync(source, github, creds).status == RunStatus.SUCCESS
    assert github.minted == 1


def test_a_token_near_its_expiry_is_replaced(
    hosts: tuple[GitHTTPServer, GitHubAppServer], app_key: tuple[str, str]
) -> None:
    source, github = hosts
    now = {"t": time.time()}
    creds = GitHubAppCredentials(_key(app_key[0]), api_base=github.api_url, clock=lambda: now["t"])
    assert _sync(source, github, creds).status == RunStatus.SUCCESS
    assert github.minted == 1
    now["t"] += 3600 - 5 * 60 + 1  # within 5 minutes of the token's expiry
    github.expire_tokens()
    g.commit(source.repo_path("src.git"), MAIN, {"README": "two"})
    result = _sync(source, github, creds)
    assert result.status == RunStatus.SUCCESS, result.error
    assert github.minted == 2


def test_a_token_the_server_expired_early_fails_as_auth_until_refreshed(
    hosts: tuple[GitHTTPServer, GitHubAppServer], app_key: tuple[str, str]
) -> None:
    source, github = hosts
    creds = GitHubAppCredentials(_key(app_key[0]), api_base=github.api_url)
    assert _sync(source, github, creds).status == RunStatus.SUCCESS
    github.expire_tokens()
    g.commit(source.repo_path("src.git"), MAIN, {"README": "two"})
    refused = _sync(source, github, creds)
    assert (refused.status, refused.reason_code) == (RunStatus.FAILED, "auth")
    creds.refresh()  # what the worker does on an auth failure before its one retry
    assert _sync(source, github, creds).status == RunStatus.SUCCESS
    assert github.minted == 2


def test_a_wrong_private_key_fails_with_an_actionable_message(
    hosts: tuple[GitHTTPServer, GitHubAppServer],
) -> None:
    source, github = hosts
    other_private, _ = generate_app_key()
    result = _sync(source, github, GitHubAppCredentials(_key(other_private), api_base=github.api_url))
    assert result.status == RunStatus.FAILED
    assert result.reason_code == "auth" and result.hint
    assert result.error and "HTTP 401" in result.error
    assert "app_id" in result.error and "private_key" in result.error
    assert [r.status for r in github.token_requests] == [401]
    assert "refs/heads/main" not in g.refs(github.repo_path("dst.git"))


def test_workflows_permission_when_asked_and_read_only_for_a_source(
    tmp_path: Path, app_key: tuple[str, str]
) -> None:
    with GitHubAppServer(
        tmp_path / "github", app_id=APP_ID, installation_id=INSTALLATION_ID, public_key=app_key[1]
    ) as github:
        github.create_bare("src.git")
        github.create_bare("dst.git")
        g.commit(github.repo_path("src.git"), MAIN, {".github/workflows/ci.yml": "on: push\n"})
        source = GitHubAppCredentials(_key(app_key[0]), write=False, api_base=github.api_url)
        target = GitHubAppCredentials(_key(app_key[0], workflows=True), api_base=github.api_url)
        result = sync_mirror(
            Remote(parse_remote(github.repo_url("src.git")), source),
            Remote(parse_remote(github.repo_url("dst.git")), target),
        )
        assert result.status == RunStatus.SUCCESS, result.error
        asked = sorted(
            (r.body["repositories"], json.dumps(r.body["permissions"])) for r in github.token_requests
        )
        assert asked == [
            (["dst"], json.dumps({"contents": "write", "workflows": "write"})),
            (["src"], json.dumps({"contents": "read"})),
        ]


def test_a_wrong_installation_id_says_so(
    hosts: tuple[GitHTTPServer, GitHubAppServer], app_key: tuple[str, str]
) -> None:
    source, github = hosts
    key = GitHubAppKey.from_secret(
        {"app_id": APP_ID, "installation_id": "1", "private_key": app_key[0]}, "gitmirror/app"
    )
    result = _sync(source, github, GitHubAppCredentials(key, api_base=github.api_url))
    assert (result.status, result.reason_code) == (RunStatus.FAILED, "auth")
    assert result.error and "installation" in result.error and "HTTP 404" in result.error


def test_the_worker_mirrors_with_auth_method_github_app(
    aws: AwsEnv, tmp_path: Path, app_key: tuple[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from gitmirror.adapters.aws.queue import SqsJobQueue
    from gitmirror.jobs import make_job
    from gitmirror.values import Trigger, UpdateStatus
    from gitmirror_dev.lambdas import QueuePoller, load_function
    from tests.support.service import add_mirror, all_items, store

    with (
        GitHTTPServer(tmp_path / "src", SOURCE_USER, SOURCE_TOKEN) as source,
        GitHubAppServer(
            tmp_path / "github", app_id=APP_ID, installation_id=INSTALLATION_ID, public_key=app_key[1]
        ) as github,
    ):
        source.create_bare("src.git")
        github.create_bare("dst.git")
        g.commit(source.repo_path("src.git"), MAIN, {"README": "one"})
        # the token endpoint's base is a deployment setting, never taken from a request
        monkeypatch.setenv("GITHUB_API_URL", github.api_url)
        secret = {"app_id": APP_ID, "installation_id": int(INSTALLATION_ID), "private_key": app_key[0]}
        mirror = add_mirror(
            aws,
            source.repo_url("src.git"),
            github.repo_url("dst.git"),
            target_secret_value=secret,
            auth_method="github_app",
        )
        poller = QueuePoller(load_function("worker"), aws.queue_url)
        SqsJobQueue(aws.queue_url).enqueue(make_job(mirror.id, Trigger.MANUAL, None))
        assert poller.drain() == 1
        after = store().get(mirror.id)
        assert after is not None and after.update_status == UpdateStatus.FINISHED, after.last_error
        assert github.minted == 1

        # the token is revoked early: the run's auth failure mints a new one and the retry succeeds
        github.expire_tokens()
        g.commit(source.repo_path("src.git"), MAIN, {"README": "two"})
        SqsJobQueue(aws.queue_url).enqueue(make_job(mirror.id, Trigger.MANUAL, None))
        assert poller.drain() == 1
        after = store().get(mirror.id)
        assert after is not None and after.update_status == UpdateStatus.FINISHED, after.last_error
        assert github.minted == 2
        assert g.refs(github.repo_path("dst.git"))[MAIN] == g.refs(source.repo_path("src.git"))[MAIN]

        stored = json.dumps(
            all_items(aws.env["MIRRORS_TABLE"]) + all_items(aws.env["RUNS_TABLE"]), default=str
        )
        assert "PRIVATE KEY" not in stored
        assert all(token not in stored for token in github._issued)
