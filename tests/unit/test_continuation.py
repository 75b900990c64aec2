"""Continuations of a run that stopped incomplete (gitmirror.run.continuation), with in-memory ports."""

from __future__ import annotations

import pytest

from gitmirror.jobs import make_job
from gitmirror.manage.mirrors import create_mirror
from gitmirror.mirror.limits import GIB, MIB
from gitmirror.records import Mirror, MirrorSettings
from gitmirror.run import continuation
from gitmirror.run.mirror_run import run_job
from gitmirror.values import RefUpdate, RunStatus, SyncResult, SyncStats, Trigger, UpdateStatus
from tests.support.memory import InMemoryMirrors, InMemorySecrets
from tests.unit.test_use_cases import POLICY, PREFIX, SETTINGS, spec


def mirror(**changes: object) -> Mirror:
    return create_mirror(spec(**changes), InMemoryMirrors(), POLICY, PREFIX)


def incomplete(bytes_pushed: int, refs: list[RefUpdate] | None = None) -> SyncResult:
    return SyncResult(
        status=RunStatus.INCOMPLETE,
        refs=refs or [],
        remaining_refs=["refs/heads/main", "refs/tags/v1"],
        stats=SyncStats(bytes_pushed=bytes_pushed, pushes=1),
    )


@pytest.mark.parametrize(
    ("seconds_left", "limit"),
    [(870.0, 637.5), (30.0, 7.5), (20.0, 0.001), (5.0, 0.001)],
)
def test_push_time_limit_keeps_time_for_the_push_in_flight(seconds_left: float, limit: float) -> None:
    assert continuation.push_time_limit(seconds_left) == pytest.approx(limit)


@pytest.mark.parametrize(
    ("url", "own", "limit"),
    [
        ("https://github.com/acme-mirror/app.git", None, 2 * GIB - 64 * MIB),
        ("https://github.com/acme-mirror/app.git", 15 * MIB, 15 * MIB),
        ("https://gitlab.example.com/acme/app.git", None, None),
        ("https://bitbucket.org/acme/app.git", 3 * GIB, 3 * GIB),
    ],
)
def test_max_push_bytes_defaults_by_host(url: str, own: int | None, limit: int | None) -> None:
    assert continuation.max_push_bytes(mirror(url=url, max_push_bytes=own)) == limit


def test_max_push_bytes_accepts_suffixes_and_rejects_nonsense() -> None:
    assert MirrorSettings(max_push_bytes="15M").max_push_bytes == 15 * MIB  # type: ignore[arg-type]
    for bad in ("12Q", 0, -1, True):
        with pytest.raises(ValueError, match=r"max_push_bytes|size"):
            MirrorSettings(max_push_bytes=bad)  # type: ignore[arg-type]


def test_a_run_without_progress_fails_instead_of_looping() -> None:
    failed = continuation.without_progress(incomplete(0))
    assert failed.status == RunStatus.FAILED and failed.error == continuation.NO_PROGRESS
    assert continuation.without_progress(incomplete(10)).status == RunStatus.INCOMPLETE
    deleted = [RefUpdate(ref="refs/heads/old", action="delete", old="a" * 40)]  # type: ignore[arg-type]
    assert continuation.without_progress(incomplete(0, deleted)).status == RunStatus.INCOMPLETE


def test_progress_adds_up_along_a_chain_and_restarts_with_a_new_one() -> None:
    m = mirror().model_copy(update={"bytes_pushed": 100, "runs_so_far": 2})
    chained = continuation.progress_fields(m, continuation.next_job(m.id, "run-1"), incomplete(50))
    assert chained["remaining_refs"] == 2 and chained["bytes_pushed"] == 150 and chained["runs_so_far"] == 3
    assert chained["update_status"] == UpdateStatus.SCHEDULED.value and chained["last_scheduled_at"]
    fresh = continuation.progress_fields(m, make_job(m.id, Trigger.WEBHOOK, "d"), incomplete(50))
    assert fresh["bytes_pushed"] == 50 and fresh["runs_so_far"] == 1
    done = SyncResult(status=RunStatus.SUCCESS, stats=SyncStats(bytes_pushed=5))
    final = continuation.progress_fields(m, continuation.next_job(m.id, "run-1"), done)
    assert final == {"remaining_refs": 0, "bytes_pushed": 105, "runs_so_far": 3}


def test_a_continuation_superseded_by_a_later_run_is_dropped() -> None:
    mirrors = InMemoryMirrors()
    create_mirror(spec(), mirrors, POLICY, PREFIX)
    mirrors.items["acme-app"]["last_run_id"] = "run-2"
    outcome = run_job(continuation.next_job("acme-app", "run-1"), mirrors, InMemorySecrets(), SETTINGS)
    assert (outcome.action, outcome.reason) == ("dropped", "a later run superseded this continuation")
    assert mirrors.runs == []
    current = mirrors.items["acme-app"]
    assert (
        continuation.superseded(Mirror.model_validate(current), continuation.next_job("acme-app", "run-2"))
        is None
    )
