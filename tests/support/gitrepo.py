"""Build git scenarios with the real git CLI (plumbing via subprocess, no dulwich).

Every git invocation runs with a fixed, isolated environment: a private temporary HOME,
no system config, fixed author/committer identity, ``init.defaultBranch=main`` and
deterministic dates.  Commit and tag dates come from a per-repository counter (keyed by
the resolved repository path) that starts at ``BASE_TIMESTAMP`` and advances by
``DATE_STEP`` seconds for every commit/annotated tag created through this module, so a
scenario built the same way always produces the same object ids regardless of test order.

Note the consequence: two *different* repositories that get the same sequence of
``commit()`` calls (same files, message, parents) produce identical commits.  Use a
different message or file content when a scenario needs genuinely distinct histories.
"""

from __future__ import annotations

import atexit
import os
import shutil
import subprocess
import tempfile
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path

GIT = shutil.which("git") or "/usr/bin/git"

AUTHOR_NAME = "Test Author"
AUTHOR_EMAIL = "author@example.com"
COMMITTER_NAME = "Test Committer"
COMMITTER_EMAIL = "committer@example.com"
BASE_TIMESTAMP = 1_700_000_000
DATE_STEP = 60

ZERO_SHA = "0" * 40
EMPTY_TREE = "4b825dc642cb6eb9a060e54bf8d69288fbee4904"

_home_lock = threading.Lock()
_home_dir: str | None = None
_counter_lock = threading.Lock()
_counters: dict[str, int] = {}


class GitError(RuntimeError):
    """A git command failed; the message carries the command line and git's stderr."""

    def __init__(self, args: Sequence[str], returncode: int, stdout: bytes, stderr: bytes) -> None:
        self.args_list = list(args)
        self.returncode = returncode
        self.stdout = stdout
        self.stderr = stderr.decode("utf-8", "replace")
        super().__init__(f"git {' '.join(args)} failed with exit code {returncode}:\n{self.stderr}")


def _home() -> str:
    global _home_dir
    with _home_lock:
        if _home_dir is None:
            # not under TMPDIR: tests point TMPDIR at a directory they prove stays empty
            _home_dir = tempfile.mkdtemp(prefix="gitmirror-test-home-", dir="/tmp")
            atexit.register(shutil.rmtree, _home_dir, True)
        return _home_dir


def git_env(extra: Mapping[str, str] | None = None, date: str | None = None) -> dict[str, str]:
    """The isolated environment every git command here runs with (usable for client git too)."""
    stamp = date or f"@{BASE_TIMESTAMP} +0000"
    env = {
        "PATH": os.environ.get("PATH", "/usr/local/bin:/usr/bin:/bin"),
        "HOME": _home(),
        "XDG_CONFIG_HOME": os.path.join(_home(), ".config"),
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_TERMINAL_PROMPT": "0",
        "GIT_AUTHOR_NAME": AUTHOR_NAME,
        "GIT_AUTHOR_EMAIL": AUTHOR_EMAIL,
        "GIT_AUTHOR_DATE": stamp,
        "GIT_COMMITTER_NAME": COMMITTER_NAME,
        "GIT_COMMITTER_EMAIL": COMMITTER_EMAIL,
        "GIT_COMMITTER_DATE": stamp,
        "LC_ALL": "C",
        "LANG": "C",
        "TZ": "UTC",
    }
    if extra:
        env.update(extra)
    return env


def run_git(
    *args: str,
    cwd: str | os.PathLike[str] | None = None,
    input: bytes | str | None = None,
    env: Mapping[str, str] | None = None,
    check: bool = True,
    timeout: float = 60.0,
) -> subprocess.CompletedProcess[bytes]:
    """Run ``git -c init.defaultBranch=main <args>`` (not bound to a repository); bytes in/out."""
    argv = [GIT, "-c", "init.defaultBranch=main", *args]
    data = input.encode() if isinstance(input, str) else input
    proc = subprocess.run(
        argv,
        cwd=cwd,
        input=data,
        env=git_env(env),
        capture_output=True,
        timeout=timeout,
        check=False,
    )
    if check and proc.returncode != 0:
        raise GitError(args, proc.returncode, proc.stdout, proc.stderr)
    return proc


