"""Git LFS scenarios with the real git-lfs client against git test servers with giftless mounted."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from gitmirror_dev.gitserver import GitHTTPServer
from tests.support.gitrepo import git_env

ORG = "org"
# git-lfs' filter, given per command so no global git config is written
LFS_FILTER = (
    "-c",
    "filter.lfs.process=git-lfs filter-process",
    "-c",
    "filter.lfs.required=true",
    "-c",
    "filter.lfs.clean=git-lfs clean -- %f",
    "-c",
    "filter.lfs.smudge=git-lfs smudge -- %f",
    "-c",
    "lfs.locksverify=false",
)


def require_git_lfs() -> None:
    if shutil.which("git-lfs") is None:
        raise RuntimeError("git-lfs is not installed: apt-get install -y git-lfs (scripts/setup_lfs_venv.sh)")


def run(*args: str, cwd: Path | None = None, timeout: float = 300) -> str:
    proc = subprocess.run(
        ["git", *LFS_FILTER, *args], cwd=cwd, env=git_env(), capture_output=True, text=True, timeout=timeout
    )
    if proc.returncode != 0:
        raise AssertionError(f"git {' '.join(args)} failed:\n{proc.stdout}\n{proc.stderr}")
    return proc.stdout


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def payload(size: int, seed: str) -> bytes:
    """`size` bytes that differ per seed (cheap: a repeated digest, not random)."""
    block = hashlib.sha256(seed.encode()).digest() * 2048
    return (block * (size // len(block) + 1))[:size]


@dataclass
class LfsWork:
    """A working copy with git-lfs tracking `*.bin`, pushing to one server's repository."""

    path: Path
    server: GitHTTPServer
    repo: str

    @classmethod
    def create(cls, path: Path, server: GitHTTPServer, repo: str) -> LfsWork:
        require_git_lfs()
        run("init", "-q", "-b", "main", str(path))
        run("lfs", "install", "--local", cwd=path)
        run("lfs", "track", "*.bin", cwd=path)
        return cls(path, server, repo)

    @classmethod
    def clone(cls, path: Path, server: GitHTTPServer, repo: str) -> LfsWork:
        """A working copy of an existing repository, with git-lfs tracking `*.bin` from now on."""
        require_git_lfs()
        run("clone", "-q", server.authed_repo_url(repo), str(path))
        run("lfs", "install", "--local", cwd=path)
        run("lfs", "track", "*.bin", cwd=path)
        return cls(path, server, repo)

    def commit(self, files: dict[str, bytes], message: str) -> str:
        for name, data in files.items():
            target = self.path / name
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
        run("add", "-A", cwd=self.path)
        run("commit", "-q", "-m", message, cwd=self.path)
        return run("rev-parse", "HEAD", cwd=self.path).strip()

    def push(self, *refspecs: str) -> None:
        """Push (git-lfs' pre-push hook uploads the LFS objects first)."""
        run("push", "-q", self.server.authed_repo_url(self.repo), *(refspecs or ("main",)), cwd=self.path)


def clone_with_lfs(server: GitHTTPServer, repo: str, dest: Path) -> Path:
    """A fresh clone with git-lfs smudging: LFS files get their real contents (or the clone fails)."""
    require_git_lfs()
    run("clone", "-q", server.authed_repo_url(repo), str(dest))
    return dest


def stored_objects(server: GitHTTPServer, repo: str) -> dict[str, int]:
    """The LFS objects giftless holds for `repo` (e.g. "org/dst.git"): oid -> size."""
    assert server.lfs is not None
    org, _, name = repo.removesuffix(".git").rpartition("/")
    folder = server.lfs.object_path(org or None, name, "x").parent
    if not folder.is_dir():
        return {}
    return {p.name: p.stat().st_size for p in folder.iterdir() if p.is_file()}


def lfs_requests(server: GitHTTPServer) -> list[str]:
    return [f"{r.method} {r.path}" for r in server.requests_matching(path_contains="/info/lfs")]


def remove_object(server: GitHTTPServer, repo: str, oid: str) -> None:
    assert server.lfs is not None
    org, _, name = repo.removesuffix(".git").rpartition("/")
    os.remove(server.lfs.object_path(org or None, name, oid))
