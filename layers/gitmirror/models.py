"""Pydantic models at the edges of the engine: options in, per-ref results and the run result out."""

from __future__ import annotations

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
    objects_sent: int = 0
    pushes: int = 0
    duration_seconds: float = 0.0
    transfer: str = "full"


class SyncResult(BaseModel):
    """The result of one mirror run, in the shape `gitmirror sync --json` prints."""

    status: RunStatus
    divergent_refs: list[str] = Field(default_factory=list)
    refs: list[RefUpdate] = Field(default_factory=list)
    error: str | None = None
    stats: SyncStats = Field(default_factory=SyncStats)

    def count(self, action: Action) -> int:
        return sum(1 for r in self.refs if r.action == action)