def _git_dir(repo: str | os.PathLike[str]) -> str:
    path = Path(repo)
    dotgit = path / ".git"
    return str(dotgit if dotgit.is_dir() else path)


def git_bytes(
    repo: str | os.PathLike[str],
    *args: str,
    input: bytes | str | None = None,
    env: Mapping[str, str] | None = None,
) -> bytes:
    """Run git against ``repo`` (``--git-dir``) and return raw stdout; raises GitError."""
    return run_git(f"--git-dir={_git_dir(repo)}", *args, input=input, env=env).stdout


def git(
    repo: str | os.PathLike[str],
    *args: str,
    input: bytes | str | None = None,
    env: Mapping[str, str] | None = None,
) -> str:
    """Run git against ``repo`` and return stdout as text without the trailing newline."""
    return git_bytes(repo, *args, input=input, env=env).decode("utf-8", "replace").rstrip("\n")


def _next_date(repo: str | os.PathLike[str]) -> str:
    key = str(Path(repo).resolve())
    with _counter_lock:
        n = _counters.get(key, 0)
        _counters[key] = n + 1
    return f"@{BASE_TIMESTAMP + n * DATE_STEP} +0000"


def init_bare(path: str | os.PathLike[str], default_branch: str = "main") -> Path:
    """``git init --bare -b <default_branch> <path>``; returns the path."""
    run_git("init", "--quiet", "--bare", "-b", default_branch, str(path))
    return Path(path)


def rev_parse(repo: str | os.PathLike[str], rev: str) -> str | None:
    """Resolve ``rev`` to a full sha, or None when it does not exist."""
    proc = run_git(f"--git-dir={_git_dir(repo)}", "rev-parse", "--verify", "--quiet", rev, check=False)
    if proc.returncode != 0:
        return None
    return proc.stdout.decode().strip()


def commit(
    repo: str | os.PathLike[str],
    ref: str | None = "refs/heads/main",
    files: Mapping[str, bytes | str | None] | None = None,
    parents: Sequence[str] | None = None,
    message: str = "test commit",
    date: str | None = None,
) -> str:
    """Create a commit and (when ``ref`` is not None) point ``ref`` at it; returns its sha.

    ``parents`` defaults to the current value of ``ref`` (no parents when the ref does not
    exist or ``ref`` is None); pass ``[]`` for an explicit root commit.  The tree starts
    from the first parent's tree and applies ``files`` on top: ``{"dir/a.txt": b"..."}``
    adds/replaces a blob (mode 100644), a value of None deletes that path.  ``files=None``
    keeps the first parent's tree unchanged (empty tree for a root commit).  ``date`` is a
    git date string (e.g. ``"@1700000000 +0000"``); by default the per-repo counter is used.
    """
    if parents is None:
        current = rev_parse(repo, ref) if ref is not None else None
        parents = [current] if current else []
    parents = list(parents)
    base_tree = git(repo, "rev-parse", f"{parents[0]}^{{tree}}") if parents else EMPTY_TREE
    tree = base_tree
    if files:
        tree = _build_tree(repo, base_tree, files)
    if tree == EMPTY_TREE:
        git(repo, "mktree", input="")  # git knows the empty tree virtually; store it for real
    stamp = date or _next_date(repo)
    date_env = {"GIT_AUTHOR_DATE": stamp, "GIT_COMMITTER_DATE": stamp}
    args = ["commit-tree", tree]
    for parent in parents:
        args += ["-p", parent]
    sha = git(repo, *args, input=message if message.endswith("\n") else message + "\n", env=date_env)
    if ref is not None:
        set_ref(repo, ref, sha)
    return sha


def _build_tree(repo: str | os.PathLike[str], base_tree: str, files: Mapping[str, bytes | str | None]) -> str:
    fd, index_path = tempfile.mkstemp(prefix="gitmirror-index-")
    os.close(fd)
    os.unlink(index_path)  # git wants to create the index itself
    env = {"GIT_INDEX_FILE": index_path}
    try:
        git(repo, "read-tree", base_tree, env=env)
        lines = []
        for path, content in files.items():
            if content is None:
                lines.append(f"0 {ZERO_SHA}\t{path}\n")
                continue
            blob = git(repo, "hash-object", "-w", "--stdin", input=content)
            lines.append(f"100644 blob {blob}\t{path}\n")
        git(repo, "update-index", "--index-info", input="".join(lines), env=env)
        return git(repo, "write-tree", env=env)
    finally:
        if os.path.exists(index_path):
            os.unlink(index_path)


