"""Transfers into a local target delegated to git: `git push` from a local repository into it.

Between two repositories on this machine there is nothing to download: git's own push computes what
the target lacks and packs it in C, which dulwich's fetch into scratch storage and re-push cannot
match (pip: 38 s against git's 12 s). The mirror's rules stay ours: only the planned ref updates are
pushed, each with `--force-with-lease` on the value it was planned against. A pack fetched from a
remote source for a local target is indexed by git too (dulwich's indexing holds each object whole).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from gitmirror.errors import ProtocolFailure
from gitmirror.scrub import one_line, scrub

if TYPE_CHECKING:
    from gitmirror.mirror.transport.deadline import Deadline
    from gitmirror.mirror.transport.fetched_pack import FetchedPack

_REJECTED = "!"
# git holds a blob whole in memory to delta-compress or hash it unless it is above this size, when it
# is streamed instead (git's default is 512 MiB): memory must not follow the largest blob.
_BIG_FILES = "core.bigFileThreshold=16m"
_GIT = ["git", "-c", _BIG_FILES]
# git push clears its own -c options for the receive-pack it starts: give them to it explicitly
_RECEIVE_PACK = f"--receive-pack=git -c {_BIG_FILES} receive-pack"


@dataclass(frozen=True)
class GitPushResult:
    status: dict[str, str | None]  # ref -> None when applied, else git's reason
    remote_messages: bytes  # what the target's hooks said (`remote:` lines)


def git_available() -> bool:
    return shutil.which("git") is not None


def push_between(
    source_path: str,
    target_path: str,
    updates: Mapping[str, tuple[str | None, str | None]],
    deadline: Deadline | None,
) -> GitPushResult:
    """Push {ref: (expected old, new or None to delete)} from one local repository to another."""
    leases = [f"--force-with-lease={ref}:{old or ''}" for ref, (old, _new) in updates.items()]
    refspecs = [f"{new or ''}:{ref}" for ref, (_old, new) in updates.items()]
    where = scrub(target_path)
    try:
        command = [*_GIT, f"--git-dir={source_path}", "push", "--porcelain", "--no-verify", _RECEIVE_PACK]
        command += leases
        proc = subprocess.run(
            [*command, target_path, *refspecs],
            capture_output=True,
            timeout=max(0.1, deadline.remaining()) if deadline is not None else None,
            check=False,
        )
    except subprocess.TimeoutExpired:
        assert deadline is not None
        raise deadline.error(where) from None
    status = _porcelain_status(proc.stdout.decode("utf-8", "surrogateescape"))
    if proc.returncode != 0 and not status:
        raise ProtocolFailure(
            f"git push to {where} failed: {one_line(proc.stderr.decode('utf-8', 'replace'))}"
        )
    missing = [ref for ref in updates if ref not in status]
    for ref in missing:
        status[ref] = "not reported by git push"
    remote = b"\n".join(
        line[len(b"remote: ") :] for line in proc.stderr.splitlines() if line.startswith(b"remote: ")
    )
    return GitPushResult(status=status, remote_messages=remote)


def index_with_git(fetched: FetchedPack, target_path: str, deadline: Deadline | None) -> None:
    """Make the fetched pack's objects usable by git in the scratch repository: `git index-pack` reads
    it streaming, and the target's objects are an alternate, so the delta's bases resolve."""
    where = scrub(target_path)
    scratch = fetched.repo.path
    timeout = max(0.1, deadline.remaining()) if deadline is not None else None
    try:
        git_dir = (
            subprocess.run(
                ["git", "-C", target_path, "rev-parse", "--absolute-git-dir"],
                capture_output=True,
                check=True,
                timeout=timeout,
            )
            .stdout.decode()
            .strip()
        )
        alternates = os.path.join(scratch, "objects", "info", "alternates")
        os.makedirs(os.path.dirname(alternates), exist_ok=True)
        with open(alternates, "w") as out:
            out.write(os.path.join(git_dir, "objects") + "\n")
        with tempfile.TemporaryFile() as errors:
            proc = subprocess.Popen(
                [*_GIT, f"--git-dir={scratch}", "index-pack", "--stdin"],
                stdin=subprocess.PIPE,
                stdout=subprocess.DEVNULL,
                stderr=errors,
            )
            assert proc.stdin is not None
            try:
                for block in fetched.chunks():
                    proc.stdin.write(block)
            except BrokenPipeError:
                pass  # git stopped reading: its exit status and message say why
            finally:
                proc.stdin.close()
            try:
                code = proc.wait(timeout=max(0.1, deadline.remaining()) if deadline is not None else None)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
                raise
            errors.seek(0)
            message = errors.read().decode("utf-8", "replace")
    except subprocess.TimeoutExpired:
        assert deadline is not None
        raise deadline.error(where) from None
    except subprocess.CalledProcessError as exc:
        raise ProtocolFailure(f"{where} is not a git repository: {one_line(exc.stderr.decode())}") from None
    if code != 0:
        raise ProtocolFailure(f"git could not index the pack the source sent: {one_line(message)}")


def _porcelain_status(output: str) -> dict[str, str | None]:
    """`git push --porcelain` lines: flag TAB from:to TAB summary [(reason)]."""
    status: dict[str, str | None] = {}
    for line in output.splitlines():
        parts = line.split("\t")
        if len(parts) < 3 or len(parts[0]) != 1 or ":" not in parts[1]:
            continue
        ref = parts[1].rsplit(":", 1)[1]
        if parts[0] == _REJECTED:
            summary = parts[2]
            reason = summary[summary.find("(") + 1 : summary.rfind(")")] if "(" in summary else summary
            status[ref] = reason.strip() or "rejected"
        else:
            status[ref] = None
    return status
