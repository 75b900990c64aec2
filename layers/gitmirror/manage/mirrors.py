"""Mirror management: create, change, delete, "update now". Shared by the API and the CLI."""

from __future__ import annotations

import re
import secrets as pysecrets
from collections.abc import Callable
from dataclasses import dataclass

from gitmirror.errors import MirrorNotFound, UsageError
from gitmirror.jobs import queue_sync
from gitmirror.mirror.credentials import is_codecommit
from gitmirror.mirror.urls import NetworkPolicy, has_userinfo, parse_remote
from gitmirror.ports import JobQueue, MirrorRepository
from gitmirror.records import Mirror, MirrorSettings, MirrorSpec, check_secret_prefix, source_keys
from gitmirror.values import AuthMethod, Trigger, iso, utcnow


def check_remote_url(value: str, policy: NetworkPolicy, what: str) -> str:
    if has_userinfo(value):
        raise UsageError(f"{what} must not contain credentials: store them in a Secrets Manager secret")
    remote = parse_remote(value)
    policy.check_url(remote, resolve=False)
    return remote.url


def _slug(spec: MirrorSpec) -> str:
    base = (spec.source_full_name or spec.source_repo_id or "mirror").lower()
    base = re.sub(r"[^a-z0-9]+", "-", base).strip("-")[:48] or "mirror"
    return f"{base}-{pysecrets.token_hex(3)}"


def create_mirror(
    spec: MirrorSpec,
    store: MirrorRepository,
    policy: NetworkPolicy,
    secrets_prefix: str,
    *,
    secret_exists: Callable[[str], bool] | None = None,
) -> Mirror:
    """Validate and store a new mirror. With `secret_exists`, the secrets it names must exist (a
    UsageError names the missing ones)."""
    source_url = check_remote_url(spec.source_url, policy, "source_url")
    target_url = check_remote_url(spec.url, policy, "url")
    if not (spec.source_repo_id or spec.source_full_name):
        raise UsageError("give source_repo_id or source_full_name so webhooks can find this mirror")
    if spec.auth_method == AuthMethod.IAM and not is_codecommit(parse_remote(target_url)):
        raise UsageError("auth_method iam needs a git-codecommit.<region>.amazonaws.com target url")
    if spec.auth_method == AuthMethod.PASSWORD and not spec.target_secret:
        raise UsageError("auth_method password needs target_secret (the name of a Secrets Manager secret)")
    for name in (
        spec.source_secret,
        spec.target_secret,
        spec.webhook_secret,
        spec.lfs_source_secret,
        spec.lfs_target_secret,
    ):
        check_secret_prefix(name, secrets_prefix)
    missing = missing_secrets(spec, secret_exists) if secret_exists is not None else []
    if missing:
        raise UsageError(missing_secrets_message(missing))
    now = iso(utcnow())
    mirror = Mirror(
        id=spec.id or _slug(spec),
        enabled=True if spec.enabled is None else spec.enabled,
        url=target_url,
        source_url=source_url,
        provider=spec.provider,
        source_repo_id=spec.source_repo_id,
        source_full_name=spec.source_full_name,
        source_key=source_keys(spec.provider.value, spec.source_repo_id, spec.source_full_name)[0],
        keep_divergent_refs=bool(spec.keep_divergent_refs),
        mirror_branch_regex=spec.mirror_branch_regex,
        branch_filters=spec.branch_filters or [],
        auth_method=spec.auth_method,
        source_secret=spec.source_secret,
        target_secret=spec.target_secret,
        webhook_secret=spec.webhook_secret,
        lfs=True if spec.lfs is None else spec.lfs,
        lfs_source_secret=spec.lfs_source_secret,
        lfs_target_secret=spec.lfs_target_secret,
        max_push_bytes=spec.max_push_bytes,
        created_at=now,
        updated_at=now,
    )
    store.create(mirror)
    return mirror


def update_mirror(
    mirror_id: str, changes: MirrorSettings, store: MirrorRepository, secrets_prefix: str
) -> Mirror:
    given = changes.model_dump(include=changes.model_fields_set)
    if not given:
        raise UsageError("nothing to change")
    for key in ("source_secret", "target_secret", "webhook_secret", "lfs_source_secret", "lfs_target_secret"):
        check_secret_prefix(given.get(key), secrets_prefix)
    if "enabled" in given and given["enabled"] is None:
        raise UsageError("enabled must be true or false")
    if "keep_divergent_refs" in given and given["keep_divergent_refs"] is None:
        raise UsageError("keep_divergent_refs must be true or false")
    if "lfs" in given and given["lfs"] is None:
        raise UsageError("lfs must be true or false")
    current = store.get(mirror_id)
    if current is None:
        raise MirrorNotFound(mirror_id)
    if "target_secret" in given and not given["target_secret"] and current.auth_method == AuthMethod.PASSWORD:
        raise UsageError("auth_method password needs target_secret; it cannot be removed")
    if "webhook_secret" in given and not given["webhook_secret"]:
        raise UsageError("webhook_secret cannot be removed: webhooks could no longer be verified")
    return store.update_settings(mirror_id, given)


@dataclass(frozen=True)
class SyncRequest:
    queued: bool
    reason: str
    mirror: Mirror


def request_sync(
    mirror_id: str, store: MirrorRepository, queue: JobQueue, trigger: Trigger, *, dry_run: bool = False
) -> SyncRequest:
    """GitLab's "Update now": queue a run unless one is already scheduled or started.

    A dry run is always queued and changes none of the mirror's status fields (not even `scheduled`):
    the worker records its plan in a run record only."""
    mirror = store.get(mirror_id)
    if mirror is None:
        raise MirrorNotFound(mirror_id)
    if not mirror.enabled:
        raise UsageError("the mirror is disabled; enable it first")
    if dry_run:
        queue_sync(queue, mirror.id, trigger, dry_run=True)
        return SyncRequest(True, "queued", mirror)
    pending = mirror.pending_run()
    if pending:
        return SyncRequest(False, pending, mirror)
    queue_sync(queue, mirror.id, trigger)
    store.mark_scheduled(mirror.id)
    return SyncRequest(True, "queued", store.get(mirror.id) or mirror)


def missing_secrets(spec: MirrorSettings, exists: Callable[[str], bool]) -> list[str]:
    """The secrets a new mirror names that do not exist (a mirror with a missing secret can only fail)."""
    names = [
        spec.source_secret,
        spec.target_secret,
        spec.webhook_secret,
        spec.lfs_source_secret,
        spec.lfs_target_secret,
    ]
    return [name for name in dict.fromkeys(n for n in names if n) if not exists(name)]


def missing_secrets_message(missing: list[str]) -> str:
    listed = ", ".join(repr(name) for name in missing)
    if len(missing) == 1:
        return f"secret {listed} does not exist in Secrets Manager: create it before adding the mirror"
    return f"secrets {listed} do not exist in Secrets Manager: create them before adding the mirror"


def schedule_all(store: MirrorRepository, queue: JobQueue) -> tuple[list[str], list[str]]:
    """The safety net: queue a sync for every enabled mirror that has nothing pending."""
    queued, skipped = [], []
    now = utcnow()
    for mirror in store.list_mirrors():
        if mirror.run_died(now):
            store.record_dead_run(mirror, now)  # never `started` forever: the record reads failed
        if not mirror.enabled or mirror.pending_run(now):
            skipped.append(mirror.id)
            continue
        queue_sync(queue, mirror.id, Trigger.SCHEDULE)
        store.mark_scheduled(mirror.id)
        queued.append(mirror.id)
    return queued, skipped
