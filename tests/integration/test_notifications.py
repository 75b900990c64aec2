"""Mirror state changes on EventBridge (moto server): a rule to an SQS queue reads them back."""

from __future__ import annotations

from gitmirror.adapters.aws.events import put_transition
from gitmirror.run.transitions import FAILED, transition
from gitmirror.values import RunStatus
from tests.conftest import AwsEnv
from tests.support.eventbus import event_tap


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
        event_id = put_transition(event)
        [got] = tap.events()
    assert got["id"] == event_id
    assert (got["source"], got["detail-type"]) == ("gitmirror", FAILED)
    assert got["detail"]["mirror_id"] == "notify-adapter" and got["detail"]["run_id"] == "r-1"
    assert got["detail"]["last_error"].endswith("Hint: check the token")
