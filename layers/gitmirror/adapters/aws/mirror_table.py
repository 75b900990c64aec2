"""MirrorRepository on DynamoDB: mirror records (status, lease) and run history. Logic never builds
DynamoDB calls itself.

Every status write is conditional: a run writes its result only while it holds the mirror's lease, so
an older run can never overwrite a newer status, and two runs of one mirror never overlap.
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from botocore.exceptions import ClientError, HTTPClientError
from botocore.exceptions import ConnectionError as BotoCoreConnectionError

from gitmirror.errors import MirrorExists, MirrorNotFound, StorageError, TransientError
from gitmirror.records import DEAD_RUN_FIELDS, Mirror, RunRecord, source_keys
from gitmirror.run import records_size
from gitmirror.values import MAX_LEASE_SECONDS, RefUpdate, UpdateStatus, iso, utcnow

from . import clients


def _resource() -> Any:
    return clients.resource("dynamodb")


@functools.cache
def _lookup_pool() -> ThreadPoolExecutor:
    """Two threads kept for the receiver's concurrent index lookups (one per key)."""
    return ThreadPoolExecutor(max_workers=2, thread_name_prefix="gitmirror-lookup")


def _is_conditional_failure(exc: ClientError) -> bool:
    return exc.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException"


def _throttled(exc: ClientError) -> bool:
    code = exc.response.get("Error", {}).get("Code", "")
    return code in (
        "ProvisionedThroughputExceededException",
        "ThrottlingException",
        "RequestLimitExceeded",
        "InternalServerError",
        "ServiceUnavailable",
    )


def _clean(item: dict[str, Any]) -> dict[str, Any]:
    """DynamoDB numbers come back as Decimal; our models want int."""
    from decimal import Decimal

    def conv(v: Any) -> Any:
        if isinstance(v, Decimal):
            return int(v)
        if isinstance(v, list):
            return [conv(x) for x in v]
        if isinstance(v, dict):
            return {k: conv(x) for k, x in v.items()}
        return v

    return {k: conv(v) for k, v in item.items()}


def _drop_none(item: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in item.items() if v is not None and v != [] and v != ""}


def _attr(name: str) -> Any:
    # boto3 loads with the first DynamoDB call (clients.resource), not at a handler's cold start.
    from boto3.dynamodb.conditions import Attr

    return Attr(name)


def _key(name: str) -> Any:
    from boto3.dynamodb.conditions import Key

    return Key(name)


