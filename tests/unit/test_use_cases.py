"""The use cases (receive, run, manage, schedule) against in-memory ports: no AWS, no git, milliseconds.

The same behaviour on the real adapters is covered by tests/integration (moto server, git http-backend).
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import pytest

from gitmirror.errors import (
    MirrorExists,
    MirrorMisconfigured,
    MirrorNotFound,
    TransientError,
    UsageError,
)
from gitmirror.http_answers import http_answer
from gitmirror.jobs import make_job, retry_delay
from gitmirror.manage.mirrors import create_mirror, request_sync, schedule_all, update_mirror
from gitmirror.mirror.urls import NetworkPolicy
from gitmirror.records import DEAD_RUN, MirrorSettings, MirrorSpec
from gitmirror.run import mirror_run
from gitmirror.run.mirror_run import covered_by_later_run, run_job
from gitmirror.settings import WorkerSettings
from gitmirror.values import Provider, RunStatus, Trigger, UpdateStatus, iso, utcnow
from gitmirror.webhook.receive import ReceiverPorts, receive_webhook
from gitmirror_dev.signing import sign_github
from tests.support.memory import InMemoryLedger, InMemoryMirrors, InMemoryQueue, InMemorySecrets

PREFIX = "gitmirror/"
POLICY = NetworkPolicy()
WEBHOOK_SECRET = "unit-webhook-secret"
SETTINGS = WorkerSettings(
    mirrors_table="mirrors",
    runs_table="runs",
    queue_url="https://sqs.us-east-1.amazonaws.com/123456789012/sync.fifo",
    retry_base_seconds=30,
)


def spec(**changes: Any) -> MirrorSpec:
    fields: dict[str, Any] = {
        "id": "acme-app",
        "source_url": "https://github.com/acme/app.git",
        "url": "https://github.com/acme-mirror/app.git",
        "provider": "github",
        "source_repo_id": "123",
        "source_full_name": "acme/app",
        "target_secret": "gitmirror/acme/target",
        "webhook_secret": "gitmirror/acme/webhook",
    }
    fields.update(changes)
    return MirrorSpec.model_validate(fields)


@pytest.fixture
def mirrors() -> InMemoryMirrors:
    return InMemoryMirrors()


@pytest.fixture
def queue() -> InMemoryQueue:
    return InMemoryQueue()


# --- manage: validation before anything is written ------------------------------------------------


@pytest.mark.parametrize(
    ("changes", "says"),
    [
        ({"url": "/srv/git/app.git"}, "local paths are not allowed"),
        ({"url": "https://user:pw@github.com/acme-mirror/app.git"}, "must not contain credentials"),
        ({"source_url": "http://github.com/acme/app.git"}, "https"),
        ({"url": "https://169.254.169.254/latest"}, "link-local"),
        ({"source_repo_id": None, "source_full_name": None}, "source_repo_id or source_full_name"),
        ({"auth_method": "iam"}, "auth_method iam needs a git-codecommit"),
        ({"target_secret": None}, "auth_method password needs target_secret"),
        ({"target_secret": "prod/other-team/token"}, "must start with the deployment's prefix"),
    ],
)
def test_create_refuses_bad_mirrors_and_writes_nothing(
    mirrors: InMemoryMirrors, changes: dict[str, Any], says: str
) -> None:
    with pytest.raises(UsageError, match=says):
        create_mirror(spec(**changes), mirrors, POLICY, PREFIX)
    assert mirrors.items == {}


def test_create_then_conflict(mirrors: InMemoryMirrors) -> None:
    mirror = create_mirror(spec(), mirrors, POLICY, PREFIX)
    assert mirror.id == "acme-app" and mirror.source_key == "github#id#123"
    assert mirrors.get("acme-app") == mirror
    with pytest.raises(MirrorExists, match="already exists"):
        create_mirror(spec(), mirrors, POLICY, PREFIX)


def test_create_without_id_derives_one_from_the_source(mirrors: InMemoryMirrors) -> None:
    mirror = create_mirror(spec(id=None), mirrors, POLICY, PREFIX)
    assert mirror.id.startswith("acme-app-") and mirror.id in mirrors.items


@pytest.mark.parametrize(
    ("changes", "says"),
    [
        ({}, "nothing to change"),
        ({"enabled": None}, "enabled must be true or false"),
        ({"target_secret": None}, "cannot be removed"),
        ({"webhook_secret": None}, "webhooks could no longer be verified"),
        ({"source_secret": "elsewhere/x"}, "must start with the deployment's prefix"),
    ],
)
def test_update_refuses_bad_changes(mirrors: InMemoryMirrors, changes: dict[str, Any], says: str) -> None:
    create_mirror(spec(), mirrors, POLICY, PREFIX)
    before = dict(mirrors.items["acme-app"])
    with pytest.raises(UsageError, match=says):
        update_mirror("acme-app", MirrorSettings.model_validate(changes), mirrors, PREFIX)
    assert mirrors.items["acme-app"] == before


def test_update_changes_only_what_is_given(mirrors: InMemoryMirrors) -> None:
    create_mirror(spec(), mirrors, POLICY, PREFIX)
    changed = update_mirror(
        "acme-app", MirrorSettings(keep_divergent_refs=True, branch_filters=["release/*"]), mirrors, PREFIX
    )
    assert changed.keep_divergent_refs and changed.branch_filters == ["release/*"]
    assert changed.target_secret == "gitmirror/acme/target"
    with pytest.raises(MirrorNotFound):
        update_mirror("ghost", MirrorSettings(enabled=False), mirrors, PREFIX)


# --- "Update now" and the schedule: one pending run at a time ---------------------------------------


def test_update_now_queues_once_while_a_run_is_pending(
    mirrors: InMemoryMirrors, queue: InMemoryQueue
) -> None:
    create_mirror(spec(), mirrors, POLICY, PREFIX)
    first = request_sync("acme-app", mirrors, queue, Trigger.MANUAL)
    assert first.queued and first.mirror.update_status == UpdateStatus.SCHEDULED
    second = request_sync("acme-app", mirrors, queue, Trigger.MANUAL)
    assert (second.queued, second.reason) == (False, "a run is already scheduled")
    assert [(j.mirror_id, j.trigger) for j in queue.jobs] == [("acme-app", Trigger.MANUAL)]


def test_update_now_refuses_disabled_and_unknown_mirrors(
    mirrors: InMemoryMirrors, queue: InMemoryQueue
) -> None:
    create_mirror(spec(enabled=False), mirrors, POLICY, PREFIX)
    with pytest.raises(UsageError, match="disabled"):
        request_sync("acme-app", mirrors, queue, Trigger.MANUAL)
    with pytest.raises(MirrorNotFound):
        request_sync("ghost", mirrors, queue, Trigger.MANUAL)
    assert queue.jobs == []


def test_a_pending_run_older_than_the_lease_is_not_pending() -> None:
    now = utcnow()
    mirror = create_mirror(spec(), InMemoryMirrors(), POLICY, PREFIX).model_copy(
        update={"update_status": UpdateStatus.STARTED, "last_update_started_at": iso(now)}
    )
    assert mirror.pending_run(now) == "a run is already started" and not mirror.is_stuck(now)
    later = now + dt.timedelta(hours=1, seconds=1)
    assert mirror.pending_run(later) is None and mirror.is_stuck(later)
    shown = mirror.public(later)
    assert shown["update_status"] == "failed" and shown["stuck"] is True


def test_schedule_skips_disabled_and_pending_mirrors(mirrors: InMemoryMirrors, queue: InMemoryQueue) -> None:
    for name, enabled in (("alpha", True), ("bravo", False), ("charlie", True)):
        create_mirror(spec(id=name, enabled=enabled), mirrors, POLICY, PREFIX)
    request_sync("charlie", mirrors, queue, Trigger.MANUAL)
    queued, skipped = schedule_all(mirrors, queue)
    assert (queued, skipped) == (["alpha"], ["bravo", "charlie"])
    assert schedule_all(mirrors, queue) == ([], ["alpha", "bravo", "charlie"])


def test_a_queue_outage_fails_the_schedule_before_marking(mirrors: InMemoryMirrors) -> None:
    create_mirror(spec(), mirrors, POLICY, PREFIX)
    with pytest.raises(TransientError, match="could not enqueue"):
        schedule_all(mirrors, InMemoryQueue(down=True))
    assert mirrors.items["acme-app"].get("update_status", "none") == "none"


# --- receive: verify, match, dedupe, enqueue --------------------------------------------------------


def push_body(repo_id: int = 123, full_name: str = "acme/app") -> bytes:
    return json.dumps(
        {
            "ref": "refs/heads/main",
            "before": "1" * 40,
            "after": "2" * 40,
            "repository": {"id": repo_id, "full_name": full_name},
        }
    ).encode()


def github_headers(body: bytes, delivery: str = "d-1", secret: str = WEBHOOK_SECRET) -> dict[str, str]:
    return {
        "X-GitHub-Event": "push",
        "X-GitHub-Delivery": delivery,
        "X-Hub-Signature-256": sign_github(body, secret),
        "Content-Type": "application/json",
    }


@pytest.fixture
def receiver(mirrors: InMemoryMirrors, queue: InMemoryQueue) -> ReceiverPorts:
    secrets = InMemorySecrets({"gitmirror/acme/webhook": WEBHOOK_SECRET})
    return ReceiverPorts(mirrors=mirrors, secrets=secrets, queue=queue, ledger=InMemoryLedger())


def receive(ports: ReceiverPorts, body: bytes, headers: dict[str, str]) -> tuple[int, dict[str, Any]]:
    reply = receive_webhook(Provider.GITHUB, headers, body, ports, max_body_bytes=1 << 20)
    return reply.status, reply.body


def test_a_signed_push_queues_one_job_per_mirror_once(receiver: ReceiverPorts, queue: InMemoryQueue) -> None:
    create_mirror(spec(), receiver.mirrors, POLICY, PREFIX)
    create_mirror(spec(id="acme-app-2"), receiver.mirrors, POLICY, PREFIX)
    body = push_body()
    assert receive(receiver, body, github_headers(body)) == (
        202,
        {"delivery": "d-1", "mirrors": ["acme-app", "acme-app-2"], "queued": 2},
    )
    status, reply = receive(receiver, body, github_headers(body))
    assert (status, reply["duplicate"], reply["queued"]) == (200, True, 0)
    assert [(j.mirror_id, j.delivery_id, j.trigger) for j in queue.jobs] == [
        ("acme-app", "d-1", Trigger.WEBHOOK),
        ("acme-app-2", "d-1", Trigger.WEBHOOK),
    ]


def test_a_burst_of_pushes_writes_scheduled_once(receiver: ReceiverPorts, mirrors: InMemoryMirrors) -> None:
    create_mirror(spec(), mirrors, POLICY, PREFIX)
    body = push_body()
    receive(receiver, body, github_headers(body, "d-1"))
    first = mirrors.items["acme-app"]["last_scheduled_at"]
    receive(receiver, body, github_headers(body, "d-2"))
    assert mirrors.items["acme-app"]["last_scheduled_at"] == first


@pytest.mark.parametrize(
    ("mutate", "status", "says"),
    [
        (lambda h, b: {**h, "X-Hub-Signature-256": sign_github(b, "wrong")}, 401, "invalid signature"),
        (lambda h, b: {k: v for k, v in h.items() if k != "X-Hub-Signature-256"}, 401, "missing signature"),
        (lambda h, b: {k: v for k, v in h.items() if k != "X-GitHub-Delivery"}, 400, "delivery id"),
        (lambda h, b: {k: v for k, v in h.items() if k != "X-GitHub-Event"}, 400, "missing event header"),
    ],
)
def test_rejections_queue_nothing(
    receiver: ReceiverPorts, queue: InMemoryQueue, mutate: Any, status: int, says: str
) -> None:
    create_mirror(spec(), receiver.mirrors, POLICY, PREFIX)
    body = push_body()
    got, reply = receive(receiver, body, mutate(github_headers(body), body))
    assert got == status and says in reply["error"]
    assert queue.jobs == []


def test_unknown_repositories_and_disabled_mirrors(receiver: ReceiverPorts, queue: InMemoryQueue) -> None:
    create_mirror(spec(enabled=False), receiver.mirrors, POLICY, PREFIX)
    body = push_body()
    assert receive(receiver, body, github_headers(body))[0] == 401  # the answer of a bad signature
    other = push_body(999, "someone/else")
    assert receive(receiver, other, github_headers(other))[0] == 401
    assert queue.jobs == []


def test_an_unreadable_webhook_secret_is_an_error_not_a_match(receiver: ReceiverPorts) -> None:
    create_mirror(spec(webhook_secret="gitmirror/acme/missing"), receiver.mirrors, POLICY, PREFIX)
    body = push_body()
    with pytest.raises(
        MirrorMisconfigured, match=r"mirror acme-app is misconfigured: .* does not exist"
    ) as caught:
        receive(receiver, body, github_headers(body))
    assert caught.value.mirror_id == "acme-app" and http_answer(caught.value) == (500, caught.value.message)
    assert "retry later" not in caught.value.message


# --- run: leases, coalescing, retries, statuses -----------------------------------------------------


def registered(mirrors: InMemoryMirrors, **changes: Any) -> None:
    create_mirror(spec(**changes), mirrors, POLICY, PREFIX)


def test_a_job_for_a_deleted_or_disabled_mirror_is_dropped(mirrors: InMemoryMirrors) -> None:
    job = make_job("acme-app", Trigger.WEBHOOK, "d-1")
    assert run_job(job, mirrors, InMemorySecrets(), SETTINGS).action == "dropped"
    registered(mirrors, enabled=False)
    outcome = run_job(job, mirrors, InMemorySecrets(), SETTINGS)
    assert (outcome.action, outcome.reason) == ("dropped", "the mirror is disabled")
    assert mirrors.runs == []


def test_a_held_lease_makes_the_job_wait_with_backoff(mirrors: InMemoryMirrors) -> None:
    registered(mirrors)
    assert mirrors.acquire_lease("acme-app", "other-run", 600)
    outcome = run_job(make_job("acme-app", Trigger.MANUAL, None), mirrors, InMemorySecrets(), SETTINGS)
    assert (outcome.action, outcome.retry) == ("busy", True)
    assert outcome.retry_after_seconds == retry_delay(SETTINGS.retry_base_seconds, 2) == 60
    assert mirrors.items["acme-app"]["lease_owner"] == "other-run"


def test_a_failing_run_writes_an_actionable_status_and_releases_the_lease(mirrors: InMemoryMirrors) -> None:
    # The production policy refuses plain http: the run fails before any network access.
    registered(mirrors, source_url="https://github.com/acme/app.git")
    mirrors.items["acme-app"]["source_url"] = "http://github.com/acme/app.git"
    outcome = run_job(make_job("acme-app", Trigger.MANUAL, None), mirrors, InMemorySecrets(), SETTINGS)
    item = mirrors.items["acme-app"]
    assert outcome.action == "ran" and outcome.result is not None
    assert outcome.result.status == RunStatus.FAILED and not outcome.retry
    assert item["update_status"] == "failed" and "https" in item["last_error"]
    assert "lease_owner" not in item and "lease_expires_at" not in item
    (run,) = mirrors.runs
    assert run.update_status == UpdateStatus.FAILED and run.error == item["last_error"]


def test_a_secret_outside_the_prefix_fails_the_run(mirrors: InMemoryMirrors) -> None:
    registered(mirrors)
    mirrors.items["acme-app"]["target_secret"] = "prod/other-team/token"
    run_job(make_job("acme-app", Trigger.MANUAL, None), mirrors, InMemorySecrets(), SETTINGS)
    assert "must start with the deployment's prefix" in mirrors.items["acme-app"]["last_error"]


def test_jobs_are_coalesced_into_later_runs_that_finished_or_run() -> None:
    mirror = create_mirror(spec(), InMemoryMirrors(), POLICY, PREFIX)
    job = make_job("acme-app", Trigger.WEBHOOK, "d-1")
    later = iso(utcnow() + dt.timedelta(seconds=5))
    live, expired = iso(utcnow() + dt.timedelta(minutes=10)), iso(utcnow() - dt.timedelta(seconds=1))
    for status, lease, covered in (
        (UpdateStatus.FINISHED, None, True),
        (UpdateStatus.STARTED, live, True),
        (UpdateStatus.STARTED, expired, False),  # its worker died: the job runs again
        (UpdateStatus.STARTED, None, False),  # no lease to trust
        (UpdateStatus.FAILED, None, False),
    ):
        run = mirror.model_copy(
            update={"update_status": status, "last_update_started_at": later, "lease_expires_at": lease}
        )
        assert (covered_by_later_run(run, job, utcnow()) is not None) is covered, (status, lease)
    earlier = mirror.model_copy(
        update={
            "update_status": UpdateStatus.FINISHED,
            "last_update_started_at": iso(utcnow() - dt.timedelta(1)),
        }
    )
    assert covered_by_later_run(earlier, job, utcnow()) is None


def test_retry_backoff_doubles_and_is_capped() -> None:
    assert [retry_delay(30, attempt) for attempt in (1, 2, 3, 4)] == [30, 60, 120, 240]
    assert retry_delay(30, 20) == 900
    assert retry_delay(0, 3) == 0


def test_a_dead_run_reads_failed_and_the_next_run_records_it_then_runs(mirrors: InMemoryMirrors) -> None:
    """A worker killed mid-run leaves `started` and its lease; once the lease ran out the record is
    shown failed, the next run writes that failure into it, takes the lease and runs."""
    registered(mirrors)
    started = utcnow() - dt.timedelta(minutes=20)
    mirrors.items["acme-app"].update(
        update_status="started",
        last_update_started_at=iso(started),
        lease_owner="dead-run",
        lease_expires_at=iso(started + dt.timedelta(minutes=15)),
    )
    mirror = mirrors.get("acme-app")
    assert mirror is not None and mirror.run_died() and mirror.pending_run() is None
    shown = mirror.public()
    assert (
        shown["update_status"] == "failed" and shown["last_error"] == DEAD_RUN and "lease_owner" not in shown
    )
    job = make_job("acme-app", Trigger.WEBHOOK, "d-2")
    job = job.model_copy(
        update={"enqueued_at": iso(started - dt.timedelta(seconds=1))}
    )  # before the dead run
    outcome = run_job(job, mirrors, InMemorySecrets(), SETTINGS)
    assert outcome.action == "ran"  # not dropped as covered
    assert mirrors.items["acme-app"]["last_run_id"] != "dead-run"


def test_the_scheduler_records_a_dead_run_failed_and_queues_the_mirror(mirrors: InMemoryMirrors) -> None:
    registered(mirrors)
    started = utcnow() - dt.timedelta(minutes=20)
    mirrors.items["acme-app"].update(
        update_status="started",
        last_update_started_at=iso(started),
        lease_owner="dead-run",
        lease_expires_at=iso(started + dt.timedelta(minutes=15)),
    )
    queue = InMemoryQueue()
    queued, _skipped = schedule_all(mirrors, queue)
    assert queued == ["acme-app"]
    item = mirrors.items["acme-app"]
    assert item["last_error"] == DEAD_RUN and item["result"] == "failed" and "lease_owner" not in item
    assert item["update_status"] == "scheduled"


def test_status_writes_back_off_while_the_store_is_unreachable(
    mirrors: InMemoryMirrors, monkeypatch: pytest.MonkeyPatch
) -> None:
    registered(mirrors, source_url="https://github.com/acme/app.git")
    mirrors.items["acme-app"]["source_url"] = "http://github.com/acme/app.git"  # fails fast, offline
    monkeypatch.setattr(mirror_run.time, "sleep", lambda _s: None)
    original, calls = mirrors.finish, []

    def flaky(*args: object) -> bool:
        calls.append(args)
        if len(calls) < 3:
            raise TransientError("cannot reach AWS (DynamoDB is unreachable)")
        return original(*args)  # type: ignore[arg-type]

    monkeypatch.setattr(mirrors, "finish", flaky)
    outcome = run_job(make_job("acme-app", Trigger.MANUAL, None), mirrors, InMemorySecrets(), SETTINGS)
    assert len(calls) == 3 and mirrors.items["acme-app"]["update_status"] == "failed" and not outcome.retry

    calls.clear()
    monkeypatch.setattr(mirrors, "finish", lambda *a: (_ for _ in ()).throw(TransientError("down")))
    outcome = run_job(make_job("acme-app", Trigger.MANUAL, None), mirrors, InMemorySecrets(), SETTINGS)
    # never written: the job comes back once the run's lease has expired, and is then run again
    assert outcome.retry and outcome.retry_after_seconds > 0 and "runs again" in outcome.reason
