"""A sync costs what its change costs: a merged branch deleted fetches the commits proving it merged (the
source is asked for `want <default tip>` + `have <branch tip>`, commits only where it filters: exactly
the commits above the branch); 100 moved refs among 10,000 want 100 tips and read receive-pack's
advertisement once however many batches they are pushed in. Behaviour is read from the servers'
request logs (and the request bodies they keep), never from timings.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from gitmirror.values import Action, RunStatus
from gitmirror_dev.gitserver import GitHTTPServer, RecordedRequest
from tests.integration.test_incremental import MAIN, servers, sync
from tests.support import gitrepo as g

HISTORY = 400  # commits on main
DEPTH = 40  # the merged branch sits this many commits below main's tip


def _linear_history(repo: Path, commits: int) -> None:
    """`commits` commits on main, each changing a 2 KiB file; the first also adds a 1 MiB blob."""
    stream = bytearray()
    for i in range(commits):
        stream += b"commit refs/heads/main\nmark :%d\n" % (i + 1)
        stream += b"committer T <t@example.invalid> %d +0000\ndata 7\nchange\n" % (1_600_000_000 + i)
        if i:
            stream += b"from :%d\n" % i
        else:
            big = os.urandom(1024 * 1024)
            stream += b"M 100644 inline big.bin\ndata %d\n%s\n" % (len(big), big)
        content = (b"%d\n" % i) * 512
        stream += b"M 100644 inline f%d.txt\ndata %d\n%s\n" % (i % 7, len(content), content)
    g.git(repo, "fast-import", "--quiet", input=bytes(stream))


def _commits_only_pack(repo: Path, *revs: str) -> int:
    commits = g.git(repo, "rev-list", *revs) + "\n"
    return len(g.git_bytes(repo, "pack-objects", "--stdout", "-q", input=commits))


def _fetches(source: GitHTTPServer) -> list[RecordedRequest]:
    """Protocol-v2 fetches that ask for a pack (a negotiation round ends without `done`)."""
    return [
        r
        for r in source.rpc_requests("git-upload-pack")
        if b"command=fetch" in r.body and b"done\n" in r.body
    ]


def _lines(request: RecordedRequest, verb: bytes) -> set[str]:
    return {m.decode() for m in re.findall(rb"[0-9a-f]{4}" + verb + rb" ([^\n]+)\n", request.body)}


def test_deleting_a_merged_branch_fetches_only_the_range(tmp_path: Path) -> None:
    source, target = servers(tmp_path, allow_filter=True)
    try:
        src, dst = source.repo_path("src.git"), target.repo_path("dst.git")
        _linear_history(src, HISTORY)
        g.git(src, "repack", "-adq")
        assert sync(source, target).status == RunStatus.SUCCESS
        merged = g.git(src, "rev-parse", f"{MAIN}~{DEPTH}")
        g.set_ref(dst, "refs/heads/old-release", merged)  # merged into main, then deleted upstream
        source.clear_requests()
        source.record_body_bytes = 64 * 1024

        result = sync(source, target)

        assert result.status == RunStatus.SUCCESS
        assert {r.ref: r.action for r in result.refs} == {"refs/heads/old-release": Action.DELETE}
        assert g.refs(dst) == g.refs(src)
        assert result.stats.transfer == "incremental+graph"
        ranges = [r for r in _fetches(source) if _lines(r, b"have") == {merged}]
        assert len(ranges) == 1, [r.body[:400] for r in _fetches(source)]
        (asked,) = ranges
        assert _lines(asked, b"want") == {g.git(src, "rev-parse", MAIN)}
        assert _lines(asked, b"filter") == {"tree:0"}
        # what came is the commits above the branch: about a commits-only pack of that range, a
        # fraction of the whole commit graph (and nothing of the 1 MiB blob)
        in_range = _commits_only_pack(src, MAIN, f"^{merged}")
        whole_graph = _commits_only_pack(src, MAIN)
        assert asked.response_bytes < 1.5 * in_range + 2048
        assert 1.5 * in_range + 2048 < whole_graph / 2
        # main did not move: no other pack is asked for (every source tip is on the target already)
        assert _fetches(source) == ranges
    finally:
        source.stop()
        target.stop()


def test_an_unmerged_or_newer_target_branch_is_kept_after_a_range_fetch(tmp_path: Path) -> None:
    """Not merged (forked below main's tip with a commit of its own) or ahead of main (main is in its
    history): both stay. The range for each answers "no" exactly, without the whole graph."""
    source, target = servers(tmp_path, allow_filter=True)
    try:
        src, dst = source.repo_path("src.git"), target.repo_path("dst.git")
        _linear_history(src, HISTORY)
        fork = g.git(src, "rev-parse", f"{MAIN}~{DEPTH}")
        side = g.commit(src, "refs/heads/side", {"side.txt": "side\n"}, parents=[fork])
        tip = g.git(src, "rev-parse", MAIN)
        ahead = g.commit(src, "refs/heads/ahead", {"ahead.txt": "ahead\n"}, parents=[tip])
        assert sync(source, target).status == RunStatus.SUCCESS
        g.delete_ref(src, "refs/heads/side")  # gone upstream, never merged
        g.delete_ref(src, "refs/heads/ahead")  # gone upstream, main is below it
        source.clear_requests()
        source.record_body_bytes = 64 * 1024

        result = sync(source, target)

        assert result.status == RunStatus.SUCCESS
        assert result.refs == []  # neither is deleted: their work is not on main
        assert g.rev_parse(dst, "refs/heads/side") == side
        assert g.rev_parse(dst, "refs/heads/ahead") == ahead
        asked = {frozenset(_lines(r, b"have")): r for r in _fetches(source)}
        assert frozenset({side}) in asked and frozenset({ahead}) in asked
        whole_graph = _commits_only_pack(src, MAIN)
        assert asked[frozenset({side})].response_bytes < whole_graph / 2
        assert asked[frozenset({ahead})].response_bytes < 1024  # main is within `ahead`: an empty pack
    finally:
        source.stop()
        target.stop()


def test_ten_thousand_refs_hundred_moved_request_budget(tmp_path: Path) -> None:
    """10,000 branches, 100 of them moved: one listing per side, one fetch wanting exactly the 100 new
    tips, and pushes in batches where only the first reads receive-pack's advertisement."""
    branches, moved, batch = 10_000, 100, 25
    source, target = servers(tmp_path, allow_filter=True)
    try:
        src, dst = source.repo_path("src.git"), target.repo_path("dst.git")
        stream = bytearray(b"commit refs/heads/main\nmark :1\ncommitter T <t@example.invalid> 1 +0000\n")
        stream += b"data 5\nbase\nM 100644 inline README\ndata 6\nhello\n\n"
        for i in range(branches):  # each branch one commit of its own on the base
            stream += b"commit refs/heads/b/%05d\ncommitter T <t@example.invalid> 1 +0000\n" % i
            stream += b"data 5\nwork\nfrom :1\nM 100644 inline w.txt\ndata %d\n%d\n" % (len(str(i)), i)
        g.git(src, "fast-import", "--quiet", input=bytes(stream))
        assert sync(source, target, batch_size=5000).status == RunStatus.SUCCESS
        stream = bytearray()
        for i in range(0, branches, branches // moved):
            stream += b"commit refs/heads/b/%05d\ncommitter T <t@example.invalid> 2 +0000\n" % i
            stream += b"data 5\nmore\nfrom refs/heads/b/%05d^0\n" % i
            stream += b"M 100644 inline f.txt\ndata %d\n%s\n" % (len(str(i)), str(i).encode())
        before = g.refs(src)
        g.git(src, "fast-import", "--quiet", input=bytes(stream))
        source.clear_requests()
        target.clear_requests()
        source.record_body_bytes = 1024 * 1024

        result = sync(source, target, batch_size=batch)

        assert result.status == RunStatus.SUCCESS
        assert len(result.refs) == moved and {r.action for r in result.refs} == {Action.UPDATE}
        assert g.refs(dst) == g.refs(src)
        assert [(r.method, r.service) for r in source.requests] == [
            ("GET", "git-upload-pack"),  # capabilities
            ("POST", "git-upload-pack"),  # ls-refs
            ("POST", "git-upload-pack"),  # one negotiation round: the source is ready after it
            ("POST", "git-upload-pack"),  # the fetch
        ]
        (fetch,) = _fetches(source)
        (negotiation,) = [
            r for r in source.requests if b"command=fetch" in r.body and r not in _fetches(source)
        ]
        # the first round offers the moved refs' old tips (the default branch first, then they) and
        # the fetch offers what that round found in common, no more
        offered = _lines(negotiation, b"have")
        assert len(offered) == 256
        after = g.refs(src)
        assert {before[r] for r in before if after[r] != before[r]} <= offered
        assert _lines(fetch, b"have") == offered
        moved_tips = {sha for ref, sha in after.items() if before[ref] != sha}
        assert len(moved_tips) == moved
        assert _lines(fetch, b"want") == moved_tips
        assert [(r.method, r.service) for r in target.requests] == [
            ("GET", "git-upload-pack"),
            ("POST", "git-upload-pack"),  # ls-refs
            ("GET", "git-receive-pack"),  # read once ...
            *[("POST", "git-receive-pack")] * (moved // batch),  # ... for every batch
        ]
    finally:
        source.stop()
        target.stop()
