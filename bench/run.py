"""gitmirror benchmark harness (``make bench``).

Mirrors real and generated repositories between two loopback smart-HTTP servers
(the project's own ``gitmirror_dev.gitserver``) with several contenders and reports
wall time, bytes on the wire, peak RSS, peak TMPDIR usage and whether the target's
refs equal the source's afterwards; also runs the receiver benchmark (bench/receiver.py)
and checks the issue's goals. See bench/README.md.

    .venv/bin/python bench/run.py                      # default suite, 5 runs
    .venv/bin/python bench/run.py --quick              # smoke test (1 run, small repos)
    .venv/bin/python bench/run.py --scenarios httpx-cold,noop --contenders git,gitmirror --runs 3
    .venv/bin/python bench/run.py --pip                # add the pip scenarios and bigblob-incremental
    .venv/bin/python bench/run.py --no-receiver        # git scenarios only
"""

from __future__ import annotations

import argparse
import base64
import datetime as dt
import json
import os
import platform
import random
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import installed
import lfs as lfs_bench
import measure
import receiver

from gitmirror_dev.bigrefs import build_bigrefs
from gitmirror_dev.gitserver import GitHTTPServer
from gitmirror_dev.samples import find_bundle

BENCH_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCH_DIR.parent
CACHE_DIR = BENCH_DIR / ".cache"
RESULTS_DIR = BENCH_DIR / "results"
PYTHON = sys.executable
# The source server allows partial clone like GitHub and GitLab do (gitmirror's commit-graph-only
# ancestry fetch uses `filter tree:0`) and wants by object id.
SOURCE_SERVER_CONFIG = {"uploadpack.allowFilter": "true", "uploadpack.allowAnySHA1InWant": "true"}

MIB = 1024 * 1024
BIGBLOB_MIB = int(os.environ.get("BENCH_BIGBLOB_MIB", "1024"))
INCR_N = 20  # newest first-parent commits of the default branch missing in the target
INCR_K = 2  # newest tags missing in the target
HISTORY_INCR_N, HISTORY_INCR_K = 200, 3  # the same recipe on the large histories
FIXED_ENV = {
    "GIT_AUTHOR_NAME": "Bench",
    "GIT_AUTHOR_EMAIL": "bench@example.invalid",
    "GIT_AUTHOR_DATE": "1700000000 +0000",
    "GIT_COMMITTER_NAME": "Bench",
    "GIT_COMMITTER_EMAIL": "bench@example.invalid",
    "GIT_COMMITTER_DATE": "1700000000 +0000",
}


# The public homes of the benchmark repositories: without ../shared/bench (or $BENCH_BUNDLE_DIR), clone
# them and bundle them (bench/README.md, "Benchmark repositories").
UPSTREAMS = {
    "httpx": "https://github.com/encode/httpx",
    "pip": "https://github.com/pypa/pip",
    "git": "https://github.com/git/git",  # the large history (--large): 85k commits, about 300 MiB
}
FETCHED_BUNDLES = CACHE_DIR / "bundles"  # where run.py keeps the bundles it made itself


def bundle_hint(names: list[str]) -> str:
    """How to make the missing bundles: clone each upstream as a mirror, bundle its branches and tags."""
    steps = "; ".join(
        f"git clone --mirror {UPSTREAMS[n]} {n}.git && git -C {n}.git bundle create ../{n}.bundle "
        "HEAD --branches --tags"
        for n in names
    )
    return (
        f"make the bundles with `{steps}` in a directory and set BENCH_BUNDLE_DIR to it "
        "(or put them in ../shared/bench beside the checkout); see bench/README.md"
    )


def locate_bundle(name: str, fetch: bool) -> Path | None:
    """`name`.bundle from $BENCH_BUNDLE_DIR or ../shared/bench, else the one made earlier in
    bench/.cache/bundles; else (with `fetch`) clone the public repository and bundle it there."""
    found = find_bundle(f"{name}.bundle")
    made = FETCHED_BUNDLES / f"{name}.bundle"
    if found is not None or made.is_file() or not fetch:
        return found or (made if made.is_file() else None)
    FETCHED_BUNDLES.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=f"fetch-{name}-", dir=FETCHED_BUNDLES) as tmp:
        clone = Path(tmp) / f"{name}.git"
        log(
            f"{name}.bundle not found: cloning {UPSTREAMS[name]} (once; kept in {made.parent.relative_to(REPO_ROOT)})"
        )
        t0 = time.monotonic()
        res = subprocess.run(
            ["git", "clone", "--mirror", "--progress", UPSTREAMS[name], str(clone)],
            env=SETUP_ENV,
            check=False,
        )
        if res.returncode != 0:
            log(f"cloning {UPSTREAMS[name]} failed (exit {res.returncode})")
            return None
        partial = Path(tmp) / made.name
        git("-C", clone, "bundle", "create", "-q", partial, "HEAD", "--branches", "--tags")
        partial.rename(made)
        log(f"made {made.relative_to(REPO_ROOT)} in {time.monotonic() - t0:.0f}s")
    return made


