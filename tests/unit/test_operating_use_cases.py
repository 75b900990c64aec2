"""The operating use cases on in-memory ports: dry runs queued and run, state changes, MirrorLagSeconds.

The repositories are real bare git repositories on local paths (the deployment's policy allows them
here); the ports are the in-memory ones of tests/support/memory.py.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

from gitmirror.jobs import make_job
from gitmirror.manage.mirrors import create_mirror, request_sync
from gitmirror.mirror.urls import NetworkPolicy
from gitmirror.records import MirrorSpec, SyncJob
from gitmirror.run.mirror_run import run_job
from gitmirror.run.transitions import FAILED, RECOVERED
from gitmirror.settings import WorkerSettings
from gitmirror.values import RunStatus, Trigger, iso, utcnow
from tests.support import gitrepo as g
from tests.support.memory import InMemoryMirrors, InMemoryQueue, InMemorySecrets

MAIN = "refs/heads/main"
SETTINGS = WorkerSettings(
    mirrors_table="mirrors",
    runs_table="runs",
    queue_url="https://sqs.us-east-1.amazonaws.com/123456789012/sync.fifo",
    allow_local_paths=True,
)
POLICY = NetworkPolicy(allow_local_paths=True)
STATUS_FIELDS = (
    "update_status",
    "result",
    "last_update_at",
    "last_error",
    "last_scheduled_at",
    "lease_owner",
)


def _mirror(tmp_path: Path, mirrors: InMemoryMirrors) -> tuple[Path, Path]:
    src, dst = g.init_bare(tmp_path / "src.git"), g.init_bare(tmp_path / "dst.git")
    g.commit(src, MAIN, {"a": "1"})
    spec = MirrorSpec.model_validate(
        {"id": "local", "source_url": str(src), "url": str(dst), "provider": "github", "source_repo_id": "1",
         "auth_method": "none"}
    )  # fmt: skip
    create_mirror(spec, mirrors, POLICY, "gitmirror/")
    return src, dst


def _status(mirrors: InMemoryMirrors) -> dict[str, Any]:
    return {k: mirrors.items["local"].get(k) for k in STATUS_FIELDS}


def test_a_dry_run_is_queued_and_run_without_touching_the_status(tmp_path: Path) -> None:
    mirrors, queue = InMemoryMirrors(), InMemoryQueue()
    _, dst = _mirror(tmp_path, mirrors)
    assert request_sync("local", mirrors, queue, Trigger.MANUAL).queued  # a real run is scheduled
    before = _status(mirrors)
    outcome = request_sync("local", mirrors, queue, Trigger.MANUAL, dry_run=True)
    assert (outcome.queued, outcome.reason) == (True, "queued")  # queued though a run is pending
    real, dry = queue.jobs
    assert (real.dry_run, dry.dry_run) == (False, True)
    assert _status(mirrors) == before

    done = run_job(dry, mirrors, InMemorySecrets(), SETTINGS)
    assert done.action == "ran" and done.result is not None and done.result.dry_run
    assert done.transition is None and done.lag_seconds is None
    assert _status(mirrors) == before
    assert g.refs(dst) == {}
    [run] = mirrors.runs
    assert run.dry_run and [(r.ref, r.action.value) for r in run.refs] == [(MAIN, "create")]


def test_transitions_come_out_of_runs_that_change_health(tmp_path: Path) -> None:
    mirrors = InMemoryMirrors()
    src, dst = _mirror(tmp_path, mirrors)

    def run() -> Any:
        return run_job(make_job("local", Trigger.MANUAL, None), mirrors, InMemorySecrets(), SETTINGS)

    assert run().transition is None  # first run, success
    (dst / "objects").rename(tmp_path / "objects-away")  # the target is broken now
    g.commit(src, MAIN, {"a": "2"})
    broke = run()
    assert broke.result is not None and broke.result.status == RunStatus.FAILED
    assert broke.transition is not None and broke.transition.detail_type == FAILED
    assert broke.transition.detail["run_id"] == mirrors.runs[-1].run_id
    assert run().transition is None  # still broken
    (tmp_path / "objects-away").rename(dst / "objects")
    healed = run()
    assert healed.transition is not None and healed.transition.detail_type == RECOVERED


def test_mirror_lag_is_measured_from_the_webhooks_arrival(tmp_path: Path) -> None:
    mirrors = InMemoryMirrors()
    _mirror(tmp_path, mirrors)
    arrived = utcnow() - dt.timedelta(seconds=7)
    job = SyncJob(mirror_id="local", trigger=Trigger.WEBHOOK, delivery_id="d-1", enqueued_at=iso(arrived))
    outcome = run_job(job, mirrors, InMemorySecrets(), SETTINGS)
    assert outcome.result is not None and outcome.result.status == RunStatus.SUCCESS
    assert outcome.lag_seconds is not None and 7 <= outcome.lag_seconds < 60
    manual = run_job(make_job("local", Trigger.MANUAL, None), mirrors, InMemorySecrets(), SETTINGS)
    assert manual.lag_seconds is None  # not a webhook: no arrival to measure from
