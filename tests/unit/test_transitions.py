"""Notifications on transitions only: healthy -> failed/partial, and back to success."""

from __future__ import annotations

import pytest

from gitmirror.run.transitions import FAILED, RECOVERED, transition, transition_type
from gitmirror.values import RunStatus

S, P, F = RunStatus.SUCCESS, RunStatus.PARTIAL, RunStatus.FAILED


@pytest.mark.parametrize(
    ("before", "after", "expected"),
    [
        (None, S, None),
        (None, F, FAILED),
        (None, P, FAILED),
        (S, S, None),
        (S, F, FAILED),
        (S, P, FAILED),
        (F, F, None),  # stays broken: no event on every failed run
        (F, P, None),
        (P, F, None),
        (P, P, None),
        (F, S, RECOVERED),
        (P, S, RECOVERED),
    ],
)
def test_only_health_changes_are_transitions(
    before: RunStatus | None, after: RunStatus, expected: str | None
) -> None:
    assert transition_type(before, after) == expected


def test_the_detail_caps_divergent_refs_and_carries_no_credentials() -> None:
    refs = [f"refs/heads/b{i:03}" for i in range(250)]
    event = transition(
        mirror_id="acme-app",
        source_url="https://user:canary-URL-secret-77@github.com/acme/app.git",
        target_url="https://git-codecommit.eu-west-1.amazonaws.com/v1/repos/app",
        before=S,
        after=P,
        update_status="failed",
        last_error="Some refs have diverged",
        run_id="r1",
        divergent_refs=refs,
    )
    assert event is not None and event.detail_type == FAILED
    detail = event.detail
    assert detail["divergent_refs"] == refs[:100] and detail["divergent_refs_count"] == 250
    assert "canary-URL-secret-77" not in str(detail)
    assert detail["target_url"] == "https://git-codecommit.eu-west-1.amazonaws.com/v1/repos/app"
    assert {k: detail[k] for k in ("mirror_id", "status", "result", "run_id", "last_error")} == {
        "mirror_id": "acme-app",
        "status": "failed",
        "result": "partial",
        "run_id": "r1",
        "last_error": "Some refs have diverged",
    }
