"""`gitmirror sync --max-push-bytes/--time-limit` against a target that enforces `receive.maxInputSize`.

The target is git http-backend with a cap and an `update` hook that records every ref update it is
asked for, so the tests see each intermediate value, not only the end state.
"""

from __future__ import annotations

import itertools
import json
import random
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from gitmirror_dev.gitserver import GitHTTPServer
from tests.conftest import SOURCE_TOKEN, SOURCE_USER, TARGET_TOKEN, TARGET_USER
from tests.integration.test_cli_sync import cli
from tests.support import gitrepo as g

MAIN = "refs/heads/main"
CAP = 100 * 1024  # the target's receive.maxInputSize
LIMIT = "90K"  # what gitmirror is told: below the cap
BLOB = 30_000  # incompressible bytes per commit: about three commits fit under LIMIT
HOOK = """#!/bin/sh
echo "$1 $2 $3" >> "$GIT_DIR/updates.log"
"""


@dataclass
class Servers:
    source: GitHTTPServer
    target: GitHTTPServer

    @property
    def src(self) -> Path:
        return self.source.repo_path("src.git")

    @property
    def dst(self) -> Path:
        return self.target.repo_path("dst.git")

    def urls(self) -> tuple[str, str]:
        return self.source.repo_url("src.git"), self.target.repo_url("dst.git")

    def updates(self) -> list[tuple[str, str, str]]:
        log = self.dst / "updates.log"
        if not log.exists():
            return []
        return [tuple(line.split()) for line in log.read_text().splitlines()]  # type: ignore[misc]

    def push_bodies(self) -> list[int]:
        return [r.request_bytes for r in self.target.rpc_requests("git-receive-pack")]


@pytest.fixture
def servers(tmp_path: Path) -> Iterator[Servers]:
    with (
        GitHTTPServer(tmp_path / "srv-src", SOURCE_USER, SOURCE_TOKEN) as source,
        GitHTTPServer(
            tmp_path / "srv-dst",
            TARGET_USER,
            TARGET_TOKEN,
            extra_config={"receive.maxInputSize": str(CAP), "receive.unpackLimit": "1"},
        ) as target,
    ):
        source.create_bare("src.git")
        target.create_bare("dst.git")
        target.install_hook("dst.git", "update", HOOK)
        yield Servers(source, target)


def history(repo: Path, commits: int, seed: int = 1, ref: str = MAIN) -> list[str]:
    """`commits` commits on `ref`, each adding BLOB incompressible bytes."""
    rng = random.Random(seed)
    return [g.commit(repo, ref, {f"f{seed}-{i}.bin": rng.randbytes(BLOB)}) for i in range(commits)]


def sync(servers: Servers, env: dict[str, str], *flags: str) -> tuple[int, dict[str, Any], str]:
    proc = cli("sync", *servers.urls(), "--json", *flags, env=env)
    return proc.returncode, json.loads(proc.stdout) if proc.stdout.strip() else {}, proc.stderr


def assert_updates_sane(servers: Servers, *, fast_forward: bool = False) -> None:
    """Every recorded update: a branch or tag, a value that is an ancestor of the ref's final value,
    and (keep-divergent) a fast-forward."""
    final = g.refs(servers.dst)
    for ref, old, new in servers.updates():
        assert ref.startswith(("refs/heads/", "refs/tags/")), ref
        assert ref in final, f"{ref} was created and is gone: a temporary ref"
        assert g.is_ancestor(servers.dst, new, final[ref]), (ref, new)
        if fast_forward and old != g.ZERO_SHA:
            assert g.is_ancestor(servers.dst, old, new), f"{ref}: {old} -> {new} is not a fast-forward"


def test_cap_without_the_flag_fails_cleanly(servers: Servers, sync_env: dict[str, str]) -> None:
    history(servers.src, 8)
    code, out, _ = sync(servers, sync_env)
    assert code == 1
    assert out["status"] == "failed"
    error = str(out["error"])
    assert "too large" in error and "--max-push-bytes" in error
    assert g.refs(servers.dst) == {} and servers.updates() == []


