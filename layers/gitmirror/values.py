"""Plain value types (stdlib only): the engine's options and results, and the service's vocabulary.

Plain dataclasses, not pydantic: `gitmirror sync` and the worker's engine path import nothing heavier
than the git transport. The service records in `models` embed them (pydantic validates and serializes
dataclass fields), so stored runs and API replies keep the same shape.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import re
import secrets
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

ZERO_SHA = "0" * 40
BRANCH_PREFIX = "refs/heads/"
TAG_PREFIX = "refs/tags/"


class Action(StrEnum):
    """What happened (or will happen) to one ref on the target."""

    CREATE = "create"
    UPDATE = "update"
    FORCE_UPDATE = "force_update"
    DELETE = "delete"
    SKIP_DIVERGENT = "skip_divergent"
    REJECTED = "rejected"


class RunStatus(StrEnum):
    SUCCESS = "success"
    PARTIAL = "partial"
    FAILED = "failed"
    # stopped by its time limit with refs not yet at their final value: run again to continue
    INCOMPLETE = "incomplete"


@dataclass(frozen=True)
class MirrorOptions:
    """The knobs of GitLab's push mirror that change per-ref decisions. Invalid values raise ValueError."""

    keep_divergent_refs: bool = False
    branch_filters: tuple[str, ...] = ()
    branch_regex: str | None = None
    lfs: bool = True  # copy the Git LFS objects the pushed commits point to

    def __post_init__(self) -> None:
        filters = tuple(self.branch_filters)
        object.__setattr__(self, "branch_filters", filters)
        for pattern in filters:
            if (
                not isinstance(pattern, str)
                or not pattern
                or any(c in pattern for c in "\x00\n\r")
                or len(pattern) > 255
            ):
                raise ValueError(f"invalid branch filter {pattern!r}")
        value = self.branch_regex
        if value is not None:
            if len(value) > 1024:
                raise ValueError("branch regex is longer than 1024 characters")
            from gitmirror.patterns import compile_regex  # RE2 only where a regex is configured

            compile_regex(value)

    @property
    def filters_branches(self) -> bool:
        return bool(self.branch_filters) or self.branch_regex is not None


@dataclass(frozen=True, slots=True)  # slots: a run may decide 400,000 refs
class RefUpdate:
    """One ref's decision and, after the push, its outcome.

    `old` is the target's id before the run (None when the ref did not exist there); `new` the id
    pushed (None for a deletion; the source's id for a skipped or rejected ref). A rejected ref
    carries the refusal's class (`reason_code`, see `gitmirror.mirror.rejections`) and a one-line `hint`.
    """

    ref: str
    action: Action
    old: str | None = None
    new: str | None = None
    error: str | None = None
    reason_code: str | None = None
    hint: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "ref": self.ref,
            "action": self.action.value,
            "old": self.old,
            "new": self.new,
            "error": self.error,
            "reason_code": self.reason_code,
            "hint": self.hint,
        }


@dataclass(frozen=True)
class SyncProgress:
    """Where a run is, for a progress display: its phase, and pushes done of those planned so far (a
    push a target refused whole may be split, which plans more). Bytes moved so far are in the
    remotes' `stats`, updated as they move."""

    phase: str  # "listing", "fetching", "fetching commit graph", "planning", "copying LFS objects", "pushing", "done"
    pushes_done: int = 0
    pushes_planned: int = 0
    lfs_objects: int = 0  # LFS objects copied so far


@dataclass
class SyncStats:
    bytes_received: int = 0
    bytes_sent: int = 0
    pushes: int = 0
    bytes_pushed: int = 0  # pack bytes the target accepted
    duration_seconds: float = 0.0
    transfer: str = "full"


@dataclass
class LfsStats:
    """Git LFS in one run: objects and bytes copied; `error` says what was not mirrored (None: all)."""

    objects: int = 0
    bytes: int = 0
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"objects": self.objects, "bytes": self.bytes, "error": self.error}


@dataclass
class SyncResult:
    """The result of one mirror run, in the shape `gitmirror sync --json` prints.

    A failed run carries its failure's `reason_code` and `hint`, as rejected refs do. A dry run
    (`dry_run`) pushed nothing: `refs` holds the actions a real run would take.
    """

    status: RunStatus
    divergent_refs: list[str] = field(default_factory=list)
    refs: list[RefUpdate] = field(default_factory=list)
    error: str | None = None
    error_kind: str | None = None
    retryable: bool = False
    stats: SyncStats = field(default_factory=SyncStats)
    reason_code: str | None = None
    hint: str | None = None
    dry_run: bool = False
    lfs: LfsStats = field(default_factory=LfsStats)
    remaining_refs: list[str] = field(default_factory=list)  # not yet at their final value (sorted)

    def count(self, action: Action) -> int:
        return sum(1 for r in self.refs if r.action == action)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: enums as their values."""
        return {
            "status": self.status.value,
            "divergent_refs": list(self.divergent_refs),
            "refs": [r.to_dict() for r in self.refs],
            "error": self.error,
            "error_kind": self.error_kind,
            "retryable": self.retryable,
            "stats": dataclasses.asdict(self.stats),
            "reason_code": self.reason_code,
            "hint": self.hint,
            "dry_run": self.dry_run,
            "lfs": self.lfs.to_dict(),
            "remaining_refs": list(self.remaining_refs),
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict())


# --- the service's vocabulary (field names follow GitLab's remote mirrors API) ------------------------


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def iso(when: dt.datetime) -> str:
    """Timestamps as stored and shown: UTC, microseconds, a trailing Z (they sort as text)."""
    return when.astimezone(dt.UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def parse_iso(value: str) -> dt.datetime:
    return dt.datetime.fromisoformat(value.replace("Z", "+00:00"))


def new_run_id(now: dt.datetime | None = None) -> str:
    """Sortable by start time; unique across concurrent workers."""
    return f"{iso(now or utcnow())}-{secrets.token_hex(4)}"


# GitLab treats a mirror stuck in `started` for over an hour as failed; a lease never lasts longer.
STUCK_AFTER_SECONDS = 3600
MAX_LEASE_SECONDS = STUCK_AFTER_SECONDS
# a mirror id: lower-case letters, digits, "-" and "_", as in DynamoDB keys and URLs. Use `fullmatch`:
# with `match`, `$` also matches before a trailing newline ("nl\n" would pass)
MIRROR_ID = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")


class UpdateStatus(StrEnum):
    NONE = "none"
    SCHEDULED = "scheduled"
    STARTED = "started"
    FINISHED = "finished"
    FAILED = "failed"


class AuthMethod(StrEnum):
    """How the worker authenticates to the target: a stored secret, (CodeCommit) its own IAM role, or
    (github.com, GitHub Enterprise Server) a GitHub App whose key the secret holds."""

    PASSWORD = "password"
    IAM = "iam"
    NONE = "none"
    GITHUB_APP = "github_app"


class Provider(StrEnum):
    """The host that sends push webhooks for a source repository."""

    GITHUB = "github"
    GITLAB = "gitlab"
    GITEA = "gitea"


class Trigger(StrEnum):
    WEBHOOK = "webhook"
    MANUAL = "manual"
    SCHEDULE = "schedule"
    CONTINUATION = "continuation"  # the next run of a mirror whose last run stopped incomplete
