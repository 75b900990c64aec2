"""In-memory implementations of gitmirror's ports (gitmirror.ports), for unit tests of the use cases.

They keep the adapters' contracts (conditional lease writes, conditional `scheduled`, not-found and
conflict errors, runs newest first) so that a use case tested here behaves the same on DynamoDB; the AWS
adapters have their own integration tests on a moto server.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from gitmirror.errors import MirrorExists, MirrorNotFound, SecretError, TransientError
from gitmirror.mirror.credentials import BasicCredentials
from gitmirror.mirror.github_app import GitHubAppKey
from gitmirror.ports import Action
from gitmirror.records import DEAD_RUN_FIELDS, Mirror, RunRecord, SyncJob
from gitmirror.values import MAX_LEASE_SECONDS, RefUpdate, UpdateStatus, iso, parse_iso, utcnow


@dataclass
class InMemoryMirrors:
    items: dict[str, dict[str, Any]] = field(default_factory=dict)
    runs: list[RunRecord] = field(default_factory=list)
    run_ref_pages: dict[tuple[str, str], list[RefUpdate]] = field(default_factory=dict)
    fail_with: Exception | None = None  # every call raises this (an outage)

    def _check(self) -> None:
        if self.fail_with is not None:
            raise self.fail_with

    def get(self, mirror_id: str, *, consistent: bool = True) -> Mirror | None:
        self._check()
        item = self.items.get(mirror_id)
        return Mirror.model_validate(item) if item else None

    def list_mirrors(self) -> list[Mirror]:
        self._check()
        return [Mirror.model_validate(self.items[k]) for k in sorted(self.items)]

    def find_by_source(self, provider: str, repo_id: str | None, full_name: str | None) -> list[Mirror]:
        from gitmirror.records import source_keys

        self._check()
        keys = set(source_keys(provider, repo_id, full_name))
        return [m for m in self.list_mirrors() if m.source_key in keys]

    def create(self, mirror: Mirror) -> None:
        self._check()
        if mirror.id in self.items:
            raise MirrorExists(mirror.id)
        self.items[mirror.id] = mirror.model_dump(mode="json")

    def update_settings(self, mirror_id: str, changes: dict[str, Any]) -> Mirror:
        self._check()
        if mirror_id not in self.items:
            raise MirrorNotFound(mirror_id)
        item = self.items[mirror_id]
        for key, value in changes.items():
            if value is None or value == []:
                item.pop(key, None)
            else:
                item[key] = value
        item["updated_at"] = iso(utcnow())
        return Mirror.model_validate(item)

    def delete(self, mirror_id: str) -> None:
        self._check()
        if self.items.pop(mirror_id, None) is None:
            raise MirrorNotFound(mirror_id)

    def _lease_free(self, item: dict[str, Any], now: dt.datetime) -> bool:
        expires = item.get("lease_expires_at")
        return not expires or parse_iso(expires) < now

    def mark_scheduled(self, mirror_id: str, now: dt.datetime | None = None) -> bool:
        self._check()
        now = now or utcnow()
        item = self.items.get(mirror_id)
        if item is None or not self._lease_free(item, now):
            return False
        item.update(update_status=UpdateStatus.SCHEDULED.value, last_scheduled_at=iso(now))
        return True

    def acquire_lease(
        self, mirror_id: str, run_id: str, seconds: float, now: dt.datetime | None = None
    ) -> bool:
        self._check()
        now = now or utcnow()
        item = self.items.get(mirror_id)
        if item is None or not self._lease_free(item, now):
            return False
        item.update(
            update_status=UpdateStatus.STARTED.value,
            last_update_started_at=iso(now),
            lease_owner=run_id,
            lease_expires_at=iso(now + dt.timedelta(seconds=min(seconds, MAX_LEASE_SECONDS))),
            last_run_id=run_id,
        )
        return True

    def finish(self, mirror_id: str, run_id: str, fields: dict[str, Any]) -> bool:
        self._check()
        item = self.items.get(mirror_id)
        if item is None or item.get("lease_owner") != run_id:
            return False
        for key, value in fields.items():
            if value is None:
                item.pop(key, None)
            else:
                item[key] = value
        item.pop("lease_owner", None)
        item.pop("lease_expires_at", None)
        return True

    def record_dead_run(self, mirror: Mirror, now: dt.datetime | None = None) -> bool:
        self._check()
        item = self.items.get(mirror.id)
        now = now or utcnow()
        if item is None or not mirror.lease_owner or item.get("lease_owner") != mirror.lease_owner:
            return False
        if not self._lease_free(item, now):
            return False
        item.update(DEAD_RUN_FIELDS, last_update_at=iso(now))
        item.pop("lease_owner", None)
        item.pop("lease_expires_at", None)
        return True

    def put_run(self, run: RunRecord, all_refs: Sequence[RefUpdate] = ()) -> None:
        self._check()
        self.runs.append(run)
        if len(all_refs) > len(run.refs):
            self.run_ref_pages[(run.mirror_id, run.run_id)] = list(all_refs)

    def get_run(self, mirror_id: str, run_id: str) -> RunRecord | None:
        return next((r for r in self.runs if (r.mirror_id, r.run_id) == (mirror_id, run_id)), None)

    def run_refs(self, run: RunRecord) -> list[RefUpdate]:
        return self.run_ref_pages.get((run.mirror_id, run.run_id), list(run.refs))

    def list_runs(self, mirror_id: str, limit: int = 20) -> list[RunRecord]:
        self._check()
        mine = sorted(
            (r for r in self.runs if r.mirror_id == mirror_id), key=lambda r: r.run_id, reverse=True
        )
        return mine[:limit]

    def raw(self, mirror_id: str) -> dict[str, Any] | None:
        return self.items.get(mirror_id)


@dataclass
class InMemoryQueue:
    jobs: list[SyncJob] = field(default_factory=list)
    delays: list[tuple[str, int]] = field(default_factory=list)
    down: bool = False

    def enqueue(self, job: SyncJob) -> str:
        if self.down:
            raise TransientError("could not enqueue the sync job: queue unavailable")
        self.jobs.append(job)
        return f"message-{len(self.jobs)}"

    def delay_retry(self, receipt_handle: str, seconds: int) -> None:
        self.delays.append((receipt_handle, seconds))


@dataclass
class InMemorySecrets:
    values: dict[str, str] = field(default_factory=dict)
    reads: list[tuple[str, bool]] = field(default_factory=list)

    def _get(self, name: str, force: bool) -> str:
        self.reads.append((name, force))
        if name not in self.values:
            raise SecretError(f"secret {name!r} does not exist in Secrets Manager")
        return self.values[name]

    def git_credentials(self, name: str, *, force: bool = False) -> BasicCredentials | GitHubAppKey:
        from gitmirror.adapters.aws.secrets_manager import parse_git_credentials

        return parse_git_credentials(name, self._get(name, force))

    def webhook_secret(self, name: str, *, force: bool = False) -> str:
        from gitmirror.adapters.aws.secrets_manager import parse_webhook_secret

        return parse_webhook_secret(name, self._get(name, force))


@dataclass
class InMemoryLedger:
    results: dict[tuple[str, ...], dict[str, Any]] = field(default_factory=dict)
    in_progress: set[tuple[str, ...]] = field(default_factory=set)

    def once(self, key: dict[str, Any], action: Action) -> dict[str, Any]:
        k = tuple(str(key[name]) for name in sorted(key))
        if k in self.in_progress:
            return {"mirrors": [], "in_progress": True}
        if k not in self.results:
            self.results[k] = action()
        return self.results[k]

    def register_context(self, context: Any) -> None:
        pass