def test_capped_cold_mirror(servers: Servers, sync_env: dict[str, str]) -> None:
    main = history(servers.src, 10)
    side = g.commit(
        servers.src, "refs/heads/side", {"side.bin": random.Random(7).randbytes(BLOB)}, parents=[main[3]]
    )
    merge = g.commit(servers.src, MAIN, {"m": "merge"}, parents=[main[-1], side])
    g.tag(servers.src, "v1", main[5], annotated=True)
    g.tag(servers.src, "v2", merge)

    code, out, err = sync(servers, sync_env, "--max-push-bytes", LIMIT)
    assert code == 0, (out, err)
    assert out["status"] == "success" and out["remaining_refs"] == []
    assert g.refs(servers.dst) == g.refs(servers.src)
    assert {r["action"] for r in out["refs"]} == {"create"}
    bodies = servers.push_bodies()
    assert len(bodies) >= 4 and max(bodies) <= 90 * 1024
    # main went through intermediate values, oldest history first
    main_values = [new for ref, _old, new in servers.updates() if ref == MAIN]
    assert len(main_values) >= 3
    assert all(g.is_ancestor(servers.dst, a, b) for a, b in itertools.pairwise(main_values))
    assert_updates_sane(servers)

    # nothing to do the second time: no push at all
    servers.target.clear_requests()
    code, out, _ = sync(servers, sync_env, "--max-push-bytes", LIMIT)
    assert code == 0 and out["refs"] == [] and servers.push_bodies() == []


def test_resumed_over_several_runs(servers: Servers, sync_env: dict[str, str], tmp_path: Path) -> None:
    history(servers.src, 12)
    g.commit(servers.src, "refs/heads/topic", {"t.bin": random.Random(3).randbytes(BLOB)})
    # the size one capped run sends, on a second target without a time limit
    with GitHTTPServer(tmp_path / "srv-ref", TARGET_USER, TARGET_TOKEN) as reference:
        reference.create_bare("ref.git")
        proc = cli(
            "sync", servers.urls()[0], reference.repo_url("ref.git"), "--max-push-bytes", LIMIT, env=sync_env
        )
        assert proc.returncode == 0, proc.stderr
        one_run_bytes = sum(r.request_bytes for r in reference.rpc_requests("git-receive-pack"))

    runs, remaining_seen = 0, []
    while True:
        runs += 1
        assert runs <= 20, "no end to the continuation"
        code, out, err = sync(servers, sync_env, "--max-push-bytes", LIMIT, "--time-limit", "0.001")
        if code == 0:
            assert out["status"] == "success" and out["remaining_refs"] == []
            break
        assert code == 4, (out, err)
        assert out["status"] == "incomplete" and out["error"] is None
        remaining = out["remaining_refs"]
        assert remaining and remaining == sorted(remaining)
        remaining_seen.append(remaining)
    assert runs >= 3
    assert g.refs(servers.dst) == g.refs(servers.src)
    assert_updates_sane(servers)
    # each run starts from the target's state: what earlier runs pushed is not sent again
    assert sum(servers.push_bodies()) <= 1.3 * one_run_bytes
    assert len({tuple(update) for update in servers.updates()}) == len(servers.updates())


def test_keep_divergent_fast_forwards_only(servers: Servers, sync_env: dict[str, str]) -> None:
    main = history(servers.src, 3)
    code, _, err = sync(servers, sync_env, "--max-push-bytes", LIMIT)
    assert code == 0, err
    # the source moves on: a side branch merged in, whose fork point is older than the target's main
    side = g.commit(
        servers.src, "refs/heads/feature", {"s.bin": random.Random(5).randbytes(BLOB)}, parents=[main[0]]
    )
    history(servers.src, 6, seed=2)
    g.commit(servers.src, MAIN, {"merged": "yes"}, parents=[g.rev_parse(servers.src, MAIN) or "", side])
    history(servers.src, 3, seed=4)
    (servers.dst / "updates.log").unlink()

    code, out, err = sync(servers, sync_env, "--max-push-bytes", LIMIT, "--keep-divergent-refs")
    assert code == 0, (out, err)
    assert g.refs(servers.dst) == g.refs(servers.src)
    assert len([u for u in servers.updates() if u[0] == MAIN]) >= 2
    assert_updates_sane(servers, fast_forward=True)


