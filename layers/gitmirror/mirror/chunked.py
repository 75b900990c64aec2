"""Mirroring a history larger than one push may carry: several pushes, oldest history first.

Each push is a ref set to a commit of its first-parent chain (`chunking`), with the pack the source
computes for that commit from the target's tips, passed through as it is. A ref's steps overlap: while
the target receives one step's pack, the next step's pack downloads (its haves name the commit being
pushed, which the source has), so a step costs the slower of the two rather than their sum, when
scratch storage has room for both packs (else one after the other). A pack is deleted once its push
is answered, so scratch storage holds at most two pushes' objects (plus the commit graph), whatever
the repository's size. A step whose pack would exceed the budget is retried with fewer commits; a
single commit whose own new objects exceed it is rejected.
"""

from __future__ import annotations

import itertools
import os
import shutil
from collections.abc import Callable, Iterable, Mapping
from concurrent import futures
from typing import TYPE_CHECKING

from dulwich.repo import Repo

from gitmirror.mirror.ancestry import CommitGraph
from gitmirror.mirror.chunking import StepSizer, descendants_suffix, first_parent_chain, mark_known
from gitmirror.mirror.limits import command_bytes, format_size, human_size
from gitmirror.mirror.planner import batch_ref_updates, plan_ref_updates
from gitmirror.mirror.transport import FetchedPack
from gitmirror.mirror.transport.fetched_pack import PackOverLimit
from gitmirror.values import Action, RefUpdate

if TYPE_CHECKING:
    from gitmirror.mirror.engine import _Run

# how many times a run tries to send all refs left in one push after finishing a ref's history
MAX_REST_TRIES = 3
# free scratch space kept beyond a step's budget before its pack downloads beside the one in flight
SCRATCH_MARGIN = 64 * 1024 * 1024


def free_scratch_bytes(path: str) -> int:
    """Free bytes on the file system of `path` (the run's scratch directory)."""
    return shutil.disk_usage(path).free


class _TimeUp(Exception):
    """The time limit passed: the refs not done yet are left for the next run."""


