"""Sample data for the demo, the local stack and the tests: upstream histories made with the git CLI,
the optional benchmark bundles, and the vendored real webhook payloads."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import threading
from pathlib import Path

from gitmirror_dev.lambdas import project_root

_ENV = {
    "GIT_AUTHOR_NAME": "gitmirror demo",
    "GIT_AUTHOR_EMAIL": "demo@gitmirror.invalid",
    "GIT_COMMITTER_NAME": "gitmirror demo",
    "GIT_COMMITTER_EMAIL": "demo@gitmirror.invalid",
    "GIT_CONFIG_NOSYSTEM": "1",
}


def git(repo: Path, *args: str, stdin: str | None = None, extra_env: dict[str, str] | None = None) -> str:
    env = {**os.environ, **_ENV, "HOME": str(repo), "GIT_DIR": str(repo), **(extra_env or {})}
    proc = subprocess.run(["git", *args], env=env, input=stdin, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"git {' '.join(args)} failed: {proc.stderr.strip()}")
    return proc.stdout.strip()


# Where the benchmark bundles (httpx.bundle, pip.bundle) are looked for first; else `shared/bench`
# beside the checkout. They are optional: not in the repository (bench/README.md says how to make them).
BUNDLE_DIR_ENV = "BENCH_BUNDLE_DIR"


def find_bundle(name: str = "httpx.bundle") -> Path | None:
    """A benchmark bundle from $BENCH_BUNDLE_DIR or ../shared/bench beside the checkout; None when absent."""
    configured = os.environ.get(BUNDLE_DIR_ENV)
    if configured:
        candidate = Path(configured) / name
        return candidate if candidate.is_file() else None
    here = Path(__file__).resolve()
    for parent in here.parents:
        candidate = parent.parent / "shared" / "bench" / name
        if candidate.is_file():
            return candidate
    return None


def webhook_fixtures_dir() -> Path:
    """The real webhook deliveries and signature vectors vendored in the checkout (tests/fixtures/webhooks;
    where each came from and under which licence: tests/fixtures/SOURCES.md)."""
    return project_root() / "tests" / "fixtures" / "webhooks"


def webhook_payload(name: str) -> bytes:
    """One real delivery body, byte for byte (signatures are over these exact bytes): e.g. github/push.json."""
    return (webhook_fixtures_dir() / name).read_bytes()


def distinct_github_push(tag: str, repo_id: int | None = None, full_name: str | None = None) -> bytes:
    """The real GitHub push body as another push would send it: its own `after` (derived from `tag`).
    The receiver remembers body signatures (a replay under a new delivery id is a duplicate), so
    simulated pushes must differ as real ones do."""
    data = json.loads(webhook_payload("github/push.json"))
    data["after"] = hashlib.sha256(tag.encode()).hexdigest()[:40]
    if repo_id is not None:
        data["repository"]["id"] = repo_id
    if full_name is not None:
        data["repository"]["full_name"] = full_name
    return json.dumps(data).encode()


def fill_from_bundle(repo: Path, bundle: Path) -> str:
    """Fetch every branch and tag of a bundle into the bare `repo`; returns the default branch."""
    git(repo, "fetch", "-q", str(bundle), "+refs/heads/*:refs/heads/*", "+refs/tags/*:refs/tags/*")
    heads = git(repo, "bundle", "list-heads", str(bundle)).splitlines()
    head_sha = next((line.split()[0] for line in heads if line.endswith(" HEAD")), None)
    branch = next(
        (
            line.split()[1]
            for line in heads
            if head_sha and line.startswith(head_sha) and "refs/heads/" in line
        ),
        "refs/heads/main",
    )
    git(repo, "symbolic-ref", "HEAD", branch)
    return branch


def commit(repo: Path, branch: str, path: str, content: str, message: str) -> str:
    """Add one file on top of `branch` (created from nothing when absent) and move the branch."""
    ref = f"refs/heads/{branch}"
    parent = git(repo, "rev-parse", "--verify", "--quiet", ref) if has_ref(repo, ref) else ""
    base_tree = git(repo, "rev-parse", f"{parent}^{{tree}}") if parent else ""
    # a private index per call: concurrent commits to one repository never share a lock file
    index = repo / f"demo-index-{os.getpid()}-{threading.get_ident()}"
    with_index = {"GIT_INDEX_FILE": str(index)}
    try:
        git(repo, "read-tree", *([base_tree] if base_tree else ["--empty"]), extra_env=with_index)
        blob = git(repo, "hash-object", "-w", "--stdin", stdin=content)
        git(repo, "update-index", "--add", "--cacheinfo", f"100644,{blob},{path}", extra_env=with_index)
        tree = git(repo, "write-tree", extra_env=with_index)
    finally:
        index.unlink(missing_ok=True)
    args = ["commit-tree", tree, "-m", message] + (["-p", parent] if parent else [])
    sha = git(repo, *args)
    git(repo, "update-ref", ref, sha)
    return sha


def has_ref(repo: Path, ref: str) -> bool:
    env = {**os.environ, **_ENV, "GIT_DIR": str(repo)}
    return (
        subprocess.run(["git", "show-ref", "--verify", "--quiet", ref], env=env, check=False).returncode == 0
    )


def generated_history(repo: Path) -> str:
    """A small history with two branches and both kinds of tags; returns the default branch."""
    for i in range(5):
        commit(repo, "main", "README.md", f"# sample\n\nrevision {i}\n", f"main: revision {i}")
    git(repo, "tag", "v0.1", "refs/heads/main~2")
    git(repo, "tag", "-a", "v1.0", "-m", "release 1.0", "refs/heads/main")
    git(repo, "branch", "feature/x", "refs/heads/main~1")
    commit(repo, "feature/x", "feature.txt", "work in progress\n", "feature: start")
    git(repo, "symbolic-ref", "HEAD", "refs/heads/main")
    return "refs/heads/main"
