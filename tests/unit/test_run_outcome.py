"""The run use case's outcome as the worker logs it, on in-memory ports: the run id it announces, the
last line's numbers, and a mirror deleted while its run held the lease."""

from __future__ import annotations

from gitmirror.jobs import make_job
from gitmirror.manage.mirrors import create_mirror
from gitmirror.records import MirrorSpec
from gitmirror.run.mirror_run import job_log_keys, run_job
from gitmirror.values import Trigger
from tests.support.memory import InMemoryMirrors, InMemorySecrets
from tests.unit.test_use_cases import POLICY, PREFIX, SETTINGS


def registered(mirrors: InMemoryMirrors) -> None:
    # plain http is refused by the production policy: the run fails at once, without network access
    spec = MirrorSpec(
        id="acme-app",
        source_url="https://github.com/acme/app.git",
        url="https://github.com/acme-mirror/app.git",
        provider="github",  # type: ignore[arg-type]
        source_repo_id="123",
        target_secret="gitmirror/acme/target",
        webhook_secret="gitmirror/acme/webhook",
    )
    create_mirror(spec, mirrors, POLICY, PREFIX)
    mirrors.items["acme-app"]["source_url"] = "http://github.com/acme/app.git"


def test_job_log_keys_are_present_even_when_empty() -> None:
    manual = make_job("acme-app", Trigger.MANUAL, None)
    assert job_log_keys(manual, 2) == {
        "mirror_id": "acme-app",
        "delivery_id": "",
        "run_id": "",
        "trigger": "manual",
        "attempt": 2,
    }
    assert job_log_keys(make_job("acme-app", Trigger.WEBHOOK, "d-9"), 1)["delivery_id"] == "d-9"


def test_the_run_id_announced_is_the_run_recorded_and_the_last_line_has_its_numbers() -> None:
    mirrors = InMemoryMirrors()
    registered(mirrors)
    started: list[str] = []
    outcome = run_job(
        make_job("acme-app", Trigger.WEBHOOK, "d-1"),
        mirrors,
        InMemorySecrets(),
        SETTINGS,
        on_run_start=started.append,
    )
    (run,) = mirrors.runs
    assert started == [run.run_id] == [outcome.run_id]
    fields = outcome.log_fields()
    assert fields["action"] == "ran" and fields["status"] == "failed" and fields["result"] == "failed"
    assert "https" in str(fields["error"])
    for key in ("duration_ms", "transfer", "bytes_received", "bytes_sent", "pushes"):
        assert key in fields
    assert {k: fields[k] for k in fields if k.startswith("refs_")} == {
        "refs_created": 0,
        "refs_updated": 0,
        "refs_deleted": 0,
        "refs_rejected": 0,
        "refs_skipped": 0,
    }
    assert "mirror_deleted" not in fields


def test_a_job_that_never_ran_logs_what_happened_and_no_numbers() -> None:
    outcome = run_job(make_job("ghost", Trigger.MANUAL, None), InMemoryMirrors(), InMemorySecrets(), SETTINGS)
    assert outcome.log_fields() == {"action": "dropped", "reason": "the mirror no longer exists"}
    assert outcome.run_id is None


def test_a_mirror_deleted_during_its_run_is_reported_and_not_retried() -> None:
    mirrors = InMemoryMirrors()
    registered(mirrors)
    outcome = run_job(
        make_job("acme-app", Trigger.WEBHOOK, "d-2"),
        mirrors,
        InMemorySecrets(),
        SETTINGS,
        on_run_start=lambda _run_id: mirrors.delete("acme-app"),
    )
    assert mirrors.get("acme-app") is None  # the status write did not bring it back
    assert outcome.mirror_deleted and not outcome.retry
    assert outcome.reason == "the mirror was deleted during the run; no status was written"
    assert outcome.log_fields()["mirror_deleted"] is True
    assert [run.mirror_id for run in mirrors.runs] == ["acme-app"]  # the history keeps the run