class _Chunker:
    def __init__(
        self,
        run: _Run,
        workdir: str,
        graph: CommitGraph,
        target_refs: Mapping[str, str],
        before_push: Callable[[_Run, Repo], None],
    ) -> None:
        assert run.max_push_bytes is not None
        self.run = run
        self.before_push = before_push  # the LFS objects of a step's pack go first
        self.limit = run.max_push_bytes
        self.workdir = workdir
        self.graph = graph
        self.tips = dict(target_refs)  # the target's refs as this run has left them
        self.pushed: list[str] = []  # values pushed by this run, most recent last
        self.known: set[bytes] = set()  # commits the target has
        mark_known(self._peeled(target_refs.values()), graph.parents, self.known)
        self.sizer = StepSizer(self.limit)
        self.steps = 0
        self.oversized: dict[bytes, str] = {}  # commit -> why it cannot be pushed

    def _peeled(self, shas: Iterable[str]) -> list[bytes]:
        found = (self.graph.peel(sha) for sha in shas)
        return [oid for oid in found if oid is not None]

    def haves(self, first: str | None) -> list[str]:
        """The ref's current value first, this run's pushes (newest first), then the target's tips:
        dulwich offers at most 256, so the ones the step builds on must lead."""
        order = ([first] if first else []) + self.pushed[::-1] + sorted(set(self.tips.values()))
        return list(dict.fromkeys(order))

    def fetch(
        self, wants: set[str], first: str | None, budget: int, *, measure: bool
    ) -> tuple[Repo, FetchedPack]:
        self.steps += 1
        path = os.path.join(self.workdir, f"push-{self.steps}.git")
        repo = Repo.init_bare(path, mkdir=True)
        try:
            self.run.check_time("fetching")
            fetched = self.run.source.fetch_pack_file(
                repo, wants, self.haves(first), limit=budget, measure_beyond=measure
            )
        except BaseException:
            self.drop(repo)
            raise
        return repo, fetched

    def drop(self, repo: Repo, fetched: FetchedPack | None = None) -> None:
        """A step's scratch store deleted, with its downloaded pack when there is one."""
        if fetched is not None:
            fetched.discard()
        path = repo.path
        repo.close()
        shutil.rmtree(path, ignore_errors=True)

    def push(self, repo: Repo, fetched: FetchedPack | None, batch: list[RefUpdate]) -> list[RefUpdate]:
        """One push through the run (stale checks, isolation, rejections); returns its outcomes."""
        return self._recorded(self._pushed(repo, fetched, batch))

    def _pushed(self, repo: Repo, fetched: FetchedPack | None, batch: list[RefUpdate]) -> list[RefUpdate]:
        """The push itself (LFS objects first), its pack and scratch store deleted after: what a step
        runs in the background. The run's state it touches (its fetched pack, outcomes, counters) is
        the one push's at a time."""
        run = self.run
        run.fetched, run.objects_delivered = fetched, False
        start = len(run.done)
        try:
            self.before_push(run, repo)
            run.push(repo, batch)
        finally:
            run.fetched = None
            self.drop(repo, fetched)
        outcomes = run.done[start:]
        del run.done[start:]
        return outcomes

    def _recorded(self, outcomes: list[RefUpdate]) -> list[RefUpdate]:
        """The target's refs as a push left them (in the run's thread: haves are read from them)."""
        for outcome in outcomes:
            if outcome.action != Action.REJECTED:
                self._applied(outcome.ref, outcome.new)
        return outcomes

    def _applied(self, ref: str, new: str | None) -> None:
        if new is None:
            self.tips.pop(ref, None)
            return
        self.tips[ref] = new
        self.pushed.append(new)
        mark_known(self._peeled([new]), self.graph.parents, self.known)

    def check_time(self) -> None:
        if self.run.time_up():
            raise _TimeUp

    # --- one ref at a time --------------------------------------------------------------------

    def candidates(self, decision: RefUpdate) -> list[str]:
        """The values the ref goes through, oldest first, ending with its final value; [] when the
        target has its history already (only the ref, and a tag object, are new)."""
        assert decision.new is not None
        tip = self.graph.peel(decision.new)
        if tip is None:
            return [decision.new]  # a tag of a tree or blob: one step
        chain = first_parent_chain(tip, self.graph.parents, self.known)
        if not chain:
            return []
        if decision.action == Action.UPDATE and decision.old is not None:
            old = decision.old
            # fast-forwards only: every intermediate value descends from the ref's value
            chain = descendants_suffix(chain, lambda c: self.graph.is_ancestor(old, c.decode()) is True)
        values = [c.decode("ascii") for c in chain]
        if not values:
            return [decision.new]
        values[-1] = decision.new  # the tag object (when it is one) points at the chain's tip
        return values

    def mirror_ref(self, decision: RefUpdate, values: list[str]) -> RefUpdate | None:
        """Push `decision.ref` through `values`; its final outcome, or None if the time ran out first.

        One push at a time, in the background: the next step's pack downloads while the target takes
        the last one, on the assumption that the push lands (its value leads the haves), when scratch
        storage has room for a second pack (else the push is waited for first). When a push is
        rejected the step downloaded meanwhile is dropped and the ref's rejection is its outcome."""
        budget = max(1, self.limit - command_bytes([decision.ref]))
        current = decision.old  # the ref's value once the push in flight lands
        sent = -1  # index in `values` of that value
        take = self.sizer.first(len(values))
        with futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="gitmirror-step") as pool:
            in_flight: futures.Future[list[RefUpdate]] | None = None
            try:
                while sent < len(values) - 1:
                    if self.run.time_up():
                        if (refused := self._landed(in_flight, decision)) is not None:
                            return refused
                        raise _TimeUp
                    last = min(sent + take, len(values) - 1)
                    single = last == sent + 1
                    value = values[last]
                    peeled = self.graph.peel(value)
                    if single and peeled in self.oversized:
                        return self._landed(in_flight, decision) or self._reject(
                            decision, self.oversized[peeled]
                        )
                    if in_flight is not None and free_scratch_bytes(self.workdir) < budget + SCRATCH_MARGIN:
                        # no room for a second pack (e.g. a 2 GiB cap on a 4 GB /tmp): one at a time
                        if (refused := self._landed(in_flight, decision)) is not None:
                            return refused
                        in_flight = None
                    try:
                        repo, fetched = self.fetch({value}, current, budget, measure=single)
                    except PackOverLimit:
                        take = self.sizer.after_overflow(last - sent)
                        continue
                    try:
                        refused = self._landed(in_flight, decision)
                    except BaseException:
                        self.drop(repo, fetched)
                        raise
                    in_flight = None
                    if refused is not None or fetched.over_limit:
                        size = fetched.size
                        self.drop(repo, fetched)
                        if refused is not None:
                            return refused
                        why = (
                            f"commit {(peeled or value.encode()).decode()[:12]} alone adds {human_size(size)} of "
                            f"new objects, more than the push limit (--max-push-bytes {format_size(self.limit)}, "
                            f"{self.limit:,} bytes)"
                        )
                        if peeled is not None:
                            self.oversized[peeled] = why
                        return self._reject(decision, why)
                    if self.run.time_up():  # (the push before this one may have taken the time left)
                        self.drop(repo, fetched)
                        raise _TimeUp
                    self.sizer.fitted(last - sent, fetched.size)
                    step = RefUpdate(decision.ref, decision.action, old=current, new=value)
                    in_flight = pool.submit(self._pushed, repo, fetched, [step])
                    current, sent = value, last
                    take = self.sizer.after_fit(len(values) - 1 - sent)
                return self._landed(in_flight, decision) or decision
            except BaseException:
                if in_flight is not None:
                    futures.wait([in_flight])  # the push in flight finishes before the run goes on
                raise

    def _landed(
        self, in_flight: futures.Future[list[RefUpdate]] | None, decision: RefUpdate
    ) -> RefUpdate | None:
        """Wait for the push in flight and record it; the ref's rejection if the target refused it."""
        if in_flight is None:
            return None
        outcome = self._recorded(in_flight.result())[0]
        if outcome.action == Action.REJECTED:
            return self._reject(decision, outcome.error or "rejected by the target")
        return None

    def _reject(self, decision: RefUpdate, why: str) -> RefUpdate:
        return RefUpdate(decision.ref, Action.REJECTED, old=decision.old, new=decision.new, error=why)

    # --- several refs in one push ---------------------------------------------------------------

    def try_together(self, decisions: list[RefUpdate]) -> list[RefUpdate] | None:
        """All of `decisions` straight to their final values in one push, if that fits; else None
        (and only the budget's worth was downloaded)."""
        self.check_time()
        wants = {d.new for d in decisions if d.new is not None}
        budget = max(1, self.limit - command_bytes([d.ref for d in decisions]))
        try:
            repo, fetched = self.fetch(wants, None, budget, measure=False)
        except PackOverLimit:
            return None
        return self.push(repo, fetched, decisions)

    def push_together(self, decisions: list[RefUpdate], *, first: bool = True) -> list[RefUpdate]:
        """Refs that need no history (or deletions): one push, halved while its pack is too large.
        The time limit is checked once, before the first push (the halves finish what was started)."""
        if not decisions:
            return []
        if first:
            self.check_time()
        wants = {d.new for d in decisions if d.new is not None and d.action != Action.DELETE}
        budget = max(1, self.limit - command_bytes([d.ref for d in decisions]))
        if not wants:
            repo = Repo.init_bare(os.path.join(self.workdir, f"push-{self.steps + 1}.git"), mkdir=True)
            self.steps += 1
            return self.push(repo, None, decisions)
        try:
            repo, fetched = self.fetch(wants, None, budget, measure=len(decisions) == 1)
        except PackOverLimit:
            mid = len(decisions) // 2
            return self.push_together(decisions[:mid], first=False) + self.push_together(
                decisions[mid:], first=False
            )
        if fetched.over_limit:
            self.drop(repo, fetched)
            return [
                self._reject(
                    decisions[0],
                    f"its new objects ({human_size(fetched.size)}) exceed the push limit "
                    f"(--max-push-bytes {format_size(self.limit)}, {self.limit:,} bytes)",
                )
            ]
        return self.push(repo, fetched, decisions)