def log(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def clean_env() -> dict[str, str]:
    """Ambient env without proxies/git overrides; git runs with its defaults (no user/system config)."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("GIT_", "GITMIRROR_"))
        and k.lower() not in ("http_proxy", "https_proxy", "all_proxy")
    }
    env.update(
        {
            "NO_PROXY": "127.0.0.1,localhost",
            "no_proxy": "127.0.0.1,localhost",
            "GIT_TERMINAL_PROMPT": "0",
            "GIT_CONFIG_NOSYSTEM": "1",
            "GIT_CONFIG_GLOBAL": os.devnull,
        }
    )
    return env


SETUP_ENV = {**clean_env(), **FIXED_ENV}


def git(*args: str | os.PathLike[str], input: bytes | None = None) -> str:
    res = subprocess.run(["git", *map(str, args)], input=input, capture_output=True, env=SETUP_ENV)
    if res.returncode != 0:
        raise RuntimeError(f"git {' '.join(map(str, args))} failed: {res.stderr.decode(errors='replace')}")
    return res.stdout.decode()


def refs_of(repo: Path) -> dict[str, str]:
    out = git("-C", repo, "for-each-ref", "--format=%(objectname) %(refname)", "refs/heads", "refs/tags")
    return {name: sha for sha, name in (line.split(" ", 1) for line in out.splitlines())}


def repo_info(repo: Path) -> dict[str, Any]:
    counts = dict(
        line.split(": ", 1) for line in git("-C", repo, "count-objects", "-v").splitlines() if ": " in line
    )
    refs = refs_of(repo)
    return {
        "branches": sum(1 for r in refs if r.startswith("refs/heads/")),
        "tags": sum(1 for r in refs if r.startswith("refs/tags/")),
        "objects": int(counts.get("in-pack", 0)) + int(counts.get("count", 0)),
        "size_mib": round((int(counts.get("size-pack", 0)) + int(counts.get("size", 0))) / 1024, 1),
    }


def server_repack(repo: Path) -> None:
    """Give a source repo the shape a hosting server keeps: one pack, delta-searched, with a bitmap.

    Without this, upload-pack on a fresh fast-import pack re-runs the delta search on every
    fetch (13 s for 200 MiB of random blobs), which would dominate every contender's time.
    """
    git("-C", repo, "repack", "-a", "-d", "-b", "-q")


def local_mirror(src: Path, dst: Path) -> None:
    """Bare copy of src at dst sharing object files by hard link (cheap, independent refs)."""
    git("clone", "-q", "--mirror", "--local", src, dst)
    git("-C", dst, "remote", "remove", "origin")


# --------------------------------------------------------------------------------------------
# Scenario preparation
# --------------------------------------------------------------------------------------------


@dataclass
class Config:
    work: Path
    blob_mib: int
    manyrefs: int
    history_commits: int = 60_000
    manyrefs_changed: tuple[int, int] = (10_000, 100)  # branches, changed ones (manyrefs-incremental)
    bigrefs: int = 400_000  # branches of bigrefs-noop ($BENCH_BIGREFS; 20,000 with --quick)
    fetch: bool = True
    _restored: dict[str, Path] = field(default_factory=dict)

    def restored(self, name: str) -> Path:
        """The bundle restored as a bare repo (once per invocation)."""
        if name not in self._restored:
            bundle = locate_bundle(name, self.fetch)
            if bundle is None:
                raise FileNotFoundError(f"{name}.bundle not found (bench/README.md: Benchmark repositories)")
            dst = self.work / "base" / f"{name}.git"
            git("clone", "-q", "--mirror", bundle, dst)
            git("-C", dst, "remote", "remove", "origin")
            server_repack(dst)
            self._restored[name] = dst
        return self._restored[name]


@dataclass
class Prepared:
    source: Path  # the source repo (inside the source server root)
    template: Path | None  # copied to make each run's target; None = empty target
    info: dict[str, Any]
    local: bool = False  # contenders get both repositories' paths instead of their HTTP URLs


def _incremental_template(base: Path, dst: Path, n: int, k: int) -> dict[str, Any]:
    """The incremental recipe of bench/README.md (Benchmark repositories) + one divergent branch."""
    local_mirror(base, dst)
    d = git("-C", dst, "symbolic-ref", "--short", "HEAD").strip()
    contains = git("-C", dst, "for-each-ref", "--contains", f"{d}~{n - 1}", "--format=%(refname)").split()
    doomed = [r for r in contains if r != f"refs/heads/{d}"]
    git("-C", dst, "update-ref", "--stdin", input="".join(f"delete {r}\n" for r in doomed).encode())
    git("-C", dst, "update-ref", f"refs/heads/{d}", f"{d}~{n}")
    newest_tags = git(
        "-C", dst, "for-each-ref", "--sort=-creatordate", f"--count={k}", "--format=%(refname)", "refs/tags"
    ).split()
    git("-C", dst, "update-ref", "--stdin", input="".join(f"delete {r}\n" for r in newest_tags).encode())

    # Expected delta (before adding the divergent commit, which the source cannot resolve).
    haves = "".join(f"^{sha}\n" for sha in set(refs_of(dst).values())).encode()
    commits = int(git("-C", base, "rev-list", "--count", "--branches", "--tags", "--stdin", input=haves))
    objects = len(
        git("-C", base, "rev-list", "--objects", "--branches", "--tags", "--stdin", input=haves).splitlines()
    )

    # One divergent branch: a commit on the target that the source does not have.
    branches = sorted(r for r in refs_of(dst) if r.startswith("refs/heads/") and r != f"refs/heads/{d}")
    divergent = branches[0]
    tree = git("-C", dst, "rev-parse", f"{divergent}^{{tree}}").strip()
    new = git("-C", dst, "commit-tree", tree, "-p", divergent, "-m", "bench: divergent commit").strip()
    git("-C", dst, "update-ref", divergent, new)
    git("-C", dst, "gc", "-q", "--prune=now")
    return {
        "default_branch": d,
        "n": n,
        "k": k,
        "refs_deleted_in_target": len(doomed) + len(newest_tags),
        "deleted_tags": [t.removeprefix("refs/tags/") for t in newest_tags],
        "divergent_branch": divergent.removeprefix("refs/heads/"),
        "expected_commits": commits,
        "expected_objects": objects,
    }


def prep_bundle_cold(name: str) -> Callable[[Config, Path], Prepared]:
    def prep(cfg: Config, src: Path) -> Prepared:
        local_mirror(cfg.restored(name), src)
        return Prepared(src, None, {"target": "empty"})

    return prep


def prep_bundle_local(name: str) -> Callable[[Config, Path], Prepared]:
    def prep(cfg: Config, src: Path) -> Prepared:
        local_mirror(cfg.restored(name), src)
        return Prepared(src, None, {"target": "empty", "transport": "local paths"}, local=True)

    return prep


def prep_bigblob_incremental(cfg: Config, src: Path) -> Prepared:
    """A small repository, then one commit adding a highly compressible BIGBLOB_MIB blob (a ~1 MiB
    delta on the wire that inflates to the blob's size): memory must not follow the blob."""
    base = _cached("bigblob-base-v1.git", lambda p: build_blobs(p, 5))
    template = cfg.work / "templates" / src.name
    local_mirror(base, template)

    def build(dst: Path) -> None:
        local_mirror(base, dst)
        proc = subprocess.Popen(
            ["git", "-C", str(dst), "fast-import", "--quiet"], stdin=subprocess.PIPE, env=SETUP_ENV
        )
        assert proc.stdin is not None
        msg = b"one big blob\n"
        proc.stdin.write(b"commit refs/heads/main\n")
        proc.stdin.write(b"committer Bench <bench@example.invalid> 1700002000 +0000\n")
        proc.stdin.write(b"data %d\n%b\nfrom refs/heads/main^0\n" % (len(msg), msg))
        proc.stdin.write(b"M 100644 inline big.bin\ndata %d\n" % (BIGBLOB_MIB * MIB))
        block = random.Random("bench-bigblob").randbytes(1024) + bytes(MIB - 1024)  # ~1000:1
        for _ in range(BIGBLOB_MIB * MIB // len(block)):
            proc.stdin.write(block)
        proc.stdin.write(block[: BIGBLOB_MIB * MIB % len(block)] + b"\n")
        proc.stdin.close()
        if proc.wait() != 0:
            raise RuntimeError("git fast-import failed")
        server_repack(dst)

    local_mirror(_cached(f"bigblob-{BIGBLOB_MIB}mib-v1.git", build), src)
    return Prepared(src, template, {"target": "one commit behind", "blob_mib": BIGBLOB_MIB})


def prep_bundle_incremental(name: str) -> Callable[[Config, Path], Prepared]:
    def prep(cfg: Config, src: Path) -> Prepared:
        local_mirror(cfg.restored(name), src)
        template = cfg.work / "templates" / src.name
        info = _incremental_template(src, template, INCR_N, INCR_K)
        return Prepared(src, template, {"target": "older state + divergent branch", **info})

    return prep


def prep_noop(cfg: Config, src: Path) -> Prepared:
    local_mirror(cfg.restored("httpx"), src)
    template = cfg.work / "templates" / src.name
    local_mirror(src, template)
    return Prepared(src, template, {"target": "identical to source"})


def _fast_import(dst: Path, stream_writer: Callable[[Any], None], init: bool = True) -> None:
    """Feed a fast-import stream into dst (a new bare repository unless init is False)."""
    if init:
        git("init", "-q", "--bare", dst)
    proc = subprocess.Popen(
        ["git", "-C", str(dst), "fast-import", "--quiet"],
        stdin=subprocess.PIPE,
        env=SETUP_ENV,
    )
    assert proc.stdin is not None
    stream_writer(proc.stdin)
    proc.stdin.close()
    if proc.wait() != 0:
        raise RuntimeError("git fast-import failed")


def _cached(name: str, build: Callable[[Path], None]) -> Path:
    path = CACHE_DIR / name
    if path.is_dir():
        return path
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f"{name}.tmp-", dir=CACHE_DIR))
    shutil.rmtree(tmp)
    t0 = time.monotonic()
    try:
        build(tmp)
        tmp.rename(path)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    log(f"generated {path.relative_to(REPO_ROOT)} in {time.monotonic() - t0:.1f}s")
    return path


def build_blobs(dst: Path, total_mib: int) -> None:
    """~total_mib MiB of incompressible blobs: 5 MiB files spread over <= 4 commits (seeded, reproducible)."""
    file_mib = min(5, total_mib)
    nfiles = max(1, total_mib // file_mib)
    ncommits = min(4, nfiles)

    def write(w: Any) -> None:
        per_commit = -(-nfiles // ncommits)
        idx = 0
        for c in range(ncommits):
            msg = f"blobs {c + 1}/{ncommits}\n".encode()
            w.write(b"commit refs/heads/main\n")
            w.write(b"mark :%d\n" % (c + 1))
            w.write(b"committer Bench <bench@example.invalid> %d +0000\n" % (1700000000 + c))
            w.write(b"data %d\n%b\n" % (len(msg), msg))
            for _ in range(per_commit):
                if idx >= nfiles:
                    break
                data = random.Random(f"bench-blob-{idx}").randbytes(file_mib * MIB)
                w.write(b"M 100644 inline data/blob-%03d.bin\n" % idx)
                w.write(b"data %d\n" % len(data))
                w.write(data)
                w.write(b"\n")
                idx += 1
        w.write(b"reset refs/tags/v1.0\nfrom :%d\n\n" % ncommits)

    _fast_import(dst, write)
    git("-C", dst, "symbolic-ref", "HEAD", "refs/heads/main")
    server_repack(dst)


def build_manyrefs(dst: Path, n: int) -> None:
    """A base commit on main plus n branches, each with one small commit of its own."""

    def write(w: Any) -> None:
        w.write(
            b"commit refs/heads/main\nmark :1\n"
            b"committer Bench <bench@example.invalid> 1700000000 +0000\n"
            b"data 5\nbase\nM 100644 inline README\ndata 6\nhello\n\n"
        )
        for i in range(n):
            content = b"branch %d\n" % i
            w.write(b"commit refs/heads/branch/%05d\n" % i)
            w.write(b"committer Bench <bench@example.invalid> %d +0000\n" % (1700000001 + i))
            w.write(b"data 12\nbranch work\nfrom :1\n")
            w.write(b"M 100644 inline file.txt\ndata %d\n%b\n" % (len(content), content))

    _fast_import(dst, write)
    git("-C", dst, "symbolic-ref", "HEAD", "refs/heads/main")
    git("-C", dst, "pack-refs", "--all")
    server_repack(dst)


def prep_bigrefs_noop(cfg: Config, src: Path) -> Prepared:
    """cfg.bigrefs branches on both sides, the target equal to the source: a no-op that is all listing
    (400,000 of them make a 50 MB ls-refs answer per side)."""
    cached = _cached(f"bigrefs-{cfg.bigrefs}-v1.git", lambda p: build_bigrefs(p, cfg.bigrefs, SETUP_ENV))
    template = cfg.work / "templates" / src.name
    local_mirror(cached, template)
    local_mirror(cached, src)
    return Prepared(src, template, {"target": "identical to source", "branches": cfg.bigrefs + 1})


def prep_blobs(cfg: Config, src: Path) -> Prepared:
    cached = _cached(f"blobs-{cfg.blob_mib}mib-v2.git", lambda p: build_blobs(p, cfg.blob_mib))
    local_mirror(cached, src)
    return Prepared(src, None, {"target": "empty", "blob_mib": cfg.blob_mib})


def prep_blobs_incremental(cfg: Config, src: Path) -> Prepared:
    """The blob repository one small commit and one tag later; the target has the earlier state."""
    cached = _cached(f"blobs-{cfg.blob_mib}mib-v2.git", lambda p: build_blobs(p, cfg.blob_mib))
    template = cfg.work / "templates" / src.name
    local_mirror(cached, template)
    local_mirror(cached, src)

    def write(w: Any) -> None:
        msg, content = b"a small change\n", b"changed\n"
        w.write(b"commit refs/heads/main\n")
        w.write(b"committer Bench <bench@example.invalid> 1700001000 +0000\n")
        w.write(b"data %d\n%b\nfrom refs/heads/main^0\n" % (len(msg), msg))
        w.write(b"M 100644 inline CHANGES.txt\ndata %d\n%b\n" % (len(content), content))
        w.write(b"reset refs/tags/v1.1\nfrom refs/heads/main\n\n")

    _fast_import(src, write, init=False)
    return Prepared(src, template, {"target": "one commit and one tag behind", "blob_mib": cfg.blob_mib})


def prep_manyrefs(cfg: Config, src: Path) -> Prepared:
    cached = _cached(f"manyrefs-{cfg.manyrefs}-v2.git", lambda p: build_manyrefs(p, cfg.manyrefs))
    local_mirror(cached, src)
    return Prepared(src, None, {"target": "empty", "branches_generated": cfg.manyrefs})


def build_history(dst: Path, commits: int) -> None:
    """A long history of small changes, shaped like a busy project's: a first-parent chain on main where
    every 10th commit merges a two-commit topic branch, an annotated tag every commits/60 first-parent
    commits and a maintenance branch every commits/6 (seeded by the loop, reproducible)."""
    tag_every, maint_every = max(1, commits // 60), max(1, commits // 6)

    def write(w: Any) -> None:
        mark, made, first_parent = 0, 0, 0
        main: int | None = None

        def commit(ref: bytes, parents: list[int], path: bytes) -> int:
            nonlocal mark, made
            mark += 1
            made += 1
            when = 1_500_000_000 + made * 60
            msg = b"change %d\n" % made
            body = b"line %d of %s\n" % (made, path) * 4
            w.write(b"commit %s\nmark :%d\n" % (ref, mark))
            w.write(b"author Bench <bench@example.invalid> %d +0000\n" % when)
            w.write(b"committer Bench <bench@example.invalid> %d +0000\n" % when)
            w.write(b"data %d\n%s" % (len(msg), msg))
            if parents:
                w.write(b"from :%d\n" % parents[0])
            for p in parents[1:]:
                w.write(b"merge :%d\n" % p)
            w.write(b"M 100644 inline %s\ndata %d\n%s\n" % (path, len(body), body))
            return mark

        while made < commits:
            path = b"src/d%02d/f%02d.txt" % (made % 50, made % 37)
            if main is not None and first_parent % 10 == 9:
                topic = commit(b"refs/heads/bench-topic", [main], path)
                topic = commit(b"refs/heads/bench-topic", [topic], path + b".topic")
                main = commit(b"refs/heads/main", [main, topic], b"MERGES")
            else:
                main = commit(b"refs/heads/main", [main] if main else [], path)
            first_parent += 1
            if first_parent % tag_every == 0:
                msg = b"release %d\n" % first_parent
                w.write(b"tag v%d\nfrom :%d\n" % (first_parent, main))
                w.write(b"tagger Bench <bench@example.invalid> %d +0000\n" % (1_500_000_000 + made * 60))
                w.write(b"data %d\n%s\n" % (len(msg), msg))
            if first_parent % maint_every == 0:
                w.write(b"reset refs/heads/maint-%d\nfrom :%d\n\n" % (first_parent // maint_every, main))

    _fast_import(dst, write)
    git("-C", dst, "update-ref", "-d", "refs/heads/bench-topic")
    git("-C", dst, "symbolic-ref", "HEAD", "refs/heads/main")
    server_repack(dst)


def history(cfg: Config) -> Path:
    return _cached(f"history-{cfg.history_commits}-v1.git", lambda p: build_history(p, cfg.history_commits))


# The merged branch the source deleted: this many first-parent commits behind the default branch.
DELETE_DEPTH = 1000


def _commits_only_pack_bytes(repo: Path, revs: list[str]) -> int:
    """Size of a pack of just the commits `git rev-list revs` lists: the least a fetch proving the
    ancestry could cost (no trees, no blobs)."""
    commits = git("-C", repo, "rev-list", *revs).encode()
    res = subprocess.run(
        ["git", "-C", str(repo), "pack-objects", "--stdout", "-q"],
        input=commits,
        capture_output=True,
        env=SETUP_ENV,
        check=True,
    )
    return len(res.stdout)


def prep_delete_merged(base: Callable[[Config], Path]) -> Callable[[Config, Path], Prepared]:
    """The target is the source plus one branch DELETE_DEPTH first-parent commits behind the default
    branch (merged, then deleted upstream): the sync must prove it merged and delete it."""

    def prep(cfg: Config, src: Path) -> Prepared:
        local_mirror(base(cfg), src)
        template = cfg.work / "templates" / src.name
        local_mirror(src, template)
        d = git("-C", src, "symbolic-ref", "--short", "HEAD").strip()
        depth = min(DELETE_DEPTH, int(git("-C", src, "rev-list", "--first-parent", "--count", d)) - 1)
        tip = git("-C", src, "rev-parse", f"{d}~{depth}").strip()
        git("-C", template, "update-ref", "refs/heads/bench/merged-feature", tip)
        return Prepared(
            src,
            template,
            {
                "target": f"source + a merged branch at {d}~{depth}",
                "default_branch": d,
                "depth": depth,
                "range_commits": int(git("-C", src, "rev-list", "--count", d, f"^{tip}")),
                "range_commits_pack_bytes": _commits_only_pack_bytes(src, [d, f"^{tip}"]),
            },
        )

    return prep


def prep_history_cold(cfg: Config, src: Path) -> Prepared:
    local_mirror(history(cfg), src)
    return Prepared(src, None, {"target": "empty", "commits_generated": cfg.history_commits})


def prep_history_incremental(cfg: Config, src: Path) -> Prepared:
    local_mirror(history(cfg), src)
    template = cfg.work / "templates" / src.name
    info = _incremental_template(src, template, HISTORY_INCR_N, HISTORY_INCR_K)
    return Prepared(src, template, {"target": "older state + divergent branch", **info})


def prep_manyrefs_incremental(cfg: Config, src: Path) -> Prepared:
    """Thousands of branches of which a few moved: each changed branch got one new commit."""
    n, changed = cfg.manyrefs_changed
    cached = _cached(f"manyrefs-{n}-v2.git", lambda p: build_manyrefs(p, n))
    template = cfg.work / "templates" / src.name
    local_mirror(cached, template)
    local_mirror(cached, src)
    moved = [i * (n // changed) for i in range(changed)]

    def write(w: Any) -> None:
        for i in moved:
            msg, content = b"more work\n", b"branch %d, again\n" % i
            w.write(b"commit refs/heads/branch/%05d\n" % i)
            w.write(b"committer Bench <bench@example.invalid> %d +0000\n" % (1700100000 + i))
            w.write(b"data %d\n%s" % (len(msg), msg))
            w.write(b"from refs/heads/branch/%05d^0\n" % i)
            w.write(b"M 100644 inline file.txt\ndata %d\n%s\n" % (len(content), content))

    _fast_import(src, write, init=False)
    git("-C", src, "pack-refs", "--all")
    return Prepared(
        src,
        template,
        {"target": f"{n} branches, {changed} of them one commit behind", "branches": n, "changed": changed},
    )


@dataclass
class Scenario:
    name: str
    description: str
    prepare: Callable[[Config, Path], Prepared]
    group: str = ""  # "" = run by default; "pip" = with --pip; "large" = with --large
    bundle: str | None = None  # the real repository it needs (an optional bundle, see bundle_hint)
    contenders: tuple[str, ...] | None = None  # None = all; else only these (the others add nothing here)


PEERS = ("git-fetch-delta", "gitmirror")  # the kept-copy peer is the anchor where the target has content
# dulwich-naive takes minutes on large histories
WITHOUT_NAIVE = ("git", "git-fetch-delta", "gitmirror", "gitmirror-no-lfs")


def _bundle_scenarios(name: str, group: str, what: str) -> list[Scenario]:
    return [
        Scenario(
            f"{name}-cold",
            f"full mirror of {what} into an empty target",
            prep_bundle_cold(name),
            group=group,
            bundle=name,
            contenders=WITHOUT_NAIVE if group == "large" else None,
        ),
        Scenario(
            f"{name}-incremental",
            f"{what}; target lacks the newest {INCR_N} first-parent commits of the default branch and "
            f"{INCR_K} newest tags, and has one divergent branch",
            prep_bundle_incremental(name),
            group=group,
            bundle=name,
            contenders=WITHOUT_NAIVE if group == "large" else None,
        ),
        Scenario(
            f"{name}-delete-merged",
            f"{what}; the target also has a branch {DELETE_DEPTH} first-parent commits behind the default "
            "branch, merged and deleted upstream",
            prep_delete_merged(lambda cfg: cfg.restored(name)),
            group=group,
            bundle=name,
            contenders=PEERS,
        ),
    ]


SCENARIOS = {
    s.name: s
    for s in [
        Scenario(
            "httpx-cold",
            "full mirror of httpx into an empty target",
            prep_bundle_cold("httpx"),
            bundle="httpx",
        ),
        Scenario(
            "httpx-incremental",
            f"httpx; target lacks the newest {INCR_N} first-parent commits of master and {INCR_K} newest "
            "tags, and has one divergent branch",
            prep_bundle_incremental("httpx"),
            bundle="httpx",
        ),
        Scenario(
            "blobs-cold", "generated repo of incompressible 5 MiB blobs into an empty target", prep_blobs
        ),
        Scenario(
            "blobs-incremental",
            "the blob repository one small commit and one tag later; the target has the earlier state",
            prep_blobs_incremental,
        ),
        Scenario(
            "manyrefs", "generated repo with thousands of small branches into an empty target", prep_manyrefs
        ),
        Scenario(
            "manyrefs-incremental",
            "generated repo with 10,000 branches (1,000 with --quick); 100 of them (10) got a new commit",
            prep_manyrefs_incremental,
            contenders=PEERS,
        ),
        Scenario("noop", "httpx; target already equals source", prep_noop, bundle="httpx"),
        Scenario(
            "bigrefs-noop",
            "generated repo with 400,000 branches (a 50 MB ls-refs answer; 20,000 with --quick); target "
            "already equals source",
            prep_bigrefs_noop,
            contenders=PEERS,
        ),
        Scenario(
            "history-cold",
            "generated long history (60,000 commits; 5,000 with --quick) into an empty target",
            prep_history_cold,
            contenders=WITHOUT_NAIVE,
        ),
        Scenario(
            "history-incremental",
            f"the generated history; target lacks the newest {HISTORY_INCR_N} first-parent commits of main "
            f"and {HISTORY_INCR_K} newest tags, and has one divergent branch",
            prep_history_incremental,
            contenders=WITHOUT_NAIVE,
        ),
        Scenario(
            "history-delete-merged",
            f"the generated history; the target also has a branch {DELETE_DEPTH} first-parent commits behind "
            "main, merged and deleted upstream",
            prep_delete_merged(history),
            contenders=PEERS,
        ),
        *_bundle_scenarios("pip", "pip", "pip"),
        Scenario(
            "pip-local",
            "full mirror of pip between two local bare repositories (paths, no HTTP)",
            prep_bundle_local("pip"),
            group="pip",
            bundle="pip",
        ),
        Scenario(
            "bigblob-incremental",
            f"an incremental delta holding one {BIGBLOB_MIB} MiB highly compressible blob",
            prep_bigblob_incremental,
            group="pip",
        ),
        *_bundle_scenarios("git", "large", "git/git (fetched from GitHub when no git.bundle is found)"),
    ]
}


# --------------------------------------------------------------------------------------------
# Contenders
# --------------------------------------------------------------------------------------------


@dataclass
class Creds:
    src_user: str
    src_token: str
    dst_user: str
    dst_token: str

    @classmethod
    def random(cls) -> Creds:
        return cls("bench-src", secrets.token_hex(16), "bench-dst", secrets.token_hex(16))

    def secrets(self) -> list[str]:
        out = [self.src_token, self.dst_token]
        for u, t in ((self.src_user, self.src_token), (self.dst_user, self.dst_token)):
            out.append(base64.b64encode(f"{u}:{t}".encode()).decode())
        return out

    def gitmirror_env(self) -> dict[str, str]:
        return {
            "GITMIRROR_SOURCE_USERNAME": self.src_user,
            "GITMIRROR_SOURCE_TOKEN": self.src_token,
            "GITMIRROR_TARGET_USERNAME": self.dst_user,
            "GITMIRROR_TARGET_TOKEN": self.dst_token,
        }


def git_auth_env(user: str, token: str) -> dict[str, str]:
    """http.extraHeader via GIT_CONFIG_* env: equivalent to `-c http.extraHeader=...`, but not in argv."""
    header = "Authorization: Basic " + base64.b64encode(f"{user}:{token}".encode()).decode()
    return {"GIT_CONFIG_COUNT": "1", "GIT_CONFIG_KEY_0": "http.extraHeader", "GIT_CONFIG_VALUE_0": header}


Step = tuple[str, list[str], dict[str, str]]  # (label, argv, extra env)


class Contender:
    name = ""
    description = ""

    def available(self) -> tuple[bool, str]:
        return True, ""

    def not_applicable(self, prepared: Prepared) -> str:
        """Why this contender does not run in a scenario ("" = it does)."""
        return ""

    def prepare(self, target: Path, state: Path) -> None:
        """Untimed set-up before a run; ``state`` is a scratch directory outside TMPDIR."""

    def steps(self, src_url: str, dst_url: str, tmpdir: Path, creds: Creds, state: Path) -> list[Step]:
        raise NotImplementedError

    def tool_result(self, stdout: str) -> dict[str, Any] | None:
        """The tool's own JSON report, if it prints one."""
        for candidate in (stdout.strip(), *reversed(stdout.strip().splitlines())):
            try:
                obj = json.loads(candidate)
            except ValueError:
                continue
            if isinstance(obj, dict):
                return obj
        return None


class GitContender(Contender):
    name = "git"
    description = "git clone --mirror SRC tmp && git -C tmp push --mirror DST (what every peer does)"

    def steps(self, src_url: str, dst_url: str, tmpdir: Path, creds: Creds, state: Path) -> list[Step]:
        clone = tmpdir / "mirror.git"
        return [
            (
                "clone",
                ["git", "clone", "--mirror", "--quiet", src_url, str(clone)],
                git_auth_env(creds.src_user, creds.src_token),
            ),
            (
                "push",
                ["git", "-C", str(clone), "push", "--mirror", "--quiet", dst_url],
                git_auth_env(creds.dst_user, creds.dst_token),
            ),
        ]

    def tool_result(self, stdout: str) -> dict[str, Any] | None:
        return None


class GitFetchDeltaContender(Contender):
    """Reference for the bytes goal: what plain git fetches for the same delta.

    A peer that keeps a persistent local mirror already holding the target's state: `git fetch`
    (haves = the target's tips) and `git push --mirror`. Making that local copy is not timed.
    """

    name = "git-fetch-delta"
    description = (
        "reference: copy of the target's state (untimed), then git fetch --prune SRC heads+tags "
        "and git push --mirror DST"
    )

    def not_applicable(self, prepared: Prepared) -> str:
        return "" if prepared.template is not None else "empty target: the same as git"

    def prepare(self, target: Path, state: Path) -> None:
        local_mirror(target, state / "mirror.git")

    def steps(self, src_url: str, dst_url: str, tmpdir: Path, creds: Creds, state: Path) -> list[Step]:
        mirror = str(state / "mirror.git")
        return [
            (
                "fetch",
                [
                    "git",
                    "-C",
                    mirror,
                    "fetch",
                    "--prune",
                    "--quiet",
                    src_url,
                    "+refs/heads/*:refs/heads/*",
                    "+refs/tags/*:refs/tags/*",
                ],
                git_auth_env(creds.src_user, creds.src_token),
            ),
            (
                "push",
                ["git", "-C", mirror, "push", "--mirror", "--quiet", dst_url],
                git_auth_env(creds.dst_user, creds.dst_token),
            ),
        ]

    def tool_result(self, stdout: str) -> dict[str, Any] | None:
        return None


class NaiveDulwichContender(Contender):
    name = "dulwich-naive"
    description = "dulwich: full fetch into a fresh temp repo, then send_pack of all heads/tags"

    def not_applicable(self, prepared: Prepared) -> str:
        return "HTTP only" if prepared.local else ""

    def steps(self, src_url: str, dst_url: str, tmpdir: Path, creds: Creds, state: Path) -> list[Step]:
        return [
            ("mirror", [PYTHON, str(BENCH_DIR / "naive_dulwich.py"), src_url, dst_url], creds.gitmirror_env())
        ]


class GitmirrorContender(Contender):
    name = "gitmirror"
    description = "gitmirror sync SRC DST --json"

    def available(self) -> tuple[bool, str]:
        try:
            binary = installed.gitmirror_bin()
        except (RuntimeError, OSError) as exc:
            return False, f"installing gitmirror failed: {exc}"
        if not (binary.is_file() and os.access(binary, os.X_OK)):
            return False, f"{binary} not found"
        try:
            res = subprocess.run(
                [str(binary), "sync", "--help"],
                capture_output=True,
                text=True,
                timeout=120,
                env=clean_env(),
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            return False, f"{binary} sync --help: {exc}"
        if res.returncode != 0:
            last = (res.stderr.strip().splitlines() or ["(no output)"])[-1]
            return False, f"`gitmirror sync --help` exited {res.returncode}: {last}"
        return True, ""

    def steps(self, src_url: str, dst_url: str, tmpdir: Path, creds: Creds, state: Path) -> list[Step]:
        binary = str(installed.gitmirror_bin())
        return [("sync", [binary, "sync", src_url, dst_url, "--json"], creds.gitmirror_env())]


class GitmirrorNoLfsContender(GitmirrorContender):
    """gitmirror without its Git LFS pointer scan, on the cold mirrors only: what the scan costs there.
    The scan inflates every entry of the pack to find the pointers among them, and on this machine it
    competes for the same cores as the target's own indexing of the pack."""

    name = "gitmirror-no-lfs"
    description = "gitmirror sync SRC DST --json --no-lfs (cold mirrors only: the LFS pointer scan's cost)"

    def not_applicable(self, prepared: Prepared) -> str:
        if prepared.local:
            return "HTTP only"
        return "" if prepared.template is None else "cold mirrors only"

    def steps(self, src_url: str, dst_url: str, tmpdir: Path, creds: Creds, state: Path) -> list[Step]:
        binary = str(installed.gitmirror_bin())
        return [("sync", [binary, "sync", src_url, dst_url, "--json", "--no-lfs"], creds.gitmirror_env())]


CONTENDERS: dict[str, Contender] = {
    c.name: c
    for c in (
        GitContender(),
        GitFetchDeltaContender(),
        NaiveDulwichContender(),
        GitmirrorContender(),
        GitmirrorNoLfsContender(),
    )
}


# --------------------------------------------------------------------------------------------
# Running
# --------------------------------------------------------------------------------------------


def scrub(text: str, creds: Creds) -> str:
    for s in creds.secrets():
        text = text.replace(s, "***")
    return text


def repo_traffic(server: GitHTTPServer, repo: str) -> dict[str, Any]:
    """Payload bytes of one repository's requests: sent to the server, received from it."""
    prefix = f"/{repo}/"
    reqs = [r for r in server.requests_matching() if r.path.startswith(prefix)]
    return {
        "request_bytes": sum(r.request_bytes for r in reqs),
        "response_bytes": sum(r.response_bytes for r in reqs),
        # the pushes themselves: receive-pack's POST bodies (ref commands and pack)
        "pushed_bytes": sum(
            r.request_bytes for r in reqs if r.method == "POST" and r.service == "git-receive-pack"
        ),
        "requests": len(reqs),
        # one line per request: method, path below the repo (+ query), status, bytes sent / received
        "request_log": [
            f"{r.method} {r.target.removeprefix(prefix)} {r.status} {r.request_bytes}/{r.response_bytes}"
            for r in reqs
        ],
        "server_errors": [
            f"{r.method} {r.path} -> {r.status}: {r.stderr.strip()[-300:]}"
            for r in reqs
            if r.kind != "unauthorized" and ((r.status or 0) >= 400 or r.aborted)
        ],
    }


def one_run(
    contender: Contender,
    scenario: str,
    prepared: Prepared,
    src_refs: dict[str, str],
    srv_src: GitHTTPServer,
    srv_dst: GitHTTPServer,
    cfg: Config,
    creds: Creds,
    run_idx: int,
    timeout: float,
) -> dict[str, Any]:
    repo = prepared.source.name
    target = cfg.work / "dst-root" / repo
    shutil.rmtree(target, ignore_errors=True)
    if prepared.template is None:
        git("init", "-q", "--bare", target)
    else:
        local_mirror(prepared.template, target)
    tmpdir = cfg.work / "tmp" / f"{scenario}-{contender.name}-{run_idx}"
    state = cfg.work / "state" / f"{scenario}-{contender.name}-{run_idx}"
    for d in (tmpdir, state):
        shutil.rmtree(d, ignore_errors=True)
        d.mkdir(parents=True)
    contender.prepare(target, state)
    srv_src.clear_requests()
    srv_dst.clear_requests()

    base_env = clean_env()
    steps_out: list[dict[str, Any]] = []
    wall = 0.0
    maxrss = tree_rss = tmp_peak = 0
    exit_code = 0
    error = None
    tool: dict[str, Any] | None = None
    if prepared.local:
        src_url, dst_url = str(prepared.source), str(target)
    else:
        src_url, dst_url = srv_src.repo_url(repo), srv_dst.repo_url(repo)
    steps = contender.steps(src_url, dst_url, tmpdir, creds, state)
    for label, argv, extra in steps:
        m = measure.run(argv, env={**base_env, **extra}, tmpdir=str(tmpdir), timeout=timeout)
        wall += m.wall_s
        maxrss = max(maxrss, m.maxrss_kib)
        tree_rss = max(tree_rss, m.tree_rss_kib)
        tmp_peak = max(tmp_peak, m.tmp_peak_bytes)
        steps_out.append({"step": label, **m.to_dict()})
        tool = contender.tool_result(m.stdout) or tool
        if m.exit_code != 0 or m.timed_out:
            exit_code = m.exit_code
            tail = (m.stderr.strip() or m.stdout.strip()).splitlines()[-5:]
            error = scrub(
                ("timed out; " if m.timed_out else "") + f"{label} exited {m.exit_code}: " + " | ".join(tail),
                creds,
            )
            break
    shutil.rmtree(tmpdir, ignore_errors=True)
    shutil.rmtree(state, ignore_errors=True)

    src_stats = repo_traffic(srv_src, repo)
    dst_stats = repo_traffic(srv_dst, repo)
    dst_refs = refs_of(target)
    missing = sorted(set(src_refs) - set(dst_refs))
    extra_refs = sorted(set(dst_refs) - set(src_refs))
    differ = sorted(r for r in set(src_refs) & set(dst_refs) if src_refs[r] != dst_refs[r])
    tool_status = tool.get("status") if tool else None
    if tool and tool.get("error") and not error:
        error = scrub(str(tool["error"]), creds)
    return {
        "run": run_idx,
        "exit_code": exit_code,
        "wall_s": round(wall, 4),
        "maxrss_kib": maxrss,
        "tree_rss_kib": tree_rss,
        "tmp_peak_bytes": tmp_peak,
        "bytes_from_source": src_stats["response_bytes"],
        "bytes_to_source": src_stats["request_bytes"],
        "requests_to_source": src_stats["requests"],
        "source_request_log": src_stats["request_log"],
        "bytes_to_target": dst_stats["request_bytes"],
        "bytes_pushed": dst_stats["pushed_bytes"],
        "bytes_from_target": dst_stats["response_bytes"],
        "requests_to_target": dst_stats["requests"],
        "target_request_log": dst_stats["request_log"],
        "refs_ok": not (missing or extra_refs or differ),
        "refs_missing": len(missing),
        "refs_extra": len(extra_refs),
        "refs_differ": len(differ),
        "refs_mismatch_sample": (missing + extra_refs + differ)[:5],
        "tool_status": tool_status,
        "tool_result": {k: v for k, v in tool.items() if k != "refs"} if tool else None,
        "error": error,
        "server_errors": [scrub(e, creds) for e in src_stats["server_errors"] + dst_stats["server_errors"]],
        "steps": steps_out,
    }


def index_floor(source: Path, work: Path, runs: int) -> float:
    """A cold mirror's floor: what the target does with the pack whoever sends it, timed alone (median of
    `runs`): `git index-pack --stdin --fix-thin` of the source's whole pack into an empty repository, as
    receive-pack runs it, then the connectivity check of the new refs (`rev-list --objects`)."""
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    pack = work / "all.pack"
    with open(pack, "wb") as out:
        subprocess.run(
            ["git", "-C", str(source), "pack-objects", "--all", "--stdout", "--delta-base-offset", "-q"],
            stdin=subprocess.DEVNULL,
            stdout=out,
            check=True,
        )
    tips = [
        line.split()[0] for line in git("-C", source, "for-each-ref", "--format=%(objectname)").splitlines()
    ]
    times = []
    for i in range(max(1, runs)):
        repo = work / f"t{i}.git"
        git("init", "-q", "--bare", repo)
        started = time.monotonic()
        with open(pack, "rb") as data:
            subprocess.run(
                ["git", "-C", str(repo), "index-pack", "--stdin", "--fix-thin"],
                stdin=data,
                stdout=subprocess.DEVNULL,
                check=True,
            )
        subprocess.run(
            ["git", "-C", str(repo), "rev-list", "--objects", "--quiet", "--stdin", "--not", "--all"],
            input="\n".join(tips).encode(),
            check=True,
        )
        times.append(time.monotonic() - started)
        shutil.rmtree(repo, ignore_errors=True)
    shutil.rmtree(work, ignore_errors=True)
    return round(statistics.median(times), 3)


def summarize(runs: list[dict[str, Any]]) -> dict[str, Any]:
    def med(key: str) -> float:
        return statistics.median(r[key] for r in runs)

    ok_runs = [r for r in runs if r["exit_code"] == 0 and r["error"] is None]
    tool_statuses = sorted({str(r["tool_status"]) for r in runs if r["tool_status"] is not None})
    if len(ok_runs) < len(runs):
        check = "failed"
    elif all(r["refs_ok"] for r in runs):
        check = "ok"
    else:
        check = "mismatch"
    return {
        "runs": len(runs),
        "check": check,
        "tool_status": ",".join(tool_statuses) or None,
        "wall_s_median": round(med("wall_s"), 3),
        "wall_s_min": round(min(r["wall_s"] for r in runs), 3),
        "wall_s_max": round(max(r["wall_s"] for r in runs), 3),
        "bytes_from_source": int(med("bytes_from_source")),
        "bytes_to_target": int(med("bytes_to_target")),
        "bytes_pushed": int(med("bytes_pushed")),
        "maxrss_mib": round(med("maxrss_kib") / 1024, 1),
        "tree_rss_mib": round(med("tree_rss_kib") / 1024, 1),
        "tmp_peak_mib": round(med("tmp_peak_bytes") / MIB, 1),
        "errors": sorted({r["error"] for r in runs if r["error"]}),
        # per step (git's clone and push): the push alone is the target's receive of the pack
        "steps_s_median": {
            step: round(
                statistics.median(s["wall_s"] for r in runs for s in r["steps"] if s["step"] == step), 3
            )
            for step in dict.fromkeys(s["step"] for r in runs for s in r.get("steps", []))
        },
    }


def machine_info() -> dict[str, Any]:
    mem_kib = 0
    cpu = platform.processor()
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    mem_kib = int(line.split()[1])
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    try:
        from importlib.metadata import version

        dulwich_version = version("dulwich")
    except Exception:  # noqa: BLE001
        dulwich_version = None
    return {
        "nproc": len(os.sched_getaffinity(0)),
        "cpu": cpu,
        "memory_gib": round(mem_kib / 1024 / 1024, 1),
        "git": git("--version").strip(),
        "python": platform.python_version(),
        "dulwich": dulwich_version,
        "platform": platform.platform(),
    }


def fmt_bytes(n: float) -> str:
    if n >= MIB:
        return f"{n / MIB:.2f} MiB"
    if n >= 1024:
        return f"{n / 1024:.1f} KiB"
    return f"{int(n)} B"


# --------------------------------------------------------------------------------------------
# Goals (from the issue)
# --------------------------------------------------------------------------------------------

GOAL_INCREMENTAL_TIME = 0.5  # x git CLI wall time
GOAL_COLD_TIME = 0.5  # x git CLI wall time (httpx, pip and the large histories)
GOAL_COLD_BLOBS_TIME = 1.0  # x git CLI wall time (blobs: the transfer itself dominates)
GOAL_INCREMENTAL_BYTES = 2.0  # x what `git fetch` fetches for the same delta
GOAL_THIN_PACK = 1.1  # bytes to the target, x git's own (thin) push pack for the same change
GOAL_PEER_TIME = 1.0  # incremental and many-refs time, x the kept-copy peer (git-fetch-delta)
GOAL_MANYREFS_BYTES = 2.0  # bytes from the source with 10,000 refs, x the peer's
GOAL_NOOP_TIME = 1.5  # x the peer
GOAL_DELETE_TIME = 3.0  # deleting a merged branch, x the peer
GOAL_DELETE_BYTES = 3.0  # bytes from the source, x a commits-only pack of the range that proves it merged
GOAL_RSS_MIB = 150  # on the 200 MiB blob repository
GOAL_RSS_BLOB_MIB = 200
GOAL_LOCAL_TIME = 1.2  # x git clone --mirror + push --mirror between local repositories
GOAL_RSS_BIGBLOB_MIB = 150  # peak RSS for an incremental delta holding a 1 GiB blob
GOAL_RSS_BIGREFS_MIB = 150  # peak RSS of a no-op between two 50 MB advertisements (bigrefs-noop)
GOAL_BIGREFS_LISTING_MB = 50


def _summary(result: dict[str, Any], scenario: str, contender: str) -> dict[str, Any] | None:
    c = result["scenarios"].get(scenario, {}).get("contenders", {}).get(contender, {})
    summary: dict[str, Any] | None = c.get("summary")
    return summary


def _ratio_goal(
    result: dict[str, Any], scenario: str, other: str, key: str, limit: float, goal: str, unit: str
) -> dict[str, Any]:
    gm, ref = _summary(result, scenario, "gitmirror"), _summary(result, scenario, other)
    if scenario not in result["scenarios"]:
        return {"goal": goal, "measured": "not run", "pass": None}
    if gm is None or ref is None:
        return {"goal": goal, "measured": f"not measured (needs gitmirror and {other})", "pass": None}
    if gm["check"] != "ok":
        return {"goal": goal, "measured": f"gitmirror {gm['check']}", "pass": False}
    ratio = gm[key] / ref[key] if ref[key] else float("inf")
    show = (lambda v: f"{v:.2f} s") if unit == "s" else fmt_bytes
    return {
        "goal": goal,
        "measured": f"{ratio:.2f}x (gitmirror {show(gm[key])} / {other} {show(ref[key])})",
        "pass": ratio <= limit,
        "ratio": round(ratio, 3),
    }


def _floor_row(result: dict[str, Any], scenario: str) -> dict[str, Any]:
    """How close a cold mirror runs to its floor: the target's own indexing of the pack and its
    connectivity check, timed alone (`index_floor`), whoever sends the pack."""
    goal = f"cold: how close to the floor, the target's indexing of the pack ({scenario})"
    gm = _summary(result, scenario, "gitmirror")
    floor = result["scenarios"].get(scenario, {}).get("floor_s")
    git = _summary(result, scenario, "git")
    if gm is None or not floor:
        return {"goal": goal, "measured": "not measured", "pass": None}
    of_git = f"; the floor alone is {floor / git['wall_s_median']:.2f}x git CLI" if git else ""
    no_lfs = _summary(result, scenario, "gitmirror-no-lfs")
    if no_lfs is not None and no_lfs["check"] == "ok":
        of_git += f"; without the LFS pointer scan (--no-lfs) {no_lfs['wall_s_median']:.2f} s"
        if git:
            of_git += f", {no_lfs['wall_s_median'] / git['wall_s_median']:.2f}x git CLI"
    return {
        "goal": goal,
        "measured": f"{gm['wall_s_median'] / floor:.2f}x the floor (gitmirror {gm['wall_s_median']:.2f} s, "
        f"floor {floor:.2f} s{of_git})",
        "pass": None,  # a measure, not a goal
        "ratio": round(gm["wall_s_median"] / floor, 3),
    }


def _range_pack_goal(result: dict[str, Any], scenario: str) -> dict[str, Any]:
    """Bytes from the source for a deletion against a commits-only pack of the range proving it merged."""
    goal = (
        f"deleting a merged branch: bytes from the source ≤ {GOAL_DELETE_BYTES}x a commits-only pack of "
        f"the range ({scenario})"
    )
    gm = _summary(result, scenario, "gitmirror")
    if gm is None:
        return {"goal": goal, "measured": "not run", "pass": None}
    if gm["check"] != "ok":
        return {"goal": goal, "measured": f"gitmirror {gm['check']}", "pass": False}
    info = result["scenarios"][scenario]["info"]
    ref = info["range_commits_pack_bytes"]
    ratio = gm["bytes_from_source"] / ref
    return {
        "goal": goal,
        "measured": f"{ratio:.2f}x (gitmirror {fmt_bytes(gm['bytes_from_source'])} / "
        f"{fmt_bytes(ref)} for {info['range_commits']} commits)",
        "pass": ratio <= GOAL_DELETE_BYTES,
        "ratio": round(ratio, 3),
    }


def _bigrefs_goal(result: dict[str, Any]) -> dict[str, Any]:
    """Peak RSS of the no-op between two listings of BIGREFS refs; judged only at the full size."""
    goal = (
        f"peak RSS ≤ {GOAL_RSS_BIGREFS_MIB} MiB for a {GOAL_BIGREFS_LISTING_MB} MB advertisement "
        "(bigrefs-noop, both sides)"
    )
    gm = _summary(result, "bigrefs-noop", "gitmirror")
    if gm is None:
        return {"goal": goal, "measured": "not run", "pass": None}
    if gm["check"] != "ok":
        return {"goal": goal, "measured": f"gitmirror {gm['check']}", "pass": False}
    branches = result["scenarios"]["bigrefs-noop"]["info"]["branches"]
    peer = _summary(result, "bigrefs-noop", "git-fetch-delta")
    measured = f"{gm['maxrss_mib']:.0f} MiB, {gm['wall_s_median']:.2f} s" + (
        f" (git-fetch-delta {peer['maxrss_mib']:.0f} MiB, {peer['wall_s_median']:.2f} s)" if peer else ""
    )
    full = branches > 400_000
    return {
        "goal": goal,
        "measured": measured + ("" if full else f"; {branches:,} branches, not 400,001"),
        "pass": gm["maxrss_mib"] <= GOAL_RSS_BIGREFS_MIB if full else None,
    }


def goal_rows(result: dict[str, Any]) -> list[dict[str, Any]]:
    """The issue's goals, measured; `pass` is None when this invocation did not measure it."""
    names = list(result["scenarios"])
    first = ["httpx-incremental", "httpx-cold", "blobs-cold"]  # listed first even when not run
    names = first + [n for n in names if n not in first]
    # bigblob-incremental is there for its memory goal: its time is inflating the blob to read past it
    incremental = [
        n
        for n in names
        if n.endswith("-incremental") and not n.startswith("manyrefs") and n != "bigblob-incremental"
    ]
    cold = [n for n in names if n.endswith("-cold")]
    peer = "git-fetch-delta"
    specs = [
        (n, "git", "wall_s_median", GOAL_INCREMENTAL_TIME, "incremental sync ≤ {}x git CLI time", "s")
        for n in incremental
    ]
    specs += [
        (n, peer, "wall_s_median", GOAL_PEER_TIME, "incremental sync ≤ {}x the kept-copy peer's time", "s")
        for n in incremental
    ]
    specs += [
        (
            n,
            "git",
            "wall_s_median",
            GOAL_COLD_BLOBS_TIME if n.startswith("blobs") else GOAL_COLD_TIME,
            "cold full mirror ≤ {}x git CLI time",
            "s",
        )
        for n in cold
    ]
    specs += [
        (
            n,
            peer,
            "bytes_from_source",
            GOAL_INCREMENTAL_BYTES,
            "bytes fetched for the incremental ≤ {}x git fetch of the same delta",
            "B",
        )
        for n in incremental
    ]
    specs.append(
        ("pip-local", "git", "wall_s_median", GOAL_LOCAL_TIME, "local-to-local sync ≤ {}x git CLI time", "s")
    )
    specs += [
        (n, peer, "bytes_pushed", GOAL_THIN_PACK, "bytes pushed ≤ {}x git's own thin pack", "B")
        for n in incremental
    ]
    specs += [
        (
            "manyrefs-incremental",
            peer,
            "wall_s_median",
            GOAL_PEER_TIME,
            "10,000 refs, 100 changed: time ≤ {}x the peer",
            "s",
        ),
        (
            "manyrefs-incremental",
            peer,
            "bytes_from_source",
            GOAL_MANYREFS_BYTES,
            "10,000 refs, 100 changed: bytes from the source ≤ {}x the peer's",
            "B",
        ),
        ("noop", peer, "wall_s_median", GOAL_NOOP_TIME, "no-op ≤ {}x the kept-copy peer's time", "s"),
    ]
    deletions = [n for n in names if n.endswith("-delete-merged")] or ["history-delete-merged"]
    specs += [
        (n, peer, "wall_s_median", GOAL_DELETE_TIME, "deleting a merged branch ≤ {}x the peer's time", "s")
        for n in deletions
    ]
    rows = [
        _ratio_goal(result, n, other, key, limit, f"{text.format(limit)} ({n})", unit)
        for n, other, key, limit, text, unit in specs
    ]
    rows += [_range_pack_goal(result, n) for n in deletions]
    rows += [_floor_row(result, n) for n in cold]
    big = _summary(result, "bigblob-incremental", "gitmirror")
    rows.append(
        {
            "goal": f"peak RSS ≤ {GOAL_RSS_BIGBLOB_MIB} MiB, incremental delta holding a {BIGBLOB_MIB} MiB blob",
            "measured": "not run" if big is None else f"{big['maxrss_mib']:.0f} MiB",
            "pass": None if big is None or BIGBLOB_MIB < 1024 else big["maxrss_mib"] <= GOAL_RSS_BIGBLOB_MIB,
        }
    )
    rows.append(_bigrefs_goal(result))
    goal = f"peak RSS ≤ {GOAL_RSS_MIB} MiB on the {GOAL_RSS_BLOB_MIB} MiB blob repository (blobs-cold)"
    gm = _summary(result, "blobs-cold", "gitmirror")
    blob_mib = result["options"]["blob_mib"]
    if gm is None:
        rows.append({"goal": goal, "measured": "not run", "pass": None})
    else:
        size = (
            ""
            if blob_mib == GOAL_RSS_BLOB_MIB
            else f"; repository was {blob_mib} MiB, not {GOAL_RSS_BLOB_MIB}"
        )
        rows.append(
            {
                "goal": goal,
                "measured": f"{gm['maxrss_mib']:.0f} MiB (process tree {gm['tree_rss_mib']:.0f} MiB{size})",
                "pass": gm["maxrss_mib"] <= GOAL_RSS_MIB if blob_mib >= GOAL_RSS_BLOB_MIB else None,
            }
        )
    recv = result.get("receiver")
    recv_goals = receiver.goals(recv) if recv and "error" not in recv else []
    placeholders = receiver.goal_names()
    rows += recv_goals or [{"goal": g, "measured": "not run", "pass": None} for g in placeholders]
    if recv and "error" in recv:
        for row in rows[-len(placeholders) :]:
            row["measured"], row["pass"] = f"failed: {recv['error']}", False
    lfs = result.get("lfs")
    rows += (
        lfs_bench.goals(lfs)
        if lfs
        else [{"goal": lfs_bench.goals({"error": ""})[0]["goal"], "measured": "not run", "pass": None}]
    )
    return rows


def render_goals(rows: list[dict[str, Any]]) -> list[str]:
    lines = ["## Goals", "", "| goal | measured (medians) | result |", "|---|---|---|"]
    for r in rows:
        verdict = {True: "pass", False: "**FAIL**", None: "-"}[r["pass"]]
        lines.append(f"| {r['goal']} | {r['measured']} | {verdict} |")
    return lines


def render_markdown(result: dict[str, Any]) -> str:
    m = result["machine"]
    lines = [
        f"# gitmirror benchmark {result['timestamp']}",
        "",
        f"Machine: {m['nproc']} CPUs ({m['cpu']}), {m['memory_gib']} GiB RAM, {m['git']}, "
        f"Python {m['python']}, dulwich {m['dulwich']}, {m['platform']}.",
        f"Runs per cell: {result['options']['runs']} "
        "(wall = median, min in brackets; other columns = median)."
        + (" Quick mode." if result["options"]["quick"] else ""),
        f"gitmirror: {result['options'].get('gitmirror', '.venv/bin/gitmirror')}.",
        "",
        "| scenario | source | target before | expected delta |",
        "|---|---|---|---|",
    ]
    for name, sc in result["scenarios"].items():
        if "error" in sc:
            lines.append(f"| {name} | preparation failed: {sc['error']} | - | - |")
            continue
        s = sc["source"]
        info = sc["info"]
        if "expected_objects" in info:
            delta = f"{info['expected_commits']} commits, {info['expected_objects']} objects"
        elif "range_commits" in info:
            delta = (
                f"delete 1 branch; proving it merged takes {info['range_commits']} commits "
                f"({fmt_bytes(info['range_commits_pack_bytes'])} as a commits-only pack)"
            )
        elif "changed" in info:
            delta = f"{info['changed']} commits on {info['changed']} branches"
        else:
            delta = "none" if name.endswith("noop") else "everything"
        lines.append(
            f"| {name} | {s['branches']} branches, {s['tags']} tags, {s['objects']} objects, "
            f"{s['size_mib']} MiB | {info['target']} | {delta} |"
        )
    lines += [
        "",
        "| scenario | contender | wall s | from source | to target | pushed | peak RSS MiB (tree) "
        "| peak TMPDIR MiB | refs | tool status |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    notes: list[str] = []
    for name, sc in result["scenarios"].items():
        for cname, c in sc["contenders"].items():
            if c.get("not_applicable"):
                continue
            if c.get("skipped"):
                lines.append(
                    f"| {name} | {cname} | - | - | - | - | - | - | n/a | not available: {c['skipped']} |"
                )
                continue
            s = c["summary"]
            lines.append(
                f"| {name} | {cname} | {s['wall_s_median']:.2f} ({s['wall_s_min']:.2f}) "
                f"| {fmt_bytes(s['bytes_from_source'])} | {fmt_bytes(s['bytes_to_target'])} "
                f"| {fmt_bytes(s.get('bytes_pushed', 0))} | {s['maxrss_mib']:.0f} ({s['tree_rss_mib']:.0f}) | {s['tmp_peak_mib']:.1f} "
                f"| {s['check']} | {s['tool_status'] or '-'} |"
            )
            notes += [f"- {name} / {cname}: {e}" for e in s["errors"]]
    if notes:
        lines += ["", "Errors:", *notes]
    lines += [
        "",
        "from source = response bytes served by the source server; to target = request bytes received by the "
        "target server (listings included); pushed = of those, receive-pack's POST bodies: the ref commands "
        "and the pack. Peak RSS = largest single process (ru_maxrss); "
        "tree = sampled sum over the process tree. "
        "refs = target refs/heads+refs/tags equal the source's after the run. "
        "git-fetch-delta runs only where the target starts with content (elsewhere it equals git).",
    ]
    recv = result.get("receiver")
    if recv and "error" in recv:
        lines += ["", f"Receiver benchmark failed: {recv['error']}"]
    elif recv:
        lines += ["", receiver.render_markdown(recv, heading="##", goals_section=False).rstrip()]
    lines += ["", *render_goals(result.get("goals", []))]
    return "\n".join(lines) + "\n"


def run_receiver(args: argparse.Namespace) -> dict[str, Any]:
    """bench/receiver.py in its own interpreter (it sets AWS env vars and starts moto)."""
    with tempfile.TemporaryDirectory(prefix="gitmirror-bench-receiver-") as tmp:
        out = Path(tmp) / "receiver.json"
        cmd = [PYTHON, str(BENCH_DIR / "receiver.py"), "--json-out", str(out)]
        if args.quick:
            cmd += ["--pushes", "200", "--duplicates", "50", "--cold-runs", "3", "--importtime-runs", "1"]
        if args.no_save:
            cmd.append("--no-save")
        log("receiver benchmark: " + " ".join(cmd[1:]))
        res = subprocess.run(cmd, stdout=subprocess.DEVNULL, timeout=1800)
        if not out.is_file():
            return {"error": f"bench/receiver.py exited {res.returncode} without a result (see stderr)"}
        data: dict[str, Any] = json.loads(out.read_text())
        if res.returncode != 0:
            data["exit_code"] = res.returncode
        return data


def run_lfs(args: argparse.Namespace) -> dict[str, Any]:
    """bench/lfs.py in its own interpreter (it starts its own git servers with giftless)."""
    with tempfile.TemporaryDirectory(prefix="gitmirror-bench-lfs-result-") as tmp:
        out = Path(tmp) / "lfs.json"
        cmd = [PYTHON, str(BENCH_DIR / "lfs.py"), "--json-out", str(out)]
        if args.quick:
            cmd += ["--mib", "20"]
        log("LFS benchmark: " + " ".join(cmd[1:]))
        subprocess.run(cmd, stdout=subprocess.DEVNULL, timeout=1800)
        if not out.is_file():
            return {"error": "bench/lfs.py exited without a result (see stderr)"}
        data: dict[str, Any] = json.loads(out.read_text())
        return data


def write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    tmp.replace(path)


def parse_args(argv: list[str]) -> argparse.Namespace:
    ap = argparse.ArgumentParser(
        description="gitmirror benchmark harness", formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument(
        "--scenarios", help=f"comma list of: {', '.join(SCENARIOS)} (default: all but the --pip/--large ones)"
    )
    ap.add_argument(
        "--only",
        metavar="NAME[,NAME]",
        help="run just these scenarios (any group) and nothing else; `receiver` = the receiver benchmark, "
        "`lfs` = the LFS benchmark (`make bench SCENARIO=NAME` passes this)",
    )
    ap.add_argument("--contenders", help=f"comma list of: {', '.join(CONTENDERS)} (default: all)")
    ap.add_argument("--runs", type=int, help="runs per scenario x contender (default 5; 1 with --quick)")
    ap.add_argument("--quick", action="store_true", help="smoke test: 1 run, 20 MiB blobs, 500 refs")
    ap.add_argument("--pip", action="store_true", help="also run the pip-* scenarios and bigblob-incremental")
    ap.add_argument(
        "--large",
        action="store_true",
        help="also run the git-* scenarios (git/git, cloned from GitHub if needed)",
    )
    ap.add_argument(
        "--no-fetch",
        action="store_true",
        help="never clone a missing benchmark repository from its public home (its scenarios fail instead)",
    )
    ap.add_argument(
        "--history-commits",
        type=int,
        help="commits of the generated history (default 60000; 5000 with --quick)",
    )
    ap.add_argument("--blob-mib", type=int, help="blobs-cold size (default $BENCH_BLOB_MIB or 200; 20 quick)")
    ap.add_argument("--manyrefs", type=int, help="branches in manyrefs (default 5000; 500 with --quick)")
    ap.add_argument("--timeout", type=float, default=1800, help="per-step timeout in seconds")
    ap.add_argument("--workdir", help="scratch directory (default: a fresh temp dir, deleted afterwards)")
    ap.add_argument("--keep", action="store_true", help="keep the scratch directory")
    ap.add_argument("--no-save", action="store_true", help="do not write bench/results/")
    ap.add_argument("--list", action="store_true", help="list scenarios and contenders and exit")
    recv = ap.add_mutually_exclusive_group()
    recv.add_argument(
        "--receiver",
        action="store_true",
        help="run bench/receiver.py too (default unless --scenarios is given)",
    )
    recv.add_argument("--no-receiver", action="store_true", help="do not run bench/receiver.py")
    lfs = ap.add_mutually_exclusive_group()
    lfs.add_argument("--lfs", action="store_true", help="run bench/lfs.py too (default unless --scenarios)")
    lfs.add_argument("--no-lfs", action="store_true", help="do not run bench/lfs.py")
    args = ap.parse_args(argv)
    if args.only:
        if args.scenarios:
            ap.error("--only and --scenarios exclude each other")
        only = [s.strip() for s in args.only.split(",") if s.strip()]
        args.scenarios = ",".join(s for s in only if s not in ("receiver", "lfs"))
        args.receiver, args.no_receiver = "receiver" in only, "receiver" not in only
        args.lfs, args.no_lfs = "lfs" in only, "lfs" not in only
        if not args.scenarios:
            args.scenario_list = []
    args.run_receiver = args.receiver or (not args.no_receiver and not args.scenarios and not args.only)
    args.run_lfs = args.lfs or (not args.no_lfs and not args.scenarios and not args.only)
    if args.runs is None:
        args.runs = 1 if args.quick else 5
    if args.runs < 1:
        ap.error("--runs must be >= 1")
    if args.blob_mib is None:
        args.blob_mib = 20 if args.quick else int(os.environ.get("BENCH_BLOB_MIB", "200"))
    if args.manyrefs is None:
        args.manyrefs = 500 if args.quick else 5000
    if args.history_commits is None:
        args.history_commits = 5000 if args.quick else 60_000
    if args.history_commits < 2 * DELETE_DEPTH:
        ap.error(f"--history-commits must be >= {2 * DELETE_DEPTH}")
    groups = {""} | {g for g, on in (("pip", args.pip), ("large", args.large)) if on}
    if args.scenarios:
        args.scenario_list = [s.strip() for s in args.scenarios.split(",") if s.strip()]
    elif not args.only:
        args.scenario_list = [s.name for s in SCENARIOS.values() if s.group in groups]
    if args.contenders:
        args.contender_list = [c.strip() for c in args.contenders.split(",") if c.strip()]
    else:
        args.contender_list = list(CONTENDERS)
    for s in args.scenario_list:
        if s not in SCENARIOS:
            ap.error(f"unknown scenario {s!r}; choose from {', '.join(SCENARIOS)}")
    for c in args.contender_list:
        if c not in CONTENDERS:
            ap.error(f"unknown contender {c!r}; choose from {', '.join(CONTENDERS)}")
    return args


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    if args.list:
        for s in SCENARIOS.values():
            print(f"scenario  {s.name:22} {f'(--{s.group}) ' if s.group else ''}{s.description}")
        for c in CONTENDERS.values():
            print(f"contender {c.name:18} {c.description}")
        return 0

    needed = sorted({b for b in (SCENARIOS[name].bundle for name in args.scenario_list) if b})
    missing = [b for b in needed if locate_bundle(b, fetch=not args.no_fetch) is None]
    if missing:
        log(f"missing benchmark repositories {', '.join(missing)}: their scenarios will fail")
        log(bundle_hint(missing))

    started = dt.datetime.now(dt.UTC)
    stamp = started.strftime("%Y%m%dT%H%M%SZ")
    work = Path(args.workdir) if args.workdir else Path(tempfile.mkdtemp(prefix="gitmirror-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    for sub in ("src-root", "dst-root"):
        (work / sub).mkdir(exist_ok=True)
    cfg = Config(
        work=work,
        blob_mib=args.blob_mib,
        manyrefs=args.manyrefs,
        history_commits=args.history_commits,
        manyrefs_changed=(1000, 10) if args.quick else (10_000, 100),
        bigrefs=20_000 if args.quick else int(os.environ.get("BENCH_BIGREFS", "400000")),
        fetch=not args.no_fetch,
    )
    creds = Creds.random()

    contenders: list[tuple[Contender, str]] = []
    for name in args.contender_list:
        ok, reason = CONTENDERS[name].available()
        if not ok:
            log(f"contender {name} not available: {reason}")
        contenders.append((CONTENDERS[name], "" if ok else reason))

    result: dict[str, Any] = {
        "timestamp": stamp,
        "machine": machine_info(),
        "options": {
            "runs": args.runs,
            "quick": args.quick,
            "blob_mib": args.blob_mib,
            "manyrefs": args.manyrefs,
            "history_commits": args.history_commits,
            "manyrefs_changed": list(cfg.manyrefs_changed),
            "bigrefs": cfg.bigrefs,
            "scenarios": args.scenario_list,
            "contenders": args.contender_list,
            "incremental_n": INCR_N,
            "incremental_k": INCR_K,
            "receiver": args.run_receiver,
            "gitmirror": installed.description(),
        },
        "contenders": {c.name: c.description for c, _ in contenders},
        "scenarios": {},
    }
    srv_src = GitHTTPServer(
        work / "src-root", creds.src_user, creds.src_token, extra_config=SOURCE_SERVER_CONFIG
    ).start()
    srv_dst = GitHTTPServer(work / "dst-root", creds.dst_user, creds.dst_token).start()
    log(f"workdir {work}; source server {srv_src.url}, target server {srv_dst.url}")
    try:
        for number, sname in enumerate(args.scenario_list, 1):
            scenario = SCENARIOS[sname]
            log(f"scenario {number}/{len(args.scenario_list)} {sname}: preparing ({scenario.description})")
            t0 = time.monotonic()
            try:
                prepared = scenario.prepare(cfg, work / "src-root" / f"{sname}.git")
            except (RuntimeError, OSError) as exc:
                log(f"{sname}: preparation failed: {exc}")
                result["scenarios"][sname] = {"error": str(exc), "contenders": {}}
                continue
            src_refs = refs_of(prepared.source)
            entry: dict[str, Any] = {
                "description": scenario.description,
                "source": repo_info(prepared.source),
                "info": prepared.info,
                "setup_s": round(time.monotonic() - t0, 2),
                "contenders": {},
            }
            result["scenarios"][sname] = entry
            log(f"{sname}: prepared in {entry['setup_s']}s: {entry['source']} {prepared.info}")
            chosen = [
                (c, r) for c, r in contenders if scenario.contenders is None or c.name in scenario.contenders
            ]
            active = [c for c, reason in chosen if not reason and not c.not_applicable(prepared)]
            runs: dict[str, list[dict[str, Any]]] = {c.name: [] for c in active}
            for c, reason in chosen:
                if reason:
                    entry["contenders"][c.name] = {"skipped": reason}
                elif why := c.not_applicable(prepared):
                    entry["contenders"][c.name] = {"not_applicable": why}
            for i in range(args.runs):
                for c in active:
                    prev = runs[c.name]
                    if prev and (prev[-1]["error"] or not prev[-1]["refs_ok"]):
                        continue  # failed once in this scenario: do not burn time repeating it
                    r = one_run(c, sname, prepared, src_refs, srv_src, srv_dst, cfg, creds, i, args.timeout)
                    prev.append(r)
                    log(
                        f"{sname} run {i + 1}/{args.runs} {c.name}: {r['wall_s']:.2f}s "
                        f"src {fmt_bytes(r['bytes_from_source'])} dst {fmt_bytes(r['bytes_to_target'])} "
                        f"rss {r['maxrss_kib'] / 1024:.0f} MiB tmp {r['tmp_peak_bytes'] / MIB:.1f} MiB "
                        f"refs {'ok' if r['refs_ok'] else 'MISMATCH'}"
                        + (f" status {r['tool_status']}" if r["tool_status"] else "")
                        + (f" ERROR {r['error']}" if r["error"] else "")
                    )
            for name, rs in runs.items():
                entry["contenders"][name] = {"summary": summarize(rs), "runs": rs}
            if prepared.template is None and not prepared.local:
                entry["floor_s"] = index_floor(prepared.source, work / "floor", args.runs)
                log(f"{sname}: the target's own indexing of the pack (the floor): {entry['floor_s']:.2f}s")
            # Free disk early: sources/targets of finished scenarios are not needed any more.
            shutil.rmtree(work / "dst-root" / f"{sname}.git", ignore_errors=True)
    finally:
        srv_src.stop()
        srv_dst.stop()
        if not args.keep and not args.workdir:
            shutil.rmtree(work, ignore_errors=True)
        elif args.keep:
            log(f"kept workdir {work}")

    if args.run_receiver:
        result["receiver"] = run_receiver(args)
    if args.run_lfs:
        result["lfs"] = run_lfs(args)
    result["goals"] = goal_rows(result)
    result["duration_s"] = round((dt.datetime.now(dt.UTC) - started).total_seconds(), 1)
    md = render_markdown(result)
    print(md)
    if not args.no_save:
        RESULTS_DIR.mkdir(exist_ok=True)
        text = json.dumps(result, indent=2) + "\n"
        write_atomic(RESULTS_DIR / f"{stamp}.json", text)
        write_atomic(RESULTS_DIR / "latest.json", text)
        write_atomic(RESULTS_DIR / "latest.md", md)
        for old in RESULTS_DIR.glob("[0-9]*T[0-9]*Z.json"):
            if old.name != f"{stamp}.json":
                old.unlink()  # only the newest run is kept; git history has the others
        log(f"wrote {RESULTS_DIR.relative_to(REPO_ROOT)}/{stamp}.json, latest.json, latest.md")
    recv = result.get("receiver")
    failed = (
        any("error" in sc for sc in result["scenarios"].values())
        or any(
            c.get("summary", {}).get("check") not in (None, "ok")
            for sc in result["scenarios"].values()
            for c in sc["contenders"].values()
        )
        or bool(recv and ("error" in recv or recv.get("exit_code")))
        or bool(result.get("lfs") and result["lfs"].get("check") != "ok")
    )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
