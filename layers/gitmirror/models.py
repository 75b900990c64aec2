"""Pydantic models at the edges of the engine: options in, per-ref results and the run result out."""

from __future__ import annotations

import datetime as dt
import re
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field, field_validator

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


class MirrorOptions(BaseModel):
    """The knobs of GitLab's push mirror that change per-ref decisions."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    keep_divergent_refs: bool = False
    branch_filters: tuple[str, ...] = ()
    branch_regex: str | None = None

    @field_validator("branch_filters")
    @classmethod
    def _check_filters(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for pattern in value:
            if not pattern or any(c in pattern for c in "\x00\n\r") or len(pattern) > 255:
                raise ValueError(f"invalid branch filter {pattern!r}")
        return value

    @field_validator("branch_regex")
    @classmethod
    def _check_regex(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if len(value) > 1024:
            raise ValueError("branch regex is longer than 1024 characters")
        try:
            re.compile(value)
        except re.error as exc:
            raise ValueError(f"invalid branch regex: {exc}") from None
        return value

    @property
    def filters_branches(self) -> bool:
        return bool(self.branch_filters) or self.branch_regex is not None


class RefUpdate(BaseModel):
    """One ref's decision and, after the push, its outcome.

    `old` is the target's id before the run (None when the ref did not exist there); `new` the id
    pushed (None for a deletion; the source's id for a skipped or rejected ref).
    """

    model_config = ConfigDict(frozen=True)

    ref: str
    action: Action
    old: str | None = None
    new: str | None = None
    error: str | None = None


class SyncStats(BaseModel):
    bytes_received: int = 0
    bytes_sent: int = 0
    pushes: int = 0
    duration_seconds: float = 0.0
    transfer: str = "full"


class SyncResult(BaseModel):
    """The result of one mirror run, in the shape `gitmirror sync --json` prints."""

    status: RunStatus
    divergent_refs: list[str] = Field(default_factory=list)
    refs: list[RefUpdate] = Field(default_factory=list)
    error: str | None = None
    error_kind: str | None = None
    retryable: bool = False
    stats: SyncStats = Field(default_factory=SyncStats)

    def count(self, action: Action) -> int:
        return sum(1 for r in self.refs if r.action == action)


# --- the service's records ---------------------------------------------------------------------------
# Field names follow GitLab's remote mirrors API where GitLab has the concept.


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def iso(when: dt.datetime) -> str:
    """Timestamps as stored and shown: UTC, microseconds, a trailing Z (they sort as text)."""
    return when.astimezone(dt.UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def parse_iso(value: str) -> dt.datetime:
    return dt.datetime.fromisoformat(value.replace("Z", "+00:00"))


# GitLab treats a mirror stuck in `started` for over an hour as failed; so does the lease.
STUCK_AFTER_SECONDS = 3600
_ID = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
_SECRET_NAME = re.compile(r"^[A-Za-z0-9/_+=.@-]{1,512}$")


class UpdateStatus(StrEnum):
    NONE = "none"
    SCHEDULED = "scheduled"
    STARTED = "started"
    FINISHED = "finished"
    FAILED = "failed"


class AuthMethod(StrEnum):
    """How the worker authenticates to the target: a stored secret, or (CodeCommit) its own IAM role."""

    PASSWORD = "password"
    IAM = "iam"
    NONE = "none"


class Provider(StrEnum):
    """The host that sends push webhooks for a source repository."""

    GITHUB = "github"
    GITLAB = "gitlab"
    GITEA = "gitea"


class Trigger(StrEnum):
    WEBHOOK = "webhook"
    MANUAL = "manual"
    SCHEDULE = "schedule"


def _check_id(value: str) -> str:
    if not _ID.match(value):
        raise ValueError(
            "id must be 1-64 characters of a-z, 0-9, '-' or '_', starting with a letter or digit"
        )
    return value


def _check_secret_name(value: str | None) -> str | None:
    if value is not None and (not _SECRET_NAME.match(value) or ".." in value):
        raise ValueError("secret names may use letters, digits and /_+=.@- only")
    return value


class MirrorSettings(BaseModel):
    """The fields an operator may change after creation (GitLab: the target URL is immutable)."""

    model_config = ConfigDict(extra="forbid", str_max_length=2048)

    enabled: bool | None = None
    keep_divergent_refs: bool | None = None
    mirror_branch_regex: str | None = None
    branch_filters: list[str] | None = Field(default=None, max_length=100)
    source_secret: str | None = None
    target_secret: str | None = None
    webhook_secret: str | None = None

    @field_validator("source_secret", "target_secret", "webhook_secret")
    @classmethod
    def _secret_names(cls, value: str | None) -> str | None:
        return _check_secret_name(value)

    @field_validator("mirror_branch_regex")
    @classmethod
    def _regex(cls, value: str | None) -> str | None:
        MirrorOptions(branch_regex=value)
        return value

    @field_validator("branch_filters")
    @classmethod
    def _filters(cls, value: list[str] | None) -> list[str] | None:
        if value is not None:
            MirrorOptions(branch_filters=tuple(value))
        return value


class MirrorSpec(MirrorSettings):
    """A new mirror, as given to `POST /mirrors` or `gitmirror mirrors add`."""

    id: str | None = None
    source_url: str
    url: str
    provider: Provider
    source_repo_id: str | None = Field(default=None, pattern=r"^[0-9]{1,20}$")
    source_full_name: str | None = Field(default=None, min_length=1, max_length=255)
    auth_method: AuthMethod = AuthMethod.PASSWORD

    @field_validator("id")
    @classmethod
    def _id(cls, value: str | None) -> str | None:
        return None if value is None else _check_id(value)


class Mirror(BaseModel):
    """One mirror's DynamoDB item: configuration plus GitLab-style status fields."""

    model_config = ConfigDict(extra="ignore")

    id: str
    enabled: bool = True
    url: str
    source_url: str
    provider: Provider
    source_repo_id: str | None = None
    source_full_name: str | None = None
    source_key: str
    keep_divergent_refs: bool = False
    mirror_branch_regex: str | None = None
    branch_filters: list[str] = Field(default_factory=list)
    auth_method: AuthMethod = AuthMethod.PASSWORD
    source_secret: str | None = None
    target_secret: str | None = None
    webhook_secret: str | None = None
    only_protected_branches: bool = False  # not supported: a push mirror cannot see source protections
    update_status: UpdateStatus = UpdateStatus.NONE
    last_update_at: str | None = None
    last_update_started_at: str | None = None
    last_successful_update_at: str | None = None
    last_error: str | None = None
    result: RunStatus | None = None
    divergent_refs: list[str] = Field(default_factory=list)
    refs_created: int = 0
    refs_updated: int = 0
    refs_deleted: int = 0
    refs_rejected: int = 0
    refs_skipped: int = 0
    last_run_id: str | None = None
    last_scheduled_at: str | None = None
    created_at: str | None = None
    updated_at: str | None = None
    stuck: bool | None = None  # computed by public(), never stored

    @property
    def options(self) -> MirrorOptions:
        return MirrorOptions(
            keep_divergent_refs=self.keep_divergent_refs,
            branch_filters=tuple(self.branch_filters),
            branch_regex=self.mirror_branch_regex,
        )

    def is_stuck(self, now: dt.datetime | None = None) -> bool:
        """GitLab: a mirror `started` for over an hour is treated as failed."""
        if self.update_status != UpdateStatus.STARTED or not self.last_update_started_at:
            return False
        try:
            started = parse_iso(self.last_update_started_at)
        except ValueError:
            return False
        return (now or utcnow()) - started > dt.timedelta(seconds=STUCK_AFTER_SECONDS)

    def public(self, now: dt.datetime | None = None) -> dict[str, object]:
        """The record as the API and CLI show it: internal fields left out, a stuck run shown failed."""
        data = self.model_dump(mode="json", exclude={"source_key", "stuck"})
        if self.is_stuck(now):
            data["update_status"] = UpdateStatus.FAILED.value
            data["stuck"] = True
        return data


def source_keys(provider: str, repo_id: str | None, full_name: str | None) -> list[str]:
    """GSI keys a webhook's repository identity can match: by numeric id, and by path."""
    keys = []
    if repo_id:
        keys.append(f"{provider}#id#{repo_id}")
    if full_name:
        keys.append(f"{provider}#name#{full_name.lower()}")
    return keys


class SyncJob(BaseModel):
    """An SQS message: "sync mirror X, triggered by delivery D". Never carries secrets or URLs."""

    model_config = ConfigDict(extra="forbid")

    mirror_id: str
    trigger: Trigger
    delivery_id: str | None = None
    enqueued_at: str


class RunRecord(BaseModel):
    """One item of run history (TTL'd)."""

    mirror_id: str
    run_id: str
    trigger: Trigger
    delivery_id: str | None = None
    attempt: int = 1
    started_at: str
    finished_at: str | None = None
    update_status: UpdateStatus
    result: RunStatus | None = None
    error: str | None = None
    divergent_refs: list[str] = Field(default_factory=list)
    refs: list[RefUpdate] = Field(default_factory=list)
    bytes_received: int = 0
    bytes_sent: int = 0
    duration_ms: int = 0
    transfer: str | None = None
    expires_at: int | None = None
