"""Peak memory of `gitmirror sync` does not grow with the largest object (sizes scaled down from the
bench's 1 GiB blob: the point is the difference between two sizes, not a speed or memory target)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from gitmirror_dev.bigrefs import bigref_name, build_bigrefs
from tests.conftest import GitServers
from tests.integration.test_cli_sync import GITMIRROR
from tests.support import gitrepo as g

MAIN = "refs/heads/main"
MIB = 1024 * 1024


# Measured from a small launcher: a child's peak RSS counts the memory of the process it was forked
# from (Linux keeps the pre-exec high-water mark), and pytest's process is large.
LAUNCHER = (
    "import resource, subprocess, sys\n"
    "code = subprocess.call(sys.argv[1:])\n"
    "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, file=sys.stderr)\n"
    "sys.exit(code)\n"
)


def peak_rss_mib(args: list[str], env: dict[str, str]) -> tuple[float, dict[str, object]]:
    """Run the command; its peak resident set in MiB and its JSON output."""
    proc = subprocess.run(
        [sys.executable, "-c", LAUNCHER, *args], env=env, capture_output=True, text=True, timeout=300
    )
    payload = json.loads(proc.stdout)
    assert proc.returncode == 0, payload
    return int(proc.stderr.strip().splitlines()[-1]) / 1024, payload  # ru_maxrss: KiB on Linux


def compressible(size: int, seed: int) -> bytes:
    block = os.urandom(4096) + bytes([seed]) * 4096  # compresses well, differs between blobs
    return (block * (size // len(block) + 1))[:size]


@pytest.mark.slow
@pytest.mark.parametrize("target_kind", ["http", "local path"])
def test_peak_rss_of_an_incremental_sync_does_not_grow_with_the_largest_blob(
    git_servers: GitServers, sync_env: dict[str, str], tmp_path: Path, target_kind: str
) -> None:
    src = git_servers.source_path
    g.commit(src, MAIN, {"README": "start\n"})
    g.commit(src, "refs/heads/topic", {"t": "t\n"})
    target = git_servers.target_path if target_kind == "http" else g.init_bare(tmp_path / "local-dst.git")
    target_url = git_servers.target_url if target_kind == "http" else str(target)
    command = [GITMIRROR, "sync", "--json", git_servers.source_url, target_url]
    peak_rss_mib(command, sync_env)  # the cold mirror
    peaks = {}
    for size in (8 * MIB, 96 * MIB):
        g.commit(src, MAIN, {f"blob-{size}.bin": compressible(size, size // MIB)})
        merge = [g.rev_parse(src, "refs/heads/topic") or "", g.rev_parse(src, MAIN) or ""]
        g.commit(src, "refs/heads/topic", {"t": f"{size}\n"}, parents=merge)
        peak, payload = peak_rss_mib(command, sync_env)
        assert payload["status"] == "success"
        # both refs move: their labels come from reading the delta's commits past the blob
        assert {r["ref"]: r["action"] for r in payload["refs"]} == {
            MAIN: "update",
            "refs/heads/topic": "update",
        }
        peaks[size] = peak
    assert g.refs(target) == g.refs(src)
    g.git(target, "fsck", "--full")
    assert peaks[96 * MIB] - peaks[8 * MIB] < 24, peaks  # 88 MiB more blob, (almost) no more memory
    assert peaks[96 * MIB] < 150, peaks


# The service's run after one that left LFS objects behind (`transfer: full`): the whole history is read
# for its pointers, and nothing of it is indexed.
FULL_RUN = (
    "import os, sys\n"
    "from gitmirror.mirror.credentials import StaticCredentials\n"
    "from gitmirror.mirror.engine import sync_mirror\n"
    "from gitmirror.mirror.transport import Remote\n"
    "from gitmirror.mirror.urls import parse_remote\n"
    "env = os.environ\n"
    "source = Remote(parse_remote(sys.argv[1]), StaticCredentials(env['GITMIRROR_SOURCE_USERNAME'], "
    "env['GITMIRROR_SOURCE_TOKEN']))\n"
    "target = Remote(parse_remote(sys.argv[2]), StaticCredentials(env['GITMIRROR_TARGET_USERNAME'], "
    "env['GITMIRROR_TARGET_TOKEN']))\n"
    "print(sync_mirror(source, target, mode='full').to_json())\n"
)


@pytest.mark.slow
def test_peak_rss_of_a_cold_and_of_a_full_run_does_not_grow_with_the_largest_blob(
    git_servers: GitServers, sync_env: dict[str, str]
) -> None:
    src, dst = git_servers.source_path, git_servers.target_path
    full = [sys.executable, "-c", FULL_RUN, git_servers.source_url, git_servers.target_url]
    cold = [GITMIRROR, "sync", "--json", git_servers.source_url, git_servers.target_url]
    peaks = {}
    for size in (8 * MIB, 96 * MIB):
        g.commit(src, MAIN, {f"blob-{size}.bin": compressible(size, size // MIB)})
        for ref in list(g.refs(dst)):
            g.delete_ref(dst, ref)
        peaks["cold", size], payload = peak_rss_mib(cold, sync_env)  # into an empty target: streamed
        assert payload["status"] == "success" and g.refs(dst) == g.refs(src)
        g.commit(src, MAIN, {"after.txt": f"{size}\n"})
        peaks["full", size], payload = peak_rss_mib(full, sync_env)
        assert payload["status"] == "success" and payload["stats"]["transfer"] == "full", payload
        assert g.refs(dst) == g.refs(src)
    g.git(dst, "fsck", "--full")
    for kind in ("cold", "full"):
        assert peaks[kind, 96 * MIB] - peaks[kind, 8 * MIB] < 24, peaks
        assert peaks[kind, 96 * MIB] < 150, peaks


# Measured on the development machine with 100,000 branches of 79-character names a side, over a
# baseline process syncing one ref: when each side held its own names and ids (and copies of both
# in scope), a no-op cost 641 bytes a ref; with the target's listing held as its differences from
# the source's, 265. The bound sits between the two.
BIGREFS = 100_000
MAX_BYTES_PER_REF = 420


@pytest.mark.slow
def test_peak_rss_of_a_no_op_sync_of_two_large_listings_holds_the_refs_once(
    git_servers: GitServers, sync_env: dict[str, str], tmp_path: Path
) -> None:
    baseline_src = git_servers.source.create_bare("small.git")
    g.commit(baseline_src, MAIN, {"README": "small\n"})
    small = [GITMIRROR, "sync", "--json", git_servers.source.repo_url("small.git")]
    g.init_bare(git_servers.target.repo_path("small.git"))
    peak_rss_mib([*small, git_servers.target.repo_url("small.git")], sync_env)  # the cold mirror
    baseline, payload = peak_rss_mib([*small, git_servers.target.repo_url("small.git")], sync_env)
    assert payload["status"] == "success" and payload["refs"] == []

    src = git_servers.source_path
    shutil.rmtree(src)
    build_bigrefs(src, BIGREFS)
    shutil.rmtree(git_servers.target_path)
    g.git(tmp_path, "clone", "-q", "--mirror", "--local", str(src), str(git_servers.target_path))
    command = [GITMIRROR, "sync", "--json", git_servers.source_url, git_servers.target_url]
    peak, payload = peak_rss_mib(command, sync_env)
    assert payload["status"] == "success"
    assert payload["refs"] == []  # equal: nothing to push
    per_ref = (peak - baseline) * MIB / BIGREFS
    print(
        f"no-op of 2 x {BIGREFS:,} refs: {peak:.0f} MiB, baseline {baseline:.0f} MiB: {per_ref:.0f} B a ref"
    )
    assert per_ref < MAX_BYTES_PER_REF, (peak, baseline, per_ref)

    # one ref moved among them: still found and pushed (the shared listing is not blind to it)
    moved = bigref_name(BIGREFS // 2)
    g.commit(src, moved, {"moved": "one more commit\n"})
    peak, payload = peak_rss_mib(command, sync_env)
    assert payload["status"] == "success"
    assert [(r["ref"], r["action"]) for r in payload["refs"]] == [(moved, "update")]
    assert g.rev_parse(git_servers.target_path, moved) == g.rev_parse(src, moved)
    # nor held again to plan, fetch and push the one that moved (1,200 bytes a ref before, at 400,000)
    per_ref = (peak - baseline) * MIB / BIGREFS
    print(f"one moved among them: {peak:.0f} MiB: {per_ref:.0f} B a ref")
    assert per_ref < MAX_BYTES_PER_REF, (peak, baseline, per_ref)
