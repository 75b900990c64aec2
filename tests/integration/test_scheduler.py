"""Scheduler (functions/scheduler/app.py) on moto (server mode): the periodic safety-net sync."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import pytest

from gitmirror.errors import TransientError
from gitmirror.manage.mirrors import create_mirror
from gitmirror.records import Mirror, MirrorSpec
from gitmirror.settings import CliSettings, load
from gitmirror.values import Provider, UpdateStatus, iso, utcnow
from gitmirror_dev.lambdas import LambdaContext, load_function, schedule_event
from tests.conftest import AwsEnv
from tests.support.service import store


def make(mirror_id: str, *, enabled: bool = True) -> Mirror:
    settings = load(CliSettings)
    spec = MirrorSpec(
        id=mirror_id,
        enabled=enabled,
        source_url=f"https://github.com/acme/{mirror_id}.git",
        url=f"https://gitlab.example.com/acme/{mirror_id}.git",
        provider=Provider.GITHUB,
        source_full_name=f"acme/{mirror_id}",
        target_secret="gitmirror/acme/target",
    )
    return create_mirror(spec, store(), settings.policy, settings.secrets_prefix)


def tick() -> dict[str, Any]:
    result: dict[str, Any] = load_function("scheduler").lambda_handler(schedule_event(), LambdaContext())
    return result


def queued_jobs(aws: AwsEnv) -> dict[str, dict[str, Any]]:
    """Message group id -> job body of every message on the queue."""
    jobs = {}
    for message in aws.queue_messages():
        attributes: Any = message["Attributes"]
        jobs[str(attributes["MessageGroupId"])] = json.loads(str(message["Body"]))
    return jobs


def emitted_metrics(text: str) -> dict[str, float]:
    """Metric values from the EMF documents Powertools printed."""
    values: dict[str, float] = {}
    for line in text.splitlines():
        if not line.startswith('{"_aws"'):
            continue
        document = json.loads(line)
        for directive in document["_aws"]["CloudWatchMetrics"]:
            for metric in directive["Metrics"]:
                value = document[metric["Name"]]
                values[metric["Name"]] = sum(value) if isinstance(value, list) else value
    return values


def test_queues_enabled_idle_mirrors_only(
    aws: AwsEnv, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("POWERTOOLS_METRICS_DISABLED", "false")  # print the EMF documents to check them
    # Metrics instances share one metric set, which is never flushed while metrics are disabled.
    load_function("scheduler").metrics.clear_metrics()
    make("alpha")
    make("bravo", enabled=False)
    make("charlie")
    assert store().mark_scheduled("charlie")  # a webhook already queued a run
    capsys.readouterr()

    assert tick() == {"queued": ["alpha"], "skipped": ["bravo", "charlie"]}
    jobs = queued_jobs(aws)
    assert set(jobs) == {"alpha"}
    assert jobs["alpha"]["mirror_id"] == "alpha"
    assert jobs["alpha"]["trigger"] == "schedule" and jobs["alpha"]["delivery_id"] is None
    statuses = {m.id: m.update_status for m in store().list_mirrors()}
    assert statuses == {
        "alpha": UpdateStatus.SCHEDULED,
        "bravo": UpdateStatus.NONE,
        "charlie": UpdateStatus.SCHEDULED,
    }
    assert emitted_metrics(capsys.readouterr().out)["ScheduledSyncs"] == 1

    # The next tick finds alpha's run still pending: nothing more is queued.
    assert tick() == {"queued": [], "skipped": ["alpha", "bravo", "charlie"]}
    assert set(queued_jobs(aws)) == {"alpha"}
    assert emitted_metrics(capsys.readouterr().out)["ScheduledSyncs"] == 0


def test_stale_schedules_are_requeued_and_running_mirrors_skipped(aws: AwsEnv) -> None:
    mirrors = store()
    make("delta")  # scheduled two hours ago and never picked up: the lease window (1 h) has passed
    assert mirrors.mark_scheduled("delta", now=utcnow() - dt.timedelta(hours=2))
    make("echo")  # a worker holds the lease right now
    assert mirrors.acquire_lease("echo", "run-echo", 600)
    make("foxtrot")  # its last run finished
    assert mirrors.acquire_lease("foxtrot", "run-foxtrot", 600)
    assert mirrors.finish(
        "foxtrot",
        "run-foxtrot",
        {"update_status": UpdateStatus.FINISHED.value, "last_update_at": iso(utcnow())},
    )

    assert tick() == {"queued": ["delta", "foxtrot"], "skipped": ["echo"]}
    assert set(queued_jobs(aws)) == {"delta", "foxtrot"}
    echo = mirrors.get("echo")
    assert echo is not None and echo.update_status == UpdateStatus.STARTED


def test_nothing_to_do_without_mirrors(aws: AwsEnv) -> None:
    assert tick() == {"queued": [], "skipped": []}
    assert aws.queue_messages() == []


def test_a_failed_enqueue_fails_the_tick_and_leaves_the_mirror_unscheduled(
    aws: AwsEnv, monkeypatch: pytest.MonkeyPatch
) -> None:
    make("golf")
    monkeypatch.setenv("QUEUE_URL", aws.queue_url.replace("-sync.fifo", "-missing.fifo"))
    with pytest.raises(TransientError, match="could not enqueue"):
        tick()  # EventBridge retries a failed invocation
    golf = store().get("golf")
    assert golf is not None and golf.update_status == UpdateStatus.NONE
    assert aws.queue_messages() == []
