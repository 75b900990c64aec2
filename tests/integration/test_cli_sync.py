"""`gitmirror sync` as a user runs it: exit codes, the --json contract, usage errors, no secret in output."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import CANARIES, TARGET_TOKEN, GitServers
from tests.support import gitrepo as g

GITMIRROR = str(Path(sys.executable).with_name("gitmirror"))
MAIN = "refs/heads/main"


def cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([GITMIRROR, *args], env=env, capture_output=True, text=True, timeout=120)
    for canary in CANARIES:
        assert canary not in proc.stdout and canary not in proc.stderr
    return proc


def test_json_contract_and_exit_codes(
    git_servers: GitServers, sync_env: dict[str, str], tmp_path: Path
) -> None:
    sync_env["TMPDIR"] = str(tmp_path / "t")
    (tmp_path / "t").mkdir()
    src, dst = git_servers.source_path, git_servers.target_path
    base = g.commit(src, MAIN, {"a": "1"})
    g.commit(src, "refs/heads/topic", {"t": "1"}, parents=[base])
    g.tag(src, "v1", base, annotated=True)

    proc = cli("sync", git_servers.source_url, git_servers.target_url, "--json", env=sync_env)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert set(out) == {"status", "divergent_refs", "refs", "error", "lfs", "remaining_refs"}
    assert out["lfs"] == {"objects": 0, "bytes": 0, "error": None}
    assert out["remaining_refs"] == []
    assert out["status"] == "success" and out["error"] is None and out["divergent_refs"] == []
    assert sorted(r["ref"] for r in out["refs"]) == [MAIN, "refs/heads/topic", "refs/tags/v1"]
    for entry in out["refs"]:
        assert set(entry) == {"ref", "action", "old", "new", "error", "reason_code", "hint"}
        assert entry["action"] == "create" and entry["old"] is None and len(entry["new"]) == 40
        assert entry["reason_code"] is None and entry["hint"] is None

    # divergence under keep: exit 3, partial, the ref named
    g.commit(dst, "refs/heads/topic", {"local": "x"})
    g.commit(src, "refs/heads/topic", {"upstream": "y"})
    proc = cli(
        "sync",
        git_servers.source_url,
        git_servers.target_url,
        "--keep-divergent-refs",
        "--json",
        env=sync_env,
    )
    assert proc.returncode == 3, proc.stdout
    out = json.loads(proc.stdout)
    assert out["status"] == "partial"
    assert out["divergent_refs"] == ["refs/heads/topic"]
    assert [r["action"] for r in out["refs"]] == ["skip_divergent"]

    # the human summary names the divergent ref too
    proc = cli("sync", git_servers.source_url, git_servers.target_url, "--keep-divergent-refs", env=sync_env)
    assert proc.returncode == 3
    assert "refs/heads/topic" in proc.stdout and "diverged" in proc.stdout

    # wrong target token: failed, exit 1, JSON error, nothing changed
    before = g.refs(dst)
    bad_env = dict(sync_env, GITMIRROR_TARGET_TOKEN="canary-bad-token-999")
    proc = subprocess.run(
        [GITMIRROR, "sync", git_servers.source_url, git_servers.target_url, "--json"],
        env=bad_env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 1
    assert "canary-bad-token-999" not in proc.stdout + proc.stderr
    out = json.loads(proc.stdout)
    assert out["status"] == "failed" and "401" in out["error"]
    assert out["reason_code"] == "auth" and out["hint"]
    assert g.refs(dst) == before
    assert list((tmp_path / "t").iterdir()) == []


def test_credentials_in_url_are_accepted_and_never_printed(
    git_servers: GitServers, sync_env: dict[str, str]
) -> None:
    g.commit(git_servers.source_path, MAIN, {"a": "1"})
    env = {k: v for k, v in sync_env.items() if not k.startswith("GITMIRROR_TARGET")}
    target = git_servers.target.authed_repo_url("dst.git", "dst-user", TARGET_TOKEN)
    proc = cli("sync", git_servers.source_url, target, env=env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "dst.git" in proc.stdout and "***" not in proc.stdout  # the URL is shown without userinfo


@pytest.mark.parametrize(
    "args",
    [
        ["sync"],
        ["sync", "only-one"],
        ["sync", "ssh://git@example.com/r.git", "/tmp/x"],
        ["sync", "/tmp/a", "https://example.com/r?x=1"],
        ["sync", "/tmp/a", "/tmp/b", "--branch-regex", "(unclosed"],
        ["sync", "/tmp/a", "/tmp/b", "--branch-regex", r"(a)\1"],  # RE2 refuses backreferences
        ["sync", "/tmp/a", "/tmp/b", "--branch-filter", ""],
        ["sync", "/tmp/a", "http://2130706433:8080/r.git"],  # a numeric form of 127.0.0.1
        ["sync", "http://127.0.0.1%2509/r.git", "/tmp/b"],
        ["sync", "/tmp/a", "/tmp/b", "--no-such-flag"],
        ["nonsense"],
    ],
)
def test_usage_errors_exit_2_with_one_line(args: list[str], sync_env: dict[str, str]) -> None:
    proc = cli(*args, env=sync_env)
    assert proc.returncode == 2
    assert proc.stdout == ""
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("gitmirror: error:")


def test_local_paths_and_file_urls(tmp_path: Path, sync_env: dict[str, str]) -> None:
    src = g.init_bare(tmp_path / "src.git")
    dst = g.init_bare(tmp_path / "dst.git")
    g.commit(src, MAIN, {"a": "1"})
    g.tag(src, "v1", MAIN)
    proc = cli("sync", str(src), dst.as_uri(), "--json", env=sync_env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert g.refs(dst) == g.refs(src)
    missing = cli("sync", str(tmp_path / "absent.git"), str(dst), "--json", env=sync_env)
    assert missing.returncode == 1
    assert "not found" in json.loads(missing.stdout)["error"]


def test_a_reader_that_goes_away_gets_no_traceback(tmp_path: Path, sync_env: dict[str, str]) -> None:
    src = g.init_bare(tmp_path / "src.git")
    dst = g.init_bare(tmp_path / "dst.git")
    tip = g.commit(src, MAIN, {"a": "1"})
    # a --json report (~200 bytes a ref) far larger than a pipe's buffer (64 KiB)
    updates = "".join(f"create refs/heads/branch-{i:04} {tip}\n" for i in range(800))
    g.run_git("--git-dir", str(src), "update-ref", "--stdin", input=updates)
    proc = subprocess.Popen(
        [GITMIRROR, "sync", str(src), str(dst), "--json"],
        env=sync_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert proc.stdout is not None and proc.stderr is not None
    assert proc.stdout.read(10) == b'{"status":'
    proc.stdout.close()  # `| head -c 10`
    stderr = proc.stderr.read().decode()
    assert proc.wait(timeout=120) == 1
    assert "Traceback" not in stderr and "BrokenPipeError" not in stderr, stderr
    assert g.refs(dst) == g.refs(src)  # the sync itself was done


def test_dry_run_reports_the_plan_and_pushes_nothing(
    git_servers: GitServers, sync_env: dict[str, str]
) -> None:
    src, dst = git_servers.source_path, git_servers.target_path
    base = g.commit(src, MAIN, {"a": "1"})
    g.commit(src, "refs/heads/topic", {"t": "1"}, parents=[base])
    args = ["sync", git_servers.source_url, git_servers.target_url]

    proc = cli(*args, "--dry-run", "--json", env=sync_env)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["dry_run"] is True and out["status"] == "success"
    assert {r["ref"]: r["action"] for r in out["refs"]} == {MAIN: "create", "refs/heads/topic": "create"}
    assert g.refs(dst) == {}
    assert git_servers.target.rpc_requests("git-receive-pack") == []

    # a real run, then a divergence: the dry run under keep exits 3 as the real run would
    assert cli(*args, "--json", env=sync_env).returncode == 0
    g.commit(dst, "refs/heads/topic", {"local": "x"})
    g.commit(src, "refs/heads/topic", {"upstream": "y"})
    g.commit(src, MAIN, {"a": "2"})
    before = g.refs(dst)
    git_servers.target.clear_requests()
    proc = cli(*args, "--keep-divergent-refs", "--dry-run", "--json", env=sync_env)
    assert proc.returncode == 3, proc.stdout + proc.stderr
    out = json.loads(proc.stdout)
    assert (out["status"], out["dry_run"], out["divergent_refs"]) == ("partial", True, ["refs/heads/topic"])
    assert {r["ref"]: r["action"] for r in out["refs"]} == {
        MAIN: "update",
        "refs/heads/topic": "skip_divergent",
    }
    assert g.refs(dst) == before
    assert git_servers.target.rpc_requests("git-receive-pack") == []

    proc = cli(*args, "--keep-divergent-refs", "--dry-run", env=sync_env)
    assert proc.returncode == 3 and "dry run" in proc.stdout and "refs/heads/topic" in proc.stdout
    # without keep, the diverged ref would be overwritten: the plan says so
    out = json.loads(cli(*args, "--dry-run", "--json", env=sync_env).stdout)
    assert {r["ref"]: r["action"] for r in out["refs"]}["refs/heads/topic"] == "force_update"
    assert g.refs(dst) == before


def test_redos_branch_names_pushed_to_the_source_do_not_stall_a_sync(
    git_servers: GitServers, sync_env: dict[str, str], tmp_path: Path
) -> None:
    """Branch names built to make a backtracking engine take hours (`(a+)+$`: ~10 s at 27 characters,
    x1.8 per extra one) are decided in linear time: the sync ends within the subprocess timeout."""
    sync_env["TMPDIR"] = str(tmp_path)
    src = git_servers.source_path
    base = g.commit(src, MAIN, {"a": "1"})
    for i in range(20):
        g.set_ref(src, f"refs/heads/{'a' * 60}{i}!", base)
    g.set_ref(src, f"refs/heads/{'a' * 60}", base)
    g.set_ref(src, f"refs/heads/{'a' * 50}c", base)
    for pattern, mirrored in (
        (["--branch-regex", "(a+)+$"], {f"refs/heads/{'a' * 60}"}),
        (["--branch-filter", "*a*a*a*a*a*a*a*b"], set()),
    ):
        proc = cli("sync", git_servers.source_url, git_servers.target_url, *pattern, "--json", env=sync_env)
        assert proc.returncode == 0, proc.stderr
        created = {r["ref"] for r in json.loads(proc.stdout)["refs"] if r["action"] == "create"}
        assert created == mirrored  # main matches neither pattern


# What a sync that finds both sides equal must not load: the fetch and push machinery, ancestry, LFS,
# the refusal classes, the service commands and what the service and Lambdas use.
NOT_FOR_A_NOOP = (
    "gitmirror.mirror.transport.fetched_pack",
    "gitmirror.mirror.transport.local",
    "gitmirror.mirror.ancestry",
    "gitmirror.mirror.chunked",
    "gitmirror.mirror.chunking",
    "gitmirror.mirror.lfs",
    "gitmirror.mirror.rejections",
    "gitmirror.mirror.scratch",
    "gitmirror.mirror.github_app",
    "gitmirror.patterns",
    "gitmirror.records",
    "gitmirror.settings",
    "gitmirror_cli.service",
    "re2",
    "pydantic",
    "boto3",
    "botocore",
    "jwt",
    "cryptography",
)


def imported_by_sync(*args: str, env: dict[str, str]) -> tuple[subprocess.CompletedProcess[str], set[str]]:
    """Run the installed `gitmirror sync` under `python -X importtime`: every module it imported."""
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", GITMIRROR, "sync", *args, "--json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    modules = {
        line.rsplit("|", 1)[1].strip()
        for line in proc.stderr.splitlines()
        if line.startswith("import time:") and line.count("|") == 2
    }
    return proc, modules


def loaded(modules: set[str], package: str) -> list[str]:
    return sorted(m for m in modules if m == package or m.startswith(package + "."))


@pytest.mark.parametrize("over", ["http", "local"])
def test_a_noop_sync_imports_no_fetch_or_push_machinery(
    over: str, git_servers: GitServers, sync_env: dict[str, str]
) -> None:
    src, dst = git_servers.source_path, git_servers.target_path
    base = g.commit(src, MAIN, {"a": "1"})
    g.commit(src, "refs/heads/topic", {"t": "1"}, parents=[base])
    g.tag(src, "v1", base, annotated=True)
    urls = (git_servers.source_url, git_servers.target_url) if over == "http" else (str(src), dst.as_uri())
    first = cli("sync", *urls, "--json", env=sync_env)
    assert first.returncode == 0, first.stderr
    assert g.refs(dst) == g.refs(src)

    proc, modules = imported_by_sync(*urls, env=sync_env)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == {
        "status": "success",
        "divergent_refs": [],
        "refs": [],
        "error": None,
        "lfs": {"objects": 0, "bytes": 0, "error": None},
        "remaining_refs": [],
    }
    # it did list both sides through the engine's transport (the import log is read right)
    assert {"gitmirror.mirror.engine", "gitmirror.mirror.transport.remote", "dulwich.client"} <= modules
    assert [m for package in NOT_FOR_A_NOOP for m in loaded(modules, package)] == []

    # a run with something to do loads the machinery when it gets there
    g.commit(src, MAIN, {"a": "2"})
    proc, modules = imported_by_sync(*urls, env=sync_env)
    assert proc.returncode == 0, proc.stderr
    assert [r["action"] for r in json.loads(proc.stdout)["refs"]] == ["update"]
    assert g.refs(dst) == g.refs(src)
    assert "gitmirror.mirror.ancestry" in modules
    # between two local paths git pushes; over HTTP the fetched pack goes through the LFS pointer scan
    mover = "gitmirror.mirror.transport.local" if over == "local" else "gitmirror.mirror.lfs.sync"
    assert mover in modules
