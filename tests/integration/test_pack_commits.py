"""Reading a delta's commits straight from a pack file (no index), checked against git's own packs."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from dulwich.objects import Commit, Tag
from dulwich.pack import OFS_DELTA, REF_DELTA
from dulwich.protocol import pkt_line
from dulwich.repo import Repo

from gitmirror.errors import ProtocolFailure, TransientError
from gitmirror.mirror.ancestry import CommitGraph, commits_in_pack
from gitmirror.mirror.engine import _delta_commits
from gitmirror.mirror.transport import FetchedPack
from gitmirror.mirror.transport.http_client import with_fetch_argument
from tests.support import gitrepo as g
from tests.support.packs import entry_kinds

MAIN = "refs/heads/main"


def history(repo: Path) -> str:
    """Commits with long, nearly identical messages (git stores many as deltas of each other), a merge
    and an annotated tag; returns the first commit."""
    g.init_bare(repo)
    boilerplate = "".join(f"line {i}: the same long commit message body\n" for i in range(60))
    first = g.commit(repo, MAIN, {"a.txt": "0\n"}, message="first\n\n" + boilerplate)
    for i in range(1, 30):
        big = boilerplate * 4 + f"revision {i}\n"  # a blob that changes a little: stored as deltas too
        g.commit(
            repo, MAIN, {"a.txt": f"{i}\n" * 50, "big.txt": big}, message=f"change {i}\n\n" + boilerplate
        )
    side = g.commit(
        repo, "refs/heads/side", {"s.txt": "side\n"}, parents=[first], message="side\n" + boilerplate
    )
    g.commit(
        repo, MAIN, {"m.txt": "merge\n"}, parents=[g.rev_parse(repo, MAIN) or "", side], message="merge\n"
    )
    g.tag(repo, "v1", MAIN, annotated=True, message="release\n" + boilerplate)
    return first


def pack(repo: Path, out: Path, *, ofs: bool, exclude: str | None = None) -> Path:
    revs = "refs/heads/main\nrefs/heads/side\nrefs/tags/v1\n" + (f"^{exclude}\n" if exclude else "")
    args = ["pack-objects", "--stdout", "--revs", "--window=50", "--depth=50", "--no-reuse-delta"]
    if ofs:
        args.append("--delta-base-offset")
    out.write_bytes(g.git_bytes(repo, *args, input=revs))
    return out


def expected_objects(repo: Path, exclude: str | None) -> dict[str, str]:
    """id -> type of every commit and tag git would put in that pack."""
    spec = ["--branches", "--tags"] + ([f"^{exclude}"] if exclude else [])
    listed = g.git(repo, "rev-list", "--objects", *spec).splitlines()
    ids = [line.split()[0] for line in listed]
    types = g.git(repo, "cat-file", "--batch-check=%(objectname) %(objecttype)", input="\n".join(ids) + "\n")
    return {
        oid: kind for oid, kind in (line.split() for line in types.splitlines()) if kind in ("commit", "tag")
    }


@pytest.mark.parametrize("exclude_first", [False, True])
def test_commits_of_an_offset_delta_pack_match_git(tmp_path: Path, exclude_first: bool) -> None:
    repo = tmp_path / "r.git"
    first = history(repo)
    exclude = first if exclude_first else None
    path = pack(repo, tmp_path / "p.pack", ofs=True, exclude=exclude)
    assert OFS_DELTA in entry_kinds(path)
    with open(path, "rb") as file:
        found = commits_in_pack(file)
    expected = expected_objects(repo, exclude)
    assert {
        oid.decode(): ("tag" if isinstance(obj, Tag) else "commit") for oid, obj in found.items()
    } == expected
    for oid, obj in found.items():
        if isinstance(obj, Commit):
            parents = g.git(repo, "rev-parse", f"{oid.decode()}^@").split()
            assert [p.decode() for p in obj.parents] == parents
            # the graph's fast path reads the same parents from the header lines alone
            assert [p.decode() for p in found.commit_parents(oid) or ()] == parents
        else:
            assert found.commit_parents(oid) is None
    assert found.commit_parents(b"0" * 40) is None
    # the graph over these commits answers like git, and says "unknown" past the delta's edge
    graph = CommitGraph(found, complete=False)
    tip = g.rev_parse(repo, MAIN) or ""
    side = g.rev_parse(repo, "refs/heads/side") or ""
    assert graph.is_ancestor(side, tip) is True
    assert graph.is_ancestor(tip, side) is (None if exclude_first else False)


def test_commits_are_found_inside_delta_chains(tmp_path: Path) -> None:
    """Some commits of this history are stored as deltas; each is rebuilt and hashed to its real id."""
    repo = tmp_path / "r.git"
    history(repo)
    path = pack(repo, tmp_path / "p.pack", ofs=True)
    g.git_bytes(repo, "index-pack", str(path))
    detail = g.git(repo, "verify-pack", "-v", str(path.with_suffix(".idx")))
    deltified_commits = [
        line.split()[0] for line in detail.splitlines() if " commit " in line and len(line.split()) > 5
    ]
    assert deltified_commits, "the fixture should make git store some commits as deltas"
    with open(path, "rb") as file:
        found = commits_in_pack(file)
    assert {c.encode() for c in deltified_commits} <= set(found)


def test_ref_delta_pack_commits_match_git(tmp_path: Path) -> None:
    """Ref-deltas onto blobs are skipped without knowing their type; commit chains are still placed."""
    repo = tmp_path / "r.git"
    history(repo)
    path = pack(repo, tmp_path / "p.pack", ofs=False)
    assert REF_DELTA in entry_kinds(path) and OFS_DELTA not in entry_kinds(path)
    with open(path, "rb") as file:
        found = commits_in_pack(file)
    assert {oid.decode() for oid in found} == set(expected_objects(repo, None))


def test_fetch_argument_goes_after_the_delimiter() -> None:
    body = pkt_line(b"command=fetch\n") + pkt_line(b"agent=x\n") + b"0001" + pkt_line(b"want abc\n") + b"0000"
    out = with_fetch_argument(body, b"ofs-delta\n")
    assert out == (
        pkt_line(b"command=fetch\n")
        + pkt_line(b"agent=x\n")
        + b"0001"
        + pkt_line(b"ofs-delta\n")
        + pkt_line(b"want abc\n")
        + b"0000"
    )
    ls_refs = pkt_line(b"command=ls-refs\n") + b"0001" + b"0000"
    assert with_fetch_argument(ls_refs, b"ofs-delta\n") == ls_refs


def test_a_damaged_pack_is_a_protocol_failure_not_a_crash(tmp_path: Path) -> None:
    repo = tmp_path / "r.git"
    history(repo)
    good = pack(repo, tmp_path / "p.pack", ofs=True).read_bytes()
    damaged = good[:200] + bytes(b ^ 0xFF for b in good[200:400]) + good[400:-20]
    resealed = damaged + hashlib.sha1(damaged).digest()  # a checksum that matches the damage
    store = Repo.init_bare(str(tmp_path / "scratch.git"), mkdir=True)
    try:
        for data, truncated in ((damaged + good[-20:], True), (good[:-100], True), (resealed, False)):
            fetched = FetchedPack(store)
            try:
                for start in range(0, len(data), 7):  # in pieces smaller than the trailer, too
                    fetched.write(data[start : start + 7])
                if truncated:
                    with pytest.raises(TransientError, match="truncated or damaged pack"):
                        fetched.finish()
                    continue
                fetched.finish()
                with pytest.raises(ProtocolFailure, match="cannot be read"):
                    _delta_commits(fetched)
            finally:
                fetched.discard()
    finally:
        store.close()


def test_a_whole_pack_written_in_pieces_passes_the_checksum(tmp_path: Path) -> None:
    repo = tmp_path / "r.git"
    history(repo)
    good = pack(repo, tmp_path / "p.pack", ofs=True).read_bytes()
    store = Repo.init_bare(str(tmp_path / "scratch.git"), mkdir=True)
    fetched = FetchedPack(store)
    try:
        for piece in (good[:5], good[5:-3], good[-3:]):
            fetched.write(piece)
        fetched.finish()
        assert fetched.size == len(good)
    finally:
        fetched.discard()
        store.close()


def test_parents_of_commits_with_extra_headers_and_of_a_non_canonical_one() -> None:
    """Header lines after the parents (a signature, an encoding, a mergetag) are not parents; a
    commit whose first line is not `tree` is parsed by dulwich instead."""
    from dulwich.errors import ObjectFormatException
    from dulwich.objects import Commit as DulwichCommit

    from gitmirror.mirror.ancestry import PackCommits

    p1, p2 = "1" * 40, "2" * 40
    signed = (
        f"tree {'a' * 40}\nparent {p1}\nparent {p2}\nauthor A <a@x> 1 +0000\ncommitter A <a@x> 1 +0000\n"
        "encoding ISO-8859-1\ngpgsig -----BEGIN PGP SIGNATURE-----\n parent " + "3" * 40 + "\n -----END PGP "
        "SIGNATURE-----\n\nmessage\nparent " + "4" * 40 + "\n"
    ).encode()
    root = f"tree {'a' * 40}\nauthor A <a@x> 1 +0000\ncommitter A <a@x> 1 +0000\n\nroot\n".encode()
    store = PackCommits()
    signed_id, root_id = store.add(DulwichCommit.type_num, signed), store.add(DulwichCommit.type_num, root)
    assert store.commit_parents(signed_id) == (p1.encode(), p2.encode())
    assert store.commit_parents(root_id) == ()
    # not canonical: dulwich's parser has the last word (it refuses this one), as before the fast path
    odd = f"author A <a@x> 1 +0000\ntree {'a' * 40}\nparent {p1}\ncommitter A <a@x> 1 +0000\n\nodd\n".encode()
    odd_id = store.add(DulwichCommit.type_num, odd)
    with pytest.raises(ObjectFormatException) as by_dulwich:
        store[odd_id]
    with pytest.raises(ObjectFormatException) as by_fast_path:
        store.commit_parents(odd_id)
    assert str(by_fast_path.value) == str(by_dulwich.value)
    assert CommitGraph(store).parents(signed_id) == (p1.encode(), p2.encode())
