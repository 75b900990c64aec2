"""The LFS benchmark: peak RSS of `gitmirror sync` while it copies one large Git LFS object.

A source and a target git server on 127.0.0.1, each with giftless mounted under `info/lfs/` (the test
servers of `gitmirror_dev.gitserver`); the source's history has one commit whose pointer file names a
200 MiB object (written straight into the source's LFS storage: the benchmark measures the copy, not
git-lfs). `gitmirror sync` must copy exactly that object, verified, while its whole process tree stays
under 150 MiB of RSS. `bench/run.py` runs this file in its own interpreter; alone:

    .venv/bin/python bench/lfs.py [--mib 200] [--json-out FILE]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import secrets
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import installed
import measure

from gitmirror_dev.gitserver import GitHTTPServer

MIB = 1024 * 1024
GOAL_RSS_MIB = 150
GOAL_OBJECT_MIB = 200
_ENV = {
    "GIT_AUTHOR_NAME": "Bench",
    "GIT_AUTHOR_EMAIL": "bench@example.invalid",
    "GIT_COMMITTER_NAME": "Bench",
    "GIT_COMMITTER_EMAIL": "bench@example.invalid",
    "GIT_CONFIG_NOSYSTEM": "1",
}


def git(repo: Path, *args: str, input: bytes | None = None) -> str:
    env = {**os.environ, **_ENV}
    return subprocess.run(
        ["git", "-C", str(repo), *args], input=input, env=env, check=True, capture_output=True
    ).stdout.decode()


def write_object(server: GitHTTPServer, repo: str, size: int, work: Path) -> tuple[str, int]:
    """An LFS object of `size` pseudo-random bytes in the server's storage for `repo`; its oid."""
    assert server.lfs is not None
    staging = work / "object.tmp"
    digest = hashlib.sha256()
    block = os.urandom(MIB)
    with staging.open("wb") as out:
        for i in range(size // MIB):
            chunk = hashlib.sha256(i.to_bytes(8, "big")).digest() + block[32:]
            digest.update(chunk)
            out.write(chunk)
    oid = digest.hexdigest()
    path = server.lfs.object_path(None, repo.removesuffix(".git"), oid)
    path.parent.mkdir(parents=True, exist_ok=True)
    staging.replace(path)
    return oid, size


def commit_pointer(repo: Path, oid: str, size: int) -> None:
    pointer = f"version https://git-lfs.github.com/spec/v1\noid sha256:{oid}\nsize {size}\n".encode()
    blob = git(repo, "hash-object", "-w", "--stdin", input=pointer).strip()
    attributes = git(
        repo, "hash-object", "-w", "--stdin", input=b"*.bin filter=lfs diff=lfs merge=lfs -text\n"
    )
    tree = git(
        repo,
        "mktree",
        input=f"100644 blob {attributes.strip()}\t.gitattributes\n100644 blob {blob}\tbig.bin\n".encode(),
    ).strip()
    commit = git(repo, "commit-tree", tree, "-m", "one large LFS object").strip()
    git(repo, "update-ref", "refs/heads/main", commit)


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(MIB):
            digest.update(block)
    return digest.hexdigest()


def run(mib: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="gitmirror-bench-lfs-") as tmp:
        work = Path(tmp)
        src_token, dst_token = secrets.token_hex(16), secrets.token_hex(16)
        with (
            GitHTTPServer(work / "src", "bench-src", src_token, lfs=True) as source,
            GitHTTPServer(work / "dst", "bench-dst", dst_token, lfs=True) as target,
        ):
            upstream = source.create_bare("upstream.git")
            target.create_bare("downstream.git")
            oid, size = write_object(source, "upstream.git", mib * MIB, work)
            commit_pointer(upstream, oid, size)
            env = {
                **os.environ,
                "GITMIRROR_SOURCE_USERNAME": "bench-src",
                "GITMIRROR_SOURCE_TOKEN": src_token,
                "GITMIRROR_TARGET_USERNAME": "bench-dst",
                "GITMIRROR_TARGET_TOKEN": dst_token,
            }
            m = measure.run(
                [
                    str(installed.gitmirror_bin()),
                    "sync",
                    source.repo_url("upstream.git"),
                    target.repo_url("downstream.git"),
                    "--json",
                ],
                env=env,
                tmpdir=str(work / "tmp"),
                timeout=1800,
            )
            out: dict[str, Any] = json.loads(m.stdout) if m.stdout.strip() else {}
            assert target.lfs is not None
            copied = target.lfs.object_path(None, "downstream", oid)
            verified = copied.is_file() and copied.stat().st_size == size and sha256_of(copied) == oid
    lfs = out.get("lfs") or {}
    ok = m.exit_code == 0 and lfs.get("objects") == 1 and lfs.get("bytes") == size and verified
    return {
        "object_mib": mib,
        "exit_code": m.exit_code,
        "wall_s": round(m.wall_s, 2),
        "maxrss_mib": round(m.maxrss_kib / 1024, 1),
        "tree_rss_mib": round(m.tree_rss_kib / 1024, 1),
        "tmp_peak_mib": round(m.tmp_peak_bytes / MIB, 1),
        "lfs": lfs,
        "target_object_verified": verified,
        "check": "ok" if ok else "failed",
        "stderr": m.stderr[-2000:] if not ok else "",
    }


def goals(result: dict[str, Any]) -> list[dict[str, Any]]:
    goal = f"peak RSS < {GOAL_RSS_MIB} MiB while a {GOAL_OBJECT_MIB} MiB LFS object is copied (lfs)"
    if "error" in result:
        return [{"goal": goal, "measured": f"failed: {result['error']}", "pass": False}]
    peak = max(result["maxrss_mib"], result["tree_rss_mib"])
    size = "" if result["object_mib"] == GOAL_OBJECT_MIB else f"; object was {result['object_mib']} MiB"
    measured = (
        f"{peak:.0f} MiB, {result['wall_s']:.1f} s, temp disk {result['tmp_peak_mib']:.0f} MiB "
        f"(copy {result['check']}{size})"
    )
    met = result["check"] == "ok" and peak < GOAL_RSS_MIB
    return [
        {"goal": goal, "measured": measured, "pass": met if result["object_mib"] >= GOAL_OBJECT_MIB else None}
    ]


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--mib", type=int, default=GOAL_OBJECT_MIB, help="object size in MiB (default 200)")
    ap.add_argument("--json-out", help="write the result here as JSON")
    args = ap.parse_args(argv)
    result = run(args.mib)
    for row in goals(result):
        print(f"{row['goal']}: {row['measured']} -> {'pass' if row['pass'] else row['pass']}")
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(result, indent=2) + "\n")
    return 0 if result["check"] == "ok" else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
