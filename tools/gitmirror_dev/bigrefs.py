"""A repository listing hundreds of thousands of branches, made in seconds (bench and tests).

Each branch is at its own commit of one first-parent chain (no two share an id, as in a busy
repository), and the refs are written straight into packed-refs: `git update-ref` takes minutes for
400,000 of them.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

_IDENTITY = b"Bench <bench@example.invalid>"


def bigref_name(i: int) -> str:
    """A dependabot-like branch name of 79 characters: 400,000 of them make a 50 MB ls-refs answer."""
    return f"refs/heads/dependabot/npm_and_yarn/team-{i // 20_000:02d}/update-a-long-dependency-name-{i:06d}"


def _git(repo: Path, *args: str, env: dict[str, str]) -> str:
    return subprocess.run(
        ["git", "-C", str(repo), *args], check=True, capture_output=True, env=env
    ).stdout.decode()


def build_bigrefs(dst: Path, n: int, env: dict[str, str] | None = None) -> None:
    """A new bare repository at `dst`: `main` and n branches (bigref_name(0..n-1)), packed and
    repacked as a hosting server keeps them (one pack with a bitmap)."""
    env = {**os.environ, **(env or {})}
    subprocess.run(["git", "init", "-q", "--bare", str(dst)], check=True, env=env)
    proc = subprocess.Popen(["git", "-C", str(dst), "fast-import", "--quiet"], stdin=subprocess.PIPE, env=env)
    assert proc.stdin is not None
    proc.stdin.write(
        b"commit refs/heads/main\nmark :1\ncommitter %s 1700000000 +0000\n"
        b"data 5\nbase\nM 100644 inline README\ndata 6\nhello\n\n" % _IDENTITY
    )
    for i in range(n):
        proc.stdin.write(b"commit refs/heads/main\nmark :%d\n" % (i + 2))
        proc.stdin.write(b"committer %s %d +0000\n" % (_IDENTITY, 1700000001 + i))
        proc.stdin.write(b"data 14\nchange %06d\n\n" % i)
    proc.stdin.close()
    if proc.wait() != 0:
        raise RuntimeError("git fast-import failed")
    _git(dst, "symbolic-ref", "HEAD", "refs/heads/main", env=env)
    _git(dst, "repack", "-a", "-d", "-b", "-q", env=env)
    chain = _git(dst, "rev-list", "--reverse", "refs/heads/main", env=env).split()  # oldest first
    lines = [f"{chain[-1]} refs/heads/main"] + [f"{chain[i + 1]} {bigref_name(i)}" for i in range(n)]
    lines.sort(key=lambda line: line.split(" ", 1)[1].encode())
    packed = "# pack-refs with: peeled fully-peeled sorted \n" + "".join(f"{line}\n" for line in lines)
    (dst / "packed-refs").write_text(packed)
    (dst / "refs" / "heads" / "main").unlink(missing_ok=True)  # packed-refs holds it now
