"""Mirror state changes on EventBridge (moto server): a rule to an SQS queue reads them back."""

from __future__ import annotations

import json

from gitmirror.adapters.aws.events import EventBridgeEvents
from gitmirror.run.transitions import FAILED, RECOVERED, transition
from gitmirror.values import RunStatus
from tests.conftest import CANARIES, TARGET_TOKEN, AwsEnv, GitServers
from tests.support import gitrepo as g
from tests.support.eventbus import event_tap
from tests.support.service import add_mirror, store

MAIN = "refs/heads/main"


def test_a_transition_event_reaches_a_rule_on_the_default_bus(aws: AwsEnv) -> None:
    event = transition(
        mirror_id="notify-adapter",
        source_url="https://github.com/acme/app.git",
        target_url="https://example.com/app.git",
        before=RunStatus.SUCCESS,
        after=RunStatus.FAILED,
        update_status="failed",
        last_error="authentication failed\n\nHint: check the token",
        run_id="r-1",
        divergent_refs=[],
    )
    assert event is not None
    with event_tap(["notify-adapter"]) as tap:
        event_id = EventBridgeEvents().put(event)
        [got] = tap.events()
    assert got["id"] == event_id
    assert (got["source"], got["detail-type"]) == ("gitmirror", FAILED)
    assert got["detail"]["mirror_id"] == "notify-adapter" and got["detail"]["run_id"] == "r-1"
    assert got["detail"]["last_error"].endswith("Hint: check the token")


def _run(aws: AwsEnv, mirror_id: str) -> None:
    from gitmirror.adapters.aws.queue import SqsJobQueue
    from gitmirror.jobs import make_job
    from gitmirror.values import Trigger
    from gitmirror_dev.lambdas import QueuePoller, load_function

    SqsJobQueue(aws.queue_url).enqueue(make_job(mirror_id, Trigger.MANUAL, None))
    assert QueuePoller(load_function("worker"), aws.queue_url).drain() == 1


def test_the_worker_notifies_on_transitions_only(aws: AwsEnv, git_servers: GitServers) -> None:
    g.commit(git_servers.source_path, MAIN, {"a": "1"})
    mirror = add_mirror(aws, git_servers.source_url, git_servers.target_url)
    with event_tap([mirror.id]) as tap:
        _run(aws, mirror.id)  # first run, healthy: nothing to say
        assert tap.events() == []

        git_servers.target.password = "canary-DST-changed-31"  # the target now refuses the credentials
        g.commit(git_servers.source_path, MAIN, {"a": "2"})
        _run(aws, mirror.id)
        [broke] = tap.events()
        runs = store().list_runs(mirror.id)
        assert (broke["source"], broke["detail-type"]) == ("gitmirror", FAILED)
        detail = broke["detail"]
        assert detail["mirror_id"] == mirror.id and detail["run_id"] == runs[0].run_id
        assert (detail["status"], detail["result"], detail["previous_result"]) == (
            "failed",
            "failed",
            "success",
        )
        assert (
            detail["source_url"] == git_servers.source_url and detail["target_url"] == git_servers.target_url
        )
        assert "401" in detail["last_error"] and detail["last_error"] == store().get(mirror.id).last_error  # type: ignore[union-attr]
        for canary in (*CANARIES, "canary-DST-changed-31"):
            assert canary not in json.dumps(broke)

        for _ in range(2):  # it stays broken: no event on every failed run
            _run(aws, mirror.id)
        assert tap.events() == []

        git_servers.target.password = TARGET_TOKEN
        _run(aws, mirror.id)
        [recovered] = tap.events()
        assert recovered["detail-type"] == RECOVERED
        assert (recovered["detail"]["result"], recovered["detail"]["previous_result"]) == (
            "success",
            "failed",
        )
        _run(aws, mirror.id)
        assert tap.events() == []


def test_a_partial_run_after_success_notifies_with_the_divergent_refs(
    aws: AwsEnv, git_servers: GitServers
) -> None:
    g.commit(git_servers.source_path, MAIN, {"a": "1"})
    mirror = add_mirror(aws, git_servers.source_url, git_servers.target_url, keep_divergent_refs=True)
    with event_tap([mirror.id]) as tap:
        _run(aws, mirror.id)
        g.commit(git_servers.target_path, MAIN, {"target": "only"})
        g.commit(git_servers.source_path, MAIN, {"a": "2"})
        _run(aws, mirror.id)
        [broke] = tap.events()
    assert broke["detail-type"] == FAILED
    assert (broke["detail"]["result"], broke["detail"]["divergent_refs"]) == ("partial", [MAIN])
