"""The small interfaces between the use cases and the outside world.

The use cases (webhook.receive, run.mirror_run, manage.mirrors) take these; the functions' `app.py`,
the CLI and the local stack wire the AWS adapters (gitmirror.adapters.aws) to them, and the unit tests
wire in-memory ones (tests/support/memory.py).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from .mirror.credentials import BasicCredentials
from .mirror.github_app import GitHubAppKey
from .records import Mirror, RunRecord, SyncJob
from .run.transitions import Transition
from .values import RefUpdate


class MirrorRepository(Protocol):
    """Mirror records with their status and lease, and each mirror's run history.

    Status writes are conditional: `acquire_lease` succeeds only when no live lease is held, `finish`
    only while the run still holds it, `mark_scheduled` only when no run holds it.
    """

    def get(self, mirror_id: str, *, consistent: bool = True) -> Mirror | None: ...

    def list_mirrors(self) -> list[Mirror]: ...

    def find_by_source(self, provider: str, repo_id: str | None, full_name: str | None) -> list[Mirror]: ...

    def create(self, mirror: Mirror) -> None: ...

    def update_settings(self, mirror_id: str, changes: dict[str, Any]) -> Mirror: ...

    def delete(self, mirror_id: str) -> None: ...

    def mark_scheduled(self, mirror_id: str, now: dt.datetime | None = None) -> bool: ...

    def acquire_lease(
        self, mirror_id: str, run_id: str, seconds: float, now: dt.datetime | None = None
    ) -> bool: ...

    def finish(self, mirror_id: str, run_id: str, fields: dict[str, Any]) -> bool: ...

    def record_dead_run(self, mirror: Mirror, now: dt.datetime | None = None) -> bool:
        """`failed` ("the run stopped without finishing") over a run whose lease ran out."""

    def put_run(self, run: RunRecord, all_refs: Sequence[RefUpdate] = ()) -> None:
        """The run item; `all_refs` (every per-ref result) are kept apart when the item holds only the
        first ones (gitmirror.run.records_size)."""

    def list_runs(self, mirror_id: str, limit: int = 20) -> list[RunRecord]: ...

    def get_run(self, mirror_id: str, run_id: str) -> RunRecord | None: ...

    def run_refs(self, run: RunRecord) -> list[RefUpdate]:
        """Every per-ref result of a run."""


class JobQueue(Protocol):
    """The sync-job queue (one ordered group per mirror)."""

    def enqueue(self, job: SyncJob) -> str: ...

    def delay_retry(self, receipt_handle: str, seconds: int) -> None: ...


class StateEvents(Protocol):
    """Where a mirror's state changes are announced (healthy -> failed/partial, and back)."""

    def put(self, event: Transition) -> str: ...


class SecretSource(Protocol):
    """Secret values by name. `force` bypasses any cache (a rotated secret after a 401)."""

    def git_credentials(self, name: str, *, force: bool = False) -> BasicCredentials | GitHubAppKey: ...

    def webhook_secret(self, name: str, *, force: bool = False) -> str: ...


Action = Callable[[], dict[str, Any]]


class DeliveryLedger(Protocol):
    """Idempotency: runs `action` once per delivery key and returns its first result afterwards.

    A delivery still being handled elsewhere gives `{"in_progress": True}` (nothing is run).
    """

    def once(self, key: dict[str, Any], action: Action) -> dict[str, Any]: ...

    def register_context(self, context: Any) -> None: ...