def test_oversized_commit_rejected_while_the_rest_mirrors(servers: Servers, sync_env: dict[str, str]) -> None:
    main = history(servers.src, 6)
    big = g.commit(
        servers.src, "refs/heads/big", {"big.bin": random.Random(9).randbytes(200_000)}, parents=[main[2]]
    )
    g.commit(servers.src, "refs/heads/after-big", {"x": "y"}, parents=[big])
    g.tag(servers.src, "v1", main[-1], annotated=True)

    code, out, err = sync(servers, sync_env, "--max-push-bytes", LIMIT)
    assert code == 3, (out, err)
    assert out["status"] == "partial"
    by_ref = {r["ref"]: r for r in out["refs"]}
    for ref in ("refs/heads/big", "refs/heads/after-big"):
        assert by_ref[ref]["action"] == "rejected"
        assert big[:12] in by_ref[ref]["error"] and "90K" in by_ref[ref]["error"]
        assert "KiB" in by_ref[ref]["error"]  # the commit's size is named
    assert by_ref[MAIN]["action"] == "create" and by_ref["refs/tags/v1"]["action"] == "create"
    final = g.refs(servers.dst)
    assert final[MAIN] == main[-1] and "refs/heads/big" not in final
    assert_updates_sane(servers)


@pytest.mark.parametrize(
    "flags",
    [("--max-push-bytes", "12Q"), ("--max-push-bytes", "0"), ("--time-limit", "-1"), ("--time-limit", "0")],
)
def test_usage_errors_touch_nothing(
    servers: Servers, sync_env: dict[str, str], flags: tuple[str, str]
) -> None:
    history(servers.src, 1)
    servers.source.clear_requests()
    proc = cli("sync", *servers.urls(), *flags, env=sync_env)
    assert proc.returncode == 2
    assert proc.stdout == "" and len(proc.stderr.strip().splitlines()) == 1
    assert flags[0] in proc.stderr
    # with --json the usage error is the CLI's error object
    proc = cli("sync", *servers.urls(), "--json", *flags, env=sync_env)
    assert proc.returncode == 2
    answer = json.loads(proc.stdout)
    assert answer["exit_code"] == 2 and flags[0] in answer["error"]
    assert servers.source.request_count == 0 and servers.target.request_count == 0


def test_size_suffixes_are_powers_of_1024(servers: Servers, sync_env: dict[str, str]) -> None:
    history(servers.src, 4)
    # 1M is far above the 100 KiB cap: the target refuses, and the error names the flag
    code, out, _ = sync(servers, sync_env, "--max-push-bytes", "1M")
    assert code == 1 and "--max-push-bytes" in str(out["error"])
    servers.target.clear_requests()
    code, out, _ = sync(servers, sync_env, "--max-push-bytes", str(90 * 1024))
    assert code == 0 and g.refs(servers.dst) == g.refs(servers.src)
    assert max(servers.push_bodies()) <= 90 * 1024


def test_git_sees_a_complete_repository(servers: Servers, sync_env: dict[str, str]) -> None:
    history(servers.src, 7)
    code, _, err = sync(servers, sync_env, "--max-push-bytes", LIMIT)
    assert code == 0, err
    subprocess.run(
        ["git", "--git-dir", str(servers.dst), "fsck", "--connectivity-only"], check=True, capture_output=True
    )


