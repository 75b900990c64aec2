"""Notifications on state changes only: is this run a mirror's transition, and the event that says so.

Pure. A mirror is healthy before its first run and after a successful one; it breaks when a run ends
`failed` or `partial`, and recovers with the next `success`. A run that leaves it broken (failed after
partial included) or healthy is no transition, so a broken mirror notifies once, not on every run.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from gitmirror.mirror.urls import has_userinfo
from gitmirror.scrub import scrub
from gitmirror.values import RunStatus

SOURCE = "gitmirror"
FAILED = "Mirror Sync Failed"
RECOVERED = "Mirror Sync Recovered"
MAX_DIVERGENT_REFS = 100


@dataclass(frozen=True)
class Transition:
    detail_type: str
    detail: dict[str, Any]


def is_healthy(result: RunStatus | None) -> bool:
    # `incomplete`: a chain of runs still going (issue 15), not a broken mirror
    return result is None or result in (RunStatus.SUCCESS, RunStatus.INCOMPLETE)


def transition_type(before: RunStatus | None, after: RunStatus) -> str | None:
    """`Mirror Sync Failed`, `Mirror Sync Recovered`, or None when the run changed nothing (a run that
    stopped `incomplete` changes nothing: its continuation decides)."""
    if after == RunStatus.INCOMPLETE:
        return None
    if is_healthy(before) and not is_healthy(after):
        return FAILED
    if not is_healthy(before) and is_healthy(after):
        return RECOVERED
    return None


def _public_url(url: str) -> str:
    """Stored URLs never carry credentials; this holds even if one ever did."""
    return scrub(url) if has_userinfo(url) else url


def transition(
    *,
    mirror_id: str,
    source_url: str,
    target_url: str,
    before: RunStatus | None,
    after: RunStatus,
    update_status: str,
    last_error: str | None,
    run_id: str,
    divergent_refs: list[str],
) -> Transition | None:
    """The event for a run that changed the mirror's health, or None."""
    detail_type = transition_type(before, after)
    if detail_type is None:
        return None
    return Transition(
        detail_type,
        {
            "mirror_id": mirror_id,
            "source_url": _public_url(source_url),
            "target_url": _public_url(target_url),
            "status": update_status,
            "result": after.value,
            "previous_result": before.value if before is not None else None,
            "last_error": scrub(last_error) if last_error else None,
            "run_id": run_id,
            "divergent_refs": divergent_refs[:MAX_DIVERGENT_REFS],
            "divergent_refs_count": len(divergent_refs),
        },
    )
