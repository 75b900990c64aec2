"""The service's records (pydantic): mirrors, jobs and run history, as stored and as the API shows them."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping
from typing import Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    field_validator,
    model_serializer,
)

from gitmirror.errors import UsageError
from gitmirror.mirror.limits import parse_size
from gitmirror.values import (
    MIRROR_ID,
    STUCK_AFTER_SECONDS,
    AuthMethod,
    MirrorOptions,
    Provider,
    RefUpdate,
    RunStatus,
    Trigger,
    UpdateStatus,
    parse_iso,
    utcnow,
)

_SECRET_NAME = re.compile(r"[A-Za-z0-9/_+=.@-]{1,512}")  # always `fullmatch`


# --- the service's records ---------------------------------------------------------------------------
# Field names follow GitLab's remote mirrors API where GitLab has the concept.


def _check_id(value: str) -> str:
    if not MIRROR_ID.fullmatch(value):
        raise ValueError(
            "id must be 1-64 characters of a-z, 0-9, '-' or '_', starting with a letter or digit"
        )
    return value


def validation_message(error: Mapping[str, Any]) -> str:
    """The readable part of one pydantic validation error (without pydantic's own prefixes); the API and
    the CLI each say where it happened in their own terms (field or flag)."""
    message = str(error.get("msg", "invalid value"))
    return message.removeprefix("Value error, ").removeprefix("Assertion failed, ")


def check_secret_prefix(name: str | None, prefix: str) -> None:
    """A deployment reads only secrets under its prefix (its IAM policy allows no others)."""
    if name and prefix and not name.startswith(prefix):
        raise UsageError(f"secret {name!r} must start with the deployment's prefix {prefix!r}")


def _check_secret_name(value: str | None) -> str | None:
    if value is not None and (not _SECRET_NAME.fullmatch(value) or ".." in value):
        raise ValueError("secret names may use letters, digits and /_+=.@- only")
    return value


# Every model here is built on first use (defer_build): a handler's cold start imports them all but
# validates with few of them.


class MirrorSettings(BaseModel):
    """The fields an operator may change after creation (GitLab: the target URL is immutable)."""

    model_config = ConfigDict(extra="forbid", str_max_length=2048, defer_build=True)

    enabled: bool | None = None
    keep_divergent_refs: bool | None = None
    mirror_branch_regex: str | None = None
    branch_filters: list[str] | None = Field(default=None, max_length=100)
    source_secret: str | None = None
    target_secret: str | None = None
    webhook_secret: str | None = None
    lfs: bool | None = None  # mirror Git LFS objects (default true)
    # Secrets Manager secrets for the LFS servers, when their credentials differ from the repositories'
    lfs_source_secret: str | None = None
    lfs_target_secret: str | None = None
    # no push larger than this (bytes; "15M"-style text accepted); unset: the target host's known limit
    max_push_bytes: int | None = None

    @field_validator("max_push_bytes", mode="before")
    @classmethod
    def _size(cls, value: object) -> object:
        if isinstance(value, bool):
            raise ValueError("max_push_bytes must be a number of bytes")
        if isinstance(value, str):
            try:
                return parse_size(value)
            except UsageError as exc:
                raise ValueError(str(exc)) from None
        if isinstance(value, int) and value <= 0:
            raise ValueError("max_push_bytes must be greater than zero")
        return value

    @field_validator(
        "source_secret", "target_secret", "webhook_secret", "lfs_source_secret", "lfs_target_secret"
    )
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

    model_config = ConfigDict(extra="ignore", defer_build=True)

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
    lfs: bool = True
    lfs_source_secret: str | None = None
    lfs_target_secret: str | None = None
    max_push_bytes: int | None = None
    only_protected_branches: bool = False  # not supported: a push mirror cannot see source protections
    update_status: UpdateStatus = UpdateStatus.NONE
    last_update_at: str | None = None
    last_update_started_at: str | None = None
    last_successful_update_at: str | None = None
    last_error: str | None = None
    result: RunStatus | None = None
    divergent_refs: list[str] = Field(default_factory=list)  # the first 100 (gitmirror.run.records_size)
    divergent_refs_truncated: int = 0  # how many more diverged
    refs_created: int = 0
    refs_updated: int = 0
    refs_deleted: int = 0
    refs_rejected: int = 0
    refs_skipped: int = 0
    lfs_objects: int = 0  # LFS objects and bytes the last run copied; lfs_error: what it did not
    lfs_bytes: int = 0
    lfs_error: str | None = None
    # a history mirrored over several runs (continuations): refs still to do, bytes and runs so far
    remaining_refs: int | None = None
    bytes_pushed: int = 0
    runs_so_far: int = 0
    last_run_id: str | None = None
    last_scheduled_at: str | None = None
    created_at: str | None = None
    updated_at: str | None = None
    # the run holding the mirror (MirrorRepository.acquire_lease); internal, never shown
    lease_owner: str | None = None
    lease_expires_at: str | None = None
    stuck: bool | None = None  # computed by public(), never stored

    @property
    def options(self) -> MirrorOptions:
        return MirrorOptions(
            keep_divergent_refs=self.keep_divergent_refs,
            branch_filters=tuple(self.branch_filters),
            branch_regex=self.mirror_branch_regex,
            lfs=self.lfs,
        )

    def lease_live(self, now: dt.datetime | None = None) -> bool:
        if not self.lease_expires_at:
            return False
        try:
            return parse_iso(self.lease_expires_at) > (now or utcnow())
        except ValueError:
            return False

    def run_died(self, now: dt.datetime | None = None) -> bool:
        """`started`, and the run's lease ran out: its worker ended (killed, out of memory, timed out)
        without writing a result. Records without a lease fall back to GitLab's hour."""
        if self.update_status != UpdateStatus.STARTED:
            return False
        if self.lease_expires_at:
            return not self.lease_live(now)
        return self.is_stuck(now)

    def pending_run(self, now: dt.datetime | None = None) -> str | None:
        """Why a new run need not be queued: one is scheduled or started and its time (a lease's
        longest) has not run out. None when nothing is pending."""
        if self.update_status == UpdateStatus.STARTED and self.lease_expires_at:
            return "a run is already started" if self.lease_live(now) else None
        stamp = {
            UpdateStatus.SCHEDULED: self.last_scheduled_at,
            UpdateStatus.STARTED: self.last_update_started_at,
        }.get(self.update_status)
        if not stamp:
            return None
        try:
            since = (now or utcnow()) - parse_iso(stamp)
        except ValueError:
            return None
        if since < dt.timedelta(seconds=STUCK_AFTER_SECONDS):
            return f"a run is already {self.update_status.value}"
        return None

    def is_scheduled(self, now: dt.datetime | None = None) -> bool:
        """A run is queued and not yet started (within the hour)."""
        return self.update_status == UpdateStatus.SCHEDULED and self.pending_run(now) is not None

    def is_stuck(self, now: dt.datetime | None = None) -> bool:
        """GitLab: a mirror `started` for over an hour is treated as failed; so is one whose run's
        lease ran out."""
        return (
            self.update_status == UpdateStatus.STARTED
            and bool(self.last_update_started_at)
            and self.pending_run(now) is None
        )

    def public(self, now: dt.datetime | None = None) -> dict[str, object]:
        """The record as the API and CLI show it: internal fields left out, a dead run shown failed."""
        data = self.model_dump(mode="json", exclude=INTERNAL_FIELDS)
        if self.is_stuck(now):
            data.update(DEAD_RUN_FIELDS)
            data["stuck"] = True
        return data


DEAD_RUN = "the run stopped without finishing (worker ended)"
# what a run whose worker died shows, and what the next run or the scheduler writes into its record
DEAD_RUN_FIELDS = {
    "update_status": UpdateStatus.FAILED.value,
    "result": RunStatus.FAILED.value,
    "last_error": DEAD_RUN,
}
INTERNAL_FIELDS = {"source_key", "stuck", "lease_owner", "lease_expires_at"}


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

    model_config = ConfigDict(extra="forbid", defer_build=True)

    mirror_id: str
    trigger: Trigger
    delivery_id: str | None = None
    enqueued_at: str
    # plan only: push nothing, record the plan in a run record, leave the mirror's status fields alone
    dry_run: bool = False
    continues: str | None = None  # a continuation job: the id of the run it continues

    @model_serializer(mode="wrap")
    def _without_defaults(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        """A real run's message keeps its shape: `dry_run` appears only when true, `continues` only
        for a continuation."""
        data: dict[str, Any] = handler(self)
        if not self.dry_run:
            data.pop("dry_run", None)
        if self.continues is None:
            data.pop("continues", None)
        return data


class RunRecord(BaseModel):
    """One item of run history (TTL'd)."""

    model_config = ConfigDict(defer_build=True)

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
    reason_code: str | None = None  # a failed run's, as each rejected ref in `refs` carries its own
    hint: str | None = None
    dry_run: bool = False  # a dry run pushed nothing: `refs` is its plan; the mirror's status is untouched
    divergent_refs: list[str] = Field(default_factory=list)  # the first 100
    divergent_refs_truncated: int = 0
    refs: list[RefUpdate] = Field(default_factory=list)  # the first 100; all of them: MirrorStore.run_refs
    refs_truncated: int = 0
    refs_pages: int = 0  # extra items holding every per-ref result (0: `refs` is complete)
    refs_created: int = 0
    refs_updated: int = 0
    refs_deleted: int = 0
    refs_rejected: int = 0
    refs_skipped: int = 0
    bytes_received: int = 0
    bytes_sent: int = 0
    bytes_pushed: int = 0
    remaining_refs: int = 0
    duration_ms: int = 0
    transfer: str | None = None
    lfs_objects: int = 0
    lfs_bytes: int = 0
    lfs_error: str | None = None
    expires_at: int | None = None