def test_a_step_downloads_while_the_target_takes_the_previous_push(
    servers: Servers, sync_env: dict[str, str]
) -> None:
    """Steps overlap: the next step's pack is fetched while the target is still answering the push
    before it (the target's hook holds every push 0.4 s)."""
    history(servers.src, 12)
    servers.target.install_hook("dst.git", "update", "sleep 0.4\n" + HOOK)
    code, out, err = sync(servers, sync_env, "--max-push-bytes", LIMIT)
    assert code == 0, (out, err)
    assert g.refs(servers.dst) == g.refs(servers.src)
    pushes = servers.target.rpc_requests("git-receive-pack")
    fetches = servers.source.rpc_requests("git-upload-pack")
    assert len(pushes) >= 4
    overlapped = [f for f in fetches if any(p.started < f.started < p.ended for p in pushes)]
    assert len(overlapped) >= len(pushes) - 2, [(r.started, r.ended) for r in pushes + fetches]
    assert_updates_sane(servers)


def test_a_refused_step_ends_the_refs_history_and_drops_the_step_fetched_meanwhile(
    servers: Servers, sync_env: dict[str, str], tmp_path: Path
) -> None:
    """The target refuses main's second step: main's outcome is that rejection, the step downloaded
    while that push was answered is never pushed, its scratch copy is gone, and other refs go on."""
    main = history(servers.src, 12)
    other = g.commit(servers.src, "refs/heads/other", {"o": "1"}, parents=[main[0]])
    servers.target.install_hook(
        "dst.git",
        "update",
        """if [ "$1" = refs/heads/main ] && grep -q '^refs/heads/main ' "$GIT_DIR/updates.log" 2>/dev/null; then
  echo "policy: main may move once" >&2
  exit 1
fi
"""
        + HOOK,
    )
    sync_env["TMPDIR"] = str(tmp_path / "scratch")
    (tmp_path / "scratch").mkdir()
    servers.target.record_body_bytes = 4096  # the command lines
    code, out, err = sync(servers, sync_env, "--max-push-bytes", LIMIT)
    assert code == 3, (out, err)
    by_ref = {r["ref"]: r for r in out["refs"]}
    assert by_ref[MAIN]["action"] == "rejected" and "policy: main may move once" in by_ref[MAIN]["error"]
    assert by_ref["refs/heads/other"]["action"] == "create"
    first = [new for ref, _old, new in servers.updates() if ref == MAIN]
    assert len(first) == 1 and first[0] != main[-1]
    final = g.refs(servers.dst)
    assert final[MAIN] == first[0] and final["refs/heads/other"] == other
    # two pushes of main (the one that landed, the refused one): the step after it was not pushed
    bodies = [r.body for r in servers.target.rpc_requests("git-receive-pack")]
    assert sum(1 for b in bodies if b" refs/heads/main" in b) == 2
    assert list((tmp_path / "scratch").iterdir()) == []


def test_without_room_for_a_second_pack_the_steps_take_turns(
    servers: Servers, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Scratch storage too small for two packs (a 2 GiB cap on a 4 GB /tmp): each step's pack is
    fetched only once the push before it was answered; the mirror completes the same."""
    from gitmirror.mirror import chunked
    from gitmirror.mirror.credentials import StaticCredentials
    from gitmirror.mirror.engine import sync_mirror
    from gitmirror.mirror.transport import Remote
    from gitmirror.mirror.urls import parse_remote

    history(servers.src, 12)
    servers.target.install_hook("dst.git", "update", "sleep 0.3\n" + HOOK)
    asked: list[str] = []

    def no_room(path: str) -> int:
        asked.append(path)
        return 0

    monkeypatch.setattr(chunked, "free_scratch_bytes", no_room)
    source_url, target_url = servers.urls()
    result = sync_mirror(
        Remote(parse_remote(source_url), StaticCredentials(SOURCE_USER, SOURCE_TOKEN)),
        Remote(parse_remote(target_url), StaticCredentials(TARGET_USER, TARGET_TOKEN)),
        max_push_bytes=90 * 1024,
    )
    assert result.status.value == "success", result.error
    assert g.refs(servers.dst) == g.refs(servers.src)
    pushes = servers.target.rpc_requests("git-receive-pack")
    fetches = servers.source.rpc_requests("git-upload-pack")
    assert len(pushes) >= 4 and asked
    assert not [f for f in fetches if any(p.started < f.started < p.ended for p in pushes)]
    assert_updates_sane(servers)
