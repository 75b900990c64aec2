"""Refusals explained end to end: real git http-backend targets that refuse pushes the way hosts do.

Each hook prints a host's real message (tests/fixtures/rejections/) on stderr, which receive-pack sends
as `remote:` side-band lines behind a generic "pre-receive hook declined" ref status, as GitHub does.
"""

from __future__ import annotations

import json
import shlex
from pathlib import Path

import pytest

from gitmirror.mirror.credentials import StaticCredentials
from gitmirror.mirror.engine import sync_mirror
from gitmirror.mirror.transport import Remote
from gitmirror.mirror.urls import parse_remote
from gitmirror.run.mirror_run import failure_message
from gitmirror.values import Action, RunStatus, SyncResult
from tests.conftest import SOURCE_TOKEN, SOURCE_USER, TARGET_TOKEN, TARGET_USER, GitServers
from tests.support import gitrepo as g

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "rejections"
MAIN = "refs/heads/main"


def _sync(servers: GitServers) -> SyncResult:
    return sync_mirror(
        Remote(parse_remote(servers.source_url), StaticCredentials(SOURCE_USER, SOURCE_TOKEN)),
        Remote(parse_remote(servers.target_url), StaticCredentials(TARGET_USER, TARGET_TOKEN)),
    )


def _refuse_with(servers: GitServers, lines: list[str], *, only: str | None = None) -> None:
    """A pre-receive hook that prints `lines` and refuses (every push, or pushes touching `only`)."""
    prints = "".join(f"printf '%s\\n' {shlex.quote(line)} >&2\n" for line in lines)
    if only is None:
        body = f"{prints}exit 1\n"
    else:
        body = (
            "while read old new ref; do\n"
            f'  if [ "$ref" = {shlex.quote(only)} ]; then\n{prints}    exit 1\n  fi\n'
            "done\nexit 0\n"
        )
    servers.target.install_hook("dst.git", "pre-receive", "#!/bin/sh\n" + body)


@pytest.mark.parametrize(
    "fixture",
    [
        "github_ruleset_gh013",
        "github_push_protection_gh013",
        "github_push_protection_gh009",
        "github_file_too_large_gh001",
        "github_protected_branch_gh006",
        "gitlab_protected_branch",
        "gitea_protected_branch",
        "bitbucket_cloud_branch_restriction",
    ],
)
def test_side_band_messages_explain_a_hook_refusal(git_servers: GitServers, fixture: str) -> None:
    case = json.loads((FIXTURES / f"{fixture}.json").read_text())
    g.commit(git_servers.source_path, MAIN, {"README": "one"})
    g.commit(git_servers.source_path, "refs/heads/ok", {"ok.txt": "fine"})
    _refuse_with(git_servers, case["remote"], only=MAIN)
    result = _sync(git_servers)
    assert result.status == RunStatus.PARTIAL
    by_ref = {r.ref: r for r in result.refs}
    refused = by_ref[MAIN]
    assert refused.action == Action.REJECTED
    assert refused.error and "pre-receive hook declined" in refused.error
    assert refused.reason_code == case["code"]
    assert refused.hint
    assert by_ref["refs/heads/ok"].action == Action.CREATE and by_ref["refs/heads/ok"].reason_code is None
    as_json = json.loads(result.to_json())
    assert {"reason_code": case["code"], "hint": refused.hint}.items() <= as_json["refs"][0].items()
    last_error = failure_message(result)
    assert last_error and last_error.endswith(f"Hint: {refused.hint}")


def test_a_hook_without_a_known_message_is_hook_declined(git_servers: GitServers) -> None:
    g.commit(git_servers.source_path, MAIN, {"README": "one"})
    _refuse_with(git_servers, ["this repository accepts signed pushes only"])
    result = _sync(git_servers)
    assert result.status == RunStatus.PARTIAL
    [refused] = result.refs
    assert (refused.action, refused.reason_code) == (Action.REJECTED, "hook_declined")
    assert refused.error and "signed pushes only" in refused.error


def test_a_non_fast_forward_refusal_by_receive_pack(git_servers: GitServers) -> None:
    src, dst = git_servers.source_path, git_servers.target_path
    g.commit(src, MAIN, {"README": "one"})
    assert _sync(git_servers).status == RunStatus.SUCCESS
    g.commit(dst, MAIN, {"README": "target only"})  # the target moved on: the source's main is divergent
    g.git(dst, "config", "receive.denyNonFastForwards", "true")
    g.commit(src, MAIN, {"README": "two"})
    result = _sync(git_servers)
    [refused] = result.refs
    assert refused.action == Action.REJECTED
    assert refused.reason_code == "non_fast_forward", refused.error


def test_a_hidden_ref_refusal_by_receive_pack(git_servers: GitServers) -> None:
    g.commit(git_servers.source_path, MAIN, {"README": "one"})
    g.commit(git_servers.source_path, "refs/heads/hidden/x", {"h.txt": "h"})
    g.git(git_servers.target_path, "config", "transfer.hideRefs", "refs/heads/hidden")
    result = _sync(git_servers)
    by_ref = {r.ref: r for r in result.refs}
    assert by_ref["refs/heads/hidden/x"].action == Action.REJECTED
    assert by_ref["refs/heads/hidden/x"].reason_code == "hidden_ref"
    assert by_ref[MAIN].action == Action.CREATE


def test_a_pack_over_the_targets_limit_fails_the_run_with_its_reason(git_servers: GitServers) -> None:
    g.commit(git_servers.source_path, MAIN, {"big.bin": bytes(range(256)) * 4096})
    g.git(git_servers.target_path, "config", "receive.maxInputSize", "1024")
    result = _sync(git_servers)
    assert result.status in (RunStatus.FAILED, RunStatus.PARTIAL)
    reasons = {result.reason_code} | {r.reason_code for r in result.refs}
    assert "pack_too_large" in reasons, (result.error, result.refs)
    last_error = failure_message(result)
    assert last_error and "Hint: " in last_error.splitlines()[-1]


def test_wrong_credentials_fail_with_the_auth_reason(git_servers: GitServers) -> None:
    g.commit(git_servers.source_path, MAIN, {"README": "one"})
    result = sync_mirror(
        Remote(parse_remote(git_servers.source_url), StaticCredentials(SOURCE_USER, SOURCE_TOKEN)),
        Remote(parse_remote(git_servers.target_url), StaticCredentials(TARGET_USER, "canary-WRONG-99887766")),
    )
    assert (result.status, result.reason_code) == (RunStatus.FAILED, "auth")
    last_error = failure_message(result)
    assert last_error and last_error.endswith(f"Hint: {result.hint}")