def _qualify(name: str, prefix: str) -> str:
    return name if name.startswith("refs/") else f"{prefix}{name}"


def tag(
    repo: str | os.PathLike[str],
    name: str,
    target: str,
    annotated: bool = False,
    message: str = "test tag",
) -> str:
    """Create ``refs/tags/<name>`` (``name`` may also be a full ref) pointing at ``target``.

    Lightweight tags point the ref at ``target`` directly; annotated tags create a tag
    object with ``git mktag``.  Returns the sha stored in the ref (the tag object's sha for
    annotated tags).
    """
    ref = _qualify(name, "refs/tags/")
    value = rev_parse(repo, target) or target
    if annotated:
        obj_type = git(repo, "cat-file", "-t", value)
        stamp = _next_date(repo).lstrip("@")
        short = ref.removeprefix("refs/tags/")
        body = (
            f"object {value}\ntype {obj_type}\ntag {short}\n"
            f"tagger {COMMITTER_NAME} <{COMMITTER_EMAIL}> {stamp}\n\n{message.rstrip()}\n"
        )
        value = git(repo, "mktag", input=body)
    set_ref(repo, ref, value)
    return value


def set_ref(repo: str | os.PathLike[str], ref: str, sha: str) -> None:
    """Point ``ref`` at ``sha`` (``git update-ref``, no old-value check)."""
    git(repo, "update-ref", ref, sha)


def delete_ref(repo: str | os.PathLike[str], ref: str) -> None:
    """Delete ``ref`` (``git update-ref -d``)."""
    git(repo, "update-ref", "-d", ref)


def refs(repo: str | os.PathLike[str]) -> dict[str, str]:
    """Every ref (loose and packed, not HEAD) mapped to the sha it stores (not peeled)."""
    out = git(repo, "for-each-ref", "--format=%(refname) %(objectname)")
    result: dict[str, str] = {}
    for line in out.splitlines():
        name, sha = line.split(" ", 1)
        result[name] = sha
    return result


def set_head(repo: str | os.PathLike[str], branch: str) -> None:
    """Point HEAD at ``branch`` (``main`` or ``refs/heads/main``) via ``git symbolic-ref``."""
    git(repo, "symbolic-ref", "HEAD", _qualify(branch, "refs/heads/"))


def head(repo: str | os.PathLike[str]) -> str:
    """The ref HEAD points at, e.g. ``refs/heads/main``."""
    return git(repo, "symbolic-ref", "HEAD")


def is_ancestor(repo: str | os.PathLike[str], a: str, b: str) -> bool:
    """True when commit ``a`` is an ancestor of (or equal to) commit ``b``."""
    proc = run_git(f"--git-dir={_git_dir(repo)}", "merge-base", "--is-ancestor", a, b, check=False)
    if proc.returncode in (0, 1):
        return proc.returncode == 0
    raise GitError(["merge-base", "--is-ancestor", a, b], proc.returncode, proc.stdout, proc.stderr)


def has_object(repo: str | os.PathLike[str], sha: str) -> bool:
    """True when the object exists in ``repo``."""
    proc = run_git(f"--git-dir={_git_dir(repo)}", "cat-file", "-e", sha, check=False)
    return proc.returncode == 0


def clone_bundle_bare(bundle_path: str | os.PathLike[str], dest: str | os.PathLike[str]) -> Path:
    """``git clone --mirror <bundle> <dest>`` then drop the ``origin`` remote; returns dest.

    ``git remote remove`` only deletes refs under refs/remotes/, so the mirrored
    refs/heads, refs/tags etc. stay.
    """
    run_git("clone", "--quiet", "--mirror", str(bundle_path), str(dest))
    git(dest, "remote", "remove", "origin")
    return Path(dest)
