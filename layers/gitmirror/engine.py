"""One mirror run: list both sides, fetch what is needed, plan, push in batches, report.

Deciding is `planner.plan_ref_updates`; moving bytes is `transport.Remote`. This module sequences them
and turns what happened into a `SyncResult`.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable, Sequence

from dulwich.repo import Repo

from .ancestry import CommitGraph
from .errors import MirrorError, TimedOut
from .models import Action, MirrorOptions, RefUpdate, RunStatus, SyncResult, SyncStats
from .planner import DEFAULT_BATCH_SIZE, batch_ref_updates, divergent_refs, plan_ref_updates, scoped_refs
from .scrub import scrub
from .transport import Remote

# Stop starting new pushes when less than this many seconds remain before the deadline.
DEADLINE_MARGIN_SECONDS = 20.0
# When a whole push is refused (a pre-receive hook declines everything it is given), halve it to find
# the refs that are really refused; this bounds the extra pushes that search may cost.
MAX_ISOLATION_PUSHES = 64
_MAX_REASON = 600


class _Run:
    def __init__(
        self,
        source: Remote,
        target: Remote,
        options: MirrorOptions,
        batch_size: int,
        remaining_seconds: Callable[[], float] | None,
    ) -> None:
        self.source = source
        self.target = target
        self.options = options
        self.batch_size = batch_size
        self.remaining_seconds = remaining_seconds
        self.done: list[RefUpdate] = []
        self.pushes = 0
        self.isolation_budget = MAX_ISOLATION_PUSHES

    def check_time(self, what: str) -> None:
        if self.remaining_seconds is not None and self.remaining_seconds() < DEADLINE_MARGIN_SECONDS:
            raise TimedOut(f"timed out: stopped before {what} because the run's time was nearly used up")

    def push(self, repo: Repo, batch: Sequence[RefUpdate]) -> None:
        self.check_time("pushing")
        self.pushes += 1
        outcome = self.target.push(
            repo, {d.ref: (d.old, None if d.action == Action.DELETE else d.new) for d in batch}
        )
        refused = {ref: reason for ref, reason in outcome.status.items() if reason}
        if len(batch) > 1 and len(refused) == len(batch) and self.isolation_budget >= 2:
            self.isolation_budget -= 2
            mid = len(batch) // 2
            self.push(repo, batch[:mid])
            self.push(repo, batch[mid:])
            return
        for decision in batch:
            reason = refused.get(decision.ref)
            if reason is None:
                self.done.append(decision)
                continue
            if outcome.remote_messages:
                reason = f"{reason} ({outcome.remote_messages.replace(chr(10), '; ')})"
            self.done.append(
                RefUpdate(
                    ref=decision.ref,
                    action=Action.REJECTED,
                    old=decision.old,
                    new=decision.new,
                    error=scrub(reason)[:_MAX_REASON],
                )
            )


def sync_mirror(
    source: Remote,
    target: Remote,
    options: MirrorOptions | None = None,
    *,
    batch_size: int = DEFAULT_BATCH_SIZE,
    remaining_seconds: Callable[[], float] | None = None,
    workdir_parent: str | None = None,
) -> SyncResult:
    """Mirror `source` into `target` with GitLab push-mirror semantics. Never raises for git failures:
    they become a `failed` result with a scrubbed, actionable error."""
    options = options or MirrorOptions()
    started = time.monotonic()
    run = _Run(source, target, options, batch_size, remaining_seconds)
    skipped: list[RefUpdate] = []
    error: str | None = None
    failure: MirrorError | None = None
    transfer = "none"
    try:
        src = source.list_refs()
        dst = target.list_refs()
        source_refs = scoped_refs(src.refs, options)
        target_refs = scoped_refs(dst.refs, options)
        default_branch = src.head if src.head in src.refs else None
        if source_refs != target_refs:  # equal in scope: nothing to create, update or delete
            transfer = _transfer(run, src.refs, dst.refs, default_branch, workdir_parent, skipped)
    except MirrorError as exc:
        error = exc.message
        failure = exc
    result_refs = sorted(run.done + skipped, key=lambda r: r.ref)
    if error is not None:
        status = RunStatus.FAILED
    elif any(r.action in (Action.SKIP_DIVERGENT, Action.REJECTED) for r in result_refs):
        status = RunStatus.PARTIAL
    else:
        status = RunStatus.SUCCESS
    return SyncResult(
        status=status,
        divergent_refs=divergent_refs(result_refs),
        refs=result_refs,
        error=error,
        error_kind=failure.kind if failure else None,
        retryable=failure.retryable if failure else False,
        stats=SyncStats(
            bytes_received=source.stats.bytes_received + target.stats.bytes_received,
            bytes_sent=source.stats.bytes_sent + target.stats.bytes_sent,
            pushes=run.pushes,
            duration_seconds=round(time.monotonic() - started, 3),
            transfer=transfer,
        ),
    )


def _transfer(
    run: _Run,
    source_refs: dict[str, str],
    target_refs: dict[str, str],
    default_branch: str | None,
    workdir_parent: str | None,
    skipped: list[RefUpdate],
) -> str:
    """Fetch from the source into a scratch repository, plan, push. Returns the transfer mode used."""
    with tempfile.TemporaryDirectory(prefix="gitmirror-", dir=workdir_parent) as workdir:
        repo = Repo.init_bare(workdir)
        try:
            wants = set(scoped_refs(source_refs, run.options).values())
            if default_branch is not None:
                wants.add(source_refs[default_branch])
            run.check_time("fetching")
            run.source.fetch(repo, wants)
            decisions = plan_ref_updates(
                source_refs, target_refs, default_branch, CommitGraph(repo.object_store), run.options
            )
            skipped.extend(d for d in decisions if d.action == Action.SKIP_DIVERGENT)
            for batch in batch_ref_updates(decisions, default_branch, run.batch_size):
                run.push(repo, batch)
        finally:
            repo.close()
    return "full"