class MirrorStore:
    """MirrorRepository on the mirrors table and the runs table."""

    def __init__(self, mirrors_table: str, runs_table: str, resource: Any = None) -> None:
        res = resource or _resource()
        self.mirrors = res.Table(mirrors_table)
        self.runs = res.Table(runs_table)

    # --- mirrors ----------------------------------------------------------------------------------

    def get(self, mirror_id: str, *, consistent: bool = True) -> Mirror | None:
        item = self._call(self.mirrors.get_item, Key={"id": mirror_id}, ConsistentRead=consistent).get("Item")
        return Mirror.model_validate(_clean(item)) if item else None

    def raw(self, mirror_id: str) -> dict[str, Any] | None:
        item = self._call(self.mirrors.get_item, Key={"id": mirror_id}, ConsistentRead=True).get("Item")
        return _clean(item) if item else None

    def list_mirrors(self) -> list[Mirror]:
        return sorted((Mirror.model_validate(_clean(i)) for i in self._scan()), key=lambda m: m.id)

    def _scan(self) -> Iterator[dict[str, Any]]:
        kwargs: dict[str, Any] = {}
        while True:
            page = self._call(self.mirrors.scan, **kwargs)
            yield from page.get("Items", [])
            if "LastEvaluatedKey" not in page:
                return
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    def find_by_source(self, provider: str, repo_id: str | None, full_name: str | None) -> list[Mirror]:
        """Mirrors keyed by the repository's id or by its path. The index is queried for both keys at
        once (botocore clients are thread-safe; boto3 resources are not, hence the client here)."""
        # The resource's client: boto3 (de)serializes attribute values for it, as for the Table.
        client = self.mirrors.meta.client

        def query(key: str) -> list[dict[str, Any]]:
            page = self._call(
                client.query,
                TableName=self.mirrors.table_name,
                IndexName="source-index",
                KeyConditionExpression="source_key = :k",
                ExpressionAttributeValues={":k": key},
            )
            return list(page.get("Items", []))

        keys = source_keys(provider, repo_id, full_name)
        if len(keys) > 1:
            pages = list(_lookup_pool().map(query, keys))
        else:
            pages = [query(k) for k in keys]
        found: dict[str, Mirror] = {}
        for items in pages:
            for item in items:
                mirror = Mirror.model_validate(_clean(item))
                found[mirror.id] = mirror
        return [found[k] for k in sorted(found)]

    def create(self, mirror: Mirror) -> None:
        try:
            self._call(
                self.mirrors.put_item,
                Item=_drop_none(mirror.model_dump(mode="json")),
                ConditionExpression=_attr("id").not_exists(),
            )
        except ClientError as exc:
            if _is_conditional_failure(exc):
                raise MirrorExists(mirror.id) from None
            raise

    def update_settings(self, mirror_id: str, changes: dict[str, Any]) -> Mirror:
        now = iso(utcnow())
        sets = {**changes, "updated_at": now}
        removes = [k for k, v in sets.items() if v is None or v == []]
        sets = {k: v for k, v in sets.items() if k not in removes}
        names = {f"#k{i}": k for i, k in enumerate(list(sets) + removes)}
        rev = {v: k for k, v in names.items()}
        expr = "SET " + ", ".join(f"{rev[k]} = :v{i}" for i, k in enumerate(sets))
        if removes:
            expr += " REMOVE " + ", ".join(rev[k] for k in removes)
        try:
            out = self._call(
                self.mirrors.update_item,
                Key={"id": mirror_id},
                UpdateExpression=expr,
                ExpressionAttributeNames=names,
                ExpressionAttributeValues={f":v{i}": v for i, v in enumerate(sets.values())},
                ConditionExpression=_attr("id").exists(),
                ReturnValues="ALL_NEW",
            )
        except ClientError as exc:
            if _is_conditional_failure(exc):
                raise MirrorNotFound(mirror_id) from None
            raise
        return Mirror.model_validate(_clean(out["Attributes"]))

    def delete(self, mirror_id: str) -> None:
        try:
            self._call(
                self.mirrors.delete_item, Key={"id": mirror_id}, ConditionExpression=_attr("id").exists()
            )
        except ClientError as exc:
            if _is_conditional_failure(exc):
                raise MirrorNotFound(mirror_id) from None
            raise

    # --- status -----------------------------------------------------------------------------------

    def mark_scheduled(self, mirror_id: str, now: dt.datetime | None = None) -> bool:
        """`scheduled`, unless a run holds the lease (its own status wins). False when not applied."""
        stamp = iso(now or utcnow())
        try:
            self._call(
                self.mirrors.update_item,
                Key={"id": mirror_id},
                UpdateExpression="SET update_status = :s, last_scheduled_at = :t",
                ConditionExpression=_attr("id").exists()
                & (_attr("lease_expires_at").not_exists() | _attr("lease_expires_at").lt(stamp)),
                ExpressionAttributeValues={":s": UpdateStatus.SCHEDULED.value, ":t": stamp},
            )
        except ClientError as exc:
            if _is_conditional_failure(exc):
                return False
            raise
        return True

    def acquire_lease(
        self, mirror_id: str, run_id: str, seconds: float, now: dt.datetime | None = None
    ) -> bool:
        """Take the mirror's lease (conditional write with expiry) and mark it `started`."""
        now = now or utcnow()
        stamp = iso(now)
        expires = iso(now + dt.timedelta(seconds=min(seconds, MAX_LEASE_SECONDS)))
        try:
            self._call(
                self.mirrors.update_item,
                Key={"id": mirror_id},
                UpdateExpression=(
                    "SET update_status = :s, last_update_started_at = :t, lease_owner = :o, "
                    "lease_expires_at = :e, last_run_id = :o"
                ),
                ConditionExpression=_attr("id").exists()
                & (_attr("lease_expires_at").not_exists() | _attr("lease_expires_at").lt(stamp)),
                ExpressionAttributeValues={
                    ":s": UpdateStatus.STARTED.value,
                    ":t": stamp,
                    ":o": run_id,
                    ":e": expires,
                },
            )
        except ClientError as exc:
            if _is_conditional_failure(exc):
                return False
            raise
        return True

    def finish(self, mirror_id: str, run_id: str, fields: dict[str, Any]) -> bool:
        """Write a run's final status and release the lease, only if this run still holds it."""
        sets = dict(fields)
        removes = [k for k, v in sets.items() if v is None]
        sets = {k: v for k, v in sets.items() if v is not None}
        expr = "SET " + ", ".join(f"#f{i} = :f{i}" for i in range(len(sets)))
        names = {f"#f{i}": k for i, k in enumerate(sets)}
        for j, k in enumerate(removes):
            names[f"#r{j}"] = k
        expr += " REMOVE lease_owner, lease_expires_at" + "".join(f", #r{j}" for j in range(len(removes)))
        try:
            self._call(
                self.mirrors.update_item,
                Key={"id": mirror_id},
                UpdateExpression=expr,
                ExpressionAttributeNames=names,
                ExpressionAttributeValues={f":f{i}": v for i, v in enumerate(sets.values())},
                ConditionExpression=_attr("lease_owner").eq(run_id),
            )
        except ClientError as exc:
            if _is_conditional_failure(exc):
                return False
            raise
        return True

    def record_dead_run(self, mirror: Mirror, now: dt.datetime | None = None) -> bool:
        """Write `failed` ("the run stopped without finishing") over a run whose lease ran out, and
        release the lease; only while that dead run still holds it. False when not applied."""
        if not mirror.lease_owner:
            return False
        stamp = iso(now or utcnow())
        try:
            self._call(
                self.mirrors.update_item,
                Key={"id": mirror.id},
                UpdateExpression=(
                    "SET update_status = :s, #r = :r, last_error = :e, last_update_at = :t "
                    "REMOVE lease_owner, lease_expires_at"
                ),
                ExpressionAttributeNames={"#r": "result"},
                ExpressionAttributeValues={
                    ":s": DEAD_RUN_FIELDS["update_status"],
                    ":r": DEAD_RUN_FIELDS["result"],
                    ":e": DEAD_RUN_FIELDS["last_error"],
                    ":t": stamp,
                },
                ConditionExpression=_attr("lease_owner").eq(mirror.lease_owner)
                & _attr("lease_expires_at").lt(stamp),
            )
        except ClientError as exc:
            if _is_conditional_failure(exc):
                return False
            raise
        return True

    # --- runs -------------------------------------------------------------------------------------

    def put_run(self, run: RunRecord, all_refs: Sequence[RefUpdate] = ()) -> None:
        """The run item; when `all_refs` do not fit in it, every one of them in page items first."""
        pages = records_size.ref_pages(all_refs)
        if pages:
            with self.runs.batch_writer() as batch:
                for number, page in enumerate(pages):
                    batch.put_item(
                        Item=_drop_none(
                            {
                                "mirror_id": records_size.pages_partition(run.mirror_id),
                                "run_id": records_size.page_key(run.run_id, number),
                                "refs_zlib": page,
                                "expires_at": run.expires_at,
                            }
                        )
                    )
            run = run.model_copy(update={"refs_pages": len(pages)})
        self._call(self.runs.put_item, Item=_drop_none(run.model_dump(mode="json")))

    def run_refs(self, run: RunRecord) -> list[RefUpdate]:
        """Every per-ref result of a run (the run item holds only the first ones of a big run)."""
        if not run.refs_pages:
            return list(run.refs)
        refs: list[RefUpdate] = []
        kwargs: dict[str, Any] = {
            "KeyConditionExpression": _key("mirror_id").eq(records_size.pages_partition(run.mirror_id))
            & _key("run_id").begins_with(f"{run.run_id}#"),
        }
        while True:
            page = self._call(self.runs.query, **kwargs)
            for item in page.get("Items", []):
                refs += records_size.read_page(bytes(item["refs_zlib"]))
            if "LastEvaluatedKey" not in page:
                return refs
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    def get_run(self, mirror_id: str, run_id: str) -> RunRecord | None:
        item = self._call(self.runs.get_item, Key={"mirror_id": mirror_id, "run_id": run_id}).get("Item")
        return RunRecord.model_validate(_clean(item)) if item else None

    def list_runs(self, mirror_id: str, limit: int = 20) -> list[RunRecord]:
        page = self._call(
            self.runs.query,
            KeyConditionExpression=_key("mirror_id").eq(mirror_id),
            ScanIndexForward=False,
            Limit=limit,
        )
        return [RunRecord.model_validate(_clean(i)) for i in page.get("Items", [])]

    # --- plumbing ---------------------------------------------------------------------------------

    @staticmethod
    def _call(method: Any, **kwargs: Any) -> Any:
        try:
            return method(**kwargs)
        except ClientError as exc:
            if _throttled(exc):
                raise TransientError(
                    f"DynamoDB is throttling or unavailable: {exc.response['Error']['Code']}"
                ) from None
            if _is_conditional_failure(exc):
                raise  # the callers' own decision (lease held, record absent)
            error = exc.response.get("Error", {})
            code, message = error.get("Code", "?"), error.get("Message", "")
            if code == "ResourceNotFoundException":
                raise StorageError(
                    f"AWS resource not found ({message}): check MIRRORS_TABLE/RUNS_TABLE"
                ) from None
            raise StorageError(f"AWS request failed: DynamoDB {code}: {message}") from None
        except (BotoCoreConnectionError, HTTPClientError) as exc:
            # endpoint unreachable, connection reset, timeouts: after botocore's own retries
            raise TransientError(
                f"cannot reach AWS (DynamoDB is unreachable: {type(exc).__name__}): {exc}"
            ) from None