def push_in_chunks(
    run: _Run,
    workdir: str,
    graph: CommitGraph,
    source_refs: Mapping[str, str],
    target_refs: Mapping[str, str],
    default_branch: str | None,
    skipped: list[RefUpdate],
    before_push: Callable[[_Run, Repo], None],
) -> None:
    """Plan with the whole commit graph, then push every decision under `run.max_push_bytes`:
    deletions that free a name first, then each ref's history in steps (the default branch first),
    then the refs that only point into history already sent, then the other deletions."""
    decisions = plan_ref_updates(source_refs, target_refs, default_branch, graph, run.options)
    skipped.extend(d for d in decisions if d.action == Action.SKIP_DIVERGENT)
    ordered = [d for batch in batch_ref_updates(decisions, default_branch, run.batch_size) for d in batch]
    chunker = _Chunker(run, workdir, graph, target_refs, before_push)
    together: list[RefUpdate] = []
    pending = list(ordered)
    # after a ref's history is sent, what is left is often small: try it all in one push, a few times
    tries_left, try_rest = MAX_REST_TRIES, False
    try:
        while pending:
            decision = pending[0]
            rest = [*together, *itertools.takewhile(lambda d: d.action != Action.DELETE, pending)]
            if try_rest and tries_left and len(rest) > 1 and len(rest) <= run.batch_size:
                try_rest = False
                outcomes = chunker.try_together(rest)
                if outcomes is None:
                    tries_left -= 1
                else:
                    run.done.extend(outcomes)
                    del pending[: len(rest) - len(together)]
                    together = []
                    continue
            if decision.action == Action.DELETE:
                deletions: list[RefUpdate] = []
                while pending and pending[0].action == Action.DELETE and len(deletions) < run.batch_size:
                    deletions.append(pending.pop(0))
                if together:
                    run.done.extend(chunker.push_together(together))
                    together = []
                run.done.extend(chunker.push_together(deletions))
                continue
            values = chunker.candidates(decision)
            if not values:
                together.append(pending.pop(0))
                if len(together) >= run.batch_size:
                    run.done.extend(chunker.push_together(together))
                    together = []
                continue
            outcome = chunker.mirror_ref(decision, values)
            pending.pop(0)
            if outcome is not None:
                run.done.append(outcome)
                try_rest = True
        if together:
            run.done.extend(chunker.push_together(together))
            together = []
    except _TimeUp:
        run.remaining.extend(d.ref for d in [*together, *pending])
